//! Compressed modules (`.ko.gz`, `.ko.xz`, `.ko.zst`).
//!
//! The format is chosen by magic bytes, never by suffix (compat §3.1); the suffix only
//! makes a file a candidate. Each decoder sits behind a cargo feature and writes into
//! a caller-owned buffer (one per worker, reused), refusing to grow it past a limit,
//! so a decompression bomb costs at most that much memory.
//!
//! Decoders were picked by measurement (README, "Decompression"): gzip uses the pure
//! Rust `zlib-rs`; xz and zstd use the reference C libraries (liblzma, libzstd),
//! compiled from source and linked statically — the pure-Rust decoders measured here
//! were 1.4× (xz) and 8× (zstd) slower, which would lose to kmod.

use alloc::vec::Vec;

#[cfg(feature = "gz")]
mod gz;
#[cfg(any(feature = "xz", feature = "xz-prebuilt"))]
mod xz;
#[cfg(feature = "zst")]
mod zst;

/// A module file's container format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Plain ELF (or anything unrecognised: parsed as-is).
    Plain,
    /// gzip (`1F 8B`).
    Gzip,
    /// xz (`FD 37 7A 58 5A 00`).
    Xz,
    /// zstd (`28 B5 2F FD`).
    Zstd,
}

impl Format {
    /// Lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Plain => "plain",
            Format::Gzip => "gzip",
            Format::Xz => "xz",
            Format::Zstd => "zstd",
        }
    }
}

/// Why a compressed module could not be decompressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// This build has no decoder for the format.
    Unsupported(Format),
    /// The stream is corrupt.
    Corrupt(Format),
    /// The stream ends before its end marker.
    Truncated(Format),
    /// The output would exceed the size limit.
    TooLarge(Format),
}

/// Detects the format from the first bytes. kmod needs at least 6 bytes to decide;
/// shorter files are `None` (kmod: "Invalid argument").
pub fn detect(head: &[u8]) -> Option<Format> {
    if head.len() < 6 {
        return None;
    }
    Some(if head.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
        Format::Zstd
    } else if head.starts_with(&[0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) {
        Format::Xz
    } else if head.starts_with(&[0x1F, 0x8B]) {
        Format::Gzip
    } else {
        Format::Plain
    })
}

/// The part of `out`'s spare capacity a decoder may fill next: at least one byte,
/// growing `out` (doubling, from 4 KiB) when it is full, but never past `limit + 1`
/// bytes in all (one byte over the limit is how an overflow is detected). Fails
/// when `out` already holds more than `limit`.
#[cfg(any(
    feature = "gz",
    feature = "xz",
    feature = "xz-prebuilt",
    feature = "zst"
))]
fn room(
    out: &mut Vec<u8>,
    limit: usize,
    format: Format,
) -> Result<&mut [core::mem::MaybeUninit<u8>], Error> {
    let most = limit.saturating_add(1);
    if out.len() >= most.min(out.capacity()) {
        if out.len() >= most {
            return Err(Error::TooLarge(format));
        }
        out.reserve(out.len().min(most - out.len()).max(4096));
    }
    let room = most - out.len();
    let spare = out.spare_capacity_mut();
    let n = spare.len().min(room);
    Ok(spare.get_mut(..n).unwrap_or_default())
}

/// The decoders of one worker, each created on first use and reused for every
/// later module (reset in between), so that their state and windows are allocated
/// once per worker rather than once per module.
#[derive(Default)]
pub struct Decoders {
    #[cfg(feature = "gz")]
    gz: Option<zlib_rs::Inflate>,
    #[cfg(any(feature = "xz", feature = "xz-prebuilt"))]
    xz: Option<xz::Stream>,
    #[cfg(feature = "zst")]
    zst: Option<zst::Ctx>,
}

impl Decoders {
    /// Decompresses `input` of format `format` into `out` (cleared first), refusing
    /// to produce more than `limit` bytes.
    pub fn decompress(
        &mut self,
        format: Format,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), Error> {
        out.clear();
        match format {
            Format::Plain => {
                if input.len() > limit {
                    return Err(Error::TooLarge(format));
                }
                out.extend_from_slice(input);
                Ok(())
            }
            #[cfg(feature = "gz")]
            Format::Gzip => gz::decode(&mut self.gz, input, out, limit),
            #[cfg(any(feature = "xz", feature = "xz-prebuilt"))]
            Format::Xz => xz::decode(&mut self.xz, input, out, limit),
            #[cfg(feature = "zst")]
            Format::Zstd => zst::decode(&mut self.zst, input, out, limit),
            #[allow(unreachable_patterns)]
            other => {
                let _ = limit;
                Err(Error::Unsupported(other))
            }
        }
    }
}

/// [`Decoders::decompress`] with fresh decoders, for one-off use.
pub fn decompress(
    format: Format,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    Decoders::default().decompress(format, input, out, limit)
}
