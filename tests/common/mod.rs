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
