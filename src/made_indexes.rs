//! The module cache's note of the indexes a run wrote: for each `.bin` output,
//! the fingerprint of what it was made from ([`crate::index::Trie::fingerprint`])
//! and the fingerprint of the bytes that came out.
//!
//! In: the bytes of such a note (or nothing). Out: "an index made from these
//! insertions has these bytes" ([`MadeIndexes::find`]), and at the end of a run the
//! bytes of a new note ([`encode`]).
//!
//! Why: a module rebuilt by DKMS or a kernel package usually gives depmod exactly
//! what it gave before (its aliases, exports and imports did not change), and then
//! every index comes out byte for byte as the one already in place. Laying out
//! `modules.alias.bin` and `modules.symbols.bin` again was most of what a cached
//! run spent on its outputs. With this note the host can tell, from the
//! insertions alone, which bytes the index would have; if the file in place has
//! exactly those bytes (it checks them, every run), it is left there. Each entry
//! states a fact about this build of depmod ("these insertions give these
//! bytes"), true whichever run wrote it, so two depmods at once cannot make it
//! wrong; a damaged, older or foreign note is simply not used.
//!
//! File layout (little-endian), checked end to end by a trailing checksum:
//!
//! ```text
//! magic "depmod-indexes\n\0"  format u32  build id (bytes)
//! count u32, per index: name (bytes)  made_from [16]  size u64  content [16]
//! checksum u64: XXH64 of everything before it (crate::digest::checksum)
//! ```

use alloc::vec::Vec;

use crate::cache::CacheError;
use crate::digest::{checksum, Digest};
use crate::wire::{Reader, Writer};

const MAGIC: &[u8; 16] = b"depmod-indexes\n\0";
/// Bumped whenever the layout above changes.
const FORMAT: u32 = 1;
/// The build that wrote the note: how insertions are laid out is this
/// program's, so another version's entries are not used.
const BUILD_ID: &str = concat!(env!("CARGO_PKG_NAME"), " ", env!("CARGO_PKG_VERSION"));

/// One index as a run wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MadeIndex<'a> {
    /// The file's name in the output directory.
    pub name: &'a [u8],
    /// [`crate::index::Trie::fingerprint`] of what it was made from.
    pub made_from: Digest,
    /// Its length in bytes.
    pub size: u64,
    /// [`crate::digest::Fingerprint`] of its bytes.
    pub content: Digest,
}

/// A parsed note.
#[derive(Debug, Default)]
pub struct MadeIndexes<'a> {
    entries: Vec<MadeIndex<'a>>,
}

impl<'a> MadeIndexes<'a> {
    /// Parses `bytes` as a note; anything short, damaged or of another build is
    /// refused.
    pub fn parse(bytes: &'a [u8]) -> Result<MadeIndexes<'a>, CacheError> {
        let body_len = bytes.len().checked_sub(8).ok_or(CacheError::Damaged)?;
        let (body, sum) = bytes.split_at(body_len);
        if body.get(..MAGIC.len()) != Some(&MAGIC[..]) || checksum(body).to_le_bytes() != sum {
            return Err(CacheError::Damaged);
        }
        let mut r = Reader(body);
        r.take(MAGIC.len()).ok_or(CacheError::Damaged)?;
        let format = r.u32().ok_or(CacheError::Damaged)?;
        let build = r.bytes().ok_or(CacheError::Damaged)?;
        if format != FORMAT || build != BUILD_ID.as_bytes() {
            return Err(CacheError::OtherVersion);
        }
        Self::entries_from(r).ok_or(CacheError::Damaged)
    }

    fn entries_from(mut r: Reader<'a>) -> Option<MadeIndexes<'a>> {
        // name, made_from, size, content.
        let n = r.count(4 + 16 + 8 + 16)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(MadeIndex {
                name: r.bytes()?,
                made_from: r.digest()?,
                size: r.u64()?,
                content: r.digest()?,
            });
        }
        r.is_empty().then_some(MadeIndexes { entries })
    }

    /// What index `name` made from insertions fingerprinted `made_from` came
    /// out as, if the note knows.
    pub fn find(&self, name: &[u8], made_from: &Digest) -> Option<&MadeIndex<'a>> {
        self.entries
            .iter()
            .find(|e| e.name == name && e.made_from == *made_from)
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[MadeIndex<'a>] {
        &self.entries
    }
}

/// A note of `indexes` (one entry per name: the first given wins).
pub fn encode<'m>(indexes: impl Iterator<Item = MadeIndex<'m>>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = Writer(&mut out);
    w.0.extend_from_slice(MAGIC);
    w.u32(FORMAT);
    w.bytes(BUILD_ID.as_bytes())?;
    let mut kept: Vec<MadeIndex<'m>> = Vec::new();
    for e in indexes {
        if !kept.iter().any(|k| k.name == e.name) {
            kept.push(e);
        }
    }
    w.u32(u32::try_from(kept.len()).ok()?);
    for e in &kept {
        w.bytes(e.name)?;
        w.0.extend_from_slice(&e.made_from);
        w.u64(e.size);
        w.0.extend_from_slice(&e.content);
    }
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let entries = [
            MadeIndex {
                name: b"modules.alias.bin",
                made_from: [1; 16],
                size: 1234,
                content: [2; 16],
            },
            MadeIndex {
                name: b"modules.dep.bin",
                made_from: [3; 16],
                size: 99,
                content: [4; 16],
            },
        ];
        encode(entries.into_iter()).unwrap()
    }

    #[test]
    fn round_trip_and_lookup() {
        let bytes = sample();
        let note = MadeIndexes::parse(&bytes).unwrap();
        assert_eq!(note.entries().len(), 2);
        let e = note.find(b"modules.alias.bin", &[1; 16]).unwrap();
        assert_eq!((e.size, e.content), (1234, [2; 16]));
        assert!(note.find(b"modules.alias.bin", &[3; 16]).is_none());
        assert!(note.find(b"modules.symbols.bin", &[1; 16]).is_none());
    }

    #[test]
    fn every_truncation_and_flip_is_refused() {
        let bytes = sample();
        for n in 0..bytes.len() {
            assert!(MadeIndexes::parse(&bytes[..n]).is_err(), "cut at {n}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(MadeIndexes::parse(&b).is_err(), "byte {i} bit {bit}");
            }
        }
    }
}
