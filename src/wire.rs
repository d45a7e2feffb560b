//! Little-endian fields for the module cache's file format: a writer that appends
//! to a `Vec<u8>` and a reader that checks every length against what is left.
//!
//! Both [`crate::scan::ModuleData`]'s record and [`crate::cache`]'s file use it; a
//! read past the end is `None`, never a panic, so a truncated or damaged cache is
//! just a cache that does not parse.

use alloc::vec::Vec;

/// Appends fields to a buffer.
pub(crate) struct Writer<'a>(pub(crate) &'a mut Vec<u8>);

impl Writer<'_> {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// A length (u32) and the bytes. `None` when longer than a u32 can say.
    pub(crate) fn bytes(&mut self, v: &[u8]) -> Option<()> {
        self.u32(u32::try_from(v.len()).ok()?);
        self.0.extend_from_slice(v);
        Some(())
    }
}

/// Reads fields from a byte slice, front to back.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }
    pub(crate) fn digest(&mut self) -> Option<[u8; 16]> {
        self.array()
    }
    /// A length (u32) and that many bytes.
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.take(usize::try_from(n).ok()?)
    }
    /// A count (u32) of items of at least `min_size` bytes each, refused when the
    /// rest could not hold them (so a damaged count never reserves memory).
    pub(crate) fn count(&mut self, min_size: usize) -> Option<usize> {
        let n = usize::try_from(self.u32()?).ok()?;
        (n.checked_mul(min_size)? <= self.0.len()).then_some(n)
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
