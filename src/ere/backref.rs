//! The matcher for patterns with back-references: a Thompson program, searched
//! depth-first.
//!
//! glibc's construction cannot express `\1`…`\9`, and matching them is NP-hard in
//! general, so these patterns leave glibc's path after `parse`. The tree is read in
//! postfix order (`postfix`), compiled by a Thompson construction with capture slots
//! for groups 1 to 9 (`compile`), and searched over `(pc, position, captures)` with a
//! memo and a hard budget (`search_backtrack`; past `MAX_BACKREF_STATES` states the
//! answer is "no match"). Anchors keep their POSIX meaning (checked with the contexts of
//! `context`), and a back-reference to a group that did not take part fails. glibc's
//! own back-reference matcher differs on some patterns whose groups match empty or not
//! at all (see the module doc of `ere`).
//!
//! In: the tree and content root from `parse` (`build`), then the program, the parser's
//! byte sets and the text (already cut at its first NUL byte). Out: match or no match,
//! which `Regex::is_match` returns. Nothing follows.

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;

use super::context::{context_at, next_ok, prev_ok};
use super::parse::{set_contains, ByteSet};
use super::tree::{TType, Tree};
use super::{Error, NIL};

/// Largest number of distinct search states explored for a pattern with back-references.
const MAX_BACKREF_STATES: usize = 1 << 20;

/// The back-reference engine's program for the tree rooted at `content`: its
/// instructions and its start.
pub(super) fn build(tree: &Tree, content: u32) -> Result<(Vec<Inst>, u32), Error> {
    let post = postfix(tree, content);
    // (`None` never happens: the postfix comes from a tree.)
    compile(&post, true).ok_or(Error::Space)
}

/// Postfix form of a tree, for the back-reference engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Post {
    Set(u32),
    Empty,
    /// An anchor's constraint bits.
    Look(u16),
    Backref(u8),
    Concat,
    Alt,
    Star,
    /// Capture group 1..=9 (index 0..=8) around the operand.
    Group(u8),
}

/// The tree in postfix form, for the back-reference engine (`NIL` = empty).
fn postfix(tree: &Tree, root: u32) -> Vec<Post> {
    enum Item {
        Visit(u32),
        Emit(u32),
        Empty,
    }
    let visit = |i: u32| {
        if i == NIL {
            Item::Empty
        } else {
            Item::Visit(i)
        }
    };
    let mut out = Vec::new();
    let mut stack = vec![visit(root)];
    while let Some(item) = stack.pop() {
        match item {
            Item::Empty => out.push(Post::Empty),
            Item::Emit(i) => match tree.n(i).ty {
                TType::Set(s) => out.push(Post::Set(s)),
                TType::Anchor(c) => out.push(Post::Look(c)),
                TType::BackRef(g) => out.push(Post::Backref(g)),
                TType::Concat => out.push(Post::Concat),
                TType::Alt => out.push(Post::Alt),
                TType::Star => out.push(Post::Star),
                TType::Subexp(g) => {
                    if g < 9 {
                        out.push(Post::Group(g as u8));
                    }
                }
                TType::EndOfRe | TType::OpenSubexp(_) | TType::CloseSubexp(_) => {
                    out.push(Post::Empty)
                }
            },
            Item::Visit(i) => {
                let n = tree.n(i);
                stack.push(Item::Emit(i));
                match n.ty {
                    TType::Concat | TType::Alt => {
                        stack.push(visit(n.right));
                        stack.push(visit(n.left));
                    }
                    TType::Star | TType::Subexp(_) => stack.push(visit(n.left)),
                    _ => {}
                }
            }
        }
    }
    out
}

/// NFA instructions.
#[derive(Clone, Copy, Debug)]
pub(super) enum Inst {
    Match,
    /// Consume one byte of the set, then go on.
    Set(u32, u32),
    Split(u32, u32),
    Jmp(u32),
    /// Check a constraint (glibc's bits, POSIX contexts), then go on.
    Look(u16, u32),
    /// Record the position in capture slot (2 × group, +1 for the end).
    Save(u8, u32),
    Backref(u8, u32),
}

const HOLE: u32 = u32::MAX;

struct Frag {
    start: u32,
    holes: Vec<u32>,
}

fn patch(prog: &mut [Inst], holes: &[u32], to: u32) {
    for &h in holes {
        match prog.get_mut(h as usize) {
            Some(
                Inst::Set(_, n)
                | Inst::Jmp(n)
                | Inst::Look(_, n)
                | Inst::Save(_, n)
                | Inst::Backref(_, n)
                | Inst::Split(_, n),
            ) => *n = to,
            Some(Inst::Match) | None => {}
        }
    }
}

/// Thompson construction from the postfix form (iterative). Returns the program and
/// its start (`None` for malformed postfix).
fn compile(post: &[Post], captures: bool) -> Option<(Vec<Inst>, u32)> {
    let mut prog: Vec<Inst> = Vec::new();
    let mut frags: Vec<Frag> = Vec::new();
    let push = |prog: &mut Vec<Inst>, inst: Inst| -> u32 {
        prog.push(inst);
        (prog.len() - 1) as u32
    };
    for &item in post {
        match item {
            Post::Set(s) => {
                let pc = push(&mut prog, Inst::Set(s, HOLE));
                frags.push(Frag {
                    start: pc,
                    holes: vec![pc],
                });
            }
            Post::Empty => {
                let pc = push(&mut prog, Inst::Jmp(HOLE));
                frags.push(Frag {
                    start: pc,
                    holes: vec![pc],
                });
            }
            Post::Look(l) => {
                let pc = push(&mut prog, Inst::Look(l, HOLE));
                frags.push(Frag {
                    start: pc,
                    holes: vec![pc],
                });
            }
            Post::Backref(g) => {
                let pc = push(&mut prog, Inst::Backref(g, HOLE));
                frags.push(Frag {
                    start: pc,
                    holes: vec![pc],
                });
            }
            Post::Concat => {
                let b = frags.pop()?;
                let a = frags.pop()?;
                patch(&mut prog, &a.holes, b.start);
                frags.push(Frag {
                    start: a.start,
                    holes: b.holes,
                });
            }
            Post::Alt => {
                let b = frags.pop()?;
                let mut a = frags.pop()?;
                let pc = push(&mut prog, Inst::Split(a.start, b.start));
                a.holes.extend_from_slice(&b.holes);
                frags.push(Frag {
                    start: pc,
                    holes: a.holes,
                });
            }
            Post::Star => {
                let a = frags.pop()?;
                let pc = push(&mut prog, Inst::Split(a.start, HOLE));
                patch(&mut prog, &a.holes, pc);
                frags.push(Frag {
                    start: pc,
                    holes: vec![pc],
                });
            }
            Post::Group(g) => {
                if captures {
                    let a = frags.pop()?;
                    let open = push(&mut prog, Inst::Save(2 * g, a.start));
                    let close = push(&mut prog, Inst::Save(2 * g + 1, HOLE));
                    patch(&mut prog, &a.holes, close);
                    frags.push(Frag {
                        start: open,
                        holes: vec![close],
                    });
                }
            }
        }
    }
    let m = push(&mut prog, Inst::Match);
    let start = match frags.pop() {
        Some(f) => {
            patch(&mut prog, &f.holes, m);
            f.start
        }
        None => m,
    };
    Some((prog, start))
}

/// Memoised depth-first search over `(pc, pos, captures)`, for back-references.
pub(super) fn search_backtrack(prog: &[Inst], start: u32, sets: &[ByteSet], text: &[u8]) -> bool {
    const UNSET: (u32, u32) = (u32::MAX, u32::MAX);
    type Caps = [(u32, u32); 9];
    let mut seen: BTreeSet<(u32, u32, Caps)> = BTreeSet::new();
    let mut stack: Vec<(u32, u32, Caps)> = Vec::new();
    for pos in (0..=text.len() as u32).rev() {
        stack.push((start, pos, [UNSET; 9]));
    }
    while let Some((pc, pos, mut caps)) = stack.pop() {
        if !seen.insert((pc, pos, caps)) {
            continue;
        }
        if seen.len() > MAX_BACKREF_STATES {
            return false;
        }
        let p = pos as usize;
        let Some(&inst) = prog.get(pc as usize) else {
            continue;
        };
        match inst {
            Inst::Match => return true,
            Inst::Set(s, next) => {
                if let Some(&b) = text.get(p) {
                    if set_contains(sets, s, b) {
                        stack.push((next, pos + 1, caps));
                    }
                }
            }
            Inst::Split(a, b) => {
                stack.push((b, pos, caps));
                stack.push((a, pos, caps));
            }
            Inst::Jmp(a) => stack.push((a, pos, caps)),
            Inst::Look(c, a) => {
                let prev = context_at(text, p as isize - 1);
                let next = context_at(text, p as isize);
                if prev_ok(c, prev) && next_ok(c, next) {
                    stack.push((a, pos, caps));
                }
            }
            Inst::Save(slot, a) => {
                // An opening records where the group starts; the previous complete
                // capture stays usable until the group closes again.
                if let Some(cap) = caps.get_mut(usize::from(slot / 2)) {
                    if slot % 2 == 0 {
                        cap.0 = pos;
                    } else {
                        cap.1 = pos;
                    }
                }
                stack.push((a, pos, caps));
            }
            Inst::Backref(g, a) => {
                let (s, e) = caps.get(usize::from(g)).copied().unwrap_or(UNSET);
                let cap = text.get(s as usize..e as usize);
                let rest = text.get(p..);
                if let (Some(cap), Some(rest)) = (cap, rest) {
                    if rest.starts_with(cap) {
                        stack.push((a, pos + cap.len() as u32, caps));
                    }
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use crate::ere::tests::m;

    #[test]
    fn backrefs() {
        assert!(m("(a)\\1", "xaa"));
        assert!(!m("(a)\\1", "xa"));
        assert!(m("((a)|b)*\\2", "aba"));
        assert!(!m("((a)|b)*\\2", "ab"));
        assert!(m("(a*)*\\1", "b"));
    }
}
