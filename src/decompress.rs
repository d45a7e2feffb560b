//! Compressed modules: the format is chosen by magic bytes, never by suffix (spec
//! §3.1); the suffix only makes a file a candidate.

use alloc::vec::Vec;

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

/// Why a compressed module could not be decompressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// This build has no decoder for the format.
    Unsupported(Format),
    /// The stream is corrupt or truncated.
    Corrupt(Format),
    /// The output would exceed the size cap.
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

/// Decompresses `input` of format `format` into `out` (cleared first), refusing to
/// produce more than `limit` bytes.
pub fn decompress(
    format: Format,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    out.clear();
    let _ = (input, limit);
    Err(Error::Unsupported(format))
}
