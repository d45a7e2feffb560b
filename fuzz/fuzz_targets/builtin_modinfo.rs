//! `modules.builtin.modinfo` → `modules.builtin.alias.bin`, read back.
#![no_main]

use depmod::builtin::builtin_alias_index;
use depmod::index::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut diags = Vec::new();
    let mut out = Vec::new();
    builtin_alias_index(data, &mut diags).write(&mut out);
    Reader::new(&out)
        .and_then(|r| r.entries())
        .expect("our own index reads back");
});
