//! `cargo xtask test`: every test, from a fresh Debian 12 machine.
//!
//! It first installs what the tests need when it is missing (as root, with apt-get:
//! Debian's kmod 30 and busybox as oracles and consumers, compressors, QEMU), the
//! Rust targets, and the kmod 34.2 oracle; then runs formatting and lint checks, the
//! no_std build of the core, the whole test suite, the static builds and QEMU boots,
//! the cross-architecture comparison and a fuzz smoke run.

use std::path::Path;
use std::process::Command;

use crate::run;

/// Debian packages the tests use, with a file that shows each is installed.
const PACKAGES: &[(&str, &str)] = &[
    ("kmod", "/usr/sbin/depmod"),
    ("busybox-static", "/bin/busybox"),
    ("xz-utils", "/usr/bin/xz"),
    ("zstd", "/usr/bin/zstd"),
    ("gzip", "/bin/gzip"),
    ("binutils", "/usr/bin/readelf"),
    ("strace", "/usr/bin/strace"),
    ("util-linux", "/usr/bin/prlimit"),
    // tests/man_pages.rs renders the manual pages (`groff -man -ww -z`).
    ("groff-base", "/usr/bin/groff"),
];

/// Installs the missing Debian packages.
pub fn ensure_packages(extra: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .chain(extra)
        .filter(|(_, file)| !Path::new(file).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    run(Command::new("apt-get").arg("-q").arg("update"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

pub fn run_all(root: &Path) -> Result<(), String> {
    ensure_packages(&[])?;
    crate::oracle::run(root)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(&cargo)
        .args(["fmt", "--all", "--check"])
        .current_dir(root))?;
    run(Command::new(&cargo)
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .current_dir(root))?;
    // The `no_std` binary (what `dist` ships) has its own entry point, allocator
    // and panic handler: lint it too.
    run(Command::new(&cargo)
        .args([
            "clippy",
            "-p",
            "depmod",
            "--bin",
            "depmod",
            "--no-default-features",
        ])
        .args(["--features", "host,gz,zst", "--", "-D", "warnings"])
        .current_dir(root))?;
    run(Command::new(&cargo)
        .args(["test", "--workspace", "--release"])
        .current_dir(root))?;
    // kmod 34.2's own test-depmod, built from Debian's source, with our depmod.
    crate::kmod_suite::run_cli(root, &[])?;
    crate::callers::run_cli(root, &[])?;
    // no_std build for thumbv7em, static musl binaries, QEMU boots (`dist.rs`).
    crate::dist::ci(root)?;
    // (`dist::ci` also ran every dist binary over the real Debian trees of every
    // architecture against kmod 34.2: `cross --matrix`.)
    // Fuzz smoke run: every target of fuzz/ for 30 s (`cargo xtask fuzz`).
    crate::fuzz::run_cmd(root, &["--time".to_string(), "30".to_string()])?;
    Ok(())
}
