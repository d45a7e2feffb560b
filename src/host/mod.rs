//! The host side (feature `host`): files, directories, threads and messages around
//! the I/O-free core, on libc alone ([`sys`]). [`run`] is kmod's `depmod` main flow
//! (compat §1.4), step by step.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

mod cache;
mod load;
pub use load::MAX_MODULE_SIZE;
mod produce;
mod report;
pub mod sys;
mod walk;
mod write;

use sys::Errno;

pub use report::{io_error, strerror, DiagContext, Level, Report};

use crate::cache::FileId;
use crate::diag::Diag;
use crate::modset::{AddError, ModuleSet};
use crate::output::Outputs;
use crate::resolve::{self, ResolveOptions};
use crate::symvers;

/// What the command line asked for.
#[derive(Debug, Default)]
pub struct Options {
    /// `-a`.
    pub all: bool,
    /// `-A`.
    pub quick: bool,
    /// `-b` (already absolute).
    pub basedir: Option<Vec<u8>>,
    /// `-m`.
    pub moduledir: Option<Vec<u8>>,
    /// `-o` (already absolute).
    pub outdir: Option<Vec<u8>>,
    /// `-C`, in order.
    pub config: Vec<Vec<u8>>,
    /// `-E`.
    pub symvers: Option<Vec<u8>>,
    /// `-F`.
    pub system_map: Option<Vec<u8>>,
    /// `-e`.
    pub errsyms: bool,
    /// Number of `-v`.
    pub verbose: u32,
    /// `-n`.
    pub dry_run: bool,
    /// `-P`.
    pub prefix: Option<u8>,
    /// `-w`.
    pub warn: bool,
    /// The version argument, if given.
    pub kversion: Option<Vec<u8>>,
    /// Module files after the version (file mode).
    pub files: Vec<Vec<u8>>,
}

/// kmod's `path_make_absolute_cwd`: `$PWD` if it names the current directory, else
/// `getcwd()`, then `/` and the path.
pub fn make_absolute(p: &[u8]) -> Vec<u8> {
    if p.first() == Some(&b'/') {
        return p.to_vec();
    }
    let cwd = current_dir_name();
    let mut r = cwd;
    r.push(b'/');
    r.extend_from_slice(p);
    r
}

fn current_dir_name() -> Vec<u8> {
    if let Some(pwd) = sys::env_var(c"PWD") {
        if pwd.first() == Some(&b'/') {
            if let (Ok(a), Ok(b)) = (sys::metadata(&pwd), sys::metadata(b".")) {
                if a.id() == b.id() {
                    return pwd;
                }
            }
        }
    }
    sys::current_dir().unwrap_or_default()
}

/// C `sscanf(arg, "%u.%u", …) == 2`: kmod's test for a kernel version argument.
pub fn is_kernel_version(arg: &[u8]) -> bool {
    fn unsigned(mut s: &[u8]) -> Option<&[u8]> {
        while let Some((b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c, rest)) = s.split_first() {
            s = rest;
        }
        if let Some((b'+' | b'-', rest)) = s.split_first() {
            s = rest;
        }
        let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, rest) = s.split_at_checked(digits)?;
        (!digits.is_empty()).then_some(rest)
    }
    unsigned(arg)
        .and_then(|r| r.strip_prefix(b"."))
        .and_then(unsigned)
        .is_some()
}

const PATH_MAX: usize = 4096;

/// Runs depmod; returns the exit status.
pub fn run(opts: Options, report: &Report) -> u8 {
    // Before any thread: reading the umask sets it for a moment.
    let umask = sys::umask();
    let kver = match opts.kversion.clone().map_or_else(sys::uname_release, Ok) {
        Ok(v) => v,
        Err(e) => {
            report.fatal(format_args!("uname() failed: {}", io_error(e)));
            return 1;
        }
    };
    let moddir: Vec<u8> = {
        let m = opts.moduledir.as_deref().unwrap_or(b"/lib/modules");
        m.iter().skip_while(|&&c| c == b'/').copied().collect()
    };
    let join = |root: &[u8]| -> Vec<u8> {
        let mut d = root.to_vec();
        d.push(b'/');
        d.extend_from_slice(&moddir);
        d.push(b'/');
        d.extend_from_slice(&kver);
        d
    };
    let basedir = opts.basedir.clone().unwrap_or_default();
    let dir = join(&basedir);
    let outdir = join(opts.outdir.as_deref().unwrap_or(&basedir));
    for d in [&dir, &outdir] {
        if d.len() >= PATH_MAX {
            report.log_bytes(Level::Error, &[b"Bad directory ", d, b": path too long"]);
            return 1;
        }
    }

    let mut all = opts.all || opts.files.is_empty();
    if opts.quick {
        if opts.dry_run {
            return 0;
        }
        if is_up_to_date(&dir, report) {
            return 0;
        }
        all = true;
    }

    // kmod creates its library context here; with -vv, libkmod says so (the
    // pointers are ours: the logging function and the run's options).
    report.info(format_args!(
        "custom logging function {:p} registered",
        Report::log as fn(&Report, Level, core::fmt::Arguments<'_>)
    ));
    let code = run_with_context(&opts, report, &kver, (&dir, &outdir), all, umask);
    if !report.fatal_seen() {
        report.info(format_args!(
            "context {:p} released",
            &opts as *const Options
        ));
    }
    code
}

/// The part of [`run`] after kmod has created its library context.
fn run_with_context(
    opts: &Options,
    report: &Report,
    kver: &[u8],
    (dir, outdir): (&[u8], &[u8]),
    all: bool,
    umask: u32,
) -> u8 {
    // Before the walk: the time this run's reads are taken at, for the module
    // cache's "changed too recently to trust" rule (`crate::cache`).
    let run_start_ns = sys::now_ns();
    // The module cache is read and checked on another thread while the tree is
    // walked (it owns what it uses: nothing is shared until it is joined).
    let cache_loading = if opts.dry_run {
        None
    } else {
        cache::CacheFile::locate(dir).map(|f| sys::Background::spawn(move || f.load()))
    };
    // Kernel symbols (-E wins over -F).
    let symfile = opts.symvers.as_ref().or(opts.system_map.as_ref());
    let symfile_bytes = match symfile {
        Some(f) => match sys::read(f) {
            Ok(b) => b,
            Err(e) => {
                report.log_bytes(
                    Level::Fatal,
                    &[b"could not load ", f, b": ", io_error(e).as_bytes()],
                );
                return 1;
            }
        },
        None => Vec::new(),
    };
    let mut errsyms = opts.errsyms;
    let mut diags: Vec<Diag> = Vec::new();
    let kernel_syms = if opts.symvers.is_some() {
        symvers::parse_symvers(&symfile_bytes, opts.prefix, &mut diags)
    } else if opts.system_map.is_some() {
        symvers::parse_system_map(&symfile_bytes, opts.prefix, &mut diags)
    } else {
        if errsyms {
            report.warning("-e needs -E or -F");
            errsyms = false;
        }
        Vec::new()
    };
    let file_ctx = DiagContext {
        file: symfile.map_or(&[][..], |f| f.as_slice()),
        ..Default::default()
    };
    for d in diags.drain(..) {
        report.diag(&d, &file_ctx);
    }

    // Discovery.
    let cfg_paths: Vec<Vec<u8>> = if opts.config.is_empty() {
        walk::CONFIG_PATHS.iter().map(|p| p.to_vec()).collect()
    } else {
        opts.config.clone()
    };
    let cfg = if all {
        walk::read_config(&cfg_paths, kver, report)
    } else {
        Default::default()
    };
    let mut set = ModuleSet::new(dir, &cfg);
    if all {
        // With the cache, each module file is `stat`ed where the walk finds it
        // (relative to its directory, on the walk's cores): what its record is
        // checked against.
        let walk_opts = (&cfg.excludes[..], cache_loading.is_some());
        if let Err(e) = walk::scan_tree(dir, &mut set, walk_opts, report) {
            report.fatal(format_args!("could not search modules: {}", io_error(e)));
            return 1;
        }
        for ext in &cfg.externals {
            let _ = walk::scan_tree(ext, &mut set, walk_opts, report);
        }
    } else {
        for f in &opts.files {
            if f.first() != Some(&b'/') {
                report.log_bytes(Level::Fatal, &[f, b": not absolute path."]);
                return 1;
            }
            if let Err(e) = sys::metadata(f) {
                report.log_bytes(
                    Level::Fatal,
                    &[
                        b"could not create module ",
                        f,
                        b": ",
                        io_error(e).as_bytes(),
                    ],
                );
                return 1;
            }
            match set.add_file(f) {
                Ok(()) => {}
                Err(AddError::BadName) => {
                    report.log_bytes(
                        Level::Fatal,
                        &[b"could not add module ", f, b": Invalid argument"],
                    );
                    return 1;
                }
                Err(AddError::SamePath(name)) => {
                    report.log_bytes(
                        Level::Error,
                        &[b"hash_add_unique ", &name, b": File exists"],
                    );
                    report.log_bytes(
                        Level::Fatal,
                        &[b"could not add module ", f, b": File exists"],
                    );
                    return 1;
                }
                Err(AddError::OtherPath(name, old)) => {
                    report.log_bytes(
                        Level::Error,
                        &[
                            b"kmod_module '",
                            &name,
                            b"' already exists with different path: new-path='",
                            f,
                            b"' old-path='",
                            &old,
                            b"'",
                        ],
                    );
                    report.log_bytes(
                        Level::Fatal,
                        &[b"could not create module ", f, b": File exists"],
                    );
                    return 1;
                }
            }
        }
    }

    // Module order.
    let order = read_input(dir, "modules.order", report);
    let mut modules = set.finish(order.as_deref(), &mut diags);
    if !opts.dry_run {
        crate::modset::leave_out_non_ascii(&mut modules, &mut diags);
    }
    let ctx = DiagContext {
        modules: &modules,
        dir,
        file: &[],
    };
    for d in diags.drain(..) {
        report.diag(&d, &ctx);
    }

    // Load and resolve.
    let path_refs: Vec<(&[u8], Option<FileId>)> = modules
        .iter()
        .map(|m| (m.path.as_slice(), m.found_as))
        .collect();
    let mut cache_file = cache_loading.map(sys::Background::join);
    if let Some(f) = &cache_file {
        f.report_read_error(report);
    }
    let load::Loaded {
        data,
        provenance,
        counts,
    } = {
        let records = cache_file.as_ref().map(|f| (f.parse(report), f.files()));
        let cache = records.as_ref().map(|(cache, files)| load::CacheUse {
            cache,
            run_start_ns,
            files: *files,
        });
        load::load_all(&path_refs, cache)
    };
    if let Some(f) = cache_file.as_mut() {
        // Last run's records are all taken: free them before resolving.
        f.forget_records();
        f.report_counts(counts, report);
    }
    let ropts = ResolveOptions {
        prefix: opts.prefix,
        check_crcs: opts.symvers.is_some(),
        errsyms,
        verbose: opts.verbose > 0,
        kernel_symbols: symfile.is_some(),
    };
    // Nothing read: the cache files hold every record of this run already.
    let all_from_cache = counts[1] + counts[2] == 0;
    // `modules.alias.bin`'s insertions need no dependency: made meanwhile, on
    // the core that making the symbol table and ordering leave idle.
    let (alias_index, resolved) = sys::join(
        || {
            (!opts.dry_run).then(|| {
                let mut said = Vec::new();
                let trie = crate::output::alias_index(&modules, &data, opts.warn, &mut said);
                (trie, said)
            })
        },
        || {
            let symbols = resolve::symbol_table(&data, &kernel_syms, &ropts, &mut diags);
            let parts = direct_deps_on_all_cores(&data, &symbols, &ropts);
            resolve::order(symbols, parts, &mut diags)
        },
    );
    for d in diags.drain(..) {
        report.diag(&d, &ctx);
    }
    let Ok(resolved) = resolved else {
        return 1;
    };

    let outputs = Outputs {
        modules: &modules,
        data: &data,
        resolved: &resolved,
        warn_duplicates: opts.warn,
        leave_out_non_ascii: !opts.dry_run,
    };
    let note = cache_file.as_ref().map(|f| f.made_indexes());
    let to = produce::Destination {
        outdir,
        dry_run: opts.dry_run,
        umask,
        note: note.as_ref(),
        alias_index: alias_index.as_ref(),
    };
    let write = || produce::write_outputs(&outputs, dir, &to, report, &ctx);
    let status = match &cache_file {
        // The new cache file (a delta, or a full file) is encoded and written
        // beside the old ones while the indexes are made and written; it takes
        // the old one's place only if they were.
        Some(f) => {
            let (staged, (status, made)) = sys::join(
                || f.stage(dir, &modules, &provenance, &data, all_from_cache),
                write,
            );
            f.commit(staged, status == 0, report);
            if status == 0 {
                f.note_indexes(&made);
            }
            status
        }
        None => write().0,
    };
    // The process ends after this: its memory goes back to the system at once,
    // so the tens of thousands of blocks these hold are not freed one by one
    // (a millisecond or two at the end of every run).
    core::mem::forget(resolved);
    core::mem::forget(data);
    core::mem::forget(path_refs);
    core::mem::forget(modules);
    core::mem::forget(provenance);
    status
}

/// [`resolve::direct_deps`] of every module, in parts of [`DEPS_PART`] modules
/// taken by all cores in turn (each import is a lookup in the symbol table: a
/// tenth of a cached run's time on one core); the parts in module order.
fn direct_deps_on_all_cores(
    data: &[crate::scan::ModuleData],
    symbols: &resolve::SymbolTable<'_>,
    opts: &ResolveOptions,
) -> Vec<resolve::DirectDeps> {
    use core::sync::atomic::{AtomicUsize, Ordering};
    let parts = data.len().div_ceil(DEPS_PART);
    let next = AtomicUsize::new(0);
    let done = sys::run_workers(sys::parallelism().min(parts.max(1)), &|| {
        let mut mine = Vec::new();
        loop {
            let p = next.fetch_add(1, Ordering::Relaxed);
            if p >= parts {
                return mine;
            }
            let start = p * DEPS_PART;
            let end = (start + DEPS_PART).min(data.len());
            mine.push((p, resolve::direct_deps(data, symbols, opts, start..end)));
        }
    });
    let mut all: Vec<(usize, resolve::DirectDeps)> = done.into_iter().flatten().collect();
    all.sort_unstable_by_key(|&(p, _)| p);
    all.into_iter().map(|(_, part)| part).collect()
}

/// Modules per part of [`direct_deps_on_all_cores`].
const DEPS_PART: usize = 256;

/// Reads an input file of DIR, warning as kmod does when it is missing.
fn read_input(dir: &[u8], name: &str, report: &Report) -> Option<Vec<u8>> {
    read_input_quiet(dir, name)
        .map_err(|e| report_missing_input(dir, name, e, report))
        .ok()
}

fn read_input_quiet(dir: &[u8], name: &str) -> sys::Result<Vec<u8>> {
    let mut path = dir.to_vec();
    path.push(b'/');
    path.extend_from_slice(name.as_bytes());
    sys::read(&path)
}

/// kmod's warning for a missing `modules.order`/`builtin`/`builtin.modinfo`.
fn report_missing_input(dir: &[u8], name: &str, e: Errno, report: &Report) {
    if sys::metadata(dir).is_ok_and(|m| m.is_dir()) {
        report.log_bytes(
            Level::Warning,
            &[
                b"could not open ",
                name.as_bytes(),
                b" at ",
                dir,
                b": ",
                io_error(e).as_bytes(),
            ],
        );
    } else {
        let e = sys::open_dir(dir).err().unwrap_or(Errno(libc::ENOENT));
        report.log_bytes(
            Level::Warning,
            &[
                b"could not open directory ",
                dir,
                b": ",
                io_error(e).as_bytes(),
            ],
        );
    }
}

/// `-A`: are all modules older than `modules.dep`? (compat §1.5)
///
/// Walks like kmod's `depfile_up_to_date_dir` (each directory in name order, as
/// the main walk), including its messages — whose path
/// comes from a buffer only updated for directories and module files, so an
/// unsupported file is named after the entry before it, as kmod names it.
fn is_up_to_date(dir: &[u8], report: &Report) -> bool {
    let root = match sys::read_dir(dir) {
        Ok(r) => r,
        Err(e) => {
            report.log_bytes(
                Level::Error,
                &[
                    b"could not open directory ",
                    dir,
                    b": ",
                    io_error(e).as_bytes(),
                ],
            );
            return false;
        }
    };
    let mut dep = dir.to_vec();
    dep.extend_from_slice(b"/modules.dep");
    let dep_mtime = match sys::metadata(&dep) {
        Ok(m) => m.mtime(),
        Err(e) => {
            report.log_bytes(
                Level::Error,
                &[
                    b"could not fstatat(",
                    dir,
                    b", modules.dep): ",
                    io_error(e).as_bytes(),
                ],
            );
            return false;
        }
    };
    // kmod's path buffer: a C string in a PATH_MAX array.
    let mut buf = vec![0u8; PATH_MAX + 1];
    let shown = |buf: &[u8]| crate::elf::cstr(buf).to_vec();
    // `dir` opened, so it is shorter than PATH_MAX (longer paths fail with
    // ENAMETOOLONG); every later write is checked against PATH_MAX first.
    put(&mut buf, 0, dir, b'/');
    let base = dir.len() + 1;
    // (directory iterator, its base length); kmod's first directory is fd 3.
    let mut stack = vec![(walk::sorted_listing(root), base)];
    let mut seen = Vec::new();
    loop {
        let fd = 2 + stack.len();
        let Some((iter, base)) = stack.last_mut() else {
            return true;
        };
        let base = *base;
        let Some((name, _)) = iter.next() else {
            stack.pop();
            continue;
        };
        let name = name.as_slice();
        if name == b"build" || name == b"source" {
            continue;
        }
        if base + name.len() + 2 >= PATH_MAX {
            put(&mut buf, base, b"", 0);
            report.log_bytes(Level::Error, &[b"path is too long ", &shown(&buf), name]);
            continue;
        }
        let mut path = buf.get(..base).unwrap_or(&buf).to_vec();
        path.extend_from_slice(name);
        let m = match sys::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                report.log_bytes(Level::Error, &[&walk::fstatat_failed(fd, name, e)]);
                continue;
            }
        };
        if m.is_dir() {
            put(&mut buf, base, name, 0);
            if base + name.len() + 2 + 255 >= PATH_MAX {
                report.log_bytes(
                    Level::Error,
                    &[b"directory path is too long ", &shown(&buf)],
                );
                continue;
            }
            if seen.contains(&m.id()) {
                continue;
            }
            match sys::read_dir(&path) {
                Ok(sub) => {
                    seen.push(m.id());
                    put(&mut buf, base + name.len(), b"/", 0);
                    stack.push((walk::sorted_listing(sub), base + name.len() + 1));
                }
                Err(e) => report.log_bytes(
                    Level::Error,
                    &[
                        format!("openat({fd}, ").as_bytes(),
                        name,
                        b", O_RDONLY): ",
                        io_error(e).as_bytes(),
                    ],
                ),
            }
        } else if m.is_file() {
            if !walk::is_module_name(name) {
                continue;
            }
            put(&mut buf, base, name, 0);
            if m.mtime() > dep_mtime {
                return false;
            }
        } else {
            let bits = m.mode() & 0o170000;
            report.log_bytes(
                Level::Error,
                &[
                    b"unsupported file type ",
                    &shown(&buf),
                    format!(": {bits:o}").as_bytes(),
                ],
            );
        }
    }
}

/// kmod's `memcpy(buf + at, bytes, len); buf[at + len] = end` on its path buffer.
/// Callers check lengths against `PATH_MAX` first; a write past the buffer would be
/// dropped, not made.
fn put(buf: &mut [u8], at: usize, bytes: &[u8], end: u8) {
    let end_at = at.saturating_add(bytes.len());
    if let Some(dst) = buf.get_mut(at..end_at) {
        dst.copy_from_slice(bytes);
    }
    if let Some(b) = buf.get_mut(end_at) {
        *b = end;
    }
}
