//! The module cache's parser (`cache::Cache::parse`), record decoder
//! (`ModuleData::decode`) and note of made indexes (`made_indexes`) on arbitrary
//! bytes: never panic, and what they accept stays proportional to the input.
//!
//! The file's trailing checksum refuses nearly every input as it is, so the
//! input is also tried as a body with its checksum appended: that reaches the
//! record parser with every structure the fuzzer can make.
#![no_main]

use std::sync::Arc;

use depmod::cache::Cache;
use depmod::digest::checksum;
use depmod::made_indexes::MadeIndexes;
use depmod::scan::ModuleData;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Cache::parse(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&checksum(data).to_le_bytes());
    let sealed = Arc::new(sealed);
    if let Ok(cache) = Cache::parse(&sealed) {
        assert!(cache.len() <= data.len());
        for record in cache.records() {
            let _ = cache.by_path(record.path);
            let copied = record.data();
            // Taken in place, a record is the record copied.
            let shared = record.data_in(Some(&sealed));
            assert_eq!(format!("{copied:?}"), format!("{shared:?}"));
            if let Some(d) = copied {
                assert!(d.exports().count() + d.imports().count() <= data.len());
            }
        }
    }
    if let Ok(note) = MadeIndexes::parse(&sealed) {
        assert!(note.entries().len() <= data.len());
        for e in note.entries() {
            assert!(note.find(e.name, &e.made_from).is_some());
        }
    }
    if let Some(d) = ModuleData::decode(data) {
        assert!(d.exports().count() + d.imports().count() <= data.len());
    }
});
