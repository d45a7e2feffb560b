//! The reference programs our depmod is checked against, one file for each thing
//! wrapped:
//!
//! * kmod's depmod (kmod 34.2 and kmod 30) against ours on a tree: `kmod.rs` finds the
//!   binaries, `outcome.rs` runs one on a tree and records everything it did (and
//!   undoes it), `compare.rs` compares two runs, `contracts.rs` says what ours must do
//!   where it does not do what kmod does (kmod dying in its cycle report, the intended
//!   differences), and `differential.rs` puts them together: `differential()` runs one
//!   command line under every oracle and reports every mismatch;
//! * libkmod's lookups through kmod's `modprobe` (which reads the `.bin` indexes):
//!   `libkmod.rs`;
//! * busybox's `modprobe` (which reads the text files): `busybox.rs`;
//! * glibc's `regcomp`/`regexec`, the model of depmod.d's patterns: `regexec.rs`.
//!
//! The depmod part is re-exported here (`common::oracle::run`, `common::oracle::Diff`,
//! …); the others are used through their module (`common::oracle::libkmod::…`).
//!
//! * `KMOD34_DEPMOD` overrides the kmod 34.2 path (default
//!   `<repo>/target/oracle/depmod-34.2`, made by `cargo xtask oracle`).
//! * `KMOD30_DEPMOD` overrides the kmod 30 path (default `/usr/sbin/depmod`, Debian 12's
//!   `kmod` package).
//! * `DEPMOD_SUBJECT` selects the binary under test: `ours` (default, our `depmod`),
//!   `kmod30` (harness self-test: kmod 30 is compared with kmod 34.2 on the text files,
//!   which validates the ELF generator, the trees and this module without our binary).
//! * `KMOD30_MODPROBE` overrides libkmod's modprobe (default `/usr/sbin/modprobe`),
//!   `BUSYBOX` the busybox binary (default `/bin/busybox`, must be static).
//!
//! Missing oracles make the tests fail (never pass silently).

mod compare;
mod contracts;
mod differential;
mod kmod;
mod outcome;

pub mod busybox;
pub mod libkmod;
pub mod regexec;

// Not every test binary uses every part (`dead_code` is allowed in `common/mod.rs`).
#[allow(unused_imports)]
pub use {compare::*, contracts::*, differential::*, kmod::*, outcome::*};

use std::path::PathBuf;

/// A reference program from `env` or at `default`; the test fails (never skips) if it
/// is missing, saying how to `install` it.
pub fn tool(env: &str, default: &str, install: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "{} is missing: {install} (or set {env})",
        path.display()
    );
    path
}
