//! Message wording and levels: `depmod: LEVEL: text` on stderr, as kmod prints it.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::sys::{self, Errno};

use crate::diag::Diag;
use crate::scan::LoadError;

/// Syslog-style levels kmod uses; a message shows when its level ≤ the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Printed, then exit 1.
    Fatal = 2,
    /// Always shown.
    Error = 3,
    /// Shown by default.
    Warning = 4,
    /// `-v`.
    Notice = 5,
    /// `-vv`.
    Info = 6,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Fatal => "FATAL",
            Level::Error => "ERROR",
            Level::Warning => "WARNING",
            Level::Notice => "NOTICE",
            Level::Info => "INFO",
        }
    }
}

/// Prints diagnostics with the program's name and the verbosity threshold.
pub struct Report {
    prog: String,
    threshold: AtomicU32,
    fatal: AtomicBool,
}

impl Report {
    /// `prog` is argv[0]'s basename, as kmod's `program_invocation_short_name`.
    pub fn new(prog: String) -> Self {
        Report {
            prog,
            threshold: AtomicU32::new(Level::Warning as u32),
            fatal: AtomicBool::new(false),
        }
    }

    /// Each `-v` raises the threshold by one.
    pub fn set_verbosity(&self, v: u32) {
        self.threshold
            .store(Level::Warning as u32 + v, Ordering::Relaxed);
    }

    /// How many `-v` were given.
    pub fn verbosity(&self) -> u32 {
        self.threshold.load(Ordering::Relaxed) - Level::Warning as u32
    }

    /// Has a FATAL message been printed (the run is ending on the spot)?
    pub fn fatal_seen(&self) -> bool {
        self.fatal.load(Ordering::Relaxed)
    }

    /// Prints one message if its level is shown.
    pub fn log(&self, level: Level, args: fmt::Arguments<'_>) {
        if level == Level::Fatal {
            self.fatal.store(true, Ordering::Relaxed);
        }
        if level as u32 > self.threshold.load(Ordering::Relaxed) {
            return;
        }
        let line = format!("{}: {}: {}\n", self.prog, level.word(), args);
        let _ = sys::write_stderr(line.as_bytes());
    }

    /// A message with bytes that may not be UTF-8 (paths, module data): written raw.
    pub fn log_bytes(&self, level: Level, parts: &[&[u8]]) {
        if level == Level::Fatal {
            self.fatal.store(true, Ordering::Relaxed);
        }
        if level as u32 > self.threshold.load(Ordering::Relaxed) {
            return;
        }
        let mut line = Vec::with_capacity(128);
        line.extend_from_slice(self.prog.as_bytes());
        line.extend_from_slice(b": ");
        line.extend_from_slice(level.word().as_bytes());
        line.extend_from_slice(b": ");
        for p in parts {
            line.extend_from_slice(p);
        }
        line.push(b'\n');
        let _ = sys::write_stderr(&line);
    }

    /// FATAL: the caller exits 1 right after.
    pub fn fatal(&self, msg: impl fmt::Display) {
        self.log(Level::Fatal, format_args!("{msg}"));
    }
    /// ERROR.
    pub fn error(&self, msg: impl fmt::Display) {
        self.log(Level::Error, format_args!("{msg}"));
    }
    /// WARNING.
    pub fn warning(&self, msg: impl fmt::Display) {
        self.log(Level::Warning, format_args!("{msg}"));
    }
    /// INFO.
    pub fn info(&self, msg: impl fmt::Display) {
        self.log(Level::Info, format_args!("{msg}"));
    }

    /// Words a core diagnostic. `module_path(i)` gives module `i`'s scan path and
    /// `module_name(i)` its name; `dir` is the module directory (for modules.order);
    /// `file` the input file the diagnostic is about (config, symvers, System.map).
    pub fn diag(&self, d: &Diag, ctx: &DiagContext<'_>) {
        use Level::*;
        let module = |i: &u32| ctx.modules.get(*i as usize);
        let path = |i: &u32| module(i).map_or(&[][..], |m| m.path.as_slice());
        let name = |i: &u32| module(i).map_or(&[][..], |m| m.name.as_slice());
        match d {
            Diag::ConfigBadLine(f, n, cmd) => self.log_bytes(
                Error,
                &[f, format!(":{n}: ignoring bad line starting with '").as_bytes(), cmd, b"'"],
            ),
            Diag::OverrideNoMatch(f, n, v) => self.log_bytes(
                Info,
                &[f, format!(":{n}: override kernel did not match ").as_bytes(), v],
            ),
            Diag::ExternalNoMatch(f, n, v) => self.log_bytes(
                Info,
                &[f, format!(":{n}: external directory did not match ").as_bytes(), v],
            ),
            Diag::ConfigNotImplemented(f, n, c) => self.log_bytes(
                Info,
                &[f, format!(":{n}: command ").as_bytes(), c, b" not implemented yet"],
            ),
            Diag::OrderCorrupted(n) => self.log_bytes(
                Error,
                &[ctx.dir, format!("/modules.order:{n} corrupted line misses '\\n'").as_bytes()],
            ),
            Diag::LoadFailed(i, e) => {
                self.log_bytes(Error, &[b"failed to load symbols from ", path(i), b": ", load_error(e).as_bytes()])
            }
            Diag::UnknownSymbol(i, s) => self.log_bytes(Warning, &[path(i), b" needs unknown symbol ", s]),
            Diag::VersionMismatch(i, s) => {
                self.log_bytes(Warning, &[path(i), b" disagrees about version of symbol ", s])
            }
            Diag::Needs(i, s, p) => {
                let mut line = Vec::new();
                for part in [path(i), b" needs \"", s, b"\": ", path(p), b"\n"] {
                    line.extend_from_slice(part);
                }
                let _ = sys::write_stdout(&line);
            }
            Diag::Cycle(chain) => {
                let mut text = Vec::new();
                for (k, m) in chain.iter().enumerate() {
                    if k > 0 {
                        text.extend_from_slice(b" -> ");
                    }
                    text.extend_from_slice(name(m));
                }
                self.log_bytes(Error, &[b"Cycle detected: ", &text]);
            }
            Diag::CycleCount(n) => self.error(format_args!("Found {n} modules in dependency cycles!")),
            Diag::CycleReportAborted => self.error(
                "Dependency cycles are too interlocked to report them all (kmod would abort or loop here); nothing was written",
            ),
            Diag::UnmatchedBracket(a) => self.log_bytes(Warning, &[b"Unmatched bracket in ", a]),
            Diag::DuplicateDep(l) => self.log_bytes(Warning, &[b"duplicate module deps:\n", l]),
            Diag::DuplicateAlias(a, m) => self.log_bytes(Warning, &[b"duplicate module alias:\n", a, b" ", m]),
            Diag::DuplicateSym(s, m) => self.log_bytes(Warning, &[b"duplicate module syms:\n", s, b" ", m]),
            Diag::BuiltinBadLine(l) => self.log_bytes(Error, &[b"Invalid modules.builtin line: ", l]),
            Diag::FlushStream(p) => {
                self.log_bytes(Warning, &[b"Could not flush stream: 28. Partial content: ", p])
            }
            Diag::DevnameNoMajor(m, d) => self.log_bytes(
                Error,
                &[b"Module '", m, b"' has devname (", d, b") but lacks major and minor information. Ignoring."],
            ),
            Diag::SymversBadCrc(n, tok) => self.log_bytes(
                Error,
                &[
                    ctx.file,
                    format!(":{n} Invalid symbol version ").as_bytes(),
                    tok,
                    // kmod prints a stale errno here: the ENOENT its library context
                    // left behind while probing for configuration files.
                    b": No such file or directory",
                ],
            ),
            Diag::SystemMapBadLine(n, l) => {
                self.log_bytes(Error, &[ctx.file, format!(":{n}: invalid line: ").as_bytes(), l])
            }
            Diag::NonAsciiAlias(i, a) => self.log_bytes(
                Error,
                &[path(i), b": alias ", a, &not_ascii(a), b"modules.alias and modules.alias.bin"],
            ),
            Diag::UnindexableSymbol(i, s) if s.is_empty() => self.log_bytes(
                Error,
                &[
                    path(i),
                    b": an exported symbol with an empty name cannot be indexed; left out of ",
                    b"modules.symbols and modules.symbols.bin",
                ],
            ),
            Diag::UnindexableSymbol(i, s) => self.log_bytes(
                Error,
                &[path(i), b": symbol ", s, &not_ascii(s), b"modules.symbols and modules.symbols.bin"],
            ),
            Diag::NonAsciiModule(p) => {
                self.log_bytes(Error, &[p, b": the path", &not_ascii(p), b"every output: module skipped"])
            }
            Diag::NonAsciiBuiltin(l) => {
                let l = l.strip_suffix(b"\n").unwrap_or(l);
                self.log_bytes(
                    Error,
                    &[ctx.dir, b"/modules.builtin: ", l, &not_ascii(l), b"modules.builtin.bin"],
                )
            }
            Diag::NonAsciiBuiltinAlias(m, a) => self.log_bytes(
                Error,
                &[
                    ctx.dir,
                    b"/modules.builtin.modinfo: alias ",
                    a,
                    b" of ",
                    m,
                    &not_ascii(a),
                    b"modules.builtin.alias.bin",
                ],
            ),
        }
    }
}

/// The middle of the messages about keys an index cannot hold: which byte, and
/// that the entry is left out (of what, the caller appends).
fn not_ascii(s: &[u8]) -> Vec<u8> {
    let byte = s.iter().find(|b| !b.is_ascii()).copied().unwrap_or(0);
    format!(
        " has the byte 0x{byte:02x}, which is not 7-bit ASCII and cannot be indexed; left out of "
    )
    .into_bytes()
}

/// What [`Report::diag`] needs to name things.
#[derive(Default)]
pub struct DiagContext<'a> {
    /// The modules by index (their scan paths and names).
    pub modules: &'a [crate::modset::Module],
    /// The module directory.
    pub dir: &'a [u8],
    /// The input file a parser diagnostic is about.
    pub file: &'a [u8],
}

/// The text kmod prints for a module that could not be loaded.
pub fn load_error(e: &LoadError) -> String {
    match e {
        LoadError::NotElf => strerror(libc::ENOEXEC),
        LoadError::Malformed => strerror(libc::EINVAL),
        LoadError::Io(errno) => strerror(*errno),
        LoadError::TooLarge => format!(
            "file is larger than {} MiB",
            crate::host::MAX_MODULE_SIZE >> 20
        ),
        LoadError::TooManySymbols => format!(
            "symbol table has more than {} entries",
            crate::elf::MAX_SYMBOLS
        ),
        LoadError::Decompress(d) => {
            use crate::decompress::Error;
            match d {
                Error::Unsupported(f) => {
                    format!("{} decompression is not built into this depmod", f.name())
                }
                Error::Corrupt(f) => format!("corrupt {} data", f.name()),
                Error::Truncated(f) => format!("truncated {} data", f.name()),
                Error::TooLarge(f) => format!(
                    "{} data decompresses to more than {} MiB",
                    f.name(),
                    crate::host::MAX_MODULE_SIZE >> 20
                ),
            }
        }
    }
}

/// glibc's `strerror` text for the errors depmod can meet (kmod is linked with glibc;
/// a static musl build must still print glibc's words).
pub fn strerror(errno: i32) -> String {
    let s = match errno {
        libc::EPERM => "Operation not permitted",
        libc::ENOENT => "No such file or directory",
        libc::EIO => "Input/output error",
        libc::ENXIO => "No such device or address",
        libc::E2BIG => "Argument list too long",
        libc::ENOEXEC => "Exec format error",
        libc::EBADF => "Bad file descriptor",
        libc::EAGAIN => "Resource temporarily unavailable",
        libc::ENOMEM => "Cannot allocate memory",
        libc::EACCES => "Permission denied",
        libc::EFAULT => "Bad address",
        libc::EBUSY => "Device or resource busy",
        libc::EEXIST => "File exists",
        libc::EXDEV => "Invalid cross-device link",
        libc::ENODEV => "No such device",
        libc::ENOTDIR => "Not a directory",
        libc::EISDIR => "Is a directory",
        libc::EINVAL => "Invalid argument",
        libc::ENFILE => "Too many open files in system",
        libc::EMFILE => "Too many open files",
        libc::ETXTBSY => "Text file busy",
        libc::EFBIG => "File too large",
        libc::ENOSPC => "No space left on device",
        libc::ESPIPE => "Illegal seek",
        libc::EROFS => "Read-only file system",
        libc::EMLINK => "Too many links",
        libc::ERANGE => "Numerical result out of range",
        libc::ENAMETOOLONG => "File name too long",
        libc::ELOOP => "Too many levels of symbolic links",
        libc::ENODATA => "No data available",
        libc::EOVERFLOW => "Value too large for defined data type",
        libc::EDQUOT => "Disk quota exceeded",
        libc::ESTALE => "Stale file handle",
        _ => return String::from_utf8_lossy(&sys::strerror(errno)).into_owned(),
    };
    s.to_string()
}

/// `%m` for a failed call.
pub fn io_error(e: Errno) -> String {
    strerror(e.0)
}
