//! `-E Module.symvers` parser, without and with a `-P` prefix.
#![no_main]

use depmod::symvers::parse_symvers;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for prefix in [None, Some(b'_'), Some(b'.')] {
        let mut diags = Vec::new();
        let syms = parse_symvers(data, prefix, &mut diags);
        let lines = data.split(|&b| b == b'\n').count();
        assert!(syms.len() + diags.len() <= lines + data.len() / 10239 + 1);
    }
});
