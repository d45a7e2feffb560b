//! An index from byte strings to the positions of the items that hold them, for
//! the lookups on a run's path: module paths and names by the thousand, which
//! share long prefixes (`/lib/modules/<version>/kernel/drivers/…`), so that an
//! ordered map compares the same leading bytes again at every level.
//!
//! In: keys, each by the position of its item in the caller's list. Out: the
//! position whose key is equal to a given one. The keys stay in the caller's
//! items (the index holds positions and hashes only), so every method that must
//! compare keys is given `key_at`, the caller's way to find position `i`'s key.

use alloc::vec::Vec;

/// The positions of items, found by their keys. A later insertion of an equal
/// key takes the earlier one's place, as in a map.
#[derive(Debug, Default, Clone)]
pub struct ByteIndex {
    /// Open addressing, linear probing: (hash, position); `EMPTY` positions
    /// are free. A power of two long, at most half full.
    slots: Vec<(u32, u32)>,
    len: usize,
}

const EMPTY: u32 = u32::MAX;

/// A hash of `key`, eight bytes at a time (the keys are paths and names whose
/// bytes differ mostly at the end).
fn hash(key: &[u8]) -> u32 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = key.len() as u64;
    let mut words = key.chunks_exact(8);
    for w in words.by_ref() {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    let rest = words.remainder();
    if let Some(t) = tail.get_mut(..rest.len()) {
        t.copy_from_slice(rest);
    }
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    (h >> 32) as u32
}

impl ByteIndex {
    /// An index with room for `n` keys before it grows.
    pub fn with_capacity(n: usize) -> ByteIndex {
        ByteIndex {
            slots: alloc::vec![(0, EMPTY); (n.saturating_mul(2)).next_power_of_two().max(16)],
            len: 0,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No keys?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot holding `key`, or the free slot where it would go.
    fn find<'k>(&self, key: &[u8], h: u32, key_at: impl Fn(u32) -> &'k [u8]) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = (h as usize).wrapping_mul(0x9e37_79b9) & mask;
        // At most half full, so a free slot ends every probe.
        while let Some(&(sh, pos)) = self.slots.get(i) {
            if pos == EMPTY || (sh == h && key_at(pos) == key) {
                break;
            }
            i = (i + 1) & mask;
        }
        i
    }

    /// Enters `key` at position `pos`; the position it had before, if any.
    /// `pos` must not be `u32::MAX`.
    pub fn insert<'k>(
        &mut self,
        key: &[u8],
        pos: u32,
        key_at: impl Fn(u32) -> &'k [u8],
    ) -> Option<u32> {
        if pos == EMPTY {
            return None;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let h = hash(key);
        let i = self.find(key, h, key_at);
        let slot = self.slots.get_mut(i)?;
        let old = core::mem::replace(slot, (h, pos)).1;
        if old == EMPTY {
            self.len += 1;
            None
        } else {
            Some(old)
        }
    }

    /// The position of `key`, if it was entered.
    pub fn get<'k>(&self, key: &[u8], key_at: impl Fn(u32) -> &'k [u8]) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let i = self.find(key, hash(key), key_at);
        self.slots.get(i).map(|s| s.1).filter(|&p| p != EMPTY)
    }

    /// Twice the slots, every key entered again (by the hash kept with it).
    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(16);
        let old = core::mem::replace(&mut self.slots, alloc::vec![(0, EMPTY); n]);
        let mask = n - 1;
        for (h, pos) in old.into_iter().filter(|s| s.1 != EMPTY) {
            let mut i = (h as usize).wrapping_mul(0x9e37_79b9) & mask;
            while self.slots.get(i).is_some_and(|s| s.1 != EMPTY) {
                i = (i + 1) & mask;
            }
            if let Some(s) = self.slots.get_mut(i) {
                *s = (h, pos);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::format;

    #[test]
    fn finds_what_a_map_finds_as_it_grows_and_replaces() {
        let keys: Vec<Vec<u8>> = (0..3000u32)
            .map(|i| {
                format!(
                    "/lib/modules/6.1/kernel/drivers/x{}/m{}.ko",
                    i % 97,
                    i % 1500
                )
                .into_bytes()
            })
            .collect();
        let mut index = ByteIndex::with_capacity(0);
        let mut map: BTreeMap<&[u8], u32> = BTreeMap::new();
        for (i, k) in keys.iter().enumerate() {
            let old = index.insert(k, i as u32, |p| &keys[p as usize]);
            assert_eq!(old, map.insert(k, i as u32));
            assert_eq!(index.len(), map.len());
        }
        for k in &keys {
            assert_eq!(
                index.get(k, |p| &keys[p as usize]),
                map.get(k.as_slice()).copied()
            );
        }
        for missing in [
            &b""[..],
            b"/lib",
            b"/lib/modules/6.1/kernel/drivers/x1/m1.k",
        ] {
            assert_eq!(index.get(missing, |p| &keys[p as usize]), None);
        }
        assert_eq!(ByteIndex::default().get(b"x", |_| &[][..]), None);
    }

    #[test]
    fn every_length_and_byte_counts() {
        let keys: Vec<Vec<u8>> = (0..40usize).map(|n| alloc::vec![b'a'; n]).collect();
        let mut index = ByteIndex::with_capacity(4);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(index.insert(k, i as u32, |p| &keys[p as usize]), None);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(index.get(k, |p| &keys[p as usize]), Some(i as u32));
            let mut other = k.clone();
            other.push(b'b');
            if other.len() < 40 {
                assert_eq!(index.get(&other, |p| &keys[p as usize]), None);
            }
        }
    }
}
