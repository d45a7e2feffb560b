//! The last stage for patterns without back-references: glibc's matcher, simulated.
//!
//! `regexec` (`posix/regexec.c`) without `REG_NOTBOL`/`REG_NOTEOL`, reduced to "is there
//! a match": the NFA from `nfa` is run over the text as a set of nodes per position,
//! every start position at once. A thread that consumed a byte is filtered by the
//! context glibc's transition table gives after that byte (a consumed newline counts as
//! a line start, so `.^` matches `"a\n"`); a fresh start by the context
//! `re_string_context_at` gives; a consuming node's next-constraints restrict the byte
//! it consumes (`group_nodes_into_DFAstates`). The time is linear in
//! `(nodes + edges) × text length`.
//!
//! In: an [`Nfa`], the parser's byte sets, the text (already cut at its first NUL
//! byte). Out: match or no match, which `Regex::is_match` returns. Nothing follows.

use alloc::vec;
use alloc::vec::Vec;

use super::context::{
    context_at, is_word, next_ok, prev_ok, CONTEXT_NEWLINE, CONTEXT_WORD, NEXT_ENDBUF,
    NEXT_NEWLINE, NEXT_NOTWORD, NEXT_WORD,
};
use super::nfa::{get_u32, set_u32, NType, Nfa};
use super::parse::{set_contains, ByteSet};
use super::NIL;

impl Nfa {
    /// regexec without `REG_NOTBOL`/`REG_NOTEOL`: is there a start position from which
    /// glibc's matcher reaches a halt state? All start positions are simulated at once:
    /// a node set per position is the union of the continuing threads (filtered with the
    /// context the transition table gives after the consumed byte) and a fresh start
    /// (filtered with the context `re_string_context_at` gives).
    pub(super) fn search(&self, sets: &[ByteSet], text: &[u8]) -> bool {
        let n = self.nodes.len();
        let mut stamp = vec![u32::MAX; n];
        let mut cur: Vec<u32> = Vec::new();
        let mut raw: Vec<u32> = Vec::new();
        let mut raw_stamp = vec![u32::MAX; n];
        let mut walk: Vec<u32> = Vec::new();
        for pos in 0..=text.len() {
            let gen = pos as u32;
            cur.clear();
            // Continuing threads: the context of the byte just consumed, as the
            // transition table has it (a newline always gives CONTEXT_NEWLINE there).
            if let Some(&c) = pos.checked_sub(1).and_then(|p| text.get(p)) {
                let ctx = if c == b'\n' {
                    CONTEXT_NEWLINE
                } else if is_word(c) {
                    CONTEXT_WORD
                } else {
                    0
                };
                for &node in &raw {
                    let k = self.node(node).constraint;
                    if (k == 0 || prev_ok(k, ctx)) && get_u32(&stamp, node) != gen {
                        set_u32(&mut stamp, node, gen);
                        cur.push(node);
                    }
                }
            }
            // A fresh start at `pos`.
            let ctx = context_at(text, pos as isize - 1);
            for &node in &self.init {
                let k = self.node(node).constraint;
                if (k == 0 || prev_ok(k, ctx)) && get_u32(&stamp, node) != gen {
                    set_u32(&mut stamp, node, gen);
                    cur.push(node);
                }
            }
            // Halt: END_OF_RE whose next-constraints hold here.
            let here = context_at(text, pos as isize);
            for &node in &cur {
                let nd = self.node(node);
                if nd.ty == NType::EndOfRe && (nd.constraint == 0 || next_ok(nd.constraint, here)) {
                    return true;
                }
            }
            let Some(&c) = text.get(pos) else {
                break;
            };
            // Transition on `c` (`group_nodes_into_DFAstates`: next-constraints of a
            // consuming node restrict the byte it consumes).
            raw.clear();
            for &node in &cur {
                let nd = self.node(node);
                let NType::Set(s) = nd.ty else {
                    continue;
                };
                if !set_contains(sets, s, c) {
                    continue;
                }
                let k = nd.constraint;
                if k != 0 {
                    if k & NEXT_NEWLINE != 0 && c != b'\n' {
                        continue;
                    }
                    if k & NEXT_ENDBUF != 0 {
                        continue;
                    }
                    if k & NEXT_WORD != 0 && !is_word(c) {
                        continue;
                    }
                    if k & NEXT_NOTWORD != 0 && is_word(c) {
                        continue;
                    }
                }
                if nd.next == NIL {
                    continue;
                }
                self.add_closure(nd.next, &mut raw_stamp, gen, &mut raw, &mut walk);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use crate::ere::tests::m;

    /// glibc's answers where they differ from a textbook matcher (checked against
    /// glibc 2.36 by tests/ere_oracle.rs).
    #[test]
    fn glibc_quirks() {
        assert!(m(".^", "a\n"));
        assert!(m("$.", "a\nb"));
        assert!(!m("^b", "a\nb"));
        assert!(!m("a$", "a\nb"));
        assert!(m("(a$){2}", "aa"));
        assert!(!m("(a$|b)(a$|b)", "aa"));
        assert!(m("(a$|r)*x", "aax"));
        assert!(m("(\\b.\\<){2}", "2.7.119"));
    }
}
