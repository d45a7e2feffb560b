//! The real Debian 12 kernel module tree (`6.1.0-56-amd64`), fetched with apt and cached.
//!
//! Shared by the integration tests (`tests/common`, `tests/golden.rs`) and by
//! `cargo xtask demo` and `bench` (included there with `#[path]`), so it uses `std` only
//! and finds the workspace root by itself.
//!
//! Layout under `<workspace>/target/` (git-ignored; never commit a kernel package):
//! * `debs/<pkg>_<version>_amd64.deb`: `apt-get download` results. A cached file is
//!   reused when its sha256 is right (the image package's is pinned; the headers
//!   package has no pinned hash and is reused when present).
//! * `trees/debian-<kver>/`: the image package unpacked with `dpkg -x` (holds
//!   `lib/modules/<kver>/` with 4023 `.ko` files and the three kbuild inputs).
//! * `trees/debian-<kver>-headers/`: the headers package unpacked (holds
//!   `usr/src/linux-headers-<kver>/Module.symvers`).
//! * `golden/debian-<kver>/`: kmod 34.2's outputs for the tree, generated once by
//!   [`golden_dir`] and checked against the sha256 sums committed in
//!   `tests/data/golden-debian-<kver>.MANIFEST`.
//!
//! Concurrent tests are safe: threads of one process take turns (a mutex), and across
//! processes downloads and unpacks happen under private temporary names and are
//! published with an atomic `rename`; a loser of the race discards its copy and uses
//! the winner's.
//!
//! [`fresh_copy`] gives a test a writable `lib/modules/<kver>` of its own: directories
//! are recreated, module files are hard-linked (depmod only reads them and replaces its
//! outputs with temp file + rename, so the cache is never written through a link), the
//! small text files are copied.
#![allow(dead_code)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// The kernel version of the tree.
pub const KVER: &str = "6.1.0-56-amd64";
/// Debian package version of both packages.
pub const DEB_VERSION: &str = "6.1.192-2";
/// The package holding the modules.
pub const IMAGE_PACKAGE: &str = "linux-image-6.1.0-56-amd64-unsigned";
/// sha256 of `IMAGE_PACKAGE` version `DEB_VERSION` (as recorded in [`golden_manifest`]).
pub const IMAGE_SHA256: &str = "530631662c9ad84758eca2d7609cf40623309afd4bccbeb563f33e9c7f220bdf";
/// The package holding `Module.symvers`.
pub const HEADERS_PACKAGE: &str = "linux-headers-6.1.0-56-amd64";

/// The workspace root: the nearest ancestor of this crate's manifest directory whose
/// `Cargo.toml` declares `[workspace]` (works from the root package and from `xtask`).
pub fn workspace_root() -> PathBuf {
    let start = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in start.ancestors() {
        if let Ok(text) = fs::read_to_string(dir.join("Cargo.toml")) {
            if text.lines().any(|l| l.trim() == "[workspace]") {
                return dir.to_path_buf();
            }
        }
    }
    start.to_path_buf()
}

/// `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    workspace_root().join("target")
}

/// The committed record of kmod 34.2's outputs for this tree:
/// `tests/data/golden-debian-<KVER>.MANIFEST` (the package, the command, and one
/// `sha256  name` line per output file).
pub fn golden_manifest() -> PathBuf {
    workspace_root()
        .join("tests/data")
        .join(format!("golden-debian-{KVER}.MANIFEST"))
}

/// The output files named by [`golden_manifest`] with their sha256, sorted by name.
pub fn golden_sums() -> Result<Vec<(String, String)>, String> {
    let path = golden_manifest();
    let text = fs::read_to_string(&path).map_err(|e| err(path.display(), e))?;
    let mut sums = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let parsed = line.split_once("  ").filter(|(hash, name)| {
            hash.len() == 64
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                && name.starts_with("modules.")
                && !name.contains('/')
        });
        match parsed {
            Some((hash, name)) => sums.push((name.to_owned(), hash.to_owned())),
            None => return Err(format!("{}: malformed line {line:?}", path.display())),
        }
    }
    sums.sort();
    if sums.is_empty() {
        return Err(format!("{}: no `sha256  name` lines", path.display()));
    }
    Ok(sums)
}

/// The names of kmod 34.2's output files (from [`golden_manifest`]), sorted.
pub fn golden_files() -> Result<Vec<String>, String> {
    Ok(golden_sums()?.into_iter().map(|(name, _)| name).collect())
}

/// The kmod 34.2 depmod: `KMOD34_DEPMOD`, or `target/oracle/depmod-34.2` (made by
/// `cargo xtask oracle`, which `cargo xtask test` runs first).
pub fn kmod34_path() -> Result<PathBuf, String> {
    let path = match std::env::var_os("KMOD34_DEPMOD") {
        Some(p) => PathBuf::from(p),
        None => target_dir().join("oracle/depmod-34.2"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "kmod 34.2 ({}) is missing: run `cargo xtask oracle` (or set KMOD34_DEPMOD)",
            path.display()
        ))
    }
}

/// Where [`golden_dir`] keeps kmod 34.2's outputs: `target/golden/debian-<KVER>/`.
pub fn golden_cache_dir() -> PathBuf {
    target_dir().join("golden").join(format!("debian-{KVER}"))
}

/// Serialises the generation of the golden outputs inside one process.
static GOLDEN_LOCK: Mutex<()> = Mutex::new(());

/// kmod 34.2's outputs for this tree, every file checked against the sums of
/// [`golden_manifest`] (on every call: one `sha256sum` run, about 30 ms).
///
/// `DEPMOD_GOLDEN_DIR`, if set, names a directory holding them. Otherwise they are
/// generated once into [`golden_cache_dir`]: kmod 34.2 ([`kmod34_path`]) runs on a
/// fresh copy of the cached tree (`depmod -b ROOT -C EMPTY KVER`, as the MANIFEST
/// says), its outputs are checked and then published with an atomic `rename`, so
/// concurrent test processes never see a partial set (a loser of the race discards its
/// copy). A file that is missing or whose sha256 differs is an error naming it.
pub fn golden_dir() -> Result<PathBuf, String> {
    let sums = golden_sums()?;
    if let Some(dir) = std::env::var_os("DEPMOD_GOLDEN_DIR") {
        let dir = PathBuf::from(dir);
        verify_golden(&dir, &sums).map_err(|e| format!("DEPMOD_GOLDEN_DIR: {e}"))?;
        return Ok(fs::canonicalize(&dir).unwrap_or(dir));
    }
    let _guard = GOLDEN_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dest = golden_cache_dir();
    if !dest.is_dir() {
        generate_golden(&dest, &sums)
            .map_err(|e| format!("cannot generate kmod 34.2's outputs for the Debian tree: {e}"))?;
    }
    verify_golden(&dest, &sums).map_err(|e| {
        format!(
            "{e}\n(the cached outputs of kmod 34.2 were changed: remove {} and they are \
             generated again)",
            dest.display()
        )
    })?;
    Ok(dest)
}

/// Checks every file of `sums` in `dir` (one `sha256sum` run).
fn verify_golden(dir: &Path, sums: &[(String, String)]) -> Result<(), String> {
    let manifest = golden_manifest();
    for (name, _) in sums {
        if !dir.join(name).is_file() {
            return Err(format!(
                "{}: missing (listed in {})",
                dir.join(name).display(),
                manifest.display()
            ));
        }
    }
    let out = Command::new("sha256sum")
        .arg("--")
        .args(sums.iter().map(|(name, _)| name))
        .current_dir(dir)
        .output()
        .map_err(|e| err("cannot run sha256sum", e))?;
    if !out.status.success() {
        return Err(format!(
            "sha256sum in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let got: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(hash, name)| (name, hash))
        .collect();
    let mut bad = Vec::new();
    for (name, want) in sums {
        match got.iter().find(|(n, _)| n == name) {
            Some((_, have)) if have == want => {}
            Some((_, have)) => bad.push(format!(
                "{}: sha256 {have}, but {} says {want}",
                dir.join(name).display(),
                manifest.display()
            )),
            None => bad.push(format!("{}: no sha256 computed", dir.join(name).display())),
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "kmod 34.2's outputs differ from the committed sums:\n  {}",
            bad.join("\n  ")
        ))
    }
}

/// Runs kmod 34.2 on a fresh copy of the tree and publishes its checked outputs at
/// `dest` (see [`golden_dir`]).
fn generate_golden(dest: &Path, sums: &[(String, String)]) -> Result<(), String> {
    let kmod = kmod34_path()?;
    let base = dest
        .parent()
        .ok_or_else(|| format!("{} has no parent", dest.display()))?;
    fs::create_dir_all(base).map_err(|e| err(base.display(), e))?;
    let tmp = base.join(unique_name(&format!(
        ".generate-{}",
        dest.file_name().unwrap_or_default().to_string_lossy()
    )));
    let root = tmp.join("root");
    let empty = tmp.join("empty-depmod.d");
    let out_dir = tmp.join("outputs");
    let result = (|| {
        fs::create_dir_all(&empty).map_err(|e| err(empty.display(), e))?;
        fs::create_dir_all(&out_dir).map_err(|e| err(out_dir.display(), e))?;
        let moddir = fresh_copy(&root)?;
        let inputs = list_files(&moddir)?;
        let out = Command::new(&kmod)
            .arg("-b")
            .arg(&root)
            .arg("-C")
            .arg(&empty)
            .arg(KVER)
            .env("LC_ALL", "C")
            .output()
            .map_err(|e| err(format!("cannot run {}", kmod.display()), e))?;
        if !out.status.success() || !out.stdout.is_empty() || !out.stderr.is_empty() {
            return Err(format!(
                "kmod 34.2 ({} -b {} -C {} {KVER}) exited with {}, printing:\n{}{}",
                kmod.display(),
                root.display(),
                empty.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let written: Vec<String> = list_files(&moddir)?
            .into_iter()
            .filter(|n| !inputs.contains(n))
            .collect();
        let unlisted: Vec<&String> = written
            .iter()
            .filter(|n| !sums.iter().any(|(name, _)| name == *n))
            .collect();
        if !unlisted.is_empty() {
            return Err(format!(
                "kmod 34.2 wrote files that {} does not list: {unlisted:?}",
                golden_manifest().display()
            ));
        }
        let missing: Vec<&String> = sums
            .iter()
            .map(|(name, _)| name)
            .filter(|n| !written.contains(n))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "kmod 34.2 did not write {missing:?} (listed in {})",
                golden_manifest().display()
            ));
        }
        for (name, _) in sums {
            let from = moddir.join(name);
            fs::rename(&from, out_dir.join(name))
                .map_err(|e| err(format!("kmod 34.2 output {}", from.display()), e))?;
        }
        verify_golden(&out_dir, sums)
            .map_err(|e| format!("{e}\n(kept in {} for a look)", out_dir.display()))?;
        match fs::rename(&out_dir, dest) {
            Ok(()) => Ok(()),
            // Another process published its (equally checked) copy first.
            Err(_) if dest.is_dir() => Ok(()),
            Err(e) => Err(err(format!("rename to {}", dest.display()), e)),
        }
    })();
    // Keep rejected outputs for a look; everything else goes.
    let rejected =
        result.is_err() && fs::read_dir(&out_dir).is_ok_and(|mut entries| entries.next().is_some());
    if !rejected {
        let _ = fs::remove_dir_all(&tmp);
    } else {
        let _ = fs::remove_dir_all(&root);
        let _ = fs::remove_dir_all(&empty);
    }
    result
}

/// A name no other process or thread will pick: `<prefix>.<pid>.<counter>.<nanos>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}.{}.{}.{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn err(context: impl std::fmt::Display, e: impl std::fmt::Display) -> String {
    format!("{context}: {e}")
}

/// Runs a command; an error names the command and shows its stderr.
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| err(format!("cannot run {:?}", cmd.get_program()), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The sha256 of a file, computed by the `sha256sum` command.
pub fn sha256(path: &Path) -> Result<String, String> {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .map_err(|e| err("cannot run sha256sum", e))?;
    if !out.status.success() {
        return Err(format!(
            "sha256sum {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| format!("sha256sum {}: no output", path.display()))
}

/// Where the `.deb` of `package` at `version` is cached (`apt-get download`'s name).
pub fn deb_path(package: &str, version: &str) -> PathBuf {
    target_dir().join("debs").join(format!(
        "{package}_{}_amd64.deb",
        version.replace(':', "%3a")
    ))
}

/// The cached `.deb` of `package` at `version`, downloading it with
/// `apt-get download package=version` if it is missing (or, when `sha256` is given,
/// if the cached file's hash differs). The download must have the expected hash.
pub fn fetch_deb(
    package: &str,
    version: &str,
    sha256_hex: Option<&str>,
) -> Result<PathBuf, String> {
    let path = deb_path(package, version);
    let debs = target_dir().join("debs");
    fs::create_dir_all(&debs).map_err(|e| err(debs.display(), e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if path.is_file() {
        match sha256_hex {
            None => return Ok(path),
            Some(want) if sha256(&path)? == want => return Ok(path),
            Some(_) => {} // stale or corrupt: fetch again
        }
    }
    // Download into a private directory, check, then publish atomically.
    let tmp = debs.join(unique_name(".download"));
    fs::create_dir_all(&tmp).map_err(|e| err(tmp.display(), e))?;
    let result = (|| {
        run(Command::new("apt-get")
            .arg("-q")
            .arg("download")
            .arg(format!("{package}={version}"))
            .current_dir(&tmp))
        .map_err(|e| {
            format!("{e}\n(hint: the package comes from Debian 12's archive; run `apt-get update` first)")
        })?;
        let got = tmp.join(&name);
        if !got.is_file() {
            return Err(format!("apt-get download did not produce {name}"));
        }
        if let Some(want) = sha256_hex {
            let have = sha256(&got)?;
            if have != want {
                return Err(format!("{name}: sha256 {have}, expected {want}"));
            }
        }
        fs::rename(&got, &path).map_err(|e| err(format!("rename to {}", path.display()), e))
    })();
    let _ = fs::remove_dir_all(&tmp);
    result.map(|()| path)
}

/// `deb` unpacked with `dpkg -x` into `target/trees/<name>/` (done once; concurrent
/// callers race safely).
pub fn unpack_cached(deb: &Path, name: &str) -> Result<PathBuf, String> {
    let trees = target_dir().join("trees");
    let dest = trees.join(name);
    if dest.is_dir() {
        return Ok(dest);
    }
    fs::create_dir_all(&trees).map_err(|e| err(trees.display(), e))?;
    let tmp = trees.join(unique_name(&format!(".unpack-{name}")));
    let unpacked = run(Command::new("dpkg").arg("-x").arg(deb).arg(&tmp));
    if let Err(e) = unpacked {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match fs::rename(&tmp, &dest) {
        Ok(()) => Ok(dest),
        Err(_) if dest.is_dir() => {
            // Another process published it first.
            let _ = fs::remove_dir_all(&tmp);
            Ok(dest)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(err(format!("rename to {}", dest.display()), e))
        }
    }
}

/// Serialises fetching and unpacking inside one process (tests run in threads), so a
/// fresh checkout unpacks each package once rather than once per test.
static FETCH_LOCK: Mutex<()> = Mutex::new(());

fn fetch_lock() -> MutexGuard<'static, ()> {
    FETCH_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The unpacked image package (a root directory holding `lib/modules/<KVER>`).
pub fn image_root() -> Result<PathBuf, String> {
    let _guard = fetch_lock();
    let deb = fetch_deb(IMAGE_PACKAGE, DEB_VERSION, Some(IMAGE_SHA256))?;
    unpack_cached(&deb, &format!("debian-{KVER}"))
}

/// The cached, read-only module directory `…/lib/modules/<KVER>`.
pub fn module_dir() -> Result<PathBuf, String> {
    let dir = image_root()?.join("lib/modules").join(KVER);
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "{} is missing from the unpacked package",
            dir.display()
        ))
    }
}

/// The headers package's `Module.symvers` (in the cache; copy it before changing it).
pub fn module_symvers() -> Result<PathBuf, String> {
    let _guard = fetch_lock();
    let deb = fetch_deb(HEADERS_PACKAGE, DEB_VERSION, None)?;
    let root = unpack_cached(&deb, &format!("debian-{KVER}-headers"))?;
    let path = root
        .join("usr/src")
        .join(format!("linux-headers-{KVER}"))
        .join("Module.symvers");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing from the unpacked package",
            path.display()
        ))
    }
}

/// Whether a file name is a module (`.ko` with an optional compression suffix).
fn is_module_name(name: &str) -> bool {
    [".ko", ".ko.gz", ".ko.xz", ".ko.zst"]
        .iter()
        .any(|s| name.len() > s.len() && name.ends_with(s))
}

/// Makes `root/lib/modules/<KVER>` a writable copy of the cached tree: modules are
/// hard-linked (copied if linking fails, e.g. across file systems), other files copied,
/// symlinks recreated. `root` must not contain `lib/modules/<KVER>` yet. Returns the
/// new module directory. Put `root` under `target/` so that hard links work.
pub fn fresh_copy(root: &Path) -> Result<PathBuf, String> {
    let src = module_dir()?;
    let dest = root.join("lib/modules").join(KVER);
    if dest.exists() {
        return Err(format!("{} already exists", dest.display()));
    }
    fs::create_dir_all(&dest).map_err(|e| err(dest.display(), e))?;
    // Explicit stack: (source dir, destination dir).
    let mut stack = vec![(src, dest.clone())];
    while let Some((from, to)) = stack.pop() {
        let entries = fs::read_dir(&from).map_err(|e| err(from.display(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| err(from.display(), e))?;
            let ty = entry
                .file_type()
                .map_err(|e| err(entry.path().display(), e))?;
            let s = entry.path();
            let d = to.join(entry.file_name());
            if ty.is_dir() {
                fs::create_dir(&d).map_err(|e| err(d.display(), e))?;
                stack.push((s, d));
            } else if ty.is_symlink() {
                let target = fs::read_link(&s).map_err(|e| err(s.display(), e))?;
                std::os::unix::fs::symlink(&target, &d).map_err(|e| err(d.display(), e))?;
            } else if is_module_name(&entry.file_name().to_string_lossy()) {
                if fs::hard_link(&s, &d).is_err() {
                    fs::copy(&s, &d).map_err(|e| err(d.display(), e))?;
                }
            } else {
                fs::copy(&s, &d).map_err(|e| err(d.display(), e))?;
            }
        }
    }
    Ok(dest)
}

/// Removes a tree made by [`fresh_copy`] (or anything else); missing is fine.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The files directly inside `dir`, sorted by name (no directories).
pub fn list_files(dir: &Path) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| err(dir.display(), e))? {
        let entry = entry.map_err(|e| err(dir.display(), e))?;
        if !entry
            .file_type()
            .map_err(|e| err(dir.display(), e))?
            .is_dir()
        {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Where two byte strings first differ, for readable failure messages: `None` if
/// equal, else the byte offset, the line number and that line of both sides (or 16 bytes
/// in hex from the offset, for binary data).
pub fn first_difference(expected: &[u8], got: &[u8]) -> Option<String> {
    if expected == got {
        return None;
    }
    let at = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    let sizes = format!("sizes: expected {}, got {}", expected.len(), got.len());
    if expected.contains(&0) || got.contains(&0) {
        let hex = |s: &[u8]| -> String {
            s[at.min(s.len())..(at + 16).min(s.len())]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        return Some(format!(
            "first difference at byte offset {at} ({sizes}): expected [{}], got [{}]",
            hex(expected),
            hex(got)
        ));
    }
    let line_no = expected[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    let start = expected[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let line = |s: &[u8]| -> String {
        let rest = &s[start.min(s.len())..];
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        String::from_utf8_lossy(&rest[..end.min(300)]).into_owned()
    };
    Some(format!(
        "first difference at line {line_no}, byte offset {at} ({sizes}):\n  expected: {:?}\n  got:      {:?}",
        line(expected),
        line(got)
    ))
}
