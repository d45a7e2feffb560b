//! kmod's hash function (Paul Hsieh's SuperFastHash).
//!
//! kmod keeps modules in a 512-bucket table and symbols in a 2048-bucket table, and
//! writes `modules.dep`, `modules.alias`, `modules.symbols` … in the iteration order of
//! those tables: bucket by bucket, keys sorted within a bucket. To be byte-identical we
//! must reproduce the exact hash, including its little-endian 16-bit loads and the sign
//! extension of the trailing bytes it reads one at a time (the third of three, a lone
//! one; compat §5.1), whatever the host.

/// Number of buckets in kmod's module table; fixes the order of per-module outputs.
pub const MODULE_BUCKETS: u32 = 512;
/// Number of buckets in kmod's symbol table; fixes the order of `modules.symbols`.
pub const SYMBOL_BUCKETS: u32 = 2048;

/// SuperFastHash of `key`, as kmod 34.2 computes it.
#[inline]
pub fn superfast(key: &[u8]) -> u32 {
    let get16 = |lo: u8, hi: u8| u32::from(lo) | (u32::from(hi) << 8);
    let mut h = key.len() as u32;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        // `chunks_exact(4)` only yields 4-byte chunks.
        let &[a, b, c, d] = c else { continue };
        h = h.wrapping_add(get16(a, b));
        let t = (get16(c, d) << 11) ^ h;
        h = (h << 16) ^ t;
        h = h.wrapping_add(h >> 11);
    }
    match *chunks.remainder() {
        [a, b, c] => {
            h = h.wrapping_add(get16(a, b));
            h ^= h << 16;
            // kmod shifts a (signed) `char` too.
            h ^= ((c as i8 as i32) << 18) as u32;
            h = h.wrapping_add(h >> 11);
        }
        [a, b] => {
            h = h.wrapping_add(get16(a, b));
            h ^= h << 11;
            h = h.wrapping_add(h >> 17);
        }
        [a] => {
            // kmod adds a (signed) `char`.
            h = h.wrapping_add(a as i8 as i32 as u32);
            h ^= h << 10;
            h = h.wrapping_add(h >> 1);
        }
        _ => {}
    }
    h ^= h << 3;
    h = h.wrapping_add(h >> 5);
    h ^= h << 4;
    h = h.wrapping_add(h >> 17);
    h ^= h << 25;
    h = h.wrapping_add(h >> 6);
    h
}

/// Bucket of `key` in a kmod table of `buckets` (a power of two) buckets.
pub fn bucket(key: &[u8], buckets: u32) -> u32 {
    superfast(key) & (buckets - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors checked against a C transcription of kmod's hash (compat §5.1)
    /// and against the order real depmod prints.
    #[test]
    fn spec_vectors() {
        let cases: &[(&str, u32, u32, u32)] = &[
            ("", 0x00000000, 0, 0),
            ("a", 0x115ea782, 386, 1922),
            ("ab", 0x516b8b44, 324, 836),
            ("abc", 0xd2be198a, 394, 394),
            ("abcd", 0xdad8b8db, 219, 219),
            ("mod_loop_a", 0xbaa40adf, 223, 735),
            ("snd_hda_intel", 0x6e4028a1, 161, 161),
            ("printk", 0x6a0863d1, 465, 977),
            ("usb_storage", 0x9f9b2fab, 427, 1963),
        ];
        for &(key, h, b512, b2048) in cases {
            assert_eq!(superfast(key.as_bytes()), h, "{key}");
            assert_eq!(bucket(key.as_bytes(), MODULE_BUCKETS), b512, "{key}");
            assert_eq!(bucket(key.as_bytes(), SYMBOL_BUCKETS), b2048, "{key}");
        }
    }

    #[test]
    fn mod_loop_order() {
        let mut names: alloc::vec::Vec<alloc::string::String> = ('a'..='k')
            .map(|c| alloc::format!("mod_loop_{c}"))
            .collect();
        names.sort_by(|a, b| {
            (bucket(a.as_bytes(), 512), a.as_bytes())
                .cmp(&(bucket(b.as_bytes(), 512), b.as_bytes()))
        });
        let order: alloc::string::String =
            names.iter().map(|n| n.chars().last().unwrap()).collect();
        assert_eq!(order, "dibahjfcgke");
    }
}
