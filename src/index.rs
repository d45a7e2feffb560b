//! kmod's binary index format (`modules.*.bin`, compat §8): a radix trie of 7-bit keys,
//! each key holding values ordered by priority.
//!
//! [`Trie`] collects keys and values; [`Trie::write`] lays out the canonical shape
//! in kmod 34's pre-order layout in one pass over the sorted keys; [`Reader`] walks
//! any index (pre- or post-order, as libkmod does) — the tests compare indexes by
//! content with it, and it is what a fuzzer can hit with arbitrary bytes. [`Sink`]
//! is where the text outputs go.

use alloc::vec::Vec;

use crate::digest::{Digest, Fingerprint};

/// Index file magic.
pub const MAGIC: u32 = 0xB007_F457;
/// Index format version 2.1.
pub const VERSION: u32 = 0x0002_0001;
const F_PREFIX: u32 = 0x8000_0000;
const F_VALUES: u32 = 0x4000_0000;
const F_CHILDS: u32 = 0x2000_0000;
const OFFSET_MASK: u32 = 0x0FFF_FFFF;

/// Where output bytes go.
pub trait Sink {
    /// Appends bytes.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A key or value had a byte ≥ 0x80: the format cannot hold it (kmod 34 stops
/// with FATAL; our callers leave the entry out and say so).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadChar {
    /// The offending byte.
    pub byte: u8,
    /// The whole key or value.
    pub string: Vec<u8>,
}

/// One insertion: where its key and value lie in [`Trie::bytes`], and its priority.
#[derive(Clone, Copy)]
struct Item {
    key: usize,
    key_len: usize,
    value_len: usize,
    priority: u32,
}

/// A kmod index under construction.
///
/// Insertions are kept flat (every key and value in one buffer, two lengths and a
/// priority per insertion), with no node made until the index is written: then the
/// keys are sorted once and the trie's canonical shape (kmod's: a node per point
/// where keys part, the root without prefix) is read off the sorted keys, in the
/// pre-order kmod 34 writes. This costs a sort instead of a walk, split and
/// allocation per insertion.
#[derive(Default)]
pub struct Trie {
    bytes: Vec<u8>,
    items: Vec<Item>,
    /// With duplicate checking ([`Trie::checking_duplicates`]): an open-addressing
    /// table of item numbers plus one (0 = free), one per distinct (key, value).
    seen: Option<Vec<u32>>,
}

/// Can `s` be a key or value of an index (7-bit ASCII only)?
#[inline]
pub fn is_indexable(s: &[u8]) -> bool {
    s.is_ascii()
}

#[inline]
fn check(s: &[u8]) -> Result<(), BadChar> {
    // A word at a time first: nearly every key and value is ASCII.
    if s.is_ascii() {
        return Ok(());
    }
    match s.iter().find(|&&b| b >= 0x80) {
        Some(&byte) => Err(BadChar {
            byte,
            string: s.to_vec(),
        }),
        None => Ok(()),
    }
}

/// FNV-1a over a key and its value (0x80, which neither can hold, between them).
fn pair_hash(key: &[u8], value: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.iter().chain(&[0x80]).chain(value) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn node_flags(prefix: bool, children: bool, values: bool) -> u32 {
    let mut f = 0;
    if prefix {
        f |= F_PREFIX;
    }
    if children {
        f |= F_CHILDS;
    }
    if values {
        f |= F_VALUES;
    }
    f
}

/// An insertion being laid out: its key, and its place in insertion order (in
/// `Trie::items`, for its value and priority). Small, as the sort moves these.
#[derive(Clone, Copy)]
struct Keyed<'a> {
    key: &'a [u8],
    item: u32,
}

/// Orders `items` by their key's byte at `at`, a key ending before it first
/// (the order among equal bytes does not matter: each group is ordered again
/// below, and a node's values by their priority), and leaves in `buckets` each
/// item's bucket in the new order: 0 for a key ending at `at`, c + 1 for byte c
/// (keys are ASCII, `insert` checked). Each key's byte is read once (the keys lie
/// all over the trie's bytes; the buckets are together): an insertion sort for
/// the small ranges most nodes have, otherwise a counting sort through `moved`.
fn sort_by_byte<'k>(
    items: &mut [Keyed<'k>],
    at: usize,
    buckets: &mut Vec<u8>,
    moved: &mut Vec<Keyed<'k>>,
) {
    buckets.clear();
    buckets.extend(
        items
            .iter()
            .map(|k| k.key.get(at).map_or(0, |&c| (c & 0x7f) + 1)),
    );
    if items.len() <= 32 {
        for i in 1..items.len() {
            let mut j = i;
            while j > 0 {
                match (buckets.get(j - 1), buckets.get(j)) {
                    (Some(a), Some(b)) if a > b => {
                        buckets.swap(j - 1, j);
                        items.swap(j - 1, j);
                    }
                    _ => break,
                }
                j -= 1;
            }
        }
        return;
    }
    let mut counts = [0usize; 129];
    for &b in buckets.iter() {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
    }
    // Where each bucket's next item goes.
    let mut next = [0usize; 129];
    let mut sum = 0;
    for (n, &count) in next.iter_mut().zip(&counts) {
        *n = sum;
        sum += count;
    }
    moved.clear();
    moved.extend_from_slice(items);
    for (k, &b) in moved.iter().zip(buckets.iter()) {
        if let Some(n) = next.get_mut(usize::from(b)) {
            if let Some(slot) = items.get_mut(*n) {
                *slot = *k;
            }
            *n += 1;
        }
    }
    buckets.clear();
    for (b, &count) in counts.iter().enumerate() {
        buckets.extend(core::iter::repeat_n(b as u8, count));
    }
}

/// Length of the common prefix of `a` and `b`, eight bytes at a time.
#[inline]
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while let (Some(x), Some(y)) = (
        a.get(i..).and_then(|s| s.first_chunk::<8>()),
        b.get(i..).and_then(|s| s.first_chunk::<8>()),
    ) {
        let diff = u64::from_le_bytes(*x) ^ u64::from_le_bytes(*y);
        if diff != 0 {
            return i + (diff.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a.get(i) == b.get(i) {
        i += 1;
    }
    i
}

impl Trie {
    /// An empty index (its file is the 12-byte header with an empty root).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty index whose [`Trie::insert`] says when a key already held the
    /// same value (for `-w`); the check costs a hash per insertion.
    pub fn checking_duplicates() -> Self {
        Trie {
            seen: Some(Vec::new()),
            ..Self::default()
        }
    }

    fn key_of(&self, item: &Item) -> &[u8] {
        self.bytes
            .get(item.key..item.key + item.key_len)
            .unwrap_or_default()
    }

    fn value_of(&self, item: &Item) -> &[u8] {
        let start = item.key + item.key_len;
        self.bytes
            .get(start..start + item.value_len)
            .unwrap_or_default()
    }

    fn item(&self, i: usize) -> Item {
        self.items.get(i).copied().unwrap_or(Item {
            key: 0,
            key_len: 0,
            value_len: 0,
            priority: 0,
        })
    }

    /// Adds `value` under `key` with `priority`: placed before the first value of equal
    /// or higher priority. Returns `Ok(true)` if `key` already held the same value
    /// (kmod keeps both; `-w` reports it) — known only to a trie made by
    /// [`Trie::checking_duplicates`], otherwise always `Ok(false)`.
    pub fn insert(&mut self, key: &[u8], value: &[u8], priority: u32) -> Result<bool, BadChar> {
        check(key)?;
        check(value)?;
        let item = Item {
            key: self.bytes.len(),
            key_len: key.len(),
            value_len: value.len(),
            priority,
        };
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(value);
        self.items.push(item);
        Ok(self.is_repeat(self.items.len() - 1))
    }

    /// Whether item `new` repeats an earlier (key, value); enters it if not.
    fn is_repeat(&mut self, new: usize) -> bool {
        let Some(mut table) = self.seen.take() else {
            return false;
        };
        if (self.items.len() + 1) * 2 > table.len() {
            let old = core::mem::take(&mut table);
            table = alloc::vec![0u32; (old.len() * 2).max(64)];
            for slot in old.into_iter().filter(|&s| s != 0) {
                self.enter(&mut table, slot as usize - 1);
            }
        }
        let repeat = self.enter(&mut table, new);
        self.seen = Some(table);
        repeat
    }

    /// Enters item `i` into `table` (a power of two long, never full) unless an
    /// equal (key, value) is there; says whether one was.
    fn enter(&self, table: &mut [u32], i: usize) -> bool {
        let it = self.item(i);
        let (key, value) = (self.key_of(&it), self.value_of(&it));
        let mask = table.len() - 1;
        let mut at = pair_hash(key, value) as usize & mask;
        loop {
            let Some(slot) = table.get_mut(at) else {
                return false;
            };
            if *slot == 0 {
                *slot = i as u32 + 1;
                return false;
            }
            let other = self.item(*slot as usize - 1);
            if self.key_of(&other) == key && self.value_of(&other) == value {
                return true;
            }
            at = (at + 1) & mask;
        }
    }

    /// A fingerprint of everything [`Trie::write`] makes the file from: every key,
    /// value and priority in insertion order, and the layout's version. Equal
    /// fingerprints mean equal files, so the host can tell that an index it wrote
    /// before would come out the same without laying it out again
    /// ([`crate::made_indexes`]).
    pub fn fingerprint(&self) -> Digest {
        let mut f = Fingerprint::default();
        f.update(&MAGIC.to_le_bytes());
        f.update(&VERSION.to_le_bytes());
        f.update(&(self.items.len() as u64).to_le_bytes());
        f.update(&self.bytes);
        // Each insertion's lengths and priority, a batch at a time.
        let mut batch = [0u8; 20 * 64];
        for items in self.items.chunks(64) {
            for (it, slot) in items.iter().zip(batch.chunks_exact_mut(20)) {
                let (lens, priority) = slot.split_at_mut(16);
                let (key, value) = lens.split_at_mut(8);
                key.copy_from_slice(&(it.key_len as u64).to_le_bytes());
                value.copy_from_slice(&(it.value_len as u64).to_le_bytes());
                priority.copy_from_slice(&it.priority.to_le_bytes());
            }
            f.update(batch.get(..20 * items.len()).unwrap_or_default());
        }
        f.finish()
    }

    /// Writes the index in kmod 34's layout: header, then nodes in pre-order (a node,
    /// then its children's subtrees in ascending edge order).
    ///
    /// The keys are sorted as the trie is laid out (a most-significant-byte-first
    /// radix sort): a node's prefix is what all its keys share, its values are the
    /// keys that end there, and its children are the rest grouped by their next
    /// byte. In pre-order the file is written front to back as nodes are made; a
    /// node's pointers to its children are filled in when each child is written.
    /// Never recursive: a stack of item ranges still to be made nodes.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut order: Vec<Keyed<'_>> = self
            .items
            .iter()
            .enumerate()
            .map(|(seq, it)| Keyed {
                key: self.key_of(it),
                item: seq as u32,
            })
            .collect();
        let start = out.len();
        // About what it takes: every key and value, and a few words each.
        out.reserve(12 + self.bytes.len() + 24 * order.len());
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&VERSION.to_be_bytes());
        // The root's reference; its flags are added once it is made.
        out.extend_from_slice(&12u32.to_be_bytes());
        // (lo, hi, depth, where the reference to this node goes).
        let mut stack: Vec<(usize, usize, usize, usize)> =
            alloc::vec![(0, order.len(), 0, start + 8)];
        // One node's children: (edge byte, first item, end of its items).
        let mut children: Vec<(u8, usize, usize)> = Vec::new();
        let mut pending: Vec<(usize, usize, usize, usize)> = Vec::new();
        let (mut buckets, mut moved) = (Vec::new(), Vec::new());
        while let Some((lo, hi, depth, reference)) = stack.pop() {
            let offset = (out.len() - start) as u32;
            let is_root = reference == start + 8;
            let range = order.get_mut(lo..hi).unwrap_or_default();
            // The root has no prefix; any other node's is what all its keys share
            // past `depth`.
            let end = match (is_root, range.split_first()) {
                (false, Some((first, rest))) => {
                    let mut shared = first.key.get(depth..).unwrap_or_default();
                    for other in rest {
                        if shared.is_empty() {
                            break;
                        }
                        let n = common_prefix(shared, other.key.get(depth..).unwrap_or_default());
                        shared = shared.get(..n).unwrap_or_default();
                    }
                    depth + shared.len()
                }
                _ => depth,
            };
            sort_by_byte(range, end, &mut buckets, &mut moved);
            // Keys ending here came first: this node's values. By priority, the
            // later insertion first among equals (kmod puts a value before the
            // first of equal or higher priority).
            let ending = buckets.iter().take_while(|&&b| b == 0).count();
            let (values, rest) = range.split_at_mut(ending.min(hi - lo));
            let priority = |k: &Keyed<'_>| self.item(k.item as usize).priority;
            values.sort_unstable_by(|a, b| priority(a).cmp(&priority(b)).then(b.item.cmp(&a.item)));
            // The rest, grouped by their byte at `end` (bucket c + 1): a child each.
            children.clear();
            let mut i = ending;
            while let Some(&b) = buckets.get(i) {
                let run = buckets
                    .get(i..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|&&x| x == b)
                    .count();
                children.push((b.saturating_sub(1), lo + i, lo + i + run));
                i += run;
            }
            let flags = node_flags(end > depth, !children.is_empty(), !values.is_empty());
            if let Some(r) = out.get_mut(reference..reference + 4) {
                r.copy_from_slice(&(offset | flags).to_be_bytes());
            }
            if end > depth {
                let prefix = values.first().or(rest.first()).map_or(&[][..], |k| k.key);
                out.extend_from_slice(prefix.get(depth..end).unwrap_or_default());
                out.push(0);
            }
            pending.clear();
            if let (Some(first), Some(last)) = (children.first(), children.last()) {
                out.extend_from_slice(&[first.0, last.0]);
                let mut it = children.iter().peekable();
                for c in first.0..=last.0 {
                    if let Some(&&(_, i, j)) = it.peek().filter(|ch| ch.0 == c) {
                        it.next();
                        pending.push((i, j, end + 1, out.len()));
                    }
                    out.extend_from_slice(&[0; 4]);
                }
            }
            if !values.is_empty() {
                out.extend_from_slice(&(values.len() as u32).to_be_bytes());
                for v in values.iter() {
                    let it = self.item(v.item as usize);
                    out.extend_from_slice(&it.priority.to_be_bytes());
                    out.extend_from_slice(self.value_of(&it));
                    out.push(0);
                }
            }
            // The smallest byte's child is made next (pre-order).
            stack.extend(pending.drain(..).rev());
        }
    }
}

/// Why an index file could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Wrong magic or major version.
    BadHeader,
    /// A reference or string runs outside the file, or the nodes form a loop.
    Corrupt,
}

/// A read-only view of an index file.
pub struct Reader<'a> {
    data: &'a [u8],
    root: u32,
}

/// One key of an index with its values (priority, value) in stored order.
pub type Entry = (Vec<u8>, Vec<(u32, Vec<u8>)>);

impl<'a> Reader<'a> {
    /// Checks the header.
    pub fn new(data: &'a [u8]) -> Result<Self, ReadError> {
        let word = |o: usize| {
            data.get(o..)
                .and_then(<[u8]>::first_chunk)
                .map(|b| u32::from_be_bytes(*b))
        };
        if word(0) != Some(MAGIC) || word(4).map(|v| v >> 16) != Some(2) {
            return Err(ReadError::BadHeader);
        }
        Ok(Reader {
            data,
            root: word(8).ok_or(ReadError::BadHeader)?,
        })
    }

    fn u32_at(&self, o: usize) -> Result<u32, ReadError> {
        let b = self
            .data
            .get(o..)
            .and_then(<[u8]>::first_chunk)
            .ok_or(ReadError::Corrupt)?;
        Ok(u32::from_be_bytes(*b))
    }

    fn cstr_at(&self, o: usize) -> Result<(&'a [u8], usize), ReadError> {
        let rest = self.data.get(o..).ok_or(ReadError::Corrupt)?;
        let n = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(ReadError::Corrupt)?;
        let s = rest.get(..n).ok_or(ReadError::Corrupt)?;
        Ok((s, o + n + 1))
    }

    /// Every key with its values, keys in ascending byte order (libkmod's dump order).
    pub fn entries(&self) -> Result<Vec<Entry>, ReadError> {
        let mut out = Vec::new();
        // An index is a tree: a node reached a second time (through a loop, or from a
        // second parent) makes the file corrupt. This bounds the nodes visited, and
        // the keys held on the stack, by the file size.
        // One slot past the end: a node without prefix, children or values takes no
        // bytes, and the empty index's root is such a node at offset 12 = its length.
        let mut reached = alloc::vec![false; self.data.len() + 1];
        let mut reach = |r: u32| -> Result<(), ReadError> {
            let slot = reached
                .get_mut((r & OFFSET_MASK) as usize)
                .ok_or(ReadError::Corrupt)?;
            if core::mem::replace(slot, true) {
                return Err(ReadError::Corrupt);
            }
            Ok(())
        };
        reach(self.root)?;
        // (reference, key so far); children pushed in reverse for ascending order.
        let mut stack: Vec<(u32, Vec<u8>)> = alloc::vec![(self.root, Vec::new())];
        while let Some((r, mut key)) = stack.pop() {
            if key.len() > self.data.len() {
                return Err(ReadError::Corrupt);
            }
            let mut o = (r & OFFSET_MASK) as usize;
            if r & F_PREFIX != 0 {
                let (p, next) = self.cstr_at(o)?;
                key.extend_from_slice(p);
                o = next;
            }
            let mut children = Vec::new();
            if r & F_CHILDS != 0 {
                let first = *self.data.get(o).ok_or(ReadError::Corrupt)?;
                let last = *self.data.get(o + 1).ok_or(ReadError::Corrupt)?;
                if first > last {
                    return Err(ReadError::Corrupt);
                }
                o += 2;
                for c in first..=last {
                    let child = self.u32_at(o)?;
                    o += 4;
                    if child != 0 {
                        children.push((c, child));
                    }
                }
            }
            if r & F_VALUES != 0 {
                let count = self.u32_at(o)?;
                o += 4;
                let mut values = Vec::new();
                for _ in 0..count {
                    let p = self.u32_at(o)?;
                    let (v, next) = self.cstr_at(o + 4)?;
                    values.push((p, v.to_vec()));
                    o = next;
                }
                out.push((key.clone(), values));
            }
            for (c, child) in children.into_iter().rev() {
                reach(child)?;
                let mut k = key.clone();
                k.push(c);
                stack.push((child, k));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of compat §8.5, checked against kmod 34.2's output.
    #[test]
    fn worked_example_preorder() {
        let mut t = Trie::new();
        for (k, v) in [
            ("ask", "a"),
            ("ate", "b"),
            ("on", "c"),
            ("once", "d"),
            ("one", "e"),
            ("on", "z"),
        ] {
            t.insert(k.as_bytes(), v.as_bytes(), 0).unwrap();
        }
        let mut out = Vec::new();
        t.write(&mut out);
        assert_eq!(out.len(), 162);
        assert_eq!(
            &out[..12],
            &[0xB0, 0x07, 0xF4, 0x57, 0, 2, 0, 1, 0x20, 0, 0, 0x0C]
        );
        assert_eq!(&out[0x0C..0x12], &[0x61, 0x6F, 0x20, 0, 0, 0x4A]);
        assert_eq!(
            &out[0x4A..0x54],
            &[0x73, 0x74, 0xC0, 0, 0, 0x54, 0xC0, 0, 0, 0x60]
        );
        assert_eq!(
            &out[0x6C..0x8C],
            &[
                0x6E, 0, 0x63, 0x65, 0xC0, 0, 0, 0x8C, 0, 0, 0, 0, 0x40, 0, 0, 0x98, 0, 0, 0, 2, 0,
                0, 0, 0, 0x7A, 0, 0, 0, 0, 0, 0x63, 0
            ]
        );
        let r = Reader::new(&out).unwrap();
        let e = r.entries().unwrap();
        let keys: Vec<&[u8]> = e.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [&b"ask"[..], b"ate", b"on", b"once", b"one"]);
        assert_eq!(e[2].1, [(0, b"z".to_vec()), (0, b"c".to_vec())]);
    }

    #[test]
    fn empty_index_is_12_bytes() {
        let mut out = Vec::new();
        Trie::new().write(&mut out);
        assert_eq!(out, [0xB0, 0x07, 0xF4, 0x57, 0, 2, 0, 1, 0, 0, 0, 0x0C]);
        assert_eq!(Reader::new(&out).unwrap().entries().unwrap(), []);
    }

    #[test]
    fn rejects_non_ascii() {
        assert!(Trie::new().insert(b"a\xe9", b"x", 0).is_err());
    }
}
