//! What ours must do where it does not do what kmod does: where kmod dies in its cycle
//! report (abort or endless loop), and where ours differs by intent (README
//! "Differences from kmod", A to E).

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::compare::{basename, diff_text, effect_str, find, TEXT_FILES};
use super::outcome::{Effect, Outcome, Status};

// ---------------------------------------------------------------------------------------
// kmod dying in its cycle report

/// The "Cycle detected" lines of a stderr.
pub fn cycle_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.starts_with("depmod: ERROR: Cycle detected: "))
        .map(str::to_string)
        .collect()
}

/// Complete lines (with their `\n`) of a captured stream; a cut-off last line is
/// dropped.
fn complete_lines(b: &[u8]) -> Vec<&[u8]> {
    b.split_inclusive(|&c| c == b'\n')
        .filter(|l| l.ends_with(b"\n"))
        .collect()
}

fn is_cycle_line(l: &[u8]) -> bool {
    l.starts_with(b"depmod: ERROR: Cycle detected: ")
}

/// Did kmod die in its cycle report (assertion in `depmod_report_cycles_from_root`, or
/// killed after the timeout)?
pub fn crashed_in_cycles(o: &Outcome) -> bool {
    match o.status {
        Status::Timeout => true,
        Status::Signal(_) => {
            find(&o.stderr, b"depmod_report_cycles_from_root").is_some()
                || find(&o.stderr, b"Cycle detected").is_some()
        }
        Status::Exit(_) => false,
    }
}

/// What ours prints when it gives up reporting cycles that kmod cannot report.
pub const CYCLES_TOO_INTERLOCKED: &[u8] = b"depmod: ERROR: Dependency cycles are too interlocked to report them all (kmod would abort or loop here); nothing was written\n";

/// When kmod 34.2 aborts or hangs in its cycle report, the subject must: exit 1, print
/// on stderr what kmod printed before dying (every line but the assertion; after a
/// timeout, a prefix of kmod's lines is enough: kmod prints ever longer "Cycle
/// detected" lines, ours stops after a bounded number of names; if ours printed all
/// kmod managed to print before the timeout, further cycle lines are accepted), then
/// [`CYCLES_TOO_INTERLOCKED`], print the same stdout, and write nothing.
pub fn check_crash_equivalent(oracle: &Outcome, s: &Outcome) -> Result<(), String> {
    if s.kind_is_crash_tolerant() {
        return Ok(());
    }
    let mut msg = String::new();
    if s.status != Status::Exit(1) {
        let _ = writeln!(
            msg,
            "{} {}: expected exit 1 ({} {})",
            s.who, s.status, oracle.who, oracle.status
        );
    }
    let mut want = complete_lines(&oracle.stderr);
    if oracle.status != Status::Timeout {
        // Drop the assertion message.
        want.retain(|l| find(l, b"Assertion").is_none());
    }
    let got = complete_lines(&s.stderr);
    let k = want
        .iter()
        .zip(got.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let first_cycle = want
        .iter()
        .position(|l| is_cycle_line(l))
        .unwrap_or(want.len());
    let rest = &got[k..];
    let ok = match rest.split_last() {
        Some((last, extra)) if *last == CYCLES_TOO_INTERLOCKED => {
            if oracle.status == Status::Timeout {
                k >= first_cycle.min(want.len())
                    && (extra.is_empty()
                        || (k == want.len() && extra.iter().all(|l| is_cycle_line(l))))
            } else {
                k == want.len() && extra.is_empty()
            }
        }
        _ => false,
    };
    if !ok {
        let _ = writeln!(
            msg,
            "stderr must be what {} printed before dying ({} lines{}), then the line {:?}:\n{}",
            oracle.who,
            want.len(),
            if oracle.status == Status::Timeout {
                ", or a prefix of it"
            } else {
                ""
            },
            String::from_utf8_lossy(CYCLES_TOO_INTERLOCKED).trim_end(),
            diff_text(oracle.who, &want.concat(), s.who, &s.stderr)
        );
    }
    if s.stdout != oracle.stdout {
        let _ = writeln!(
            msg,
            "stdout differs:\n{}",
            diff_text(oracle.who, &oracle.stdout, s.who, &s.stdout)
        );
    }
    if !s.files.is_empty() {
        let _ = writeln!(
            msg,
            "files written: {:?}",
            s.files.keys().collect::<Vec<_>>()
        );
    }
    if msg.is_empty() {
        Ok(())
    } else {
        Err(msg)
    }
}

impl Outcome {
    fn kind_is_crash_tolerant(&self) -> bool {
        // kmod 30 as a subject dies the same way kmod 34.2 does.
        self.who == "kmod 30" && self.status.crashed()
    }
}

// ---------------------------------------------------------------------------------------
// Intended differences (README "Differences from kmod")

/// A module file that ours reads otherwise than kmod 34.2 (Debian's build, without
/// zlib) does, by intent:
///
/// * A — gzip (`.ko.gz`, or gzip content in any module file) is decompressed by ours;
/// * B — a stream that cannot be decompressed gets one line from ours,
///   `failed to load symbols from <path>: corrupt|truncated <format> data`, where kmod
///   prints its decompressor's lines and `…: Invalid argument`;
/// * C — zstd frames without a content size (or with content size 0) are decoded by
///   ours (and by kmod 30), not by kmod 34.2.
///
/// The oracles run on the tree with the file replaced by a stand-in they read as ours
/// reads the original (the same payload, plain or in xz; for B a stream damaged the same
/// way), possibly under another name (`x.ko.gz` → `x.ko`); their outcome is then mapped
/// back: stand-in paths become the original paths (in stdout, stderr, the text files
/// and the values of modules.dep.bin, which is compared by content), and for B kmod's
/// decompressor lines are dropped and its `Invalid argument` line becomes ours.
#[derive(Clone, Debug)]
pub struct Subst {
    /// The file in the tree, relative to the tree root.
    pub rel: String,
    /// Where the oracles find the stand-in, relative to the tree root (may be `rel`).
    pub oracle_rel: String,
    /// The stand-in's content (`None`: the file as it is).
    pub oracle_content: Option<Vec<u8>>,
    /// B: ours cannot decompress the file; the reason ours gives
    /// (`corrupt xz data`, `truncated zstd data`, …).
    pub ours_error: Option<String>,
    /// kmod 30 reads the file as it is the way ours does (C: zstd without content
    /// size), so kmod 30 can run on the tree itself.
    pub v30_as_is: bool,
}

impl Subst {
    pub(super) fn changes_tree(&self) -> bool {
        self.oracle_rel != self.rel || self.oracle_content.is_some()
    }
}

/// A file saved while its stand-in is in place.
pub(super) struct Saved {
    path: PathBuf,
    stand_in: PathBuf,
    content: Vec<u8>,
    mode: u32,
    mtime: SystemTime,
}

/// Put every stand-in in place (same mode and mtime as the original).
pub(super) fn apply_substs(root: &Path, substs: &[Subst]) -> Vec<Saved> {
    let mut saved = Vec::new();
    for s in substs.iter().filter(|s| s.changes_tree()) {
        let path = root.join(&s.rel);
        let stand_in = root.join(&s.oracle_rel);
        let content = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let md = fs::metadata(&path).unwrap();
        let (mode, mtime) = (md.permissions().mode() & 0o7777, md.modified().unwrap());
        assert!(
            stand_in == path || fs::symlink_metadata(&stand_in).is_err(),
            "stand-in {} for {} already exists",
            stand_in.display(),
            path.display()
        );
        fs::remove_file(&path).unwrap();
        fs::write(&stand_in, s.oracle_content.as_deref().unwrap_or(&content)).unwrap();
        fs::set_permissions(&stand_in, fs::Permissions::from_mode(mode)).unwrap();
        let f = fs::File::options().write(true).open(&stand_in).unwrap();
        f.set_modified(mtime).unwrap();
        saved.push(Saved {
            path,
            stand_in,
            content,
            mode,
            mtime,
        });
    }
    saved
}

pub(super) fn undo_substs(saved: Vec<Saved>) {
    for s in saved.into_iter().rev() {
        let _ = fs::remove_file(&s.stand_in);
        fs::write(&s.path, &s.content).unwrap();
        fs::set_permissions(&s.path, fs::Permissions::from_mode(s.mode)).unwrap();
        let f = fs::File::options().write(true).open(&s.path).unwrap();
        f.set_modified(s.mtime).unwrap();
    }
}

/// Replace each occurrence of `from` that is a whole path in `s` by `to`: not followed
/// by a path character, and (`at_token_start`) preceded by nothing, a space or a
/// newline.
fn replace_path(s: &[u8], from: &[u8], to: &[u8], at_token_start: bool) -> Vec<u8> {
    let path_char = |b: u8| b.is_ascii_alphanumeric() || b"._-+/~,".contains(&b);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(from) {
            let before = !at_token_start || i == 0 || matches!(s[i - 1], b' ' | b'\n');
            let after = s.get(i + from.len()).is_none_or(|&b| !path_char(b));
            if before && after {
                out.extend_from_slice(to);
                i += from.len();
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Stand-in paths → original paths, as kmod prints them: absolute (messages, `-v`
/// lines, external modules) and relative to DIR (modules.dep).
pub(super) struct PathMap {
    /// (stand-in, original) absolute paths.
    abs: Vec<(Vec<u8>, Vec<u8>)>,
    /// (stand-in, original) paths relative to `<root>/lib/modules/<kver>/`.
    rel: Vec<(Vec<u8>, Vec<u8>)>,
}

impl PathMap {
    pub(super) fn new(root: &Path, substs: &[Subst]) -> PathMap {
        let mut m = PathMap {
            abs: Vec::new(),
            rel: Vec::new(),
        };
        for s in substs.iter().filter(|s| s.oracle_rel != s.rel) {
            let bytes = |p: PathBuf| p.into_os_string().into_encoded_bytes();
            m.abs
                .push((bytes(root.join(&s.oracle_rel)), bytes(root.join(&s.rel))));
            // lib/modules/<kver>/<rel>
            let strip = |p: &str| {
                p.strip_prefix("lib/modules/")
                    .and_then(|r| r.split_once('/'))
                    .map(|(_, r)| r.as_bytes().to_vec())
            };
            if let (Some(a), Some(b)) = (strip(&s.oracle_rel), strip(&s.rel)) {
                m.rel.push((a, b));
            }
        }
        m
    }

    fn is_empty(&self) -> bool {
        self.abs.is_empty()
    }

    fn map(&self, s: &[u8]) -> Vec<u8> {
        let mut v = s.to_vec();
        for (a, b) in &self.abs {
            v = replace_path(&v, a, b, false);
        }
        for (a, b) in &self.rel {
            v = replace_path(&v, a, b, true);
        }
        v
    }

    /// Map stdout, stderr and the text outputs of an oracle's run on the stand-ins.
    pub(super) fn map_outcome(&self, o: &mut Outcome) {
        if self.is_empty() {
            return;
        }
        o.stdout = self.map(&o.stdout);
        o.stderr = self.map(&o.stderr);
        for (k, e) in o.files.iter_mut() {
            if let Effect::Written(c, _) = e {
                if TEXT_FILES.contains(&basename(k)) {
                    *c = self.map(c);
                }
            }
        }
    }

    /// The entries of an index with the paths in its values mapped.
    fn index_entries(&self, bytes: &[u8]) -> Result<Vec<depmod::index::Entry>, String> {
        let r = depmod::index::Reader::new(bytes).map_err(|e| format!("{e:?}"))?;
        let mut v = r.entries().map_err(|e| format!("{e:?}"))?;
        for (_, vals) in v.iter_mut() {
            for (_, val) in vals.iter_mut() {
                *val = self.map(val);
            }
        }
        Ok(v)
    }
}

/// `modules.dep.bin` of an oracle's run on renamed stand-ins holds other value strings,
/// hence another layout: when its content, paths mapped, equals ours, take our bytes as
/// expected; otherwise report the first differing entry.
pub(super) fn settle_dep_bin(
    map: &PathMap,
    expected: &mut Outcome,
    actual: &Outcome,
    msg: &mut String,
) {
    if map.is_empty() {
        return;
    }
    for (k, e) in expected.files.iter_mut() {
        if basename(k) != "modules.dep.bin" {
            continue;
        }
        let (Effect::Written(x, _), Some(Effect::Written(y, _))) = (e, actual.files.get(k)) else {
            continue;
        };
        let ex = map.index_entries(x);
        let ey = PathMap {
            abs: Vec::new(),
            rel: Vec::new(),
        }
        .index_entries(y);
        match (ex, ey) {
            (Ok(a), Ok(b)) if a == b => *x = y.clone(),
            (Ok(a), Ok(b)) => {
                let n = a.iter().zip(&b).take_while(|(p, q)| p == q).count();
                let show = |v: &[depmod::index::Entry]| {
                    v.get(n).map_or("(none)".to_string(), |(key, vals)| {
                        format!(
                            "{} = {:?}",
                            String::from_utf8_lossy(key),
                            vals.iter()
                                .map(|(p, v)| format!("{p}: {}", String::from_utf8_lossy(v)))
                                .collect::<Vec<_>>()
                        )
                    })
                };
                let _ = writeln!(
                    msg,
                    "{k} (by content, stand-in paths mapped): entry {n}: {}: {}, {}: {}",
                    expected.who,
                    show(&a),
                    actual.who,
                    show(&b)
                );
            }
            (a, b) => {
                let _ = writeln!(
                    msg,
                    "{k}: unreadable index: {}: {:?}, {}: {:?}",
                    expected.who,
                    a.err(),
                    actual.who,
                    b.err()
                );
            }
        }
    }
}

/// B: kmod's stderr as ours prints it — without kmod's decompressor lines
/// (`depmod: ERROR: xz: …`, `depmod: ERROR: zstd: …`), and with our reason in the
/// `failed to load symbols` line of each module ours cannot decompress.
pub(super) fn expect_decompress_errors(root: &Path, substs: &[Subst], stderr: &[u8]) -> Vec<u8> {
    let failing: Vec<(Vec<u8>, &str)> = substs
        .iter()
        .filter_map(|s| {
            let why = s.ours_error.as_deref()?;
            let p = root.join(&s.rel).into_os_string().into_encoded_bytes();
            Some((p, why))
        })
        .collect();
    if failing.is_empty() {
        return stderr.to_vec();
    }
    let mut out = Vec::new();
    for l in stderr.split_inclusive(|&b| b == b'\n') {
        if l.starts_with(b"depmod: ERROR: xz: ") || l.starts_with(b"depmod: ERROR: zstd: ") {
            continue;
        }
        let hit = failing.iter().find(|(p, _)| {
            let mut want = b"depmod: ERROR: failed to load symbols from ".to_vec();
            want.extend_from_slice(p);
            want.extend_from_slice(b": Invalid argument\n");
            l == want.as_slice()
        });
        match hit {
            Some((p, why)) => {
                out.extend_from_slice(b"depmod: ERROR: failed to load symbols from ");
                out.extend_from_slice(p);
                out.extend_from_slice(format!(": {why}\n").as_bytes());
            }
            None => out.extend_from_slice(l),
        }
    }
    out
}

/// E: kmod's stderr without its `DEBUG:` lines (`-vvv`; not emulated).
pub fn strip_debug(stderr: &[u8]) -> Vec<u8> {
    stderr
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| !l.starts_with(b"depmod: DEBUG: "))
        .flatten()
        .copied()
        .collect()
}

/// D: kmod 34.2 met a non-ASCII byte in an index key or value.
/// Did kmod stop on one key its index cannot hold (D)? `Module index: bad
/// character` (FATAL) for a byte >= 0x80; `Could not write index` for an exported
/// symbol with an empty name (its writer takes the empty string for a failure).
pub fn index_fatal(o: &Outcome) -> bool {
    index_stop(o).is_some()
}

/// Where kmod's messages about the key it stopped on begin in its stderr, and the
/// index it was writing when it names it.
fn index_stop(o: &Outcome) -> Option<(usize, Option<String>)> {
    if o.status != Status::Exit(1) {
        return None;
    }
    if let Some(at) = find(&o.stderr, b"depmod: FATAL: Module index: bad character") {
        return Some((at, None));
    }
    let marker = b"depmod: ERROR: Could not write index 'modules.symbols.bin'";
    let at = find(&o.stderr, marker)?;
    let start = find(&o.stderr, b"depmod: ERROR: output symbols: ").unwrap_or(at);
    Some((start.min(at), Some("modules.symbols.bin".to_string())))
}

/// What ours says of each key it leaves out of an index (README "Differences from
/// kmod", D).
pub const NOT_INDEXED: &[u8] = b"cannot be indexed; left out of ";

/// D: where kmod 34.2 stops with `Module index: bad character` (FATAL, exit 1), ours
/// leaves the key out, says so, and writes everything else, exit 0. Checked against
/// what kmod did before it stopped: the same stdout; kmod's stderr up to the FATAL
/// is where ours starts (once ours's own lines about left-out keys are taken out),
/// at least one such line; every file kmod had already renamed into place is
/// ours too, byte for byte, but for the text twin of the index it stopped in
/// (`modules.alias` for `modules.alias.bin`: ours leaves the key out of both); and
/// all eleven outputs are written, with no temp file left.
pub fn check_index_fatal(expected: &Outcome, actual: &Outcome) -> Result<(), String> {
    let mut msg = String::new();
    let (e, a) = (expected.who, actual.who);
    if actual.status != Status::Exit(0) {
        let _ = writeln!(msg, "status: {a}: {}, expected exit 0", actual.status);
    }
    if expected.stdout != actual.stdout {
        let _ = writeln!(
            msg,
            "stdout differs:\n{}",
            diff_text(e, &expected.stdout, a, &actual.stdout)
        );
    }
    let (stop, named) = index_stop(expected).unwrap_or((0, None));
    let before_fatal = expected.stderr.get(..stop).unwrap_or_default();
    let (left_out, rest): (Vec<&[u8]>, Vec<&[u8]>) = actual
        .stderr
        .split_inclusive(|&c| c == b'\n')
        .partition(|l| find(l, NOT_INDEXED).is_some());
    if left_out.is_empty() || !rest.concat().starts_with(before_fatal) {
        let _ = writeln!(
            msg,
            "stderr: {a} must print what {e} printed before its FATAL, with its own lines about \
             left-out keys:\n{}",
            diff_text(e, before_fatal, a, &actual.stderr)
        );
    }
    // The index kmod was writing when it stopped: its temp file stays behind.
    // The text twin of the index kmod stopped in: the index is named by the
    // temp file kmod left behind, or by its message.
    let twin_of = |index: &str| index.strip_suffix(".bin").unwrap_or(index).to_string();
    let stopped_in = expected
        .files
        .keys()
        .find_map(|k| k.strip_suffix(".<tmp>").map(twin_of))
        .or_else(|| {
            let twin = format!("/{}", twin_of(named.as_deref()?));
            expected.files.keys().find(|k| k.ends_with(&twin)).cloned()
        });
    for (k, v) in &expected.files {
        let Effect::Written(content, _) = v else {
            continue;
        };
        if k.ends_with(".<tmp>") || Some(k.as_str()) == stopped_in.as_deref() {
            continue;
        }
        if actual.files.get(k) != Some(v) {
            let _ = writeln!(
                msg,
                "{k}: {e} wrote it before its FATAL ({} bytes), {a}: {}",
                content.len(),
                effect_str(actual.files.get(k))
            );
        }
    }
    let written = actual
        .files
        .iter()
        .filter(|(k, v)| matches!(v, Effect::Written(..)) && !k.ends_with(".<tmp>"))
        .count();
    if written != 11 || actual.files.keys().any(|k| k.ends_with(".<tmp>")) {
        let _ = writeln!(
            msg,
            "{a} must write all eleven outputs and no temp file, but: {:?}",
            actual.files.keys().collect::<Vec<_>>()
        );
    }
    if msg.is_empty() {
        Ok(())
    } else {
        Err(msg)
    }
}
