//! SipHash-2-4 with 128-bit output: the fingerprint the module cache keeps of a
//! module file's bytes and of its own contents.
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
