//! Accept/reject parity on damaged modules, against kmod 34.2.
//!
//! Thousands of random damaged variants of real Debian 6.1 modules: byte flips in the
//! section header table, the section-name table, `.symtab`, `.strtab`, `.modinfo`,
//! `__versions`, `__ksymtab_strings`, the ELF header or anywhere in the file; edits of
//! chosen fields (`sh_name`, `sh_offset`, `sh_size`, `sh_link`, `sh_entsize`, `e_shoff`,
//! `e_shnum`, `e_shstrndx`, symbol fields); truncations. Each variant replaces one
//! module of a small tree of real modules that depend on each other (so a module
//! that loses its exports takes dependencies away from the others), and kmod 34.2 and
//! ours run on that tree with one of three command lines (write the indexes; `-n -e
//! -E Module.symvers`; `-e -E Module.symvers`). Wherever kmod neither aborts, hangs
//! nor stops with `FATAL`, every file written, stdout, stderr and the exit status must
//! be kmod's, byte for byte. Where it does, ours must still exit without crashing
//! (README, "Bad input": one corrupt module never stops the run).
//!
//! * `DAMAGED_PARITY_VARIANTS=N`: how many variants (default [`DEFAULT_VARIANTS`], the
//!   bounded run of `cargo xtask test`).
//! * `DAMAGED_PARITY_SEED=S`: the seed (default [`DEFAULT_SEED`]); variant `i` of a
//!   seed is always the same damage, whatever the thread that runs it.
//! * `DAMAGED_PARITY_ONLY=i,j,…`: run only these variants (to replay a failure).
//!
//! A differing variant's file is kept as `target/damaged-parity/<seed>-<i>-<name>.ko`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::debian::{self, KVER};
use common::elf_layout::{layout, rd, wr, Layout};
use common::oracle::{self, Outcome, Policy, RunOpts, Status};
use common::rng::Rng;
use common::tree::Tree;

/// Variants of the bounded run.
const DEFAULT_VARIANTS: usize = 1000;
/// Seed of the bounded run.
const DEFAULT_SEED: u64 = 0x5eed_0001;

/// The tree: real modules, several exporting symbols the others import (fat → vfat,
/// msdos; cdrom → isofs; dm-mod → dm-bufio → dm-snapshot, dm-crypt; usb-storage →
/// uas, ums-realtek), with aliases (usb-storage has 419), `__versions` everywhere.
/// Every one of them is a damage target in turn.
const MODULES: &[&str] = &[
    "kernel/fs/fat/fat.ko",
    "kernel/fs/fat/vfat.ko",
    "kernel/fs/fat/msdos.ko",
    "kernel/fs/nls/nls_cp437.ko",
    "kernel/drivers/cdrom/cdrom.ko",
    "kernel/fs/isofs/isofs.ko",
    "kernel/lib/crc16.ko",
    "kernel/fs/mbcache.ko",
    "kernel/drivers/md/dm-mod.ko",
    "kernel/drivers/md/dm-bufio.ko",
    "kernel/drivers/md/dm-snapshot.ko",
    "kernel/drivers/md/dm-crypt.ko",
    "kernel/drivers/block/loop.ko",
    "kernel/drivers/usb/common/usb-common.ko",
    "kernel/drivers/scsi/scsi_common.ko",
    "kernel/drivers/usb/storage/usb-storage.ko",
    "kernel/drivers/usb/storage/uas.ko",
    "kernel/drivers/usb/storage/ums-realtek.ko",
    "kernel/drivers/net/mii.ko",
];

/// The command lines (after `-b ROOT -C CONF`, before the version).
const MODES: &[&[&str]] = &[
    &[],
    &["-n", "-e", "-E", "@SYMVERS"],
    &["-e", "-E", "@SYMVERS"],
];

/// The sections the damage aims at most.
const NAMED: &[&str] = &[
    ".symtab",
    ".strtab",
    ".modinfo",
    "__versions",
    "__ksymtab_strings",
    ".shstrtab",
    "__kcrctab",
    "__kcrctab_gpl",
];

// ---------------------------------------------------------------------------------------
// Damage

/// The damage classes, in report order.
const CLASSES: &[&str] = &[
    "section table flips",
    "section-name table flips",
    ".symtab flips",
    ".strtab flips",
    ".modinfo flips",
    "__versions flips",
    "__ksymtab_strings flips",
    "ELF header flips",
    "flips anywhere",
    "section header field",
    "ELF header field",
    "symbol field",
    "truncation",
];

struct Variant {
    /// Index into [`MODULES`].
    target: usize,
    /// Index into [`CLASSES`].
    class: usize,
    /// Index into [`MODES`].
    mode: usize,
    /// What was done, precisely enough to read the file's damage from it.
    what: String,
    bytes: Vec<u8>,
}

/// Changes one byte at `o` in one of several ways; `text` favours printable ASCII
/// (damaged `.modinfo` text that still reads as text reaches the alias indexes).
fn hit(rng: &mut Rng, b: &mut [u8], o: usize, text: bool) -> String {
    let old = b[o];
    let new = match (rng.below(if text { 6 } else { 4 }), text) {
        (0, _) => old ^ (1 << rng.below(8)),
        (1, _) => old ^ (1 + rng.below(255)) as u8,
        (2, _) => [0u8, 0xff, 1, 0x80][rng.below(4)],
        (3, false) => rng.next() as u8,
        (3, true) => 0,
        (4, _) => b"=*?[]-_.:/ aZ09"[rng.below(15)],
        _ => b' ' + rng.below(95) as u8,
    };
    b[o] = new;
    format!("{o:#x}:{old:02x}->{new:02x}")
}

/// 1 to 4 (mostly 1) bytes hit in `range`.
fn flips(rng: &mut Rng, b: &mut [u8], range: std::ops::Range<usize>, text: bool) -> String {
    let n = [1, 1, 1, 2, 2, 3, 4][rng.below(7)];
    let mut v = Vec::new();
    for _ in 0..n {
        let o = range.start + rng.below(range.len());
        v.push(hit(rng, b, o, text));
    }
    v.join(" ")
}

/// An interesting value for a field of `width` bytes that holds `old`; `peers` are
/// the values the same field has elsewhere in the file.
fn value(rng: &mut Rng, old: u64, width: usize, len: u64, peers: &[u64]) -> u64 {
    let max = if width == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    };
    let v = match rng.below(12) {
        0 => 0,
        1 => 1,
        2 => old.wrapping_add(1 + rng.below(8) as u64),
        3 => old.wrapping_sub(1 + rng.below(8) as u64),
        4 => old ^ (1 << rng.below(8 * width)),
        5 => *rng.pick(peers),
        6 => len,
        7 => len.wrapping_sub(old),
        8 => max,
        9 => rng.below(len as usize) as u64,
        10 => rng.next(),
        _ => old.wrapping_add(rng.below(64) as u64 * 8),
    };
    v & max
}

/// Offsets of the names [`NAMED`] (and of every other name) in the section-name table.
fn name_offsets(l: &Layout) -> Vec<u64> {
    let mut v: Vec<u64> = l.sections.iter().map(|s| u64::from(s.name_off)).collect();
    for n in NAMED {
        if let Some(s) = l.find(n) {
            v.push(u64::from(s.name_off));
        }
    }
    let shstr = &l.sections[l.shstrndx];
    v.push(shstr.size);
    v.push(shstr.size - 1);
    v
}

fn damage(rng: &mut Rng, src: &[u8], class: usize) -> (String, Vec<u8>) {
    let l = layout(src);
    let len = src.len();
    let mut b = src.to_vec();
    let table = l.shoff..l.shoff + l.shnum * 64;
    let named = |name: &str| l.range(name);
    let what = match CLASSES[class] {
        "section table flips" => flips(rng, &mut b, table, false),
        "section-name table flips" => {
            let s = &l.sections[l.shstrndx];
            let r = s.offset as usize..(s.offset + s.size) as usize;
            let text = rng.chance(50);
            flips(rng, &mut b, r, text)
        }
        "ELF header flips" => flips(rng, &mut b, 0..64, false),
        "flips anywhere" => flips(rng, &mut b, 0..len, false),
        "truncation" => {
            // Mostly near a section boundary.
            let at = if rng.chance(70) {
                let s = rng.pick(&l.sections);
                let edge = if rng.chance(50) {
                    s.offset
                } else {
                    s.offset + s.size
                };
                (edge as usize + rng.below(3)).saturating_sub(1)
            } else {
                rng.below(len)
            };
            let at = at.min(len - 1);
            b.truncate(at);
            format!("truncated to {at}")
        }
        "section header field" => {
            // The section-name table's own header, the sections depmod reads, any.
            let idx = match rng.below(10) {
                0 | 1 => l.shstrndx,
                2..=5 => match l.find(NAMED[rng.below(NAMED.len())]) {
                    Some(s) => s.index,
                    None => l.shstrndx,
                },
                _ => rng.below(l.shnum),
            };
            let h = l.shoff + idx * 64;
            // (name, offset in the header, width)
            let fields: &[(&str, usize, usize)] = &[
                ("sh_name", 0, 4),
                ("sh_name", 0, 4),
                ("sh_type", 4, 4),
                ("sh_flags", 8, 8),
                ("sh_offset", 24, 8),
                ("sh_offset", 24, 8),
                ("sh_size", 32, 8),
                ("sh_size", 32, 8),
                ("sh_link", 40, 4),
                ("sh_info", 44, 4),
                ("sh_entsize", 56, 8),
            ];
            let &(fname, at, width) = rng.pick(fields);
            let old = rd(&b, h + at, width);
            let names_size = l.sections[l.shstrndx].size;
            let new = match (fname, rng.below(10)) {
                // Another section's name, or about the end of the name table.
                ("sh_name", 0..=2) => *rng.pick(&name_offsets(&l)),
                ("sh_name", 3 | 4) => names_size + rng.below(4) as u64 - 2,
                // kmod takes offset 0 for "no such section".
                ("sh_offset", 0 | 1) => 0,
                _ => {
                    let peers: Vec<u64> = (0..l.shnum)
                        .map(|i| rd(&b, l.shoff + i * 64 + at, width))
                        .collect();
                    value(rng, old, width, len as u64, &peers)
                }
            };
            wr(&mut b, h + at, width, new);
            format!(
                "section {idx} ({}) {fname} {old:#x} -> {new:#x}",
                l.sections[idx].name
            )
        }
        "ELF header field" => {
            let shnum = l.shnum as u64;
            let strtab = l.find(".strtab").map_or(1, |s| s.index as u64);
            let (fname, at, width, new): (&str, usize, usize, u64) = match rng.below(9) {
                0 => (
                    "e_shoff",
                    0x28,
                    8,
                    value(rng, l.shoff as u64, 8, len as u64, &[0, 64, len as u64]),
                ),
                1 | 2 => {
                    let v = match rng.below(6) {
                        0 => 0,
                        1 => shnum - 1,
                        2 => shnum + 1,
                        3 => rng.below(l.shnum) as u64,
                        4 => l.shstrndx as u64 + 1,
                        _ => l.shstrndx as u64,
                    };
                    ("e_shnum", 0x3c, 2, v)
                }
                3 | 4 => {
                    let v = match rng.below(6) {
                        0 => 0,
                        1 => shnum,
                        2 => shnum - 1,
                        3 => strtab,
                        4 => 1 + rng.below(l.shnum - 1) as u64,
                        _ => (l.shstrndx as u64).wrapping_sub(1),
                    };
                    ("e_shstrndx", 0x3e, 2, v)
                }
                5 => ("e_shentsize", 0x3a, 2, *rng.pick(&[0, 40, 63, 65, 128])),
                6 => ("e_machine", 0x12, 2, *rng.pick(&[2, 43, 0, 0xffff])),
                7 => ("EI_CLASS", 4, 1, *rng.pick(&[0, 1, 3])),
                _ => ("EI_DATA", 5, 1, *rng.pick(&[0, 2, 3])),
            };
            let old = rd(&b, at, width);
            wr(&mut b, at, width, new);
            format!("{fname} {old:#x} -> {new:#x}")
        }
        "symbol field" => {
            let sym = l.find(".symtab").expect(".symtab");
            let strsize = l.find(".strtab").map_or(0, |s| s.size);
            let count = (sym.size / 24) as usize;
            let base = sym.offset as usize;
            let name_of = |b: &[u8], i: usize| -> Vec<u8> {
                let o = rd(b, base + i * 24, 4) as usize;
                let start = l.find(".strtab").unwrap().offset as usize + o;
                b[start..]
                    .iter()
                    .take_while(|&&c| c != 0)
                    .copied()
                    .collect()
            };
            // A `__crc_` symbol, an undefined one, or any.
            let crc: Vec<usize> = (1..count)
                .filter(|&i| name_of(&b, i).starts_with(b"__crc_"))
                .collect();
            let undef: Vec<usize> = (1..count)
                .filter(|&i| rd(&b, base + i * 24 + 6, 2) == 0)
                .collect();
            let i = match rng.below(3) {
                0 if !crc.is_empty() => *rng.pick(&crc),
                1 if !undef.is_empty() => *rng.pick(&undef),
                _ => 1 + rng.below(count - 1),
            };
            let e = base + i * 24;
            let (fname, at, width, new) = match rng.below(5) {
                0 => {
                    let peers: Vec<u64> = vec![strsize, strsize - 1, 0, rd(&b, base + 24, 4)];
                    let v = value(rng, rd(&b, e, 4), 4, strsize, &peers);
                    ("st_name", 0, 4, v)
                }
                1 => {
                    let v = match rng.below(4) {
                        0 => 0x20 | (rd(&b, e + 4, 1) & 0xf),
                        1 => 0x10 | (rd(&b, e + 4, 1) & 0xf),
                        2 => (rd(&b, e + 4, 1) & 0xf0) | 13,
                        _ => rng.next() & 0xff,
                    };
                    ("st_info", 4, 1, v)
                }
                2 | 3 => {
                    let v = match rng.below(5) {
                        0 => 0,
                        1 => 0xfff1,
                        2 => rng.below(l.shnum) as u64,
                        3 => l.shnum as u64,
                        _ => rd(&b, e + 6, 2) ^ 1,
                    };
                    ("st_shndx", 6, 2, v)
                }
                _ => {
                    let v = value(rng, rd(&b, e + 8, 8), 8, len as u64, &[0, 4, 0x100]);
                    ("st_value", 8, 8, v)
                }
            };
            let old = rd(&b, e + at, width);
            wr(&mut b, e + at, width, new);
            format!(
                "symbol {i} ({}) {fname} {old:#x} -> {new:#x}",
                String::from_utf8_lossy(&name_of(src, i))
            )
        }
        named_flips => {
            let name = match named_flips {
                ".symtab flips" => ".symtab",
                ".strtab flips" => ".strtab",
                ".modinfo flips" => ".modinfo",
                "__versions flips" => "__versions",
                _ => "__ksymtab_strings",
            };
            match named(name) {
                Some(r) => {
                    let text = name != ".symtab" && rng.chance(60);
                    format!("{name}: {}", flips(rng, &mut b, r, text))
                }
                // This module has no such section: flip its section table instead.
                None => format!("(no {name}) table: {}", flips(rng, &mut b, table, false)),
            }
        }
    };
    (what, b)
}

fn make_variant(seed: u64, i: usize, sources: &[Vec<u8>]) -> Variant {
    let mut rng = Rng::for_variant(seed, i);
    let target = rng.below(sources.len());
    let class = rng.below(CLASSES.len());
    let mode = rng.below(MODES.len());
    let (what, bytes) = damage(&mut rng, &sources[target], class);
    Variant {
        target,
        class,
        mode,
        what,
        bytes,
    }
}

// ---------------------------------------------------------------------------------------
// The tree

/// The [`MODULES`], read from the Debian tree.
fn read_sources() -> Vec<Vec<u8>> {
    let deb = debian::module_dir().unwrap_or_else(|e| panic!("Debian tree: {e}"));
    MODULES
        .iter()
        .map(|rel| fs::read(deb.join(rel)).unwrap())
        .collect()
}

/// `Module.symvers` restricted to the vmlinux symbols the tree's modules import.
fn symvers(sources: &[Vec<u8>]) -> String {
    let mut wanted = BTreeSet::new();
    for src in sources {
        let l = layout(src);
        if let Some(r) = l.range("__versions") {
            for e in src[r].chunks_exact(64) {
                let name = &e[8..];
                let n = name.iter().position(|&c| c == 0).unwrap_or(name.len());
                wanted.insert(String::from_utf8_lossy(&name[..n]).into_owned());
            }
        }
    }
    let path = debian::module_symvers().unwrap_or_else(|e| panic!("Module.symvers: {e}"));
    let text = fs::read_to_string(path).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() >= 3 && f[2] == "vmlinux" && wanted.contains(f[1]) {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(
        out.lines().count() > 100,
        "Module.symvers has the vmlinux symbols"
    );
    out
}

fn new_tree(sources: &[Vec<u8>], symvers: &str) -> Tree {
    let tree = Tree::new(KVER);
    for (rel, bytes) in MODULES.iter().zip(sources) {
        tree.module(rel, bytes);
    }
    tree.empty_inputs();
    tree.order_lines(MODULES);
    tree.write("Module.symvers", symvers);
    tree
}

fn args(tree: &Tree, mode: usize) -> Vec<String> {
    let mut a = vec![
        "-b".to_string(),
        tree.root.display().to_string(),
        "-C".to_string(),
        tree.confdir().display().to_string(),
    ];
    for &m in MODES[mode] {
        a.push(if m == "@SYMVERS" {
            tree.path("Module.symvers").display().to_string()
        } else {
            m.to_string()
        });
    }
    a.push(tree.kver.clone());
    a
}

// ---------------------------------------------------------------------------------------
// The run

/// What kmod 34.2 did with a variant, and whether ours matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Identical,
    KmodAborted,
    KmodHung,
    KmodFatal,
    Differs,
}

const VERDICTS: [Verdict; 5] = [
    Verdict::Identical,
    Verdict::KmodAborted,
    Verdict::KmodHung,
    Verdict::KmodFatal,
    Verdict::Differs,
];

fn env_usize(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// One variant: (verdict, problems found on ours alone, the difference from kmod).
fn check(tree: &Tree, v: &Variant, kmod: &oracle::Depmod) -> (Verdict, Vec<String>, String) {
    let rel = MODULES[v.target];
    tree.module(rel, &v.bytes);
    let a = args(tree, v.mode);
    let opts = RunOpts {
        timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let ours: Outcome = oracle::run(&oracle::ours(), &a, &tree.root, &opts);
    let k: Outcome = oracle::run(kmod, &a, &tree.root, &opts);
    let mut problems = Vec::new();
    if ours.status.crashed() || ours.stderr_str().contains("panicked") {
        problems.push(format!("ours {}: {}", ours.status, ours.stderr_str()));
    }
    let verdict = match k.status {
        Status::Signal(_) => Verdict::KmodAborted,
        Status::Timeout => Verdict::KmodHung,
        // Where kmod stops on a key its index cannot hold, ours leaves the key out
        // and writes the rest: checked against what kmod did before it stopped.
        Status::Exit(_) if oracle::index_fatal(&k) => match oracle::check_index_fatal(&k, &ours) {
            Ok(()) => Verdict::KmodFatal,
            Err(e) => return (Verdict::Differs, problems, e),
        },
        Status::Exit(_) if k.stderr_str().contains("FATAL") => Verdict::KmodFatal,
        Status::Exit(_) => match oracle::compare(&k, &ours, Policy::FULL) {
            Ok(()) => Verdict::Identical,
            Err(e) => return (Verdict::Differs, problems, e),
        },
    };
    (verdict, problems, String::new())
}

#[test]
fn damaged_modules_match_kmod() {
    let t0 = Instant::now();
    let seed = env_usize("DAMAGED_PARITY_SEED").unwrap_or(DEFAULT_SEED);
    let n = env_usize("DAMAGED_PARITY_VARIANTS").map_or(DEFAULT_VARIANTS, |v| v as usize);
    let only: Option<Vec<usize>> = std::env::var("DAMAGED_PARITY_ONLY")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    let kmod = oracle::kmod34();
    let sources = read_sources();
    let symvers = symvers(&sources);
    let indices: Vec<usize> = only.unwrap_or_else(|| (0..n).collect());

    // The tree as it is: both agree on every command line, or the comparison is moot.
    {
        let tree = new_tree(&sources, &symvers);
        for (mode, line) in MODES.iter().enumerate() {
            let a = args(&tree, mode);
            let opts = RunOpts::default();
            let o = oracle::run(&oracle::ours(), &a, &tree.root, &opts);
            let k = oracle::run(&kmod, &a, &tree.root, &opts);
            if let Err(e) = oracle::compare(&k, &o, Policy::FULL) {
                panic!("the undamaged tree already differs ({line:?}):\n{e}");
            }
            assert_eq!(o.status, Status::Exit(0), "{}", o.stderr_str());
        }
    }

    let keep = debian::target_dir().join("damaged-parity");
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let tree = new_tree(&sources, &symvers);
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = indices.get(k) else { break };
                    let v = make_variant(seed, i, &sources);
                    let (verdict, problems, diff) = check(&tree, &v, &kmod);
                    if verdict == Verdict::Differs || !problems.is_empty() {
                        let _ = fs::create_dir_all(&keep);
                        let base = MODULES[v.target].rsplit('/').next().unwrap();
                        let _ = fs::write(keep.join(format!("{seed:#x}-{i}-{base}")), &v.bytes);
                    }
                    tree.module(MODULES[v.target], &sources[v.target]);
                    results
                        .lock()
                        .unwrap()
                        .push((i, v, verdict, problems, diff));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|r| r.0);

    // Counts: overall, then per damage class.
    let mut total: BTreeMap<Verdict, usize> = BTreeMap::new();
    let mut per_class: BTreeMap<usize, BTreeMap<Verdict, usize>> = BTreeMap::new();
    for (_, v, verdict, _, _) in &results {
        *total.entry(*verdict).or_default() += 1;
        *per_class
            .entry(v.class)
            .or_default()
            .entry(*verdict)
            .or_default() += 1;
    }
    let row = |m: &BTreeMap<Verdict, usize>| {
        VERDICTS
            .iter()
            .map(|v| format!("{:>6}", m.get(v).copied().unwrap_or(0)))
            .collect::<String>()
    };
    let mut report = String::new();
    let _ = writeln!(
        report,
        "seed {seed:#x}, {} variants, {:.1} s\n{:28}{:>6}{:>6}{:>6}{:>6}{:>6}",
        results.len(),
        t0.elapsed().as_secs_f64(),
        "(identical/aborted/hung/FATAL/differs)",
        "same",
        "abrt",
        "hung",
        "FATAL",
        "diff"
    );
    for (c, m) in &per_class {
        let _ = writeln!(report, "{:28}{}", CLASSES[*c], row(m));
    }
    let _ = writeln!(report, "{:28}{}", "all", row(&total));
    eprintln!("{report}");

    let mut failures = Vec::new();
    for (i, v, verdict, problems, diff) in &results {
        if *verdict != Verdict::Differs && problems.is_empty() {
            continue;
        }
        let mut f = format!(
            "variant {i} (seed {seed:#x}): {} damaged by {}: {}\n  depmod {}\n",
            MODULES[v.target],
            CLASSES[v.class],
            v.what,
            MODES[v.mode].join(" ")
        );
        for p in problems {
            let _ = writeln!(f, "{}", oracle::clip(p.as_bytes(), 2000));
        }
        if !diff.is_empty() {
            let _ = writeln!(
                f,
                "ours vs kmod 34.2:\n{}",
                oracle::clip(diff.as_bytes(), 3000)
            );
        }
        failures.push(f);
    }
    assert!(
        failures.is_empty(),
        "{} of {} variants differ from kmod 34.2 or crash ours (replay: DAMAGED_PARITY_SEED={seed:#x} DAMAGED_PARITY_ONLY=<i>):\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}

/// Exported names with bytes ≥ 0x80, as a damaged `.strtab` gives them: kmod hashes
/// names with signed `char`s, and the hash decides where a symbol goes in
/// modules.symbols. Every `__crc_` name of the exporting modules gets one byte set to
/// 0x80 or more at one of its last four positions, so each length remainder of the
/// hash meets such a byte. With `-n` (no index, so no `FATAL` for the byte) everything
/// must be kmod's.
#[test]
fn high_bit_symbol_names_hash_as_kmod() {
    let kmod = oracle::kmod34();
    let sources = read_sources();
    let tree = new_tree(&sources, &symvers(&sources));
    let mut k = 0usize;
    for (rel, src) in MODULES.iter().zip(&sources) {
        let l = layout(src);
        let (Some(sym), Some(str_)) = (l.find(".symtab"), l.find(".strtab")) else {
            continue;
        };
        let mut b = src.clone();
        for i in 1..(sym.size / 24) as usize {
            let start = str_.offset as usize + rd(src, sym.offset as usize + i * 24, 4) as usize;
            let len = src[start..].iter().position(|&c| c == 0).unwrap();
            if !src[start..].starts_with(b"__crc_") || len < 6 + 4 {
                continue;
            }
            b[start + len - 1 - k % 4] = 0x80 | (k * 37 % 128) as u8;
            k += 1;
        }
        tree.module(rel, &b);
    }
    assert!(k > 100, "{k} names changed");
    let a = args(&tree, 1);
    let opts = RunOpts::default();
    let o = oracle::run(&oracle::ours(), &a, &tree.root, &opts);
    let kr = oracle::run(&kmod, &a, &tree.root, &opts);
    assert_eq!(kr.status, Status::Exit(0), "{}", kr.stderr_str());
    if let Err(e) = oracle::compare(&kr, &o, Policy::FULL) {
        panic!("depmod {}:\n{e}", a.join(" "));
    }
}
