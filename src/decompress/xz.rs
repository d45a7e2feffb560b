//! xz through liblzma (C, xz 5.8, built from source by `liblzma-sys` and linked
//! statically): the reference decoder, as kmod uses. Measured on the real tree, one
//! core: 143 MB/s of output, against 96 for xz 5.2 (`lzma-sys`, the first choice),
//! 90 for lzma-rust2 and 53-74 for xz4rust (the fastest pure-Rust decoders).
//!
//! The three functions and the stream struct are declared here rather than taken
//! from `liblzma-sys`, because that crate links `std`: with feature `xz` it is a
//! dependency only to build and link `liblzma.a`; with `xz-prebuilt` (the static
//! dist binaries, which have no `std`) the same library, built by `cargo xtask dist`
//! through `liblzma-sys` for the target, is linked by `build.rs`.
#![allow(unsafe_code)]

use alloc::vec::Vec;
use core::ffi::{c_int, c_void};

use super::{Error, Format};

const F: Format = Format::Xz;

#[cfg(feature = "xz")]
use liblzma_sys as _;

/// `lzma_stream` of xz 5.8's `lzma/base.h`.
#[repr(C)]
struct LzmaStream {
    next_in: *const u8,
    avail_in: usize,
    total_in: u64,
    next_out: *mut u8,
    avail_out: usize,
    total_out: u64,
    allocator: *const c_void,
    internal: *mut c_void,
    reserved_ptr: [*mut c_void; 4],
    seek_pos: u64,
    reserved_int2: u64,
    reserved_int3: usize,
    reserved_int4: usize,
    reserved_enum1: c_int,
    reserved_enum2: c_int,
}

/// `lzma_ret` values (an `enum` in C, so an `int`).
const LZMA_OK: c_int = 0;
const LZMA_STREAM_END: c_int = 1;
const LZMA_BUF_ERROR: c_int = 10;
/// `lzma_action`.
const LZMA_FINISH: c_int = 3;
/// Decoder flag: keep decoding concatenated streams (what `xz -d` does).
const LZMA_CONCATENATED: u32 = 0x08;

extern "C" {
    fn lzma_stream_decoder(strm: *mut LzmaStream, memlimit: u64, flags: u32) -> c_int;
    fn lzma_code(strm: *mut LzmaStream, action: c_int) -> c_int;
    fn lzma_end(strm: *mut LzmaStream);
}

/// A decoder, reused for every module of a worker: initialising an initialised
/// stream again keeps its allocations (liblzma's documented way to reuse one), the
/// 1 MiB dictionary of kbuild's files among them. Allocating them per module cost
/// two or three `mmap`s and `munmap`s per module with musl's allocator, and the
/// page faults of a fresh dictionary each time.
pub struct Stream(LzmaStream);

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised by `lzma_stream_decoder` (or is all zero,
        // which `lzma_end` accepts), and is not used after this.
        unsafe { lzma_end(&mut self.0) };
    }
}

/// Decodes `input` (concatenated xz streams) into `out`, reusing `state` (created on
/// first use).
pub fn decode(
    state: &mut Option<Stream>,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    // SAFETY: `LzmaStream` is a plain C struct (pointers, integers); all-zero is
    // LZMA_STREAM_INIT.
    let s = state.get_or_insert_with(|| Stream(unsafe { core::mem::zeroed() }));
    // SAFETY: `s.0` is all zero or a stream liblzma initialised before, which
    // `lzma_stream_decoder` accepts (and reuses).
    let rc = unsafe { lzma_stream_decoder(&mut s.0, u64::MAX, LZMA_CONCATENATED) };
    if rc != LZMA_OK {
        return Err(Error::Corrupt(F));
    }
    s.0.next_in = input.as_ptr();
    s.0.avail_in = input.len();
    out.clear();
    out.reserve(
        input
            .len()
            .saturating_mul(4)
            .min(limit.saturating_add(1))
            .max(4096),
    );
    loop {
        let len = out.len();
        let spare = super::room(out, limit, F)?;
        let spare_len = spare.len();
        s.0.next_out = spare.as_mut_ptr().cast();
        s.0.avail_out = spare_len;
        let before = spare_len;
        // SAFETY: `next_in/avail_in` describe `input`, alive for this call;
        // `next_out/avail_out` describe the vector's spare capacity, which liblzma
        // only writes into; it reports how much it wrote through `avail_out`.
        let rc = unsafe { lzma_code(&mut s.0, LZMA_FINISH) };
        let produced = before - s.0.avail_out;
        // SAFETY: liblzma initialised exactly `produced` bytes after `len`.
        unsafe { out.set_len(len + produced) };
        if out.len() > limit {
            return Err(Error::TooLarge(F));
        }
        match rc {
            LZMA_STREAM_END => return Ok(()),
            LZMA_OK => {}
            LZMA_BUF_ERROR => return Err(Error::Truncated(F)),
            _ => return Err(Error::Corrupt(F)),
        }
        if produced == 0 && s.0.avail_in == 0 && s.0.avail_out > 0 {
            return Err(Error::Truncated(F));
        }
    }
}
