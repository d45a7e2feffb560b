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
        let Some(&c) = alias.get(i) else { break };
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
}
