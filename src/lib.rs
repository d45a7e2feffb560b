//! depmod's core: module bytes in, index bytes out.
//!
//! This crate is a byte-identical reimplementation of kmod 34.2's `depmod`. The
//! library is `no_std` + `alloc` and does no I/O; the `depmod` binary (feature
//! `host`, module [`host`], on libc without `std`) walks the tree, reads files and
//! writes the results.
//!
//! ```text
//!  files on disk                                 (host: libc, I/O, threads)
//!    │  walk tree, apply depmod.d (config), read/mmap
//!    ▼
//!  module bytes ─► decompress ─► scan (elf) ─► ModuleData   (core, one per module)
//!                                                   ▼
//!                 modset: which file wins, hash order, modules.order
//!                                                   ▼
//!                 resolve: symbol table, dependencies, order, cycles
//!                                                   ▼
//!                 output (+ index, builtin): text files and .bin tries ─► bytes
//!    ▲                                              │
//!    └──────── atomic write (temp file + rename) ◄──┘   (host again)
//! ```
//!
//! With `DEPMOD_CACHE`, the host keeps each module's `ModuleData` between runs
//! ([`cache`]) and skips reading, decompressing and scanning the files that did not
//! change; everything after loading runs as always, so the outputs cannot differ.
//! An output whose file in place already holds exactly its bytes is kept rather
//! than written again (a text file compared with it; an index recognised by the
//! fingerprint of its insertions, [`made_indexes`]).
//!
//! Diagnostics are values ([`diag::Diag`]) returned in kmod's order; the binary
//! words them.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod alias;
pub mod builtin;
pub mod byteindex;
pub mod cache;
pub mod config;
pub mod decompress;
pub mod diag;
pub mod digest;
pub mod elf;
pub mod ere;
pub mod hash;
#[cfg(feature = "host")]
pub mod host;
pub mod index;
pub mod made_indexes;
pub mod modset;
pub mod names;
pub mod output;
pub mod resolve;
pub mod scan;
pub mod sparse;
pub mod symvers;
mod wire;
