//! SipHash-2-4 with 128-bit output: the fingerprint the module cache keeps of a
//! module file's bytes; and XXH64, the checksum of the cache file itself.
//!
//! Why this one: the cache must tell "these are the bytes we scanned before" from
//! any other file, including a same-size rewrite, so a 64-bit checksum is too
//! narrow, and the core is `no_std` without a hashing crate. SipHash is small (one
//! round function), runs at about a byte per cycle, and its 128-bit form has
//! published reference vectors to test against. Nothing here is secret: the key is
//! fixed, the aim is to detect change, not forgery (a cache is written by the same
//! user who could write the modules).

/// Fixed key: the bytes 00 01 … 0f, the reference vectors' key.
const K0: u64 = 0x0706_0504_0302_0100;
const K1: u64 = 0x0f0e_0d0c_0b0a_0908;

/// A 128-bit fingerprint.
pub type Digest = [u8; 16];

/// SipHash state (the four lanes).
struct State([u64; 4]);

impl State {
    fn new(k0: u64, k1: u64) -> State {
        State([
            k0 ^ 0x736f_6d65_7073_6575,
            k1 ^ 0x646f_7261_6e64_6f6d ^ 0xee,
            k0 ^ 0x6c79_6765_6e65_7261,
            k1 ^ 0x7465_6462_7974_6573,
        ])
    }

    #[inline(always)]
    fn round(&mut self) {
        let [v0, v1, v2, v3] = &mut self.0;
        *v0 = v0.wrapping_add(*v1);
        *v1 = v1.rotate_left(13) ^ *v0;
        *v0 = v0.rotate_left(32);
        *v2 = v2.wrapping_add(*v3);
        *v3 = v3.rotate_left(16) ^ *v2;
        *v0 = v0.wrapping_add(*v3);
        *v3 = v3.rotate_left(21) ^ *v0;
        *v2 = v2.wrapping_add(*v1);
        *v1 = v1.rotate_left(17) ^ *v2;
        *v2 = v2.rotate_left(32);
    }

    #[inline(always)]
    fn absorb(&mut self, m: u64) {
        self.0[3] ^= m;
        self.round();
        self.round();
        self.0[0] ^= m;
    }

    fn fold(&self) -> u64 {
        self.0[0] ^ self.0[1] ^ self.0[2] ^ self.0[3]
    }
}

fn hash128(bytes: &[u8], k0: u64, k1: u64) -> Digest {
    let mut s = State::new(k0, k1);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        s.absorb(u64::from_le_bytes(b));
    }
    let mut last = [0u8; 8];
    for (d, b) in last.iter_mut().zip(words.remainder()) {
        *d = *b;
    }
    // The length's low byte goes in the last word's top byte.
    s.absorb(u64::from_le_bytes(last) | ((bytes.len() as u64) << 56));
    s.0[2] ^= 0xee;
    for _ in 0..4 {
        s.round();
    }
    let lo = s.fold();
    s.0[1] ^= 0xdd;
    for _ in 0..4 {
        s.round();
    }
    let hi = s.fold();
    ((u128::from(hi) << 64) | u128::from(lo)).to_le_bytes()
}

/// The fingerprint of `bytes`.
pub fn digest(bytes: &[u8]) -> Digest {
    hash128(bytes, K0, K1)
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

fn le64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    for (d, s) in w.iter_mut().zip(b) {
        *d = *s;
    }
    u64::from_le_bytes(w)
}

#[inline(always)]
fn xxh_round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn xxh_merge(acc: u64, lane: u64) -> u64 {
    (acc ^ xxh_round(0, lane)).wrapping_mul(P1).wrapping_add(P4)
}

/// XXH64 of `bytes` (seed 0): the module cache's check of its own file, which it
/// reads and writes whole on every run. Several times faster than SipHash (four
/// independent lanes, one multiply per word), and enough for what it guards
/// against: a file cut short or damaged, where 64 bits leave one chance in 2^64
/// of a damaged cache being taken. Telling one module file from another is the
/// fingerprint's job ([`digest`]), not this.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h = Xxh64::new(0);
    h.update(bytes);
    h.finish()
}

/// XXH64, fed in pieces (the reference's streaming form; equal to one call on
/// all the bytes whatever the pieces).
#[derive(Clone)]
pub struct Xxh64 {
    seed: u64,
    lanes: [u64; 4],
    /// Bytes of an unfinished 32-byte stripe.
    tail: [u8; 32],
    tail_len: usize,
    total: u64,
}

impl Xxh64 {
    /// A hash of nothing yet, with `seed`.
    pub fn new(seed: u64) -> Xxh64 {
        Xxh64 {
            seed,
            lanes: [
                seed.wrapping_add(P1).wrapping_add(P2),
                seed.wrapping_add(P2),
                seed,
                seed.wrapping_sub(P1),
            ],
            tail: [0; 32],
            tail_len: 0,
            total: 0,
        }
    }

    #[inline(always)]
    fn stripe(lanes: &mut [u64; 4], stripe: &[u8]) {
        for (lane, word) in lanes.iter_mut().zip(stripe.chunks_exact(8)) {
            *lane = xxh_round(*lane, le64(word));
        }
    }

    /// Adds `bytes`.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.total = self.total.wrapping_add(bytes.len() as u64);
        if self.tail_len > 0 {
            let n = (32 - self.tail_len).min(bytes.len());
            let (head, rest) = bytes.split_at(n);
            if let Some(t) = self.tail.get_mut(self.tail_len..self.tail_len + n) {
                t.copy_from_slice(head);
            }
            self.tail_len += n;
            bytes = rest;
            if self.tail_len < 32 {
                return;
            }
            let tail = self.tail;
            Self::stripe(&mut self.lanes, &tail);
            self.tail_len = 0;
        }
        let mut stripes = bytes.chunks_exact(32);
        for s in &mut stripes {
            Self::stripe(&mut self.lanes, s);
        }
        let rest = stripes.remainder();
        if let Some(t) = self.tail.get_mut(..rest.len()) {
            t.copy_from_slice(rest);
        }
        self.tail_len = rest.len();
    }

    /// The hash of everything added.
    pub fn finish(&self) -> u64 {
        let mut h = if self.total >= 32 {
            let [v1, v2, v3, v4] = self.lanes;
            let mut h = v1
                .rotate_left(1)
                .wrapping_add(v2.rotate_left(7))
                .wrapping_add(v3.rotate_left(12))
                .wrapping_add(v4.rotate_left(18));
            for lane in self.lanes {
                h = xxh_merge(h, lane);
            }
            h
        } else {
            self.seed.wrapping_add(P5)
        };
        h = h.wrapping_add(self.total);
        let mut rest = self.tail.get(..self.tail_len).unwrap_or_default();
        while let (Some(word), Some(tail)) = (rest.get(..8), rest.get(8..)) {
            h ^= xxh_round(0, le64(word));
            h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
            rest = tail;
        }
        if let (Some(word), Some(tail)) = (rest.get(..4), rest.get(4..)) {
            h ^= le64(word).wrapping_mul(P1);
            h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
            rest = tail;
        }
        for &b in rest {
            h ^= u64::from(b).wrapping_mul(P5);
            h = h.rotate_left(11).wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^ (h >> 32)
    }
}

/// 128 bits from XXH64 under two seeds, fed in pieces: how the note of made
/// indexes (`crate::made_indexes`) tells what an index is made from and what its
/// file holds. Four times as fast as [`digest`] on the megabytes of an index
/// run after run; as wide, against two different inputs happening to agree.
/// Like everything here it does not resist forgery, and need not: whoever can
/// write the output directory can write any index there anyway.
#[derive(Clone)]
pub struct Fingerprint([Xxh64; 2]);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint([Xxh64::new(0), Xxh64::new(0x9E37_79B9_7F4A_7C15)])
    }
}

impl Fingerprint {
    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for h in &mut self.0 {
            h.update(bytes);
        }
    }

    /// The fingerprint of everything added.
    pub fn finish(&self) -> Digest {
        let [a, b] = &self.0;
        ((u128::from(b.finish()) << 64) | u128::from(a.finish())).to_le_bytes()
    }

    /// The fingerprint of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        let mut f = Fingerprint::default();
        f.update(bytes);
        f.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// The first four of the reference implementation's `vectors_sip128`: key
    /// 00..0f, message 00 01 … (len - 1).
    #[test]
    fn reference_vectors() {
        let want: [Digest; 4] = [
            [
                0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55,
                0x02, 0x93,
            ],
            [
                0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34, 0x76, 0x59, 0x11, 0x9b, 0x22,
                0xfc, 0x45,
            ],
            [
                0x81, 0x77, 0x22, 0x8d, 0xa4, 0xa4, 0x5d, 0xc7, 0xfc, 0xa3, 0x8b, 0xde, 0xf6, 0x0a,
                0xff, 0xe4,
            ],
            [
                0x9c, 0x70, 0xb6, 0x0c, 0x52, 0x67, 0xa9, 0x4e, 0x5f, 0x33, 0xb6, 0xb0, 0x29, 0x85,
                0xed, 0x51,
            ],
        ];
        for (len, w) in want.iter().enumerate() {
            let msg: Vec<u8> = (0..len as u8).collect();
            assert_eq!(&digest(&msg), w, "length {len}");
        }
    }

    /// XXH64 as the reference implementation's `xxhsum -H64` gives it: every
    /// path through the tail (8-, 4- and 1-byte steps) with and without stripes.
    #[test]
    fn checksum_matches_xxhsum() {
        let x = |n: usize| alloc::vec![b'x'; n];
        assert_eq!(checksum(b""), 0xef46_db37_51d8_e999);
        assert_eq!(checksum(b"abc"), 0x44bc_2cf5_ad77_0999);
        assert_eq!(checksum(&x(7)), 0x57ab_b58a_45ee_501a);
        assert_eq!(checksum(&x(12)), 0x2827_38a9_98db_bd4e);
        assert_eq!(checksum(&x(37)), 0x1e58_0c47_5bdc_5381);
        assert_eq!(checksum(&x(1000)), 0x4cb9_a3b6_9cb7_00e1);
    }

    /// Seeded XXH64 as the reference library (libxxhash 0.8.1) gives it, with
    /// the second seed of [`Fingerprint`]; and fed in pieces, split anywhere,
    /// as fed at once.
    #[test]
    fn seeded_and_streaming_match_the_reference() {
        let x = |n: usize| alloc::vec![b'x'; n];
        let seeded = |b: &[u8]| {
            let mut h = Xxh64::new(0x9E37_79B9_7F4A_7C15);
            h.update(b);
            h.finish()
        };
        assert_eq!(seeded(b""), 0xc434_9fc9_3c01_0000);
        assert_eq!(seeded(b"abc"), 0x2ed0_f59d_6b43_ac8b);
        assert_eq!(seeded(&x(7)), 0x5a54_30d3_9d54_3b2a);
        assert_eq!(seeded(&x(12)), 0x40ab_a174_a40e_ab0e);
        assert_eq!(seeded(&x(37)), 0x8fa6_f107_2f1c_c081);
        assert_eq!(seeded(&x(1000)), 0xf0aa_be4a_3cbe_8c09);
        let msg: Vec<u8> = (0..200u32).map(|i| (i * 131 % 251) as u8).collect();
        let whole = Fingerprint::of(&msg);
        for a in 0..msg.len() {
            for b in [a, a + 1, a + 31, a + 33, msg.len()] {
                let b = b.min(msg.len());
                let mut f = Fingerprint::default();
                f.update(&msg[..a]);
                f.update(&msg[a..b]);
                f.update(&msg[b..]);
                assert_eq!(f.finish(), whole, "split at {a} and {b}");
            }
        }
    }

    /// Every length through three words differs from its neighbours, and one
    /// flipped bit anywhere changes the digest.
    #[test]
    fn lengths_and_single_bit_flips_change_the_digest() {
        let msg: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        let mut seen = Vec::new();
        for len in 0..msg.len() {
            let d = digest(&msg[..len]);
            assert!(!seen.contains(&d));
            seen.push(d);
        }
        let base = digest(&msg);
        for i in 0..msg.len() * 8 {
            let mut m = msg.clone();
            m[i / 8] ^= 1 << (i % 8);
            assert_ne!(digest(&m), base, "bit {i}");
        }
    }
}
