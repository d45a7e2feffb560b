//! modules.order: which modules exist and the final module order
//! (`ModuleSet::offer` + `ModuleSet::finish`). Input: module paths relative to DIR,
//! one a line, then a 0xFF byte, then the modules.order text.
#![no_main]

use depmod::config::Config;
use depmod::modset::{ModuleSet, Offer};
use libfuzzer_sys::fuzz_target;

const DIR: &[u8] = b"/lib/modules/6.1.0-56-amd64";

fuzz_target!(|data: &[u8]| {
    let (paths, order) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let mut cfg = Config::default();
    cfg.finish();
    let mut set = ModuleSet::new(DIR, &cfg);
    let mut kept = std::collections::BTreeSet::new();
    for rel in paths.split(|&b| b == b'\n').take(256) {
        let mut p = DIR.to_vec();
        p.push(b'/');
        p.extend_from_slice(rel);
        match set.offer(&p) {
            Offer::Added | Offer::Replaced | Offer::Ignored => {
                kept.insert(depmod::names::modname(&p).expect("accepted name"));
            }
            Offer::BadName => {}
        }
    }
    let mut diags = Vec::new();
    let modules = set.finish(Some(order), &mut diags);
    assert_eq!(modules.len(), kept.len(), "modules lost or duplicated");
    let names: std::collections::BTreeSet<_> = modules.iter().map(|m| m.name.clone()).collect();
    assert_eq!(names, kept);
    for m in &modules {
        std::hint::black_box(m.out_path());
    }
});
