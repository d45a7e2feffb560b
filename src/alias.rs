//! Alias normalisation for `modules.alias.bin` and `modules.builtin.alias.bin`
//! (compat §7.4): dashes become underscores except inside `[...]` character classes,
//! because libkmod normalises the name it looks up the same way.

use alloc::vec::Vec;

/// kmod's output limit (`PATH_MAX - 1`).
const MAX: usize = 4095;

/// The normalised alias, or `None` for an unmatched bracket (kmod warns and skips it).
pub fn normalize(alias: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    normalize_into(alias, &mut out).then_some(out)
}

/// [`normalize`] into `out` (cleared first, reused between aliases); `false` for an
/// unmatched bracket.
pub fn normalize_into(alias: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let alias = crate::elf::cstr(alias);
    let mut i = 0;
    while i < MAX {
        let Some(rest) = alias.get(i..).filter(|r| !r.is_empty()) else {
            break;
        };
        // The bytes kept as they are, copied as one run: up to the next dash or
        // bracket, the end, or the limit.
        let ordinary = rest.get(..MAX - i).unwrap_or(rest);
        let run = ordinary
            .iter()
            .position(|&b| matches!(b, b'-' | b'[' | b']'))
            .unwrap_or(ordinary.len());
        out.extend_from_slice(ordinary.get(..run).unwrap_or_default());
        i += run;
        let Some(&c) = alias.get(i).filter(|_| i < MAX) else {
            break;
        };
        match c {
            b'-' => out.push(b'_'),
            b']' => return false,
            b'[' => {
                // `alias[i]` exists (just read), so `alias[i..]` does too.
                let Some(rest) = alias.get(i..) else {
                    return false;
                };
                let Some(close) = rest.iter().position(|&b| b == b']') else {
                    return false;
                };
                out.extend_from_slice(rest.get(..=close).unwrap_or_default());
                i += close;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        assert_eq!(
            normalize(b"usb:v1234p[0-9A-F]*d*").unwrap(),
            b"usb:v1234p[0-9A-F]*d*"
        );
        assert_eq!(normalize(b"pci-x").unwrap(), b"pci_x");
        assert_eq!(normalize(b"a-[b-c]-d").unwrap(), b"a_[b-c]_d");
        assert!(normalize(b"bad]alias").is_none());
        assert!(normalize(b"a[b").is_none());
    }

    /// kmod's loop, a byte at a time (what `normalize_into` did before it
    /// copied runs): the two agree on every input, near the limit too.
    fn bytewise(alias: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        let alias = crate::elf::cstr(alias);
        let mut i = 0;
        while i < MAX {
            let Some(&c) = alias.get(i) else { break };
            match c {
                b'-' => out.push(b'_'),
                b']' => return false,
                b'[' => {
                    let rest = &alias[i..];
                    let Some(close) = rest.iter().position(|&b| b == b']') else {
                        return false;
                    };
                    out.extend_from_slice(&rest[..=close]);
                    i += close;
                }
                _ => out.push(c),
            }
            i += 1;
        }
        true
    }

    #[test]
    fn runs_copied_whole_are_the_bytewise_loop() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let len = match next() % 4 {
                0 => (next() % 16) as usize,
                1 => (next() % 200) as usize,
                _ => MAX - 20 + (next() % 40) as usize,
            };
            let rare = next() % 64;
            let alias: Vec<u8> = (0..len)
                .map(|_| match next() % 64 {
                    0 => b'-',
                    1 if rare < 8 => b'[',
                    2 if rare < 8 => b']',
                    3 if rare < 2 => 0,
                    _ => b'a' + (next() % 26) as u8,
                })
                .collect();
            let ok = normalize_into(&alias, &mut a);
            assert_eq!(ok, bytewise(&alias, &mut b), "{alias:?}");
            if ok {
                assert_eq!(a, b, "{alias:?}");
            }
        }
    }
}
