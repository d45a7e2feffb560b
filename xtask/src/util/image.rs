//! What `image` hands to `qemu`: a built initramfs, its kernel, and what the VM must
//! report and write.

use std::path::PathBuf;

use super::arch::Arch;

/// A built image.
pub struct Image {
    pub arch: Arch,
    pub kver: String,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The ids of the plan's steps, as `/init` prints them after `PASS `.
    pub steps: Vec<String>,
    /// Our depmod's outputs for the image's tree, written on the host.
    pub host_outputs: PathBuf,
    /// kmod 34.2's outputs for the same tree, when the oracle is available.
    pub oracle_outputs: Option<PathBuf>,
}

/// The `ARCH` argument of `cargo xtask image ARCH` and `qemu ARCH`.
pub fn parse_arch(args: &[String]) -> Result<Arch, String> {
    match args.first().map(String::as_str) {
        Some("x86_64") => Ok(Arch::X86_64),
        Some("aarch64") => Ok(Arch::Aarch64),
        Some("armv7") => Ok(Arch::Armv7),
        Some("riscv64") => Ok(Arch::Riscv64),
        _ => Err("expected an architecture: x86_64, aarch64, armv7 or riscv64".into()),
    }
}
