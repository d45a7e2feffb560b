//! POSIX extended regular expressions, matched the way glibc's
//! `regcomp(REG_EXTENDED | REG_NOSUB)` + `regexec(…, 0, NULL, 0)` match them in the C locale.
//!
//! depmod.d's `override` and `external` lines compare the kernel version against a
//! pattern this way (compat §2.1): an unanchored search whose only result is
//! "matches / does not match", and a pattern that fails to compile never matches.
//!
//! Supported syntax, with glibc's exact acceptance rules and error codes:
//! * literals, `.` (any byte but NUL, newline included), `\X` for a literal `X`;
//! * bracket expressions: ranges (byte order), negation `[^…]`, `]` first is literal, `-`
//!   first or last is literal, character classes `[:alnum:]` … `[:xdigit:]`, single-byte
//!   collating symbols `[.c.]` and equivalence classes `[=c=]`; `\` is literal inside;
//! * anchors `^ $` (valid anywhere, no `REG_NEWLINE`) and the GNU anchors
//!   `\< \> \b \B` `` \` `` `\'`;
//! * the GNU class escapes `\w \W \s \S`;
//! * groups `( )` (also empty), alternation `|` (empty alternatives allowed), `)` outside
//!   a group is literal;
//! * repetition `* + ? {m} {m,} {,n} {m,n}` (bounds up to `RE_DUP_MAX` = 32767), stacked
//!   repetitions such as `a**` or `a{2}{3}`;
//! * back-references `\1`…`\9` (a glibc extension to ERE).
//!
//! Pattern and text are C strings in kmod: both are cut at their first NUL byte here.
//!
//! # How it matches
//!
//! Patterns without back-references go through a port of glibc's own construction
//! (`posix/regcomp.c`: the parse tree with `{m,n}` expanded by copying, `lower_subexps`,
//! `calc_first`/`calc_next`/`link_nfa_nodes`, and `calc_eclosure`, which pushes anchor
//! constraints onto copies of the following nodes) and a simulation of its matcher
//! (`posix/regexec.c`: node sets per position, filtered by the context of the previous
//! byte; the contexts after a consumed byte come from the transition table). That makes
//! even glibc's odd answers come out the same: `^` matches right after a newline the
//! pattern consumed (`.^` matches `"a\n"`), and an anchor followed by a copied subtree
//! loses its constraint (`(a$){2}` matches `"aa"`, `(a$)(a$)` does not). After
//! replaying glibc's copying order, the epsilon closures are plain reachability, walked
//! during matching rather than stored, which gives glibc's closures far faster than its
//! own repeated set merging (`(\B|$|\b)*x`: 1 s in glibc, milliseconds here). The
//! simulation is linear in `(nodes + edges) × text length`. `tests/ere_oracle.rs` compares all
//! of this with glibc itself; over 1.1 million generated pairs no pattern without a
//! back-reference gave a different answer or error code.
//!
//! Patterns with back-references (NP-hard in general) are matched by a depth-first
//! search over `(state, position, captures)` with a memo and a hard budget
//! (`MAX_BACKREF_STATES`; past it the answer is "no match"), with the POSIX meaning of
//! anchors and "a back-reference to a group that did not take part fails". glibc's own
//! back-reference matcher has quirks this does not reproduce, all around groups that
//! match empty or not at all: it rejects `(){2}\1` on any text, accepts
//! `(|(\s?)\)){1,2}\2{2}` on `4.9.56`, and crashes on `()\1{3}*\{?(\>)`. (About
//! 25 of the 1.1 million pairs above, all of this kind.)
//!
//! Nothing recurses: parsing, the tree walks (glibc's parent-pointer `preorder` and
//! `postorder`), the epsilon closures and matching use loops and explicit stacks, so
//! hostile nesting like `((((…))))` cannot overflow the stack. A pattern whose expansion
//! exceeds `MAX_NODES` nodes is refused with
//! [`Error::Space`], where glibc would try to allocate it.
//!
//! # Layout
//!
//! One module per stage, each opening with what it takes and what it hands on:
//!
//! ```text
//!  pattern ─► parse ─► tree + byte sets ─┬─ no back-reference: nfa ─► Nfa ─► matcher ─► bool
//!                                        └─ back-references: backref (program, search) ─► bool
//! ```
//!
//! * `parse`: glibc's parser (tokens, brackets, intervals, groups, back-reference
//!   checks). Pattern in; parse tree, byte sets and "has back-references" out. Every
//!   `regcomp` error is decided there, except [`Error::Space`] for an NFA too large.
//! * `tree`: the parse tree (glibc's `bin_tree_t`, an arena) and glibc's walks over it:
//!   what `parse` hands to `nfa` and `backref`.
//! * `nfa`: glibc's `analyze`. Tree in; glibc's NFA out, constraint copies included.
//! * `matcher`: glibc's `regexec`, simulated over that NFA. NFA and text in; the answer
//!   out.
//! * `backref`: patterns with back-references. Tree in; a Thompson program, then
//!   (with the text) the answer of its depth-first search out.
//! * `context`: glibc's constraint bits and the contexts of a text position, shared by
//!   all stages.
//!
//! This module is the public API ([`Regex`], [`is_match`], [`Error`]); [`Regex::new`]
//! runs the stages.

mod backref;
mod context;
mod matcher;
mod nfa;
mod parse;
mod tree;

use alloc::vec::Vec;

use backref::Inst;
use nfa::Nfa;
use parse::{ByteSet, Parsed};

/// Largest parse tree, and largest NFA (with constraint copies), we build.
const MAX_NODES: usize = 200_000;
/// "No node" in the tree and the NFA.
const NIL: u32 = u32::MAX;

/// Why a pattern does not compile. Each variant corresponds to the `regcomp` error code
/// glibc returns for the same pattern (see [`Error::code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// `REG_BADPAT`: a `[` with nothing after it.
    BadPattern,
    /// `REG_ECOLLATE`: a collating element or equivalence class that is not one byte.
    Collate,
    /// `REG_ECTYPE`: an unknown character class name.
    CharClass,
    /// `REG_EESCAPE`: a trailing backslash.
    Escape,
    /// `REG_ESUBREG`: a back-reference to a group that is not complete at that point.
    SubReg,
    /// `REG_EBRACK`: an unterminated bracket expression.
    Bracket,
    /// `REG_EPAREN`: an unterminated group.
    Paren,
    /// `REG_EBRACE`: an unterminated `{`.
    Brace,
    /// `REG_BADBR`: malformed content of `{…}`.
    BadInterval,
    /// `REG_ERANGE`: an invalid range endpoint or a reversed range.
    Range,
    /// `REG_ESPACE`: the expanded pattern is too large.
    Space,
    /// `REG_BADRPT`: a repetition operator with nothing to repeat.
    BadRepeat,
    /// `REG_ESIZE`: a repetition bound above `RE_DUP_MAX`.
    Size,
}

impl Error {
    /// The glibc `regcomp` return value (`REG_*` from `<regex.h>`) for this error.
    pub const fn code(self) -> i32 {
        match self {
            Error::BadPattern => 2,
            Error::Collate => 3,
            Error::CharClass => 4,
            Error::Escape => 5,
            Error::SubReg => 6,
            Error::Bracket => 7,
            Error::Paren => 8,
            Error::Brace => 9,
            Error::BadInterval => 10,
            Error::Range => 11,
            Error::Space => 12,
            Error::BadRepeat => 13,
            Error::Size => 15,
        }
    }
}

/// Compiles `pattern` as a POSIX ERE and searches `text` for a match anywhere, like
/// kmod's `regcomp(REG_EXTENDED|REG_NOSUB)` + `regexec`. An invalid pattern gives `false`.
pub fn is_match(pattern: &[u8], text: &[u8]) -> bool {
    match Regex::new(pattern) {
        Ok(re) => re.is_match(text),
        Err(_) => false,
    }
}

/// A compiled extended regular expression.
#[derive(Clone, Debug)]
pub struct Regex {
    engine: Engine,
    sets: Vec<ByteSet>,
}

#[derive(Clone, Debug)]
enum Engine {
    /// glibc's NFA (no back-references).
    Glibc(Nfa),
    /// Thompson program with captures, searched depth-first (back-references).
    Backtrack { prog: Vec<Inst>, start: u32 },
}

impl Regex {
    /// Compiles `pattern` (cut at its first NUL byte) with glibc's ERE rules.
    pub fn new(pattern: &[u8]) -> Result<Regex, Error> {
        let pattern = cut_at_nul(pattern);
        let Parsed {
            mut tree,
            content,
            sets,
            backrefs,
        } = parse::parse(pattern)?;
        let engine = if backrefs {
            let (prog, start) = backref::build(&tree, content)?;
            Engine::Backtrack { prog, start }
        } else {
            Engine::Glibc(Nfa::build(&mut tree, content)?)
        };
        Ok(Regex { engine, sets })
    }

    /// Whether the expression matches somewhere in `text` (cut at its first NUL byte).
    pub fn is_match(&self, text: &[u8]) -> bool {
        let text = cut_at_nul(text);
        match &self.engine {
            Engine::Glibc(nfa) => nfa.search(&self.sets, text),
            Engine::Backtrack { prog, start } => {
                backref::search_backtrack(prog, *start, &self.sets, text)
            }
        }
    }
}

/// The text up to its first NUL byte (kmod passes C strings).
fn cut_at_nul(s: &[u8]) -> &[u8] {
    s.split(|&b| b == 0).next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether pattern `p` matches text `t` (the helper of every stage's tests).
    pub(super) fn m(p: &str, t: &str) -> bool {
        is_match(p.as_bytes(), t.as_bytes())
    }

    /// The `regcomp` error code for pattern `p`, if it does not compile.
    pub(super) fn err(p: &str) -> Option<i32> {
        Regex::new(p.as_bytes()).err().map(Error::code)
    }

    #[test]
    fn kernel_versions() {
        assert!(!m("*", "x")); // `*` alone does not compile (kmod special-cases "*")
        assert!(m("^6\\.1\\.", "6.1.0-56-amd64"));
        assert!(m("4.4", "14.4.1"));
        assert!(m("5.*", "6.5.0"));
        assert!(!m("^5", "6.5.0"));
        assert!(m("amd64$", "6.1.0-56-amd64"));
        assert!(m(
            "^[0-9]+\\.[0-9]+\\.[0-9]+-[0-9]+-(amd64|arm64)$",
            "6.1.0-56-amd64"
        ));
        assert!(!m("^[0-9]+\\.[0-9]+$", "6.1.0-56-amd64"));
        assert!(m("-[[:digit:]]{2}-", "6.1.0-56-amd64"));
        assert!(m("", "anything"));
        assert!(m("\\<6", "6.1"));
        assert!(!m("\\B6", "6.1"));
    }
    #[test]
    fn hostile() {
        let deep = "(".repeat(5000) + &")".repeat(5000);
        assert!(m(&deep, "x"));
        let deep_alt = "(a|".repeat(1000) + &")".repeat(1000);
        assert!(m(&deep_alt, "x"));
        assert!(!m(&"(".repeat(5000), "x"));
        assert!(!m("(a*)*(a*)*(a*)*(a*)*b", &"a".repeat(200)));
        assert!(!m("(a|a)*(a|a)*(a|a)*c", &"a".repeat(200)));
        // Anchors in loops make glibc copy closures per constraint combination.
        assert!(m("(^|$|\\<|\\>)*(\\b|\\B)*x", &("ab ".repeat(100) + "x")));
        assert!(!m("(^|$|\\<|\\>)*(\\b|\\B)*x", &"ab ".repeat(100)));
        assert_eq!(err("((a{1000}){1000}){1000}"), Some(12));
        assert!(m("x{0,3000}", ""));
        assert!(!m("(a*)*\\1(b*)*\\2c", &"ab".repeat(30)));
    }
}
