//! Finding inputs on disk: depmod.d files (compat §2.1) and module files (compat §2.2),
//! in kmod's order and with its messages.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::report::{io_error, Level, Report};
use super::sys::{self, EntryType};
use crate::cache::FileId;
use crate::config::Config;
use crate::modset::ModuleSet;

/// Default config search path of kmod 34 (used when no `-C` is given).
pub const CONFIG_PATHS: &[&[u8]] = &[
    b"/etc/depmod.d",
    b"/run/depmod.d",
    b"/usr/local/lib/depmod.d",
    b"/usr/lib/depmod.d",
    b"/lib/depmod.d",
];

/// Collects and parses the configuration files: first path wins for a given file
/// name, files are processed in name order.
pub fn read_config(paths: &[Vec<u8>], kver: &[u8], report: &Report) -> Config {
    // (name, full path)
    let mut files: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut add = |name: &[u8], path: Vec<u8>| {
        if !files.iter().any(|(n, _)| n == name) {
            files.push((name.to_vec(), path));
        }
    };
    for p in paths {
        let Ok(meta) = sys::metadata(p) else {
            continue;
        };
        if !meta.is_dir() {
            add(crate::names::basename(p), p.clone());
            continue;
        }
        let entries = match sys::read_dir(p) {
            Ok(e) => e,
            Err(e) => {
                report.log_bytes(
                    Level::Error,
                    &[b"files list ", p, b": ", io_error(e).as_bytes()],
                );
                continue;
            }
        };
        for (name, _) in sorted_listing(entries) {
            let name = name.as_slice();
            if name.first() == Some(&b'.') {
                continue;
            }
            let mut full = p.clone();
            full.push(b'/');
            full.extend_from_slice(name);
            if name.len() < 6 || !name.ends_with(b".conf") {
                report.log_bytes(Level::Info, &[b"All cfg files need .conf: ", &full]);
                continue;
            }
            match sys::metadata(&full) {
                Ok(m) if m.is_dir() => {
                    report.log_bytes(
                        Level::Error,
                        &[b"Directories inside directories are not supported: ", &full],
                    );
                    continue;
                }
                Ok(_) => {}
                Err(_) => {
                    report.log_bytes(Level::Error, &[b"Cannot stat directory entry: ", p, name]);
                    continue;
                }
            }
            add(name, full);
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut cfg = Config::default();
    let mut diags = Vec::new();
    for (_, path) in &files {
        match sys::read(path) {
            Ok(text) => cfg.parse(path, &text, kver, &mut diags),
            Err(e) => report.log_bytes(
                Level::Error,
                &[b"file parse ", path, b": ", io_error(e).as_bytes()],
            ),
        }
        for d in diags.drain(..) {
            report.diag(&d, &Default::default());
        }
    }
    cfg.finish();
    cfg
}

/// Does the name end with a module suffix this build reads (and is longer than it)?
pub fn is_module_name(name: &[u8]) -> bool {
    // (suffix, whether this build reads it)
    const SUFFIXES: [(&[u8], bool); 4] = [
        (b".ko", true),
        (b".ko.gz", cfg!(feature = "gz")),
        (
            b".ko.xz",
            cfg!(any(feature = "xz", feature = "xz-prebuilt")),
        ),
        (b".ko.zst", cfg!(feature = "zst")),
    ];
    SUFFIXES
        .iter()
        .any(|&(s, read)| read && name.len() > s.len() && name.ends_with(s))
}

const PATH_MAX: usize = 4096;
/// Directories [`scan_tree`] keeps open at once, at most.
const OPEN_LEVELS: usize = 64;
const NAME_MAX: usize = 255;

/// One directory's entries, sorted by name, with their `d_type` when known.
pub(super) type Listing = vec::IntoIter<(Vec<u8>, Option<EntryType>)>;

/// Reads a whole directory and sorts it by name (bytes), so that the walk, and with
/// it everything kmod leaves to `readdir` order (which of two equally ranked
/// duplicates wins, the order of messages about entries), is the same on every file
/// system. Unreadable entries are skipped, as kmod skips them.
pub(super) fn sorted_listing(mut entries: Vec<(Vec<u8>, Option<EntryType>)>) -> Listing {
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter()
}

/// Walks a directory tree depth-first, each directory in name order (kmod: readdir
/// order; see [`sorted_listing`]), offering module files to the set. Directory loops
/// through symlinks are cut (kmod would recurse until it runs out of file
/// descriptors). Returns `Err` only when `root` itself cannot be opened.
///
/// The directories [`PART_LEVEL`] levels down (`kernel/drivers/net`, `kernel/fs/ext4`,
/// …) are walked as parts, on all cores; what each part found (module files and
/// messages, in walk order) is replayed into the set and the report in the place
/// the part has in the walk, so that the set and the messages are exactly those of
/// a walk from start to end on one core.
pub fn scan_tree(
    root: &[u8],
    set: &mut ModuleSet<'_>,
    (excludes, stat_modules): (&[Vec<u8>], bool),
    report: &Report,
) -> sys::Result<()> {
    let mut walk = Walk::new(excludes, stat_modules);
    let dir = sys::WalkDir::open(root)
        .and_then(|d| Ok((d.entries(&mut walk.buf)?, d)))
        .inspect_err(|&e| {
            report.log_bytes(
                Level::Error,
                &[
                    b"could not open directory ",
                    root,
                    b": ",
                    io_error(e).as_bytes(),
                ],
            );
        })?;
    let (listing, dir) = dir;
    let mut ancestors = Vec::new();
    if let Ok(m) = dir.metadata() {
        ancestors.push(m.id());
    }
    let mut path = root.to_vec();
    path.push(b'/');
    let stack = vec![Frame {
        listing: sorted_listing(listing),
        base: path.len(),
        dir: Some(dir),
    }];
    walk.walk(stack, ancestors, path, 0, Some(PART_LEVEL));
    let Walk { found, parts, .. } = walk;
    let mut walked = walk_parts(&parts, excludes, stat_modules);
    for f in found {
        match f {
            Found::Part(k) => {
                for f in walked.get_mut(k).map(core::mem::take).unwrap_or_default() {
                    replay(f, set, report);
                }
            }
            f => replay(f, set, report),
        }
    }
    Ok(())
}

/// The level (the root being 1) whose directories [`scan_tree`] walks as parts.
const PART_LEVEL: usize = 4;

/// What the walk found, in walk order.
enum Found {
    /// A file with a module's name, and what `stat` said of it (if asked).
    Module(Vec<u8>, Option<FileId>),
    /// A message, worded.
    Said(Level, Vec<u8>),
    /// What part `k` found goes here.
    Part(usize),
}

/// A directory to be walked as a part: its path (without a trailing `/`), where
/// its name starts, what `stat` said of it (if the walk needed to ask), the level
/// of its parent and the identities of its ancestors (for loop checks).
struct Part {
    path: Vec<u8>,
    base: usize,
    meta: Option<sys::Metadata>,
    level: usize,
    ancestors: Vec<(u64, u64)>,
}

/// One directory being listed: its sorted entries, where names start in the
/// walk's path, and the directory itself while it is held open.
struct Frame {
    listing: Listing,
    base: usize,
    dir: Option<sys::WalkDir>,
}

/// A walk (the whole of one, or one part), writing down what it finds.
struct Walk<'e> {
    excludes: &'e [Vec<u8>],
    /// `stat` each module file found (for the module cache).
    stat_modules: bool,
    found: Vec<Found>,
    parts: Vec<Part>,
    /// The `getdents64` buffer, reused for every directory.
    buf: Vec<u8>,
}

/// kmod's words when `fstatat` of an entry fails (`fd`: the number its
/// directory's descriptor would have in kmod).
pub(super) fn fstatat_failed(fd: usize, name: &[u8], e: sys::Errno) -> Vec<u8> {
    [
        format!("fstatat({fd}, ").as_bytes(),
        name,
        b"): ",
        io_error(e).as_bytes(),
    ]
    .concat()
}

/// Offers one found module to the set, or says one message.
fn replay(found: Found, set: &mut ModuleSet<'_>, report: &Report) {
    match found {
        Found::Module(path, id) => {
            if let Err(path) = set.offer_found(path, id) {
                report.log_bytes(Level::Error, &[b"could not get modname from path ", &path]);
            }
        }
        Found::Said(level, line) => report.log_bytes(level, &[&line]),
        Found::Part(_) => {}
    }
}

/// Walks every part, on all cores; what each found, by part number.
fn walk_parts(parts: &[Part], excludes: &[Vec<u8>], stat_modules: bool) -> Vec<Vec<Found>> {
    use core::sync::atomic::{AtomicUsize, Ordering};
    if parts.is_empty() {
        return Vec::new();
    }
    let next = AtomicUsize::new(0);
    let done = sys::run_workers(sys::parallelism().min(parts.len()), &|| {
        let mut walk = Walk::new(excludes, stat_modules);
        let mut mine = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(part) = parts.get(k) else {
                return mine;
            };
            walk.part(part);
            mine.push((k, core::mem::take(&mut walk.found)));
        }
    });
    let mut by_part: Vec<Vec<Found>> = (0..parts.len()).map(|_| Vec::new()).collect();
    for (k, found) in done.into_iter().flatten() {
        if let Some(slot) = by_part.get_mut(k) {
            *slot = found;
        }
    }
    by_part
}

impl<'e> Walk<'e> {
    fn new(excludes: &'e [Vec<u8>], stat_modules: bool) -> Walk<'e> {
        Walk {
            excludes,
            stat_modules,
            found: Vec::new(),
            parts: Vec::new(),
            buf: Vec::new(),
        }
    }

    fn say(&mut self, level: Level, parts: &[&[u8]]) {
        self.found.push(Found::Said(level, parts.concat()));
    }

    /// Walks one part: opens its directory (by path: the part is walked apart
    /// from its parent), then all below it.
    fn part(&mut self, part: &Part) {
        let mut path = part.path.clone();
        let mut ancestors = part.ancestors.clone();
        let mut stack = Vec::new();
        let opened = sys::WalkDir::open(&path);
        self.enter(
            opened,
            part.meta,
            (&mut path, part.base),
            2 + part.level,
            &mut ancestors,
            &mut stack,
        );
        self.walk(stack, ancestors, path, part.level, None);
    }

    /// Takes a directory just opened (or the error opening it) into the walk:
    /// its identity checked against its ancestors', listed, and pushed on
    /// `stack`; or a message. `path` ends with the directory's name, which
    /// starts at `base`; `fd` is the number kmod's messages would give its
    /// parent's descriptor.
    fn enter(
        &mut self,
        opened: sys::Result<sys::WalkDir>,
        meta: Option<sys::Metadata>,
        (path, base): (&mut Vec<u8>, usize),
        fd: usize,
        ancestors: &mut Vec<(u64, u64)>,
        stack: &mut Vec<Frame>,
    ) {
        let opened = opened.map(|sub| {
            let id = match meta {
                Some(m) => m.id(),
                None => sub.metadata().map_or((0, 0), |m| m.id()),
            };
            (sub, id)
        });
        let opened = match opened {
            Ok((_, id)) if ancestors.contains(&id) => {
                self.say(
                    Level::Error,
                    &[
                        b"directory loop: ",
                        path,
                        b" is one of its own parents; not descending into it",
                    ],
                );
                return;
            }
            Ok((sub, id)) => sub.entries(&mut self.buf).map(|listing| (sub, id, listing)),
            Err(e) => Err(e),
        };
        match opened {
            Ok((sub, id, listing)) => {
                path.push(b'/');
                ancestors.push(id);
                let keep = stack.len() < OPEN_LEVELS;
                stack.push(Frame {
                    listing: sorted_listing(listing),
                    base: path.len(),
                    dir: keep.then_some(sub),
                });
            }
            Err(e) => {
                let name = path.get(base..).unwrap_or_default().to_vec();
                self.say(
                    Level::Error,
                    &[
                        format!("openat({fd}, ").as_bytes(),
                        &name,
                        b", O_RDONLY): ",
                        io_error(e).as_bytes(),
                    ],
                );
            }
        }
    }

    /// The walk proper, from the directories on `stack` (the deepest last) at
    /// `level` levels below the root's parent; directories at level `split`
    /// become parts.
    fn walk(
        &mut self,
        mut stack: Vec<Frame>,
        mut ancestors: Vec<(u64, u64)>,
        mut path: Vec<u8>,
        level: usize,
        split: Option<usize>,
    ) {
        let excludes = self.excludes;
        // Explicit stack of open directories: no recursion, whatever the depth.
        // Each with its directory open, up to OPEN_LEVELS deep (deeper ones are
        // opened and `stat`ed by path: a deep tree must not run out of
        // descriptors). File descriptor numbers in kmod's messages: its first
        // directory is fd 3.
        loop {
            let depth = level + stack.len();
            let fd = 2 + depth;
            let Some(Frame { listing, base, dir }) = stack.last_mut() else {
                break;
            };
            let base = *base;
            let Some((name, ft)) = listing.next() else {
                stack.pop();
                ancestors.pop();
                continue;
            };
            let name = name.as_slice();
            if name == b"build" || name == b"source" || excludes.iter().any(|e| e == name) {
                continue;
            }
            path.truncate(base);
            if base + name.len() + 2 >= PATH_MAX {
                self.say(Level::Error, &[b"path is too long ", &path, name]);
                continue;
            }
            path.extend_from_slice(name);
            let (is_dir, meta) = match ft {
                Some(EntryType::File) => (false, None),
                Some(EntryType::Dir) => (true, None),
                None => match dir
                    .as_ref()
                    .map_or_else(|| sys::metadata(&path), |d| d.metadata_at(name))
                {
                    Err(e) => {
                        self.say(Level::Error, &[&fstatat_failed(fd, name, e)]);
                        continue;
                    }
                    Ok(m) if m.is_file() => (false, Some(m)),
                    Ok(m) if m.is_dir() => (true, Some(m)),
                    Ok(m) => {
                        let bits = m.mode() & 0o170000;
                        self.say(
                            Level::Error,
                            &[
                                b"unsupported file type ",
                                &path,
                                format!(": {bits:o}").as_bytes(),
                            ],
                        );
                        continue;
                    }
                },
            };
            if !is_dir {
                if is_module_name(name) {
                    // Relative to the directory: one name looked up, not the
                    // whole path, as loading the module would.
                    let id = match meta {
                        Some(m) => Some(m.file_id()),
                        None if self.stat_modules => dir
                            .as_ref()
                            .map_or_else(|| sys::metadata(&path), |d| d.metadata_at(name))
                            .ok()
                            .map(|m| m.file_id()),
                        None => None,
                    };
                    self.found.push(Found::Module(path.clone(), id));
                }
                continue;
            }
            if base + name.len() + 2 + NAME_MAX >= PATH_MAX {
                self.say(Level::Error, &[b"directory path is too long ", &path]);
                continue;
            }
            if split == Some(depth + 1) {
                self.found.push(Found::Part(self.parts.len()));
                self.parts.push(Part {
                    path: path.clone(),
                    base,
                    meta,
                    level: depth,
                    ancestors: ancestors.clone(),
                });
                continue;
            }
            // Opened first, then its identity taken from the open directory
            // (`fstat`): one lookup of the name, not two.
            let opened = match dir {
                Some(d) => d.open_at(name),
                None => sys::WalkDir::open(&path),
            };
            self.enter(
                opened,
                meta,
                (&mut path, base),
                fd,
                &mut ancestors,
                &mut stack,
            );
        }
    }
}
