//! `cargo xtask …`: the project's chores in plain Rust (the rust-analyzer convention).
//!
//! Subcommands:
//! - `oracle`: fetch kmod 34.2 (Debian trixie's build) and its libraries into
//!   `target/oracle/`, and write `target/oracle/depmod-34.2`, a wrapper that runs it
//!   with its own dynamic loader. The differential tests use it as the reference
//!   (`util/oracle.rs`).
//! - `test`: install what the tests need (if missing), then run every check and test
//!   ([`test_all`]: the steps in order).
//! - `demo`: build our depmod, run it on Debian's real 6.1.0-56-amd64 module tree
//!   (fetched and cached under `target/`), show what it wrote and compare with kmod 34.2.
//! - `fuzz [--time SECS]`: run every fuzz target of `fuzz/` (see `fuzz.rs`).
//! - `dist [--tiny]`: static musl binaries for x86_64, aarch64, armv7, riscv64, s390x (`dist.rs`).
//! - `image ARCH` / `qemu ARCH`: an initramfs where our depmod runs, booted under
//!   QEMU (`image/`, `qemu.rs`; `qemu` is [`qemu()`] here: image, then boot).
//! - `cross [--ours PATH] [ARCH…]`: our depmod against kmod 34.2 over the real Debian trees of
//!   the other architectures (arm64, armhf, i386, ppc64el, s390x, mips64el, mipsel);
//!   `cross --matrix [BIN…]`: every dist binary on its own architecture over every tree.
//! - `bench [--runs N]`: ours vs kmod on the real tree, plain and gz/xz/zst (`bench.rs`).
//! - `install [--prefix DIR] [--destdir DIR] [--static]`: `sbin/depmod` and the manual
//!   pages `depmod.8`, `depmod.d.5` under PREFIX (`/usr/local`), atomically (`install.rs`).
//! - `kmod-suite [--ours PATH]`: kmod 34.2's own `test-depmod`, built from Debian's
//!   source package, run with our depmod in place of kmod's (`kmod_suite.rs`).
//! - `callers [--ours PATH] [CHECK…]`: kbuild, mkinitramfs, dracut, DKMS … run with ours and kmod 34.2 (`callers/`).
//!
//! Layout: each task is one file (or folder) and imports only `util/`, what two or
//! more tasks use (running commands, installing packages, private apt states, the
//! dist architectures, the kmod 34.2 oracle, paths). No task calls another: the
//! commands made of several tasks (`test`, `qemu`) are sequences here, and a task
//! that needs a dist binary mid-way (`image`, `install --static`) gets `dist::build`
//! passed in. `oracle` is no task file: `util::oracle` is every comparison's first step.

use std::path::Path;
use std::process::ExitCode;

use util::arch::{Build, ALL};
use util::root;

mod bench;
mod callers;
mod cross;
mod demo;
mod dist;
mod fuzz;
mod image;
mod install;
mod kmod_suite;
mod qemu;
mod test;
mod util;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("oracle") => util::oracle::run(&root()),
        Some("demo") => demo::run(&root()),
        Some("bench") => bench::run(&root(), &args[1..]),
        Some("test") => test_all(&root()),
        Some("fuzz") => fuzz::run_cmd(&root(), &args[1..]),
        Some("dist") => dist::run_cli(&root(), &args[1..]),
        Some("image") => image::run_cli(&root(), &args[1..], dist::build),
        Some("qemu") => qemu(&root(), &args[1..]),
        Some("cross") => cross::run_cli(&root(), &args[1..]),
        Some("kmod-suite") => kmod_suite::run_cli(&root(), &args[1..]),
        Some("install") => install::run_cli(&root(), &args[1..], dist::build),
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

/// `cargo xtask test`: every test, from a fresh Debian 12 machine, in this order;
/// the first failure stops it.
fn test_all(root: &Path) -> Result<(), String> {
    // Packages, the kmod 34.2 oracle, fmt, clippy (workspace and the no_std binary),
    // `cargo test --workspace --release`.
    test::checks(root)?;
    // kmod 34.2's own test-depmod, built from Debian's source, with our depmod.
    kmod_suite::run_cli(root, &[])?;
    // kbuild, mkinitramfs, dracut, DKMS … with ours and with kmod 34.2.
    callers::run_cli(root, &[])?;
    // The QEMU packages and Rust targets, the no_std build for thumbv7em, static musl
    // binaries (`dist`, `dist --tiny`), the integration tests against the static
    // x86_64 binary (`dist.rs`).
    dist::ci(root)?;
    // QEMU boots.
    for arch in ["x86_64", "aarch64", "armv7", "riscv64"] {
        qemu(root, &[arch.to_string()])?;
    }
    // Every host over every tree (`cross.rs`, `--matrix`): each dist binary on its
    // own architecture (natively or through qemu-user, as in a foreign-architecture
    // chroot or on the board itself) over the real Debian 12 trees of every
    // architecture and the amd64 tree's gz/xz/zst copies, against kmod 34.2. It
    // checks the host-dependent code: 32-bit `usize`, big-endian memory (s390x),
    // `stat`/`dirent` layouts, atomics and threads per target. Under Debian's
    // qemu-arm the armv7 binary died or spun forever while its allocator shrank
    // mappings in place (src/main.rs, `heap`); the qemu-user runs are checked for it.
    let hosts: Vec<String> = ALL
        .iter()
        .map(|&arch| {
            Build { arch, tiny: false }
                .output(root)
                .display()
                .to_string()
        })
        .collect();
    let mut args = vec!["--matrix".to_string()];
    args.extend(hosts);
    cross::run_cli(root, &args)?;
    // Fuzz smoke run: every target of fuzz/ for 30 s (`cargo xtask fuzz`).
    fuzz::run_cmd(root, &["--time".to_string(), "30".to_string()])?;
    Ok(())
}

/// `cargo xtask qemu ARCH`: the emulators, `image`'s build of ARCH (with its dist
/// binaries), then the boot.
fn qemu(root: &Path, args: &[String]) -> Result<(), String> {
    let arch = util::image::parse_arch(args)?;
    qemu::ensure_emulators()?;
    let image = image::build(root, arch, dist::build)?;
    qemu::boot(&image)
}
