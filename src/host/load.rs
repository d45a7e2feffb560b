//! Reading and scanning module files on all cores.
//!
//! Each worker owns one file buffer and one decompression buffer, reused for every
//! module it takes; what survives a module is only its compact [`ModuleData`].

#[allow(unused_imports)]
use std::prelude::rust_2021::*;
#[allow(unused_imports)]
use std::{format, vec};

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::decompress::{self, Format};
use crate::scan::{LoadError, ModuleData};

/// Decompressed modules larger than this are refused (no decompression bomb takes
/// the machine). The largest real module (amdgpu, debug builds) is well below it.
pub const MAX_MODULE_SIZE: usize = 1 << 30;

fn load_one(path: &[u8], file_buf: &mut Vec<u8>, unpacked: &mut Vec<u8>) -> ModuleData {
    file_buf.clear();
    let read = File::open(OsStr::from_bytes(path)).and_then(|mut f| f.read_to_end(file_buf));
    if let Err(e) = read {
        return ModuleData::failed(LoadError::Io(e.raw_os_error().unwrap_or(libc::EIO)));
    }
    match decompress::detect(file_buf) {
        None => ModuleData::failed(LoadError::Malformed),
        Some(Format::Plain) => ModuleData::from_image(file_buf),
        Some(format) => match decompress::decompress(format, file_buf, unpacked, MAX_MODULE_SIZE) {
            Ok(()) => ModuleData::from_image(unpacked),
            Err(e) => ModuleData::failed(LoadError::Decompress(e)),
        },
    }
}

/// Loads every module in `paths` (in parallel), returning results in the same order.
pub fn load_all(paths: &[&[u8]]) -> Vec<ModuleData> {
    let n = paths.len();
    let workers = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(1)
        .min(n.max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<ModuleData>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut file_buf = Vec::new();
                let mut unpacked = Vec::new();
                let mut local = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    local.push((i, load_one(paths[i], &mut file_buf, &mut unpacked)));
                }
                let mut r = results.lock().unwrap_or_else(|e| e.into_inner());
                for (i, d) in local {
                    r[i] = Some(d);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|d| d.unwrap_or_default())
        .collect()
}
