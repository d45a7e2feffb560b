//! depmod.d parser (`Config::parse`), with the kernel-version patterns (POSIX ERE).
//! Input: `<kver>\n<config text>`.
#![no_main]

use depmod::config::{logical_lines, Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (kver, text) = match data.iter().position(|&b| b == b'\n') {
        Some(i) if i <= 64 => (&data[..i], &data[i + 1..]),
        _ => (&b"6.1.0-56-amd64"[..], data),
    };
    let mut cfg = Config::default();
    let mut diags = Vec::new();
    cfg.parse(b"/etc/depmod.d/fuzz.conf", text, kver, &mut diags);
    cfg.finish();
    assert!(!cfg.search.is_empty());
    let lines = logical_lines(text).count();
    assert!(diags.len() <= lines);
});
