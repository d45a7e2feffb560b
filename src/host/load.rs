//! Reading and scanning module files on all cores.
//!
//! Each worker owns one file buffer and one decompression buffer, reused for every
//! module it takes; what survives a module is only its compact [`ModuleData`].

use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::sys::{self, Errno, File};
use crate::decompress::{self, Format};
use crate::scan::{LoadError, ModuleData};

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

/// Loads one module: reads it (decompressing by magic), scans it, keeps what the
/// outputs need.
fn load_one(
    path: &[u8],
    file_buf: &mut Vec<u8>,
    unpacked: &mut Vec<u8>,
    decoders: &mut decompress::Decoders,
) -> ModuleData {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return ModuleData::failed(errno_of(e)),
    };
    let len = match file.metadata() {
        Ok(m) => m.size(),
        Err(e) => return ModuleData::failed(errno_of(e)),
    };
    if len < 6 {
        return ModuleData::failed(LoadError::Malformed);
    }
    if len > MAX_MODULE_SIZE as u64 {
        return ModuleData::failed(LoadError::TooLarge);
    }
    if let Err(e) = read_file(&file, len, file_buf) {
        return ModuleData::failed(e);
    }
    match decompress::detect(file_buf) {
        None => ModuleData::failed(LoadError::Malformed),
        Some(Format::Plain) => ModuleData::from_image(file_buf),
        Some(format) => match decoders.decompress(format, file_buf, unpacked, MAX_MODULE_SIZE) {
            Ok(()) => ModuleData::from_image(unpacked),
            Err(e) => ModuleData::failed(LoadError::Decompress(e)),
        },
    }
}

/// Loads every module in `paths` (in parallel), returning results in the same order.
pub fn load_all(paths: &[&[u8]]) -> Vec<ModuleData> {
    let n = paths.len();
    let workers = sys::parallelism().min(n.max(1));
    let next = AtomicUsize::new(0);
    // Each worker takes the next path and keeps (index, result) pairs; the pairs
    // are put in path order once every worker is done.
    let done = sys::run_workers(workers, &|| {
        let mut file_buf = Vec::new();
        let mut unpacked = Vec::new();
        let mut decoders = decompress::Decoders::default();
        let mut local = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&path) = paths.get(i) else { break };
            local.push((
                i,
                load_one(path, &mut file_buf, &mut unpacked, &mut decoders),
            ));
        }
        local
    });
    let mut results: Vec<Option<ModuleData>> = (0..n).map(|_| None).collect();
    for (i, d) in done.into_iter().flatten() {
        // `results` has one slot per path, and `i` indexed `paths`.
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(d);
        }
    }
    results.into_iter().map(|d| d.unwrap_or_default()).collect()
}
