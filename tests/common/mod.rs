//! Shared test support: synthetic ELF modules, module trees, the kmod oracles, the real
//! Debian tree. Each integration test crate includes this with `mod common;`.
#![allow(dead_code)]

pub mod debian;
pub mod elfgen;
pub mod oracle;
pub mod tree;
pub mod variants;
