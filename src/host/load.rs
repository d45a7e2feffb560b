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
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::decompress::{self, Format};
use crate::scan::{LoadError, ModuleData};

/// Decompressed modules larger than this are refused (no decompression bomb takes
/// the machine). The largest real module (amdgpu, debug builds) is well below it.
pub const MAX_MODULE_SIZE: usize = 1 << 30;

/// A read-only private mapping of a whole file.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(file: &File, len: usize) -> Option<Mapping> {
        // SAFETY: a fresh read-only private mapping of `len` bytes of an open file;
        // the kernel picks the address. Failure is reported as MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        (ptr != libc::MAP_FAILED).then_some(Mapping { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes and lives as long as `self`.
        // Like kmod (which maps modules the same way), we assume module files are
        // not truncated while depmod runs.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; unmapped once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

fn errno_of(e: &std::io::Error) -> LoadError {
    LoadError::Io(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Loads one module. Plain modules are mapped, so only the pages the scan touches
/// are read (headers, symbol and string tables, .modinfo — not code or relocations).
fn load_one(path: &[u8], file_buf: &mut Vec<u8>, unpacked: &mut Vec<u8>) -> ModuleData {
    let file = match File::open(OsStr::from_bytes(path)) {
        Ok(f) => f,
        Err(e) => return ModuleData::failed(errno_of(&e)),
    };
    let len = match file.metadata() {
        Ok(m) => m.len() as usize,
        Err(e) => return ModuleData::failed(errno_of(&e)),
    };
    if len < 6 {
        return ModuleData::failed(LoadError::Malformed);
    }
    let mut head = [0u8; 6];
    if let Err(e) = file.read_exact_at(&mut head, 0) {
        return ModuleData::failed(errno_of(&e));
    }
    match decompress::detect(&head) {
        None => ModuleData::failed(LoadError::Malformed),
        Some(Format::Plain) => match Mapping::new(&file, len) {
            Some(map) => ModuleData::from_image(map.bytes()),
            None => {
                file_buf.clear();
                match (&file).read_to_end(file_buf) {
                    Ok(_) => ModuleData::from_image(file_buf),
                    Err(e) => ModuleData::failed(errno_of(&e)),
                }
            }
        },
        Some(format) => {
            file_buf.clear();
            if let Err(e) = (&file).read_to_end(file_buf) {
                return ModuleData::failed(errno_of(&e));
            }
            match decompress::decompress(format, file_buf, unpacked, MAX_MODULE_SIZE) {
                Ok(()) => ModuleData::from_image(unpacked),
                Err(e) => ModuleData::failed(LoadError::Decompress(e)),
            }
        }
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
                    let Some(&path) = paths.get(i) else { break };
                    local.push((i, load_one(path, &mut file_buf, &mut unpacked)));
                }
                let mut r = results.lock().unwrap_or_else(|e| e.into_inner());
                for (i, d) in local {
                    // `r` has one slot per path, and `i` indexed `paths`.
                    if let Some(slot) = r.get_mut(i) {
                        *slot = Some(d);
                    }
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
