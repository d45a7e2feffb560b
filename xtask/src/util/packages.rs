//! Debian packages installed on the machine (as root, with apt-get) when missing.
//!
//! A list a single task installs stays in that task (`kmod_suite`'s build tools,
//! `callers`' make); the lists here are the ones several tasks install.

use std::path::Path;
use std::process::Command;

use super::run;

/// Debian packages the tests use, with a file that shows each is installed. Every
/// [`ensure_packages`] call installs these too.
pub const BASE: &[(&str, &str)] = &[
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

/// Debian packages for the system emulators (`qemu`) and qemu-user (dist's smoke runs).
pub const QEMU: &[(&str, &str)] = &[
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("qemu-system-arm", "/usr/bin/qemu-system-aarch64"),
    ("qemu-system-arm", "/usr/bin/qemu-system-arm"),
    // qemu-system-riscv64, and OpenSBI (the SBI firmware a RISC-V kernel boots on).
    ("qemu-system-misc", "/usr/bin/qemu-system-riscv64"),
    ("opensbi", OPENSBI),
    ("qemu-user-static", "/usr/bin/qemu-aarch64-static"),
];

/// OpenSBI's generic platform firmware from Debian's `opensbi` package.
pub const OPENSBI: &str = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin";

/// Installs the missing Debian packages: [`BASE`] and `extra`.
pub fn ensure_packages(extra: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> = BASE
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
