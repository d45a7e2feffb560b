//! Seeded random module trees: our depmod against kmod 34.2 (every file, stdout,
//! stderr, status) and kmod 30 (text files except modules.weakdep).
//!
//! * `DEPMOD_RANDOM_TREES` — number of trees (default 300).
//! * `DEPMOD_RANDOM_SEED` — seed of the first tree (default fixed); tree `i` uses seed
//!   `SEED + i`, so a failing tree is replayed with
//!   `DEPMOD_RANDOM_SEED=<its seed> DEPMOD_RANDOM_TREES=1 cargo test --test random_trees`.
//! * `DEPMOD_RANDOM_TIMEOUT` — seconds before a hanging kmod is killed (default 2).
//! * `DEPMOD_SUBJECT=kmod30` — harness self-test (kmod 30 vs kmod 34.2, text files).
//! * `DEPMOD_KEEP_TREES=1` — keep the trees on disk.

mod common;

use common::elfgen::*;
use common::oracle::*;
use common::tree::{Damage, Pack, Tree};
use std::time::Duration;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability `p` percent.
    fn pct(&mut self, p: u32) -> bool {
        self.below(100) < p as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

const WORDS: &[&str] = &[
    "snd", "hda", "usb", "net", "core", "i2c", "foo", "bar", "x", "mod", "a", "b", "intel", "amd",
    "virtio", "blk", "scsi", "ext4", "fs", "nf", "ip", "tables", "crc", "hid", "drm", "kms",
    "loop", "md", "raid", "e1000e", "z", "bt", "l2cap", "zz", "top",
];

const ALIASES: &[&str] = &[
    "pci:v00008086d*sv*sd*bc*sc*i*",
    "usb:v1234p5678d*dc*dsc*dp*ic*isc*ip*in*",
    "usb:v1234p[0-9A-F]*d*",
    "of:N*T*Cfoo,bar",
    "acpi*:PNP0A08:*",
    "platform:foo-bar",
    "fs-ext4",
    "a[b-c]-d",
    "bad]x",
    "x[y",
    "crypto-sha256",
    "net-pf-10",
    "dup-alias",
    "dup_alias",
    "",
];

#[derive(Clone)]
struct Module {
    /// File name without the suffix (dashes kept).
    stem: String,
    /// Directory relative to DIR (or to the external dir when `external`).
    dir: String,
    suffix: &'static str,
    /// How the file is stored (the suffix does not have to agree: detection is by
    /// magic).
    pack: Pack,
    damage: Damage,
    external: bool,
    exports: Vec<String>,
    /// CRC of each export as depmod reads it (0 for __ksymtab_strings).
    crcs: Vec<u64>,
    /// 0 = `__crc_` ABS, 1 = `__kcrctab`, 2 = `__ksymtab_strings`, 3 = none.
    style: u8,
    class: Class,
    endian: Endian,
    machine: u16,
}

impl Module {
    fn modname(&self) -> String {
        self.stem.split('.').next().unwrap().replace('-', "_")
    }
    fn rel(&self) -> String {
        format!("{}/{}{}", self.dir, self.stem, self.suffix)
    }
}

struct Generated {
    tree: Tree,
    args: Vec<String>,
    summary: String,
    /// Files ours reads otherwise than kmod 34.2 by intent (gzip, damaged streams, zstd
    /// without content size): the oracles run on stand-ins.
    substs: Vec<Subst>,
}

fn gen_name(r: &mut Rng) -> String {
    let n = r.range(1, 3);
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(if r.pct(50) { '-' } else { '_' });
        }
        s.push_str(r.pick::<&str>(WORDS));
    }
    if r.pct(15) {
        s.push_str(&r.below(10).to_string());
    }
    s
}

fn crc(r: &mut Rng, class: Class) -> u64 {
    if class == Class::Elf64 && r.pct(5) {
        r.next()
    } else {
        r.next() & 0xffff_ffff
    }
}

fn generate(seed: u64) -> Generated {
    let mut r = Rng(seed);
    // How compressed files are stored and damaged: a separate stream, so that these
    // choices do not shift the rest of the tree.
    let mut rc = Rng(seed ^ 0x00c0_ffee_d00d_f00d);
    let kver = r.pick(&["4.4.4", "6.1.0-13-amd64", "5.10.0"]).to_string();
    let t = Tree::new(&kver);
    let root = t.root.display().to_string();
    let n = r.range(1, 40);
    let cyclic = r.pct(8);
    let mut summary = format!("{n} modules{}", if cyclic { ", cyclic" } else { "" });

    // --- module placement and names
    let subdirs = [
        "kernel/drivers/net",
        "kernel/fs",
        "kernel/sound/pci",
        "kernel",
        "updates",
        "updates/dkms",
        "extra",
        "weird",
    ];
    let mut mods: Vec<Module> = Vec::new();
    for _ in 0..n {
        let stem = if !mods.is_empty() && r.pct(12) {
            // a duplicate modname, possibly spelled with dashes/underscores swapped
            let m = r.pick(&mods).stem.clone();
            if r.pct(50) {
                m.replace('-', "_")
            } else {
                m
            }
        } else if r.pct(3) {
            format!("{}.{}", gen_name(&mut r), r.pick(WORDS))
        } else {
            gen_name(&mut r)
        };
        let external = r.pct(8);
        let dir = if external {
            r.pick(&["ext/one", "ext/two"]).to_string()
        } else {
            r.pick(&subdirs).to_string()
        };
        let (suffix, pack) = match r.below(40) {
            0 => (".ko.xz", *rc.pick(&[Pack::Xz, Pack::Xz, Pack::XzCrc64])),
            // Sometimes without content size in the frame header (kmod 34.2 cannot
            // read those; ours and kmod 30 can).
            1 => (".ko.zst", *rc.pick(&[Pack::Zst, Pack::Zst, Pack::ZstPiped])),
            2 => (".ko.gz", Pack::Gz),
            // Compressed content behind a plain .ko suffix.
            _ if rc.pct(2) => (".ko", *rc.pick(&[Pack::Gz, Pack::Xz, Pack::ZstPiped])),
            _ => (".ko", Pack::Plain),
        };
        let damage = match pack {
            Pack::Plain => Damage::Intact,
            _ => match rc.below(20) {
                0 => Damage::Corrupt,
                1 => Damage::Truncated,
                _ => Damage::Intact,
            },
        };
        let (class, endian, machine) = match r.below(10) {
            0 => (Class::Elf32, Endian::Little, EM_386),
            1 => (Class::Elf32, Endian::Big, EM_MIPS),
            2 => (Class::Elf64, Endian::Big, *r.pick(&[EM_S390, EM_PPC64])),
            3 => (Class::Elf64, Endian::Little, EM_AARCH64),
            _ => (Class::Elf64, Endian::Little, EM_X86_64),
        };
        let style = match r.below(20) {
            0..=9 => 0,
            10..=14 => 1,
            15..=18 => 2,
            _ => 3,
        };
        mods.push(Module {
            stem,
            dir,
            suffix,
            pack,
            damage,
            external,
            exports: Vec::new(),
            crcs: Vec::new(),
            style,
            class,
            endian,
            machine,
        });
    }
    // Avoid two files with the same path.
    {
        let mut seen = std::collections::HashSet::new();
        mods.retain(|m| seen.insert((m.external, m.dir.clone(), m.stem.clone())));
    }
    let n = mods.len();
    // The oracles see a `.ko.gz` as `.ko`: where the walk order (by name) may break a tie between
    // equally ranked modules of the same name, that would change the winner; keep
    // such files in xz.
    for i in 0..n {
        let name = mods[i].modname();
        if mods[i].suffix == ".ko.gz" && mods.iter().filter(|m| m.modname() == name).count() > 1 {
            mods[i].suffix = ".ko.xz";
            mods[i].pack = Pack::Xz;
        }
    }

    // --- exports
    let mut shared: Vec<String> = Vec::new();
    for (i, m) in mods.iter_mut().enumerate() {
        let k = r.range(0, 4);
        for j in 0..k {
            let name = if r.pct(2) {
                if shared.is_empty() || r.pct(50) {
                    shared.push(format!("shared_{}", shared.len()));
                }
                r.pick(&shared).clone()
            } else {
                format!("{}_{i}_s{j}", m.modname())
            };
            let c = match m.style {
                0 => crc(&mut r, m.class),
                1 => r.next() & 0xffff_ffff,
                _ => 0,
            };
            m.exports.push(name);
            m.crcs.push(c);
        }
    }

    // --- ELF files
    let kernel_syms = ["printk", "kmalloc", "kfree", "__this_module"];
    let mut kernel_crcs: Vec<(String, u64)> = Vec::new();
    for s in kernel_syms {
        kernel_crcs.push((s.to_string(), r.next() & 0xffff_ffff));
    }
    let mut all_aliases: Vec<String> = Vec::new();
    let mut substs = Vec::new();
    for i in 0..n {
        let m = &mods[i];
        let class = m.class;
        let mut e = Elf::new(class, m.endian, m.machine);
        // exports
        if !m.exports.is_empty() {
            match m.style {
                0 => {
                    for (x, c) in m.exports.iter().zip(&m.crcs) {
                        e.symbols.push(Sym::crc(x, *c));
                    }
                }
                1 => {
                    for (x, c) in m.exports.iter().zip(&m.crcs) {
                        e.symbols.push(Sym::crc_tab(x, *c as u32));
                    }
                }
                2 => e.ksymtab_strings = Some(m.exports.clone()),
                _ => {} // no export information
            }
        }
        // imports
        let mut imports: Vec<(String, bool, u64)> = Vec::new();
        let k = r.range(0, 5);
        for _ in 0..k {
            let j = if cyclic && r.pct(25) {
                r.below(n)
            } else if i > 0 {
                r.below(i)
            } else {
                continue;
            };
            if mods[j].exports.is_empty() {
                continue;
            }
            let x = r.below(mods[j].exports.len());
            let sym = mods[j].exports[x].clone();
            if imports.iter().any(|(s, _, _)| *s == sym) {
                continue;
            }
            let weak = r.pct(15);
            // the CRC the importer expects (usually right)
            let c = if r.pct(90) {
                mods[j].crcs[x]
            } else {
                r.next() & 0xffff_ffff
            };
            imports.push((sym, weak, c));
        }
        if r.pct(50) {
            let s = r.pick(&kernel_syms).to_string();
            if !imports.iter().any(|(x, _, _)| *x == s) {
                let c = kernel_crcs.iter().find(|(k, _)| *k == s).unwrap().1;
                let c = if r.pct(85) { c } else { c ^ 1 };
                imports.push((s, r.pct(10), c));
            }
        }
        if r.pct(10) {
            imports.push((format!("unknown_sym_{}", r.below(5)), r.pct(50), 0));
        }
        for (s, weak, _) in &imports {
            e.symbols.push(Sym::Undef {
                name: s.clone(),
                weak: *weak,
            });
        }
        if r.pct(20) {
            e.symbols.insert(0, Sym::defined("init_module"));
        }
        if r.pct(70) {
            let mut v = vec![(r.next() & 0xffff_ffff, "module_layout".to_string())];
            for (s, _, c) in &imports {
                if r.pct(90) {
                    v.push((*c, s.clone()));
                }
            }
            if r.pct(10) {
                // an unmatched entry naming another module's export
                let j = if cyclic { r.below(n) } else { r.below(i + 1) };
                if let Some(x) = mods[j].exports.first() {
                    v.push((0, x.clone()));
                }
            }
            r.shuffle(&mut v[1..]);
            e.versions = Some(v);
        }
        // modinfo
        let mut info: Vec<String> = Vec::new();
        if r.pct(70) {
            info.push("license=GPL".into());
        }
        for _ in 0..r.range(0, 3) {
            let a = if r.pct(60) {
                r.pick(ALIASES).to_string()
            } else {
                format!("{}:{}", r.pick(WORDS), gen_name(&mut r))
            };
            all_aliases.push(a.clone());
            info.push(format!("alias={a}"));
        }
        if r.pct(10) {
            info.push(format!("alias=devname:{}", gen_name(&mut r)));
        }
        if r.pct(10) {
            let kind = r.pick(&["char", "block"]);
            info.push(format!(
                "alias={kind}-major-{}-{}",
                r.below(300),
                r.below(300)
            ));
        }
        if r.pct(12) {
            info.push(format!(
                "softdep=pre: {} post: {}",
                gen_name(&mut r),
                gen_name(&mut r)
            ));
        }
        if r.pct(12) {
            info.push(format!("weakdep={}", gen_name(&mut r)));
        }
        if r.pct(20) {
            info.push(format!("depends={}", gen_name(&mut r)));
        }
        if r.pct(1) {
            // a key without '=' (key = whole string, value = "")
            info.push(
                r.pick(&["alias", "softdep", "weakdep", "license"])
                    .to_string(),
            );
        }
        r.shuffle(&mut info);
        if r.pct(4) {
            // raw section: leading NULs, runs of NULs, no final NUL
            let mut raw = vec![0u8; r.below(3)];
            for (k, rec) in info.iter().enumerate() {
                if k > 0 {
                    raw.extend(std::iter::repeat_n(0u8, r.range(1, 3)));
                }
                raw.extend_from_slice(rec.as_bytes());
            }
            if r.pct(50) {
                raw.push(0);
            }
            e.modinfo_raw = Some(raw);
        } else if !info.is_empty() || r.pct(50) {
            e.modinfo = Some(info);
        }
        let mut bytes = e.build();
        if r.pct(2) {
            // a broken module
            bytes = match r.below(3) {
                0 => b"not an elf".to_vec(),
                1 => Vec::new(),
                _ => bytes[..bytes.len() / 2].to_vec(),
            };
        }
        let m = &mods[i];
        let rel = if m.external {
            m.rel()
        } else {
            t.mod_rel(&m.rel())
        };
        substs.extend(t.packed(&rel, &bytes, m.pack, m.damage));
    }
    if !substs.is_empty() {
        summary.push_str(&format!(
            ", stand-ins {:?}",
            substs.iter().map(|s| s.rel.as_str()).collect::<Vec<_>>()
        ));
    }

    // --- modules.order
    if r.pct(70) {
        let mut lines: Vec<String> = Vec::new();
        for m in &mods {
            if r.pct(70) {
                lines.push(if m.external {
                    format!("{root}/{}", m.rel())
                } else {
                    format!("{}/{}.ko", m.dir, m.stem)
                });
            }
        }
        r.shuffle(&mut lines);
        for _ in 0..r.range(0, 3) {
            if !lines.is_empty() {
                let l = r.pick(&lines).clone();
                let at = r.below(lines.len() + 1);
                lines.insert(at, l);
            }
        }
        if r.pct(20) {
            lines.insert(0, format!("#{}", r.below(1000)));
        }
        if r.pct(20) {
            lines.push("kernel/missing/module.ko".into());
        }
        let mut s = lines.join("\n");
        if !r.pct(5) {
            s.push('\n');
        }
        if lines.is_empty() {
            s.clear();
        }
        t.order(&s);
        summary.push_str(", order");
    }
    // --- modules.builtin
    if r.pct(60) {
        let mut s = String::new();
        for _ in 0..r.range(0, 6) {
            match r.below(12) {
                0 => s.push_str("/abs/path.ko\n"),
                1 => s.push('\n'),
                2 => s.push_str("1digit.ko\n"),
                3 => s.push_str("noslash\n"),
                _ => s.push_str(&format!(
                    "kernel/{}/{}.ko\n",
                    r.pick(&["drivers", "fs", "net"]),
                    gen_name(&mut r)
                )),
            }
        }
        t.builtin(&s);
    }
    // --- modules.builtin.modinfo
    if r.pct(60) {
        let mut v: Vec<u8> = Vec::new();
        for _ in 0..r.range(0, 8) {
            let name = gen_name(&mut r).replace('-', "_");
            let rec = match r.below(10) {
                0 => format!("{name}.license=GPL"),
                1 => format!("{name}.broken"),
                2 => format!("{name}.file=kernel/{name}.ko"),
                _ => {
                    let a = if !all_aliases.is_empty() && r.pct(30) {
                        r.pick(&all_aliases).clone()
                    } else {
                        r.pick(ALIASES).to_string()
                    };
                    format!("{name}.alias={a}")
                }
            };
            v.extend_from_slice(rec.as_bytes());
            v.push(0);
        }
        t.builtin_modinfo(&v);
    }
    // --- depmod.d
    if r.pct(50) {
        let mut c = String::new();
        let mut search: Vec<&str> = vec![
            "updates",
            "updates/dkms",
            "extra",
            "built-in",
            "external",
            "weird",
            "kernel",
        ];
        r.shuffle(&mut search);
        let k = r.range(0, 4);
        if k > 0 {
            c.push_str(&format!("search {}\n", search[..k].join(" ")));
        }
        if r.pct(60) {
            c.push_str(&format!(
                "external {} {root}/ext/one\n",
                r.pick(&["*", "4", "6\\.1", "9.9"])
            ));
        }
        if r.pct(40) {
            c.push_str(&format!("external * {root}/ext/two\n"));
        }
        if r.pct(25) && !mods.is_empty() {
            let m = r.pick(&mods);
            let stem = m.stem.split('.').next().unwrap().to_string();
            c.push_str(&format!(
                "override {stem} {} {}\n",
                r.pick(&["*", kver.as_str(), "0.0"]),
                r.pick(&subdirs)
            ));
        }
        if r.pct(15) {
            c.push_str(&format!(
                "exclude {}\n",
                r.pick(&["weird", "dkms", "fs", "one"])
            ));
        }
        if r.pct(10) {
            c.push_str("bogus line\n");
        }
        t.conf(
            r.pick::<&str>(&["a.conf", "dist.conf", "00-local.conf"]),
            &c,
        );
        summary.push_str(", config");
    }
    if r.pct(10) {
        t.conf("zz.conf", "search updates built-in\n");
    }

    // --- options
    let mut opts: Vec<String> = Vec::new();
    let sv = t.write(
        "Module.symvers",
        kernel_crcs
            .iter()
            .map(|(s, c)| format!("{c:#010x}\t{s}\tvmlinux\tEXPORT_SYMBOL\t\n"))
            .collect::<String>(),
    );
    let sm = t.write(
        "System.map",
        kernel_syms
            .iter()
            .map(|s| format!("ffffffff81000000 r __ksymtab_{s}\n"))
            .collect::<String>(),
    );
    match r.below(20) {
        0 | 1 => opts.push("-n".into()),
        2 | 3 => opts.push("-v".into()),
        4..=6 => {
            opts.extend(["-e".to_string(), "-E".into(), sv.display().to_string()]);
        }
        7 => {
            opts.extend(["-e".to_string(), "-F".into(), sm.display().to_string()]);
        }
        8 => opts.push("-w".into()),
        9 => opts.extend(["-n".to_string(), "-v".into()]),
        _ => {}
    }
    summary.push_str(&format!(", opts {opts:?}"));
    let mut args = vec![
        "-b".to_string(),
        root.clone(),
        "-C".into(),
        t.confdir().display().to_string(),
    ];
    args.extend(opts);
    args.push(kver);
    Generated {
        tree: t,
        args,
        summary,
        substs,
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let v = v.trim();
            let parsed = if let Some(h) = v.strip_prefix("0x") {
                u64::from_str_radix(h, 16)
            } else {
                v.parse()
            };
            parsed.unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        }
        Err(_) => default,
    }
}

#[test]
fn random_trees() {
    let count = env_u64("DEPMOD_RANDOM_TREES", 300);
    let base = env_u64("DEPMOD_RANDOM_SEED", 0x5eed_0000);
    let timeout = env_u64("DEPMOD_RANDOM_TIMEOUT", 2);
    // Resolve the binaries up front (fails loudly when an oracle is missing).
    kmod34();
    kmod30();
    let subj = subject();
    eprintln!(
        "random trees: {count} trees, seeds {base:#x}..{:#x}, subject {}",
        base.wrapping_add(count),
        subj.name()
    );
    let threads = 2u64;
    let stats = std::sync::Mutex::new(std::collections::BTreeMap::<String, usize>::new());
    let stats = &stats;
    let failures: Vec<(u64, String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut fails = Vec::new();
                    let mut i = t;
                    while i < count {
                        let seed = base.wrapping_add(i);
                        let t0 = std::time::Instant::now();
                        let g = generate(seed);
                        let t_gen = t0.elapsed();
                        let d = Diff {
                            run: RunOpts {
                                timeout: Duration::from_secs(timeout),
                                ..RunOpts::default()
                            },
                            order_file: Some(g.tree.moddir().join("modules.order")),
                            substs: g.substs.clone(),
                            ..Diff::default()
                        };
                        let res = differential(&g.tree.root, &g.args, &d);
                        if std::env::var_os("DEPMOD_RANDOM_TIMING").is_some() {
                            eprintln!(
                                "seed {seed:#x}: generate {t_gen:?}, compare {:?} ({})",
                                t0.elapsed() - t_gen,
                                g.summary
                            );
                        }
                        {
                            let mut st = stats.lock().unwrap();
                            let key = match &res {
                                Ok(o) if o.status == Status::Exit(1) => {
                                    let e = o.stderr_str();
                                    let last = e.lines().last().unwrap_or("").to_string();
                                    let last = if last.contains("Found") {
                                        "cycles".to_string()
                                    } else {
                                        last
                                    };
                                    format!("kmod 34.2 exit 1: {last}")
                                }
                                Ok(o) => format!("kmod 34.2 {}", o.status),
                                Err(_) => "mismatch".to_string(),
                            };
                            *st.entry(key).or_default() += 1;
                            for sb in &g.substs {
                                let k = match &sb.ours_error {
                                    Some(e) => format!("B: {e}"),
                                    None if sb.v30_as_is => "C: zstd without content size".into(),
                                    None => "A: gzip".into(),
                                };
                                *st.entry(k).or_default() += 1;
                            }
                            if let Ok(o) = &res {
                                let deps = o
                                    .file("modules.dep")
                                    .map(|d| d.split(|&b| b == b'\n').filter(|l| l.contains(&b' ')).count())
                                    .unwrap_or(0);
                                *st.entry("modules.dep lines with deps".into()).or_default() += deps;
                            }
                        }
                        if let Err(e) = res {
                            let shown = {
                                let mut st = stats.lock().unwrap();
                                let n = st.entry("shown".into()).or_default();
                                *n += 1;
                                *n
                            };
                            if shown > 5 {
                                // Later mismatches: one line each (what differs).
                                let what: Vec<&str> = e
                                    .lines()
                                    .filter(|l| {
                                        l.ends_with("differs:")
                                            || l.contains(": kmod")
                                            || l.starts_with("status")
                                    })
                                    .collect();
                                eprintln!(
                                    "MISMATCH seed {seed:#x} ({}): {}",
                                    g.summary,
                                    what.join("; ")
                                );
                                fails.push((seed, g.summary.clone(), e));
                                i += threads;
                                continue;
                            }
                            eprintln!(
                                "MISMATCH seed {seed:#x} ({}):\n{}\nreplay: DEPMOD_RANDOM_SEED={seed:#x} DEPMOD_RANDOM_TREES=1 DEPMOD_KEEP_TREES=1 cargo test --test random_trees\n",
                                g.summary,
                                clip(e.as_bytes(), 6000)
                            );
                            fails.push((seed, g.summary.clone(), e));
                        }
                        i += threads;
                    }
                    fails
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut st = stats.lock().unwrap();
    st.remove("shown");
    eprintln!("random trees: {st:?}");
    if !failures.is_empty() {
        let mut seeds: Vec<_> = failures.iter().map(|f| f.0).collect();
        seeds.sort();
        panic!(
            "{} of {count} random trees differ; seeds: {}",
            failures.len(),
            seeds
                .iter()
                .map(|s| format!("{s:#x}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

/// The generator is deterministic (a seed always gives the same tree).
#[test]
fn generator_is_deterministic() {
    let snap = |seed| {
        let g = generate(seed);
        let mut files = Vec::new();
        fn walk(p: &std::path::Path, base: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
            let mut v: Vec<_> = std::fs::read_dir(p).unwrap().flatten().collect();
            v.sort_by_key(|e| e.file_name());
            for e in v {
                let path = e.path();
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                if path.is_dir() {
                    walk(&path, base, out);
                } else {
                    let c = std::fs::read(&path).unwrap();
                    // absolute paths of the tempdir differ between the two trees
                    let c = String::from_utf8_lossy(&c)
                        .replace(&base.display().to_string(), "ROOT")
                        .into_bytes();
                    out.push((rel, c));
                }
            }
        }
        walk(&g.tree.root, &g.tree.root, &mut files);
        let args: Vec<String> = g
            .args
            .iter()
            .map(|a| a.replace(&g.tree.root.display().to_string(), "ROOT"))
            .collect();
        (files, args)
    };
    for seed in [1u64, 2, 0x5eed_0000] {
        assert!(snap(seed) == snap(seed), "seed {seed} is not reproducible");
    }
}
