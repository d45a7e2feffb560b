//! Running one depmod on a tree: its stdout, stderr and exit status, and every change
//! it made below the tree root (read from snapshots taken before and after, and undone
//! afterwards).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::kmod::{sorted_readdir, Depmod, Kind};

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
