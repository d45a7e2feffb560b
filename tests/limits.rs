//! Limits: what hostile input sizes cost. A decompression bomb is refused at the size
//! cap with a clear message; a tiny corrupt file costs little; a module with very many
//! symbols, a deep directory tree and a pathological depmod.d pattern finish in
//! bounded time without blowing the stack.
//!
//! Tests named `regression_*` reproduce problems found by the fuzzers and the
//! corruption tests (see the report in each).

mod common;

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::elfgen::Elf;
use common::oracle::{self, RunOpts, Status};
use common::tree::Tree;

const KVER: &str = "4.4.4";

fn run_ours(tree: &Tree, timeout: Duration) -> (String, Status, Duration) {
    let start = Instant::now();
    let (_, err, status) = oracle::run_raw(
        &oracle::ours(),
        &tree.std_args(),
        &RunOpts {
            timeout,
            ..Default::default()
        },
    );
    (
        String::from_utf8_lossy(&err).into_owned(),
        status,
        start.elapsed(),
    )
}

fn dep_lines(tree: &Tree) -> Vec<String> {
    fs::read_to_string(tree.moddir().join("modules.dep"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A zstd stream of 1 GiB + 1 MiB of zeros (a few dozen KiB compressed): refused
/// at the 1 GiB cap with a message naming the file; the run still exits 0.
#[test]
fn decompression_bomb_is_refused() {
    let tree = Tree::new(KVER);
    tree.empty_inputs();
    let mut child = Command::new("zstd")
        .args(["-1", "-c", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("zstd (cargo xtask test installs it)");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(1024 + 1) {
            stdin.write_all(&zeros).unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    assert!(out.stdout.len() < 1 << 20);
    tree.module("kernel/bomb.ko.zst", &out.stdout);
    tree.module(
        "kernel/good.ko",
        Elf::x86_64().modinfo(&["alias=good"]).build(),
    );
    let (err, status, took) = run_ours(&tree, Duration::from_secs(60));
    assert_eq!(status, Status::Exit(0), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("bomb.ko.zst") && lines[0].contains("more than"),
        "{err}"
    );
    assert!(dep_lines(&tree).contains(&"kernel/bomb.ko.zst:".to_string()));
    eprintln!("bomb refused in {took:?}");
}

/// Regression (found by the `decompress_gz` fuzz target, 2 KiB input): the gzip
/// decoder sizes its buffer from the 4-byte ISIZE trailer and fills it with zeros
/// before decoding, so a 24-byte junk `.ko.gz` ending in `FF FF FF FF` makes depmod
/// allocate and zero the whole 1 GiB cap (1 GiB of RSS, 2 s) before saying the data
/// is corrupt. Under a 512 MiB address-space limit the run must still succeed.
#[test]
fn regression_junk_gzip_with_huge_size_trailer_is_cheap() {
    let tree = Tree::new(KVER);
    tree.empty_inputs();
    for i in 0..4 {
        tree.module(
            &format!("kernel/junk{i}.ko.gz"),
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbagegarbage\xff\xff\xff\xff",
        );
    }
    tree.module(
        "kernel/good.ko",
        Elf::x86_64().modinfo(&["alias=good"]).build(),
    );
    let start = Instant::now();
    let out = Command::new("prlimit")
        .arg(format!("--as={}", 512u64 << 20))
        .arg("--")
        .arg(&oracle::ours().path)
        .args(tree.std_args())
        .output()
        .expect("prlimit (util-linux)");
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "depmod under a 512 MiB address-space limit: {} after {took:?}\n{err}",
        out.status
    );
    assert_eq!(err.lines().count(), 4, "{err}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

/// A module with 20000 undefined symbols and 20000 `__versions` entries (1.7 MB):
/// matching them must not be quadratic enough to hang (kmod's loop is O(n·m); we
/// must finish in seconds).
#[test]
fn many_symbols_and_versions_finish_quickly() {
    let n = 20_000;
    let names: Vec<String> = (0..n).map(|i| format!("sym_{i:06}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    // Versions in the reverse order, so that each lookup walks far.
    let versions: Vec<(u64, &str)> = refs.iter().rev().map(|s| (0x1234, *s)).collect();
    let big = Elf::x86_64().undefs(&refs).versions(&versions).build();
    let tree = Tree::new(KVER);
    tree.empty_inputs();
    tree.module("kernel/big.ko", &big);
    tree.module(
        "kernel/provider.ko",
        Elf::x86_64().ksymtab(&refs[..10]).build(),
    );
    let (err, status, took) = run_ours(&tree, Duration::from_secs(30));
    assert_eq!(status, Status::Exit(0), "after {took:?}: {err}");
    assert!(
        dep_lines(&tree).contains(&"kernel/big.ko: kernel/provider.ko".to_string()),
        "{:?}",
        dep_lines(&tree)
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// Regression (found by the `depmod_d` fuzz target: a 90-byte config that took more
/// than 20 s): the ERE compiler's epsilon closure is exponential in stacked
/// quantifiers (`a\*****…`), as glibc's regcomp is (kmod 34.2 takes 12 s on the fuzz
/// input and hangs on longer runs of `*`). `x**` means `x*`, so a run of 40 must
/// compile at once.
#[test]
fn regression_stacked_quantifiers_in_depmod_d_compile_quickly() {
    // The fuzz input (target/fuzz/artifacts/depmod_d/timeout-f03fd0a5…): kernel
    // version, then the configuration text.
    let kver = "6.1.0-5-6amd64";
    let conf: &[u8] = b"override m ^(7|57|7)\\**************+**********************e*^x\xfd? y\n";
    for (name, text) in [
        ("fuzz", conf.to_vec()),
        (
            "stars",
            format!("override a ^a\\{}+ y\n", "*".repeat(40)).into_bytes(),
        ),
    ] {
        let tree = Tree::new(kver);
        tree.empty_inputs();
        tree.module("kernel/a.ko", Elf::x86_64().build());
        common::tree::write_file(&tree.confdir().join("x.conf"), &text);
        let (err, status, took) = run_ours(&tree, Duration::from_secs(10));
        assert_eq!(status, Status::Exit(0), "{name}: after {took:?}: {err}");
        assert!(took < Duration::from_secs(2), "{name}: took {took:?}");
    }
}

/// Counted repetitions up to `RE_DUP_MAX` (32767), nested or in a row, in depmod.d
/// version patterns: the NFA is capped (`MAX_NODES`), so each line costs well under
/// a second (kmod 34.2 on the same lines: more than 60 s for the first, 6.9 s for
/// the last, 1.5 s for the nested one). The 71-byte fuzz input is the slowest one
/// the `depmod_d` target's corpus holds.
#[test]
fn large_counted_repetitions_in_depmod_d_are_bounded() {
    let kver = "6.89.1.06B0-564";
    for pattern in [
        &b"^a{1,32767}{1,32767}"[..],
        b"^a{,952}b{,952}c{,952}",
        b"^(a|b{1,200}){1,200}",
        b"^((a{1,100}){1,100}){1,100}",
        b"^a{1,30000}",
        b"^/e(2|5)\\.9`]|5)\\.[0-]1{,952\\0}.([-9]+)?-",
    ] {
        let mut text = b"override m ".to_vec();
        text.extend_from_slice(pattern);
        text.extend_from_slice(b" @+\n");
        let tree = Tree::new(kver);
        tree.empty_inputs();
        tree.module("kernel/a.ko", Elf::x86_64().build());
        common::tree::write_file(&tree.confdir().join("x.conf"), &text);
        let (err, status, took) = run_ours(&tree, Duration::from_secs(10));
        let name = String::from_utf8_lossy(pattern);
        assert_eq!(status, Status::Exit(0), "{name}: after {took:?}: {err}");
        assert!(took < Duration::from_secs(2), "{name}: took {took:?}");
    }
}

/// A directory tree 1000 levels deep (2000-byte paths): walked without recursion,
/// every module found, as kmod does.
#[test]
fn deep_directory_tree() {
    let tree = Tree::new(KVER);
    tree.empty_inputs();
    let mut rel = String::from("kernel");
    let mut expect = Vec::new();
    for depth in 1..=1000 {
        rel.push_str("/d");
        if depth % 250 == 0 {
            let m = format!("{rel}/m{depth}.ko");
            tree.module(&m, Elf::x86_64().build());
            expect.push(format!("{m}:"));
        }
    }
    let (err, status, took) = run_ours(&tree, Duration::from_secs(30));
    assert_eq!(status, Status::Exit(0), "{err}");
    assert!(err.is_empty(), "{err}");
    let mut got = dep_lines(&tree);
    got.sort();
    expect.sort();
    assert_eq!(got, expect);
    eprintln!("1000 levels in {took:?}");
}

/// A plain module of 4 GiB that takes 12 KiB on disk (a sparse file): a valid ELF
/// header, and a `.symtab` of 4 GiB of zeros (179 million symbols). Decompressed
/// modules are capped at 1 GiB, plain ones are not, and no symbol count is capped.
///
/// Regression: ours takes 55 s on it (kmod 34.2: 4 s), mapping the whole file and
/// walking every symbol twice. It must finish in seconds: refused with a clear
/// message (a cap like the decompressed one), or scanned quickly.
#[test]
fn regression_huge_sparse_plain_module_is_bounded() {
    let tree = Tree::new(KVER);
    tree.empty_inputs();
    let path = tree.moddir().join("kernel/huge.ko");
    sparse_module(&path, 4 << 30);
    let (err, status, took) = run_ours(&tree, Duration::from_secs(20));
    let _ = fs::remove_file(&path);
    assert_eq!(status, Status::Exit(0), "after {took:?}: {err}");
    assert!(err.lines().count() <= 1, "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// A 3 GiB `.ko.xz` that takes 4 KiB on disk: the xz magic, then zeros (a sparse
/// file). kmod 34.2 streams it and says "File is corrupt" at once (0.1 s, 4 MB).
///
/// Regression: ours reads the whole file into memory before decoding: 41 s and 3 GiB
/// of RSS; under a 2 GiB address-space limit the read fails and the message says
/// "Input/output error" instead of what is wrong. It must be refused in seconds.
#[test]
fn regression_huge_sparse_compressed_module_is_bounded() {
    let tree = Tree::new(KVER);
    tree.empty_inputs();
    let path = tree.module("kernel/junk.ko.xz", b"\xfd7zXZ\x00");
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let (err, status, took) = run_ours(&tree, Duration::from_secs(20));
    let _ = fs::remove_file(&path);
    assert_eq!(status, Status::Exit(0), "after {took:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("junk.ko.xz") && err.contains("xz"), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// Writes a sparse plain module of about `size` bytes at `path`: a valid ELF header,
/// a `.symtab` of zeros filling the file, and small `.strtab`/`.shstrtab`.
fn sparse_module(path: &std::path::Path, size: u64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let shstr = b"\0.symtab\0.strtab\0.shstrtab\0";
    let strtab = b"\0x\0";
    let symoff = 4096u64;
    let symsize = size / 24 * 24;
    let stroff = symoff + symsize;
    let shstroff = stroff + strtab.len() as u64;
    let shoff = (shstroff + shstr.len() as u64).div_ceil(8) * 8;
    let section = |name: u32, kind: u32, off: u64, size: u64, link: u32, entsize: u64| {
        let mut h = Vec::with_capacity(64);
        h.extend_from_slice(&name.to_le_bytes());
        h.extend_from_slice(&kind.to_le_bytes());
        h.extend_from_slice(&[0; 16]); // flags, addr
        h.extend_from_slice(&off.to_le_bytes());
        h.extend_from_slice(&size.to_le_bytes());
        h.extend_from_slice(&link.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&8u64.to_le_bytes());
        h.extend_from_slice(&entsize.to_le_bytes());
        h
    };
    let mut header = b"\x7fELF\x02\x01\x01".to_vec();
    header.resize(16, 0);
    header.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
    header.extend_from_slice(&62u16.to_le_bytes()); // x86-64
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(&[0; 16]); // entry, phoff
    header.extend_from_slice(&shoff.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 0, 0, 64, 4, 3] {
        header.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(header.len(), 64);
    let mut table = vec![0u8; 64];
    table.extend(section(1, 2, symoff, symsize, 2, 24));
    table.extend(section(9, 3, stroff, strtab.len() as u64, 0, 0));
    table.extend(section(17, 3, shstroff, shstr.len() as u64, 0, 0));
    {
        use std::io::{Seek, SeekFrom};
        let mut f = fs::File::create(path).unwrap();
        f.write_all(&header).unwrap();
        f.seek(SeekFrom::Start(stroff)).unwrap();
        f.write_all(strtab).unwrap();
        f.write_all(shstr).unwrap();
        f.seek(SeekFrom::Start(shoff)).unwrap();
        f.write_all(&table).unwrap();
    }
}

/// A plain module that shrinks while depmod reads it (a package upgrade running at
/// the same time): kmod 34.2 dies of SIGBUS (it maps the file).
///
/// Regression: so does ours (exit 135): touching a mapped page past the new end of
/// the file raises SIGBUS. It must report the file and go on. (The module is 1 GiB of
/// zero symbols, sparse, so that the scan is still running when the file is cut; if
/// the scan ever finishes first, the test checks nothing more than a normal run.)
#[test]
fn regression_module_shrinking_during_scan_is_not_a_crash() {
    let tree = Tree::new(KVER);
    tree.empty_inputs();
    let path = tree.moddir().join("kernel/shrinking.ko");
    sparse_module(&path, (1 << 30) - (1 << 20));
    let child = Command::new(&oracle::ours().path)
        .args(tree.std_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(64 << 10)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "depmod {} when a module shrank under it\n{err}",
        out.status
    );
}

/// Regression (found by the `decompress_zst` fuzz target, artifact
/// `crash-3d42c8a0…`): a 137-byte zstd frame without a content size that inflates to
/// 2.5 MiB. With a 1 MiB limit the decoder must stop at the limit ("refusing to grow
/// the buffer past a limit, so a bomb costs at most that much memory"), but it let
/// libzstd fill all the spare capacity `Vec::reserve` happened to give, past the limit.
#[test]
fn regression_zstd_output_stays_within_the_limit() {
    use depmod::decompress::{decompress, Error, Format};
    let mut input = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x80];
    input.extend_from_slice(&[0x0a; 127]);
    input.extend_from_slice(&[0x02, 0x3d, 0x03, 0x27]);
    assert_eq!(input.len(), 137);
    let limit = 1 << 20;
    let mut out = Vec::new();
    let r = decompress(Format::Zstd, &input, &mut out, limit);
    assert_eq!(r, Err(Error::TooLarge(Format::Zstd)));
    assert!(
        out.len() <= limit + 1,
        "{} bytes in the buffer for a limit of {limit}",
        out.len()
    );
}

/// The same for xz (same buffer handling in `decompress/xz.rs`): 1.6 MiB of zeros,
/// compressed, decoded with a 1 MiB limit.
#[test]
fn regression_xz_output_stays_within_the_limit() {
    use depmod::decompress::{decompress, Error, Format};
    let mut child = Command::new("xz")
        .args(["-c", "--check=crc32"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("xz (cargo xtask test installs it)");
    let mut stdin = child.stdin.take().unwrap();
    let w = std::thread::spawn(move || stdin.write_all(&vec![0u8; 1600 << 10]));
    let out = child.wait_with_output().unwrap();
    w.join().unwrap().unwrap();
    let limit = 1 << 20;
    let mut buf = Vec::new();
    let r = decompress(Format::Xz, &out.stdout, &mut buf, limit);
    assert_eq!(r, Err(Error::TooLarge(Format::Xz)));
    assert!(
        buf.len() <= limit + 1,
        "{} bytes in the buffer for a limit of {limit}",
        buf.len()
    );
}

/// A 5 KiB `.bin` index whose root node has a 4000-byte prefix and 255 children that
/// all point back to the root.
fn looping_index() -> Vec<u8> {
    let root = 0xA000_0000u32 | 12; // PREFIX | CHILDS, at offset 12
    let mut v = Vec::new();
    v.extend_from_slice(&0xB007_F457u32.to_be_bytes());
    v.extend_from_slice(&0x0002_0001u32.to_be_bytes());
    v.extend_from_slice(&root.to_be_bytes());
    v.extend(std::iter::repeat_n(b'a', 4000));
    v.push(0);
    v.extend_from_slice(&[1, 255]);
    for _ in 1..=255 {
        v.extend_from_slice(&root.to_be_bytes());
    }
    v
}

/// Regressions (found by the `index_reader` fuzz target: 8 KiB inputs made it use
/// more than 4 GiB). 1: `index::Reader::entries` bounded the number of node visits by
/// the file size, but each visit clones the key so far for every child, and a prefix
/// revisited through a loop makes keys grow by its length at each level: memory grows
/// with visits × children × key length (`looping_index`, 5 KiB). 2: with visits
/// bounded, children were still pushed unbounded: nodes that many parents point to
/// (`tests/data/index-two-parents.bin`, the fuzzer's 7962-byte input) filled the
/// stack. A node reached twice is now `ReadError::Corrupt`; both files must fail
/// within 256 MiB. Run in a child process under an address-space limit, so that a
/// failure cannot take the machine's memory.
#[test]
fn regression_index_reader_memory_is_bounded() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("prlimit")
        .arg(format!("--as={}", 256u64 << 20))
        .arg("--")
        .arg(exe)
        .args([
            "--exact",
            "index_reader_on_looping_index",
            "--include-ignored",
            "--test-threads=1",
        ])
        .output()
        .expect("prlimit (util-linux)");
    assert!(
        out.status.success(),
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

/// The body of the test above (run by it in a child process).
#[test]
#[ignore = "run by regression_index_reader_memory_is_bounded under a memory limit"]
fn index_reader_on_looping_index() {
    let shared = include_bytes!("data/index-two-parents.bin");
    for data in [looping_index(), shared.to_vec()] {
        let r = depmod::index::Reader::new(&data).unwrap();
        assert!(r.entries().is_err());
    }
}
