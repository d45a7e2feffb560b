//! The Zstd decompressor wrapper: never panics, honours the size limit exactly.
#![no_main]

use depmod::decompress::Format;
use libfuzzer_sys::fuzz_target;

#[path = "common/decompress.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::run(Format::Zstd, data));
