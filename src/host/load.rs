//! Reading and scanning module files on all cores.
//!
//! Each worker owns one file buffer, one decompression buffer and one image buffer,
//! reused for every module it takes; what survives a module is only its compact
//! [`ModuleData`]. A plain module is read in part: its ELF header, its section
//! table and the sections the scan reads (`crate::sparse`, about a fifth of the
//! bytes of the Debian tree), into an image of the file that is zero elsewhere.
//! Files are read (`pread`), never mapped, either way: a module truncated while we
//! look at it (a package upgrade running meanwhile) must give a short read, not a
//! SIGBUS; a short read sends the module down the whole-file path, which meets the
//! file as it is then.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::sys::{self, Errno, File};
use crate::cache::{Cache, FileId, Provenance, Record};
use crate::decompress::{self, Format};
use crate::digest::digest;
use crate::scan::{LoadError, ModuleData, ScanBuffers};
use crate::sparse::{self, Plan, Step};

/// Decompressed modules larger than this are refused (no decompression bomb takes
/// the machine). The largest real module (amdgpu, debug builds) is well below it.
pub const MAX_MODULE_SIZE: usize = 1 << 30;

fn errno_of(e: Errno) -> LoadError {
    LoadError::Io(e.0)
}

/// Reads a whole file into `buf` (reused), refusing files over `MAX_MODULE_SIZE`.
///
/// Modules are read, not mapped: a module file truncated while we look at it (a
/// package upgrade running meanwhile) must give a short read, not a SIGBUS.
fn read_file(file: &File, len: u64, buf: &mut Vec<u8>) -> Result<(), LoadError> {
    buf.clear();
    // The size `fstat` gave, plus one byte to see the end of file without growing.
    buf.reserve((len as usize).saturating_add(1));
    file.read_to_end(buf, MAX_MODULE_SIZE).map_err(errno_of)?;
    if buf.len() > MAX_MODULE_SIZE {
        return Err(LoadError::TooLarge);
    }
    Ok(())
}

/// A compressed module this large (GPU drivers: Debian 13's amdgpu.ko.xz is about
/// 9 MB and unpacks to 47 MB) is unpacked by one worker at a time, and its buffers
/// are freed afterwards: the peak memory of a run is then one large image plus the
/// workers' ordinary buffers, never one large image per worker. Only a handful of
/// modules of a tree are this large (7 to 14 of Debian 12's 4,023).
const BIG_COMPRESSED: usize = 512 << 10;

/// Held while a large module is unpacked and scanned ([`BIG_COMPRESSED`]).
static BIG_IMAGE: sys::StaticMutex = sys::StaticMutex::new();

/// One worker's buffers, reused for every module it loads.
#[derive(Default)]
struct Buffers {
    /// Whole files: compressed modules, and plain ones read whole.
    file: Vec<u8>,
    /// Decompressed modules.
    unpacked: Vec<u8>,
    /// Images of plain modules read in part (`crate::sparse`): zero wherever
    /// nothing is read, between modules all zero. Grown without writing to it (the
    /// allocator's zeroed pages), so only the pages ever read into are touched.
    image: Vec<u8>,
    /// The read plan of the plain module at hand, reset for each.
    plan: Plan,
    /// The scan's lists, emptied and refilled for each module.
    scan: ScanBuffers,
    decoders: decompress::Decoders,
}

/// Where a module's data came from this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A cache record, the file unchanged by `stat`: nothing read.
    Stat,
    /// A cache record with the same bytes: read, not decompressed or scanned.
    Content,
    /// The file, read and scanned.
    Read,
}

/// What one worker needs to know of the module cache (`crate::cache`).
#[derive(Clone, Copy)]
pub struct CacheUse<'c, 'a> {
    /// Last run's records.
    pub cache: &'c Cache<'a>,
    /// When this run began (before its walk): the time our reads are taken at.
    pub run_start_ns: i64,
    /// The bytes of the full cache file and of its delta, which module data
    /// taken from their records shares (`CacheFile::files`).
    pub files: [Option<&'c Arc<Vec<u8>>>; 2],
}

impl CacheUse<'_, '_> {
    /// What `record` gave, sharing the bytes of the file it is in.
    fn data_of(&self, record: &Record<'_>) -> Option<ModuleData> {
        let [full, delta] = self.files;
        record.data_in(if record.in_full { full } else { delta })
    }
}

/// Loads one module: reads it (decompressing by magic), scans it, keeps what the
/// outputs need. A plain module is read in part when it can be (`crate::sparse`),
/// otherwise whole.
///
/// With a cache, a record whose file `stat` shows unchanged (and not racily so) is
/// taken instead of reading the file at all, and a compressed file whose bytes a
/// record fingerprinted is not decompressed; either way the provenance for the
/// next cache comes back too.
fn load_one(
    path: (&[u8], Option<FileId>),
    bufs: &mut Buffers,
    cache: Option<CacheUse<'_, '_>>,
) -> (ModuleData, Option<Provenance>, Source) {
    match load_or_defer(path, bufs, cache, false) {
        Some(loaded) => loaded,
        // Not reached: without `may_defer` a large module waits its turn.
        None => (ModuleData::default(), None, Source::Read),
    }
}

/// [`load_one`], except that with `may_defer` a large compressed module
/// ([`BIG_COMPRESSED`]) that another worker's large module is holding up gives
/// `None` at once: the worker goes on with other modules and comes back to it.
fn load_or_defer(
    (path, found_as): (&[u8], Option<FileId>),
    bufs: &mut Buffers,
    cache: Option<CacheUse<'_, '_>>,
    may_defer: bool,
) -> Option<(ModuleData, Option<Provenance>, Source)> {
    if let Some(c) = cache {
        if let Some(record) = c.cache.by_path(path) {
            // What the walk's `stat` said, or ours now.
            let id = found_as.or_else(|| sys::metadata(path).ok().map(|m| m.file_id()));
            if let Some(id) = id {
                if record.trusted_for(&id) {
                    if let Some(data) = c.data_of(record) {
                        let p = Provenance {
                            id,
                            verified_ns: record.verified_ns,
                            content: record.content,
                            in_full_cache: record.in_full,
                        };
                        return Some((data, Some(p), Source::Stat));
                    }
                }
            }
        }
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return Some((ModuleData::failed(errno_of(e)), None, Source::Read)),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Some((ModuleData::failed(errno_of(e)), None, Source::Read)),
    };
    // Taken before any byte is read: a change after this moves a timestamp (or
    // is racily recent, and verified again next time).
    let provenance = cache.map(|c| Provenance {
        id: meta.file_id(),
        verified_ns: c.run_start_ns,
        content: None,
        in_full_cache: false,
    });
    let len = meta.size();
    if len < 6 {
        return Some((
            ModuleData::failed(LoadError::Malformed),
            provenance,
            Source::Read,
        ));
    }
    if len > MAX_MODULE_SIZE as u64 {
        return Some((
            ModuleData::failed(LoadError::TooLarge),
            provenance,
            Source::Read,
        ));
    }
    if len > sparse::HEAD as u64 {
        let mut head = [0u8; sparse::HEAD];
        // `pread` leaves the file position at 0, for the whole read below when the
        // file is not a plain ELF file, or meets a surprise (an error, a file shorter
        // than `fstat` said): that read then gives the verdict it gives today.
        if file.read_at(&mut head, 0) == Ok(head.len()) && head.starts_with(b"\x7fELF") {
            let (image, plan, scan) = (&mut bufs.image, &mut bufs.plan, &mut bufs.scan);
            if let Some(data) = load_sparse(&file, len, &head, image, plan, scan) {
                return Some((data, provenance, Source::Read));
            }
        }
    }
    if let Err(e) = read_file(&file, len, &mut bufs.file) {
        return Some((ModuleData::failed(e), provenance, Source::Read));
    }
    let file_buf = &bufs.file;
    let scan = &mut bufs.scan;
    let data = match decompress::detect(file_buf) {
        None => ModuleData::failed(LoadError::Malformed),
        Some(Format::Plain) => ModuleData::from_image_with(file_buf, scan),
        Some(format) => {
            let mut provenance = provenance;
            if let (Some(c), Some(p)) = (cache, provenance.as_mut()) {
                let content = digest(file_buf);
                p.content = Some(content);
                if let Some(data) = c.cache.by_content(&content).and_then(|r| c.data_of(r)) {
                    return Some((data, provenance, Source::Content));
                }
            }
            // One large image at a time, and not kept afterwards (peak memory).
            let big = if file_buf.len() < BIG_COMPRESSED {
                None
            } else if may_defer {
                Some(BIG_IMAGE.try_lock()?)
            } else {
                Some(BIG_IMAGE.lock())
            };
            let unpacked = &mut bufs.unpacked;
            let data = match bufs
                .decoders
                .decompress(format, file_buf, unpacked, MAX_MODULE_SIZE)
            {
                Ok(()) => ModuleData::from_image_with(unpacked, scan),
                Err(e) => ModuleData::failed(LoadError::Decompress(e)),
            };
            if big.is_some() {
                bufs.unpacked = Vec::new();
                bufs.file = Vec::new();
            }
            drop(big);
            return Some((data, provenance, Source::Read));
        }
    };
    Some((data, provenance, Source::Read))
}

/// The least a worker's image of plain modules ([`load_sparse`]) is made: larger
/// than any plain module of a distribution kernel, so that it is made once.
/// Only the pages read into are ever touched, and they stay with the worker; an
/// image that grew step by step with the largest module so far (the Debian
/// tree's reach 19 MB) was made anew each time, every page read into before
/// touched again (820 page faults of 9,000 in a cold run). Address space only:
/// a quarter as much on 32-bit systems.
const IMAGE_RESERVE: usize = if usize::BITS >= 64 {
    64 << 20
} else {
    16 << 20
};

/// Reads and scans a plain module of `len` bytes (`head`: its first bytes) in part,
/// into `image` (all zero on entry and on return). `None`: read it whole instead
/// (the plan gave up, or a read failed or came short: the file changed meanwhile,
/// and the whole read meets it as before). `scan`: the worker's scan lists.
fn load_sparse(
    file: &File,
    len: u64,
    head: &[u8],
    image: &mut Vec<u8>,
    plan: &mut Plan,
    scan: &mut ScanBuffers,
) -> Option<ModuleData> {
    let n = usize::try_from(len).ok()?;
    if image.len() < n {
        // Freshly zeroed memory (not written to: the allocator's zero pages), at
        // least IMAGE_RESERVE, as much as the largest module so far, at least
        // doubling.
        let grown = n
            .max(image.len().saturating_mul(2))
            .clamp(IMAGE_RESERVE, MAX_MODULE_SIZE);
        *image = Vec::new();
        *image = alloc::vec![0; grown];
    }
    let image = image.get_mut(..n)?;
    image.get_mut(..head.len())?.copy_from_slice(head);
    plan.reset(len);
    let result = loop {
        match plan.next(image) {
            Step::Read(ranges) => {
                let complete = ranges.iter().all(|r| {
                    let span = usize::try_from(r.start)
                        .ok()
                        .zip(usize::try_from(r.end).ok())
                        .and_then(|(a, b)| image.get_mut(a..b));
                    span.is_some_and(|s| file.read_at(s, r.start) == Ok(s.len()))
                });
                if !complete {
                    break None;
                }
            }
            Step::Scan => break Some(ModuleData::from_image_with(image, scan)),
            Step::Full => break None,
        }
    };
    for r in plan.filled() {
        let span = usize::try_from(r.start)
            .ok()
            .zip(usize::try_from(r.end).ok())
            .and_then(|(a, b)| image.get_mut(a..b));
        if let Some(s) = span {
            s.fill(0);
        }
    }
    result
}

/// Every module's data, in path order, with its provenance for the next cache
/// (when a cache is in use) and how many came from where.
pub struct Loaded {
    /// One per path.
    pub data: Vec<ModuleData>,
    /// One per path; `None` without a cache, or when not worth keeping.
    pub provenance: Vec<Option<Provenance>>,
    /// Modules taken from the cache by `stat`, by content, and read.
    pub counts: [usize; 3],
}

/// Loads every module in `paths` (in parallel), returning results in the same
/// order, each with its provenance for the next cache when a cache is in use.
/// Each path comes with what `stat` said of it when the walk found it, if it
/// asked (see `walk::scan_tree`).
pub fn load_all(paths: &[(&[u8], Option<FileId>)], cache: Option<CacheUse<'_, '_>>) -> Loaded {
    let n = paths.len();
    let workers = sys::parallelism().min(n.max(1));
    let next = AtomicUsize::new(0);
    // Each worker takes the next path and keeps (index, result) pairs; the pairs
    // are put in path order once every worker is done.
    let done = sys::run_workers(workers, &|| {
        let mut bufs = Buffers::default();
        let mut local = Vec::new();
        let mut deferred = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&path) = paths.get(i) else { break };
            match load_or_defer(path, &mut bufs, cache, true) {
                Some(loaded) => local.push((i, loaded)),
                None => deferred.push((i, path)),
            }
        }
        // Large modules another worker held up: now in turn.
        for (i, path) in deferred {
            local.push((i, load_one(path, &mut bufs, cache)));
        }
        local
    });
    let mut data: Vec<ModuleData> = (0..n).map(|_| ModuleData::default()).collect();
    let mut provenance: Vec<Option<Provenance>> = (0..n).map(|_| None).collect();
    let mut counts = [0; 3];
    for (i, (d, p, source)) in done.into_iter().flatten() {
        // There is one slot per path, and `i` indexed `paths`.
        if let (Some(ds), Some(ps)) = (data.get_mut(i), provenance.get_mut(i)) {
            *ds = d;
            *ps = p;
        }
        if let Some(c) = counts.get_mut(source as usize) {
            *c += 1;
        }
    }
    Loaded {
        data,
        provenance,
        counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    /// A file of our own with `bytes` in it, removed on drop.
    struct Temp(std::path::PathBuf);
    impl Temp {
        fn new(name: &str, bytes: &[u8]) -> Temp {
            let p = std::env::temp_dir().join(format!("depmod-load-{}-{name}", sys::pid()));
            std::fs::write(&p, bytes).unwrap();
            Temp(p)
        }
        fn path(&self) -> &[u8] {
            self.0.to_str().unwrap().as_bytes()
        }
    }
    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// This test program: an ELF file with a section table, read in part.
    fn elf() -> Vec<u8> {
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(bytes.starts_with(b"\x7fELF"));
        bytes
    }

    #[test]
    fn a_plain_module_read_in_part_is_scanned_as_whole_and_the_image_left_zero() {
        let bytes = elf();
        let t = Temp::new("whole", &bytes);
        let mut bufs = Buffers::default();
        let (got, _, _) = load_one((t.path(), None), &mut bufs, None);
        let whole = ModuleData::from_image(&bytes);
        assert_eq!(format!("{got:?}"), format!("{whole:?}"));
        assert!(bufs.file.is_empty(), "read whole");
        assert!(bufs.image.len() >= bytes.len());
        assert!(bufs.image.iter().all(|&b| b == 0));
    }

    #[test]
    fn a_file_that_shrinks_meanwhile_is_read_whole_as_it_is_then() {
        let bytes = elf();
        let t = Temp::new("shrinks", &bytes);
        let file = File::open(t.path()).unwrap();
        // Cut in half after `fstat` and the header: the section table is gone.
        let half = &bytes[..bytes.len() / 2];
        std::fs::write(&t.0, half).unwrap();
        let mut image = Vec::new();
        let head = &bytes[..sparse::HEAD];
        let mut plan = Plan::new(0);
        let mut scan = ScanBuffers::default();
        assert!(load_sparse(
            &file,
            bytes.len() as u64,
            head,
            &mut image,
            &mut plan,
            &mut scan
        )
        .is_none());
        assert!(image.iter().all(|&b| b == 0));
        // What the whole read then gives: the verdict on the file as it is.
        let mut bufs = Buffers::default();
        let (got, _, _) = load_one((t.path(), None), &mut bufs, None);
        assert_eq!(
            format!("{got:?}"),
            format!("{:?}", ModuleData::from_image(half))
        );
    }
}
