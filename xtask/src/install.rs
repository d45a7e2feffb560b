//! `cargo xtask install [--prefix DIR] [--destdir DIR] [--static]`: our depmod and
//! its manual pages, installed as
//!
//! - `PREFIX/sbin/depmod` (mode 0755): the release build (`cargo build --release`,
//!   glibc, default features), or with `--static` the static musl binary that
//!   `cargo xtask dist` makes for the host's architecture (built by `dist`'s builder,
//!   which `main.rs` passes in);
//! - `PREFIX/share/man/man8/depmod.8` and `PREFIX/share/man/man5/depmod.d.5`
//!   (mode 0644), from `man/`.
//!
//! `PREFIX` is `/usr/local` unless `--prefix` says otherwise (an absolute path: where
//! the files are at run time). `--destdir DIR` (what makefiles call `DESTDIR`)
//! installs under `DIR/PREFIX` instead, for staging a package.
//!
//! Missing directories are created with mode 0755, whatever the umask. Each file is
//! written to a temporary file beside its destination, synced, given its mode (exactly,
//! whatever the umask) and renamed over the destination, then the directory is
//! synced: a running system never sees a half-written depmod, and an existing
//! symbolic link at the destination (say to `/bin/kmod`) is replaced, never written
//! through. The manual pages stay uncompressed: `man` reads them
//! either way, and packaging tools (Debian's `dh_compress`) compress what they ship.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::arch::{Arch, Build, BuildDist};
use crate::util::{cargo, run};

const USAGE: &str = "usage: cargo xtask install [--prefix DIR] [--destdir DIR] [--static]";

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    prefix: PathBuf,
    destdir: Option<PathBuf>,
    static_binary: bool,
}

/// Parses the arguments; `None` for `--help`.
fn parse(args: &[String]) -> Result<Option<Args>, String> {
    let mut out = Args {
        prefix: PathBuf::from("/usr/local"),
        destdir: None,
        static_binary: false,
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| rest.next().cloned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} needs a directory\n{USAGE}"))
        };
        match name {
            "--prefix" => out.prefix = PathBuf::from(value()?),
            "--destdir" => out.destdir = Some(PathBuf::from(value()?)),
            "--static" if inline.is_none() => out.static_binary = true,
            "-h" | "--help" => return Ok(None),
            _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
        }
    }
    if !out.prefix.is_absolute() {
        return Err(format!(
            "--prefix {}: must be an absolute path (where the files are at run time)",
            out.prefix.display()
        ));
    }
    Ok(Some(out))
}

/// Where files of `prefix` go: under `destdir` when staging.
fn staged(destdir: Option<&Path>, prefix: &Path) -> PathBuf {
    match destdir {
        Some(d) => d.join(prefix.strip_prefix("/").unwrap_or(prefix)),
        None => prefix.to_path_buf(),
    }
}

/// The `dist` architecture of the machine xtask runs on.
fn host_arch() -> Result<Arch, String> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(Arch::X86_64),
        "aarch64" => Ok(Arch::Aarch64),
        "arm" => Ok(Arch::Armv7),
        other => Err(format!(
            "--static: no static build for {other} (cargo xtask dist makes x86_64, aarch64, armv7)"
        )),
    }
}

/// Builds the binary to install and returns its path.
fn build_binary(
    root: &Path,
    static_binary: bool,
    build_dist: BuildDist,
) -> Result<PathBuf, String> {
    if static_binary {
        let arch = host_arch()?;
        eprintln!(
            "xtask: building the static {} binary (as cargo xtask dist does)",
            arch.name()
        );
        return build_dist(root, Build { arch, tiny: false });
    }
    eprintln!("xtask: cargo build --release --bin depmod");
    run(Command::new(cargo())
        .args(["build", "--release", "-p", "depmod", "--bin", "depmod"])
        .current_dir(root))?;
    Ok(root.join("target/release/depmod"))
}

/// `--static` builds the binary with `build_dist`.
pub fn run_cli(root: &Path, args: &[String], build_dist: BuildDist) -> Result<(), String> {
    let Some(args) = parse(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    let destdir = match &args.destdir {
        Some(d) => Some(std::path::absolute(d).map_err(|e| format!("{}: {e}", d.display()))?),
        None => None,
    };
    let binary = build_binary(root, args.static_binary, build_dist)?;
    let files = [
        (binary, "sbin/depmod", 0o755),
        (root.join("man/depmod.8"), "share/man/man8/depmod.8", 0o644),
        (
            root.join("man/depmod.d.5"),
            "share/man/man5/depmod.d.5",
            0o644,
        ),
    ];
    let base = staged(destdir.as_deref(), &args.prefix);
    let mut installed = Vec::new();
    for (from, rel, mode) in &files {
        let to = base.join(rel);
        let size = install_file(from, &to, *mode)?;
        println!("installed {} ({mode:04o}, {size} bytes)", to.display());
        installed.push(to);
    }
    if destdir.is_none() {
        note_path_order(&installed[0]);
    }
    Ok(())
}

/// Copies `from` to `to` with `mode`, atomically; returns the size.
fn install_file(from: &Path, to: &Path, mode: u32) -> Result<u64, String> {
    let ctx = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    let bytes = fs::read(from).map_err(|e| ctx("cannot read", from, e))?;
    let dir = to
        .parent()
        .ok_or_else(|| format!("{}: no parent directory", to.display()))?;
    create_dirs(dir)?;
    if fs::symlink_metadata(to).is_ok_and(|m| m.is_dir()) {
        return Err(format!("{}: is a directory", to.display()));
    }
    let name = to
        .file_name()
        .ok_or_else(|| format!("{}: no file name", to.display()))?;
    let tmp = dir.join(format!(
        ".{}.xtask-install.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    if let Err(e) = write_and_rename(&tmp, to, &bytes, mode) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ctx("cannot sync", dir, e))?;
    Ok(bytes.len() as u64)
}

/// `mkdir -p` with mode 0755 for the directories it creates, whatever the umask
/// (under umask 077 a new `share/man/man8` would be closed to the users of `man`).
/// Existing directories are left as they are.
fn create_dirs(dir: &Path) -> Result<(), String> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => fs::set_permissions(d, fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("cannot chmod {}: {e}", d.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(format!("cannot create {}: {e}", d.display())),
        }
    }
    Ok(())
}

/// Writes `tmp` (a new file) with `bytes` and `mode`, syncs it and renames it to `to`.
fn write_and_rename(tmp: &Path, to: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let ctx = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|e| ctx("cannot create", tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| ctx("cannot write", tmp, e))?;
    // The exact mode, whatever the umask.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| ctx("cannot chmod", tmp, e))?;
    f.sync_all().map_err(|e| ctx("cannot sync", tmp, e))?;
    fs::rename(tmp, to).map_err(|e| ctx("cannot rename into", to, e))
}

/// Says so when another `depmod` comes first in `PATH`.
fn note_path_order(installed: &Path) {
    let Some(path) = std::env::var_os("PATH") else {
        return;
    };
    let first = std::env::split_paths(&path)
        .map(|d| d.join("depmod"))
        .find(|p| p.is_file());
    match first {
        Some(p) if p == installed => println!("{} is the first depmod in PATH", p.display()),
        Some(p) => println!(
            "note: {} comes before {} in PATH",
            p.display(),
            installed.display()
        ),
        None => println!(
            "note: {} is not in PATH",
            installed.parent().unwrap_or(installed).display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(
            parse(&[]).unwrap(),
            Some(Args {
                prefix: "/usr/local".into(),
                destdir: None,
                static_binary: false
            })
        );
        assert_eq!(
            parse(&strings(&[
                "--prefix",
                "/usr",
                "--destdir=stage",
                "--static"
            ]))
            .unwrap(),
            Some(Args {
                prefix: "/usr".into(),
                destdir: Some("stage".into()),
                static_binary: true
            })
        );
        assert_eq!(parse(&strings(&["--help"])).unwrap(), None);
        assert!(parse(&strings(&["--prefix", "usr"])).is_err());
        assert!(parse(&strings(&["--prefix"])).is_err());
        assert!(parse(&strings(&["--destdir="])).is_err());
        assert!(parse(&strings(&["--static=yes"])).is_err());
        assert!(parse(&strings(&["--bogus"])).is_err());
    }

    #[test]
    fn staging() {
        assert_eq!(
            staged(Some(Path::new("/stage")), Path::new("/usr/local")),
            PathBuf::from("/stage/usr/local")
        );
        assert_eq!(
            staged(None, Path::new("/usr/local")),
            PathBuf::from("/usr/local")
        );
    }

    #[test]
    fn replaces_files_and_links_atomically() {
        let dir = std::env::temp_dir().join(format!("xtask-install-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let src = dir.join("src");
        fs::write(&src, b"new").unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, b"keep").unwrap();
        let to = dir.join("a/b/depmod");
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&victim, &to).unwrap();

        assert_eq!(install_file(&src, &to, 0o755).unwrap(), 3);
        let meta = fs::symlink_metadata(&to).unwrap();
        assert!(meta.is_file(), "the link itself is replaced");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        assert_eq!(fs::read(&to).unwrap(), b"new");
        assert_eq!(fs::read(&victim).unwrap(), b"keep", "not written through");

        fs::write(&src, b"newer").unwrap();
        install_file(&src, &to, 0o644).unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"newer");
        assert_eq!(
            fs::metadata(&to).unwrap().permissions().mode() & 0o7777,
            0o644
        );
        let left: Vec<_> = fs::read_dir(to.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["depmod"], "no temporary file left");

        let new_dir = dir.join("c/d/e/depmod.8");
        install_file(&src, &new_dir, 0o644).unwrap();
        assert!(new_dir.is_file());
        for d in ["c", "c/d", "c/d/e"] {
            let mode = fs::metadata(dir.join(d)).unwrap().permissions().mode();
            assert_eq!(mode & 0o7777, 0o755, "{d}");
        }
        assert!(install_file(&src, to.parent().unwrap(), 0o644).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
