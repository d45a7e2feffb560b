//! POSIX extended regular expressions, matched the way glibc's
//! `regcomp(REG_EXTENDED | REG_NOSUB)` + `regexec(…, 0, NULL, 0)` match them in the C locale.
//!
//! depmod.d's `override` and `external` lines compare the kernel version against a
//! pattern this way (spec §2.1): an unanchored search whose only result is
//! "matches / does not match", and a pattern that fails to compile never matches.
//!
//! Supported syntax, with glibc's exact acceptance rules and error codes:
//! * literals, `.` (any byte but NUL, newline included), `\X` for a literal `X`;
//! * bracket expressions: ranges (byte order), negation `[^…]`, `]` first is literal, `-`
//!   first or last is literal, character classes `[:alnum:]` … `[:xdigit:]`, single-byte
//!   collating symbols `[.c.]` and equivalence classes `[=c=]`; `\` is literal inside;
//! * anchors `^ $` (valid anywhere; they match only at the start/end of the text, as no
//!   `REG_NEWLINE` is given) and the GNU anchors `\< \> \b \B` `` \` `` `\'`;
//! * the GNU class escapes `\w \W \s \S`;
//! * groups `( )` (also empty), alternation `|` (empty alternatives allowed), `)` outside
//!   a group is literal;
//! * repetition `* + ? {m} {m,} {,n} {m,n}` (bounds up to `RE_DUP_MAX` = 32767), stacked
//!   repetitions such as `a**` or `a{2}{3}`;
//! * back-references `\1`…`\9` (a glibc extension to ERE).
//!
//! Pattern and text are C strings in kmod: both are cut at their first NUL byte here.
//!
//! Matching is a Thompson-NFA simulation, linear in `program size × text length`, for
//! patterns without back-references. Back-references make matching NP-hard in general;
//! such patterns are matched by a depth-first search over `(state, position, captures)`
//! with a memo and a hard budget (`MAX_BACKREF_STATES`): past it the answer is "no match".
//! Known differences from glibc, all in corners no kernel-version pattern reaches (found
//! by `ERE_ORACLE_SCALE=10` runs of `tests/ere_oracle.rs`): glibc lets `^` match right
//! after a newline the pattern itself consumed and `$` right before one (`.^` matches
//! `"a\n"`), drops anchors inside bodies it copies for `+`/`{m,n}` (`(a$){2}` matches
//! `"aa"`), and fails some back-references to empty groups (`(){2}\1`). This module
//! implements the POSIX meaning in those cases.
//!
//! Nothing recurses: parsing, compiling and matching use explicit stacks, so hostile
//! nesting like `((((…))))` cannot overflow the stack. Repetition bounds are expanded
//! like glibc does; a pattern whose expansion exceeds `MAX_PROGRAM` items is refused
//! with [`Error::Space`] (glibc would try to allocate it).

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

/// glibc's `RE_DUP_MAX`: the largest repetition bound accepted.
const RE_DUP_MAX: u32 = 0x7fff;
/// Largest compiled form (postfix items) we build; beyond it compilation fails with
/// [`Error::Space`].
const MAX_PROGRAM: usize = 100_000;
/// Largest number of distinct search states explored for a pattern with back-references.
const MAX_BACKREF_STATES: usize = 1 << 20;
/// glibc's `BRACKET_NAME_BUF_SIZE`: `[:name:]` and friends hold at most 31 bytes.
const BRACKET_NAME_MAX: usize = 32;

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
    prog: Vec<Inst>,
    sets: Vec<ByteSet>,
    start: u32,
    backrefs: bool,
}

impl Regex {
    /// Compiles `pattern` (cut at its first NUL byte) with glibc's ERE rules.
    pub fn new(pattern: &[u8]) -> Result<Regex, Error> {
        let pattern = cut_at_nul(pattern);
        let mut parser = Parser {
            pat: pattern,
            out: Vec::new(),
            sets: Vec::new(),
            backrefs: false,
        };
        parser.parse()?;
        let (prog, start) = compile(&parser.out, parser.backrefs);
        Ok(Regex {
            prog,
            sets: parser.sets,
            start,
            backrefs: parser.backrefs,
        })
    }

    /// Whether the expression matches somewhere in `text` (cut at its first NUL byte).
    pub fn is_match(&self, text: &[u8]) -> bool {
        let text = cut_at_nul(text);
        if self.backrefs {
            self.search_backtrack(text)
        } else {
            self.search_nfa(text)
        }
    }

    /// Thompson simulation: the set of live states after each byte.
    fn search_nfa(&self, text: &[u8]) -> bool {
        let n = self.prog.len();
        let mut cur = SparseSet::new(n);
        let mut seeds: Vec<u32> = Vec::new();
        let mut stack: Vec<u32> = Vec::new();
        for pos in 0..=text.len() {
            cur.clear();
            // The unanchored search starts a new thread at every position.
            stack.push(self.start);
            stack.extend(seeds.iter().rev().copied());
            while let Some(pc) = stack.pop() {
                if !cur.insert(pc) {
                    continue;
                }
                match self.prog[pc as usize] {
                    Inst::Match => return true,
                    Inst::Split(a, b) => {
                        stack.push(b);
                        stack.push(a);
                    }
                    Inst::Jmp(a) | Inst::Save(_, a) => stack.push(a),
                    Inst::Look(l, a) => {
                        if look_holds(l, text, pos) {
                            stack.push(a);
                        }
                    }
                    Inst::Set(..) | Inst::Backref(..) => {}
                }
            }
            let Some(&byte) = text.get(pos) else {
                break;
            };
            seeds.clear();
            for &pc in cur.dense.iter() {
                if let Inst::Set(s, next) = self.prog[pc as usize] {
                    if self.sets[s as usize].contains(byte) {
                        seeds.push(next);
                    }
                }
            }
        }
        false
    }

    /// Memoised depth-first search over `(pc, pos, captures)`, for back-references.
    fn search_backtrack(&self, text: &[u8]) -> bool {
        const UNSET: (u32, u32) = (u32::MAX, u32::MAX);
        type Caps = [(u32, u32); 9];
        let mut seen: BTreeSet<(u32, u32, Caps)> = BTreeSet::new();
        let mut stack: Vec<(u32, u32, Caps)> = Vec::new();
        for start in (0..=text.len() as u32).rev() {
            stack.push((self.start, start, [UNSET; 9]));
        }
        while let Some((pc, pos, mut caps)) = stack.pop() {
            if !seen.insert((pc, pos, caps)) {
                continue;
            }
            if seen.len() > MAX_BACKREF_STATES {
                return false;
            }
            let p = pos as usize;
            match self.prog[pc as usize] {
                Inst::Match => return true,
                Inst::Set(s, next) => {
                    if let Some(&b) = text.get(p) {
                        if self.sets[s as usize].contains(b) {
                            stack.push((next, pos + 1, caps));
                        }
                    }
                }
                Inst::Split(a, b) => {
                    stack.push((b, pos, caps));
                    stack.push((a, pos, caps));
                }
                Inst::Jmp(a) => stack.push((a, pos, caps)),
                Inst::Look(l, a) => {
                    if look_holds(l, text, p) {
                        stack.push((a, pos, caps));
                    }
                }
                Inst::Save(slot, a) => {
                    let g = usize::from(slot / 2);
                    if slot % 2 == 0 {
                        // Opening: remember where the group starts, keep the previous
                        // complete capture until the group closes.
                        caps[g].0 = pos;
                        stack.push((a, pos, caps));
                    } else {
                        caps[g].1 = pos;
                        stack.push((a, pos, caps));
                    }
                }
                Inst::Backref(g, a) => {
                    let (s, e) = caps[usize::from(g)];
                    if s != u32::MAX && e != u32::MAX && s <= e {
                        let cap = &text[s as usize..e as usize];
                        if text[p..].starts_with(cap) {
                            stack.push((a, pos + cap.len() as u32, caps));
                        }
                    }
                }
            }
        }
        false
    }
}

fn cut_at_nul(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(i) => &s[..i],
        None => s,
    }
}

/// A set of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ByteSet([u64; 4]);

impl ByteSet {
    const EMPTY: ByteSet = ByteSet([0; 4]);

    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
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
        b"space" => |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
        b"upper" => |c: u8| c.is_ascii_uppercase(),
        b"xdigit" => |c: u8| c.is_ascii_hexdigit(),
        _ => return None,
    })
}

/// glibc's `IS_WORD_CHAR`: alphanumeric or `_`.
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Zero-width assertions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Look {
    /// `^`
    LineFirst,
    /// `$`
    LineLast,
    /// `` \` ``
    BufFirst,
    /// `\'`
    BufLast,
    /// `\<`
    WordFirst,
    /// `\>`
    WordLast,
    /// `\b`
    WordDelim,
    /// `\B`
    NotWordDelim,
}

fn look_holds(l: Look, text: &[u8], pos: usize) -> bool {
    let prev_w = pos > 0 && is_word(text[pos - 1]);
    let next_w = pos < text.len() && is_word(text[pos]);
    match l {
        Look::LineFirst | Look::BufFirst => pos == 0,
        Look::LineLast | Look::BufLast => pos == text.len(),
        Look::WordFirst => !prev_w && next_w,
        Look::WordLast => prev_w && !next_w,
        Look::WordDelim => prev_w != next_w,
        Look::NotWordDelim => prev_w == next_w,
    }
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
    Anchor(Look),
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
            b'<' => Tok::Anchor(Look::WordFirst),
            b'>' => Tok::Anchor(Look::WordLast),
            b'b' => Tok::Anchor(Look::WordDelim),
            b'B' => Tok::Anchor(Look::NotWordDelim),
            b'`' => Tok::Anchor(Look::BufFirst),
            b'\'' => Tok::Anchor(Look::BufLast),
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
        b'^' => Tok::Anchor(Look::LineFirst),
        b'$' => Tok::Anchor(Look::LineLast),
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

/// Postfix form of the parsed expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Post {
    Set(u32),
    Empty,
    Look(Look),
    Backref(u8),
    Concat,
    Alt,
    Star,
    Plus,
    Quest,
    /// Capture group 1..=9 (index 0..=8) around the operand.
    Group(u8),
}

/// Parser state of one group (or of the whole pattern).
struct Frame {
    /// Operands of the current branch not yet joined by `Concat` (at most 2).
    natom: u32,
    /// Completed branches waiting for their `Alt`.
    nalt: u32,
    /// Where the last atom of the current branch starts in the postfix output.
    last: usize,
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
            natom: 0,
            nalt: 0,
            last: 0,
            can_repeat: false,
            group,
            initial_map: map,
            accum_map: 0,
        }
    }
}

struct Parser<'a> {
    pat: &'a [u8],
    out: Vec<Post>,
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

    /// Starts a new atom in `f`, joining the previous ones.
    fn begin_atom(out: &mut Vec<Post>, f: &mut Frame) {
        if f.natom > 1 {
            out.push(Post::Concat);
            f.natom -= 1;
        }
        f.last = out.len();
        f.natom += 1;
    }

    fn end_branch(out: &mut Vec<Post>, f: &mut Frame) {
        if f.natom == 0 {
            out.push(Post::Empty);
        }
        while f.natom > 1 {
            out.push(Post::Concat);
            f.natom -= 1;
        }
        f.natom = 0;
    }

    fn end_frame(out: &mut Vec<Post>, f: &mut Frame) {
        Self::end_branch(out, f);
        for _ in 0..f.nalt {
            out.push(Post::Alt);
        }
    }

    fn parse(&mut self) -> Result<(), Error> {
        let mut stack: Vec<Frame> = Vec::new();
        stack.push(Frame::new(u32::MAX, 0));
        let mut map: u16 = 0;
        let mut nsub: u32 = 0;
        let mut i = 0;
        loop {
            let (tok, len) = token(self.pat, i);
            let depth = stack.len();
            let f = stack.last_mut().expect("the top frame is never popped");
            match tok {
                Tok::End => {
                    if depth > 1 {
                        return Err(Error::Paren);
                    }
                    Self::end_frame(&mut self.out, f);
                    return Ok(());
                }
                Tok::BackSlash => return Err(Error::Escape),
                Tok::Alt => {
                    Self::end_branch(&mut self.out, f);
                    f.nalt += 1;
                    f.can_repeat = false;
                    f.accum_map |= map;
                    map = f.initial_map;
                    i += len;
                }
                Tok::Close if depth > 1 => {
                    Self::end_frame(&mut self.out, f);
                    map |= f.accum_map;
                    let g = f.group;
                    stack.pop();
                    if g < 9 {
                        self.out.push(Post::Group(g as u8));
                        map |= 1 << g;
                    }
                    let parent = stack.last_mut().expect("a group has a parent");
                    parent.can_repeat = true;
                    i += len;
                }
                Tok::Open => {
                    Self::begin_atom(&mut self.out, f);
                    stack.push(Frame::new(nsub, map));
                    nsub += 1;
                    i += len;
                }
                Tok::Star | Tok::Plus | Tok::Quest => {
                    if !f.can_repeat {
                        return Err(Error::BadRepeat);
                    }
                    self.out.push(match tok {
                        Tok::Star => Post::Star,
                        Tok::Plus => Post::Plus,
                        _ => Post::Quest,
                    });
                    i += len;
                }
                Tok::OpenBrace => {
                    if !f.can_repeat {
                        return Err(Error::BadRepeat);
                    }
                    let (min, max, next) = parse_interval(self.pat, i + len)?;
                    i = next;
                    let last = f.last;
                    expand(&mut self.out, last, min, max)?;
                }
                Tok::Anchor(l) => {
                    Self::begin_atom(&mut self.out, f);
                    self.out.push(Post::Look(l));
                    f.can_repeat = false;
                    i += len;
                }
                Tok::Backref(n) => {
                    if map & (1 << n) == 0 {
                        return Err(Error::SubReg);
                    }
                    Self::begin_atom(&mut self.out, f);
                    self.out.push(Post::Backref(n));
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
                            s.insert(self.pat[i - 1]);
                            s
                        }
                        Tok::Period => {
                            i += len;
                            let mut s = ByteSet::from_fn(|b| b != 0);
                            s.0[0] &= !1;
                            s
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
                            let space = class_fn(b"space").expect("space is a class");
                            let mut s = ByteSet::from_fn(space);
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
                    let f = stack.last_mut().expect("the top frame is never popped");
                    Self::begin_atom(&mut self.out, f);
                    self.out.push(Post::Set(idx));
                    f.can_repeat = true;
                }
            }
            if self.out.len() > MAX_PROGRAM {
                return Err(Error::Space);
            }
        }
    }
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

/// Applies `{min,max}` to the atom `out[last..]` by copying it, as glibc does.
fn expand(out: &mut Vec<Post>, last: usize, min: u32, max: Option<u32>) -> Result<(), Error> {
    match (min, max) {
        (0, None) => {
            out.push(Post::Star);
            return Ok(());
        }
        (1, None) => {
            out.push(Post::Plus);
            return Ok(());
        }
        (0, Some(1)) => {
            out.push(Post::Quest);
            return Ok(());
        }
        (1, Some(1)) => return Ok(()),
        _ => {}
    }
    let body = out.split_off(last);
    if max == Some(0) {
        out.push(Post::Empty);
        return Ok(());
    }
    let copies = max.unwrap_or(min).max(min) as usize + usize::from(max.is_none());
    if copies.saturating_mul(body.len() + 2) + out.len() > MAX_PROGRAM {
        return Err(Error::Space);
    }
    let mut first = true;
    for _ in 0..min {
        out.extend_from_slice(&body);
        if !first {
            out.push(Post::Concat);
        }
        first = false;
    }
    match max {
        None => {
            out.extend_from_slice(&body);
            out.push(Post::Star);
            if !first {
                out.push(Post::Concat);
            }
        }
        Some(max) => {
            for _ in min..max {
                out.extend_from_slice(&body);
                out.push(Post::Quest);
                if !first {
                    out.push(Post::Concat);
                }
                first = false;
            }
        }
    }
    Ok(())
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
    if *i >= p.len() {
        return Err(Error::Bracket);
    }
    let start = *i;
    let mut n = 0;
    loop {
        if n >= BRACKET_NAME_MAX {
            return Err(Error::Bracket);
        }
        let ch = p[*i];
        *i += 1;
        if *i >= p.len() {
            return Err(Error::Bracket);
        }
        if ch == delim && p[*i] == b']' {
            break;
        }
        n += 1;
    }
    let name = &p[start..start + n];
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

/// NFA instructions.
#[derive(Clone, Copy, Debug)]
enum Inst {
    Match,
    /// Consume one byte of the set, then go on.
    Set(u32, u32),
    Split(u32, u32),
    Jmp(u32),
    Look(Look, u32),
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
        match &mut prog[h as usize] {
            Inst::Set(_, n)
            | Inst::Jmp(n)
            | Inst::Look(_, n)
            | Inst::Save(_, n)
            | Inst::Backref(_, n)
            | Inst::Split(_, n) => *n = to,
            Inst::Match => {}
        }
    }
}

/// Thompson construction from the postfix form (iterative). Returns the program and
/// its start.
fn compile(post: &[Post], captures: bool) -> (Vec<Inst>, u32) {
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
                    holes: alloc::vec![pc],
                });
            }
            Post::Empty => {
                let pc = push(&mut prog, Inst::Jmp(HOLE));
                frags.push(Frag {
                    start: pc,
                    holes: alloc::vec![pc],
                });
            }
            Post::Look(l) => {
                let pc = push(&mut prog, Inst::Look(l, HOLE));
                frags.push(Frag {
                    start: pc,
                    holes: alloc::vec![pc],
                });
            }
            Post::Backref(g) => {
                let pc = push(&mut prog, Inst::Backref(g, HOLE));
                frags.push(Frag {
                    start: pc,
                    holes: alloc::vec![pc],
                });
            }
            Post::Concat => {
                let b = frags.pop().expect("postfix is well formed");
                let a = frags.pop().expect("postfix is well formed");
                patch(&mut prog, &a.holes, b.start);
                frags.push(Frag {
                    start: a.start,
                    holes: b.holes,
                });
            }
            Post::Alt => {
                let b = frags.pop().expect("postfix is well formed");
                let mut a = frags.pop().expect("postfix is well formed");
                let pc = push(&mut prog, Inst::Split(a.start, b.start));
                a.holes.extend_from_slice(&b.holes);
                frags.push(Frag {
                    start: pc,
                    holes: a.holes,
                });
            }
            Post::Star => {
                let a = frags.pop().expect("postfix is well formed");
                let pc = push(&mut prog, Inst::Split(a.start, HOLE));
                patch(&mut prog, &a.holes, pc);
                frags.push(Frag {
                    start: pc,
                    holes: alloc::vec![pc],
                });
            }
            Post::Plus => {
                let a = frags.pop().expect("postfix is well formed");
                let pc = push(&mut prog, Inst::Split(a.start, HOLE));
                patch(&mut prog, &a.holes, pc);
                frags.push(Frag {
                    start: a.start,
                    holes: alloc::vec![pc],
                });
            }
            Post::Quest => {
                let mut a = frags.pop().expect("postfix is well formed");
                let pc = push(&mut prog, Inst::Split(a.start, HOLE));
                a.holes.push(pc);
                frags.push(Frag {
                    start: pc,
                    holes: a.holes,
                });
            }
            Post::Group(g) => {
                if captures {
                    let a = frags.pop().expect("postfix is well formed");
                    let open = push(&mut prog, Inst::Save(2 * g, a.start));
                    let close = push(&mut prog, Inst::Save(2 * g + 1, HOLE));
                    patch(&mut prog, &a.holes, close);
                    frags.push(Frag {
                        start: open,
                        holes: alloc::vec![close],
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
    (prog, start)
}

/// A set of NFA states with O(1) insert and clear.
struct SparseSet {
    dense: Vec<u32>,
    sparse: Vec<u32>,
}

impl SparseSet {
    fn new(n: usize) -> SparseSet {
        SparseSet {
            dense: Vec::with_capacity(n),
            sparse: alloc::vec![0; n],
        }
    }

    fn clear(&mut self) {
        self.dense.clear();
    }

    /// Inserts `x`; false if it was already there.
    fn insert(&mut self, x: u32) -> bool {
        let s = self.sparse[x as usize] as usize;
        if s < self.dense.len() && self.dense[s] == x {
            return false;
        }
        self.sparse[x as usize] = self.dense.len() as u32;
        self.dense.push(x);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        is_match(p.as_bytes(), t.as_bytes())
    }

    fn err(p: &str) -> Option<i32> {
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
    }

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

    #[test]
    fn backrefs() {
        assert!(m("(a)\\1", "xaa"));
        assert!(!m("(a)\\1", "xa"));
        assert!(m("((a)|b)*\\2", "aba"));
        assert!(!m("((a)|b)*\\2", "ab"));
        assert!(m("(a*)*\\1", "b"));
    }

    #[test]
    fn hostile() {
        let deep = "(".repeat(5000) + &")".repeat(5000);
        assert!(m(&deep, "x"));
        assert!(!m(&"(".repeat(5000), "x"));
        assert!(!m("(a*)*(a*)*(a*)*(a*)*b", &"a".repeat(200)));
        assert!(!m("(a|a)*(a|a)*(a|a)*c", &"a".repeat(200)));
        assert_eq!(err("((a{1000}){1000}){1000}"), Some(12));
        assert!(m("x{0,32767}", ""));
        assert!(!m("(a*)*\\1(b*)*\\2c", &"ab".repeat(30)));
    }
}
