//! Comparing two runs: everything (status, stdout, stderr, every file with its mode)
//! or, for kmod 30, the text files; differences described by their first lines or
//! bytes.

use std::fmt::Write as _;

use super::outcome::{Effect, Outcome};

pub const TEXT_FILES: &[&str] = &[
    "modules.dep",
    "modules.alias",
    "modules.softdep",
    "modules.weakdep",
    "modules.symbols",
    "modules.devname",
];

pub(super) fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// What to compare.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Everything (all effects incl. `.bin` and modes, stdout, stderr, status).
    pub full: bool,
    /// Text-only: include modules.weakdep.
    pub weakdep: bool,
    /// Text-only: compare stdout too, with the weakdep block removed from both sides.
    pub stdout_minus_weakdep: bool,
}

impl Policy {
    pub const FULL: Policy = Policy {
        full: true,
        weakdep: true,
        stdout_minus_weakdep: false,
    };
    /// What kmod 30 can be compared on.
    pub const V30: Policy = Policy {
        full: false,
        weakdep: false,
        stdout_minus_weakdep: true,
    };
}

/// Remove the `modules.weakdep` section of `-n` output (from its header to the
/// modules.symbols header).
pub fn strip_weakdep_block(s: &[u8]) -> Vec<u8> {
    let h1 = b"# Weak dependencies extracted from modules themselves.\n";
    let h2 = b"# Aliases for symbols, used by symbol_request().\n";
    let Some(a) = find(s, h1) else {
        return s.to_vec();
    };
    let Some(b) = find(&s[a..], h2) else {
        return s.to_vec();
    };
    let mut v = s[..a].to_vec();
    v.extend_from_slice(&s[a + b..]);
    v
}

pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Compare `actual` with `expected` under `policy`; `Err` describes the first
/// differences (status, stdout, stderr, then each differing file).
pub fn compare(expected: &Outcome, actual: &Outcome, policy: Policy) -> Result<(), String> {
    let mut msg = String::new();
    let e = expected.who;
    let a = actual.who;
    if policy.full {
        if expected.status != actual.status {
            let _ = writeln!(
                msg,
                "status: {e}: {}, {a}: {}",
                expected.status, actual.status
            );
        }
        if expected.stdout != actual.stdout {
            let _ = writeln!(
                msg,
                "stdout differs:\n{}",
                diff_text(e, &expected.stdout, a, &actual.stdout)
            );
        }
        if expected.stderr != actual.stderr {
            let _ = writeln!(
                msg,
                "stderr differs:\n{}",
                diff_text(e, &expected.stderr, a, &actual.stderr)
            );
        }
    } else if policy.stdout_minus_weakdep {
        let x = strip_weakdep_block(&expected.stdout);
        let y = strip_weakdep_block(&actual.stdout);
        if x != y {
            let _ = writeln!(
                msg,
                "stdout (minus weakdep) differs:\n{}",
                diff_text(e, &x, a, &y)
            );
        }
    }
    let wanted = |k: &str| {
        policy.full
            || (TEXT_FILES.contains(&basename(k))
                && (policy.weakdep || basename(k) != "modules.weakdep"))
    };
    let keys: std::collections::BTreeSet<&String> = expected
        .files
        .keys()
        .chain(actual.files.keys())
        .filter(|k| wanted(k))
        .collect();
    for k in keys {
        match (expected.files.get(k), actual.files.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(Effect::Written(x, mx)), Some(Effect::Written(y, my))) => {
                if x != y {
                    let d = if TEXT_FILES.contains(&basename(k)) {
                        diff_text(e, x, a, y)
                    } else {
                        diff_bin(e, x, a, y)
                    };
                    let _ = writeln!(msg, "{k} differs:\n{d}");
                }
                if mx != my && policy.full {
                    let _ = writeln!(msg, "{k}: mode {e}: {mx:o}, {a}: {my:o}");
                }
            }
            (x, y) => {
                let _ = writeln!(msg, "{k}: {e}: {}, {a}: {}", effect_str(x), effect_str(y));
            }
        }
    }
    if msg.is_empty() {
        Ok(())
    } else {
        Err(msg)
    }
}

pub(super) fn effect_str(e: Option<&Effect>) -> String {
    match e {
        None => "untouched".into(),
        Some(Effect::Written(c, m)) => format!("written ({} bytes, mode {m:o})", c.len()),
        Some(Effect::Removed) => "removed".into(),
        Some(Effect::NewDir) => "created directory".into(),
    }
}

/// First differing line with a little context.
pub fn diff_text(ename: &str, x: &[u8], aname: &str, y: &[u8]) -> String {
    let xs: Vec<&[u8]> = x.split_inclusive(|&b| b == b'\n').collect();
    let ys: Vec<&[u8]> = y.split_inclusive(|&b| b == b'\n').collect();
    let n = xs.iter().zip(ys.iter()).take_while(|(p, q)| p == q).count();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  ({ename}: {} lines/{} bytes, {aname}: {} lines/{} bytes; first difference at line {})",
        xs.len(),
        x.len(),
        ys.len(),
        y.len(),
        n + 1
    );
    for l in &xs[n.saturating_sub(3)..n] {
        let _ = writeln!(s, "   {}", show(l));
    }
    for l in xs.iter().skip(n).take(4) {
        let _ = writeln!(s, "  -{}", show(l));
    }
    for l in ys.iter().skip(n).take(4) {
        let _ = writeln!(s, "  +{}", show(l));
    }
    let _ = writeln!(s, "  (- = {ename}, + = {aname})");
    s
}

fn show(l: &[u8]) -> String {
    let (body, nl) = match l.strip_suffix(b"\n") {
        Some(b) => (b, ""),
        None => (l, "[no newline]"),
    };
    format!("{}{nl}", clip(body, 400))
}

/// At most `max` bytes of `b` (lossy UTF-8), with a marker when cut.
pub fn clip(b: &[u8], max: usize) -> String {
    if b.len() <= max {
        String::from_utf8_lossy(b).into_owned()
    } else {
        format!(
            "{}…[{} more bytes]",
            String::from_utf8_lossy(&b[..max]),
            b.len() - max
        )
    }
}

fn diff_bin(ename: &str, x: &[u8], aname: &str, y: &[u8]) -> String {
    let n = x.iter().zip(y.iter()).take_while(|(p, q)| p == q).count();
    let start = n.saturating_sub(8) & !7;
    let hex = |v: &[u8]| {
        let end = (start + 32).min(v.len());
        v.get(start..end)
            .unwrap_or(&[])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "  ({ename}: {} bytes, {aname}: {} bytes; first difference at offset {n:#x})\n  -{start:06x}: {}\n  +{start:06x}: {}\n",
        x.len(),
        y.len(),
        hex(x),
        hex(y)
    )
}
