//! Shared test support: synthetic ELF modules, module trees, the oracles, the real
//! Debian tree, the differential scenarios' helpers. Each integration test crate
//! includes this with `mod common;`.
#![allow(dead_code)]

pub mod debian;
pub mod elf_layout;
pub mod elfgen;
pub mod oracle;
pub mod rng;
pub mod scenario;
pub mod tree;
pub mod variants;

/// The eleven files depmod writes, in kmod's write order (compat §7.0).
pub const OUTPUTS: &[&str] = &[
    "modules.dep",
    "modules.dep.bin",
    "modules.alias",
    "modules.alias.bin",
    "modules.softdep",
    "modules.weakdep",
    "modules.symbols",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
    "modules.devname",
];
