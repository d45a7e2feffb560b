//! The module cache's file: what depmod took from each module last time, and how
//! to tell that a module file is still the one it took it from.
//!
//! In: the bytes of a cache file (or nothing). Out: a [`Cache`] to look records up in, by module path (with the file
//! identity `stat` gave then) or by the fingerprint of a compressed file's bytes;
//! and, at the end of a run, the bytes of the new cache file ([`encode`]).
//!
//! The host decides when a record may be used (see [`Record::trusted_for`]): a
//! record found by path is trusted only if the file's identity is unchanged *and*
//! the file was last changed well before the record was taken (git's "racily
//! clean" rule: a file rewritten within the timestamp granularity of our read could
//! keep its old timestamps). Everything else is read again, or for compressed
//! files, recognised by the fingerprint of their bytes without decompressing.
//!
//! A cache is one *full* file, with a record of every module of the run that
//! wrote it, and optionally a *delta* beside it: the records that differ from the
//! full file's, tied to it by its checksum. A run where few modules changed
//! writes a new delta (kilobytes) instead of the full file (megabytes); a delta
//! that grows past a fraction of the tree is folded into a new full file (the
//! host decides when, see `host::cache`). A delta whose full file has been
//! replaced meanwhile no longer matches it and is not used.
//!
//! File layout (little-endian), checked end to end by a trailing checksum:
//!
//! ```text
//! magic "depmod-cache\n\0\0\0"  format u32  build id (bytes)  module dir (bytes, for
//!   people: records are found by absolute path, or by content whatever the tree)
//! extends u64: 0 in a full file; in a delta, the checksum of the full file
//! count u32, then per module:
//!   path (bytes)  dev u64  ino u64  size u64  mtime_ns i64  ctime_ns i64
//!   verified_ns i64  has_digest u8  digest [16]  record (bytes: ModuleData::encode)
//! checksum u64: XXH64 of everything before it (crate::digest::checksum)
//! ```
//!
//! "bytes" is a u32 length and the bytes. Nothing here trusts the file: a short,
//! damaged or older cache parses to a [`CacheError`], never a panic.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::byteindex::ByteIndex;
use crate::digest::{checksum, Digest};
use crate::scan::ModuleData;
use crate::wire::{Reader, Writer};

const MAGIC: &[u8; 16] = b"depmod-cache\n\0\0\0";
/// Bumped whenever the layout above or the meaning of a record changes.
const FORMAT: u32 = 3;
/// The build that wrote the cache. What a module's record holds is a function of
/// its bytes *and of this program*: a record written by another version of depmod
/// is not used.
const BUILD_ID: &str = concat!(env!("CARGO_PKG_NAME"), " ", env!("CARGO_PKG_VERSION"));

/// A file's timestamps may be this coarse (FAT: 2 s). A file changed less than
/// this before its record was taken is verified again, not trusted by `stat`.
pub const TIMESTAMP_GRANULARITY_NS: i64 = 2_000_000_000;

/// What `stat` says of a file, as far as telling a change goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    /// Device of the file system.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Last modification (ns since the epoch).
    pub mtime_ns: i64,
    /// Last status change (ns since the epoch): moves with every write and with
    /// any `touch -d` that sets mtime back.
    pub ctime_ns: i64,
}

/// Why a cache file is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheError {
    /// Not a cache file, or cut short, or damaged (its fingerprint does not match).
    Damaged,
    /// A cache of another format or another depmod build.
    OtherVersion,
}

impl CacheError {
    /// Words for the one message the host prints.
    pub fn describe(self) -> &'static str {
        match self {
            CacheError::Damaged => "damaged or truncated",
            CacheError::OtherVersion => "written by another version of depmod",
        }
    }
}

/// One module's entry, borrowed from the cache file.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// The module's path as the run named it.
    pub path: &'a [u8],
    /// The file's identity when its bytes were read.
    pub id: FileId,
    /// When those bytes were read (ns since the epoch, taken before the run's walk).
    pub verified_ns: i64,
    /// Fingerprint of the file's bytes (compressed modules only).
    pub content: Option<Digest>,
    /// The record is the full file's (not a delta's): a run that finds it still
    /// good need not write it again.
    pub in_full: bool,
    record: &'a [u8],
    /// Where `record` starts in the file's bytes.
    at: usize,
}

impl Record<'_> {
    /// May this record stand for the file whose identity is now `now`, without
    /// reading it? Only if nothing `stat` shows changed and the file's last change
    /// lies a full timestamp granule before its bytes were read (so a rewrite
    /// after that read must have moved a timestamp).
    pub fn trusted_for(&self, now: &FileId) -> bool {
        self.id == *now
            && self.id.mtime_ns.max(self.id.ctime_ns)
                < self.verified_ns.saturating_sub(TIMESTAMP_GRANULARITY_NS)
    }

    /// What the module gave. `None` if the record does not decode (a cache we
    /// wrote ourselves always does; the caller then reads the module).
    pub fn data(&self) -> Option<ModuleData> {
        ModuleData::decode(self.record)
    }

    /// [`Self::data`], sharing `file`'s buffer instead of copying the record out
    /// of it, when `file` holds the bytes this record was parsed from (the full
    /// file's for a record [`Self::in_full`], otherwise the delta's); a copy if
    /// not.
    pub fn data_in(&self, file: Option<&Arc<Vec<u8>>>) -> Option<ModuleData> {
        let range = self.at..self.at + self.record.len();
        match file {
            Some(f)
                if f.get(range.clone())
                    .is_some_and(|r| r.as_ptr() == self.record.as_ptr()) =>
            {
                ModuleData::decode_shared(f, range)
            }
            _ => self.data(),
        }
    }
}

/// A parsed cache file.
#[derive(Debug, Default)]
pub struct Cache<'a> {
    records: Vec<Record<'a>>,
    /// Positions in `records`, by path.
    by_path: ByteIndex,
    by_content: BTreeMap<Digest, usize>,
    /// `None` for a full file; for a delta, the checksum of its full file.
    extends: Option<u64>,
    /// This file's own checksum (what a delta of it names).
    sum: u64,
}

impl<'a> Cache<'a> {
    /// Parses `bytes` as a cache file.
    pub fn parse(bytes: &'a [u8]) -> Result<Cache<'a>, CacheError> {
        Self::check(bytes)?;
        Self::parse_checked(bytes)
    }

    /// The half of [`Cache::parse`] that reads every byte (the checksum), so
    /// that the host can do it while it walks the tree.
    pub fn check(bytes: &[u8]) -> Result<(), CacheError> {
        let body_len = bytes.len().checked_sub(8).ok_or(CacheError::Damaged)?;
        let (body, sum) = bytes.split_at(body_len);
        if body.get(..MAGIC.len()) != Some(&MAGIC[..]) {
            return Err(CacheError::Damaged);
        }
        if checksum(body).to_le_bytes() != sum {
            return Err(CacheError::Damaged);
        }
        Ok(())
    }

    /// The other half: the records of a file [`Cache::check`] accepted (given
    /// other bytes it still checks every length and offset; it only cannot tell
    /// damaged values from good ones).
    pub fn parse_checked(bytes: &'a [u8]) -> Result<Cache<'a>, CacheError> {
        let body = bytes
            .get(..bytes.len().saturating_sub(8))
            .ok_or(CacheError::Damaged)?;
        let mut r = Reader(body);
        if r.take(MAGIC.len()) != Some(&MAGIC[..]) {
            return Err(CacheError::Damaged);
        }
        let format = r.u32().ok_or(CacheError::Damaged)?;
        let build = r.bytes().ok_or(CacheError::Damaged)?;
        if format != FORMAT || build != BUILD_ID.as_bytes() {
            return Err(CacheError::OtherVersion);
        }
        // The module directory it was made for: informational. Records are found
        // by absolute path, so another tree's never match by path; by content they
        // may, which is the point (a tree copied afresh elsewhere).
        r.bytes().ok_or(CacheError::Damaged)?;
        let extends = r.u64().ok_or(CacheError::Damaged)?;
        let sum = bytes
            .get(body.len()..)
            .and_then(|t| t.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or(CacheError::Damaged)?;
        let mut cache = Cache {
            extends: (extends != 0).then_some(extends),
            sum,
            ..Cache::default()
        };
        cache
            .parse_records(r, body.len())
            .ok_or(CacheError::Damaged)?;
        Ok(cache)
    }

    /// Adds a delta's records to this full file's, in their place where both
    /// have one. `false` (nothing added) if `delta` is not a delta of this file.
    pub fn overlay(&mut self, delta: &Cache<'a>) -> bool {
        if self.extends.is_some() || delta.extends != Some(self.sum) {
            return false;
        }
        for r in &delta.records {
            self.add(*r);
        }
        true
    }

    /// Enters a record, in the place of one of the same path or content.
    fn add(&mut self, r: Record<'a>) {
        let i = self.records.len();
        self.records.push(r);
        let records = &self.records;
        self.by_path
            .insert(r.path, i as u32, |p| path_at(records, p));
        if let Some(d) = r.content {
            self.by_content.insert(d, i);
        }
    }

    /// For a delta, the checksum of the full file it adds to; `None` for a full
    /// file.
    pub fn extends(&self) -> Option<u64> {
        self.extends
    }

    /// This file's checksum: what a delta of it names in its header.
    pub fn checksum(&self) -> u64 {
        self.sum
    }

    /// The records that `r` holds, which ends where the `end` bytes of the
    /// file's body do (for each record's place in the file).
    fn parse_records(&mut self, mut r: Reader<'a>, end: usize) -> Option<()> {
        // path, five ids and verified_ns, has_digest, digest, record.
        let n = r.count(4 + 48 + 1 + 16 + 4)?;
        let in_full = self.extends.is_none();
        let cache = self;
        cache.records.reserve_exact(n);
        cache.by_path = ByteIndex::with_capacity(n);
        for _ in 0..n {
            let path = r.bytes()?;
            let id = FileId {
                dev: r.u64()?,
                ino: r.u64()?,
                size: r.u64()?,
                mtime_ns: r.i64()?,
                ctime_ns: r.i64()?,
            };
            let verified_ns = r.i64()?;
            let has_digest = r.u8()?;
            let d = r.digest()?;
            let content = match has_digest {
                0 => None,
                1 => Some(d),
                _ => return None,
            };
            let record = r.bytes()?;
            let at = end - r.0.len() - record.len();
            cache.add(Record {
                path,
                id,
                verified_ns,
                content,
                in_full,
                record,
                at,
            });
        }
        r.is_empty().then_some(())
    }

    /// The record of module `path`, if any.
    pub fn by_path(&self, path: &[u8]) -> Option<&Record<'a>> {
        let records = &self.records;
        let i = self.by_path.get(path, |p| path_at(records, p))?;
        self.records.get(i as usize)
    }

    /// A record of a compressed module with exactly these bytes, if any (a tree
    /// copied afresh: new paths or inodes, same files).
    pub fn by_content(&self, content: &Digest) -> Option<&Record<'a>> {
        self.records.get(*self.by_content.get(content)?)
    }

    /// Every record, in file order.
    pub fn records(&self) -> impl Iterator<Item = &Record<'a>> {
        self.records.iter()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// No records?
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// The path of record `p` (the key [`Cache::by_path`] looks up).
fn path_at<'a>(records: &[Record<'a>], p: u32) -> &'a [u8] {
    records.get(p as usize).map_or(&[][..], |r| r.path)
}

/// How one module of this run came to be known, for the next cache.
#[derive(Clone, Copy, Debug)]
pub struct Provenance {
    /// The file's identity before its bytes were read (or when a record was
    /// trusted).
    pub id: FileId,
    /// When its bytes were read.
    pub verified_ns: i64,
    /// Fingerprint of its bytes (compressed modules).
    pub content: Option<Digest>,
    /// Taken, unchanged, from a record of the full cache file (which therefore
    /// holds it already: a delta leaves it out).
    pub in_full_cache: bool,
}

/// A new cache file for module directory `dir`: one record per module given that
/// has a result that depends only on the file's bytes. A full file (`extends`
/// `None`) is given every module of the run, so that modules no longer in the
/// tree are dropped and it never outgrows the tree; a delta of the full file
/// whose checksum is `extends` is given those not in it.
pub fn encode<'m>(
    dir: &[u8],
    extends: Option<u64>,
    modules: impl Iterator<Item = (&'m [u8], &'m Provenance, &'m ModuleData)>,
    size_hint: usize,
) -> Option<Vec<u8>> {
    // Room for all of it at once (the last cache's size is a good guess): a
    // growing buffer would be copied and its pages touched again each time.
    let mut out = Vec::with_capacity(size_hint);
    let mut w = Writer(&mut out);
    w.0.extend_from_slice(MAGIC);
    w.u32(FORMAT);
    w.bytes(BUILD_ID.as_bytes())?;
    w.bytes(dir)?;
    // A checksum of 0 could not be told from "full": such a full file gets no
    // delta (the host checks), which costs one full write in 2^64.
    w.u64(extends.unwrap_or(0));
    let count_at = w.0.len();
    w.u32(0);
    let mut count = 0u32;
    for (path, p, data) in modules {
        let start = out.len();
        let mut w = Writer(&mut out);
        w.bytes(path)?;
        w.u64(p.id.dev);
        w.u64(p.id.ino);
        w.u64(p.id.size);
        w.i64(p.id.mtime_ns);
        w.i64(p.id.ctime_ns);
        w.i64(p.verified_ns);
        w.u8(u8::from(p.content.is_some()));
        w.0.extend_from_slice(&p.content.unwrap_or_default());
        // The record's length goes before it, once it is known.
        let len_at = w.0.len();
        w.u32(0);
        if data.encode(&mut out).is_none() {
            out.truncate(start);
            continue;
        }
        let len = u32::try_from(out.len() - len_at - 4).ok()?;
        out.get_mut(len_at..len_at + 4)?
            .copy_from_slice(&len.to_le_bytes());
        count = count.checked_add(1)?;
    }
    out.get_mut(count_at..count_at + 4)?
        .copy_from_slice(&count.to_le_bytes());
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{Export, Import, InfoKey, ModuleScan};
    use alloc::format;
    use alloc::vec;

    /// A module's data, through a cache file and back: shared with the file's
    /// buffer, copied out of it, or (given another buffer) copied anyway, it is
    /// the same data, and it encodes to the same record.
    #[test]
    fn a_record_taken_in_place_is_the_record_copied() {
        let scan = ModuleScan {
            modinfo: vec![
                (InfoKey::Alias, &b"fs-ext4"[..]),
                (InfoKey::Softdep, b"pre: crc32c"),
            ],
            exports: Ok(vec![Export {
                name: b"ext4_fn",
                crc: 0x1234_5678,
            }]),
            imports: vec![
                Import {
                    name: b"kfree",
                    crc: 0xdead_beef,
                    weak: false,
                },
                Import {
                    name: b"weak_one",
                    crc: 0,
                    weak: true,
                },
            ],
        };
        let made = ModuleData::from_scan(&scan);
        let p = Provenance {
            id: FileId {
                dev: 1,
                ino: 2,
                size: 3,
                mtime_ns: 4,
                ctime_ns: 5,
            },
            verified_ns: 6,
            content: None,
            in_full_cache: false,
        };
        let empty = ModuleData::default();
        let modules = [(&b"/m/a.ko"[..], &p, &made), (&b"/m/b.ko"[..], &p, &empty)];
        let file = Arc::new(encode(b"/m", None, modules.iter().copied(), 0).unwrap());
        let cache = Cache::parse(&file).unwrap();
        let other = Arc::new(file.to_vec());
        for (path, want) in [(&b"/m/a.ko"[..], &made), (b"/m/b.ko", &empty)] {
            let record = cache.by_path(path).unwrap();
            let mut want_record = Vec::new();
            want.encode(&mut want_record).unwrap();
            for got in [
                record.data_in(Some(&file)).unwrap(),
                record.data().unwrap(),
                record.data_in(Some(&other)).unwrap(),
                record.data_in(None).unwrap(),
            ] {
                assert_eq!(format!("{got:?}"), format!("{want:?}"));
                let mut again = Vec::new();
                got.encode(&mut again).unwrap();
                assert_eq!(again, want_record);
            }
        }
        assert_eq!(made.info(InfoKey::Alias).collect::<Vec<_>>(), [b"fs-ext4"]);
        assert_eq!(
            made.imports().collect::<Vec<_>>(),
            [(&b"kfree"[..], 0xdead_beef, false), (b"weak_one", 0, true)]
        );
    }
}
