//! A read-only, endian- and class-generic view of an ELF file, on `scroll`.
//!
//! depmod needs very little of ELF: the section header table, sections found by
//! name, symbol table entries and C strings. This view checks every offset against
//! the file before reading it and never copies: everything it hands out borrows from
//! the module bytes. Its acceptance rules are kmod's (compat §3.2), so a file kmod
//! rejects is rejected here with the same error kind, and one kmod reads is read.

use scroll::{Endian, Pread};

/// Why a file is not a usable ELF image; the two kinds kmod reports differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF file at all (kmod: `ENOEXEC`, "Exec format error").
    NotElf,
    /// An ELF file whose headers are inconsistent or point outside the file (kmod:
    /// `EINVAL`, "Invalid argument").
    Malformed,
    /// More symbol table entries than [`MAX_SYMBOLS`] (a limit of ours, not kmod's).
    TooManySymbols,
}

/// Symbol table entries accepted in one module. Real modules have at most tens of
/// thousands; a crafted one could have hundreds of millions.
pub const MAX_SYMBOLS: usize = 1 << 22;

/// `e_machine` values that change how depmod reads symbols (SPARC register symbols).
pub const EM_SPARC: u16 = 2;
/// See [`EM_SPARC`].
pub const EM_SPARCV9: u16 = 43;
/// Section index of an undefined symbol.
pub const SHN_UNDEF: u16 = 0;
/// Section index of an absolute symbol.
pub const SHN_ABS: u16 = 0xfff1;

/// A validated ELF header plus the location of the section-name string table.
#[derive(Clone, Copy, Debug)]
pub struct Elf<'a> {
    data: &'a [u8],
    is64: bool,
    endian: Endian,
    machine: u16,
    shoff: u64,
    shnum: u16,
    /// Section-name string table: offset and size (checked, non-empty, NUL-terminated).
    names: (u64, u64),
}

/// One section: where its bytes are, and its name offset.
#[derive(Clone, Copy, Debug)]
struct SectionInfo {
    offset: u64,
    size: u64,
    name: u32,
}

/// One symbol table entry, the fields depmod uses.
#[derive(Clone, Copy, Debug)]
pub struct Sym {
    /// Offset of the name in the string table.
    pub name: u32,
    /// `st_info`: binding in the high nibble, type in the low one.
    pub info: u8,
    /// `st_shndx`.
    pub shndx: u16,
    /// `st_value` (a CRC, or an offset into the CRC section, for `__crc_` symbols).
    pub value: u64,
}

impl Sym {
    /// `STB_WEAK`.
    pub fn is_weak(&self) -> bool {
        self.info >> 4 == 2
    }
    /// `ELF_ST_TYPE`.
    pub fn kind(&self) -> u8 {
        self.info & 0xf
    }
}

fn range(data: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let end = offset.checked_add(size)?;
    if end > data.len() as u64 {
        return None;
    }
    data.get(usize::try_from(offset).ok()?..usize::try_from(end).ok()?)
}

/// A symbol table entry at the start of `entry`: `Elf64_Sym` (24 bytes) or
/// `Elf32_Sym` (16), in the given byte order. (Each order builds its own words
/// from the bytes, so that each is one load.)
#[inline(always)]
pub(crate) fn decode_sym(entry: &[u8], is64: bool, little: bool) -> Option<Sym> {
    if is64 {
        let &[n0, n1, n2, n3, info, _, s0, s1, v0, v1, v2, v3, v4, v5, v6, v7, ..] =
            entry.first_chunk::<24>()?;
        Some(if little {
            Sym {
                name: u32::from_le_bytes([n0, n1, n2, n3]),
                info,
                shndx: u16::from_le_bytes([s0, s1]),
                value: u64::from_le_bytes([v0, v1, v2, v3, v4, v5, v6, v7]),
            }
        } else {
            Sym {
                name: u32::from_be_bytes([n0, n1, n2, n3]),
                info,
                shndx: u16::from_be_bytes([s0, s1]),
                value: u64::from_be_bytes([v0, v1, v2, v3, v4, v5, v6, v7]),
            }
        })
    } else {
        let &[n0, n1, n2, n3, v0, v1, v2, v3, _, _, _, _, info, _, s0, s1] =
            entry.first_chunk::<16>()?;
        Some(if little {
            Sym {
                name: u32::from_le_bytes([n0, n1, n2, n3]),
                value: u64::from(u32::from_le_bytes([v0, v1, v2, v3])),
                info,
                shndx: u16::from_le_bytes([s0, s1]),
            }
        } else {
            Sym {
                name: u32::from_be_bytes([n0, n1, n2, n3]),
                value: u64::from(u32::from_be_bytes([v0, v1, v2, v3])),
                info,
                shndx: u16::from_be_bytes([s0, s1]),
            }
        })
    }
}

impl<'a> Elf<'a> {
    /// Validates the identification, header and section-name table as kmod does.
    pub fn parse(data: &'a [u8]) -> Result<Self, ElfError> {
        let ident = data.first_chunk::<16>().filter(|_| data.len() > 16);
        let Some(&[0x7f, b'E', b'L', b'F', class, encoding, ..]) = ident else {
            return Err(ElfError::NotElf);
        };
        let is64 = match class {
            1 if data.len() > 52 => false,
            2 if data.len() > 64 => true,
            _ => return Err(ElfError::Malformed),
        };
        let endian = match encoding {
            1 => Endian::Little,
            2 => Endian::Big,
            _ => return Err(ElfError::Malformed),
        };
        let bad = |_| ElfError::Malformed;
        let (machine, shoff, shentsize, shnum, shstrndx): (u16, u64, u16, u16, u16) = if is64 {
            (
                data.pread_with(18, endian).map_err(bad)?,
                data.pread_with(40, endian).map_err(bad)?,
                data.pread_with(58, endian).map_err(bad)?,
                data.pread_with(60, endian).map_err(bad)?,
                data.pread_with(62, endian).map_err(bad)?,
            )
        } else {
            (
                data.pread_with(18, endian).map_err(bad)?,
                u64::from(data.pread_with::<u32>(32, endian).map_err(bad)?),
                data.pread_with(46, endian).map_err(bad)?,
                data.pread_with(48, endian).map_err(bad)?,
                data.pread_with(50, endian).map_err(bad)?,
            )
        };
        let entsize: u16 = if is64 { 64 } else { 40 };
        if shentsize != entsize {
            return Err(ElfError::Malformed);
        }
        let table = u64::from(entsize) * u64::from(shnum);
        match table.checked_add(shoff) {
            Some(end) if end <= data.len() as u64 => {}
            _ => return Err(ElfError::Malformed),
        }
        let mut elf = Elf {
            data,
            is64,
            endian,
            machine,
            shoff,
            shnum,
            names: (0, 0),
        };
        // kmod reads the table's own header as any other: its name offset too must lie
        // inside it (checked against the size just read), or the file is invalid.
        let names = elf.header(shstrndx).ok_or(ElfError::Malformed)?;
        if u64::from(names.name) >= names.size {
            return Err(ElfError::Malformed);
        }
        let bytes = range(data, names.offset, names.size).ok_or(ElfError::Malformed)?;
        if bytes.last() != Some(&0) {
            return Err(ElfError::Malformed);
        }
        elf.names = (names.offset, names.size);
        Ok(elf)
    }

    /// The whole file.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
    /// ELFCLASS64?
    pub fn is64(&self) -> bool {
        self.is64
    }
    /// The file's byte order, used for every multi-byte field.
    pub fn endian(&self) -> Endian {
        self.endian
    }
    /// `e_machine`.
    pub fn machine(&self) -> u16 {
        self.machine
    }

    /// Section `idx` as kmod's `elf_get_section_info` accepts it: a valid index, the
    /// header and the data inside the file, and the name offset inside the
    /// section-name table (kmod rejects the section otherwise, even where the name is
    /// never read, as for the section of a CRC).
    #[inline]
    fn section_info(&self, idx: u16) -> Option<SectionInfo> {
        let info = self.header(idx)?;
        (u64::from(info.name) < self.names.1).then_some(info)
    }

    /// Header of section `idx`, if the index is valid and the section lies in the file
    /// (the name offset unchecked).
    #[inline]
    fn header(&self, idx: u16) -> Option<SectionInfo> {
        if idx == 0 || idx >= self.shnum {
            return None;
        }
        let entsize: u64 = if self.is64 { 64 } else { 40 };
        let base = usize::try_from(self.shoff + u64::from(idx) * entsize).ok()?;
        let e = self.endian;
        let info = if self.is64 {
            SectionInfo {
                name: self.data.pread_with(base, e).ok()?,
                offset: self.data.pread_with(base + 24, e).ok()?,
                size: self.data.pread_with(base + 32, e).ok()?,
            }
        } else {
            SectionInfo {
                name: self.data.pread_with(base, e).ok()?,
                offset: u64::from(self.data.pread_with::<u32>(base + 16, e).ok()?),
                size: u64::from(self.data.pread_with::<u32>(base + 20, e).ok()?),
            }
        };
        range(self.data, info.offset, info.size)?;
        Some(info)
    }

    /// Bytes of section `idx` (a symbol's `st_shndx`), if valid as kmod judges it when
    /// it reads a CRC there: a section whose name offset lies outside the section-name
    /// table is invalid too.
    pub fn section_by_index(&self, idx: u16) -> Option<&'a [u8]> {
        let info = self.section_info(idx)?;
        range(self.data, info.offset, info.size)
    }

    /// Bytes of the first valid section named `name` (kmod's `kmod_elf_get_section`:
    /// lowest index ≥ 1 whose header and data are in bounds and whose name offset is
    /// inside the name table).
    pub fn section(&self, name: &[u8]) -> Option<&'a [u8]> {
        let names = range(self.data, self.names.0, self.names.1)?;
        (1..self.shnum).find_map(|i| {
            let info = self.section_info(i)?;
            let n = names.get(usize::try_from(info.name).ok()?..)?;
            if cstr(n) == name {
                range(self.data, info.offset, info.size)
            } else {
                None
            }
        })
    }

    /// The sections depmod reads, found in one pass over the section table as kmod
    /// finds them when it opens a file (`kmod_elf_save_sections`): for each name, the
    /// first valid section of that name ([`Elf::section`]'s). kmod keeps only its offset
    /// and size, and every reader of these sections takes offset 0 for "not found": a
    /// section that starts at byte 0 of the file is `None` here, and a later section
    /// of the same name does not replace it.
    pub fn sections<const N: usize>(&self, wanted: [&[u8]; N]) -> [Option<&'a [u8]>; N] {
        let mut found = [None; N];
        let mut seen = [false; N];
        let Some(names) = range(self.data, self.names.0, self.names.1) else {
            return found;
        };
        let mut left = N;
        for i in 1..self.shnum {
            if left == 0 {
                break;
            }
            let Some(info) = self.section_info(i) else {
                continue;
            };
            let Some(n) = names.get(info.name as usize..) else {
                continue;
            };
            let name = cstr(n);
            for ((slot, seen), w) in found.iter_mut().zip(seen.iter_mut()).zip(&wanted) {
                if !*seen && name == *w {
                    *seen = true;
                    if info.offset != 0 {
                        *slot = range(self.data, info.offset, info.size);
                    }
                    left -= 1;
                }
            }
        }
        found
    }

    /// Size of one symbol table entry for this class.
    pub fn sym_size(&self) -> usize {
        if self.is64 {
            24
        } else {
            16
        }
    }

    /// Every entry of a symbol table section, in order (entry 0 included; a partial
    /// entry at the end is not one). The scan's innermost loop: each field is one
    /// load in the file's byte order, no per-field bounds check.
    pub fn symbols<'s>(&self, symtab: &'s [u8]) -> impl Iterator<Item = Sym> + 's {
        let (is64, little) = (self.is64, self.endian.is_little());
        symtab
            .chunks_exact(self.sym_size())
            .filter_map(move |entry| decode_sym(entry, is64, little))
    }

    /// The bytes from `offset` within `section` to the end of the file (empty
    /// past it): where a name starts, before it is measured.
    pub fn bytes_at(&self, section: &'a [u8], offset: u32) -> &'a [u8] {
        let start = section.as_ptr() as usize - self.data.as_ptr() as usize;
        self.data
            .get(start.saturating_add(offset as usize)..)
            .unwrap_or_default()
    }

    /// The C string starting at `offset` within `section` — like kmod, which reads a
    /// name with `strcmp`, the string may run past the section's end: it is cut at the
    /// first NUL or at the end of the file.
    pub fn string_at(&self, section: &'a [u8], offset: u32) -> &'a [u8] {
        cstr(self.bytes_at(section, offset))
    }

    /// Reads a 32- or 64-bit word in the file's byte order.
    pub fn word(&self, bytes: &[u8], offset: usize, wide: bool) -> Option<u64> {
        if wide {
            bytes.pread_with::<u64>(offset, self.endian).ok()
        } else {
            bytes
                .pread_with::<u32>(offset, self.endian)
                .ok()
                .map(u64::from)
        }
    }
}

/// The bytes of `s` up to (not including) its first NUL, or all of `s`.
///
/// Eight bytes at a time: in `m = (w - 0x01…01) & !w & 0x80…80` the lowest byte
/// flagged is the word's first zero byte (bytes below it are not zero, so no
/// borrow reaches it; flags above it may be false). Symbol and string tables are
/// walked name by name, and this is the scan's innermost loop.
#[inline]
pub fn cstr(s: &[u8]) -> &[u8] {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut words = s.chunks_exact(8);
    let mut at = 0;
    for w in &mut words {
        let Some(w) = w.first_chunk::<8>() else { break };
        let v = u64::from_le_bytes(*w);
        let zero = v.wrapping_sub(ONES) & !v & HIGHS;
        if zero != 0 {
            return s
                .get(..at + (zero.trailing_zeros() / 8) as usize)
                .unwrap_or(s);
        }
        at += 8;
    }
    match words.remainder().iter().position(|&b| b == 0) {
        Some(n) => s.get(..at + n).unwrap_or(s),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::cstr;

    /// Word-at-a-time or not, `cstr` ends where a byte-by-byte search does:
    /// every length through three words, a NUL at every place or none, bytes
    /// of every value around it (0x80 and 0x01 are what the word test leans on).
    #[test]
    fn cstr_stops_at_the_first_nul() {
        for len in 0..25usize {
            for fill in [b'a', 0x01, 0x80, 0xff] {
                for nul in (0..len).map(Some).chain([None]) {
                    let mut s = alloc::vec![fill; len];
                    if let Some(i) = nul {
                        s[i] = 0;
                        if i + 1 < len {
                            s[i + 1] = 0;
                        }
                    }
                    let want = s.iter().position(|&b| b == 0).unwrap_or(len);
                    assert_eq!(cstr(&s).len(), want, "len {len} fill {fill:#x} nul {nul:?}");
                }
            }
        }
    }
}
