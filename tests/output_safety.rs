//! Output safety: every index file is written to a temp file and fsynced, the temp
//! files are renamed over the old ones only when all of them are complete, then the
//! directory is fsynced.
//!
//! * SIGKILL at many points of the write phase: every output file is then the complete
//!   old one or the complete new one, and the next complete run removes the temp
//!   files the killed runs left (and no other file).
//! * A full file system and a read-only output directory: exit 1, one clear message
//!   naming the file, the old files intact, no temp file left.
//! * The order of the system calls (strace): each temp file is fsynced before the first
//!   rename, and the directory after the last one.
//!
//! The file-system cases mount a tmpfs (we are root in CI). When mounting is not
//! possible the tests fail: they never skip.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::debian::{self, KVER};
use common::OUTPUTS;

fn ours() -> PathBuf {
    common::oracle::our_binary()
}

/// `<image root>` of the cached Debian package: `-b` for the real tree.
fn debian_base() -> PathBuf {
    debian::image_root().unwrap_or_else(|e| panic!("Debian tree: {e}"))
}

/// depmod on the real tree, writing below `out` (`-o`).
fn command(out: &Path) -> Command {
    let mut c = Command::new(ours());
    c.arg("-b")
        .arg(debian_base())
        .arg("-o")
        .arg(out)
        .arg(KVER)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn outdir(out: &Path) -> PathBuf {
    out.join("lib/modules").join(KVER)
}

type Set = BTreeMap<String, Vec<u8>>;

fn read_set(dir: &Path) -> Set {
    OUTPUTS
        .iter()
        .filter_map(|n| fs::read(dir.join(n)).ok().map(|b| (n.to_string(), b)))
        .collect()
}

fn write_set(dir: &Path, set: &Set) {
    fs::create_dir_all(dir).unwrap();
    for (n, b) in set {
        fs::write(dir.join(n), b).unwrap();
    }
}

/// Names in `dir` that are not one of the outputs: temp files and anything else.
fn extra_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !OUTPUTS.contains(&n.as_str()))
        .collect();
    v.sort();
    v
}

/// The "old" set: one short line per file, which no partly written new file can be
/// (small enough to fit the tiniest tmpfs below).
fn old_set() -> Set {
    OUTPUTS
        .iter()
        .map(|n| {
            (
                n.to_string(),
                format!("# previous run's {n}\n").into_bytes(),
            )
        })
        .collect()
}

fn new_set() -> Set {
    let tmp = tempfile::tempdir().unwrap();
    let out = command(tmp.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let set = read_set(&outdir(tmp.path()));
    assert_eq!(set.len(), OUTPUTS.len());
    set
}

/// SIGKILL (what `Child::kill` sends) to our own child, by pid.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls `dir` until a temp file shows up (the write phase has begun) or the child
/// exits. Returns the time the write phase began, if seen.
fn wait_for_write_phase(dir: &Path, child: &mut Child, limit: Duration) -> Option<Instant> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(rd) = fs::read_dir(dir) {
            if rd
                .flatten()
                .any(|e| !OUTPUTS.contains(&e.file_name().to_string_lossy().as_ref()))
            {
                return Some(Instant::now());
            }
        }
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        std::hint::spin_loop();
    }
    None
}

/// SIGKILL at many points of the write phase of a run over the real tree (4023
/// modules, 11 outputs of 5 MB in all): each file is then complete, old or new; a
/// re-run finishes the job and removes the leftovers.
#[test]
fn sigkill_during_write_leaves_old_or_new_files() {
    let new = new_set();
    let old = old_set();
    for n in OUTPUTS {
        assert_ne!(old[*n], new[*n], "{n}: old and new must differ");
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = outdir(tmp.path());

    // How long does the write phase take? (first temp file → exit)
    write_set(&dir, &old);
    let mut child = command(tmp.path()).spawn().unwrap();
    let began = wait_for_write_phase(&dir, &mut child, Duration::from_secs(60))
        .expect("saw the write phase begin");
    child.wait().unwrap();
    let phase = began.elapsed();
    assert_eq!(read_set(&dir), new);
    eprintln!("write phase: {phase:?}");

    // Kill points spread over twice the measured write phase (a loaded machine
    // stretches it), in rounds, until the kills have hit both before the first
    // rename and after one (at most 4 rounds).
    let points = 24u32;
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    let mut leftovers = 0;
    for k in 0..points * 4 {
        let renamed_some = outcomes.keys().any(|w| w.contains('N'));
        let renamed_none = outcomes.keys().any(|w| !w.contains('N'));
        if k >= points && renamed_some && renamed_none {
            break;
        }
        write_set(&dir, &old);
        for e in extra_files(&dir) {
            fs::remove_file(dir.join(e)).unwrap();
        }
        let mut child = command(tmp.path()).spawn().unwrap();
        let began = wait_for_write_phase(&dir, &mut child, Duration::from_secs(60));
        if began.is_some() {
            // Spread over twice the write phase.
            let delay = phase * (k % points) * 2 / points;
            std::thread::sleep(delay);
        }
        kill(&mut child);
        leftovers += extra_files(&dir).len();
        let got = read_set(&dir);
        let mut which = String::new();
        for n in OUTPUTS {
            let f = got.get(*n);
            if f == Some(&new[*n]) {
                which.push('N');
            } else if f == Some(&old[*n]) {
                which.push('o');
            } else {
                panic!(
                    "kill point {k}: {n} is neither the old nor the new file ({:?} bytes)",
                    f.map(Vec::len)
                );
            }
        }
        *outcomes.entry(which).or_insert(0) += 1;
    }
    eprintln!(
        "file states after the kills (o = old, N = new, in write order): {outcomes:?}; \
         temp files left by the killed runs: {leftovers}"
    );
    assert!(
        outcomes.keys().any(|w| w.contains('N')) && outcomes.keys().any(|w| !w.contains('N')),
        "the kills should have hit both before and after the first rename"
    );

    // A run to completion cleans up whatever the killed runs left.
    assert!(
        !extra_files(&dir).is_empty() || leftovers > 0,
        "no kill left a temp file: the test did not hit the writes"
    );
    let out = command(tmp.path()).output().unwrap();
    assert!(out.status.success());
    assert_eq!(read_set(&dir), new);
    let left = extra_files(&dir);
    assert!(
        left.is_empty(),
        "temp files of killed runs are still there after a complete run: {left:?}"
    );
}

/// A complete run removes the temp files of runs that are gone (killed, crashed, or
/// kmod stopped by a FATAL: the names are the same), and only those: a live
/// process's temp files and other names stay.
#[test]
fn complete_run_removes_only_dead_runs_temp_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = outdir(tmp.path());
    fs::create_dir_all(&dir).unwrap();
    // A pid that was just in use and now is not.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let live = std::process::id();
    let dead_files: Vec<String> = OUTPUTS
        .iter()
        .map(|n| format!("{n}.{dead}.123456.1796394365"))
        .collect();
    let kept = [
        format!("modules.dep.{live}.123456.1796394365"),
        format!("modules.alias.bin.{live}.1.2"),
        format!("modules.dep.{dead}.123456"),
        format!("modules.dep.{dead}.1.2.3"),
        format!("modules.dep.{dead}.x.2"),
        format!("modules.order.{dead}.1.2"),
        "modules.dep.orig".to_string(),
        "modules.dep~".to_string(),
    ];
    for n in dead_files.iter().chain(&kept) {
        fs::write(dir.join(n), b"left over\n").unwrap();
    }
    let out = command(tmp.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut want: Vec<String> = kept.to_vec();
    want.sort();
    assert_eq!(extra_files(&dir), want);
}

/// A tmpfs mounted at `path` (unmounted on drop). Panics when it cannot be mounted.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(path: &Path, size: &str) -> Mount {
        fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs at {} (these tests need root): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(path.to_path_buf())
    }

    fn remount_ro(&self) {
        let out = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "remount read-only: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Checks a failed run: exit 1, one clear error naming a file in `dir` and the
/// reason, the old files intact, nothing else left in `dir`.
fn check_failed_run(out: &std::process::Output, dir: &Path, old: &Set, reason: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit status; stderr:\n{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("depmod: ERROR: ") || l.starts_with("depmod: FATAL: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error message:\n{stderr}");
    let e = errors[0];
    assert!(
        e.contains(&dir.display().to_string()) && e.contains("modules.") && e.contains(reason),
        "the message names the file and says {reason:?}: {e}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(&read_set(dir), old, "old files intact");
    assert_eq!(extra_files(dir), Vec::<String>::new(), "no temp file left");
}

/// The output directory on a small tmpfs: the outputs of the real tree (5 MB) do not
/// fit. Sizes chosen so that the failure comes at different files.
#[test]
fn full_filesystem_keeps_old_files() {
    let new = new_set();
    let old = old_set();
    let new_total: usize = new.values().map(Vec::len).sum();
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    let mut failed_at = Vec::new();
    for size in ["256k", "1m", "2m", "3m", "4m"] {
        let m = Mount::tmpfs(&mnt, size);
        let dir = outdir(&m.0);
        write_set(&dir, &old);
        let out = command(&m.0).output().unwrap();
        check_failed_run(&out, &dir, &old, "No space left on device");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        failed_at.push(format!("{size}: {}", stderr.trim_end()));
        drop(m);
    }
    eprintln!("outputs: {new_total} bytes\n{}", failed_at.join("\n"));
    // A file system with room: the run succeeds (the same mount code path works).
    let m = Mount::tmpfs(&mnt, "64m");
    let dir = outdir(&m.0);
    write_set(&dir, &old);
    let out = command(&m.0).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(extra_files(&dir), Vec::<String>::new());
}

/// The output directory on a read-only file system (root ignores file modes, so a
/// chmod would not do).
#[test]
fn read_only_output_directory_keeps_old_files() {
    let old = old_set();
    let tmp = tempfile::tempdir().unwrap();
    let m = Mount::tmpfs(&tmp.path().join("mnt"), "16m");
    let dir = outdir(&m.0);
    write_set(&dir, &old);
    m.remount_ro();
    let out = command(&m.0).output().unwrap();
    check_failed_run(&out, &dir, &old, "Read-only file system");
}

/// The system calls of a run, in order: every temp file is written and fsynced before
/// the first rename; the directory is fsynced after the last rename.
#[test]
fn temp_files_are_fsynced_before_renames_and_directory_after() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("strace.log");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .args([
            "-e",
            "trace=openat,fsync,fdatasync,rename,renameat,renameat2,close,write",
            "-e",
            "signal=none",
            "-y",
        ])
        .arg(ours())
        .arg("-b")
        .arg(debian_base())
        .arg("-o")
        .arg(tmp.path().join("out"))
        .arg(KVER)
        .output()
        .expect("strace is needed (cargo xtask test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(&log).unwrap();
    let dir = outdir(&tmp.path().join("out")).display().to_string();
    let mut fsynced = Vec::new();
    let mut renamed = Vec::new();
    let mut dir_synced_after_renames = false;
    let mut first_rename = None;
    for (i, l) in text.lines().enumerate() {
        // `-y` shows each descriptor's path: `fsync(5</…/modules.dep.123.4.5>)`.
        if l.contains(" fsync(") || l.contains(" fdatasync(") {
            let p = l
                .split('<')
                .nth(1)
                .and_then(|s| s.split('>').next())
                .unwrap_or("");
            if p == dir {
                if !renamed.is_empty() {
                    dir_synced_after_renames = true;
                }
            } else {
                assert!(
                    first_rename.is_none(),
                    "fsync of {p} after the first rename (line {i}):\n{l}"
                );
                fsynced.push(p.to_string());
            }
        }
        if l.contains(" rename(") || l.contains(" renameat(") || l.contains(" renameat2(") {
            first_rename.get_or_insert(i);
            dir_synced_after_renames = false;
            renamed.push(l.to_string());
        }
    }
    assert_eq!(
        renamed.len(),
        OUTPUTS.len(),
        "renames:\n{}",
        renamed.join("\n")
    );
    for n in OUTPUTS {
        assert!(
            fsynced
                .iter()
                .any(|p| p.starts_with(&format!("{dir}/{n}.")) && p.len() > dir.len() + n.len() + 2),
            "temp file of {n} fsynced before the renames; fsynced: {fsynced:?}"
        );
    }
    assert!(
        dir_synced_after_renames,
        "the directory is fsynced after the last rename"
    );
}
