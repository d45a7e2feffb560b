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

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;

/// glibc's `RE_DUP_MAX`: the largest repetition bound accepted.
const RE_DUP_MAX: u32 = 0x7fff;
/// Largest parse tree, and largest NFA (with constraint copies), we build.
const MAX_NODES: usize = 200_000;
/// Largest number of distinct search states explored for a pattern with back-references.
const MAX_BACKREF_STATES: usize = 1 << 20;
/// glibc's `BRACKET_NAME_BUF_SIZE`: `[:name:]` and friends hold at most 31 bytes.
const BRACKET_NAME_MAX: usize = 32;
/// "No node" in the tree and the NFA.
const NIL: u32 = u32::MAX;

// glibc's constraint bits (`regex_internal.h`), and the anchors' `re_context_type`s.
const PREV_WORD: u16 = 0x0001;
const PREV_NOTWORD: u16 = 0x0002;
const NEXT_WORD: u16 = 0x0004;
const NEXT_NOTWORD: u16 = 0x0008;
const PREV_NEWLINE: u16 = 0x0010;
const NEXT_NEWLINE: u16 = 0x0020;
const PREV_BEGBUF: u16 = 0x0040;
const NEXT_ENDBUF: u16 = 0x0080;
const INSIDE_WORD: u16 = PREV_WORD | NEXT_WORD;
const WORD_FIRST: u16 = PREV_NOTWORD | NEXT_WORD;
const WORD_LAST: u16 = PREV_WORD | NEXT_NOTWORD;
const INSIDE_NOTWORD: u16 = PREV_NOTWORD | NEXT_NOTWORD;
const LINE_FIRST: u16 = PREV_NEWLINE;
const LINE_LAST: u16 = NEXT_NEWLINE;
const BUF_FIRST: u16 = PREV_BEGBUF;
const BUF_LAST: u16 = NEXT_ENDBUF;
/// `\b`: becomes `WORD_FIRST | WORD_LAST` alternatives.
const WORD_DELIM: u16 = 0x0100;
/// `\B`: becomes `INSIDE_WORD | INSIDE_NOTWORD` alternatives.
const NOT_WORD_DELIM: u16 = 0x0200;

// glibc's contexts of a position.
const CONTEXT_WORD: u8 = 1;
const CONTEXT_NEWLINE: u8 = 2;
const CONTEXT_BEGBUF: u8 = 4;
const CONTEXT_ENDBUF: u8 = 8;

/// `NOT_SATISFY_PREV_CONSTRAINT`, negated.
fn prev_ok(c: u16, ctx: u8) -> bool {
    !((c & PREV_WORD != 0 && ctx & CONTEXT_WORD == 0)
        || (c & PREV_NOTWORD != 0 && ctx & CONTEXT_WORD != 0)
        || (c & PREV_NEWLINE != 0 && ctx & CONTEXT_NEWLINE == 0)
        || (c & PREV_BEGBUF != 0 && ctx & CONTEXT_BEGBUF == 0))
}

/// `NOT_SATISFY_NEXT_CONSTRAINT`, negated.
fn next_ok(c: u16, ctx: u8) -> bool {
    !((c & NEXT_WORD != 0 && ctx & CONTEXT_WORD == 0)
        || (c & NEXT_NOTWORD != 0 && ctx & CONTEXT_WORD != 0)
        || (c & NEXT_NEWLINE != 0 && ctx & CONTEXT_NEWLINE == 0)
        || (c & NEXT_ENDBUF != 0 && ctx & CONTEXT_ENDBUF == 0))
}

/// The context of the byte at `pos` as `re_string_context_at` sees it without
/// `REG_NEWLINE` (a newline is an ordinary byte; the text's ends are special).
fn context_at(text: &[u8], pos: isize) -> u8 {
    if pos < 0 {
        CONTEXT_NEWLINE | CONTEXT_BEGBUF
    } else {
        match text.get(pos as usize) {
            None => CONTEXT_NEWLINE | CONTEXT_ENDBUF,
            Some(&c) if is_word(c) => CONTEXT_WORD,
            Some(_) => 0,
        }
    }
}

/// Checked reads and writes of the internal tables. Every index comes from the tables
/// themselves, so the fallbacks are never taken; they keep a bug from panicking on
/// configuration data.
fn get_u32(v: &[u32], i: u32) -> u32 {
    v.get(i as usize).copied().unwrap_or(NIL)
}

fn set_u32(v: &mut [u32], i: u32, x: u32) {
    if let Some(slot) = v.get_mut(i as usize) {
        *slot = x;
    }
}

fn get_flag(v: &[bool], i: u32) -> bool {
    v.get(i as usize).copied().unwrap_or(true)
}

fn set_flag(v: &mut [bool], i: u32, x: bool) {
    if let Some(slot) = v.get_mut(i as usize) {
        *slot = x;
    }
}

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
        let mut parser = Parser {
            pat: pattern,
            tree: Tree {
                nodes: Vec::new(),
                sink: DEAD_TNODE,
            },
            sets: Vec::new(),
            backrefs: false,
        };
        let content = parser.parse()?;
        let Parser {
            mut tree,
            sets,
            backrefs,
            ..
        } = parser;
        let engine = if backrefs {
            let post = postfix(&tree, content);
            // (`None` never happens: the postfix comes from a tree.)
            let (prog, start) = compile(&post, true).ok_or(Error::Space)?;
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
            Engine::Backtrack { prog, start } => search_backtrack(prog, *start, &self.sets, text),
        }
    }
}

/// Memoised depth-first search over `(pc, pos, captures)`, for back-references.
fn search_backtrack(prog: &[Inst], start: u32, sets: &[ByteSet], text: &[u8]) -> bool {
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
fn cut_at_nul(s: &[u8]) -> &[u8] {
    s.split(|&b| b == 0).next().unwrap_or(s)
}

/// Whether byte set `s` (an index into `sets`) holds `b`.
fn set_contains(sets: &[ByteSet], s: u32, b: u8) -> bool {
    sets.get(s as usize).is_some_and(|set| set.contains(b))
}

/// A set of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ByteSet([u64; 4]);

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

/// glibc's `IS_WORD_CHAR`: alphanumeric or `_`.
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
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

/// Node types of glibc's parse tree (`bin_tree_t`), for the ERE subset in the C locale:
/// single bytes, `.`, brackets and `\w`-like classes are all byte sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TType {
    Set(u32),
    /// An anchor with its `re_context_type`.
    Anchor(u16),
    BackRef(u8),
    EndOfRe,
    Concat,
    Alt,
    Star,
    /// A group (`SUBEXP`) with its 0-based number.
    Subexp(u32),
    OpenSubexp(u32),
    CloseSubexp(u32),
}

#[derive(Clone, Copy, Debug)]
struct TNode {
    ty: TType,
    left: u32,
    right: u32,
    parent: u32,
    /// Made by `duplicate_tree` (glibc's `token.duplicated`).
    duplicated: bool,
    first: u32,
    next: u32,
    node_idx: u32,
}

/// What a read of a missing tree node gives (never happens: indices come from the
/// arena itself).
static DEAD_TNODE: TNode = TNode {
    ty: TType::EndOfRe,
    left: NIL,
    right: NIL,
    parent: NIL,
    duplicated: true,
    first: NIL,
    next: NIL,
    node_idx: NIL,
};

/// The parse tree, nodes in an arena; `NIL` is "no node".
#[derive(Debug)]
struct Tree {
    nodes: Vec<TNode>,
    /// Where writes to a missing node go (never happens; see `DEAD_TNODE`).
    sink: TNode,
}

impl Tree {
    /// glibc's `create_tree`/`create_token_tree`.
    fn create(&mut self, ty: TType, left: u32, right: u32) -> Result<u32, Error> {
        if self.nodes.len() >= MAX_NODES {
            return Err(Error::Space);
        }
        let id = self.nodes.len() as u32;
        self.nodes.push(TNode {
            ty,
            left,
            right,
            parent: NIL,
            duplicated: false,
            first: NIL,
            next: NIL,
            node_idx: NIL,
        });
        for child in [left, right] {
            if child != NIL {
                self.m(child).parent = id;
            }
        }
        Ok(id)
    }

    /// glibc's `duplicate_tree`: a copy of the subtree, every node marked duplicated.
    fn duplicate(&mut self, root: u32) -> Result<u32, Error> {
        let copy = |tree: &mut Tree, src: u32, parent: u32| -> Result<u32, Error> {
            let ty = tree.n(src).ty;
            let id = tree.create(ty, NIL, NIL)?;
            let n = tree.m(id);
            n.parent = parent;
            n.duplicated = true;
            Ok(id)
        };
        let new_root = copy(self, root, NIL)?;
        let mut stack = vec![(root, new_root)];
        while let Some((src, dst)) = stack.pop() {
            let (l, r) = (self.n(src).left, self.n(src).right);
            if l != NIL {
                let c = copy(self, l, dst)?;
                self.m(dst).left = c;
                stack.push((l, c));
            }
            if r != NIL {
                let c = copy(self, r, dst)?;
                self.m(dst).right = c;
                stack.push((r, c));
            }
        }
        Ok(new_root)
    }

    fn n(&self, i: u32) -> &TNode {
        self.nodes.get(i as usize).unwrap_or(&DEAD_TNODE)
    }

    fn m(&mut self, i: u32) -> &mut TNode {
        match self.nodes.get_mut(i as usize) {
            Some(n) => n,
            None => &mut self.sink,
        }
    }
}

/// glibc's `preorder`: parent-pointer walk, `f` runs before the children (and may
/// replace them).
fn preorder<F>(tree: &mut Tree, root: u32, mut f: F) -> Result<(), Error>
where
    F: FnMut(&mut Tree, u32) -> Result<(), Error>,
{
    let mut node = root;
    loop {
        f(tree, node)?;
        if tree.n(node).left != NIL {
            node = tree.n(node).left;
        } else {
            let mut prev = NIL;
            while tree.n(node).right == prev || tree.n(node).right == NIL {
                prev = node;
                node = tree.n(node).parent;
                if node == NIL {
                    return Ok(());
                }
            }
            node = tree.n(node).right;
        }
    }
}

/// glibc's `postorder`: parent-pointer walk, `f` runs after the children.
fn postorder<F>(tree: &mut Tree, root: u32, mut f: F) -> Result<(), Error>
where
    F: FnMut(&mut Tree, u32) -> Result<(), Error>,
{
    let mut node = root;
    loop {
        loop {
            let n = tree.n(node);
            if n.left != NIL {
                node = n.left;
            } else if n.right != NIL {
                node = n.right;
            } else {
                break;
            }
        }
        loop {
            f(tree, node)?;
            let parent = tree.n(node).parent;
            if parent == NIL {
                return Ok(());
            }
            let prev = node;
            node = parent;
            let right = tree.n(node).right;
            if !(right == prev || right == NIL) {
                break;
            }
        }
        node = tree.n(node).right;
    }
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

/// Node types of glibc's NFA (`re_token_type_t`, the subset that survives `analyze`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NType {
    Set(u32),
    EndOfRe,
    BackRef,
    OpenSubexp,
    CloseSubexp,
    Alt,
    Star,
    Anchor,
}

impl NType {
    /// glibc's `IS_EPSILON_NODE`.
    fn is_epsilon(self) -> bool {
        matches!(
            self,
            NType::OpenSubexp | NType::CloseSubexp | NType::Alt | NType::Star | NType::Anchor
        )
    }
}

#[derive(Clone, Debug)]
struct NNode {
    ty: NType,
    constraint: u16,
    duplicated: bool,
    /// `dfa->nexts`: where a consuming node goes.
    next: u32,
    /// `dfa->edests`: epsilon destinations (a sorted set).
    edests: Dests,
    /// `dfa->org_indices`: the node a constraint copy was made from.
    org: u32,
    /// This node's constraint copies: the head of its list in `Nfa::copy_list`.
    copies: u32,
}

/// `dfa->edests` of one node, inline: a sorted set of at most two epsilon destinations
/// (an alternation or a star has two, every other epsilon node one, and
/// `duplicate_node_closure` empties a clone's set before it adds at most two).
#[derive(Clone, Copy, Debug)]
struct Dests {
    at: [u32; 2],
    len: u8,
}

impl Dests {
    const EMPTY: Dests = Dests {
        at: [NIL; 2],
        len: 0,
    };

    fn one(x: u32) -> Dests {
        Dests {
            at: [x, NIL],
            len: 1,
        }
    }

    fn as_slice(&self) -> &[u32] {
        self.at.get(..usize::from(self.len)).unwrap_or(&[])
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    /// Sorted insertion (`re_node_set_insert`; glibc never inserts a present element
    /// here). A third destination cannot occur (see above); it would refuse the
    /// pattern rather than drop an edge.
    fn insert(&mut self, x: u32) -> Result<(), Error> {
        match (self.len, self.at[0]) {
            (0, _) => self.at[0] = x,
            (1, first) if first <= x => self.at[1] = x,
            (1, first) => self.at = [x, first],
            _ => return Err(Error::Space),
        }
        self.len += 1;
        Ok(())
    }
}

/// One entry of a node's list of constraint copies: the newest copy with this
/// constraint, and the next entry of the same node.
#[derive(Clone, Copy, Debug)]
struct CopyEntry {
    constraint: u16,
    node: u32,
    next: u32,
}

/// What a read of a missing NFA node gives (never happens: indices come from the NFA
/// itself): an epsilon node going nowhere.
static DEAD_NNODE: NNode = NNode {
    ty: NType::Anchor,
    constraint: 0,
    duplicated: true,
    next: NIL,
    edests: Dests::EMPTY,
    org: NIL,
    copies: NIL,
};

/// glibc's compiled NFA for a pattern without back-references.
#[derive(Clone, Debug)]
struct Nfa {
    nodes: Vec<NNode>,
    /// Where writes to a missing node go (never happens; see `DEAD_NNODE`).
    sink: NNode,
    /// The epsilon closure of the first node (`create_initial_state`).
    init: Vec<u32>,
    /// The newest constraint copy of each `(original, constraint)`, as lists from
    /// `NNode::copies` (one entry per distinct constraint): what glibc's backward scan
    /// in `search_duplicated_node` finds, without the scan.
    copy_list: Vec<CopyEntry>,
}

impl Nfa {
    /// glibc's `parse` (adding `END_OF_RE`) and `analyze`, for a tree without
    /// back-references, compiled with `REG_NOSUB`.
    fn build(tree: &mut Tree, content: u32) -> Result<Nfa, Error> {
        let eor = tree.create(TType::EndOfRe, NIL, NIL)?;
        let root = if content == NIL {
            eor
        } else {
            tree.create(TType::Concat, content, eor)?
        };

        // optimize_subexps: a group directly inside a group is dropped.
        preorder(tree, root, |t, node| {
            if let TType::Subexp(_) = t.n(node).ty {
                let left = t.n(node).left;
                if left != NIL && matches!(t.n(left).ty, TType::Subexp(_)) {
                    let inner = t.n(left).left;
                    t.m(node).left = inner;
                    if inner != NIL {
                        t.m(inner).parent = node;
                    }
                }
            }
            Ok(())
        })?;

        // lower_subexps: with REG_NOSUB and no back-reference, a non-empty group is just
        // its content; an empty one becomes OP_OPEN_SUBEXP, OP_CLOSE_SUBEXP.
        postorder(tree, root, |t, node| {
            for right in [false, true] {
                let child = if right {
                    t.n(node).right
                } else {
                    t.n(node).left
                };
                if child == NIL {
                    continue;
                }
                let TType::Subexp(idx) = t.n(child).ty else {
                    continue;
                };
                let body = t.n(child).left;
                let lowered = if body != NIL {
                    body
                } else {
                    let op = t.create(TType::OpenSubexp(idx), NIL, NIL)?;
                    let cls = t.create(TType::CloseSubexp(idx), NIL, NIL)?;
                    t.create(TType::Concat, op, cls)?
                };
                if right {
                    t.m(node).right = lowered;
                } else {
                    t.m(node).left = lowered;
                }
                t.m(lowered).parent = node;
            }
            Ok(())
        })?;

        let mut nfa = Nfa {
            nodes: Vec::new(),
            init: Vec::new(),
            copy_list: Vec::new(),
            sink: DEAD_NNODE.clone(),
        };

        // calc_first: nodes are numbered in postorder (CONCATs are not nodes).
        postorder(tree, root, |t, node| {
            let n = *t.n(node);
            if n.ty == TType::Concat {
                let first = t.n(n.left).first;
                let idx = t.n(n.left).node_idx;
                let m = t.m(node);
                m.first = first;
                m.node_idx = idx;
            } else {
                let (ty, constraint) = match n.ty {
                    TType::Set(s) => (NType::Set(s), 0),
                    TType::Anchor(c) => (NType::Anchor, c),
                    TType::BackRef(_) => (NType::BackRef, 0),
                    TType::EndOfRe => (NType::EndOfRe, 0),
                    TType::Alt => (NType::Alt, 0),
                    TType::Star => (NType::Star, 0),
                    TType::OpenSubexp(_) | TType::Subexp(_) => (NType::OpenSubexp, 0),
                    TType::CloseSubexp(_) => (NType::CloseSubexp, 0),
                    TType::Concat => unreachable_concat(),
                };
                let idx = nfa.add_node(ty, n.duplicated)?;
                nfa.node_mut(idx).constraint = constraint;
                let m = t.m(node);
                m.first = node;
                m.node_idx = idx;
            }
            Ok(())
        })?;

        // calc_next.
        preorder(tree, root, |t, node| {
            let n = *t.n(node);
            match n.ty {
                TType::Star => t.m(n.left).next = node,
                TType::Concat => {
                    let right_first = t.n(n.right).first;
                    t.m(n.left).next = right_first;
                    t.m(n.right).next = n.next;
                }
                _ => {
                    if n.left != NIL {
                        t.m(n.left).next = n.next;
                    }
                    if n.right != NIL {
                        t.m(n.right).next = n.next;
                    }
                }
            }
            Ok(())
        })?;

        // link_nfa_nodes.
        preorder(tree, root, |t, node| {
            let n = *t.n(node);
            let next_idx = |t: &Tree| {
                if n.next == NIL {
                    NIL
                } else {
                    t.n(n.next).node_idx
                }
            };
            let idx = n.node_idx;
            match n.ty {
                TType::Concat | TType::EndOfRe => {}
                TType::Alt | TType::Star => {
                    let side = |c: u32| {
                        if c != NIL {
                            t.n(t.n(c).first).node_idx
                        } else {
                            next_idx(t)
                        }
                    };
                    let (l, r) = (side(n.left), side(n.right));
                    let mut dests = Dests::one(l);
                    if r != l {
                        dests.insert(r)?;
                    }
                    nfa.node_mut(idx).edests = dests;
                }
                TType::Anchor(_)
                | TType::OpenSubexp(_)
                | TType::CloseSubexp(_)
                | TType::Subexp(_) => nfa.node_mut(idx).edests = Dests::one(next_idx(t)),
                TType::BackRef(_) => {
                    let next = next_idx(t);
                    nfa.node_mut(idx).next = next;
                    nfa.node_mut(idx).edests = Dests::one(next);
                }
                TType::Set(_) => nfa.node_mut(idx).next = next_idx(t),
            }
            Ok(())
        })?;

        nfa.calc_eclosure()?;
        let first = tree.n(tree.n(root).first).node_idx;
        let mut init = Vec::new();
        let mut stamp = vec![NIL; nfa.nodes.len()];
        nfa.add_closure(first, &mut stamp, 0, &mut init, &mut Vec::new());
        nfa.init = init;
        Ok(nfa)
    }

    fn node(&self, i: u32) -> &NNode {
        self.nodes.get(i as usize).unwrap_or(&DEAD_NNODE)
    }

    fn node_mut(&mut self, i: u32) -> &mut NNode {
        match self.nodes.get_mut(i as usize) {
            Some(n) => n,
            None => &mut self.sink,
        }
    }

    /// glibc's `re_dfa_add_node`.
    fn add_node(&mut self, ty: NType, duplicated: bool) -> Result<u32, Error> {
        if self.nodes.len() >= MAX_NODES {
            return Err(Error::Space);
        }
        self.nodes.push(NNode {
            ty,
            constraint: 0,
            duplicated,
            next: NIL,
            edests: Dests::EMPTY,
            org: NIL,
            copies: NIL,
        });
        Ok((self.nodes.len() - 1) as u32)
    }

    /// glibc's `duplicate_node`: a copy of `org` carrying `constraint` as well.
    fn duplicate_node(&mut self, org: u32, constraint: u16) -> Result<u32, Error> {
        let o = self.node(org);
        let (ty, dup, org_constraint) = (o.ty, o.duplicated, o.constraint);
        let idx = self.add_node(ty, dup)?;
        let n = self.node_mut(idx);
        n.constraint = constraint | org_constraint;
        n.duplicated = true;
        n.org = org;
        let constraint = n.constraint;
        if let Some(e) = self
            .copy_entry(org, constraint)
            .and_then(|at| self.copy_list.get_mut(at))
        {
            e.node = idx;
            return Ok(idx);
        }
        let entry = self.copy_list.len() as u32;
        self.copy_list.push(CopyEntry {
            constraint,
            node: idx,
            next: self.node(org).copies,
        });
        self.node_mut(org).copies = entry;
        Ok(idx)
    }

    /// Where `org`'s list of copies has its entry for `constraint`, if it has one.
    fn copy_entry(&self, org: u32, constraint: u16) -> Option<usize> {
        let mut at = self.node(org).copies;
        while let Some(e) = self.copy_list.get(at as usize) {
            if e.constraint == constraint {
                return Some(at as usize);
            }
            at = e.next;
        }
        None
    }

    /// glibc's `search_duplicated_node`: the newest constraint copy of `org` with
    /// exactly `constraint`. glibc scans backwards from the last node while nodes are
    /// marked duplicated; the nodes after `END_OF_RE` (the last node numbered by
    /// `calc_first`, never duplicated) are exactly the constraint copies, so the newest
    /// matching copy is what the scan finds.
    fn search_duplicated_node(&self, org: u32, constraint: u16) -> u32 {
        self.copy_entry(org, constraint)
            .and_then(|at| self.copy_list.get(at))
            .map_or(NIL, |e| e.node)
    }

    /// glibc's `duplicate_node_closure`: copies the epsilon closure of `top_org` onto
    /// `top_clone` with `init_constraint` added to every copy. The recursion on the first
    /// of two epsilon destinations becomes a task stack, in the same order.
    fn duplicate_node_closure(
        &mut self,
        top_org: u32,
        top_clone: u32,
        root: u32,
        init_constraint: u16,
    ) -> Result<(), Error> {
        enum Task {
            /// Walk from `(org, clone)`.
            Run(u32, u32, u16),
            /// After the first branch of a two-way node: copy the second destination
            /// `org_dest` for `clone`, then walk on from there.
            Second(u32, u32, u16),
        }
        let mut tasks = vec![Task::Run(top_org, top_clone, init_constraint)];
        while let Some(task) = tasks.pop() {
            let (mut org, mut clone, mut constraint) = match task {
                Task::Run(o, c, k) => (o, c, k),
                Task::Second(org_dest, clone, k) => {
                    let clone_dest = self.duplicate_node(org_dest, k)?;
                    self.node_mut(clone).edests.insert(clone_dest)?;
                    (org_dest, clone_dest, k)
                }
            };
            loop {
                let (org_dest, clone_dest);
                let o = self.node(org);
                let (org_ty, org_next, org_constraint) = (o.ty, o.next, o.constraint);
                let org_edests = o.edests;
                if org_ty == NType::BackRef {
                    org_dest = org_next;
                    self.node_mut(clone).edests.clear();
                    clone_dest = self.duplicate_node(org_dest, constraint)?;
                    self.node_mut(clone).next = org_next;
                    self.node_mut(clone).edests.insert(clone_dest)?;
                } else {
                    match *org_edests.as_slice() {
                        [] => {
                            self.node_mut(clone).next = org_next;
                            break;
                        }
                        [only] => {
                            org_dest = only;
                            self.node_mut(clone).edests.clear();
                            // A loop back to the root: tie it to the original destination.
                            if org == root && clone != org {
                                self.node_mut(clone).edests.insert(org_dest)?;
                                break;
                            }
                            constraint |= org_constraint;
                            clone_dest = self.duplicate_node(org_dest, constraint)?;
                            self.node_mut(clone).edests.insert(clone_dest)?;
                        }
                        [first, second, ..] => {
                            self.node_mut(clone).edests.clear();
                            let found = self.search_duplicated_node(first, constraint);
                            if found == NIL {
                                let c = self.duplicate_node(first, constraint)?;
                                self.node_mut(clone).edests.insert(c)?;
                                tasks.push(Task::Second(second, clone, constraint));
                                tasks.push(Task::Run(first, c, constraint));
                                break;
                            }
                            self.node_mut(clone).edests.insert(found)?;
                            org_dest = second;
                            clone_dest = self.duplicate_node(org_dest, constraint)?;
                            self.node_mut(clone).edests.insert(clone_dest)?;
                        }
                    }
                }
                org = org_dest;
                clone = clone_dest;
            }
        }
        Ok(())
    }

    /// glibc's `calc_eclosure`, in two steps with the same result.
    ///
    /// glibc computes every closure by a recursive walk over the epsilon edges (nodes
    /// "in progress" are skipped and incomplete closures recomputed later), and the
    /// first time the walk enters a node with a constraint whose first destination is
    /// not a copy, it copies that node's closure with the constraint
    /// (`duplicate_node_closure`). Only those first entries change the NFA (a later
    /// entry finds the first destination already copied, and destinations never change
    /// otherwise), and the final closures are plain reachability. So: first replay the
    /// walk's order of first entries (a depth-first search in glibc's order: nodes by
    /// index, destinations in set order) doing the copies; matching then walks the
    /// closures as reachability (`add_closure`).
    fn calc_eclosure(&mut self) -> Result<(), Error> {
        // Step 1: the copies, in glibc's order.
        let mut visited: Vec<bool> = Vec::new();
        let mut stack: Vec<(u32, usize)> = Vec::new();
        let mut start = 0usize;
        while start < self.nodes.len() {
            visited.resize(self.nodes.len(), false);
            if get_flag(&visited, start as u32) {
                start += 1;
                continue;
            }
            let mut pending = Some(start as u32);
            loop {
                if let Some(node) = pending.take() {
                    visited.resize(self.nodes.len(), false);
                    set_flag(&mut visited, node, true);
                    let n = self.node(node);
                    if n.constraint != 0
                        && n.edests
                            .as_slice()
                            .first()
                            .is_some_and(|&e| !self.node(e).duplicated)
                    {
                        let c = n.constraint;
                        self.duplicate_node_closure(node, node, node, c)?;
                        visited.resize(self.nodes.len(), false);
                    }
                    stack.push((node, 0));
                }
                let Some(top) = stack.last_mut() else {
                    break;
                };
                let next_edge = epsilon_successors(&self.nodes, top.0).get(top.1).copied();
                if let Some(e) = next_edge {
                    top.1 += 1;
                    if !get_flag(&visited, e) {
                        pending = Some(e);
                    }
                } else {
                    stack.pop();
                }
            }
            start += 1;
        }
        Ok(())
    }

    /// Adds `from`'s epsilon closure (every node reachable over epsilon edges, `from`
    /// itself included) to `out`, skipping and marking nodes through `stamp[node] ==
    /// gen`. Closures are walked when needed instead of stored: the nodes of one step's
    /// closures are then visited once per step, where stored closures cost their total
    /// size, which is quadratic in a chain of anchors (`(^^^…^){33}`) to build.
    fn add_closure(
        &self,
        from: u32,
        stamp: &mut [u32],
        gen: u32,
        out: &mut Vec<u32>,
        stack: &mut Vec<u32>,
    ) {
        if get_u32(stamp, from) == gen {
            return;
        }
        set_u32(stamp, from, gen);
        stack.push(from);
        while let Some(v) = stack.pop() {
            out.push(v);
            for &w in epsilon_successors(&self.nodes, v) {
                if get_u32(stamp, w) != gen {
                    set_u32(stamp, w, gen);
                    stack.push(w);
                }
            }
        }
    }

    /// regexec without `REG_NOTBOL`/`REG_NOTEOL`: is there a start position from which
    /// glibc's matcher reaches a halt state? All start positions are simulated at once:
    /// a node set per position is the union of the continuing threads (filtered with the
    /// context the transition table gives after the consumed byte) and a fresh start
    /// (filtered with the context `re_string_context_at` gives).
    fn search(&self, sets: &[ByteSet], text: &[u8]) -> bool {
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

/// The epsilon edges out of `v` (none for consuming nodes and `END_OF_RE`).
fn epsilon_successors(nodes: &[NNode], v: u32) -> &[u32] {
    match nodes.get(v as usize) {
        Some(nd) if nd.ty.is_epsilon() => nd.edests.as_slice(),
        _ => &[],
    }
}

/// A CONCAT never becomes an NFA node (glibc's `calc_first` skips it).
fn unreachable_concat() -> (NType, u16) {
    (NType::EndOfRe, 0)
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

/// NFA instructions.
#[derive(Clone, Copy, Debug)]
enum Inst {
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
        assert!(m("\\<6", "6.1"));
        assert!(!m("\\B6", "6.1"));
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
