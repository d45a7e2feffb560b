//! `cargo xtask test`'s own checks, its first step.
//!
//! It installs what the tests need when it is missing (as root, with apt-get:
//! Debian's kmod 30 and busybox as oracles and consumers, compressors; the list is
//! `util::packages::BASE`) and the kmod 34.2 oracle; then runs the formatting and
//! lint checks (the `no_std` binary too) and the whole test suite in release mode.
//!
//! The rest of `cargo xtask test` (kmod's own suite, the callers, the static builds
//! and QEMU boots, the cross-architecture matrix and a fuzz smoke run) are other
//! tasks, run after this one in the order `main.rs` lists.

use std::path::Path;
use std::process::Command;

use crate::util::{cargo, ensure_packages, oracle, run};

/// Packages, oracle, `cargo fmt --check`, `cargo clippy` (workspace and `no_std`
/// binary), `cargo test --workspace --release`.
pub fn checks(root: &Path) -> Result<(), String> {
    ensure_packages(&[])?;
    oracle::run(root)?;
    let cargo = cargo();
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
    Ok(())
}
