//! The first stage: pattern bytes in, glibc's parse tree and byte sets out.
//!
//! This is glibc's `parse` (`posix/regcomp.c`) for `REG_EXTENDED` in the C locale, with
//! its exact acceptance rules and error codes: the tokenizers (`peek_token`,
//! `peek_token_bracket`), the recursive descent of `parse_reg_exp`, `parse_branch` and
//! `parse_expression` unrolled into an explicit stack of frames, bracket expressions
//! (`parse_bracket_exp`), intervals (`parse_dup_op`, `fetch_number`) and the check that a
//! back-reference names a completed group (`completed_bkref_map`).
//!
//! In: the pattern, already cut at its first NUL byte. Out ([`Parsed`]): the tree
//! (`tree`; `{m,n}` is already expanded by copying the operand, as glibc does), the
//! root of the pattern's content (`NIL` for an empty pattern; `END_OF_RE` is added by
//! the next stage), the table of distinct byte sets that the tree's `Set` leaves index
//! (every literal, `.`, bracket and `\w`-like class is one), and whether the pattern
//! has a back-reference. That flag chooses the next stage: `nfa` (glibc's construction)
//! without, `backref` with. Both matchers test bytes with [`set_contains`].

use alloc::vec;
use alloc::vec::Vec;

use super::context::{
    is_word, BUF_FIRST, BUF_LAST, INSIDE_NOTWORD, INSIDE_WORD, LINE_FIRST, LINE_LAST,
    NOT_WORD_DELIM, WORD_DELIM, WORD_FIRST, WORD_LAST,
};
use super::tree::{TType, Tree};
use super::{Error, NIL};

/// glibc's `RE_DUP_MAX`: the largest repetition bound accepted.
const RE_DUP_MAX: u32 = 0x7fff;
/// glibc's `BRACKET_NAME_BUF_SIZE`: `[:name:]` and friends hold at most 31 bytes.
const BRACKET_NAME_MAX: usize = 32;

/// What the parser hands on.
pub(super) struct Parsed {
    /// The parse tree.
    pub(super) tree: Tree,
    /// The root of the pattern's content in `tree` (`NIL` = empty pattern).
    pub(super) content: u32,
    /// The byte sets the tree's `Set` nodes index.
    pub(super) sets: Vec<ByteSet>,
    /// Whether the pattern has a back-reference (then `backref` matches it).
    pub(super) backrefs: bool,
}

/// Parses `pattern` (already cut at its first NUL byte) with glibc's ERE rules.
pub(super) fn parse(pattern: &[u8]) -> Result<Parsed, Error> {
    let mut parser = Parser {
        pat: pattern,
        tree: Tree::new(),
        sets: Vec::new(),
        backrefs: false,
    };
    let content = parser.parse()?;
    let Parser {
        tree,
        sets,
        backrefs,
        ..
    } = parser;
    Ok(Parsed {
        tree,
        content,
        sets,
        backrefs,
    })
}

/// Whether byte set `s` (an index into `sets`) holds `b`.
pub(super) fn set_contains(sets: &[ByteSet], s: u32, b: u8) -> bool {
    sets.get(s as usize).is_some_and(|set| set.contains(b))
}

/// A set of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ByteSet([u64; 4]);

impl ByteSet {
    const EMPTY: ByteSet = ByteSet([0; 4]);

    fn insert(&mut self, b: u8) {
        if let Some(w) = self.0.get_mut(usize::from(b >> 6)) {
            *w |= 1 << (b & 63);
        }
    }

    fn contains(&self, b: u8) -> bool {
        self.0
            .get(usize::from(b >> 6))
            .is_some_and(|w| w & (1 << (b & 63)) != 0)
    }

    fn negate(&mut self) {
        for w in self.0.iter_mut() {
            *w = !*w;
        }
    }

    fn from_fn(f: impl Fn(u8) -> bool) -> ByteSet {
        let mut s = ByteSet::EMPTY;
        for b in 0..=255u8 {
            if f(b) {
                s.insert(b);
            }
        }
        s
    }
}

/// The C locale's `<ctype.h>` classes (ASCII only; bytes 0x80–0xff are in none).
fn class_fn(name: &[u8]) -> Option<fn(u8) -> bool> {
    Some(match name {
        b"alnum" => |c: u8| c.is_ascii_alphanumeric(),
        b"alpha" => |c: u8| c.is_ascii_alphabetic(),
        b"blank" => |c: u8| c == b' ' || c == b'\t',
        b"cntrl" => |c: u8| c < 0x20 || c == 0x7f,
        b"digit" => |c: u8| c.is_ascii_digit(),
        b"graph" => |c: u8| (0x21..=0x7e).contains(&c),
        b"lower" => |c: u8| c.is_ascii_lowercase(),
        b"print" => |c: u8| (0x20..=0x7e).contains(&c),
        b"punct" => |c: u8| c.is_ascii_punctuation(),
        b"space" => is_space,
        b"upper" => |c: u8| c.is_ascii_uppercase(),
        b"xdigit" => |c: u8| c.is_ascii_hexdigit(),
        _ => return None,
    })
}

/// C's `isspace` in the C locale.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// A token outside bracket expressions (glibc's `peek_token` with ERE syntax bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    End,
    /// A backslash that ends the pattern.
    BackSlash,
    Char(u8),
    Alt,
    Star,
    Plus,
    Quest,
    OpenBrace,
    CloseBrace,
    Open,
    Close,
    Bracket,
    Period,
    /// An anchor, with glibc's `re_context_type`.
    Anchor(u16),
    Backref(u8),
    /// `\w` (false) / `\W` (true)
    Word(bool),
    /// `\s` (false) / `\S` (true)
    Space(bool),
}

fn token(p: &[u8], i: usize) -> (Tok, usize) {
    let Some(&c) = p.get(i) else {
        return (Tok::End, 0);
    };
    if c == b'\\' {
        let Some(&c2) = p.get(i + 1) else {
            return (Tok::BackSlash, 1);
        };
        let t = match c2 {
            b'1'..=b'9' => Tok::Backref(c2 - b'1'),
            b'<' => Tok::Anchor(WORD_FIRST),
            b'>' => Tok::Anchor(WORD_LAST),
            b'b' => Tok::Anchor(WORD_DELIM),
            b'B' => Tok::Anchor(NOT_WORD_DELIM),
            b'`' => Tok::Anchor(BUF_FIRST),
            b'\'' => Tok::Anchor(BUF_LAST),
            b'w' => Tok::Word(false),
            b'W' => Tok::Word(true),
            b's' => Tok::Space(false),
            b'S' => Tok::Space(true),
            _ => Tok::Char(c2),
        };
        return (t, 2);
    }
    let t = match c {
        b'|' => Tok::Alt,
        b'*' => Tok::Star,
        b'+' => Tok::Plus,
        b'?' => Tok::Quest,
        b'{' => Tok::OpenBrace,
        b'}' => Tok::CloseBrace,
        b'(' => Tok::Open,
        b')' => Tok::Close,
        b'[' => Tok::Bracket,
        b'.' => Tok::Period,
        b'^' => Tok::Anchor(LINE_FIRST),
        b'$' => Tok::Anchor(LINE_LAST),
        _ => Tok::Char(c),
    };
    (t, 1)
}

/// A token inside a bracket expression (glibc's `peek_token_bracket`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BTok {
    End,
    Char(u8),
    /// `-`
    Range,
    /// `]`
    Close,
    /// `^`
    NonMatch,
    /// `[.`, `[=` or `[:` (the byte is the delimiter)
    OpenSym(u8),
}

fn btoken(p: &[u8], i: usize) -> (BTok, usize) {
    let Some(&c) = p.get(i) else {
        return (BTok::End, 0);
    };
    match c {
        b'[' => match p.get(i + 1) {
            Some(&d @ (b'.' | b'=' | b':')) => (BTok::OpenSym(d), 2),
            _ => (BTok::Char(b'['), 1),
        },
        b'-' => (BTok::Range, 1),
        b']' => (BTok::Close, 1),
        b'^' => (BTok::NonMatch, 1),
        _ => (BTok::Char(c), 1),
    }
}

/// One element of a bracket expression.
enum Elem<'a> {
    Byte(u8),
    /// `[.name.]`
    Coll(&'a [u8]),
    /// `[=name=]`
    Equiv(&'a [u8]),
    /// `[:name:]`
    Class(&'a [u8]),
}
/// Parser state of one group (or of the whole pattern): glibc's `parse_reg_exp`,
/// `parse_branch` and `parse_expression` frames, unrolled.
struct Frame {
    /// The alternatives before the current branch, once a `|` was seen (`NIL` = empty).
    alt: Option<u32>,
    /// The current branch: the concatenation of its finished expressions.
    branch: u32,
    /// The expression being built (repetition operators apply to it); `Some(NIL)` after
    /// e.g. `a{0}`.
    cur: Option<u32>,
    /// Whether a repetition operator may follow (false at a branch start and after an
    /// anchor: glibc then reports `REG_BADRPT`).
    can_repeat: bool,
    /// Group number (0-based), or `u32::MAX` for the whole pattern.
    group: u32,
    /// glibc's `completed_bkref_map` handling: groups completed before the group's
    /// alternatives, and those completed in its earlier alternatives.
    initial_map: u16,
    accum_map: u16,
}

impl Frame {
    fn new(group: u32, map: u16) -> Frame {
        Frame {
            alt: None,
            branch: NIL,
            cur: None,
            can_repeat: false,
            group,
            initial_map: map,
            accum_map: 0,
        }
    }
}

struct Parser<'a> {
    pat: &'a [u8],
    tree: Tree,
    sets: Vec<ByteSet>,
    backrefs: bool,
}

impl Parser<'_> {
    fn set_index(&mut self, set: ByteSet) -> u32 {
        if let Some(i) = self.sets.iter().position(|s| *s == set) {
            return i as u32;
        }
        self.sets.push(set);
        (self.sets.len() - 1) as u32
    }

    /// Ends the current expression: it joins the branch (`parse_branch`).
    fn commit(tree: &mut Tree, f: &mut Frame) -> Result<(), Error> {
        if let Some(e) = f.cur.take() {
            if e != NIL {
                f.branch = if f.branch == NIL {
                    e
                } else {
                    tree.create(TType::Concat, f.branch, e)?
                };
            }
        }
        Ok(())
    }

    /// Ends the current branch; `|`-alternatives are joined left to right
    /// (`parse_reg_exp`). Returns the group's (or pattern's) tree.
    fn finish(tree: &mut Tree, f: &mut Frame) -> Result<u32, Error> {
        Self::commit(tree, f)?;
        let b = core::mem::replace(&mut f.branch, NIL);
        Ok(match f.alt {
            None => b,
            Some(acc) => tree.create(TType::Alt, acc, b)?,
        })
    }

    /// Parses the whole pattern; returns the tree (before glibc adds `END_OF_RE`).
    fn parse(&mut self) -> Result<u32, Error> {
        let mut stack: Vec<Frame> = vec![Frame::new(u32::MAX, 0)];
        let mut map: u16 = 0;
        let mut nsub: u32 = 0;
        let mut i = 0;
        loop {
            let (tok, len) = token(self.pat, i);
            let depth = stack.len();
            let Some(f) = stack.last_mut() else {
                return Err(Error::Space); // never: the top frame is never popped
            };
            match tok {
                Tok::End => {
                    if depth > 1 {
                        return Err(Error::Paren);
                    }
                    return Self::finish(&mut self.tree, f);
                }
                Tok::BackSlash => return Err(Error::Escape),
                Tok::Alt => {
                    let b = Self::finish(&mut self.tree, f)?;
                    f.alt = Some(b);
                    f.can_repeat = false;
                    f.accum_map |= map;
                    map = f.initial_map;
                    i += len;
                }
                Tok::Close if depth > 1 => {
                    let body = Self::finish(&mut self.tree, f)?;
                    map |= f.accum_map;
                    let g = f.group;
                    stack.pop();
                    if g < 9 {
                        map |= 1 << g;
                    }
                    let group = self.tree.create(TType::Subexp(g), body, NIL)?;
                    let Some(parent) = stack.last_mut() else {
                        return Err(Error::Space); // never: a group has a parent
                    };
                    parent.cur = Some(group);
                    parent.can_repeat = true;
                    i += len;
                }
                Tok::Open => {
                    Self::commit(&mut self.tree, f)?;
                    stack.push(Frame::new(nsub, map));
                    nsub += 1;
                    i += len;
                }
                Tok::Star | Tok::Plus | Tok::Quest => {
                    if !f.can_repeat {
                        return Err(Error::BadRepeat);
                    }
                    let (min, max) = match tok {
                        Tok::Star => (0, None),
                        Tok::Plus => (1, None),
                        _ => (0, Some(1)),
                    };
                    let elem = f.cur.unwrap_or(NIL);
                    f.cur = Some(dup_op(&mut self.tree, elem, min, max)?);
                    i += len;
                }
                Tok::OpenBrace => {
                    if !f.can_repeat {
                        return Err(Error::BadRepeat);
                    }
                    let (min, max, next) = parse_interval(self.pat, i + len)?;
                    i = next;
                    let elem = f.cur.unwrap_or(NIL);
                    f.cur = Some(dup_op(&mut self.tree, elem, min, max)?);
                }
                Tok::Anchor(ctx) => {
                    Self::commit(&mut self.tree, f)?;
                    let t = &mut self.tree;
                    let node = match ctx {
                        WORD_DELIM => {
                            let a = t.create(TType::Anchor(WORD_FIRST), NIL, NIL)?;
                            let b = t.create(TType::Anchor(WORD_LAST), NIL, NIL)?;
                            t.create(TType::Alt, a, b)?
                        }
                        NOT_WORD_DELIM => {
                            let a = t.create(TType::Anchor(INSIDE_WORD), NIL, NIL)?;
                            let b = t.create(TType::Anchor(INSIDE_NOTWORD), NIL, NIL)?;
                            t.create(TType::Alt, a, b)?
                        }
                        _ => t.create(TType::Anchor(ctx), NIL, NIL)?,
                    };
                    f.cur = Some(node);
                    f.can_repeat = false;
                    i += len;
                }
                Tok::Backref(n) => {
                    if map & (1 << n) == 0 {
                        return Err(Error::SubReg);
                    }
                    Self::commit(&mut self.tree, f)?;
                    f.cur = Some(self.tree.create(TType::BackRef(n), NIL, NIL)?);
                    self.backrefs = true;
                    f.can_repeat = true;
                    i += len;
                }
                Tok::Char(_)
                | Tok::CloseBrace
                | Tok::Close
                | Tok::Period
                | Tok::Word(_)
                | Tok::Space(_)
                | Tok::Bracket => {
                    let set = match tok {
                        Tok::Char(c) => {
                            i += len;
                            let mut s = ByteSet::EMPTY;
                            s.insert(c);
                            s
                        }
                        Tok::CloseBrace | Tok::Close => {
                            i += len;
                            let mut s = ByteSet::EMPTY;
                            s.insert(if tok == Tok::Close { b')' } else { b'}' });
                            s
                        }
                        Tok::Period => {
                            i += len;
                            ByteSet::from_fn(|b| b != 0)
                        }
                        Tok::Word(neg) => {
                            i += len;
                            let mut s = ByteSet::from_fn(is_word);
                            if neg {
                                s.negate();
                            }
                            s
                        }
                        Tok::Space(neg) => {
                            i += len;
                            let mut s = ByteSet::from_fn(is_space);
                            if neg {
                                s.negate();
                            }
                            s
                        }
                        _ => {
                            let (s, next) = parse_bracket(self.pat, i + len)?;
                            i = next;
                            s
                        }
                    };
                    let idx = self.set_index(set);
                    let Some(f) = stack.last_mut() else {
                        return Err(Error::Space); // never: the top frame is never popped
                    };
                    Self::commit(&mut self.tree, f)?;
                    f.cur = Some(self.tree.create(TType::Set(idx), NIL, NIL)?);
                    f.can_repeat = true;
                }
            }
        }
    }
}

/// glibc's `parse_dup_op` after the bounds are known: `{min,max}` (`None` = unbounded)
/// applied to `elem` by copying it: `e{2,4}` is `e e' ((e'' e''')?)?` shaped like glibc's.
fn dup_op(tree: &mut Tree, elem: u32, min: u32, max: Option<u32>) -> Result<u32, Error> {
    if elem == NIL || (min == 0 && max == Some(0)) {
        return Ok(NIL);
    }
    let mut elem = elem;
    let mut old_tree = NIL;
    if min > 0 {
        let mut t = elem;
        for _ in 2..=min {
            elem = tree.duplicate(elem)?;
            t = tree.create(TType::Concat, t, elem)?;
        }
        if max == Some(min) {
            return Ok(t);
        }
        elem = tree.duplicate(elem)?;
        old_tree = t;
    }
    let mut t = match max {
        None => tree.create(TType::Star, elem, NIL)?,
        Some(_) => tree.create(TType::Alt, elem, NIL)?,
    };
    if let Some(max) = max {
        for _ in min + 2..=max {
            elem = tree.duplicate(elem)?;
            t = tree.create(TType::Concat, t, elem)?;
            t = tree.create(TType::Alt, t, NIL)?;
        }
    }
    if old_tree != NIL {
        t = tree.create(TType::Concat, old_tree, t)?;
    }
    Ok(t)
}
/// glibc's `fetch_number`: reads tokens up to `}` or `,`. Returns -1 for no digits,
/// -2 for anything malformed (or the end of the pattern), else the number (capped at
/// `RE_DUP_MAX + 1`), plus the terminating token and the position after it.
fn fetch_number(p: &[u8], mut i: usize) -> (i64, Tok, usize) {
    let mut num: i64 = -1;
    loop {
        let (tok, len) = token(p, i);
        i += len;
        match tok {
            Tok::End => return (-2, tok, i),
            Tok::CloseBrace | Tok::Char(b',') => return (num, tok, i),
            Tok::Char(c @ b'0'..=b'9') if num != -2 => {
                let d = i64::from(c - b'0');
                num = if num == -1 {
                    d
                } else {
                    (num * 10 + d).min(i64::from(RE_DUP_MAX) + 1)
                };
            }
            _ => num = -2,
        }
    }
}

/// Parses the inside of `{…}` starting after the `{` (glibc's `parse_dup_op`). Returns
/// `(min, max or None for unbounded, position after the `}`)`.
fn parse_interval(p: &[u8], i: usize) -> Result<(u32, Option<u32>, usize), Error> {
    let (mut start, mut tok, mut i) = fetch_number(p, i);
    let mut end: i64 = 0;
    if start == -1 {
        if tok == Tok::Char(b',') {
            start = 0;
        } else {
            return Err(Error::BadInterval);
        }
    }
    if start != -2 {
        end = if tok == Tok::CloseBrace {
            start
        } else if tok == Tok::Char(b',') {
            let (n, t, j) = fetch_number(p, i);
            tok = t;
            i = j;
            n
        } else {
            -2
        };
    }
    if start == -2 || end == -2 {
        return Err(if tok == Tok::End {
            Error::Brace
        } else {
            Error::BadInterval
        });
    }
    if (end != -1 && start > end) || tok != Tok::CloseBrace {
        return Err(Error::BadInterval);
    }
    if (if end == -1 { start } else { end }) > i64::from(RE_DUP_MAX) {
        return Err(Error::Size);
    }
    let max = if end == -1 { None } else { Some(end as u32) };
    Ok((start as u32, max, i))
}

/// Parses a bracket expression starting after its `[` (glibc's `parse_bracket_exp`).
/// Returns the byte set and the position after the closing `]`.
fn parse_bracket(p: &[u8], mut i: usize) -> Result<(ByteSet, usize), Error> {
    let mut set = ByteSet::EMPTY;
    let mut non_match = false;
    let (mut tok, mut len) = btoken(p, i);
    if tok == BTok::End {
        return Err(Error::BadPattern);
    }
    if tok == BTok::NonMatch {
        non_match = true;
        i += len;
        (tok, len) = btoken(p, i);
        if tok == BTok::End {
            return Err(Error::BadPattern);
        }
    }
    // A `]` first is an ordinary character.
    if tok == BTok::Close {
        tok = BTok::Char(b']');
    }
    let mut first_round = true;
    loop {
        let start_elem = bracket_element(p, &mut i, tok, len, first_round)?;
        first_round = false;
        (tok, len) = btoken(p, i);
        let mut range_end = None;
        if !matches!(start_elem, Elem::Class(_) | Elem::Equiv(_)) {
            if tok == BTok::End {
                return Err(Error::Bracket);
            }
            if tok == BTok::Range {
                let (tok2, len2) = btoken(p, i + len);
                if tok2 == BTok::End {
                    return Err(Error::Bracket);
                }
                if tok2 == BTok::Close {
                    // A `-` right before the closing `]` is an ordinary character.
                    tok = BTok::Char(b'-');
                } else {
                    i += len;
                    range_end = Some((tok2, len2));
                }
            }
        }
        if let Some((tok2, len2)) = range_end {
            let end_elem = bracket_element(p, &mut i, tok2, len2, true)?;
            (tok, len) = btoken(p, i);
            let lo = range_point(&start_elem)?;
            let hi = range_point(&end_elem)?;
            if lo > hi {
                return Err(Error::Range);
            }
            for b in lo..=hi {
                set.insert(b);
            }
        } else {
            match start_elem {
                Elem::Byte(b) => set.insert(b),
                Elem::Coll(name) | Elem::Equiv(name) => match name {
                    [b] => set.insert(*b),
                    _ => return Err(Error::Collate),
                },
                Elem::Class(name) => {
                    let f = class_fn(name).ok_or(Error::CharClass)?;
                    for b in 0..=255u8 {
                        if f(b) {
                            set.insert(b);
                        }
                    }
                }
            }
        }
        if tok == BTok::End {
            return Err(Error::Bracket);
        }
        if tok == BTok::Close {
            break;
        }
    }
    i += len;
    if non_match {
        set.negate();
    }
    Ok((set, i))
}

/// glibc's `parse_bracket_element`: consumes the token at `*i` (of length `len`).
fn bracket_element<'a>(
    p: &'a [u8],
    i: &mut usize,
    tok: BTok,
    len: usize,
    accept_hyphen: bool,
) -> Result<Elem<'a>, Error> {
    *i += len;
    match tok {
        BTok::OpenSym(delim) => bracket_symbol(p, i, delim),
        BTok::Range => {
            // A `-` that does not start or end the list and is no range operator.
            if !accept_hyphen && btoken(p, *i).0 != BTok::Close {
                return Err(Error::Range);
            }
            Ok(Elem::Byte(b'-'))
        }
        BTok::Char(c) => Ok(Elem::Byte(c)),
        BTok::NonMatch => Ok(Elem::Byte(b'^')),
        BTok::Close => Ok(Elem::Byte(b']')),
        BTok::End => Err(Error::Bracket),
    }
}

/// glibc's `parse_bracket_symbol`: the name up to `delim` `]`.
fn bracket_symbol<'a>(p: &'a [u8], i: &mut usize, delim: u8) -> Result<Elem<'a>, Error> {
    let start = *i;
    let mut n = 0;
    loop {
        if n >= BRACKET_NAME_MAX {
            return Err(Error::Bracket);
        }
        // glibc fetches a byte, then wants at least one more.
        let (Some(&ch), Some(&after)) = (p.get(*i), p.get(*i + 1)) else {
            return Err(Error::Bracket);
        };
        *i += 1;
        if ch == delim && after == b']' {
            break;
        }
        n += 1;
    }
    let name = p.get(start..start + n).ok_or(Error::Bracket)?;
    *i += 1;
    Ok(match delim {
        b'.' => Elem::Coll(name),
        b'=' => Elem::Equiv(name),
        _ => Elem::Class(name),
    })
}

/// The byte a range endpoint stands for (C locale collation = byte order).
fn range_point(e: &Elem<'_>) -> Result<u8, Error> {
    match e {
        Elem::Byte(b) => Ok(*b),
        Elem::Coll([b]) => Ok(*b),
        Elem::Coll(_) => Err(Error::Collate),
        Elem::Equiv(_) | Elem::Class(_) => Err(Error::Range),
    }
}

#[cfg(test)]
mod tests {
    use crate::ere::tests::err;

    #[test]
    fn errors() {
        assert_eq!(err("^*"), Some(13));
        assert_eq!(err("a{1"), Some(9));
        assert_eq!(err("a{1,2,3}"), Some(10));
        assert_eq!(err("a{40000}"), Some(15));
        assert_eq!(err("["), Some(2));
        assert_eq!(err("[a"), Some(7));
        assert_eq!(err("[]"), Some(7));
        assert_eq!(err("(a)|\\1"), Some(6));
        assert_eq!(err("a\\"), Some(5));
        assert_eq!(err("[a-c-e]"), Some(11));
        assert_eq!(err("(*a)"), Some(13));
        assert_eq!(err("[[.ab.]]"), Some(3));
        assert_eq!(err("[[:foo:]]"), Some(4));
        assert_eq!(err("(a"), Some(8));
        assert_eq!(err("a)"), None);
    }
}
