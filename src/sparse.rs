//! Plain modules read sparingly: which byte ranges of an ELF file [`crate::scan`]
//! looks at, so that the host reads those and not the whole file.
//!
//! This does no I/O. The host keeps an *image* of the file: a buffer of the file's
//! length, zero wherever it has not read. It asks a [`Plan`] what to read next
//! ([`Plan::next`]), reads those ranges into the image at the same offsets, and asks
//! again, until the plan says [`Step::Scan`] (every byte the scan can read is in the
//! image: scan it as if it were the whole file) or [`Step::Full`] (something is
//! unusual: read the whole file as before). Each step learns from the bytes read in
//! the previous one:
//!
//! 1. the ELF header (the first [`HEAD`] bytes, read by the host before it plans:
//!    they tell a plain module from a compressed one) gives the section header
//!    table, read with the bytes just before it (where the section-name table
//!    usually is);
//! 2. the section table gives the section-name table;
//! 3. the names give the sections the scan looks up by name (`.modinfo`, `.symtab`,
//!    `.strtab`, `__versions`, `__ksymtab_strings`), every one of that name, and
//!    the `__kcrctab*` sections, where CRCs usually are;
//! 4. the symbol table gives the sections the `__crc_` symbols point into.
//!
//! The rule that keeps verdicts and outputs the same as with the whole file: the
//! ranges read are a superset of every byte the scan reads, whatever the file holds.
//! Where that would take knowing more of the scan's rules than the plan mirrors, the
//! plan gives up ([`Step::Full`]): the header or the section table out of the file or
//! inconsistent, a missing or unterminated section-name table, two sections of one
//! wanted name, a string table whose last byte is not a NUL (the scan reads a symbol
//! name up to a NUL, past the table's end if need be), more symbols than the scan
//! accepts. None of these happens in a real module; damaged ones are judged on the
//! whole file, as before.
//!
//! Everything the scan reads, and where the plan gets it: the header fields (the
//! first [`HEAD`] bytes); every section header (the table); section names (the name
//! table); the bytes of the sections found by name (step 3); symbol entries and names
//! (`.symtab` and `.strtab`, found by name); a CRC word in the section a `__crc_`
//! symbol's `st_shndx` names (step 4: the whole section, whatever offset the symbol
//! gives). A new section looked up by name in [`crate::scan`] must be added to
//! `WANTED`.

use alloc::vec::Vec;
use core::ops::Range;

use scroll::{Endian, Pread};

use crate::elf::{decode_sym, MAX_SYMBOLS, SHN_ABS, SHN_UNDEF};

/// Bytes the host reads first, before planning: the ELF header (52 bytes for ELF32,
/// 64 for ELF64). Files no longer than this are read whole.
pub const HEAD: usize = 64;

/// The sections [`crate::scan::scan`] looks up by name (every one of them).
const WANTED: [&[u8]; 5] = [
    b".modinfo",
    b".strtab",
    b".symtab",
    b"__versions",
    b"__ksymtab_strings",
];
const STRTAB: usize = 1;
const SYMTAB: usize = 2;

/// Sections read with the others, by name, because `__crc_` symbols point into them
/// (saves a round of reads; step 4 checks the symbols whatever this finds).
const CRC_PREFIX: &[u8] = b"__kcrctab";

/// Bytes read before the section header table, with it: the section-name table
/// comes just before the table in the modules kbuild links (at most 944 bytes before
/// it in the Debian 6.1 tree, 400 in the median module).
const TABLE_LEAD: u64 = 1024;

/// Two ranges to read that are closer than this are read as one: one `pread` fewer
/// costs more than copying that many more bytes.
const GAP: u64 = 4096;

/// What the host does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Read these byte ranges of the file into the image, at the same offsets, then
    /// call [`Plan::next`] again. (A short read means the file changed: read it
    /// whole instead.)
    Read(&'a [Range<u64>]),
    /// The image holds every byte the scan reads: scan it as the whole file.
    Scan,
    /// Read the whole file and scan that.
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Table,
    Names,
    Sections,
    Symbols,
    Done,
}

/// The ELF header fields the plan needs.
#[derive(Clone, Copy, Debug)]
struct Header {
    is64: bool,
    endian: Endian,
    shoff: u64,
    shnum: u16,
    shstrndx: u16,
}

/// One section header: name offset, file offset and size.
#[derive(Clone, Copy, Debug)]
struct Shdr {
    name: u32,
    offset: u64,
    size: u64,
}

impl Shdr {
    /// The section's bytes, when they lie inside a file of `len` bytes (the scan
    /// reads no other section).
    fn range(&self, len: u64) -> Option<Range<u64>> {
        let end = self.offset.checked_add(self.size)?;
        (end <= len).then_some(self.offset..end)
    }
}

/// The reading plan of one file; see the module documentation.
#[derive(Debug)]
pub struct Plan {
    len: u64,
    phase: Phase,
    header: Option<Header>,
    /// Section-name table.
    names: Range<u64>,
    /// Index of the section of each [`WANTED`] name (0: none).
    found: [u16; WANTED.len()],
    /// Everything asked for so far: sorted, disjoint, not touching.
    filled: Vec<Range<u64>>,
    /// The ranges of the last [`Step::Read`].
    batch: Vec<Range<u64>>,
    /// What the current step wants (scratch, kept for the next step and file).
    wanted: Vec<Range<u64>>,
    /// Scratch for merging into `filled`.
    spare: Vec<Range<u64>>,
    /// Scratch: the sections `__crc_` symbols point into.
    shndx: Vec<u16>,
}

impl Default for Plan {
    /// The plan of an empty file, to be [`Plan::reset`] for a real one.
    fn default() -> Plan {
        Plan::new(0)
    }
}

impl Plan {
    /// The plan for a file of `len` bytes whose first [`HEAD`] bytes are in the image
    /// already (the caller read them, and reads the whole file if it is not longer).
    pub fn new(len: u64) -> Plan {
        let mut plan = Plan {
            len,
            phase: Phase::Table,
            header: None,
            names: 0..0,
            found: [0; WANTED.len()],
            filled: Vec::new(),
            batch: Vec::new(),
            wanted: Vec::new(),
            spare: Vec::new(),
            shndx: Vec::new(),
        };
        plan.reset(len);
        plan
    }

    /// Makes this the plan of another file, as [`Plan::new`] would, keeping the
    /// buffers it has grown (a worker plans thousands of files).
    pub fn reset(&mut self, len: u64) {
        self.len = len;
        self.phase = Phase::Table;
        self.header = None;
        self.names = 0..0;
        self.found = [0; WANTED.len()];
        self.filled.clear();
        self.filled.push(0..(HEAD as u64).min(len));
        self.batch.clear();
        self.wanted.clear();
    }

    /// Every range of the image filled so far (or being filled by the last
    /// [`Step::Read`]), including the first [`HEAD`] bytes: what to clear before the
    /// image is used for another file.
    pub fn filled(&self) -> &[Range<u64>] {
        &self.filled
    }

    /// The next step, given the image: `len` bytes, holding the file's bytes in every
    /// range asked for so far and anything elsewhere.
    pub fn next(&mut self, image: &[u8]) -> Step<'_> {
        if image.len() as u64 != self.len || self.len <= HEAD as u64 {
            return Step::Full;
        }
        loop {
            self.wanted.clear();
            let planned = match self.phase {
                Phase::Table => self.table(image),
                Phase::Names => self.names(image),
                Phase::Sections => self.sections(image),
                Phase::Symbols => self.symbols(image),
                Phase::Done => return Step::Scan,
            };
            if planned.is_none() {
                return Step::Full;
            }
            let mut wanted = core::mem::take(&mut self.wanted);
            let asked = self.ask(&mut wanted);
            self.wanted = wanted;
            if asked {
                return Step::Read(&self.batch);
            }
        }
    }

    /// Step 1: the header, checked as [`crate::elf::Elf::parse`] checks it; the
    /// section table, and the bytes before it.
    fn table(&mut self, image: &[u8]) -> Option<()> {
        let &[0x7f, b'E', b'L', b'F', class, encoding, ..] = image.first_chunk::<16>()? else {
            return None;
        };
        let endian = match encoding {
            1 => Endian::Little,
            2 => Endian::Big,
            _ => return None,
        };
        let get16 = |at: usize| image.pread_with::<u16>(at, endian).ok();
        let (is64, shoff, shentsize, shnum, shstrndx) = match class {
            1 => (
                false,
                u64::from(image.pread_with::<u32>(32, endian).ok()?),
                get16(46)?,
                get16(48)?,
                get16(50)?,
            ),
            2 => (
                true,
                image.pread_with::<u64>(40, endian).ok()?,
                get16(58)?,
                get16(60)?,
                get16(62)?,
            ),
            _ => return None,
        };
        if shentsize != if is64 { 64 } else { 40 } || shstrndx == 0 || shstrndx >= shnum {
            return None;
        }
        let end = shoff.checked_add(u64::from(shentsize) * u64::from(shnum))?;
        if end > self.len {
            return None;
        }
        self.header = Some(Header {
            is64,
            endian,
            shoff,
            shnum,
            shstrndx,
        });
        self.phase = Phase::Names;
        self.wanted.push(shoff.saturating_sub(TABLE_LEAD)..end);
        Some(())
    }

    /// Section header `idx` (in the table, which is in the image by now).
    #[inline]
    fn shdr(&self, image: &[u8], idx: u16) -> Option<Shdr> {
        let h = self.header?;
        let entsize: u64 = if h.is64 { 64 } else { 40 };
        let base = usize::try_from(h.shoff + u64::from(idx) * entsize).ok()?;
        let e = h.endian;
        Some(if h.is64 {
            Shdr {
                name: image.pread_with(base, e).ok()?,
                offset: image.pread_with(base + 24, e).ok()?,
                size: image.pread_with(base + 32, e).ok()?,
            }
        } else {
            Shdr {
                name: image.pread_with(base, e).ok()?,
                offset: u64::from(image.pread_with::<u32>(base + 16, e).ok()?),
                size: u64::from(image.pread_with::<u32>(base + 20, e).ok()?),
            }
        })
    }

    /// Step 2: the section-name table.
    fn names(&mut self, image: &[u8]) -> Option<()> {
        let h = self.header?;
        let names = self.shdr(image, h.shstrndx)?.range(self.len)?;
        if names.is_empty() {
            return None;
        }
        self.names = names.clone();
        self.phase = Phase::Sections;
        self.wanted.push(names);
        Some(())
    }

    /// Step 3: the sections the scan looks up by name, and the usual CRC sections.
    fn sections(&mut self, image: &[u8]) -> Option<()> {
        let h = self.header?;
        let names = slice(image, &self.names)?;
        if names.last() != Some(&0) {
            return None;
        }
        for i in 1..h.shnum {
            let s = self.shdr(image, i)?;
            // A name offset outside the table names nothing the scan looks for.
            let Some(name) = names.get(s.name as usize..) else {
                continue;
            };
            // The name is `w` when it starts with `w` and a NUL (the table ends with
            // one, so every name has one).
            let named = |w: &[u8]| name.starts_with(w) && name.get(w.len()) == Some(&0);
            if let Some(w) = WANTED.iter().position(|&w| named(w)) {
                let slot = self.found.get_mut(w)?;
                if *slot != 0 {
                    return None;
                }
                *slot = i;
            } else if !name.starts_with(CRC_PREFIX) {
                continue;
            }
            if let Some(r) = s.range(self.len) {
                self.wanted.push(r);
            }
        }
        self.phase = Phase::Symbols;
        Some(())
    }

    /// Step 4: the sections `__crc_` symbols point into.
    fn symbols(&mut self, image: &[u8]) -> Option<()> {
        let h = self.header?;
        self.phase = Phase::Done;
        let section = |w: usize| -> Option<Range<u64>> {
            match *self.found.get(w)? {
                0 => None,
                i => self.shdr(image, i)?.range(self.len),
            }
        };
        // Without both tables in the file the scan reads no symbol.
        let (Some(symtab), Some(strtab)) = (section(SYMTAB), section(STRTAB)) else {
            return Some(());
        };
        let (symtab, strtab) = (slice(image, &symtab)?, slice(image, &strtab)?);
        if strtab.last().is_some_and(|&b| b != 0) {
            return None;
        }
        let size = if h.is64 { 24 } else { 16 };
        if symtab.len() / size > MAX_SYMBOLS {
            return None;
        }
        let mut shndx = core::mem::take(&mut self.shndx);
        shndx.clear();
        let little = h.endian.is_little();
        for entry in symtab.chunks_exact(size) {
            let sym = decode_sym(entry, h.is64, little)?;
            let (name, idx) = (sym.name, sym.shndx);
            if idx == SHN_UNDEF || idx == SHN_ABS || idx >= h.shnum {
                continue;
            }
            let is_crc = strtab
                .get(name as usize..)
                .is_some_and(|n| n.starts_with(b"__crc_"));
            if is_crc && !shndx.contains(&idx) {
                shndx.push(idx);
            }
        }
        for &idx in &shndx {
            if let Some(r) = self.shdr(image, idx)?.range(self.len) {
                self.wanted.push(r);
            }
        }
        self.shndx = shndx;
        Some(())
    }

    /// Records `wanted` as asked for, and puts what is not in the image yet into
    /// `batch` (ranges closer than [`GAP`] joined). False when nothing is missing.
    fn ask(&mut self, wanted: &mut Vec<Range<u64>>) -> bool {
        self.batch.clear();
        wanted.retain(|r| !r.is_empty());
        wanted.sort_unstable_by_key(|r| r.start);
        for r in wanted.iter().cloned() {
            // The parts of `r` not filled yet.
            let mut start = r.start;
            for f in &self.filled {
                if f.end <= start {
                    continue;
                }
                if f.start >= r.end {
                    break;
                }
                if f.start > start {
                    push_joined(&mut self.batch, start..f.start);
                }
                start = start.max(f.end);
                if start >= r.end {
                    break;
                }
            }
            if start < r.end {
                push_joined(&mut self.batch, start..r.end);
            }
        }
        if self.batch.is_empty() {
            return false;
        }
        for r in &self.batch {
            add(&mut self.filled, &mut self.spare, r.clone());
        }
        true
    }
}

/// Appends `r` (starting at or after the last range's start) to `batch`, joined to
/// the last range when the gap between them is under [`GAP`].
fn push_joined(batch: &mut Vec<Range<u64>>, r: Range<u64>) {
    if let Some(last) = batch.last_mut() {
        if r.start <= last.end.saturating_add(GAP) {
            last.end = last.end.max(r.end);
            return;
        }
    }
    batch.push(r);
}

/// Adds `r` to the sorted, disjoint set `set`, merging what it touches (`spare`:
/// scratch, swapped with `set`).
fn add(set: &mut Vec<Range<u64>>, spare: &mut Vec<Range<u64>>, r: Range<u64>) {
    let mut merged = r;
    let out = spare;
    out.clear();
    let mut placed = false;
    for f in set.drain(..) {
        if f.end < merged.start {
            out.push(f);
        } else if f.start > merged.end {
            if !placed {
                out.push(merged.clone());
                placed = true;
            }
            out.push(f);
        } else {
            merged = merged.start.min(f.start)..merged.end.max(f.end);
        }
    }
    if !placed {
        out.push(merged);
    }
    core::mem::swap(set, out);
}

fn slice<'a>(image: &'a [u8], r: &Range<u64>) -> Option<&'a [u8]> {
    image.get(usize::try_from(r.start).ok()?..usize::try_from(r.end).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn ranges_merge_and_subtract() {
        let (mut set, mut spare) = (Vec::new(), Vec::new());
        add(&mut set, &mut spare, 0..64);
        add(&mut set, &mut spare, 100..200);
        add(&mut set, &mut spare, 300..400);
        add(&mut set, &mut spare, 150..300);
        assert_eq!(set, vec![0..64, 100..400]);
        add(&mut set, &mut spare, 64..100);
        assert_eq!(set, vec![0..400]);

        let mut p = Plan::new(1 << 20);
        p.filled.push(10_000..12_000);
        assert!(p.ask(&mut vec![9_000..21_000, 100_000..100_010, 30_000..31_000]));
        // What is missing of 9_000..21_000 is two pieces closer than GAP: one read.
        assert_eq!(
            p.batch,
            vec![9_000..21_000, 30_000..31_000, 100_000..100_010]
        );
        assert_eq!(
            p.filled,
            vec![0..64, 9_000..21_000, 30_000..31_000, 100_000..100_010]
        );
        assert!(!p.ask(&mut vec![9_500..9_600, 0..10]));
        assert!(p.ask(&mut vec![0..70, 1..2]));
        assert_eq!(p.batch.len(), 1);
        assert_eq!(p.batch.first(), Some(&(64..70)));
    }
}
