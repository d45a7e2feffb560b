//! The architectures `cargo xtask dist` builds for, and where its binaries land.
//!
//! `dist` builds them; `image` boots them, `cross --matrix` runs each over every
//! tree, `install --static` installs the host's, and `cargo xtask test` does all
//! of it. A task that needs a dist binary built gets `dist`'s builder from `main.rs`
//! as a [`BuildDist`].

use std::path::{Path, PathBuf};

use super::apt::Apt;

/// `dist`'s builder: builds one binary and returns its path ([`Build::output`]).
pub type BuildDist = fn(&Path, Build) -> Result<PathBuf, String>;

/// A dist build: architecture and flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Build {
    pub arch: Arch,
    pub tiny: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
    Armv7,
    Riscv64,
    /// The big-endian host (IBM Z; 64-bit, `usize` 8 bytes like the others but
    /// every multi-byte integer in memory the other way round).
    S390x,
}

/// Every architecture `dist` builds by default (and `cargo xtask test` checks).
pub const ALL: [Arch; 5] = [
    Arch::X86_64,
    Arch::Aarch64,
    Arch::Armv7,
    Arch::Riscv64,
    Arch::S390x,
];

impl Arch {
    pub fn parse(s: &str) -> Result<Arch, String> {
        match s {
            "x86_64" => Ok(Arch::X86_64),
            "aarch64" => Ok(Arch::Aarch64),
            "armv7" => Ok(Arch::Armv7),
            "riscv64" => Ok(Arch::Riscv64),
            "s390x" => Ok(Arch::S390x),
            _ => Err(format!(
                "unknown architecture {s} (x86_64, aarch64, armv7, riscv64, s390x)"
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Armv7 => "armv7",
            Arch::Riscv64 => "riscv64",
            Arch::S390x => "s390x",
        }
    }
    pub fn triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
            Arch::Armv7 => "armv7-unknown-linux-musleabihf",
            Arch::Riscv64 => "riscv64gc-unknown-linux-musl",
            Arch::S390x => "s390x-unknown-linux-musl",
        }
    }
    /// Debian's architecture name.
    pub fn deb(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
            Arch::Armv7 => "armhf",
            Arch::Riscv64 => "riscv64",
            Arch::S390x => "s390x",
        }
    }
    /// The Debian suite its packages come from: riscv64 became a release
    /// architecture only in Debian 13 (bookworm has no riscv64 packages at all).
    pub fn suite(self) -> &'static str {
        match self {
            Arch::Riscv64 => "trixie",
            _ => "bookworm",
        }
    }
    /// The private apt state for this architecture's Debian packages.
    pub fn apt(self, root: &Path) -> Result<Apt, String> {
        Apt::with_suite(root, self.deb(), self.suite())
    }
    /// Debian's musl multiarch directory (headers and libc.a).
    pub fn musl_triplet(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-musl",
            Arch::Aarch64 => "aarch64-linux-musl",
            Arch::Armv7 => "arm-linux-musleabihf",
            Arch::Riscv64 => "riscv64-linux-musl",
            Arch::S390x => "s390x-linux-musl",
        }
    }
    /// The qemu-user emulator that runs this architecture on the host.
    pub fn qemu_user(self) -> Option<&'static str> {
        match self {
            Arch::X86_64 => None,
            Arch::Aarch64 => Some("qemu-aarch64-static"),
            Arch::Armv7 => Some("qemu-arm-static"),
            Arch::Riscv64 => Some("qemu-riscv64-static"),
            Arch::S390x => Some("qemu-s390x-static"),
        }
    }
}

impl Arch {
    /// Built with nightly `-Zbuild-std`, linked against Debian's musl (its crt
    /// objects and `libc.a`) rather than the musl that ships with Rust.
    pub fn build_std(self) -> bool {
        matches!(self, Arch::Armv7 | Arch::Riscv64 | Arch::S390x)
    }
}

impl Build {
    /// Needs nightly: armv7, riscv64 and s390x (no prebuilt core here;
    /// `-Zbuild-std`) and the tiny flavour.
    pub fn nightly(self) -> bool {
        self.tiny || self.arch.build_std()
    }
    pub fn label(self) -> String {
        format!(
            "{}{}",
            self.arch.name(),
            if self.tiny { "-tiny" } else { "" }
        )
    }
    /// Where the finished binary is copied.
    pub fn output(self, root: &Path) -> PathBuf {
        root.join("target/dist")
            .join(format!("depmod-{}", self.label()))
    }
}
