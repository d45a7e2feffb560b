//! Finding inputs on disk: depmod.d files (compat §2.1) and module files (compat §2.2),
//! in kmod's order and with its messages.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::report::{io_error, Report};
use super::sys::{self, EntryType};
use crate::config::Config;
use crate::modset::{ModuleSet, Offer};

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
                    super::report::Level::Error,
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
                report.log_bytes(
                    super::report::Level::Info,
                    &[b"All cfg files need .conf: ", &full],
                );
                continue;
            }
            match sys::metadata(&full) {
                Ok(m) if m.is_dir() => {
                    report.log_bytes(
                        super::report::Level::Error,
                        &[b"Directories inside directories are not supported: ", &full],
                    );
                    continue;
                }
                Ok(_) => {}
                Err(_) => {
                    report.log_bytes(
                        super::report::Level::Error,
                        &[b"Cannot stat directory entry: ", p, name],
                    );
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
                super::report::Level::Error,
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
    let mut suffixes: Vec<&[u8]> = vec![b".ko"];
    if cfg!(feature = "gz") {
        suffixes.push(b".ko.gz");
    }
    if cfg!(any(feature = "xz", feature = "xz-prebuilt")) {
        suffixes.push(b".ko.xz");
    }
    if cfg!(feature = "zst") {
        suffixes.push(b".ko.zst");
    }
    suffixes
        .iter()
        .any(|s| name.len() > s.len() && name.ends_with(s))
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
pub fn scan_tree(
    root: &[u8],
    set: &mut ModuleSet<'_>,
    excludes: &[Vec<u8>],
    report: &Report,
) -> sys::Result<()> {
    let mut buf = Vec::new();
    let dir = sys::WalkDir::open(root)
        .and_then(|d| Ok((d.entries(&mut buf)?, d)))
        .inspect_err(|&e| {
            report.log_bytes(
                super::report::Level::Error,
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
    // Explicit stack of open directories: no recursion, whatever the depth.
    // Each with its directory open, up to OPEN_LEVELS deep (deeper ones are
    // opened and `stat`ed by path: a deep tree must not run out of descriptors).
    let mut stack: Vec<(Listing, usize, Option<sys::WalkDir>)> =
        vec![(sorted_listing(listing), path.len(), Some(dir))];
    // File descriptor numbers in kmod's messages: its first directory is fd 3.
    loop {
        let fd = 2 + stack.len();
        let Some((iter, base, dir)) = stack.last_mut() else {
            break;
        };
        let base = *base;
        let Some((name, ft)) = iter.next() else {
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
            report.log_bytes(
                super::report::Level::Error,
                &[b"path is too long ", &path, name],
            );
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
                    report.log_bytes(
                        super::report::Level::Error,
                        &[
                            format!("fstatat({fd}, ").as_bytes(),
                            name,
                            b"): ",
                            io_error(e).as_bytes(),
                        ],
                    );
                    continue;
                }
                Ok(m) if m.is_file() => (false, Some(m)),
                Ok(m) if m.is_dir() => (true, Some(m)),
                Ok(m) => {
                    let bits = m.mode() & 0o170000;
                    report.log_bytes(
                        super::report::Level::Error,
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
            if is_module_name(name) && set.offer(&path) == Offer::BadName {
                report.log_bytes(
                    super::report::Level::Error,
                    &[b"could not get modname from path ", &path],
                );
            }
            continue;
        }
        if base + name.len() + 2 + NAME_MAX >= PATH_MAX {
            report.log_bytes(
                super::report::Level::Error,
                &[b"directory path is too long ", &path],
            );
            continue;
        }
        // Opened first, then its identity taken from the open directory
        // (`fstat`): one lookup of the name, not two.
        let opened = match dir {
            Some(d) => d.open_at(name),
            None => sys::WalkDir::open(&path),
        };
        let opened = opened.map(|sub| {
            let id = match meta {
                Some(m) => m.id(),
                None => sub.metadata().map_or((0, 0), |m| m.id()),
            };
            (sub, id)
        });
        let opened = match opened {
            Ok((_, id)) if ancestors.contains(&id) => {
                report.log_bytes(
                    super::report::Level::Error,
                    &[
                        b"directory loop: ",
                        &path,
                        b" is one of its own parents; not descending into it",
                    ],
                );
                continue;
            }
            Ok((sub, id)) => sub.entries(&mut buf).map(|listing| (sub, id, listing)),
            Err(e) => Err(e),
        };
        match opened {
            Ok((sub, id, listing)) => {
                path.push(b'/');
                ancestors.push(id);
                let keep = stack.len() < OPEN_LEVELS;
                stack.push((sorted_listing(listing), path.len(), keep.then_some(sub)));
            }
            Err(e) => {
                report.log_bytes(
                    super::report::Level::Error,
                    &[
                        format!("openat({fd}, ").as_bytes(),
                        name,
                        b", O_RDONLY): ",
                        io_error(e).as_bytes(),
                    ],
                );
            }
        }
    }
    Ok(())
}
