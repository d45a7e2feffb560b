//! The output files (compat §7): each generated into a byte [`Sink`], in kmod's order
//! and format. The binary decides where the bytes go (a temp file, or stdout for
//! `-n`) and words the diagnostics.
//!
//! The `.bin` indexes hold 7-bit ASCII only. kmod 34.2 stops the whole run with
//! FATAL at the first key or value that is not; here such an alias or symbol is
//! left out of the index *and* of its text twin (so the two agree), with one
//! [`Diag`] naming the module and the key, and everything else is written.
//! Modules whose own path is not ASCII are left out before this point
//! ([`crate::modset::leave_out_non_ascii`]).

use alloc::vec::Vec;

use crate::alias::normalize_into;
use crate::diag::Diag;
use crate::index::{is_indexable, Sink, Trie};
use crate::modset::Module;
use crate::resolve::Resolved;
use crate::scan::{InfoKey, ModuleData};

/// Every file depmod writes, in the order it writes them (also the `-n` order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFile {
    /// `modules.dep`
    Dep,
    /// `modules.dep.bin`
    DepBin,
    /// `modules.alias`
    Alias,
    /// `modules.alias.bin`
    AliasBin,
    /// `modules.softdep`
    Softdep,
    /// `modules.weakdep`
    Weakdep,
    /// `modules.symbols`
    Symbols,
    /// `modules.symbols.bin`
    SymbolsBin,
    /// `modules.builtin.bin` (from the `modules.builtin` input)
    BuiltinBin,
    /// `modules.builtin.alias.bin` (from the `modules.builtin.modinfo` input)
    BuiltinAliasBin,
    /// `modules.devname`
    Devname,
}

impl OutputFile {
    /// All outputs in write order.
    pub const ALL: [OutputFile; 11] = [
        OutputFile::Dep,
        OutputFile::DepBin,
        OutputFile::Alias,
        OutputFile::AliasBin,
        OutputFile::Softdep,
        OutputFile::Weakdep,
        OutputFile::Symbols,
        OutputFile::SymbolsBin,
        OutputFile::BuiltinBin,
        OutputFile::BuiltinAliasBin,
        OutputFile::Devname,
    ];

    /// File name in the output directory.
    pub fn name(self) -> &'static str {
        match self {
            OutputFile::Dep => "modules.dep",
            OutputFile::DepBin => "modules.dep.bin",
            OutputFile::Alias => "modules.alias",
            OutputFile::AliasBin => "modules.alias.bin",
            OutputFile::Softdep => "modules.softdep",
            OutputFile::Weakdep => "modules.weakdep",
            OutputFile::Symbols => "modules.symbols",
            OutputFile::SymbolsBin => "modules.symbols.bin",
            OutputFile::BuiltinBin => "modules.builtin.bin",
            OutputFile::BuiltinAliasBin => "modules.builtin.alias.bin",
            OutputFile::Devname => "modules.devname",
        }
    }

    /// Binary indexes are skipped by `-n`.
    pub fn is_index(self) -> bool {
        matches!(
            self,
            OutputFile::DepBin
                | OutputFile::AliasBin
                | OutputFile::SymbolsBin
                | OutputFile::BuiltinBin
                | OutputFile::BuiltinAliasBin
        )
    }
}

/// The inputs of every per-module output.
pub struct Outputs<'r, 'a> {
    /// Modules in final order.
    pub modules: &'r [Module],
    /// Their scan results, same order.
    pub data: &'a [ModuleData],
    /// Dependencies and symbols.
    pub resolved: &'r Resolved<'a>,
    /// `-w`: report duplicate index entries.
    pub warn_duplicates: bool,
    /// Leave aliases and symbols that an index cannot hold (non-ASCII) out of the
    /// text files too, so that each text file agrees with its index. Off for `-n`,
    /// which writes no index and prints exactly what kmod prints.
    pub leave_out_non_ascii: bool,
}

impl Outputs<'_, '_> {
    /// Writes the module-derived output `file` (everything but the two builtin
    /// indexes, which come from their own inputs: see [`crate::builtin`]).
    pub fn generate(&self, file: OutputFile, out: &mut Vec<u8>, diags: &mut Vec<Diag>) {
        match file {
            OutputFile::Dep => self.dep(out),
            OutputFile::Alias => self.alias(out),
            OutputFile::Softdep => self.info_lines(
                out,
                InfoKey::Softdep,
                b"# Soft dependencies extracted from modules themselves.\n",
                b"softdep ",
            ),
            OutputFile::Weakdep => self.info_lines(
                out,
                InfoKey::Weakdep,
                b"# Weak dependencies extracted from modules themselves.\n",
                b"weakdep ",
            ),
            OutputFile::Symbols => self.symbols(out),
            OutputFile::Devname => self.devname(out, diags),
            OutputFile::DepBin | OutputFile::AliasBin | OutputFile::SymbolsBin => {
                if let Some(trie) = self.index(file, diags) {
                    trie.write(out);
                }
            }
            OutputFile::BuiltinBin | OutputFile::BuiltinAliasBin => {}
        }
    }

    /// The insertions of the module-derived index `file`, not yet laid out
    /// (`None` for the text files and the two builtin indexes): the host may
    /// find the file it would make already in place ([`Trie::fingerprint`]).
    pub fn index(&self, file: OutputFile, diags: &mut Vec<Diag>) -> Option<Trie> {
        match file {
            OutputFile::DepBin => Some(self.dep_bin(diags)),
            OutputFile::AliasBin => Some(self.alias_bin(diags)),
            OutputFile::SymbolsBin => Some(self.symbols_bin(diags)),
            _ => None,
        }
    }

    /// Would this alias or symbol name be left out (see the module doc)?
    fn left_out(&self, key: &[u8]) -> bool {
        self.leave_out_non_ascii && !is_indexable(key)
    }

    /// Would this exported symbol be left out? Besides non-ASCII names, an empty
    /// one (a damaged `__crc_` symbol): kmod's `modules.symbols.bin` writer takes
    /// its empty name for a failure and stops the run.
    fn symbol_left_out(&self, name: &[u8]) -> bool {
        self.left_out(name) || (self.leave_out_non_ascii && name.is_empty())
    }

    /// An index that tells repeated entries apart only where `-w` reports them.
    fn new_trie(&self) -> Trie {
        new_trie(self.warn_duplicates)
    }

    /// A module's aliases, less those left out.
    fn aliases<'d>(&self, d: &'d ModuleData) -> impl Iterator<Item = &'d [u8]> + use<'_, 'd> {
        d.info(InfoKey::Alias).filter(|a| !self.left_out(a))
    }

    fn dep_line(&self, m: &Module, deps: &[u32], line: &mut Vec<u8>) {
        line.clear();
        line.extend_from_slice(m.out_path());
        line.push(b':');
        // Dependencies are indices of `modules` (made by `resolve`), so all are found.
        for d in deps.iter().filter_map(|&d| self.modules.get(d as usize)) {
            line.push(b' ');
            line.extend_from_slice(d.out_path());
        }
    }

    fn dep(&self, out: &mut impl Sink) {
        let mut line = Vec::new();
        for (m, deps) in self.modules.iter().zip(&self.resolved.deps) {
            self.dep_line(m, deps, &mut line);
            line.push(b'\n');
            out.put(&line);
        }
    }

    fn dep_bin(&self, diags: &mut Vec<Diag>) -> Trie {
        let mut trie = self.new_trie();
        let mut line = Vec::new();
        for (i, (m, deps)) in self.modules.iter().zip(&self.resolved.deps).enumerate() {
            self.dep_line(m, deps, &mut line);
            // Module names and paths are ASCII here (`leave_out_non_ascii` in
            // modset), so the insertion cannot be refused.
            if trie.insert(&m.name, &line, i as u32) == Ok(true) && self.warn_duplicates {
                diags.push(Diag::DuplicateDep(line.clone()));
            }
        }
        trie
    }

    fn alias(&self, out: &mut impl Sink) {
        out.put(b"# Aliases extracted from modules themselves.\n");
        for (m, d) in self.modules.iter().zip(self.data) {
            for a in self.aliases(d) {
                out.put(b"alias ");
                out.put(a);
                out.put(b" ");
                out.put(&m.name);
                out.put(b"\n");
            }
        }
    }

    fn alias_bin(&self, diags: &mut Vec<Diag>) -> Trie {
        alias_index(self.modules, self.data, self.warn_duplicates, diags)
    }

    fn info_lines(&self, out: &mut impl Sink, key: InfoKey, header: &[u8], word: &[u8]) {
        out.put(header);
        for (m, d) in self.modules.iter().zip(self.data) {
            for v in d.info(key) {
                out.put(word);
                out.put(&m.name);
                out.put(b" ");
                out.put(v);
                out.put(b"\n");
            }
        }
    }

    fn symbols(&self, out: &mut impl Sink) {
        out.put(b"# Aliases for symbols, used by symbol_request().\n");
        for s in self.resolved.symbols.in_kmod_order() {
            // Owners are indices of `modules` (made by `resolve`), so all are found.
            let Some(owner) = self.modules.get(s.owner as usize) else {
                continue;
            };
            if self.symbol_left_out(s.name) {
                continue;
            }
            out.put(b"alias symbol:");
            out.put(s.name);
            out.put(b" ");
            out.put(&owner.name);
            out.put(b"\n");
        }
    }

    fn symbols_bin(&self, diags: &mut Vec<Diag>) -> Trie {
        let mut trie = self.new_trie();
        let mut key = Vec::new();
        for s in self.resolved.symbols.in_kmod_order() {
            key.clear();
            key.extend_from_slice(b"symbol:");
            key.extend_from_slice(s.name);
            // Owners are indices of `modules` (made by `resolve`), so all are found.
            let Some(owner) = self.modules.get(s.owner as usize) else {
                continue;
            };
            if s.name.is_empty() {
                diags.push(Diag::UnindexableSymbol(s.owner, Vec::new()));
                continue;
            }
            match trie.insert(&key, &owner.name, s.owner) {
                Ok(true) if self.warn_duplicates => {
                    diags.push(Diag::DuplicateSym(key.clone(), owner.name.clone()))
                }
                Ok(_) => {}
                Err(_) => diags.push(Diag::UnindexableSymbol(s.owner, s.name.to_vec())),
            }
        }
        trie
    }

    fn devname(&self, out: &mut impl Sink, diags: &mut Vec<Diag>) {
        let mut empty = true;
        for (m, d) in self.modules.iter().zip(self.data) {
            let mut devname: Option<&[u8]> = None;
            let mut dev: Option<(u8, u32, u32)> = None;
            for a in self.aliases(d) {
                if let Some(name) = a.strip_prefix(b"devname:") {
                    devname = Some(name);
                } else if let Some(n) = scan_major_minor(a, b"char-major-") {
                    dev = Some((b'c', n.0, n.1));
                } else if let Some(n) = scan_major_minor(a, b"block-major-") {
                    dev = Some((b'b', n.0, n.1));
                }
                if devname.is_some() && dev.is_some() {
                    break;
                }
            }
            let Some(devname) = devname else { continue };
            let Some((kind, major, minor)) = dev else {
                diags.push(Diag::DevnameNoMajor(m.name.clone(), devname.to_vec()));
                continue;
            };
            if empty {
                out.put(b"# Device nodes to trigger on-demand module loading.\n");
                empty = false;
            }
            out.put(&m.name);
            out.put(b" ");
            out.put(devname);
            out.put(b" ");
            let mut buf = Vec::with_capacity(24);
            buf.push(kind);
            push_decimal(&mut buf, major);
            buf.push(b':');
            push_decimal(&mut buf, minor);
            buf.push(b'\n');
            out.put(&buf);
        }
    }
}

fn push_decimal(buf: &mut Vec<u8>, mut v: u32) {
    // Digits from the right; a `u32` has at most 10.
    let mut tmp = [0u8; 10];
    let mut n = 0;
    for slot in tmp.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend(tmp.iter().skip(tmp.len() - n));
}

/// C `sscanf(s, "<prefix>%u-%u", …) == 2`.
fn scan_major_minor(s: &[u8], prefix: &[u8]) -> Option<(u32, u32)> {
    let rest = s.strip_prefix(prefix)?;
    let (major, rest) = scan_u(rest)?;
    let rest = rest.strip_prefix(b"-")?;
    let (minor, _) = scan_u(rest)?;
    Some((major, minor))
}

/// C `%u`: optional white space, optional sign, decimal digits (wrapping like
/// `strtoul` cast to `unsigned int`).
fn scan_u(mut s: &[u8]) -> Option<(u32, &[u8])> {
    while let Some((b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c, rest)) = s.split_first() {
        s = rest;
    }
    let mut neg = false;
    if let Some((&sign @ (b'+' | b'-'), rest)) = s.split_first() {
        neg = sign == b'-';
        s = rest;
    }
    let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let (digits, rest) = s.split_at_checked(n)?;
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    let mut overflow = false;
    for &d in digits {
        match v
            .checked_mul(10)
            .and_then(|x| x.checked_add(u64::from(d - b'0')))
        {
            Some(x) => v = x,
            None => overflow = true,
        }
    }
    let v = if overflow {
        u64::MAX
    } else if neg {
        v.wrapping_neg()
    } else {
        v
    };
    Some((v as u32, rest))
}

/// An index that tells repeated entries apart only where `-w`
/// (`warn_duplicates`) reports them.
fn new_trie(warn_duplicates: bool) -> Trie {
    if warn_duplicates {
        Trie::checking_duplicates()
    } else {
        Trie::new()
    }
}

/// `modules.alias.bin`'s insertions: each module's aliases, normalised as
/// libkmod looks them up, under its position. Needs no dependency, so the host
/// makes it while it resolves (the index with the most insertions).
/// `warn_duplicates`: `-w`, which reports an alias a module gives twice.
pub fn alias_index(
    modules: &[Module],
    data: &[ModuleData],
    warn_duplicates: bool,
    diags: &mut Vec<Diag>,
) -> Trie {
    let mut trie = new_trie(warn_duplicates);
    let mut key = Vec::new();
    for (i, (m, d)) in modules.iter().zip(data).enumerate() {
        for a in d.info(InfoKey::Alias) {
            if !normalize_into(a, &mut key) {
                diags.push(Diag::UnmatchedBracket(a.to_vec()));
                continue;
            }
            match trie.insert(&key, &m.name, i as u32) {
                Ok(true) if warn_duplicates => {
                    diags.push(Diag::DuplicateAlias(key.clone(), m.name.clone()))
                }
                Ok(_) => {}
                Err(_) => diags.push(Diag::NonAsciiAlias(i as u32, a.to_vec())),
            }
        }
    }
    trie
}
