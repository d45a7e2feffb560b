//! One module's bytes → what depmod needs from it: `.modinfo` records, exported
//! symbols (with CRCs) and imported symbols (with the CRCs it expects).
//!
//! [`scan`] borrows everything from the module image ([`ModuleScan`]); [`ModuleData`]
//! is the compact owned form kept after the image is gone (one small arena per
//! module), so a run never holds more than one decompressed image per worker.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Range;

use crate::decompress::Format;
use crate::elf::{cstr, Elf, ElfError, EM_SPARC, EM_SPARCV9, SHN_ABS, SHN_UNDEF};
use crate::wire::{Reader, Writer};

/// The `.modinfo` keys depmod acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoKey {
    /// `alias=`: modules.alias, modules.alias.bin, modules.devname.
    Alias,
    /// `softdep=`: modules.softdep.
    Softdep,
    /// `weakdep=`: modules.weakdep.
    Weakdep,
}

impl InfoKey {
    /// The key's byte in a module's record (see [`Body`]).
    fn tag(self) -> u8 {
        match self {
            InfoKey::Alias => 0,
            InfoKey::Softdep => 1,
            InfoKey::Weakdep => 2,
        }
    }
}

/// A symbol the module exports.
#[derive(Clone, Copy, Debug)]
pub struct Export<'a> {
    /// Name as stored in the module (before any `-P` prefix strip).
    pub name: &'a [u8],
    /// CRC from `__crc_<name>`, or 0 for `__ksymtab_strings` exports.
    pub crc: u64,
}

/// A symbol the module needs.
#[derive(Clone, Copy, Debug)]
pub struct Import<'a> {
    /// Name as stored in the module (a PPC64 `.` or the `-P` prefix still on it).
    pub name: &'a [u8],
    /// CRC the module was built against (from `__versions`), or 0.
    pub crc: u64,
    /// A weak reference: never reported as unknown, never CRC-checked.
    pub weak: bool,
}

/// Everything depmod reads from one module image, borrowed from it.
#[derive(Debug)]
pub struct ModuleScan<'a> {
    /// `alias`/`softdep`/`weakdep` records in section order (duplicates kept).
    pub modinfo: Vec<(InfoKey, &'a [u8])>,
    /// Exported symbols, or why they could not be read (kmod reports this one).
    pub exports: Result<Vec<Export<'a>>, ElfError>,
    /// Imported symbols: `.symtab` undefined entries, then unmatched `__versions`.
    pub imports: Vec<Import<'a>>,
}

/// Reads a (decompressed) module image. An image that is not a valid ELF file gives
/// the error kmod prints as "failed to load symbols"; such a module is still listed
/// in the outputs, with nothing in it.
pub fn scan(data: &[u8]) -> Result<ModuleScan<'_>, ElfError> {
    scan_with(data, &mut ScanBuffers::default())
}

/// The lists a scan fills, kept between scans: a worker scans thousands of
/// modules, and each scan took five lists from the allocator (and gave them
/// back) where one set of them, emptied and refilled, does. Between scans
/// they are empty; only their capacity is kept (see [`recycle`]).
#[derive(Default)]
pub struct ScanBuffers {
    modinfo: Vec<(InfoKey, &'static [u8])>,
    exports: Vec<Export<'static>>,
    imports: Vec<Import<'static>>,
    versions: Vec<Version<'static>>,
    by_name: Vec<(u32, u32)>,
}

impl ScanBuffers {
    /// Takes back the lists of a scan that is done with.
    fn give_back(&mut self, scan: ModuleScan<'_>) {
        self.modinfo = recycle(scan.modinfo);
        if let Ok(exports) = scan.exports {
            self.exports = recycle(exports);
        }
        self.imports = recycle(scan.imports);
    }
}

/// `v`, emptied, as a list of another lifetime: the same allocation, as the
/// standard library collects a `Vec` into one of the same layout in place
/// (a test checks that it does).
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// [`scan`] with lists from `bufs` (given back by [`ScanBuffers::give_back`]).
fn scan_with<'a>(data: &'a [u8], bufs: &mut ScanBuffers) -> Result<ModuleScan<'a>, ElfError> {
    let elf = Elf::parse(data)?;
    let [modinfo_s, strtab, symtab_s, versions_s, ksymtab_strings] = elf.sections([
        b".modinfo",
        b".strtab",
        b".symtab",
        b"__versions",
        b"__ksymtab_strings",
    ]);
    let s = Sections {
        symtab: match (symtab_s, strtab) {
            (Some(sym), Some(str_)) if sym.len() % elf.sym_size() == 0 => {
                Some((sym, str_, sym.len() / elf.sym_size()))
            }
            _ => None,
        },
        versions: versions_s,
        ksymtab_strings,
    };
    if s.symtab
        .is_some_and(|(_, _, n)| n > crate::elf::MAX_SYMBOLS)
    {
        return Err(ElfError::TooManySymbols);
    }
    let (crc_exports, imports) = symbol_table(&elf, &s, bufs);
    Ok(ModuleScan {
        modinfo: modinfo(modinfo_s, recycle(core::mem::take(&mut bufs.modinfo))),
        exports: exports(crc_exports, &s, bufs),
        imports,
    })
}

/// The sections depmod reads, found in one pass.
struct Sections<'a> {
    /// `.symtab`, `.strtab` and the entry count, when the symbol table is well formed.
    symtab: Option<(&'a [u8], &'a [u8], usize)>,
    versions: Option<&'a [u8]>,
    ksymtab_strings: Option<&'a [u8]>,
}

/// Splits a string section the way kmod does (`kmod_elf_get_strings`): leading NULs
/// dropped, strings separated by runs of NULs, a final unterminated string kept.
fn strings(section: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = skip_leading_nuls(section);
    if rest.len() <= 1 {
        rest = &[];
    }
    // Each string measured a word at a time (`cstr`), not byte by byte.
    core::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let s = cstr(rest);
        rest = rest.get(s.len() + 1..).unwrap_or_default();
        if !s.is_empty() {
            return Some(s);
        }
    })
}

/// `s` without its leading NULs, but keeping at least one byte.
fn skip_leading_nuls(mut s: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = s {
        if rest.is_empty() {
            break;
        }
        s = rest;
    }
    s
}

fn modinfo<'a>(
    section: Option<&'a [u8]>,
    mut list: Vec<(InfoKey, &'a [u8])>,
) -> Vec<(InfoKey, &'a [u8])> {
    let Some(section) = section else {
        return list;
    };
    // At most one record per NUL, and one more: room for all at once.
    let nuls: usize = section.iter().map(|&b| usize::from(b == 0)).sum();
    list.reserve(nuls + 1);
    list.extend(strings(section).filter_map(|rec| {
        // The key is what comes before the first `=`; a record without `=` is a key
        // with an empty value.
        let keyed = |key: &[u8]| match rec.strip_prefix(key) {
            Some([]) => Some(&[][..]),
            Some([b'=', value @ ..]) => Some(value),
            _ => None,
        };
        if let Some(value) = keyed(b"alias") {
            Some((InfoKey::Alias, value))
        } else if let Some(value) = keyed(b"softdep") {
            Some((InfoKey::Softdep, value))
        } else {
            keyed(b"weakdep").map(|value| (InfoKey::Weakdep, value))
        }
    }));
    list
}

fn exports<'a>(
    crc_exports: Result<Vec<Export<'a>>, Vec<Export<'a>>>,
    s: &Sections<'a>,
    bufs: &mut ScanBuffers,
) -> Result<Vec<Export<'a>>, ElfError> {
    let mut list = match crc_exports {
        Ok(list) => return Ok(list),
        Err(empty) => empty,
    };
    // Kernels built without MODVERSIONS: the names in `__ksymtab_strings`.
    let Some(section) = s.ksymtab_strings else {
        return Ok(list);
    };
    let s = skip_leading_nuls(section);
    if s.len() <= 1 {
        return Ok(list);
    }
    if s.last() != Some(&0) {
        bufs.exports = recycle(list);
        return Err(ElfError::Malformed);
    }
    list.extend(strings(s).map(|name| Export { name, crc: 0 }));
    Ok(list)
}

/// One pass over the symbol table for both of kmod's passes over it: the exports
/// from `__crc_<name>` symbols (`None` when kmod would fall back to
/// `__ksymtab_strings`: no usable symbol table, a symbol's name outside the string
/// table, or no `__crc_` symbol at all) and the imports (empty when kmod's import
/// pass gives up: an undefined symbol's name outside the string table).
fn symbol_table<'a>(
    elf: &Elf<'a>,
    s: &Sections<'a>,
    bufs: &mut ScanBuffers,
) -> (Result<Vec<Export<'a>>, Vec<Export<'a>>>, Vec<Import<'a>>) {
    let mut exports: Vec<Export<'a>> = recycle(core::mem::take(&mut bufs.exports));
    let Some((symtab, strtab, _)) = s.symtab else {
        return (Err(exports), recycle(core::mem::take(&mut bufs.imports)));
    };
    let mut exports_ok = true;
    let mut imports = Some(Imports::new(elf, s.versions, bufs));
    let sparc = matches!(elf.machine(), EM_SPARC | EM_SPARCV9);
    for sym in elf.symbols(symtab).skip(1) {
        let in_table = (sym.name as usize) < strtab.len();
        if exports_ok {
            // The prefix first: most symbols are not `__crc_` ones, and their names
            // need not be measured (a NUL cannot be part of the prefix).
            if !in_table {
                exports_ok = false;
            } else if elf.bytes_at(strtab, sym.name).starts_with(b"__crc_") {
                let name = elf.string_at(strtab, sym.name).get(6..).unwrap_or_default();
                let crc = match sym.shndx {
                    SHN_UNDEF | SHN_ABS => sym.value,
                    idx => elf
                        .section_by_index(idx)
                        .filter(|sec| sec.len() >= 4 && sym.value <= sec.len() as u64 - 4)
                        .and_then(|sec| elf.word(sec, sym.value as usize, false))
                        .unwrap_or(u64::MAX),
                };
                exports.push(Export { name, crc });
            }
        }
        // SPARC: STT_REGISTER entries are undefined but not imports.
        if sym.shndx == SHN_UNDEF && !(sparc && sym.kind() == 13) {
            if let Some(list) = &mut imports {
                if in_table {
                    list.add(elf.string_at(strtab, sym.name), sym.is_weak());
                } else {
                    imports = None;
                }
            }
        }
        if !exports_ok && imports.is_none() {
            break;
        }
    }
    let exports = if exports_ok && !exports.is_empty() {
        Ok(exports)
    } else {
        exports.clear();
        Err(exports)
    };
    let imports = match imports {
        Some(imports) => imports.finish(bufs),
        None => recycle(core::mem::take(&mut bufs.imports)),
    };
    (exports, imports)
}

/// One `__versions` entry: the CRC; the name, up to the first NUL of its field
/// (`None`: the field has no NUL, and kmod 34 never matches it); whether an import
/// matched it. One list for all of it: one allocation per module, not three.
struct Version<'a> {
    crc: u64,
    name: Option<&'a [u8]>,
    used: bool,
}

fn versions<'a>(
    elf: &Elf<'a>,
    section: Option<&'a [u8]>,
    mut list: Vec<Version<'a>>,
) -> Vec<Version<'a>> {
    let Some(section) = section else {
        return list;
    };
    if section.len() % 64 != 0 {
        return list;
    }
    let crc_len = if elf.is64() { 8 } else { 4 };
    list.extend(section.chunks_exact(64).map(|entry| {
        let field = entry.get(crc_len..).unwrap_or_default();
        let name = cstr(field);
        Version {
            crc: elf.word(entry, 0, elf.is64()).unwrap_or(0),
            // Shorter than the field: a NUL ends it.
            name: (name.len() < field.len()).then_some(name),
            used: false,
        }
    }));
    list
}

/// The imports as the symbol table gives them, each with the CRC of its
/// `__versions` entry, then the entries no import matched.
struct Imports<'a> {
    versions: Vec<Version<'a>>,
    /// The first entry of each name (kmod searches the entries linearly for each
    /// import and takes the first equal name): open addressing, a power of two
    /// long, (hash of the name, index + 1) or (0, 0) for an empty slot.
    by_name: Vec<(u32, u32)>,
    /// No name is in `versions` twice: the sequential guess is safe.
    unique: bool,
    /// The entry after the last one matched.
    next: usize,
    list: Vec<Import<'a>>,
}

impl<'a> Imports<'a> {
    fn new(elf: &Elf<'a>, versions_section: Option<&'a [u8]>, bufs: &mut ScanBuffers) -> Self {
        let versions = versions(
            elf,
            versions_section,
            recycle(core::mem::take(&mut bufs.versions)),
        );
        let mut list: Vec<Import<'a>> = recycle(core::mem::take(&mut bufs.imports));
        // Nearly every import has its `__versions` entry (with MODVERSIONS).
        list.reserve(versions.len());
        let mut by_name = core::mem::take(&mut bufs.by_name);
        by_name.clear();
        // kmod 34: a name field without a NUL inside never matches (`name` is None).
        let mut imports = Imports {
            by_name,
            unique: true,
            next: 0,
            list,
            versions,
        };
        if imports.versions.is_empty() {
            return imports;
        }
        let slots = (imports.versions.len() * 2).next_power_of_two();
        imports.by_name.resize(slots, (0, 0));
        for (i, v) in imports.versions.iter().enumerate() {
            let Some(name) = v.name else { continue };
            let h = name_hash(name);
            match imports.slot(name, h) {
                // The first entry of this name stays.
                Some((_, Some(_))) => imports.unique = false,
                Some((at, None)) => {
                    if let Some(slot) = imports.by_name.get_mut(at) {
                        *slot = (h, i as u32 + 1);
                    }
                }
                None => {}
            }
        }
        imports
    }

    #[inline]
    fn name_of(&self, j: usize) -> Option<&'a [u8]> {
        self.versions.get(j).and_then(|v| v.name)
    }

    /// Where `name` (hashed to `h`) is in `by_name`: its slot, and the entry
    /// there, or the empty slot it would take. Terminates: the table is never
    /// more than half full. `None` only for an empty table.
    #[inline(always)]
    fn slot(&self, name: &[u8], h: u32) -> Option<(usize, Option<usize>)> {
        let mask = self.by_name.len().checked_sub(1)?;
        let mut at = h as usize;
        loop {
            at &= mask;
            match *self.by_name.get(at)? {
                (_, 0) => return Some((at, None)),
                (k, j) if k == h && self.name_of(j as usize - 1) == Some(name) => {
                    return Some((at, Some(j as usize - 1)))
                }
                _ => at += 1,
            }
        }
    }

    /// The first entry named `name`.
    #[inline]
    fn find(&self, name: &[u8]) -> Option<usize> {
        self.slot(name, name_hash(name))?.1
    }

    /// An undefined symbol (empty names are not imports).
    fn add(&mut self, name: &'a [u8], weak: bool) {
        if name.is_empty() {
            return;
        }
        let mut crc = 0;
        // modpost writes `__versions` in the order the imports come in the symbol
        // table, so the entry after the last one matched is nearly always the next
        // import's: tried first, it spares the hash and the search. Only when no
        // name is there twice, where the one equal name is the first (kmod's).
        let found = if self.unique && self.name_of(self.next) == Some(name) {
            Some(self.next)
        } else {
            self.find(name)
        };
        if let Some(j) = found {
            if let Some(v) = self.versions.get_mut(j) {
                crc = v.crc;
                v.used = true;
            }
            self.next = j + 1;
        }
        self.list.push(Import { name, crc, weak });
    }

    /// The list, with the `__versions` entries no import matched after it; the
    /// tables back to `bufs`.
    fn finish(mut self, bufs: &mut ScanBuffers) -> Vec<Import<'a>> {
        let mut rejected = false;
        for v in &self.versions {
            if v.used {
                continue;
            }
            let Some(name) = v.name else {
                // No NUL in the field: kmod 34 rejects the whole list.
                rejected = true;
                break;
            };
            self.list.push(Import {
                name,
                crc: v.crc,
                weak: false,
            });
        }
        if rejected {
            self.list.clear();
        }
        bufs.versions = recycle(self.versions);
        bufs.by_name = self.by_name;
        self.list
    }
}

/// A cheap hash to index `__versions` names, eight bytes at a time (a name of
/// eight bytes or more ends with its last eight, overlapping the word before).
#[inline]
fn name_hash(s: &[u8]) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mix = |h: u64, w: &[u8; 8]| (h.rotate_left(5) ^ u64::from_le_bytes(*w)).wrapping_mul(K);
    let mut h = s.len() as u64;
    let mut words = s.chunks_exact(8);
    for w in &mut words {
        if let Some(w) = w.first_chunk() {
            h = mix(h, w);
        }
    }
    if !words.remainder().is_empty() {
        let last = match s.last_chunk::<8>() {
            Some(w) => *w,
            None => {
                let mut w = [0u8; 8];
                for (d, &b) in w.iter_mut().zip(s) {
                    *d = b;
                }
                w
            }
        };
        h = mix(h, &last);
    }
    (h >> 32) as u32
}

/// Why a module contributes nothing but its name to the outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The image is not ELF (kmod: ENOEXEC).
    NotElf,
    /// The image is malformed, empty or too short (kmod: EINVAL).
    Malformed,
    /// The file could not be read; the host keeps the OS error number.
    Io(i32),
    /// The compressed file could not be decompressed.
    Decompress(crate::decompress::Error),
    /// The file is larger than the module size limit.
    TooLarge,
    /// The symbol table has more entries than the limit.
    TooManySymbols,
}

impl From<ElfError> for LoadError {
    fn from(e: ElfError) -> Self {
        match e {
            ElfError::NotElf => LoadError::NotElf,
            ElfError::Malformed => LoadError::Malformed,
            ElfError::TooManySymbols => LoadError::TooManySymbols,
        }
    }
}

/// A module's record: what [`ModuleData::encode`] writes after the error tag, and
/// what a scan's result is kept as. Little-endian, every name in one arena:
///
/// ```text
/// arena (u32 length, bytes)
/// u32 count, then per modinfo entry:  key u8, start u32, end u32
/// u32 count, then per export:         start u32, end u32, crc u64
/// u32 count, then per import:         start u32, end u32, crc u64, weak u8
/// ```
///
/// (start, end) is a span of the arena. One buffer per module, not one per list,
/// and the form the module cache stores: a record taken from the cache is used
/// where it lies in the cache file's bytes, not copied.
#[derive(Clone, Debug)]
enum Body {
    /// Made by a scan (or empty: a module with nothing in it).
    Owned(Vec<u8>),
    /// A span of a cache file's bytes.
    Shared(Arc<Vec<u8>>, Range<usize>),
}

/// Sizes of one entry of each list (see [`Body`]).
const MODINFO_ENTRY: usize = 9;
const EXPORT_ENTRY: usize = 16;
const IMPORT_ENTRY: usize = 17;

/// The record of a module with nothing in it: an empty arena, three empty lists.
const EMPTY_BODY: [u8; 16] = [0; 16];

/// Where the parts of a [`Body`] lie, found once when it is made or checked.
#[derive(Clone, Copy, Debug, Default)]
struct Layout {
    arena: (usize, usize),
    modinfo: (usize, usize),
    exports: (usize, usize),
    imports: (usize, usize),
}

impl Layout {
    /// Checks `body` end to end (every span inside the arena, every key and flag
    /// one that [`ModuleData::encode`] writes, nothing after the lists) and says
    /// where its parts are. `None` for anything else.
    fn check(body: &[u8]) -> Option<Layout> {
        let mut r = Reader(body);
        let at = |r: &Reader<'_>| body.len() - r.0.len();
        let arena_len = r.bytes()?.len();
        let arena = (at(&r) - arena_len, arena_len);
        // Each entry given here is at least eight bytes long.
        let span_ok = |e: &[u8]| -> Option<()> {
            let (s, t) = (le32(e, 0) as usize, le32(e, 4) as usize);
            (s <= t && t <= arena_len).then_some(())
        };
        let n = r.count(MODINFO_ENTRY)?;
        let modinfo = (at(&r), n);
        for e in r.take(n * MODINFO_ENTRY)?.chunks_exact(MODINFO_ENTRY) {
            if *e.first()? > 2 {
                return None;
            }
            span_ok(e.get(1..)?)?;
        }
        let n = r.count(EXPORT_ENTRY)?;
        let exports = (at(&r), n);
        for e in r.take(n * EXPORT_ENTRY)?.chunks_exact(EXPORT_ENTRY) {
            span_ok(e)?;
        }
        let n = r.count(IMPORT_ENTRY)?;
        let imports = (at(&r), n);
        for e in r.take(n * IMPORT_ENTRY)?.chunks_exact(IMPORT_ENTRY) {
            span_ok(e)?;
            if *e.get(16)? > 1 {
                return None;
            }
        }
        r.is_empty().then_some(Layout {
            arena,
            modinfo,
            exports,
            imports,
        })
    }
}

/// The owned, compact result of scanning one module: its [`Body`], with where
/// each part lies in it.
#[derive(Clone, Default)]
pub struct ModuleData {
    body: Option<Body>,
    layout: Layout,
    /// Set when kmod would print "failed to load symbols from …".
    pub error: Option<LoadError>,
}

impl core::fmt::Debug for ModuleData {
    /// What the module holds, whatever buffer holds it.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let info = |k| self.info(k).collect::<Vec<_>>();
        f.debug_struct("ModuleData")
            .field("alias", &info(InfoKey::Alias))
            .field("softdep", &info(InfoKey::Softdep))
            .field("weakdep", &info(InfoKey::Weakdep))
            .field("exports", &self.exports().collect::<Vec<_>>())
            .field("imports", &self.imports().collect::<Vec<_>>())
            .field("error", &self.error)
            .finish()
    }
}

/// A little-endian u32 at `at` of `b` (0 past the end: a checked body never is).
#[inline]
fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|w| w.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

#[inline]
fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|w| w.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

impl ModuleData {
    /// The data of a module that could not be read at all.
    pub fn failed(error: LoadError) -> Self {
        ModuleData {
            error: Some(error),
            ..Default::default()
        }
    }

    /// Scans `image` and copies what depmod keeps.
    pub fn from_image(image: &[u8]) -> Self {
        Self::from_image_with(image, &mut ScanBuffers::default())
    }

    /// [`Self::from_image`] with the scan's lists taken from `bufs` and given
    /// back (a worker keeps one `ScanBuffers` for all its modules).
    pub fn from_image_with(image: &[u8], bufs: &mut ScanBuffers) -> Self {
        match scan_with(image, bufs) {
            Ok(scan) => {
                let data = Self::from_scan(&scan);
                bufs.give_back(scan);
                data
            }
            Err(e) => Self::failed(e.into()),
        }
    }

    /// Copies a borrowed scan into owned form: one buffer (see [`Body`]).
    pub fn from_scan(scan: &ModuleScan<'_>) -> Self {
        let (exports, error): (&[Export<'_>], _) = match &scan.exports {
            Ok(list) => (list, None),
            Err(e) => (&[], Some(LoadError::from(*e))),
        };
        let arena_len = scan.modinfo.iter().map(|m| m.1.len()).sum::<usize>()
            + exports.iter().map(|e| e.name.len()).sum::<usize>()
            + scan.imports.iter().map(|i| i.name.len()).sum::<usize>();
        // Spans are u32: an image whose names add up to more (only a crafted
        // one, its names overlapping) is refused like an over-large file.
        if u32::try_from(arena_len).is_err() {
            return Self::failed(LoadError::TooLarge);
        }
        let size = 16
            + arena_len
            + MODINFO_ENTRY * scan.modinfo.len()
            + EXPORT_ENTRY * exports.len()
            + IMPORT_ENTRY * scan.imports.len();
        let mut body = Vec::with_capacity(size);
        let mut w = Writer(&mut body);
        w.u32(arena_len as u32);
        let arena = (4, arena_len);
        for &(_, v) in &scan.modinfo {
            w.0.extend_from_slice(v);
        }
        for e in exports {
            w.0.extend_from_slice(e.name);
        }
        for i in &scan.imports {
            w.0.extend_from_slice(i.name);
        }
        // The spans, in the order the names went in (all below `arena_len`).
        let mut at = 0u32;
        let mut span = |w: &mut Writer<'_>, len: usize| {
            w.u32(at);
            at += len as u32;
            w.u32(at);
        };
        let modinfo = (w.0.len() + 4, scan.modinfo.len());
        w.u32(scan.modinfo.len() as u32);
        for &(k, v) in &scan.modinfo {
            w.u8(k.tag());
            span(&mut w, v.len());
        }
        let exports_at = (w.0.len() + 4, exports.len());
        w.u32(exports.len() as u32);
        for e in exports {
            span(&mut w, e.name.len());
            w.u64(e.crc);
        }
        let imports = (w.0.len() + 4, scan.imports.len());
        w.u32(scan.imports.len() as u32);
        for i in &scan.imports {
            span(&mut w, i.name.len());
            w.u64(i.crc);
            w.u8(u8::from(i.weak));
        }
        ModuleData {
            body: Some(Body::Owned(body)),
            layout: Layout {
                arena,
                modinfo,
                exports: exports_at,
                imports,
            },
            error,
        }
    }

    /// The record's bytes (empty for a module with nothing in it).
    #[inline]
    fn body(&self) -> &[u8] {
        match &self.body {
            None => &[],
            Some(Body::Owned(v)) => v,
            Some(Body::Shared(buf, range)) => buf.get(range.clone()).unwrap_or_default(),
        }
    }

    /// The `n` entries of `size` bytes at `(at, n)` of the body.
    #[inline]
    fn entries(&self, (at, n): (usize, usize), size: usize) -> core::slice::ChunksExact<'_, u8> {
        self.body()
            .get(at..at + n * size)
            .unwrap_or_default()
            .chunks_exact(size)
    }

    /// The name a span (the first eight bytes of `entry`) gives.
    #[inline]
    fn name(&self, entry: &[u8]) -> &[u8] {
        let (start, len) = self.layout.arena;
        let arena = self.body().get(start..start + len).unwrap_or_default();
        arena
            .get(le32(entry, 0) as usize..le32(entry, 4) as usize)
            .unwrap_or_default()
    }

    /// Modinfo values with key `key`, in section order.
    pub fn info(&self, key: InfoKey) -> impl Iterator<Item = &[u8]> {
        let tag = key.tag();
        self.entries(self.layout.modinfo, MODINFO_ENTRY)
            .filter(move |e| e.first() == Some(&tag))
            .map(|e| self.name(e.get(1..).unwrap_or_default()))
    }

    /// Exported symbols (name, CRC) in export-list order.
    pub fn exports(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.entries(self.layout.exports, EXPORT_ENTRY)
            .map(|e| (self.name(e), le64(e, 8)))
    }

    /// Imported symbols (name, CRC, weak) in import-list order.
    pub fn imports(&self) -> impl Iterator<Item = (&[u8], u64, bool)> {
        self.entries(self.layout.imports, IMPORT_ENTRY)
            .map(|e| (self.name(e), le64(e, 8), e.get(16) == Some(&1)))
    }

    /// Appends this module's record for the module cache (`crate::cache`).
    /// `None` (nothing appended) when the result depends on more than the file's
    /// bytes — an I/O error, or a format this build cannot decode — and so must not
    /// be kept.
    pub fn encode(&self, out: &mut Vec<u8>) -> Option<()> {
        use crate::decompress::Error as D;
        let (tag, format) = match self.error {
            None => (0, None),
            Some(LoadError::NotElf) => (1, None),
            Some(LoadError::Malformed) => (2, None),
            Some(LoadError::TooLarge) => (3, None),
            Some(LoadError::TooManySymbols) => (4, None),
            Some(LoadError::Decompress(D::Corrupt(f))) => (5, Some(f)),
            Some(LoadError::Decompress(D::Truncated(f))) => (6, Some(f)),
            Some(LoadError::Decompress(D::TooLarge(f))) => (7, Some(f)),
            Some(LoadError::Io(_)) | Some(LoadError::Decompress(D::Unsupported(_))) => return None,
        };
        let mut w = Writer(out);
        w.u8(tag);
        if let Some(f) = format {
            w.u8(format_tag(f));
        }
        let body = self.body();
        out.extend_from_slice(if body.is_empty() { &EMPTY_BODY } else { body });
        Some(())
    }

    /// Reads back a record [`Self::encode`] wrote (copied); `None` unless `bytes`
    /// is exactly one well-formed record (every span inside the arena).
    pub fn decode(bytes: &[u8]) -> Option<ModuleData> {
        let (error, body, layout) = Self::check_record(bytes)?;
        Some(ModuleData {
            body: Some(Body::Owned(body.to_vec())),
            layout,
            error,
        })
    }

    /// [`Self::decode`] of the record at `range` of `file` (a cache file's bytes),
    /// used where it lies: the module data shares the file's buffer.
    pub fn decode_shared(file: &Arc<Vec<u8>>, range: Range<usize>) -> Option<ModuleData> {
        let (error, body, layout) = Self::check_record(file.get(range.clone())?)?;
        let start = range.end - body.len();
        Some(ModuleData {
            body: Some(Body::Shared(file.clone(), start..range.end)),
            layout,
            error,
        })
    }

    /// A record's error tag, the body after it, and where the body's parts are
    /// ([`Layout::check`]).
    fn check_record(bytes: &[u8]) -> Option<(Option<LoadError>, &[u8], Layout)> {
        use crate::decompress::Error as D;
        let mut r = Reader(bytes);
        let error = match r.u8()? {
            0 => None,
            1 => Some(LoadError::NotElf),
            2 => Some(LoadError::Malformed),
            3 => Some(LoadError::TooLarge),
            4 => Some(LoadError::TooManySymbols),
            tag @ 5..=7 => {
                let f = format_of_tag(r.u8()?)?;
                Some(LoadError::Decompress(match tag {
                    5 => D::Corrupt(f),
                    6 => D::Truncated(f),
                    _ => D::TooLarge(f),
                }))
            }
            _ => return None,
        };
        Some((error, r.0, Layout::check(r.0)?))
    }
}

fn format_tag(f: Format) -> u8 {
    match f {
        Format::Plain => 0,
        Format::Gzip => 1,
        Format::Xz => 2,
        Format::Zstd => 3,
    }
}

fn format_of_tag(t: u8) -> Option<Format> {
    Some(match t {
        0 => Format::Plain,
        1 => Format::Gzip,
        2 => Format::Xz,
        3 => Format::Zstd,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `recycle` keeps the allocation: what `ScanBuffers` is for.
    #[test]
    fn a_recycled_list_is_the_same_allocation_emptied() {
        let text = alloc::vec![b'x'; 64];
        let mut list: Vec<(InfoKey, &[u8])> = Vec::with_capacity(100);
        list.push((InfoKey::Alias, &text[..]));
        let (at, cap) = (list.as_ptr() as usize, list.capacity());
        let kept: Vec<(InfoKey, &'static [u8])> = recycle(list);
        assert!(kept.is_empty());
        assert_eq!((kept.as_ptr() as usize, kept.capacity()), (at, cap));
    }

    /// A scan with buffers that earlier scans used gives what a fresh one does.
    #[test]
    fn scans_with_used_buffers_are_fresh_scans() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let mut bufs = ScanBuffers::default();
        for image in [&exe[..], b"not elf", &exe[..exe.len() / 2], &exe[..]] {
            let fresh = ModuleData::from_image(image);
            let reused = ModuleData::from_image_with(image, &mut bufs);
            assert_eq!(std::format!("{fresh:?}"), std::format!("{reused:?}"));
        }
    }
}
