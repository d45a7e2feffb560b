//! Bad input: hundreds of corrupted variants of real Debian 6.1 modules, plus bad
//! directory entries (a directory named `foo.ko`, dangling and looping symlinks, a
//! FIFO, an unreadable file), added to a tree of 18 real modules with their real
//! dependencies.
//!
//! kmod's rule, which we keep: a module that cannot be read is still listed, with no
//! dependencies, and the run exits 0. On top of it we check that depmod never panics,
//! prints at most one message per bad file (exactly one when the file cannot be read),
//! naming it, never floods stderr, and indexes every other module exactly as it does
//! without the bad ones. Where kmod 34.2 survives a variant, our whole outcome (exit
//! status, stdout, stderr, every file) must be kmod's; where it aborts or hangs (its
//! ELF reader asserts on some corruptions; it follows symlink loops until it runs out
//! of file descriptors), ours must still exit 0 with the same listing rule.
//!
//! `DEPMOD_CORRUPTION_REPORT=1` prints the table of variants and what each program did.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::debian::{self, KVER};
use common::elf_layout::{layout, rd, wr, Section};
use common::oracle::{self, RunOpts, Status};
use common::rng::Rng;
use common::tree::Tree;
use depmod::index::Reader;

/// The good modules: a few roots with every module they depend on (from the Debian
/// tree's own modules.dep), softdeps (ext4, jbd2) and device names (loop, dm_mod).
const GOOD: &[&str] = &[
    "kernel/fs/ext4/ext4.ko",
    "kernel/lib/crc16.ko",
    "kernel/fs/mbcache.ko",
    "kernel/fs/jbd2/jbd2.ko",
    "kernel/fs/fat/vfat.ko",
    "kernel/fs/fat/fat.ko",
    "kernel/fs/isofs/isofs.ko",
    "kernel/drivers/cdrom/cdrom.ko",
    "kernel/drivers/usb/storage/uas.ko",
    "kernel/drivers/usb/storage/usb-storage.ko",
    "kernel/drivers/scsi/scsi_mod.ko",
    "kernel/drivers/scsi/scsi_common.ko",
    "kernel/drivers/usb/core/usbcore.ko",
    "kernel/drivers/usb/common/usb-common.ko",
    "kernel/drivers/md/dm-crypt.ko",
    "kernel/drivers/md/dm-mod.ko",
    "kernel/drivers/block/loop.ko",
    "kernel/fs/nls/nls_cp437.ko",
];

/// Modules the variants are made from: they export nothing, so a variant that still
/// reads as a module can never take a dependency away from a good module.
const SOURCES: &[&str] = &[
    "kernel/fs/nls/nls_cp437.ko",
    "kernel/fs/fat/vfat.ko",
    "kernel/drivers/usb/storage/uas.ko",
];

/// Where the variants go, below DIR.
const BAD_DIR: &str = "kernel/bad";

// ---------------------------------------------------------------------------------------
// Variants

/// What a variant must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Unreadable as a module: exactly one message naming it; listed with no deps.
    Rejected,
    /// May or may not still read as a module: at most one message.
    Either,
}

struct Variant {
    /// File name (unique; `bad_NNN_…`), in BAD_DIR.
    file: String,
    /// What was done.
    what: String,
    bytes: Vec<u8>,
    expect: Expect,
}

struct Maker {
    list: Vec<Variant>,
}

impl Maker {
    fn add(&mut self, what: String, ext: &str, bytes: Vec<u8>, expect: Expect) {
        let n = self.list.len();
        let slug: String = what
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        self.list.push(Variant {
            file: format!("bad_{n:03}_{slug}{ext}"),
            what,
            bytes,
            expect,
        });
    }
}

/// Compresses `input` as kbuild does: from a file, so that zstd records the content
/// size in the frame header (kmod 34.2 refuses zstd frames without it).
fn compress(prog: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut tmp = tempfile::NamedTempFile::new().unwrap();
    tmp.write_all(input).unwrap();
    let out = Command::new(prog)
        .args(args)
        .arg(tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog} (cargo xtask test installs it): {e}"));
    assert!(out.status.success(), "{prog} failed");
    out.stdout
}

/// Compresses through a pipe (zstd then omits the content size).
fn compress_piped(prog: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {prog} (cargo xtask test installs it): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    w.join().unwrap().unwrap();
    assert!(out.status.success(), "{prog} failed");
    out.stdout
}

fn variants(sources: &[(String, Vec<u8>)]) -> Vec<Variant> {
    use Expect::*;
    let mut m = Maker { list: Vec::new() };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (si, (src_name, src)) in sources.iter().enumerate() {
        let tag = format!("s{si}");
        let l = layout(src);
        let len = src.len();

        // Truncated at each section boundary (start and end of each section's data,
        // each section header), and inside the ELF header. Module section tables are
        // at the end of the file, so every truncation loses part of it.
        let mut cuts = BTreeSet::new();
        for s in &l.sections {
            cuts.insert(s.offset as usize);
            cuts.insert((s.offset + s.size) as usize);
        }
        for i in (0..l.shnum).step_by((l.shnum / 8).max(1)) {
            cuts.insert(l.shoff + i * 64);
        }
        cuts.insert(l.shoff + l.shnum * 64 - 1);
        for c in [1, 4, 5, 16, 17, 18, 40, 52, 63, 64, 65] {
            cuts.insert(c);
        }
        let cuts: Vec<usize> = cuts.into_iter().filter(|&c| c > 0 && c < len).collect();
        // At most 40 cut points per source, spread over the file.
        let step = cuts.len().div_ceil(40);
        for &c in cuts.iter().step_by(step) {
            m.add(
                format!("{tag} truncated at {c} of {len}"),
                ".ko",
                src[..c].to_vec(),
                Rejected,
            );
        }

        // Random byte flips in the ELF header and in the section header table.
        for k in 0..24 {
            let mut b = src.clone();
            let n = 1 + rng.below(3);
            let mut at = Vec::new();
            for _ in 0..n {
                let o = rng.below(64);
                b[o] ^= 1 << rng.below(8);
                at.push(o);
            }
            m.add(format!("{tag} header flip{k} at {at:?}"), ".ko", b, Either);
        }
        let table = l.shoff..l.shoff + l.shnum * 64;
        for k in 0..40 {
            let mut b = src.clone();
            let n = 1 + rng.below(4);
            let mut at = Vec::new();
            for _ in 0..n {
                let o = table.start + rng.below(table.len());
                b[o] ^= (1 + rng.below(255)) as u8;
                at.push(o - table.start);
            }
            m.add(
                format!("{tag} section table flip{k} at {at:?}"),
                ".ko",
                b,
                Either,
            );
        }

        // Offsets and sizes pointing outside the file (wrapping ones included).
        let named: Vec<Section> = [".symtab", ".strtab", ".modinfo", "__versions", ".shstrtab"]
            .iter()
            .filter_map(|n| l.find(n).cloned())
            .chain(std::iter::once(l.sections[l.shnum / 2].clone()))
            .collect();
        for s in &named {
            let must_fail = s.index == l.shstrndx;
            let e = if must_fail { Rejected } else { Either };
            for (label, off) in [
                ("len", len as u64),
                ("len-1", len as u64 - 1),
                ("u32max", u32::MAX as u64),
                ("u64max", u64::MAX),
            ] {
                let mut b = src.clone();
                wr(&mut b, s.header + 24, 8, off);
                let keep = if off == len as u64 - 1 && s.size <= 1 {
                    // Still inside the file.
                    Either
                } else {
                    e
                };
                m.add(format!("{tag} {} offset {label}", s.name), ".ko", b, keep);
            }
            for (label, size) in [
                ("len+1", len as u64 + 1),
                ("u64max", u64::MAX),
                ("wrap", u64::MAX - s.offset + 1),
                ("to-end+1", len as u64 - s.offset + 1),
            ] {
                let mut b = src.clone();
                wr(&mut b, s.header + 32, 8, size);
                m.add(format!("{tag} {} size {label}", s.name), ".ko", b, e);
            }
        }

        // Huge section counts and a broken section table position or entry size.
        for (label, f) in [
            (
                "shnum ffff",
                &(|b: &mut Vec<u8>| wr(b, 0x3c, 2, 0xffff)) as &dyn Fn(&mut Vec<u8>),
            ),
            ("shoff u64max", &|b: &mut Vec<u8>| wr(b, 0x28, 8, u64::MAX)),
            ("shoff len", &|b: &mut Vec<u8>| {
                let n = b.len() as u64;
                wr(b, 0x28, 8, n)
            }),
            ("shoff wraps", &|b: &mut Vec<u8>| {
                wr(b, 0x28, 8, u64::MAX - 63)
            }),
            ("shentsize 0", &|b: &mut Vec<u8>| wr(b, 0x3a, 2, 0)),
            ("shentsize 40", &|b: &mut Vec<u8>| wr(b, 0x3a, 2, 40)),
            ("shentsize ffff", &|b: &mut Vec<u8>| wr(b, 0x3a, 2, 0xffff)),
            ("shstrndx ffff", &|b: &mut Vec<u8>| wr(b, 0x3e, 2, 0xffff)),
            ("shstrndx shnum", &|b: &mut Vec<u8>| {
                let n = rd(b, 0x3c, 2);
                wr(b, 0x3e, 2, n)
            }),
            ("shstrndx 0", &|b: &mut Vec<u8>| wr(b, 0x3e, 2, 0)),
        ] {
            let mut b = src.clone();
            f(&mut b);
            m.add(format!("{tag} {label}"), ".ko", b, Rejected);
        }
        // One section more: the table may still fit in the file (kmod's .ko files have
        // .symtab and .strtab after it), then the extra entry is garbage.
        let mut b = src.clone();
        wr(&mut b, 0x3c, 2, u64::from(l.shnum as u16 + 1));
        m.add(format!("{tag} shnum +1"), ".ko", b, Either);
        // No sections at all: a valid, empty module.
        let mut b = src.clone();
        wr(&mut b, 0x3c, 2, 0);
        m.add(format!("{tag} shnum 0"), ".ko", b, Either);

        // String tables without a NUL.
        let shstr = &l.sections[l.shstrndx];
        let mut b = src.clone();
        b[(shstr.offset + shstr.size - 1) as usize] = b'A';
        m.add(format!("{tag} shstrtab unterminated"), ".ko", b, Rejected);
        for name in [".strtab", ".modinfo", "__ksymtab_strings", "__versions"] {
            let Some(s) = l.find(name) else { continue };
            let r = s.offset as usize..(s.offset + s.size) as usize;
            let mut b = src.clone();
            b[r.end - 1] = b'A';
            m.add(format!("{tag} {name} last byte not NUL"), ".ko", b, Either);
            let mut b = src.clone();
            b[r].fill(b'A');
            m.add(format!("{tag} {name} no NUL at all"), ".ko", b, Either);
        }

        // Symbol table entries pointing out of range.
        if let Some(sym) = l.find(".symtab") {
            let count = (sym.size / 24) as usize;
            let strsize = l.find(".strtab").map_or(0, |s| s.size);
            for (label, field, value) in [
                ("st_name u32max", 0usize, u32::MAX as u64),
                ("st_name strsize", 0, strsize),
                ("st_name strsize-1", 0, strsize.saturating_sub(1)),
                ("st_shndx fffe", 6, 0xfffe),
                ("st_shndx shnum", 6, l.shnum as u64),
                ("st_value u64max", 8, u64::MAX),
            ] {
                for which in [1, count / 2, count - 1] {
                    let mut b = src.clone();
                    let o = sym.offset as usize + which * 24 + field;
                    match field {
                        0 => wr(&mut b, o, 4, value),
                        6 => wr(&mut b, o, 2, value),
                        _ => wr(&mut b, o, 8, value),
                    }
                    m.add(format!("{tag} sym{which} {label}"), ".ko", b, Either);
                }
            }
            let mut b = src.clone();
            wr(&mut b, sym.header + 32, 8, sym.size - 1);
            m.add(
                format!("{tag} symtab size not a multiple"),
                ".ko",
                b,
                Either,
            );
            let mut b = src.clone();
            wr(&mut b, sym.header + 40, 4, 0xffff);
            m.add(
                format!("{tag} symtab sh_link out of range"),
                ".ko",
                b,
                Either,
            );
        }
        if let Some(v) = l.find("__versions") {
            let mut b = src.clone();
            wr(&mut b, v.header + 32, 8, v.size - 1);
            m.add(format!("{tag} __versions size not 64n"), ".ko", b, Either);
        }

        // Wrong ELF class, byte order, version, magic.
        for (label, o, v, e) in [
            ("class 32", 4, 1u8, Either),
            ("class 0", 4, 0, Rejected),
            ("class 3", 4, 3, Rejected),
            ("big endian", 5, 2, Rejected),
            ("data 0", 5, 0, Rejected),
            ("data 3", 5, 3, Rejected),
            ("magic", 1, b'X', Rejected),
        ] {
            let mut b = src.clone();
            b[o] = v;
            m.add(format!("{tag} {label}"), ".ko", b, e);
        }

        // Compressed: truncated, flipped, junk behind a valid magic.
        let gz = compress("gzip", &["-9cn"], src);
        let xz = compress("xz", &["-c", "--check=crc32"], src);
        let zst = compress("zstd", &["-c", "-q", "--check"], src);
        for (ext, c) in [(".ko.gz", &gz), (".ko.xz", &xz), (".ko.zst", &zst)] {
            m.add(format!("{tag} {ext} intact"), ext, c.clone(), Either);
            for (label, cut) in [
                ("half", c.len() / 2),
                ("minus 1", c.len() - 1),
                ("minus 8", c.len() - 8),
                ("header only", 12),
                ("magic only", 6),
                ("short", 5),
            ] {
                m.add(
                    format!("{tag} {ext} truncated {label}"),
                    ext,
                    c[..cut].to_vec(),
                    Rejected,
                );
            }
            let mut b = c.clone();
            let mid = b.len() / 2;
            for x in &mut b[mid..mid + 16] {
                *x ^= 0x5a;
            }
            m.add(format!("{tag} {ext} flipped middle"), ext, b, Rejected);
            let mut b = c[..6.min(c.len())].to_vec();
            for _ in 0..2000 {
                b.push(rng.next() as u8);
            }
            m.add(format!("{tag} {ext} junk after magic"), ext, b, Rejected);
        }
        // zstd without the content size in the frame header (compressed from a pipe):
        // a valid stream that kmod 34.2 refuses ("Failed to determine decompression
        // size") and we read.
        let piped = compress_piped("zstd", &["-c", "-q"], src);
        m.add(
            format!("{tag} .ko.zst no content size"),
            ".ko.zst",
            piped,
            Either,
        );
        // A whole text file, compressed: decompresses fine, is not ELF.
        let text = format!("not a module: {src_name}\n").repeat(100);
        m.add(
            format!("{tag} gz of text"),
            ".ko.gz",
            compress("gzip", &["-cn"], text.as_bytes()),
            Rejected,
        );
        m.add(
            format!("{tag} xz of text"),
            ".ko.xz",
            compress("xz", &["-c"], text.as_bytes()),
            Rejected,
        );
        m.add(
            format!("{tag} zst of text"),
            ".ko.zst",
            compress("zstd", &["-c", "-q"], text.as_bytes()),
            Rejected,
        );
    }

    // Tiny files.
    m.add("zero bytes".into(), ".ko", Vec::new(), Rejected);
    m.add("one byte".into(), ".ko", vec![0x7f], Rejected);
    m.add("magic only".into(), ".ko", b"\x7fELF".to_vec(), Rejected);
    m.add(
        "ident only".into(),
        ".ko",
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec(),
        Rejected,
    );
    m.add("text".into(), ".ko", b"hello, world\n".to_vec(), Rejected);
    m.add("zero bytes gz".into(), ".ko.gz", Vec::new(), Rejected);
    m.add("zero bytes xz".into(), ".ko.xz", Vec::new(), Rejected);
    m.add("zero bytes zst".into(), ".ko.zst", Vec::new(), Rejected);
    m.list
}

// ---------------------------------------------------------------------------------------
// The tree

struct Setup {
    tree: Tree,
    /// Reference outputs (good modules only), by file name.
    reference: BTreeMap<String, Vec<u8>>,
    sources: Vec<(String, Vec<u8>)>,
}

fn good_tree() -> Setup {
    let deb = debian::module_dir().unwrap_or_else(|e| panic!("Debian tree: {e}"));
    let tree = Tree::new(KVER);
    for rel in GOOD {
        let bytes = fs::read(deb.join(rel)).unwrap();
        tree.module(rel, bytes);
    }
    // modules.order: the Debian order, restricted to our modules.
    let order = fs::read_to_string(deb.join("modules.order")).unwrap();
    let lines: Vec<&str> = order.lines().filter(|l| GOOD.contains(l)).collect();
    assert_eq!(
        lines.len(),
        GOOD.len(),
        "every good module is in modules.order"
    );
    tree.order_lines(&lines);
    tree.builtin(&fs::read_to_string(deb.join("modules.builtin")).unwrap());
    tree.builtin_modinfo(&fs::read(deb.join("modules.builtin.modinfo")).unwrap());
    let (out, err, status) = run_ours(&tree, &[]);
    assert_eq!(
        status,
        Status::Exit(0),
        "clean run: {}",
        String::from_utf8_lossy(&err)
    );
    assert!(
        err.is_empty(),
        "clean run prints nothing: {}",
        String::from_utf8_lossy(&err)
    );
    assert!(out.is_empty());
    let reference = outputs(&tree);
    assert!(reference["modules.dep"].starts_with(b"kernel/"));
    let sources = SOURCES
        .iter()
        .map(|s| (s.to_string(), fs::read(deb.join(s)).unwrap()))
        .collect();
    Setup {
        tree,
        reference,
        sources,
    }
}

fn run_ours(tree: &Tree, extra: &[&str]) -> (Vec<u8>, Vec<u8>, Status) {
    let mut args = tree.std_args();
    args.extend(extra.iter().map(|s| s.to_string()));
    oracle::run_raw(
        &oracle::ours(),
        &args,
        &RunOpts {
            timeout: Duration::from_secs(60),
            ..Default::default()
        },
    )
}

/// Every `modules.*` output in DIR (inputs excluded).
fn outputs(tree: &Tree) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in fs::read_dir(tree.moddir()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("modules.")
            && ![
                "modules.order",
                "modules.builtin",
                "modules.builtin.modinfo",
            ]
            .contains(&name.as_str())
        {
            m.insert(name, fs::read(e.path()).unwrap());
        }
    }
    m
}

fn lines(b: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(b)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A text output without the lines that mention a bad module.
fn without_bad(b: &[u8]) -> Vec<String> {
    lines(b)
        .into_iter()
        .filter(|l| !l.contains("bad_"))
        .collect()
}

/// Index entries, without keys or values that mention a bad module.
fn index_without_bad(b: &[u8]) -> Vec<depmod::index::Entry> {
    let has_bad = |s: &[u8]| s.windows(4).any(|w| w == b"bad_");
    Reader::new(b)
        .and_then(|r| r.entries())
        .expect("index reads back")
        .into_iter()
        .filter(|(k, _)| !has_bad(k))
        .map(|(k, v)| {
            (
                k,
                v.into_iter()
                    .filter(|(_, s)| !has_bad(s))
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// The good modules' part of every output is what it was without the bad modules.
fn check_good_unchanged(
    reference: &BTreeMap<String, Vec<u8>>,
    got: &BTreeMap<String, Vec<u8>>,
) -> String {
    let mut msg = String::new();
    for (name, want) in reference {
        let Some(have) = got.get(name) else {
            let _ = writeln!(msg, "{name} not written");
            continue;
        };
        if name.ends_with(".bin") {
            if index_without_bad(want) != index_without_bad(have) {
                let _ = writeln!(msg, "{name}: the good modules' entries changed");
            }
        } else if without_bad(want) != without_bad(have) {
            let _ = writeln!(
                msg,
                "{name}: the good modules' lines changed:\n{}",
                oracle::diff_text("without bad", want, "with bad", have)
            );
        }
    }
    msg
}

/// Stderr lines that name `needle`.
fn lines_naming<'a>(stderr: &'a [String], needle: &str) -> Vec<&'a String> {
    stderr.iter().filter(|l| l.contains(needle)).collect()
}

fn no_panic(status: Status, stderr: &[u8]) {
    assert!(
        !matches!(status, Status::Exit(101)) && !status.crashed(),
        "depmod crashed: {status}"
    );
    let s = String::from_utf8_lossy(stderr);
    assert!(!s.contains("panicked"), "depmod panicked:\n{s}");
}

// ---------------------------------------------------------------------------------------
// Tests

/// Every variant at once, next to the good modules.
#[test]
fn corrupted_modules_are_listed_reported_once_and_harm_nothing() {
    let setup = good_tree();
    let vs = variants(&setup.sources);
    assert!(vs.len() >= 300, "only {} variants", vs.len());
    for v in &vs {
        setup
            .tree
            .module(&format!("{BAD_DIR}/{}", v.file), &v.bytes);
    }
    let start = Instant::now();
    let (out, err, status) = run_ours(&setup.tree, &[]);
    let took = start.elapsed();
    no_panic(status, &err);
    let stderr = lines(&err);
    assert_eq!(
        status,
        Status::Exit(0),
        "bad modules do not fail the run (kmod exits 0 too)\n{}",
        oracle::clip(&err, 4000)
    );
    assert!(out.is_empty(), "stdout: {}", oracle::clip(&out, 2000));
    // Never a flood: one short line per bad file at most.
    assert!(
        err.len() <= vs.len() * 300,
        "{} bytes of stderr for {} bad files",
        err.len(),
        vs.len()
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");

    let got = outputs(&setup.tree);
    let dep = lines(&got["modules.dep"]);
    let mut msg = String::new();
    let mut rejected = 0;
    for v in &vs {
        let named = lines_naming(&stderr, &v.file);
        let listed: Vec<&String> = dep
            .iter()
            .filter(|l| l.starts_with(&format!("{BAD_DIR}/{}:", v.file)))
            .collect();
        if listed.len() != 1 {
            let _ = writeln!(
                msg,
                "{} ({}): listed {} times in modules.dep",
                v.file,
                v.what,
                listed.len()
            );
        }
        match named.len() {
            0 if v.expect == Expect::Rejected => {
                let _ = writeln!(msg, "{} ({}): no message", v.file, v.what);
            }
            0 => {}
            1 => {
                rejected += 1;
                let line = named[0];
                // "depmod: ERROR: failed to load symbols from <path>: <reason>"
                if !line.starts_with("depmod: ERROR: ")
                    || !line.contains(
                        &setup
                            .tree
                            .moddir()
                            .join(BAD_DIR)
                            .join(&v.file)
                            .display()
                            .to_string(),
                    )
                    || line.trim_end().ends_with(':')
                {
                    let _ = writeln!(msg, "{} ({}): unclear message {line:?}", v.file, v.what);
                }
                if listed.len() == 1 && listed[0] != &format!("{BAD_DIR}/{}:", v.file) {
                    let _ = writeln!(
                        msg,
                        "{} ({}): unreadable but listed with deps: {}",
                        v.file, v.what, listed[0]
                    );
                }
            }
            n => {
                let _ = writeln!(msg, "{} ({}): {n} messages: {named:?}", v.file, v.what);
            }
        }
    }
    // Every stderr line is about one of the bad files.
    for l in &stderr {
        if !l.contains("/bad_") {
            let _ = writeln!(msg, "stray message: {l}");
        }
    }
    msg.push_str(&check_good_unchanged(&setup.reference, &got));
    assert!(
        msg.is_empty(),
        "{} variants, {rejected} reported:\n{msg}",
        vs.len()
    );
    eprintln!(
        "{} variants ({} reported as unreadable) in {took:?}",
        vs.len(),
        rejected
    );
}

/// The reason part of "failed to load symbols from PATH: REASON" replaced, and
/// kmod's extra decompressor lines ("xz: …", "zstd: …", printed once per attempt)
/// dropped: for a bad compressed file we print one line with our own reason.
fn normalize_decompress_messages(stderr: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in String::from_utf8_lossy(stderr).lines() {
        if l.starts_with("depmod: ERROR: xz: ") || l.starts_with("depmod: ERROR: zstd: ") {
            continue;
        }
        let l = match l.find(".ko.xz: ").or_else(|| l.find(".ko.zst: ")) {
            Some(i) if l.contains("failed to load symbols from ") => {
                let cut = l[i..].find(": ").unwrap() + i;
                format!("{}: <reason>", &l[..cut])
            }
            _ => l.to_string(),
        };
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    out
}

/// A tree of two good modules from the Debian tree `deb`, one a dependency of the
/// other: vfat and fat.
fn fat_tree(deb: &Path) -> Tree {
    let tree = Tree::new(KVER);
    for rel in ["kernel/fs/fat/vfat.ko", "kernel/fs/fat/fat.ko"] {
        tree.module(rel, fs::read(deb.join(rel)).unwrap());
    }
    tree.order_lines(&["kernel/fs/fat/fat.ko", "kernel/fs/fat/vfat.ko"]);
    tree.builtin("");
    tree.builtin_modinfo(b"");
    tree
}

/// Each variant alone in a small tree, against kmod 34.2: where kmod survives, the
/// same outcome byte for byte (for compressed files, up to the wording of the one
/// message); where it aborts or hangs, ours must still exit 0 and list the module.
/// Debian's kmod 34.2 is built without zlib: it does not even list `.ko.gz` files, so
/// those are checked on our side only.
#[test]
fn corrupted_modules_match_kmod_where_kmod_survives() {
    let setup = good_tree();
    let vs = variants(&setup.sources);
    // A small tree: two good modules, one a dependency of the other.
    let deb = debian::module_dir().unwrap();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let table = Mutex::new(Vec::new());
    let kmod = oracle::kmod34();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let tree = fat_tree(&deb);
                let args = tree.std_args();
                let opts = RunOpts {
                    timeout: Duration::from_secs(20),
                    ..Default::default()
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(v) = vs.get(i) else { break };
                    let rel = format!("{BAD_DIR}/{}", v.file);
                    let path = tree.module(&rel, &v.bytes);
                    let mut problems = Vec::new();
                    let o = oracle::run(&oracle::ours(), &args, &tree.root, &opts);
                    if o.status != Status::Exit(0) || o.stderr_str().contains("panicked") {
                        problems.push(format!("ours: {}\n{}", o.status, o.stderr_str()));
                    }
                    let named = o
                        .stderr_str()
                        .lines()
                        .filter(|l| l.contains(&v.file))
                        .count();
                    if named > 1 || (named == 0 && v.expect == Expect::Rejected) {
                        problems.push(format!("ours: {named} messages:\n{}", o.stderr_str()));
                    }
                    let listed = o
                        .file("modules.dep")
                        .map(lines)
                        .unwrap_or_default()
                        .into_iter()
                        .any(|l| l.starts_with(&format!("{rel}:")));
                    if !listed {
                        problems.push("ours: not listed in modules.dep".into());
                    }
                    let kmod_status = if v.file.ends_with(".ko.gz") {
                        None
                    } else {
                        let k = oracle::run(&kmod, &args, &tree.root, &opts);
                        // kmod 34.2 cannot read a zstd frame without its content size;
                        // we can (a known, reported difference): no comparison there.
                        if !k.status.crashed() && !v.what.contains("no content size") {
                            let (mut k, mut o) = (k.clone(), o.clone());
                            if !v.file.ends_with(".ko") {
                                k.stderr = normalize_decompress_messages(&k.stderr);
                                o.stderr = normalize_decompress_messages(&o.stderr);
                            }
                            if let Err(e) = oracle::compare(&k, &o, oracle::Policy::FULL) {
                                problems.push(format!("ours vs kmod 34.2:\n{e}"));
                            }
                        }
                        Some(k.status)
                    };
                    table.lock().unwrap().push((
                        i,
                        v.what.clone(),
                        kmod_status,
                        o.status,
                        named,
                        o.stderr_str().lines().next().unwrap_or("").to_string(),
                    ));
                    if !problems.is_empty() {
                        failures.lock().unwrap().push(format!(
                            "{} ({}):\n{}",
                            v.file,
                            v.what,
                            problems.join("\n")
                        ));
                    }
                    fs::remove_file(path).unwrap();
                }
            });
        }
    });
    let mut table = table.into_inner().unwrap();
    table.sort_by_key(|r| r.0);
    let crashed: Vec<_> = table
        .iter()
        .filter(|r| r.2.is_some_and(|s| s.crashed()))
        .collect();
    eprintln!(
        "{} variants; kmod 34.2 aborted or hung on {}:",
        table.len(),
        crashed.len()
    );
    for r in &crashed {
        eprintln!("  kmod {}: {}", r.2.unwrap(), r.1);
    }
    if std::env::var_os("DEPMOD_CORRUPTION_REPORT").is_some() {
        for r in &table {
            let k = r.2.map_or("not run".to_string(), |s| s.to_string());
            eprintln!(
                "{:3} kmod {k:12} ours {:7} msgs {} | {:50} | {}",
                r.0,
                r.3.to_string(),
                r.4,
                r.1,
                r.5
            );
        }
    }
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} variants:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------
// Bad directory entries

/// A small tree (vfat and its dependency fat) plus one kind of bad entry in BAD_DIR.
fn small_tree() -> (Tree, Vec<String>) {
    let tree = fat_tree(&debian::module_dir().unwrap());
    fs::create_dir_all(tree.moddir().join(BAD_DIR)).unwrap();
    let (_, err, status) = run_ours(&tree, &[]);
    assert_eq!(status, Status::Exit(0), "{}", String::from_utf8_lossy(&err));
    let reference = lines(&fs::read(tree.moddir().join("modules.dep")).unwrap());
    clear_outputs(&tree);
    (tree, reference)
}

fn clear_outputs(tree: &Tree) {
    for name in outputs(tree).keys() {
        fs::remove_file(tree.moddir().join(name)).unwrap();
    }
}

/// Runs `bin` on the tree as `uid` (None: as we are), returning (stderr, status) and
/// removing the outputs afterwards; modules.dep is returned too.
fn run_as(bin: &std::path::Path, tree: &Tree, uid: Option<u32>) -> (String, Status, Vec<String>) {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut c = Command::new(bin);
    if bin != oracle::ours().path {
        c.env("LD_PRELOAD", oracle::sorted_readdir());
    }
    c.args(tree.std_args())
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    let mut child = c.spawn().unwrap();
    let mut err = Vec::new();
    // At most 1 MiB of stderr is kept (kmod can print without end).
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 65536];
        let mut kept = Vec::new();
        let mut total = 0usize;
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
            if kept.len() < 1 << 20 {
                kept.extend_from_slice(&buf[..n]);
            }
        }
        (kept, total)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break match (st.code(), st.signal()) {
                (Some(c), _) => Status::Exit(c),
                (_, Some(s)) => Status::Signal(s),
                _ => Status::Exit(-1),
            };
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            break Status::Timeout;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (kept, total) = reader.join().unwrap();
    err.extend_from_slice(&kept);
    let mut stderr = String::from_utf8_lossy(&err).into_owned();
    if total > kept.len() {
        stderr.push_str(&format!("[… {} bytes of stderr in all]\n", total));
    }
    let dep = fs::read(tree.moddir().join("modules.dep"))
        .map(|b| lines(&b))
        .unwrap_or_default();
    clear_outputs(tree);
    (stderr, status, dep)
}

/// A directory named `foo.ko`, a dangling symlink, symlink loops (a file link to
/// itself, two links to each other, a directory link to its parent), a FIFO and an
/// unreadable file: one at a time, for us and for kmod 34.2.
#[test]
fn bad_directory_entries() {
    use std::os::unix::fs::symlink;
    let deb = debian::module_dir().unwrap();
    let inner = fs::read(deb.join("kernel/fs/nls/nls_cp437.ko")).unwrap();
    let root = euid() == 0;
    type Make = Box<dyn Fn(&std::path::Path)>;
    // (case, entry names that must be named once in our stderr, make, run as nobody)
    let cases: Vec<(&str, Vec<&str>, Make, bool)> = vec![
        (
            "directory named bad_dir.ko (holding a module)",
            vec![],
            Box::new(move |d: &std::path::Path| {
                fs::create_dir(d.join("bad_dir.ko")).unwrap();
                fs::write(d.join("bad_dir.ko/bad_inner.ko"), &inner).unwrap();
            }),
            false,
        ),
        (
            "dangling symlink",
            vec!["bad_dangling.ko"],
            Box::new(|d: &std::path::Path| {
                symlink("nowhere.ko", d.join("bad_dangling.ko")).unwrap()
            }),
            false,
        ),
        (
            "symlink to itself",
            vec!["bad_self.ko"],
            Box::new(|d: &std::path::Path| symlink("bad_self.ko", d.join("bad_self.ko")).unwrap()),
            false,
        ),
        (
            "two symlinks to each other",
            vec!["bad_ping.ko", "bad_pong.ko"],
            Box::new(|d: &std::path::Path| {
                symlink("bad_pong.ko", d.join("bad_ping.ko")).unwrap();
                symlink("bad_ping.ko", d.join("bad_pong.ko")).unwrap();
            }),
            false,
        ),
        (
            "directory symlink to its parent (a loop)",
            vec!["bad_loopdir"],
            Box::new(|d: &std::path::Path| symlink("..", d.join("bad_loopdir")).unwrap()),
            false,
        ),
        (
            // One level deeper, the walk takes the directory as a part of its
            // own (on another core); its messages, descriptor numbers included,
            // must still be kmod's, in kmod's place.
            "a dangling symlink and a FIFO one directory deeper",
            vec!["bad_deep_dangling.ko", "bad_deep_fifo.ko"],
            Box::new(|d: &std::path::Path| {
                let deep = d.join("bad_deeper");
                fs::create_dir(&deep).unwrap();
                symlink("nowhere.ko", deep.join("bad_deep_dangling.ko")).unwrap();
                let st = Command::new("mkfifo")
                    .arg(deep.join("bad_deep_fifo.ko"))
                    .status()
                    .unwrap();
                assert!(st.success());
            }),
            false,
        ),
        (
            "FIFO named bad_fifo.ko",
            vec!["bad_fifo.ko"],
            Box::new(|d: &std::path::Path| {
                let st = Command::new("mkfifo")
                    .arg(d.join("bad_fifo.ko"))
                    .status()
                    .unwrap();
                assert!(st.success());
            }),
            false,
        ),
        (
            "unreadable file (mode 000)",
            vec!["bad_unreadable.ko"],
            Box::new(|d: &std::path::Path| {
                let p = d.join("bad_unreadable.ko");
                fs::write(&p, b"\x7fELF unreadable").unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
            }),
            true,
        ),
    ];
    let kmod = oracle::kmod34();
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for (case, names, make, unprivileged) in &cases {
        let (tree, reference) = small_tree();
        let bad = tree.moddir().join(BAD_DIR);
        make(&bad);
        // Root reads anything: the unreadable case runs as nobody (65534), with a tree
        // that nobody can walk and write to.
        let uid = (*unprivileged && root).then_some(65534);
        if uid.is_some() {
            let mut p = tree.moddir();
            while p.starts_with(&tree.root) {
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
                p.pop();
            }
            fs::set_permissions(tree.moddir(), fs::Permissions::from_mode(0o777)).unwrap();
        }
        let (err, status, dep) = run_as(&oracle::ours().path, &tree, uid);
        let mut problems = Vec::new();
        if status != Status::Exit(0) || err.contains("panicked") {
            problems.push(format!("ours: {status}"));
        }
        if err.len() > 1000 {
            problems.push(format!("ours: {} bytes of stderr", err.len()));
        }
        let errlines: Vec<String> = err.lines().map(str::to_string).collect();
        for n in names {
            let named = lines_naming(&errlines, n);
            if named.len() != 1 {
                problems.push(format!("ours: {} lines name {n}", named.len()));
            }
        }
        if names.is_empty() && !errlines.is_empty() {
            problems.push("ours: messages for a good module".into());
        }
        let good: Vec<String> = dep
            .iter()
            .filter(|l| !l.contains("bad_"))
            .cloned()
            .collect();
        if good != reference {
            problems.push(format!("ours: good modules changed: {dep:?}"));
        }
        let (kerr, kstatus, kdep) = run_as(&kmod.path, &tree, uid);
        let klines = kerr.lines().count();
        if !kstatus.crashed()
            && kerr.len() < 100_000
            && (kstatus, &kerr, &kdep) != (status, &err, &dep)
        {
            problems.push(format!(
                "differs from kmod 34.2 ({kstatus}):\n--- kmod stderr:\n{}--- ours:\n{err}--- kmod modules.dep: {kdep:?}\n--- ours: {dep:?}",
                oracle::clip(kerr.as_bytes(), 3000)
            ));
        }
        report.push(format!(
            "{case}: ours {status}, {} stderr lines: {:?}\n    kmod 34.2 {kstatus}, {klines} stderr lines: {}",
            errlines.len(),
            errlines,
            oracle::clip(kerr.lines().next().unwrap_or("").as_bytes(), 200)
        ));
        if !problems.is_empty() {
            failures.push(format!("{case}:\n{}", problems.join("\n")));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn euid() -> u32 {
    // `id -u` rather than libc: the tests do not link libc directly.
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
