//! ELF scan of one (decompressed) module image: `scan::scan` and `ModuleData`.
#![no_main]

use depmod::elf::Elf;
use depmod::scan::{self, InfoKey, ModuleData};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let d = ModuleData::from_image(data);
    // Everything the later stages read must be readable.
    for key in [InfoKey::Alias, InfoKey::Softdep, InfoKey::Weakdep] {
        for v in d.info(key) {
            std::hint::black_box(v);
        }
    }
    let exports = d.exports().count();
    let imports = d.imports().count();
    match scan::scan(data) {
        Ok(s) => {
            assert_eq!(s.imports.len(), imports);
            if let Ok(e) = &s.exports {
                assert_eq!(e.len(), exports);
            }
            // Every name borrows from the image.
            let range = data.as_ptr_range();
            for i in &s.imports {
                assert!(i.name.is_empty() || range.contains(&i.name.as_ptr()));
            }
        }
        Err(_) => {
            assert!(d.error.is_some());
            assert_eq!(exports + imports, 0);
        }
    }
    if let Ok(elf) = Elf::parse(data) {
        for name in [&b".modinfo"[..], b".symtab", b".strtab", b"__versions", b""] {
            if let Some(s) = elf.section(name) {
                assert!(s.len() <= data.len());
            }
        }
    }
});
