//! A real kernel: Debian 12's `linux-image-6.1.0-56-amd64-unsigned` (4023 modules),
//! fetched once and cached under `target/` (see `tests/common/debian.rs`).
//!
//! * Our outputs must equal kmod 34.2's byte for byte (generated once by kmod 34.2 into
//!   `target/golden/` and checked against the sha256 sums committed in
//!   `tests/data/golden-debian-<KVER>.MANIFEST`; see `tests/common/debian.rs`), and `-n`
//!   must print the text files in kmod's order.
//! * With `-e -E Module.symvers` (a copy with one symbol removed and one CRC changed, so
//!   that both kinds of warning appear), stderr, stdout, exit status and outputs must
//!   equal those of kmod 34.2 run on an identical tree at the same path; stderr and the
//!   text outputs must also equal kmod 30's (Debian 12's own depmod).
//!
//! Binaries: `DEPMOD_UNDER_TEST` (default: our `depmod`), `KMOD34_DEPMOD` (default
//! `target/oracle/depmod-34.2`, made by `cargo xtask oracle`), `KMOD30_DEPMOD` (default
//! `/usr/sbin/depmod`). `DEPMOD_GOLDEN_DIR` names a directory of kmod 34.2's outputs to use
//! instead of generating them (they are checked against the same sums). Setting
//! `DEPMOD_UNDER_TEST=target/oracle/depmod-34.2` checks the tests themselves.

#[path = "common/debian.rs"]
mod debian;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use debian::{first_difference, KVER};

/// The text outputs, in the order kmod prints them with `-n` (compat §1.6).
const DRY_RUN_ORDER: &[&str] = &[
    "modules.dep",
    "modules.alias",
    "modules.softdep",
    "modules.weakdep",
    "modules.symbols",
    "modules.devname",
];

/// The text outputs kmod 30 writes (it has no `modules.weakdep`; its `.bin` files use
/// another node order).
const KMOD30_TEXT_OUTPUTS: &[&str] = &[
    "modules.dep",
    "modules.alias",
    "modules.softdep",
    "modules.symbols",
    "modules.devname",
];

/// A vmlinux symbol that modules import, deleted from the Module.symvers copy.
const DELETED_SYMBOL: &str = "pci_iomap_wc";
/// A vmlinux symbol that modules import, whose CRC is changed in the copy.
const CHANGED_CRC_SYMBOL: &str = "pci_ioremap_wc_bar";

fn under_test() -> PathBuf {
    match std::env::var_os("DEPMOD_UNDER_TEST") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_depmod")),
    }
}

fn kmod34() -> PathBuf {
    debian::kmod34_path().unwrap_or_else(|e| panic!("{e}"))
}

fn kmod30() -> PathBuf {
    let path = std::env::var_os("KMOD30_DEPMOD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/depmod"));
    assert!(
        path.is_file(),
        "kmod 30 {} is missing: `apt-get install kmod` (or set KMOD30_DEPMOD)",
        path.display()
    );
    path
}

fn golden() -> PathBuf {
    debian::golden_dir().unwrap_or_else(|e| panic!("{e}"))
}

/// The golden files (kmod 34.2's outputs, as the committed MANIFEST lists them).
fn golden_files() -> Vec<String> {
    let files = debian::golden_files().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        files.len() >= 11,
        "the MANIFEST looks incomplete: {files:?}"
    );
    files
}

/// A scratch directory under `target/` (so hard links into the cache work), removed
/// when dropped.
fn scratch() -> tempfile::TempDir {
    let base = debian::target_dir().join("tmp");
    fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix("golden-")
        .tempdir_in(base)
        .unwrap()
}

/// A fresh copy of the real tree at `root`, replacing whatever was there.
fn fresh_tree(root: &Path) -> PathBuf {
    debian::remove_tree(&root.join("lib")).unwrap();
    debian::fresh_copy(root).unwrap_or_else(|e| panic!("preparing the Debian tree: {e}"))
}

fn run(bin: &Path, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(bin)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every file directly in `dir` with its content.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    debian::list_files(dir)
        .unwrap()
        .into_iter()
        .map(|n| {
            let bytes = fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

/// Compares two texts line by line; describes the first difference.
fn compare_lines(what: &str, expected: &[u8], got: &[u8]) -> Option<String> {
    if expected == got {
        return None;
    }
    let e: Vec<&[u8]> = expected.split(|&b| b == b'\n').collect();
    let g: Vec<&[u8]> = got.split(|&b| b == b'\n').collect();
    let i = e
        .iter()
        .zip(&g)
        .position(|(a, b)| a != b)
        .unwrap_or(e.len().min(g.len()));
    Some(format!(
        "{what}: first difference at line {} ({} lines expected, {} got):\n  expected: {:?}\n  got:      {:?}",
        i + 1,
        e.len(),
        g.len(),
        e.get(i).map(|l| text(l)),
        g.get(i).map(|l| text(l)),
    ))
}

fn check(failures: &mut Vec<String>, problem: Option<String>) {
    if let Some(p) = problem {
        failures.push(p);
    }
}

fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn real_tree_outputs_equal_kmod_34_2_golden() {
    let golden = golden();
    let files = golden_files();
    let tmp = scratch();
    let root = tmp.path().join("root");
    let empty = tmp.path().join("empty-config");
    fs::create_dir(&empty).unwrap();
    let dir = fresh_tree(&root);
    let inputs = debian::list_files(&dir).unwrap();

    let out = run(
        &under_test(),
        &[
            "-b".as_ref(),
            root.as_os_str(),
            "-C".as_ref(),
            empty.as_os_str(),
            KVER.as_ref(),
        ],
    );
    let mut failures = Vec::new();
    if !out.status.success() {
        failures.push(format!("exit status {}", out.status));
    }
    if !out.stdout.is_empty() {
        failures.push(format!("unexpected stdout:\n{}", text(&out.stdout)));
    }
    if !out.stderr.is_empty() {
        failures.push(format!("unexpected stderr:\n{}", text(&out.stderr)));
    }
    for name in &files {
        let expected = fs::read(golden.join(name)).unwrap();
        match fs::read(dir.join(name)) {
            Err(e) => failures.push(format!("{name}: not written ({e})")),
            Ok(got) => check(
                &mut failures,
                first_difference(&expected, &got).map(|d| format!("{name}: {d}")),
            ),
        }
    }
    // Nothing else may appear (no stray temp files).
    for name in debian::list_files(&dir).unwrap() {
        if !files.contains(&name) && !inputs.contains(&name) {
            failures.push(format!(
                "unexpected file left in the module directory: {name}"
            ));
        }
    }
    assert_no_failures(&failures);
}

#[test]
fn real_tree_dry_run_prints_the_text_outputs() {
    let golden = golden();
    let tmp = scratch();
    let root = tmp.path().join("root");
    let empty = tmp.path().join("empty-config");
    fs::create_dir(&empty).unwrap();
    let dir = fresh_tree(&root);
    let before = debian::list_files(&dir).unwrap();

    let out = run(
        &under_test(),
        &[
            "-n".as_ref(),
            "-b".as_ref(),
            root.as_os_str(),
            "-C".as_ref(),
            empty.as_os_str(),
            KVER.as_ref(),
        ],
    );
    let mut expected = Vec::new();
    for name in DRY_RUN_ORDER {
        expected.extend(fs::read(golden.join(name)).unwrap());
    }
    let mut failures = Vec::new();
    if !out.status.success() {
        failures.push(format!("exit status {}", out.status));
    }
    if !out.stderr.is_empty() {
        failures.push(format!("unexpected stderr:\n{}", text(&out.stderr)));
    }
    check(
        &mut failures,
        first_difference(&expected, &out.stdout).map(|d| format!("stdout: {d}")),
    );
    let after = debian::list_files(&dir).unwrap();
    if after != before {
        failures.push(format!(
            "-n changed the module directory: before {before:?}, after {after:?}"
        ));
    }
    assert_no_failures(&failures);
}

/// Module.symvers with `DELETED_SYMBOL`'s line removed and `CHANGED_CRC_SYMBOL`'s CRC
/// altered, written to `path`.
fn altered_symvers(path: &Path) {
    let original = debian::module_symvers().unwrap_or_else(|e| panic!("Module.symvers: {e}"));
    let content = fs::read_to_string(&original).unwrap();
    let mut out = String::with_capacity(content.len());
    let (mut deleted, mut changed) = (false, false);
    for line in content.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() >= 3 && fields[2] == "vmlinux" {
            if fields[1] == DELETED_SYMBOL {
                deleted = true;
                continue;
            }
            if fields[1] == CHANGED_CRC_SYMBOL {
                let crc = u64::from_str_radix(fields[0].trim_start_matches("0x"), 16).unwrap();
                let mut rest = fields[1..].join("\t");
                rest.insert(0, '\t');
                writeln!(out, "0x{:08x}{rest}", crc ^ 0x5a5a_5a5a).unwrap();
                changed = true;
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(
        deleted && changed,
        "{DELETED_SYMBOL} / {CHANGED_CRC_SYMBOL} not found as vmlinux symbols in {}",
        original.display()
    );
    fs::write(path, out).unwrap();
}

/// Runs `bin -b ROOT -C EMPTY -e -E SYMVERS KVER` on a fresh tree at `root`; returns the
/// process output and the module directory's files afterwards.
fn errsyms_run(
    bin: &Path,
    root: &Path,
    empty: &Path,
    symvers: &Path,
) -> (Output, BTreeMap<String, Vec<u8>>) {
    let dir = fresh_tree(root);
    let out = run(
        bin,
        &[
            "-b".as_ref(),
            root.as_os_str(),
            "-C".as_ref(),
            empty.as_os_str(),
            "-e".as_ref(),
            "-E".as_ref(),
            symvers.as_os_str(),
            KVER.as_ref(),
        ],
    );
    let files = snapshot(&dir);
    (out, files)
}

/// Checks that the reference's stderr really exercises both warnings.
fn assert_both_warnings(name: &str, stderr: &[u8]) {
    let stderr = text(stderr);
    let unknown = format!(" needs unknown symbol {DELETED_SYMBOL}\n");
    let crc = format!(" disagrees about version of symbol {CHANGED_CRC_SYMBOL}\n");
    assert!(
        stderr.contains(&unknown) && stderr.contains(&crc),
        "{name} did not report both altered symbols; its stderr:\n{stderr}"
    );
}

/// Runs `kmod` (called `name`) and ours with `-e -E` and the altered Module.symvers,
/// each on a fresh tree at the same path; checks that `kmod` succeeds and reports both
/// altered symbols, and adds to `failures` how ours's exit status, stderr and stdout
/// differ from `kmod`'s. Returns the files each left (`kmod`'s, ours).
fn errsyms_against(
    name: &str,
    kmod: &Path,
    failures: &mut Vec<String>,
) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>) {
    let tmp = scratch();
    let root = tmp.path().join("root");
    let empty = tmp.path().join("empty-config");
    fs::create_dir(&empty).unwrap();
    let symvers = tmp.path().join("Module.symvers");
    altered_symvers(&symvers);

    let (want, want_files) = errsyms_run(kmod, &root, &empty, &symvers);
    assert_both_warnings(name, &want.stderr);
    assert!(want.status.success(), "{name} failed: {}", want.status);
    let (got, got_files) = errsyms_run(&under_test(), &root, &empty, &symvers);

    if got.status.code() != want.status.code() {
        failures.push(format!(
            "exit status: {name} {}, ours {}",
            want.status, got.status
        ));
    }
    check(failures, compare_lines("stderr", &want.stderr, &got.stderr));
    check(failures, compare_lines("stdout", &want.stdout, &got.stdout));
    (want_files, got_files)
}

#[test]
fn real_tree_errsyms_with_symvers_match_kmod_34_2() {
    let mut failures = Vec::new();
    let (want_files, got_files) = errsyms_against("kmod 34.2", &kmod34(), &mut failures);
    let want_names: Vec<&String> = want_files.keys().collect();
    let got_names: Vec<&String> = got_files.keys().collect();
    if want_names != got_names {
        failures.push(format!(
            "files: kmod 34.2 left {want_names:?}, ours {got_names:?}"
        ));
    }
    for (name, bytes) in &want_files {
        if let Some(ours) = got_files.get(name) {
            check(
                &mut failures,
                first_difference(bytes, ours).map(|d| format!("{name}: {d}")),
            );
        }
    }
    assert_no_failures(&failures);
}

#[test]
fn real_tree_errsyms_with_symvers_match_kmod_30() {
    let mut failures = Vec::new();
    let (want_files, got_files) = errsyms_against("kmod 30", &kmod30(), &mut failures);
    for name in KMOD30_TEXT_OUTPUTS {
        match (want_files.get(*name), got_files.get(*name)) {
            (Some(w), Some(g)) => check(
                &mut failures,
                first_difference(w, g).map(|d| format!("{name}: {d}")),
            ),
            (w, g) => failures.push(format!(
                "{name}: written by kmod 30: {}, by ours: {}",
                w.is_some(),
                g.is_some()
            )),
        }
    }
    assert_no_failures(&failures);
}
