//! `-F System.map` parser, without and with a `-P` prefix.
#![no_main]

use depmod::symvers::parse_system_map;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for prefix in [None, Some(b'_'), Some(b'.')] {
        let mut diags = Vec::new();
        let syms = parse_system_map(data, prefix, &mut diags);
        let lines = data.split(|&b| b == b'\n').count();
        assert!(syms.len() + diags.len() <= lines + data.len() / 10239 + 1);
    }
});
