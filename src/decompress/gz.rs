//! gzip through `zlib-rs` (pure Rust), streaming into the caller's buffer. kbuild
//! writes single-member files whose trailer holds the uncompressed size (mod 2³²),
//! which sizes the buffer up front.
//!
//! The decoder writes into the vector's spare capacity, so a reused buffer is never
//! zero-filled first (that was ~10% of the time on a gz tree). With the `std` feature
//! zlib-rs picks its SIMD paths at run time: 880 MB/s of output here against 670
//! without (one core, the real Debian tree).
//!
//! One inflate state (with its 32 KiB window) serves every module of a worker: it is
//! reset, not rebuilt. zlib-rs can only reset to zlib or raw deflate, not to gzip, so
//! the state runs raw deflate and this module reads the gzip member header and checks
//! the trailer (CRC-32 and length) itself, as zlib does in gzip mode. Allocating the
//! state per module cost an `mmap` and a `munmap` per module with musl's allocator.
// `Vec::set_len` after the decoder reports what it wrote; see the SAFETY note.
#![allow(unsafe_code)]

use alloc::vec::Vec;

use zlib_rs::{Inflate, InflateFlush, Status};

use super::{Error, Format};

const F: Format = Format::Gzip;

/// gzip header flags (RFC 1952).
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xE0;

/// The little-endian 16-bit field at `at`; `Truncated` when the input ends first.
fn le16(input: &[u8], at: usize) -> Result<u16, Error> {
    match input.get(at..at.saturating_add(2)) {
        Some(&[lo, hi]) => Ok(u16::from_le_bytes([lo, hi])),
        _ => Err(Error::Truncated(F)),
    }
}

/// Length of the gzip member header at the start of `input`: `Truncated` when the
/// input ends inside it, `Corrupt` for what zlib rejects (magic, method other than
/// deflate, reserved flags, a header CRC that does not match).
fn header_len(input: &[u8]) -> Result<usize, Error> {
    let fixed = input.get(..10).ok_or(Error::Truncated(F))?;
    let &[id1, id2, method, flags, ..] = fixed else {
        return Err(Error::Truncated(F));
    };
    if id1 != 0x1F || id2 != 0x8B || method != 8 || flags & FRESERVED != 0 {
        return Err(Error::Corrupt(F));
    }
    let mut at = 10usize;
    if flags & FEXTRA != 0 {
        at += 2 + usize::from(le16(input, at)?);
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = input.get(at..).ok_or(Error::Truncated(F))?;
            let nul = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or(Error::Truncated(F))?;
            at += nul + 1;
        }
    }
    if flags & FHCRC != 0 {
        let head = input.get(..at).ok_or(Error::Truncated(F))?;
        if zlib_rs::crc32::crc32(0, head) & 0xFFFF != u32::from(le16(input, at)?) {
            return Err(Error::Corrupt(F));
        }
        at += 2;
    }
    if at > input.len() {
        return Err(Error::Truncated(F));
    }
    Ok(at)
}

/// Decodes the first gzip member of `input` into `out`, reusing `state` (created on
/// first use).
pub fn decode(
    state: &mut Option<Inflate>,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    let hint = match input.len().checked_sub(4).and_then(|at| input.get(at..)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as usize,
        _ => 0,
    };
    out.clear();
    let body_at = header_len(input)?;
    let body = input.get(body_at..).unwrap_or_default();
    // A trailer is only a hint (it may be corrupt or cut off): start there, but no
    // larger than deflate's best ratio (about 1032:1) allows; grow when needed.
    let most = input.len().saturating_mul(1032).saturating_add(4096);
    out.reserve(
        hint.saturating_add(1)
            .min(most)
            .clamp(4096, limit.saturating_add(1).max(4096)),
    );
    // Raw deflate (no header), 32 KiB window.
    let inflate = match state {
        Some(s) => {
            s.reset(false);
            s
        }
        None => state.insert(Inflate::new(false, 15)),
    };
    loop {
        let len = out.len();
        let spare = super::room(out, limit, F)?;
        let spare_len = spare.len();
        let consumed = usize::try_from(inflate.total_in()).unwrap_or(usize::MAX);
        let rest = body.get(consumed..).unwrap_or(&[]);
        let before = inflate.total_out();
        let status = inflate.decompress_uninit(rest, spare, InflateFlush::NoFlush);
        let produced = usize::try_from(inflate.total_out() - before)
            .unwrap_or(usize::MAX)
            .min(spare_len);
        // SAFETY: zlib-rs wrote `produced` bytes (its `total_out` advanced by that
        // much, never beyond the `spare_len` bytes it was given) at the start of the
        // spare capacity, so the first `len + produced` bytes are initialised.
        unsafe { out.set_len(len + produced) };
        if out.len() > limit {
            return Err(Error::TooLarge(F));
        }
        match status {
            Ok(Status::StreamEnd) => {
                let end = usize::try_from(inflate.total_in()).unwrap_or(usize::MAX);
                return check_trailer(body.get(end..).unwrap_or_default(), out);
            }
            Ok(Status::Ok | Status::BufError) => {
                let all_in =
                    usize::try_from(inflate.total_in()).unwrap_or(usize::MAX) >= body.len();
                if all_in && produced < spare_len {
                    // Input exhausted while there was room for output: cut short.
                    return Err(Error::Truncated(F));
                }
                if produced == 0 && inflate.total_in() == consumed as u64 {
                    // Room on both sides and no progress: it would loop forever.
                    return Err(Error::Corrupt(F));
                }
            }
            Err(_) => return Err(Error::Corrupt(F)),
        }
    }
}

/// The member trailer: CRC-32 of the data, then its length mod 2³² (both little
/// endian). Anything after it (another member, padding) is ignored, as before.
fn check_trailer(trailer: &[u8], data: &[u8]) -> Result<(), Error> {
    let Some(&[c0, c1, c2, c3, l0, l1, l2, l3]) = trailer.get(..8) else {
        return Err(Error::Truncated(F));
    };
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    let len = u32::from_le_bytes([l0, l1, l2, l3]);
    if zlib_rs::crc32::crc32(0, data) != crc || data.len() as u32 != len {
        return Err(Error::Corrupt(F));
    }
    Ok(())
}
