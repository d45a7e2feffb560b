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

/// Our `depmod` binary: `DEPMOD_UNDER_TEST` when set (`cargo xtask test` points it
/// at the static `no_std` dist binary for a second pass), else the one cargo built.
pub fn ours() -> Depmod {
    Depmod {
        kind: Kind::Ours,
        path: our_binary(),
    }
}

/// The path behind [`ours`].
pub fn our_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("DEPMOD_UNDER_TEST").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    match option_env!("CARGO_BIN_EXE_depmod") {
        Some(p) => PathBuf::from(p),
        None => panic!("our depmod binary was not built (needs the `host` feature)"),
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

/// The `LD_PRELOAD` shim (`sorted_readdir.c`, built once with the system C compiler)
/// under which the kmod oracles run: it makes `readdir` return each directory's
/// entries in name order, the order in which our depmod walks the tree. kmod leaves
/// the winner among equally ranked duplicates, and the order of its messages about
/// entries, to `readdir`; with the shim both are kmod's answer for our walk.
pub fn sorted_readdir() -> PathBuf {
    static P: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = P.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/sorted_readdir.c");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/oracle");
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let out = dir.join("sorted-readdir.so");
        // Built under a private name and renamed: test processes may race here.
        let tmp = dir.join(format!("sorted-readdir.so.{}", std::process::id()));
        let st = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
            .arg(&tmp)
            .arg(&src)
            .arg("-ldl")
            .status()
            .map_err(|e| format!("cannot run cc for {}: {e}", src.display()))?;
        if !st.success() {
            return Err(format!("cc {} failed: {st}", src.display()));
        }
        fs::rename(&tmp, &out).map_err(|e| e.to_string())?;
        Ok(out)
    });
    match r {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
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
    if bin.kind != Kind::Ours {
        cmd.env("LD_PRELOAD", sorted_readdir());
    }
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
    /// Module files that ours reads differently from kmod, by intent (README
    /// "Differences from kmod"): the oracles run on the tree with each replaced by its
    /// stand-in, see [`Subst`].
    pub substs: Vec<Subst>,
}

impl Default for Diff {
    fn default() -> Self {
        Diff {
            run: RunOpts::default(),
            v30: true,
            order_file: None,
            mask_pointers: false,
            substs: Vec::new(),
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
    fn changes_tree(&self) -> bool {
        self.oracle_rel != self.rel || self.oracle_content.is_some()
    }
}

/// A file saved while its stand-in is in place.
struct Saved {
    path: PathBuf,
    stand_in: PathBuf,
    content: Vec<u8>,
    mode: u32,
    mtime: SystemTime,
}

/// Put every stand-in in place (same mode and mtime as the original).
fn apply_substs(root: &Path, substs: &[Subst]) -> Vec<Saved> {
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

fn undo_substs(saved: Vec<Saved>) {
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
struct PathMap {
    /// (stand-in, original) absolute paths.
    abs: Vec<(Vec<u8>, Vec<u8>)>,
    /// (stand-in, original) paths relative to `<root>/lib/modules/<kver>/`.
    rel: Vec<(Vec<u8>, Vec<u8>)>,
}

impl PathMap {
    fn new(root: &Path, substs: &[Subst]) -> PathMap {
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
    fn map_outcome(&self, o: &mut Outcome) {
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
fn settle_dep_bin(map: &PathMap, expected: &mut Outcome, actual: &Outcome, msg: &mut String) {
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
fn expect_decompress_errors(root: &Path, substs: &[Subst], stderr: &[u8]) -> Vec<u8> {
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

// ---------------------------------------------------------------------------------------
// The differential run

/// Run kmod 34.2, the subject and (optionally) kmod 30 on the same tree and compare:
/// subject vs 34.2 byte for byte (text-only when the subject is kmod 30), subject vs
/// kmod 30 on the text files. Returns the kmod 34.2 outcome (stand-in paths mapped
/// back, see [`Subst`]), or the description of every mismatch.
///
/// Where ours differs from kmod by intent (README "Differences from kmod"), ours is
/// checked against its documented behaviour instead:
/// * A, B, C: the oracles run on stand-ins (`d.substs`, see [`Subst`]);
/// * D: kmod's `Module index: bad character` FATAL: ours leaves the key out and
///   writes the rest (see [`check_index_fatal`]);
/// * E: kmod's `DEBUG:` lines (`-vvv`) are not expected from ours;
/// * kmod aborting or looping in its cycle report: see [`check_crash_equivalent`].
pub fn differential<S: AsRef<OsStr>>(root: &Path, args: &[S], d: &Diff) -> Result<Outcome, String> {
    let k34 = kmod34();
    let subj = subject();
    let self_test = subj.kind == Kind::Kmod30;
    let changed = d.substs.iter().any(Subst::changes_tree);
    // kmod 30 runs on the stand-ins unless it reads every original as ours does.
    let v30_on_stand_ins = changed && d.substs.iter().any(|s| !s.v30_as_is);
    let paths = PathMap::new(root, &d.substs);

    // The oracles' runs on the stand-ins.
    let saved = if changed {
        apply_substs(root, &d.substs)
    } else {
        Vec::new()
    };
    let mut o34 = run(&k34, args, root, &d.run);
    let need30 = d.v30 && (self_test || !o34.status.crashed());
    let mut o30 = (need30 && v30_on_stand_ins).then(|| {
        let mut o = run_v30(args, root, d.order_file.as_deref(), &d.run);
        paths.map_outcome(&mut o);
        o
    });
    undo_substs(saved);
    paths.map_outcome(&mut o34);
    if self_test && !d.v30 {
        // Self-test mode, and the scenario is not meant for kmod 30.
        return Ok(o34);
    }
    if need30 && o30.is_none() {
        o30 = Some(run_v30(args, root, d.order_file.as_deref(), &d.run));
    }

    let mut os = if self_test {
        o30.clone().unwrap()
    } else {
        run(&subj, args, root, &d.run)
    };
    if d.mask_pointers {
        o34.stderr = mask_pointers(&o34.stderr);
        os.stderr = mask_pointers(&os.stderr);
    }
    // What ours prints instead of kmod (B, E); the returned outcome stays kmod's.
    let mut want = o34.clone();
    if !self_test {
        want.stderr = strip_debug(&expect_decompress_errors(root, &d.substs, &want.stderr));
    }
    let mut msg = String::new();
    let cmdline = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    if want.status.crashed() && !crashed_in_cycles(&want) {
        // kmod died elsewhere (libkmod-elf assertions on malformed files): ours must
        // just survive.
        if os.status.crashed() && os.who != "kmod 30" {
            let _ = writeln!(
                msg,
                "{} {} ({} {})",
                os.who, os.status, want.who, want.status
            );
        }
    } else if want.status.crashed() {
        if let Err(e) = check_crash_equivalent(&want, &os) {
            let _ = write!(
                msg,
                "{} vs {} ({} {}):\n{e}",
                os.who, want.who, want.who, want.status
            );
        }
    } else if index_fatal(&want) {
        // D (kmod 30 silently writes a corrupt index: nothing to compare with).
        if !self_test {
            if let Err(e) = check_index_fatal(&want, &os) {
                let _ = write!(msg, "{} vs {} (index FATAL):\n{e}", os.who, want.who);
            }
        }
    } else {
        let policy = if self_test {
            Policy::V30
        } else {
            settle_dep_bin(&paths, &mut want, &os, &mut msg);
            Policy::FULL
        };
        if let Err(e) = compare(&want, &os, policy) {
            let _ = write!(msg, "{} vs {}:\n{e}", os.who, want.who);
        } else if self_test
            && std::env::var_os("DEPMOD_SELFTEST_STDERR").is_some()
            && (want.stderr != os.stderr || want.status != os.status)
        {
            // Informational (self-test): kmod 30 and 34.2 differ on stderr/status.
            let e = format!(
                "status {} / {}\n{}",
                want.status,
                os.status,
                diff_text(want.who, &want.stderr, os.who, &os.stderr)
            );
            eprintln!("NOTE stderr/status differ: depmod {cmdline}\n{e}");
        }
        if !self_test {
            if let Some(o30) = o30.as_ref().filter(|o| !o.status.crashed()) {
                if let Err(e) = compare(o30, &os, Policy::V30) {
                    let _ = write!(msg, "{} vs {} (text files):\n{e}", os.who, o30.who);
                }
            }
        }
    }
    if msg.is_empty() {
        Ok(o34)
    } else {
        let stand_ins = d
            .substs
            .iter()
            .map(|s| {
                format!(
                    "  {}{}{}\n",
                    s.rel,
                    if s.changes_tree() {
                        format!(" → oracles: {}", s.oracle_rel)
                    } else {
                        String::new()
                    },
                    s.ours_error
                        .as_deref()
                        .map(|e| format!(" (ours: {e})"))
                        .unwrap_or_default()
                )
            })
            .collect::<String>();
        Err(format!(
            "depmod {cmdline}\n{msg}{}\n--- {} stderr:\n{}--- {} stderr:\n{}",
            if stand_ins.is_empty() {
                String::new()
            } else {
                format!("intended differences:\n{stand_ins}")
            },
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
