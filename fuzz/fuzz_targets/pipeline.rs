//! Several fuzzed modules through the whole core: scan, module set, resolve, every
//! output. Input: module images separated by `--MODULE--`; the first byte of the input
//! selects options.
#![no_main]

use depmod::config::Config;
use depmod::index::Reader;
use depmod::modset::ModuleSet;
use depmod::output::{OutputFile, Outputs};
use depmod::resolve::{resolve, ResolveOptions};
use depmod::scan::ModuleData;
use depmod::symvers::KernelSymbol;
use libfuzzer_sys::fuzz_target;

const DIR: &[u8] = b"/lib/modules/6.1.0-56-amd64";
const SEP: &[u8] = b"--MODULE--";

fn split(mut data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    while parts.len() < 16 {
        match data.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => {
                parts.push(&data[..i]);
                data = &data[i + SEP.len()..];
            }
            None => break,
        }
    }
    parts.push(data);
    parts
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let images = split(rest);
    let mut cfg = Config::default();
    cfg.finish();
    let mut set = ModuleSet::new(DIR, &cfg);
    for i in 0..images.len() {
        set.offer(format!("/lib/modules/6.1.0-56-amd64/kernel/m{i}.ko").as_bytes());
    }
    let mut diags = Vec::new();
    let modules = set.finish(None, &mut diags);
    let data: Vec<ModuleData> = modules
        .iter()
        .map(|m| {
            let i: usize = std::str::from_utf8(&m.name[1..]).unwrap().parse().unwrap();
            ModuleData::from_image(images[i])
        })
        .collect();
    let kernel = [
        KernelSymbol {
            name: b"printk",
            crc: 0x1234,
        },
        KernelSymbol {
            name: b"_printk",
            crc: 0x5678,
        },
        KernelSymbol {
            name: b"module_layout",
            crc: 0,
        },
    ];
    let opts = ResolveOptions {
        prefix: (flags & 1 != 0).then_some(b'_'),
        check_crcs: flags & 2 != 0,
        errsyms: flags & 4 != 0,
        verbose: flags & 8 != 0,
        kernel_symbols: flags & 16 != 0,
    };
    let Ok(resolved) = resolve(&data, &kernel, &opts, &mut diags) else {
        return;
    };
    assert_eq!(resolved.deps.len(), modules.len());
    for deps in &resolved.deps {
        assert!(deps.iter().all(|&d| (d as usize) < modules.len()));
    }
    let outputs = Outputs {
        modules: &modules,
        data: &data,
        resolved: &resolved,
        warn_duplicates: flags & 32 != 0,
        leave_out_non_ascii: flags & 64 != 0,
    };
    for file in OutputFile::ALL {
        let mut buf = Vec::new();
        outputs.generate(file, &mut buf, &mut diags);
        if file.is_index() && !buf.is_empty() {
            Reader::new(&buf)
                .and_then(|r| r.entries())
                .expect("our own index reads back");
        }
    }
});
