//! depmod.d configuration text → directives (compat §2.1).
//!
//! The host collects the files (search path, `-C`, name order); this module parses
//! each one's bytes. Lists are kept in kmod's in-memory order — every directive
//! *prepends* — because the duplicate-ranking rules iterate them in that order.

use alloc::vec::Vec;

use crate::diag::Diag;

/// One entry of the `search` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Search {
    /// `built-in`: the rank of every path no other entry claims.
    BuiltIn,
    /// `external`: the rank of the `external` directories.
    External,
    /// A subdirectory of the module directory (`updates`, `updates/dkms`, …).
    Path(Vec<u8>),
}

/// The configuration in kmod's internal (reversed) order.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// `search` entries; first = highest priority.
    pub search: Vec<Search>,
    /// `override` entries as `SUBDIR/MODNAME`.
    pub overrides: Vec<Vec<u8>>,
    /// `external` directories (absolute, used verbatim).
    pub externals: Vec<Vec<u8>>,
    /// `exclude` names: path components skipped during the scan.
    pub excludes: Vec<Vec<u8>>,
}

impl Config {
    /// Call once all files are parsed: an empty search list means `search updates`.
    pub fn finish(&mut self) {
        if self.search.is_empty() {
            self.search.push(Search::Path(b"updates".to_vec()));
        }
    }

    /// Parses one configuration file. `path` names it in messages; `kver` is matched
    /// against `override`/`external` version patterns.
    pub fn parse(&mut self, path: &[u8], text: &[u8], kver: &[u8], diags: &mut Vec<Diag>) {
        for (lineno, line) in logical_lines(text) {
            // kmod handles lines as C strings.
            let line = crate::elf::cstr(&line);
            if matches!(line.first(), None | Some(b'#')) {
                continue;
            }
            let mut tokens = line
                .split(|&b| b == b' ' || b == b'\t')
                .filter(|t| !t.is_empty());
            let Some(cmd) = tokens.next() else {
                continue;
            };
            let at = |d: fn(Vec<u8>, u32, Vec<u8>) -> Diag, arg: &[u8]| {
                d(path.to_vec(), lineno, arg.to_vec())
            };
            match cmd {
                b"search" => {
                    for t in tokens {
                        let entry = match t {
                            b"built-in" => Search::BuiltIn,
                            b"external" => Search::External,
                            p => Search::Path(p.to_vec()),
                        };
                        self.search.insert(0, entry);
                    }
                }
                b"override" => match (tokens.next(), tokens.next(), tokens.next()) {
                    (Some(name), Some(ver), Some(subdir)) => {
                        if kernel_matches(ver, kver) {
                            let mut o = subdir.to_vec();
                            o.push(b'/');
                            o.extend_from_slice(name);
                            self.overrides.insert(0, o);
                        } else {
                            diags.push(at(Diag::OverrideNoMatch, ver));
                        }
                    }
                    _ => diags.push(at(Diag::ConfigBadLine, cmd)),
                },
                b"external" => match (tokens.next(), tokens.next()) {
                    (Some(ver), Some(dir)) => {
                        if kernel_matches(ver, kver) {
                            self.externals.insert(0, dir.to_vec());
                        } else {
                            diags.push(at(Diag::ExternalNoMatch, ver));
                        }
                    }
                    _ => diags.push(at(Diag::ConfigBadLine, cmd)),
                },
                b"exclude" => {
                    for t in tokens {
                        self.excludes.insert(0, t.to_vec());
                    }
                }
                b"include" | b"make_map_files" => diags.push(at(Diag::ConfigNotImplemented, cmd)),
                _ => diags.push(at(Diag::ConfigBadLine, cmd)),
            }
        }
    }
}

/// kmod's version test: `*` matches all, anything else is an unanchored POSIX ERE.
pub fn kernel_matches(pattern: &[u8], kver: &[u8]) -> bool {
    pattern == b"*" || crate::ere::is_match(pattern, kver)
}

/// Splits configuration text into logical lines with the number of the last physical
/// line each spans: backslash-newline joins lines, a backslash before any other byte
/// is dropped, a final line without newline still counts.
pub fn logical_lines(text: &[u8]) -> impl Iterator<Item = (u32, Vec<u8>)> + '_ {
    let mut pos = 0;
    let mut lineno = 0u32;
    core::iter::from_fn(move || {
        let mut buf = Vec::new();
        loop {
            let Some(&c) = text.get(pos) else {
                if buf.is_empty() {
                    return None;
                }
                lineno += 1;
                return Some((lineno, buf));
            };
            pos += 1;
            match c {
                b'\n' => {
                    lineno += 1;
                    return Some((lineno, buf));
                }
                b'\\' => match text.get(pos) {
                    Some(b'\n') => {
                        pos += 1;
                        lineno += 1;
                    }
                    Some(&next) => {
                        pos += 1;
                        buf.push(next);
                    }
                    None => {}
                },
                _ => buf.push(c),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn lines() {
        let got: Vec<_> = logical_lines(b"a\\\nb\n\nc\\d\ne").collect();
        assert_eq!(
            got,
            vec![
                (2, b"ab".to_vec()),
                (3, vec![]),
                (4, b"cd".to_vec()),
                (5, b"e".to_vec())
            ]
        );
    }

    #[test]
    fn directives_prepend() {
        let mut c = Config::default();
        let mut d = Vec::new();
        c.parse(
            b"/etc/depmod.d/a.conf",
            b"search updates built-in\nsearch extra\noverride m 4.4.4 over\nexternal 5.* /x\nexclude a b\nbogus\noverride x\n# c\ninclude y\n",
            b"4.4.4",
            &mut d,
        );
        c.finish();
        assert_eq!(
            c.search,
            vec![
                Search::Path(b"extra".to_vec()),
                Search::BuiltIn,
                Search::Path(b"updates".to_vec())
            ]
        );
        assert_eq!(c.overrides, vec![b"over/m".to_vec()]);
        assert!(c.externals.is_empty());
        assert_eq!(c.excludes, vec![b"b".to_vec(), b"a".to_vec()]);
        assert_eq!(
            d,
            vec![
                Diag::ExternalNoMatch(b"/etc/depmod.d/a.conf".to_vec(), 4, b"5.*".to_vec()),
                Diag::ConfigBadLine(b"/etc/depmod.d/a.conf".to_vec(), 6, b"bogus".to_vec()),
                Diag::ConfigBadLine(b"/etc/depmod.d/a.conf".to_vec(), 7, b"override".to_vec()),
                Diag::ConfigNotImplemented(
                    b"/etc/depmod.d/a.conf".to_vec(),
                    9,
                    b"include".to_vec()
                ),
            ]
        );
    }
}
