//! Diagnostics as data. The core never prints: it returns these, in the order kmod
//! would print them, and the binary words them (`depmod: LEVEL: …`).
//!
//! Modules are named by their index in the module list the caller passed in (the
//! caller knows their paths); everything else is carried as bytes.

use alloc::vec::Vec;

use crate::scan::LoadError;

/// One message depmod prints. Variants hold what the message needs; the binary owns
/// the wording and the level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Diag {
    /// depmod.d: `<file>:<line>: ignoring bad line starting with '<cmd>'` (ERROR).
    ConfigBadLine(Vec<u8>, u32, Vec<u8>),
    /// depmod.d: `override kernel did not match <ver>` (INFO).
    OverrideNoMatch(Vec<u8>, u32, Vec<u8>),
    /// depmod.d: `external directory did not match <ver>` (INFO).
    ExternalNoMatch(Vec<u8>, u32, Vec<u8>),
    /// depmod.d: `command <cmd> not implemented yet` (INFO).
    ConfigNotImplemented(Vec<u8>, u32, Vec<u8>),
    /// `modules.order:<n> corrupted line misses '\n'` (ERROR); no reordering is done.
    OrderCorrupted(u32),
    /// `failed to load symbols from <path>: <reason>` (ERROR) for module `.0`.
    LoadFailed(u32, LoadError),
    /// `<path> needs unknown symbol <sym>` (WARNING, `-e`).
    UnknownSymbol(u32, Vec<u8>),
    /// `<path> disagrees about version of symbol <sym>` (WARNING, `-e -E`).
    VersionMismatch(u32, Vec<u8>),
    /// Verbose, on stdout: `<importer> needs "<sym>": <provider>`.
    Needs(u32, Vec<u8>, u32),
    /// `Cycle detected: a -> b -> a` (ERROR): the modules of the chain, in order,
    /// ending with the first one again.
    Cycle(Vec<u32>),
    /// `Found <n> modules in dependency cycles!` (ERROR).
    CycleCount(usize),
    /// kmod would abort (assertion) or never finish reporting cycles; we stop here.
    CycleReportAborted,
    /// `Unmatched bracket in <alias>` (WARNING).
    UnmatchedBracket(Vec<u8>),
    /// `-w`: `duplicate module deps:\n<line>` (WARNING).
    DuplicateDep(Vec<u8>),
    /// `-w`: `duplicate module alias:\n<alias> <modname>` (WARNING).
    DuplicateAlias(Vec<u8>, Vec<u8>),
    /// `-w`: `duplicate module syms:\n<symbol:name> <modname>` (WARNING).
    DuplicateSym(Vec<u8>, Vec<u8>),
    /// `Invalid modules.builtin line: <line>` (ERROR); the line keeps its newline.
    BuiltinBadLine(Vec<u8>),
    /// `Could not flush stream: 28. Partial content: <bytes>` (WARNING).
    FlushStream(Vec<u8>),
    /// `Module '<m>' has devname (<d>) but lacks major and minor information. Ignoring.`
    DevnameNoMajor(Vec<u8>, Vec<u8>),
    /// `<file>:<n> Invalid symbol version <tok>: Success` (ERROR, Module.symvers).
    SymversBadCrc(u32, Vec<u8>),
    /// `<file>:<n>: invalid line: <line>` (ERROR, System.map); the line keeps its newline.
    SystemMapBadLine(u32, Vec<u8>),
    /// Module `.0`'s alias `.1` is not 7-bit ASCII, which the index cannot hold: it
    /// is left out of modules.alias and modules.alias.bin (ERROR; kmod: FATAL).
    NonAsciiAlias(u32, Vec<u8>),
    /// Module `.0`'s exported symbol `.1` is not 7-bit ASCII, or is empty: left
    /// out of modules.symbols and modules.symbols.bin (ERROR; kmod stops the run:
    /// FATAL, or for an empty name "Could not write index", exit 1).
    UnindexableSymbol(u32, Vec<u8>),
    /// The module file `.0`'s path (or name) is not 7-bit ASCII: it cannot be a
    /// key or a value of modules.dep.bin, so the module is left out (ERROR; kmod:
    /// FATAL).
    NonAsciiModule(Vec<u8>),
    /// A `modules.builtin` line that is not 7-bit ASCII: left out of
    /// modules.builtin.bin (ERROR; kmod: FATAL). The line keeps its newline.
    NonAsciiBuiltin(Vec<u8>),
    /// A `modules.builtin.modinfo` alias `.1` of built-in module `.0` that is not
    /// 7-bit ASCII: left out of modules.builtin.alias.bin (ERROR; kmod: FATAL).
    NonAsciiBuiltinAlias(Vec<u8>, Vec<u8>),
}
