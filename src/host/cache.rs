//! The module cache on disk: `DEPMOD_CACHE=DIR` keeps what each module gave
//! between runs (`crate::cache` holds the format and the rules).
//!
//! One file per module directory, `DIR/<version>-<16 hex digits>.cache` (the
//! digits fingerprint the module directory's absolute path, so trees of one
//! kernel version under different `-b` roots keep separate caches). It is read
//! whole at the start of a run and replaced at the end by a temp file renamed over
//! it, so a reader sees the old cache or the new one, never a mix, and two depmods
//! at once each leave a complete file (the last rename wins). It is not fsynced: a
//! cache cut short by a power cut fails its fingerprint and is rebuilt, at the cost
//! of one cold run. `-n` neither reads nor writes it.

use alloc::vec::Vec;

use super::report::{Level, Report};
use super::sys::{self, DirFd, Errno};
use crate::cache::{self, Cache, Provenance};
use crate::scan::ModuleData;

/// Caches kept per kernel version (different `-b` roots of one version).
const KEEP_PER_VERSION: usize = 4;
/// A cache no run has rewritten for this long (30 days) is removed.
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
    bytes: Option<Vec<u8>>,
    /// The bytes are another tree's cache (see [`Self::sibling`]).
    borrowed: bool,
    /// Why the file could not be read, if so (said by [`Self::report_read_error`]).
    read_error: Option<Errno>,
    /// What [`Cache::check`] said of the bytes.
    checked: Result<(), cache::CacheError>,
    /// Their length (kept when they are freed): about the next cache's size.
    last_len: usize,
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
        })
    }

    /// Reads the file (or a sibling's, see [`Self::sibling`]) and checks it end
    /// to end: the part of the work that reads every byte, which the host does
    /// on another thread while it walks the tree. Says nothing; a file that
    /// could not be read is reported by [`Self::report_read_error`].
    pub fn load(mut self) -> CacheFile {
        match sys::read(&self.path()) {
            Ok(bytes) => self.bytes = Some(bytes),
            Err(Errno(libc::ENOENT)) => {
                let version = self.version().to_vec();
                self.bytes = self.sibling(&version);
                self.borrowed = true;
            }
            Err(e) => self.read_error = Some(e),
        }
        if let Some(bytes) = &self.bytes {
            self.checked = Cache::check(bytes);
            self.last_len = bytes.len();
        }
        self
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

    fn warn(&self, report: &Report, what: &[u8], why: &[u8]) {
        report.log_bytes(
            Level::Warning,
            &[what, &self.path(), b": ", why, b" (it is rebuilt)"],
        );
    }

    /// The records, or an empty cache (with one warning) when the file is
    /// damaged or of another depmod.
    pub fn parse(&self, report: &Report) -> Cache<'_> {
        let Some(bytes) = &self.bytes else {
            return Cache::default();
        };
        match self.checked.and_then(|()| Cache::parse_checked(bytes)) {
            Ok(c) => c,
            Err(e) => {
                if !self.borrowed {
                    self.warn(report, b"ignoring module cache ", e.describe().as_bytes());
                }
                Cache::default()
            }
        }
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

    /// Frees last run's bytes once they are no longer needed.
    pub fn forget_records(&mut self) {
        self.bytes = None;
    }

    /// Writes this run's records to a temp file beside the cache, to be put in
    /// its place by [`Self::commit`] once the indexes are written (the host
    /// does this while it writes them). Its name, or why it could not be written.
    pub fn stage(
        &self,
        module_dir: &[u8],
        paths: &[Vec<u8>],
        provenance: &[Option<Provenance>],
        data: &[ModuleData],
    ) -> sys::Result<Option<Vec<u8>>> {
        let modules = paths
            .iter()
            .zip(provenance)
            .zip(data)
            .filter_map(|((path, p), d)| Some((path.as_slice(), p.as_ref()?, d)));
        let Some(bytes) = cache::encode(module_dir, modules, self.last_len + (64 << 10)) else {
            return Ok(None);
        };
        sys::create_dir_all(&self.dir, 0o755)?;
        let dir = DirFd::open(&self.dir)?;
        let mut tmp = self.name.clone();
        tmp.extend_from_slice(super::write::temp_suffix().as_bytes());
        let written = dir
            .create_new(&tmp, 0o644)
            .and_then(|f| f.write_all(&bytes));
        if let Err(e) = written {
            let _ = dir.remove(&tmp);
            return Err(e);
        }
        Ok(Some(tmp))
    }

    /// Puts what [`Self::stage`] wrote in the cache's place if `keep` (the
    /// indexes were written), or removes it. Best effort: a failure gets one
    /// warning and changes nothing else (the indexes are already written).
    pub fn commit(&self, staged: sys::Result<Option<Vec<u8>>>, keep: bool, report: &Report) {
        let tmp = match staged {
            Ok(Some(tmp)) => tmp,
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
                let r = dir.rename(&tmp, &self.name);
                if r.is_err() {
                    let _ = dir.remove(&tmp);
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
