//! The `.bin` index reader (`index::Reader`) on arbitrary bytes: never panics, never
//! loops, and its output stays proportional to the input.
#![no_main]

use depmod::index::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Reader::new(data) {
        if let Ok(entries) = r.entries() {
            assert!(entries.len() <= data.len());
        }
    }
});
