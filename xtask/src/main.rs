//! `cargo xtask …`: the project's chores in plain Rust (the rust-analyzer convention).
//!
//! Subcommands:
//! - `oracle`: fetch kmod 34.2 (Debian trixie's build) and its libraries into
//!   `target/oracle/`, and write `target/oracle/depmod-34.2`, a wrapper that runs it
//!   with its own dynamic loader. The differential tests use it as the reference.
//! - `test`: install what the tests need (if missing), then run every check and test.
//! - `demo`: build our depmod, run it on Debian's real 6.1.0-56-amd64 module tree
//!   (fetched and cached under `target/`), show what it wrote and compare with kmod 34.2.
//! - `fuzz [--time SECS]`: run every fuzz target of `fuzz/` (see `fuzz.rs`).
//! - `dist [--tiny]`: static musl binaries for x86_64, aarch64, armv7, riscv64, s390x (`dist.rs`).
//! - `image ARCH` / `qemu ARCH`: an initramfs where our depmod runs, booted under
//!   QEMU (`image.rs`, `qemu.rs`).
//! - `cross [--ours PATH] [ARCH…]`: our depmod against kmod 34.2 over the real Debian trees of
//!   the other architectures (arm64, armhf, i386, ppc64el, s390x, mips64el, mipsel);
//!   `cross --matrix [BIN…]`: every dist binary on its own architecture over every tree.
//! - `bench [--runs N]`: ours vs kmod on the real tree, plain and gz/xz/zst (`bench.rs`).
//! - `install [--prefix DIR] [--destdir DIR] [--static]`: `sbin/depmod` and the manual
//!   pages `depmod.8`, `depmod.d.5` under PREFIX (`/usr/local`), atomically (`install.rs`).
//! - `kmod-suite [--ours PATH]`: kmod 34.2's own `test-depmod`, built from Debian's
//!   source package, run with our depmod in place of kmod's (`kmod_suite.rs`).
//! - `callers [--ours PATH] [CHECK…]`: kbuild, mkinitramfs, dracut, DKMS … run with ours and kmod 34.2 (`callers.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod apt_source;
mod bench;
mod callers;
mod cpio;
mod cross;
mod debs;
mod demo;
mod dist;
mod fuzz;
mod image;
mod install;
mod kmod_suite;
mod oracle;
mod qemu;
mod test;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("oracle") => oracle::run(&root()),
        Some("demo") => demo::run(&root()),
        Some("bench") => bench::run(&root(), &args[1..]),
        Some("test") => test::run_all(&root()),
        Some("fuzz") => fuzz::run_cmd(&root(), &args[1..]),
        Some("dist") => dist::run_cli(&root(), &args[1..]),
        Some("image") => image::run_cli(&root(), &args[1..]),
        Some("qemu") => qemu::run_cli(&root(), &args[1..]),
        Some("cross") => cross::run_cli(&root(), &args[1..]),
        Some("kmod-suite") => kmod_suite::run_cli(&root(), &args[1..]),
        Some("install") => install::run_cli(&root(), &args[1..]),
        Some("callers") => callers::run_cli(&root(), &args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <oracle|test|demo|…>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs a command, failing with its name when it cannot start or exits non-zero.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}
