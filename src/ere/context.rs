//! The vocabulary of anchors that every stage shares: glibc's constraint bits
//! (`regex_internal.h`), the contexts of a text position, and the tests that join them.
//!
//! The parser ([`super::parse`]) turns an anchor into its constraint bits; glibc's
//! construction ([`super::nfa`]) carries them on nodes and their constraint copies; the
//! two matchers ([`super::matcher`], [`super::backref`]) compute the context of each
//! position and check the bits against it. Nothing here depends on another stage.

// glibc's constraint bits (`regex_internal.h`), and the anchors' `re_context_type`s.
pub(super) const PREV_WORD: u16 = 0x0001;
pub(super) const PREV_NOTWORD: u16 = 0x0002;
pub(super) const NEXT_WORD: u16 = 0x0004;
pub(super) const NEXT_NOTWORD: u16 = 0x0008;
pub(super) const PREV_NEWLINE: u16 = 0x0010;
pub(super) const NEXT_NEWLINE: u16 = 0x0020;
pub(super) const PREV_BEGBUF: u16 = 0x0040;
pub(super) const NEXT_ENDBUF: u16 = 0x0080;
pub(super) const INSIDE_WORD: u16 = PREV_WORD | NEXT_WORD;
pub(super) const WORD_FIRST: u16 = PREV_NOTWORD | NEXT_WORD;
pub(super) const WORD_LAST: u16 = PREV_WORD | NEXT_NOTWORD;
pub(super) const INSIDE_NOTWORD: u16 = PREV_NOTWORD | NEXT_NOTWORD;
pub(super) const LINE_FIRST: u16 = PREV_NEWLINE;
pub(super) const LINE_LAST: u16 = NEXT_NEWLINE;
pub(super) const BUF_FIRST: u16 = PREV_BEGBUF;
pub(super) const BUF_LAST: u16 = NEXT_ENDBUF;
/// `\b`: becomes `WORD_FIRST | WORD_LAST` alternatives.
pub(super) const WORD_DELIM: u16 = 0x0100;
/// `\B`: becomes `INSIDE_WORD | INSIDE_NOTWORD` alternatives.
pub(super) const NOT_WORD_DELIM: u16 = 0x0200;

// glibc's contexts of a position.
pub(super) const CONTEXT_WORD: u8 = 1;
pub(super) const CONTEXT_NEWLINE: u8 = 2;
pub(super) const CONTEXT_BEGBUF: u8 = 4;
pub(super) const CONTEXT_ENDBUF: u8 = 8;

/// `NOT_SATISFY_PREV_CONSTRAINT`, negated.
pub(super) fn prev_ok(c: u16, ctx: u8) -> bool {
    !((c & PREV_WORD != 0 && ctx & CONTEXT_WORD == 0)
        || (c & PREV_NOTWORD != 0 && ctx & CONTEXT_WORD != 0)
        || (c & PREV_NEWLINE != 0 && ctx & CONTEXT_NEWLINE == 0)
        || (c & PREV_BEGBUF != 0 && ctx & CONTEXT_BEGBUF == 0))
}

/// `NOT_SATISFY_NEXT_CONSTRAINT`, negated.
pub(super) fn next_ok(c: u16, ctx: u8) -> bool {
    !((c & NEXT_WORD != 0 && ctx & CONTEXT_WORD == 0)
        || (c & NEXT_NOTWORD != 0 && ctx & CONTEXT_WORD != 0)
        || (c & NEXT_NEWLINE != 0 && ctx & CONTEXT_NEWLINE == 0)
        || (c & NEXT_ENDBUF != 0 && ctx & CONTEXT_ENDBUF == 0))
}

/// The context of the byte at `pos` as `re_string_context_at` sees it without
/// `REG_NEWLINE` (a newline is an ordinary byte; the text's ends are special).
pub(super) fn context_at(text: &[u8], pos: isize) -> u8 {
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

/// glibc's `IS_WORD_CHAR`: alphanumeric or `_`.
pub(super) fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}
