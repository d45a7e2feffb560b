//! kmod's binary index format (`modules.*.bin`, compat §8): a radix trie of 7-bit keys,
//! each key holding values ordered by priority.
//!
//! [`Trie`] builds the canonical shape; [`Trie::write`] streams it in kmod 34's
//! pre-order layout into any [`Sink`] without copying keys again; [`Reader`] walks any
//! index (pre- or post-order, as libkmod does) — the tests compare indexes by content
//! with it, and it is what a fuzzer can hit with arbitrary bytes.

use alloc::vec::Vec;

/// Index file magic.
pub const MAGIC: u32 = 0xB007_F457;
/// Index format version 2.1.
pub const VERSION: u32 = 0x0002_0001;
const F_PREFIX: u32 = 0x8000_0000;
const F_VALUES: u32 = 0x4000_0000;
const F_CHILDS: u32 = 0x2000_0000;
const OFFSET_MASK: u32 = 0x0FFF_FFFF;

/// Where index bytes go: a `Vec<u8>` here, a buffered file in the binary.
pub trait Sink {
    /// Appends bytes.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
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

#[derive(Default)]
struct Node {
    prefix: Vec<u8>,
    /// Children sorted by their edge byte.
    children: Vec<(u8, u32)>,
    /// (priority, value), in kmod's order.
    values: Vec<(u32, Vec<u8>)>,
}

/// A kmod index under construction.
pub struct Trie {
    nodes: Vec<Node>,
}

impl Default for Trie {
    fn default() -> Self {
        Trie {
            nodes: alloc::vec![Node::default()],
        }
    }
}

/// Can `s` be a key or value of an index (7-bit ASCII only)?
pub fn is_indexable(s: &[u8]) -> bool {
    s.is_ascii()
}

fn check(s: &[u8]) -> Result<(), BadChar> {
    match s.iter().find(|&&b| b >= 0x80) {
        Some(&byte) => Err(BadChar {
            byte,
            string: s.to_vec(),
        }),
        None => Ok(()),
    }
}

impl Trie {
    /// An empty index (its file is the 12-byte header with an empty root).
    pub fn new() -> Self {
        Self::default()
    }

    /// Node `id`.
    // Cannot fail: every id comes from this trie (0 is the root, made by `default`;
    // the others are `nodes.len()` just before a push), and nodes are never removed.
    #[allow(clippy::indexing_slicing)]
    fn node(&self, id: usize) -> &Node {
        &self.nodes[id]
    }

    /// Node `id`, mutably (see [`Trie::node`]).
    // Cannot fail: ids come from the trie itself, as in `node`.
    #[allow(clippy::indexing_slicing)]
    fn node_mut(&mut self, id: usize) -> &mut Node {
        &mut self.nodes[id]
    }

    fn child(&self, n: usize, c: u8) -> Option<u32> {
        let ch = &self.node(n).children;
        ch.binary_search_by_key(&c, |&(b, _)| b)
            .ok()
            .and_then(|i| ch.get(i))
            .map(|&(_, id)| id)
    }

    fn add_child(&mut self, n: usize, c: u8, id: u32) {
        let ch = &mut self.node_mut(n).children;
        let pos = ch.partition_point(|&(b, _)| b < c);
        ch.insert(pos, (c, id));
    }

    /// Adds `value` under `key` with `priority`: placed before the first value of equal
    /// or higher priority. Returns `Ok(true)` if `key` already held the same value
    /// (kmod keeps both; `-w` reports it).
    pub fn insert(&mut self, key: &[u8], value: &[u8], priority: u32) -> Result<bool, BadChar> {
        check(key)?;
        check(value)?;
        let mut n = 0usize;
        // The part of `key` below node `n`.
        let mut rest = key;
        loop {
            let prefix = &self.node(n).prefix;
            let j = prefix.iter().zip(rest).take_while(|(a, b)| a == b).count();
            // Split if the key leaves the prefix at `j < prefix.len()`: this node keeps
            // prefix[..j]; the edge byte prefix[j] leads to a new child with the rest.
            let split = prefix
                .get(j..)
                .and_then(<[u8]>::split_first)
                .map(|(&edge, tail)| (edge, tail.to_vec()));
            if let Some((edge, tail_prefix)) = split {
                let old = core::mem::take(self.node_mut(n));
                let tail = Node {
                    prefix: tail_prefix,
                    children: old.children,
                    values: old.values,
                };
                let id = self.nodes.len() as u32;
                self.nodes.push(tail);
                let mut head_prefix = old.prefix;
                head_prefix.truncate(j);
                *self.node_mut(n) = Node {
                    prefix: head_prefix,
                    children: alloc::vec![(edge, id)],
                    values: Vec::new(),
                };
            }
            // `j` counts pairs zipped with `rest`, so it is at most `rest.len()`.
            rest = rest.get(j..).unwrap_or_default();
            let Some((&c, tail)) = rest.split_first() else {
                let values = &mut self.node_mut(n).values;
                let dup = values.iter().any(|(_, v)| v == value);
                let pos = values.partition_point(|&(p, _)| p < priority);
                values.insert(pos, (priority, value.to_vec()));
                return Ok(dup);
            };
            match self.child(n, c) {
                Some(next) => {
                    n = next as usize;
                    rest = tail;
                }
                None => {
                    let id = self.nodes.len() as u32;
                    self.nodes.push(Node {
                        prefix: tail.to_vec(),
                        children: Vec::new(),
                        values: alloc::vec![(priority, value.to_vec())],
                    });
                    self.add_child(n, c, id);
                    return Ok(false);
                }
            }
        }
    }

    fn node_size(node: &Node) -> u32 {
        let mut s = 0;
        if !node.prefix.is_empty() {
            s += node.prefix.len() as u32 + 1;
        }
        if let (Some(first), Some(last)) = (node.children.first(), node.children.last()) {
            s += 2 + 4 * (u32::from(last.0 - first.0) + 1);
        }
        if !node.values.is_empty() {
            s += 4 + node
                .values
                .iter()
                .map(|(_, v)| 4 + v.len() as u32 + 1)
                .sum::<u32>();
        }
        s
    }

    fn flags(node: &Node) -> u32 {
        let mut f = 0;
        if !node.prefix.is_empty() {
            f |= F_PREFIX;
        }
        if !node.children.is_empty() {
            f |= F_CHILDS;
        }
        if !node.values.is_empty() {
            f |= F_VALUES;
        }
        f
    }

    /// Writes the index in kmod 34's layout: header, then nodes in pre-order (a node,
    /// then its children's subtrees in ascending edge order).
    pub fn write(&self, out: &mut impl Sink) {
        let n = self.nodes.len();
        // Subtree sizes, children before parents (iterative post-order).
        let mut total = alloc::vec![0u32; n];
        let mut order = Vec::with_capacity(n);
        let mut stack = alloc::vec![0u32];
        while let Some(id) = stack.pop() {
            order.push(id);
            stack.extend(self.node(id as usize).children.iter().map(|&(_, c)| c));
        }
        // `total` has one slot per node, so the lookups below always find theirs.
        let size_of = |total: &[u32], id: u32| total.get(id as usize).copied().unwrap_or(0);
        for &id in order.iter().rev() {
            let node = self.node(id as usize);
            let size = Self::node_size(node)
                + node
                    .children
                    .iter()
                    .map(|&(_, c)| size_of(&total, c))
                    .sum::<u32>();
            if let Some(t) = total.get_mut(id as usize) {
                *t = size;
            }
        }
        out.put(&MAGIC.to_be_bytes());
        out.put(&VERSION.to_be_bytes());
        out.put(&(12 | Self::flags(self.node(0))).to_be_bytes());
        // Pre-order: (node, its offset).
        let mut stack = alloc::vec![(0u32, 12u32)];
        while let Some((id, offset)) = stack.pop() {
            let node = self.node(id as usize);
            if !node.prefix.is_empty() {
                out.put(&node.prefix);
                out.put(&[0]);
            }
            let mut child_offsets = Vec::with_capacity(node.children.len());
            if let (Some(first), Some(last)) = (node.children.first(), node.children.last()) {
                out.put(&[first.0, last.0]);
                let mut at = offset + Self::node_size(node);
                let mut it = node.children.iter().peekable();
                for c in first.0..=last.0 {
                    match it.peek() {
                        Some(&&(b, child)) if b == c => {
                            it.next();
                            let cn = self.node(child as usize);
                            out.put(&(at | Self::flags(cn)).to_be_bytes());
                            child_offsets.push((child, at));
                            at += size_of(&total, child);
                        }
                        _ => out.put(&0u32.to_be_bytes()),
                    }
                }
            }
            if !node.values.is_empty() {
                out.put(&(node.values.len() as u32).to_be_bytes());
                for (p, v) in &node.values {
                    out.put(&p.to_be_bytes());
                    out.put(v);
                    out.put(&[0]);
                }
            }
            stack.extend(child_offsets.into_iter().rev());
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
