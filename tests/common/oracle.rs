//! The reference binaries (kmod 34.2, kmod 30) and the machinery to run a depmod on a
//! tree, capture everything it did, undo it, and compare two runs.
//!
//! * `KMOD34_DEPMOD` overrides the kmod 34.2 path (default
//!   `<repo>/target/oracle/depmod-34.2`, made by `cargo xtask oracle`).
//! * `KMOD30_DEPMOD` overrides the kmod 30 path (default `/usr/sbin/depmod`, Debian 12's
//!   `kmod` package).
//! * `DEPMOD_SUBJECT` selects the binary under test: `ours` (default, our `depmod`),
//!   `kmod30` (harness self-test: kmod 30 is compared with kmod 34.2 on the text files,
//!   which validates the ELF generator, the trees and this module without our binary).
//!
//! Missing oracles make the tests fail (never pass silently).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

/// Which implementation a [`Depmod`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ours,
    Kmod34,
    Kmod30,
}

#[derive(Clone, Debug)]
pub struct Depmod {
    pub kind: Kind,
    pub path: PathBuf,
}

impl Depmod {
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Ours => "ours",
            Kind::Kmod34 => "kmod 34.2",
            Kind::Kmod30 => "kmod 30",
        }
    }
}

fn version_line(path: &Path) -> Result<String, String> {
    let out = Command::new(path)
        .arg("-V")
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

/// kmod 34.2. Panics (test failure) if it is missing or is another version.
pub fn kmod34() -> Depmod {
    static P: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = P.get_or_init(|| {
        let path = match std::env::var_os("KMOD34_DEPMOD") {
            Some(p) => PathBuf::from(p),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/oracle/depmod-34.2"),
        };
        if !path.exists() {
            return Err(format!(
                "kmod 34.2 oracle not found at {}: run `cargo xtask oracle` (or set KMOD34_DEPMOD)",
                path.display()
            ));
        }
        let v = version_line(&path)?;
        if v != "kmod version 34.2" {
            return Err(format!(
                "{} is not kmod 34.2 (-V says {v:?}); run `cargo xtask oracle` or set KMOD34_DEPMOD",
                path.display()
            ));
        }
        Ok(path)
    });
    match r {
        Ok(p) => Depmod {
            kind: Kind::Kmod34,
            path: p.clone(),
        },
        Err(e) => panic!("{e}"),
    }
}

/// kmod 30 (Debian 12). Panics (test failure) if it is missing or another version.
pub fn kmod30() -> Depmod {
    static P: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = P.get_or_init(|| {
        let path = match std::env::var_os("KMOD30_DEPMOD") {
            Some(p) => PathBuf::from(p),
            None => PathBuf::from("/usr/sbin/depmod"),
        };
        if !path.exists() {
            return Err(format!(
                "kmod 30 oracle not found at {}: run `apt-get install kmod` (Debian 12) or set KMOD30_DEPMOD",
                path.display()
            ));
        }
        let v = version_line(&path)?;
        if v != "kmod version 30" {
            return Err(format!(
                "{} is not kmod 30 (-V says {v:?}); install Debian 12's kmod or set KMOD30_DEPMOD",
                path.display()
            ));
        }
        Ok(path)
    });
    match r {
        Ok(p) => Depmod {
            kind: Kind::Kmod30,
            path: p.clone(),
        },
        Err(e) => panic!("{e}"),
    }
}

/// Our `depmod` binary.
pub fn ours() -> Depmod {
    match option_env!("CARGO_BIN_EXE_depmod") {
        Some(p) => Depmod {
            kind: Kind::Ours,
            path: PathBuf::from(p),
        },
        None => panic!("our depmod binary was not built (needs the `std` feature)"),
    }
}

/// The binary under test (`DEPMOD_SUBJECT`, default ours).
pub fn subject() -> Depmod {
    match std::env::var("DEPMOD_SUBJECT").as_deref() {
        Err(_) | Ok("") | Ok("ours") => ours(),
        Ok("kmod30") => kmod30(),
        Ok(other) => panic!("DEPMOD_SUBJECT={other:?}: expected `ours` or `kmod30`"),
    }
}

// ---------------------------------------------------------------------------------------
// Running

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Exit(i32),
    /// Killed by a signal (shell-style code 128 + sig).
    Signal(i32),
    /// Killed by us after the timeout.
    Timeout,
}

impl Status {
    pub fn code(self) -> i32 {
        match self {
            Status::Exit(c) => c,
            Status::Signal(s) => 128 + s,
            Status::Timeout => -1,
        }
    }
    /// Aborted (assertion) or hung.
    pub fn crashed(self) -> bool {
        !matches!(self, Status::Exit(_))
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Exit(c) => write!(f, "exit {c}"),
            Status::Signal(s) => write!(f, "signal {s} ({})", 128 + s),
            Status::Timeout => write!(f, "timeout"),
        }
    }
}

/// A change a run made below the tree root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// File created or changed: content and permission bits.
    Written(Vec<u8>, u32),
    Removed,
    NewDir,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub who: &'static str,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: Status,
    /// Changes below the tree root, keyed by path relative to it. Temp-file suffixes
    /// (`modules.dep.<pid>.<usec>.<sec>`) are replaced by `.<tmp>`.
    pub files: BTreeMap<String, Effect>,
}

impl Outcome {
    /// Content of a written file whose relative path ends with `name`.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files.iter().find_map(|(k, v)| match v {
            Effect::Written(c, _) if k == name || k.ends_with(&format!("/{name}")) => {
                Some(c.as_slice())
            }
            _ => None,
        })
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

#[derive(Clone, Debug)]
pub struct RunOpts {
    pub cwd: Option<PathBuf>,
    pub timeout: Duration,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
}

impl Default for RunOpts {
    fn default() -> Self {
        RunOpts {
            cwd: None,
            timeout: Duration::from_secs(10),
            env: Vec::new(),
        }
    }
}

/// Run `bin args…`, capturing stdout, stderr, the status, with a timeout (the process is
/// killed when it expires). Does not look at the file system.
pub fn run_raw<S: AsRef<OsStr>>(
    bin: &Depmod,
    args: &[S],
    opts: &RunOpts,
) -> (Vec<u8>, Vec<u8>, Status) {
    let mut cmd = Command::new(&bin.path);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .env_remove("KMOD_LOG")
        .env_remove("LANGUAGE");
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    if let Some(cwd) = &opts.cwd {
        cmd.current_dir(cwd);
        // get_current_dir_name() prefers $PWD when it names the cwd.
        cmd.env("PWD", cwd);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} ({}): {e}", bin.name(), bin.path.display()));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || read_capped(&mut out));
    let t_err = std::thread::spawn(move || read_capped(&mut err));
    let start = Instant::now();
    let mut nap = Duration::from_micros(200);
    let status = loop {
        match child.try_wait().expect("wait") {
            Some(st) => {
                break match (st.code(), st.signal()) {
                    (Some(c), _) => Status::Exit(c),
                    (None, Some(s)) => Status::Signal(s),
                    _ => Status::Exit(-1),
                };
            }
            None => {
                if start.elapsed() > opts.timeout {
                    let _ = child.kill(); // our own child, by pid
                    let _ = child.wait();
                    break Status::Timeout;
                }
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(10));
            }
        }
    };
    (t_out.join().unwrap(), t_err.join().unwrap(), status)
}

/// Read everything, keeping at most 8 MiB (a hanging kmod can print without end).
fn read_capped(r: &mut impl Read) -> Vec<u8> {
    const CAP: usize = 8 << 20;
    let mut v = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = CAP.saturating_sub(v.len());
                v.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    v
}

/// Run a depmod on the tree below `root` and return everything it did; afterwards the
/// tree is restored to its state before the run (outputs removed, changed files restored
/// with their old content, mode and mtime).
pub fn run<S: AsRef<OsStr>>(bin: &Depmod, args: &[S], root: &Path, opts: &RunOpts) -> Outcome {
    let before = Snapshot::take(root);
    let (stdout, stderr, status) = run_raw(bin, args, opts);
    let after = Snapshot::take(root);
    let files = before.effects(&after);
    before.restore(root, &after);
    Outcome {
        who: bin.name(),
        stdout,
        stderr,
        status,
        files,
    }
}

// ---------------------------------------------------------------------------------------
// Snapshots of a directory tree

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    File {
        content: Vec<u8>,
        mode: u32,
        mtime: SystemTime,
    },
    Dir,
    Link(PathBuf),
}

/// Full state of a directory tree (small trees only: reads every file).
pub struct Snapshot {
    nodes: BTreeMap<PathBuf, Node>,
}

impl Snapshot {
    pub fn take(root: &Path) -> Snapshot {
        let mut nodes = BTreeMap::new();
        fn walk(root: &Path, rel: &Path, nodes: &mut BTreeMap<PathBuf, Node>) {
            let Ok(rd) = fs::read_dir(root.join(rel)) else {
                return;
            };
            for e in rd.flatten() {
                let r = rel.join(e.file_name());
                let p = root.join(&r);
                let Ok(md) = fs::symlink_metadata(&p) else {
                    continue;
                };
                let ft = md.file_type();
                if ft.is_symlink() {
                    nodes.insert(r, Node::Link(fs::read_link(&p).unwrap_or_default()));
                } else if ft.is_dir() {
                    nodes.insert(r.clone(), Node::Dir);
                    walk(root, &r, nodes);
                } else if ft.is_file() {
                    let content = fs::read(&p).unwrap_or_default();
                    nodes.insert(
                        r,
                        Node::File {
                            content,
                            mode: md.permissions().mode() & 0o7777,
                            mtime: md.modified().unwrap(),
                        },
                    );
                }
            }
        }
        walk(root, Path::new(""), &mut nodes);
        Snapshot { nodes }
    }

    fn effects(&self, after: &Snapshot) -> BTreeMap<String, Effect> {
        let mut m = BTreeMap::new();
        for (p, n) in &after.nodes {
            let old = self.nodes.get(p);
            let eff = match n {
                Node::File { content, mode, .. } => match old {
                    Some(Node::File {
                        content: c0,
                        mode: m0,
                        ..
                    }) if c0 == content && m0 == mode => None,
                    _ => Some(Effect::Written(content.clone(), *mode)),
                },
                Node::Dir => match old {
                    Some(Node::Dir) => None,
                    _ => Some(Effect::NewDir),
                },
                Node::Link(t) => match old {
                    Some(Node::Link(t0)) if t0 == t => None,
                    _ => Some(Effect::Written(
                        t.as_os_str().as_encoded_bytes().to_vec(),
                        0,
                    )),
                },
            };
            if let Some(e) = eff {
                m.insert(normalize_tmp(&p.display().to_string()), e);
            }
        }
        for p in self.nodes.keys() {
            if !after.nodes.contains_key(p) {
                m.insert(p.display().to_string(), Effect::Removed);
            }
        }
        m
    }

    /// Bring the tree back to this snapshot (given the current state `now`).
    fn restore(&self, root: &Path, now: &Snapshot) {
        // Remove what is new or of another kind, deepest first.
        for (p, n) in now.nodes.iter().rev() {
            let keep = match (self.nodes.get(p), n) {
                (Some(Node::Dir), Node::Dir) => true,
                (Some(Node::File { .. }), Node::File { .. }) => true,
                (Some(Node::Link(a)), Node::Link(b)) => a == b,
                _ => false,
            };
            if !keep {
                let full = root.join(p);
                match n {
                    Node::Dir => {
                        let _ = fs::remove_dir_all(&full);
                    }
                    _ => {
                        let _ = fs::remove_file(&full);
                    }
                }
            }
        }
        // Recreate / restore the old state.
        for (p, n) in &self.nodes {
            let full = root.join(p);
            match n {
                Node::Dir => {
                    if !full.is_dir() {
                        fs::create_dir_all(&full).unwrap();
                    }
                }
                Node::Link(t) => {
                    if fs::symlink_metadata(&full).is_err() {
                        std::os::unix::fs::symlink(t, &full).unwrap();
                    }
                }
                Node::File {
                    content,
                    mode,
                    mtime,
                } => {
                    if now.nodes.get(p) == Some(n) {
                        continue;
                    }
                    fs::write(&full, content).unwrap();
                    fs::set_permissions(&full, fs::Permissions::from_mode(*mode)).unwrap();
                    let f = fs::File::options().write(true).open(&full).unwrap();
                    f.set_modified(*mtime).unwrap();
                }
            }
        }
    }
}

/// `modules.dep.1234.567890.1700000000` → `modules.dep.<tmp>`; `tmpfileAbC123` →
/// `tmpfile<tmp>`.
fn normalize_tmp(p: &str) -> String {
    let (dir, base) = match p.rfind('/') {
        Some(i) => (&p[..=i], &p[i + 1..]),
        None => ("", p),
    };
    let parts: Vec<&str> = base.split('.').collect();
    if parts.len() >= 4
        && parts[parts.len() - 3..]
            .iter()
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    {
        return format!("{dir}{}.<tmp>", parts[..parts.len() - 3].join("."));
    }
    if base.starts_with("tmpfile") && base.len() == 13 {
        return format!("{dir}tmpfile<tmp>");
    }
    p.to_string()
}

// ---------------------------------------------------------------------------------------
// Comparing

pub const TEXT_FILES: &[&str] = &[
    "modules.dep",
    "modules.alias",
    "modules.softdep",
    "modules.weakdep",
    "modules.symbols",
    "modules.devname",
];

fn basename(p: &str) -> &str {
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

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
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

fn effect_str(e: Option<&Effect>) -> String {
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

// ---------------------------------------------------------------------------------------
// modules.order for kmod 30

/// kmod 30 uses the *last* occurrence of a duplicated modules.order line, 34.2 the first:
/// drop later duplicates so that kmod 30 computes what 34.2 does. A final chunk without
/// newline is kept (it disables reordering in both versions).
pub fn dedup_order(content: &[u8]) -> Vec<u8> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in content.split_inclusive(|&b| b == b'\n') {
        if !line.ends_with(b"\n") || seen.insert(line.to_vec()) {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Run kmod 30 with `order_file` deduplicated for the duration of the run.
pub fn run_v30<S: AsRef<OsStr>>(
    args: &[S],
    root: &Path,
    order_file: Option<&Path>,
    opts: &RunOpts,
) -> Outcome {
    let v30 = kmod30();
    let saved = order_file.and_then(|p| fs::read(p).ok().map(|c| (p, c)));
    if let Some((p, c)) = &saved {
        let d = dedup_order(c);
        if &d != c {
            let md = fs::metadata(p).unwrap();
            fs::write(p, &d).unwrap();
            let o = run(&v30, args, root, opts);
            fs::write(p, c).unwrap();
            let f = fs::File::options().write(true).open(p).unwrap();
            f.set_modified(md.modified().unwrap()).unwrap();
            return o;
        }
    }
    run(&v30, args, root, opts)
}

// ---------------------------------------------------------------------------------------
// The differential check

#[derive(Clone, Debug)]
pub struct Diff {
    pub run: RunOpts,
    /// Also compare with kmod 30 (text files).
    pub v30: bool,
    /// modules.order to deduplicate for kmod 30.
    pub order_file: Option<PathBuf>,
    /// Replace hex pointers (`0x55d0c0ffee00`) in stderr before comparing (`-vv` prints
    /// libkmod INFO lines with pointer values).
    pub mask_pointers: bool,
}

impl Default for Diff {
    fn default() -> Self {
        Diff {
            run: RunOpts::default(),
            v30: true,
            order_file: None,
            mask_pointers: false,
        }
    }
}

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

/// When kmod 34.2 aborts or hangs in its cycle report, the subject must: exit 1, print
/// on stderr what kmod printed before dying (every line but the assertion; after a
/// timeout, a prefix of kmod's lines is enough if ours gives up earlier), then at
/// least one error line of its own that is not a "Cycle detected" line, print the same
/// stdout, and write nothing.
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
    let ok = if oracle.status == Status::Timeout {
        k >= first_cycle.min(want.len())
            && !rest.is_empty()
            && (k == want.len() || !rest.iter().any(|l| is_cycle_line(l)))
            && !rest.iter().all(|l| is_cycle_line(l))
    } else {
        k == want.len() && !rest.is_empty() && !rest.iter().any(|l| is_cycle_line(l))
    };
    if !ok {
        let _ = writeln!(
            msg,
            "stderr must be what {} printed before dying ({} lines{}), then an error line:\n{}",
            oracle.who,
            want.len(),
            if oracle.status == Status::Timeout {
                ", or a prefix of it"
            } else {
                ""
            },
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

/// Run kmod 34.2, the subject and (optionally) kmod 30 on the same tree and compare:
/// subject vs 34.2 byte for byte (text-only when the subject is kmod 30), subject vs
/// kmod 30 on the text files. Returns the kmod 34.2 outcome, or the description of every
/// mismatch.
pub fn differential<S: AsRef<OsStr>>(root: &Path, args: &[S], d: &Diff) -> Result<Outcome, String> {
    let k34 = kmod34();
    let subj = subject();
    let mut o34 = run(&k34, args, root, &d.run);
    if subj.kind == Kind::Kmod30 && !d.v30 {
        // Self-test mode, and the scenario is not meant for kmod 30.
        return Ok(o34);
    }
    let mut os = if subj.kind == Kind::Kmod30 {
        run_v30(args, root, d.order_file.as_deref(), &d.run)
    } else {
        run(&subj, args, root, &d.run)
    };
    if d.mask_pointers {
        o34.stderr = mask_pointers(&o34.stderr);
        os.stderr = mask_pointers(&os.stderr);
    }
    let mut msg = String::new();
    let cmdline = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    if o34.status.crashed() && !crashed_in_cycles(&o34) {
        // kmod died elsewhere (libkmod-elf assertions on malformed files): ours must
        // just survive.
        if os.status.crashed() && os.who != "kmod 30" {
            let _ = writeln!(msg, "{} {} ({} {})", os.who, os.status, o34.who, o34.status);
        }
    } else if o34.status.crashed() {
        if let Err(e) = check_crash_equivalent(&o34, &os) {
            let _ = write!(
                msg,
                "{} vs {} ({} {}):\n{e}",
                os.who, o34.who, o34.who, o34.status
            );
        }
    } else {
        let policy = if subj.kind == Kind::Kmod30 {
            Policy::V30
        } else {
            Policy::FULL
        };
        if let Err(e) = compare(&o34, &os, policy) {
            let _ = write!(msg, "{} vs {}:\n{e}", os.who, o34.who);
        } else if subj.kind == Kind::Kmod30
            && std::env::var_os("DEPMOD_SELFTEST_STDERR").is_some()
            && (o34.stderr != os.stderr || o34.status != os.status)
        {
            // Informational (self-test): kmod 30 and 34.2 differ on stderr/status.
            let e = format!(
                "status {} / {}\n{}",
                o34.status,
                os.status,
                diff_text(o34.who, &o34.stderr, os.who, &os.stderr)
            );
            let cmdline: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
            eprintln!(
                "NOTE stderr/status differ: depmod {}\n{e}",
                cmdline.join(" ")
            );
        }
        if d.v30 && subj.kind != Kind::Kmod30 {
            let o30 = run_v30(args, root, d.order_file.as_deref(), &d.run);
            if !o30.status.crashed() {
                if let Err(e) = compare(&o30, &os, Policy::V30) {
                    let _ = write!(msg, "{} vs {} (text files):\n{e}", os.who, o30.who);
                }
            }
        }
    }
    if msg.is_empty() {
        Ok(o34)
    } else {
        Err(format!(
            "depmod {cmdline}\n{msg}\n--- {} stderr:\n{}--- {} stderr:\n{}",
            o34.who,
            clip(&o34.stderr, 3000),
            os.who,
            clip(&os.stderr, 3000)
        ))
    }
}

/// `0x` followed by at least 6 hex digits → `0xPTR`.
pub fn mask_pointers(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(b"0x") {
            let n = s[i + 2..]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            if n >= 6 {
                out.extend_from_slice(b"0xPTR");
                i += 2 + n;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}
