//! Kernel symbols from `-E Module.symvers` or `-F System.map` (compat §4.3).
//!
//! Both are read line by line the way kmod's `fgets` loop does; names borrow from the
//! file's bytes. Prefix stripping (`-P`) is applied here as kmod does on insertion.

use alloc::vec::Vec;

use crate::diag::Diag;

/// A symbol the kernel image provides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSymbol<'a> {
    /// Stored name (after the optional prefix strip).
    pub name: &'a [u8],
    /// CRC (0 from System.map).
    pub crc: u64,
}

/// kmod reads both files with `fgets` into a 10240-byte buffer: a longer line is
/// handled as several. Yields (line number, line including its `\n`).
fn lines(text: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    let mut pos = 0;
    let mut n = 0u32;
    core::iter::from_fn(move || {
        let rest = text.get(pos..).filter(|r| !r.is_empty())?;
        let max = rest.get(..10239).unwrap_or(rest);
        // Up to and including the first newline, or all of `max`.
        let line = max.split_inclusive(|&b| b == b'\n').next().unwrap_or(max);
        pos += line.len();
        n += 1;
        // A C string: anything after an embedded NUL is invisible.
        Some((n, crate::elf::cstr(line)))
    })
}

fn strip(name: &[u8], prefix: Option<u8>) -> &[u8] {
    match (prefix, name.split_first()) {
        (Some(p), Some((&c, rest))) if c == p => rest,
        _ => name,
    }
}

/// C `strtoull(tok, &end, 16)` that must consume all of `tok`.
fn parse_hex(tok: &[u8]) -> Option<u64> {
    let mut s = tok;
    while let Some((&c, rest)) = s.split_first() {
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            s = rest;
        } else {
            break;
        }
    }
    let mut neg = false;
    if let Some((&c, rest)) = s.split_first() {
        if c == b'+' || c == b'-' {
            neg = c == b'-';
            s = rest;
        }
    }
    if let Some(hex) = s.strip_prefix(b"0x").or_else(|| s.strip_prefix(b"0X")) {
        if hex.first().is_some_and(u8::is_ascii_hexdigit) {
            s = hex;
        }
    }
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        let d = (c as char).to_digit(16)?;
        v = v.saturating_mul(16).saturating_add(u64::from(d));
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Parses Module.symvers: `CRC SYMBOL vmlinux …` lines give kernel symbols; lines of
/// other owners are skipped.
pub fn parse_symvers<'a>(
    text: &'a [u8],
    prefix: Option<u8>,
    diags: &mut Vec<Diag>,
) -> Vec<KernelSymbol<'a>> {
    let mut out = Vec::new();
    for (n, line) in lines(text) {
        let mut tok = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|t| !t.is_empty());
        let (Some(crc), Some(sym), Some(owner)) = (tok.next(), tok.next(), tok.next()) else {
            continue;
        };
        if owner != b"vmlinux" {
            continue;
        }
        match parse_hex(crc) {
            Some(crc) => out.push(KernelSymbol {
                name: strip(sym, prefix),
                crc,
            }),
            None => diags.push(Diag::SymversBadCrc(n, crc.to_vec())),
        }
    }
    out
}

/// Parses System.map: `ADDR TYPE NAME` lines; `__ksymtab_NAME` entries give kernel
/// symbols.
pub fn parse_system_map<'a>(
    text: &'a [u8],
    prefix: Option<u8>,
    diags: &mut Vec<Diag>,
) -> Vec<KernelSymbol<'a>> {
    let mut out = Vec::new();
    for (n, line) in lines(text) {
        // The third field: everything after the second space.
        let mut fields = line.splitn(3, |&b| b == b' ');
        let (Some(_), Some(_), Some(third)) = (fields.next(), fields.next(), fields.next()) else {
            diags.push(Diag::SystemMapBadLine(n, line.to_vec()));
            continue;
        };
        let p = strip(third, prefix);
        if let Some(rest) = p.strip_prefix(b"__ksymtab_") {
            // Up to the newline (`split` yields at least one piece).
            let name = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
            out.push(KernelSymbol { name, crc: 0 });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex() {
        assert_eq!(parse_hex(b"0x1f"), Some(0x1f));
        assert_eq!(parse_hex(b"1F"), Some(0x1f));
        assert_eq!(parse_hex(b"0x"), None);
        assert_eq!(parse_hex(b"xyz"), None);
        assert_eq!(parse_hex(b"-1"), Some(u64::MAX));
    }

    #[test]
    fn symvers() {
        let mut d = Vec::new();
        let s = parse_symvers(
            b"0x12\tfoo\tvmlinux\tEXPORT_SYMBOL\n0x13\tbar\tdrivers/x\tEXPORT_SYMBOL\nzz\tbad\tvmlinux\tE\n0x1\tbaz\tvmlinux\n",
            None,
            &mut d,
        );
        assert_eq!(
            s,
            [KernelSymbol {
                name: b"foo",
                crc: 0x12
            }]
        );
        assert_eq!(d, [Diag::SymversBadCrc(3, b"zz".to_vec())]);
    }

    #[test]
    fn system_map() {
        let mut d = Vec::new();
        let s = parse_system_map(
            b"ffff T __ksymtab_printk\nffff t other\nbad\n",
            None,
            &mut d,
        );
        assert_eq!(
            s,
            [KernelSymbol {
                name: b"printk",
                crc: 0
            }]
        );
        assert_eq!(d, [Diag::SystemMapBadLine(3, b"bad\n".to_vec())]);
    }
}
