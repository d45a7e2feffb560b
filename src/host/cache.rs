//! The module cache on disk: `DEPMOD_CACHE=DIR` keeps what each module gave
//! between runs (`crate::cache` holds the format and the rules).
//!
//! One full file per module directory, `DIR/<version>-<16 hex digits>.cache` (the
//! digits fingerprint the module directory's absolute path, so trees of one
//! kernel version under different `-b` roots keep separate caches), and beside it
//! at most one delta, `<same>.delta`, holding the records that changed since the
//! full file was written. Both are read whole at the start of a run. At the end a
//! run writes, as a temp file renamed over the old one, either nothing (every
//! module was taken from them unchanged), a new delta (few modules changed: see
//! [`CacheFile::stage`]) or a new full file (and removes the delta). A reader so
//! sees old files or new ones, never a mix; two depmods at once each leave
//! complete files (the last rename wins), and a delta left beside a full file it
//! was not made for is not used. Neither is fsynced: a file cut short by a power
//! cut fails its checksum and is rebuilt, at the cost of one cold run. `-n`
//! neither reads nor writes them.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::report::{Level, Report};
use super::sys::{self, DirFd, Errno};
use crate::cache::{self, Cache, Provenance};
use crate::made_indexes::{self, MadeIndex, MadeIndexes};
use crate::scan::ModuleData;

/// Caches kept per kernel version (different `-b` roots of one version).
const KEEP_PER_VERSION: usize = 4;
/// A cache no run has used for this long (30 days) is removed (a run that writes
/// nothing sets its time).
const UNUSED_FOR_NS: i64 = 30 * 24 * 3600 * 1_000_000_000;

/// A cache file found in `DEPMOD_CACHE`.
struct Listed {
    version: Vec<u8>,
    mtime_ns: i64,
    path: Vec<u8>,
    name: Vec<u8>,
}

/// The cache file of one module directory.
pub struct CacheFile {
    /// `DEPMOD_CACHE`.
    dir: Vec<u8>,
    /// The file's name in it.
    name: Vec<u8>,
    /// Its bytes (`None` when there is none yet or it could not be read).
    bytes: Option<Arc<Vec<u8>>>,
    /// The bytes are another tree's cache (see [`Self::sibling`]).
    borrowed: bool,
    /// Why the file could not be read, if so (said by [`Self::report_read_error`]).
    read_error: Option<Errno>,
    /// What [`Cache::check`] said of the bytes.
    checked: Result<(), cache::CacheError>,
    /// Their length (kept when they are freed): about the next cache's size.
    last_len: usize,
    /// The delta's bytes, if there is one beside our own full file.
    delta: Option<Arc<Vec<u8>>>,
    /// What [`Cache::check`] said of them.
    delta_checked: Result<(), cache::CacheError>,
    /// The full file's checksum (0: none) and record count, once
    /// [`Self::parse`] took it as ours and good: what decides between a delta
    /// and a full file next. Set by the thread that parses, read by the one
    /// that stages, which the host starts after.
    full_sum: AtomicU64,
    full_records: AtomicUsize,
    /// The note of the indexes the last run wrote (`crate::made_indexes`),
    /// `<same>.indexes`, if it could be read.
    indexes: Option<Vec<u8>>,
}

/// What [`CacheFile::stage`] wrote: a temp file, to become the full file or the
/// delta.
pub struct Staged {
    tmp: Vec<u8>,
    delta: bool,
}

impl CacheFile {
    /// The cache of `module_dir` if `DEPMOD_CACHE` names a directory (created
    /// when missing, at the end of the run); nothing is read yet ([`Self::load`]).
    pub fn locate(module_dir: &[u8]) -> Option<CacheFile> {
        let dir = sys::env_var(c"DEPMOD_CACHE").filter(|d| !d.is_empty())?;
        let dir = if dir.starts_with(b"/") {
            dir
        } else {
            super::make_absolute(&dir)
        };
        let version = module_dir
            .rsplit(|&b| b == b'/')
            .find(|c| !c.is_empty())
            .unwrap_or(b"modules");
        let mut name = version.to_vec();
        name.push(b'-');
        let d = crate::digest::digest(module_dir);
        let first = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        name.extend_from_slice(alloc::format!("{first:016x}").as_bytes());
        name.extend_from_slice(b".cache");
        Some(CacheFile {
            dir,
            name,
            bytes: None,
            borrowed: false,
            read_error: None,
            checked: Ok(()),
            last_len: 0,
            delta: None,
            delta_checked: Ok(()),
            full_sum: AtomicU64::new(0),
            full_records: AtomicUsize::new(0),
            indexes: None,
        })
    }

    /// Reads the file (or a sibling's, see [`Self::sibling`]) and checks it end
    /// to end: the part of the work that reads every byte, which the host does
    /// on another thread while it walks the tree. Says nothing; a file that
    /// could not be read is reported by [`Self::report_read_error`].
    pub fn load(mut self) -> CacheFile {
        match sys::read(&self.path()) {
            Ok(bytes) => self.bytes = Some(Arc::new(bytes)),
            Err(Errno(libc::ENOENT)) => {
                let version = self.version().to_vec();
                self.bytes = self.sibling(&version).map(Arc::new);
                self.borrowed = true;
            }
            Err(e) => self.read_error = Some(e),
        }
        if let Some(bytes) = &self.bytes {
            self.checked = Cache::check(bytes);
            self.last_len = bytes.len();
        }
        if self.checked.is_ok() && self.bytes.is_some() && !self.borrowed {
            // A delta that cannot be read is as good as none.
            self.delta = sys::read(&self.delta_path()).ok().map(Arc::new);
            if let Some(d) = &self.delta {
                self.delta_checked = Cache::check(d);
            }
        }
        self.indexes = sys::read(&beside(&self.path(), b".indexes")).ok();
        self
    }

    /// What the last run noted of the indexes it wrote; nothing when there is no
    /// note or it does not parse (it is only ever a shortcut: each index is
    /// checked against the file in place, and made when in doubt).
    pub fn made_indexes(&self) -> MadeIndexes<'_> {
        self.indexes
            .as_deref()
            .and_then(|b| MadeIndexes::parse(b).ok())
            .unwrap_or_default()
    }

    /// Notes the indexes this run has in place, if that differs from the note
    /// read at the start. Best effort and silent: without a note the next run
    /// makes its indexes, as it would without a cache.
    pub fn note_indexes(&self, made: &[MadeIndex<'_>]) {
        let old = self.made_indexes();
        if old.entries() == made {
            return;
        }
        let Some(bytes) = made_indexes::encode(made.iter().copied()) else {
            return;
        };
        let Ok(dir) = DirFd::open(&self.dir) else {
            return;
        };
        let name = beside(&self.name, b".indexes");
        let mut tmp = name.clone();
        tmp.extend_from_slice(super::write::temp_suffix().as_bytes());
        let written = dir
            .create_new(&tmp, 0o644)
            .and_then(|f| f.write_all(&bytes))
            .and_then(|()| dir.rename(&tmp, &name));
        if written.is_err() {
            let _ = dir.remove(&tmp);
        }
    }

    /// One warning if the file could not be read (the run goes on without it).
    pub fn report_read_error(&self, report: &Report) {
        if let Some(e) = self.read_error {
            self.warn(report, b"could not read module cache ", &sys::strerror(e.0));
        }
    }

    /// No cache for this module directory yet: the newest one of another tree of
    /// the same kernel version, whose compressed modules can then be recognised by
    /// content (Buildroot and Yocto copy the tree afresh for every image, not
    /// always to the same place). Silent: it is only a head start.
    fn sibling(&self, version: &[u8]) -> Option<Vec<u8>> {
        self.caches_in_dir()
            .into_iter()
            .filter(|c| c.version == version)
            .max_by_key(|c| c.mtime_ns)
            .and_then(|c| sys::read(&c.path).ok())
    }

    /// The cache files in `DEPMOD_CACHE`: `<version>-<16 hex digits>.cache`.
    fn caches_in_dir(&self) -> Vec<Listed> {
        let Ok(entries) = sys::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for (name, _) in entries {
            let Some(stem) = name.strip_suffix(b".cache") else {
                continue;
            };
            let Some(dash) = stem.len().checked_sub(17) else {
                continue;
            };
            let (version, tail) = stem.split_at(dash);
            let digits = tail.strip_prefix(b"-").unwrap_or_default();
            if version.is_empty() || digits.len() != 16 || !digits.iter().all(u8::is_ascii_hexdigit)
            {
                continue;
            }
            let mut path = self.dir.clone();
            path.push(b'/');
            path.extend_from_slice(&name);
            if let Ok(m) = sys::metadata(&path) {
                if m.is_file() {
                    found.push(Listed {
                        version: version.to_vec(),
                        mtime_ns: m.file_id().mtime_ns,
                        path,
                        name,
                    });
                }
            }
        }
        found
    }

    /// Bounds `DEPMOD_CACHE`: at most [`KEEP_PER_VERSION`] caches per kernel
    /// version (the newest), and none that no run has rewritten for
    /// [`UNUSED_FOR_NS`].
    fn prune(&self, now_ns: i64) {
        let mut caches = self.caches_in_dir();
        caches.sort_by_key(|c| core::cmp::Reverse(c.mtime_ns));
        let mut kept: Vec<(Vec<u8>, usize)> = Vec::new();
        for c in caches {
            if c.name == self.name {
                continue;
            }
            let n = match kept.iter_mut().find(|(v, _)| *v == c.version) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    // Ours, just written, is the newest of its version.
                    let first = if c.version == self.version() { 2 } else { 1 };
                    kept.push((c.version.clone(), first));
                    first
                }
            };
            if n > KEEP_PER_VERSION || c.mtime_ns < now_ns.saturating_sub(UNUSED_FOR_NS) {
                let _ = sys::remove_file(&c.path);
                let _ = sys::remove_file(&delta_of(&c.path));
                let _ = sys::remove_file(&beside(&c.path, b".indexes"));
            }
        }
    }

    fn version(&self) -> &[u8] {
        self.name
            .strip_suffix(b".cache")
            .and_then(|s| s.get(..s.len().saturating_sub(17)))
            .unwrap_or_default()
    }

    fn path(&self) -> Vec<u8> {
        let mut p = self.dir.clone();
        if p.last() != Some(&b'/') {
            p.push(b'/');
        }
        p.extend_from_slice(&self.name);
        p
    }

    fn delta_path(&self) -> Vec<u8> {
        delta_of(&self.path())
    }

    fn delta_name(&self) -> Vec<u8> {
        delta_of(&self.name)
    }

    fn warn(&self, report: &Report, what: &[u8], why: &[u8]) {
        self.warn_about(&self.path(), report, what, why);
    }

    fn warn_about(&self, path: &[u8], report: &Report, what: &[u8], why: &[u8]) {
        report.log_bytes(
            Level::Warning,
            &[what, path, b": ", why, b" (it is rebuilt)"],
        );
    }

    /// The records (the full file's, with the delta's in their place), or an
    /// empty cache (with one warning) when the full file is damaged or of another
    /// depmod. A damaged delta gets the warning instead and is left out; a delta
    /// of another full file is left out silently (a concurrent run replaced it).
    pub fn parse(&self, report: &Report) -> Cache<'_> {
        let Some(bytes) = &self.bytes else {
            return Cache::default();
        };
        let parsed = self.checked.and_then(|()| Cache::parse_checked(bytes));
        // A delta where the full file should be is as wrong as a damaged one.
        let parsed = parsed.and_then(|c| match c.extends() {
            None => Ok(c),
            Some(_) => Err(cache::CacheError::Damaged),
        });
        let mut full = match parsed {
            Ok(c) => c,
            Err(e) => {
                if !self.borrowed {
                    self.warn(report, b"ignoring module cache ", e.describe().as_bytes());
                }
                return Cache::default();
            }
        };
        if self.borrowed {
            return full;
        }
        self.full_sum.store(full.checksum(), Ordering::Relaxed);
        self.full_records.store(full.len(), Ordering::Relaxed);
        if let Some(d) = &self.delta {
            match self.delta_checked.and_then(|()| Cache::parse_checked(d)) {
                Ok(delta) => {
                    full.overlay(&delta);
                }
                Err(e) => self.warn_about(
                    &self.delta_path(),
                    report,
                    b"ignoring module cache ",
                    e.describe().as_bytes(),
                ),
            }
        }
        full
    }

    /// With `DEPMOD_CACHE_STATS` set (to anything), says on stderr how many
    /// modules came from where: for checking a setup, and for the benchmarks.
    pub fn report_counts(&self, [by_stat, by_content, read]: [usize; 3], report: &Report) {
        if sys::env_var(c"DEPMOD_CACHE_STATS").is_some() {
            report.log_bytes(
                Level::Warning,
                &[alloc::format!(
                    "module cache: {by_stat} unchanged, {by_content} recognised by content, \
                     {read} read"
                )
                .as_bytes()],
            );
        }
    }

    /// The full file's bytes and the delta's, which [`cache::Record::data_in`]
    /// shares with the module data it gives.
    pub fn files(&self) -> [Option<&Arc<Vec<u8>>>; 2] {
        [self.bytes.as_ref(), self.delta.as_ref()]
    }

    /// Lets go of last run's bytes once no record is to be taken from them (the
    /// module data taken keeps what it shares).
    pub fn forget_records(&mut self) {
        self.bytes = None;
        self.delta = None;
    }

    /// Writes this run's records to a temp file beside the cache, to be put in
    /// place by [`Self::commit`] once the indexes are written (the host does this
    /// while it writes them). `all_from_cache`: every module was taken from the
    /// cache by `stat`, so its files hold this run's records already.
    ///
    /// A delta, of the records not taken unchanged from the full file, when there
    /// is a good full file of ours and no more than an eighth of the modules
    /// changed and no more than a quarter of its records went unused (a tree
    /// that shrank is written afresh, so that the files never outgrow the
    /// tree); otherwise a full file. Nothing (`None`) when nothing changed: the
    /// full file's time is only set, for [`Self::prune`].
    pub fn stage(
        &self,
        module_dir: &[u8],
        modules: &[crate::modset::Module],
        provenance: &[Option<Provenance>],
        data: &[ModuleData],
        all_from_cache: bool,
    ) -> sys::Result<Option<Staged>> {
        let modules = || {
            modules
                .iter()
                .zip(provenance)
                .zip(data)
                .filter_map(|((m, p), d)| Some((m.path.as_slice(), p.as_ref()?, d)))
        };
        let n = modules().count();
        let kept = modules().filter(|(_, p, _)| p.in_full_cache).count();
        let sum = self.full_sum.load(Ordering::Relaxed);
        let records = self.full_records.load(Ordering::Relaxed);
        let extends = match sum {
            0 => None,
            _ if (n - kept) * 8 <= n && records.saturating_sub(kept) * 4 <= records => {
                if all_from_cache {
                    let _ = sys::touch(&self.path());
                    return Ok(None);
                }
                Some(sum)
            }
            _ => None,
        };
        let bytes = match extends {
            Some(_) => {
                let changed = modules().filter(|(_, p, _)| !p.in_full_cache);
                cache::encode(module_dir, extends, changed, 64 << 10)
            }
            None => cache::encode(module_dir, None, modules(), self.last_len + (64 << 10)),
        };
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        sys::create_dir_all(&self.dir, 0o755)?;
        let dir = DirFd::open(&self.dir)?;
        let mut tmp = match extends {
            Some(_) => self.delta_name(),
            None => self.name.clone(),
        };
        tmp.extend_from_slice(super::write::temp_suffix().as_bytes());
        let written = dir
            .create_new(&tmp, 0o644)
            .and_then(|f| f.write_all(&bytes));
        if let Err(e) = written {
            let _ = dir.remove(&tmp);
            return Err(e);
        }
        Ok(Some(Staged {
            tmp,
            delta: extends.is_some(),
        }))
    }

    /// Puts what [`Self::stage`] wrote in the cache's place if `keep` (the
    /// indexes were written), or removes it. Best effort: a failure gets one
    /// warning and changes nothing else (the indexes are already written).
    pub fn commit(&self, staged: sys::Result<Option<Staged>>, keep: bool, report: &Report) {
        let Staged { tmp, delta } = match staged {
            Ok(Some(staged)) => staged,
            Ok(None) => return,
            Err(e) => {
                if keep {
                    self.warn(
                        report,
                        b"could not write module cache ",
                        &sys::strerror(e.0),
                    );
                }
                return;
            }
        };
        let renamed = DirFd::open(&self.dir).and_then(|dir| {
            if keep {
                let target = if delta {
                    self.delta_name()
                } else {
                    self.name.clone()
                };
                let r = dir.rename(&tmp, &target);
                if r.is_err() {
                    let _ = dir.remove(&tmp);
                } else if !delta {
                    // The old delta was made for the old full file.
                    let _ = dir.remove(&self.delta_name());
                }
                r
            } else {
                dir.remove(&tmp)
            }
        });
        match renamed {
            Ok(()) if keep => self.prune(sys::now_ns()),
            Ok(()) => {}
            Err(e) if keep => self.warn(
                report,
                b"could not write module cache ",
                &sys::strerror(e.0),
            ),
            Err(_) => {}
        }
    }
}

/// The delta's name or path beside a full cache file's (`.cache` → `.delta`).
fn delta_of(full: &[u8]) -> Vec<u8> {
    beside(full, b".delta")
}

/// The name or path of a file beside a full cache file's, with `extension` for
/// its `.cache`.
fn beside(full: &[u8], extension: &[u8]) -> Vec<u8> {
    let mut p = full.strip_suffix(b".cache").unwrap_or(full).to_vec();
    p.extend_from_slice(extension);
    p
}
