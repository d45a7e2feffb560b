//! `modules.builtin` and `modules.builtin.modinfo` → their indexes (compat §7.8, §7.9).
//!
//! Both parsers follow kmod's stdio loops byte for byte, quirks included: libkmod
//! reads these indexes to tell "built in" from "missing", so a different key set
//! changes what modprobe does.

use alloc::vec::Vec;

use crate::alias::normalize;
use crate::diag::Diag;
use crate::index::Trie;
use crate::names;

/// kmod reads text inputs with `fgets` into a `PATH_MAX` buffer: chunks of at most
/// 4095 bytes, each ending at its first newline; NULs end the C string.
pub fn fgets_chunks(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    core::iter::from_fn(move || {
        let rest = text.get(pos..).filter(|r| !r.is_empty())?;
        let max = rest.get(..4095).unwrap_or(rest);
        // Up to and including the first newline, or all of `max`.
        let line = max.split_inclusive(|&b| b == b'\n').next().unwrap_or(max);
        pos += line.len();
        Some(crate::elf::cstr(line))
    })
}

/// `modules.builtin` → index of built-in module names (empty values, priority 0).
/// A name the index cannot hold (non-ASCII) is left out with a [`Diag`].
pub fn builtin_index(text: &[u8], diags: &mut Vec<Diag>) -> Trie {
    let mut trie = Trie::new();
    for line in fgets_chunks(text) {
        if !line.first().is_some_and(u8::is_ascii_alphabetic) {
            diags.push(Diag::BuiltinBadLine(line.to_vec()));
            continue;
        }
        if trie.insert(&names::builtin_modname(line), b"", 0).is_err() {
            diags.push(Diag::NonAsciiBuiltin(line.to_vec()));
        }
    }
    trie
}

/// A byte stream with kmod's `read_until` semantics for `modules.builtin.modinfo`.
struct Stream<'a> {
    data: &'a [u8],
    pos: usize,
}

const FIELD_MAX: usize = 4096;

impl<'a> Stream<'a> {
    fn eof(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.data.get(self.pos).copied();
        self.pos += 1;
        b
    }

    /// Reads up to `end` (or NUL, or EOF), consuming the terminator. The bytes read if
    /// the terminator was `end`, else empty.
    fn read_until(&mut self, end: u8, diags: &mut Vec<Diag>) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        loop {
            let stored = self.pos.min(self.data.len()) - start;
            if stored == FIELD_MAX {
                let last = self.next();
                // `stored == FIELD_MAX` bytes lie between `start` and the end of the data.
                let field = self.data.get(start..start + FIELD_MAX).unwrap_or_default();
                diags.push(Diag::FlushStream(field.to_vec()));
                return if last == Some(end) {
                    field.get(..FIELD_MAX - 1).unwrap_or_default()
                } else {
                    &[]
                };
            }
            match self.next() {
                None => return &[],
                // `self.pos - 1` is the terminator just read, at or after `start`.
                Some(b) if b == end => {
                    return self.data.get(start..self.pos - 1).unwrap_or_default()
                }
                Some(0) => return &[],
                Some(_) => {}
            }
        }
    }

    fn skip_record(&mut self) {
        while let Some(b) = self.next() {
            if b == 0 {
                break;
            }
        }
    }
}

/// `modules.builtin.modinfo` (`name.key=value\0` records) → index of the aliases of
/// built-in modules. All priorities are 0, so equal keys keep the last record first.
/// A record the index cannot hold (non-ASCII) is left out with a [`Diag`].
pub fn builtin_alias_index(data: &[u8], diags: &mut Vec<Diag>) -> Trie {
    let mut trie = Trie::new();
    let mut s = Stream { data, pos: 0 };
    while !s.eof() {
        let name = s.read_until(b'.', diags);
        if name.is_empty() {
            continue;
        }
        let key = s.read_until(b'=', diags);
        if key != b"alias" {
            s.skip_record();
            continue;
        }
        let value = s.read_until(0, diags);
        if value.is_empty() {
            continue;
        }
        match normalize(value) {
            Some(alias) => {
                if trie.insert(&alias, name, 0).is_err() {
                    diags.push(Diag::NonAsciiBuiltinAlias(name.to_vec(), value.to_vec()));
                }
            }
            None => diags.push(Diag::UnmatchedBracket(value.to_vec())),
        }
    }
    trie
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Reader;

    fn keys(t: &Trie) -> Vec<crate::index::Entry> {
        let mut out = Vec::new();
        t.write(&mut out);
        Reader::new(&out).unwrap().entries().unwrap()
    }

    #[test]
    fn builtin_lines() {
        let mut d = Vec::new();
        let t = builtin_index(b"kernel/a/foo-bar.ko\n1bad\nkernel/noext\n", &mut d);
        let k: Vec<Vec<u8>> = keys(&t).into_iter().map(|e| e.0).collect();
        assert_eq!(k, [b"foo_bar".to_vec(), b"noext\n".to_vec()]);
        assert_eq!(d, [Diag::BuiltinBadLine(b"1bad\n".to_vec())]);
    }

    #[test]
    fn modinfo_swallows_record_after_broken_one() {
        let mut d = Vec::new();
        let t = builtin_alias_index(b"a.alias=x\0b.broken\0c.alias=y\0d.alias=x\0", &mut d);
        let e = keys(&t);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, b"x");
        assert_eq!(e[0].1, [(0, b"d".to_vec()), (0, b"a".to_vec())]);
    }
}
