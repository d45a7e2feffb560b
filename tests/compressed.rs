//! Compressed modules: the real Debian tree compressed as kbuild compresses it gives
//! kmod 34.2's golden outputs (module paths keep their suffix), and modules that
//! cannot be decompressed are named once each and skipped, with everything else
//! indexed as without them.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::debian::{self, KVER};
use common::variants::{self, Compression};

fn depmod() -> std::path::PathBuf {
    common::oracle::our_binary()
}

/// A writable copy (hard links) of a cached tree under target/, for one test.
fn scratch(src: &Path, label: &str) -> PathBuf {
    let root = debian::target_dir()
        .join("scratch")
        .join(debian::unique_name(label));
    fs::create_dir_all(root.parent().unwrap()).unwrap();
    let status = Command::new("cp")
        .arg("-al")
        .arg(src)
        .arg(&root)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -al {} {}",
        src.display(),
        root.display()
    );
    root
}

fn empty_config() -> PathBuf {
    let d = debian::target_dir().join("scratch/empty-depmod.d");
    fs::create_dir_all(&d).unwrap();
    d
}

fn run(root: &Path) -> std::process::Output {
    Command::new(depmod())
        .arg("-C")
        .arg(empty_config())
        .arg("-b")
        .arg(root)
        .arg(KVER)
        .output()
        .unwrap()
}

fn golden() -> PathBuf {
    debian::golden_dir().expect("../shared/golden/debian-6.1.0-56-amd64 is missing")
}

fn check_tree(kind: Compression) {
    let plain = debian::image_root().unwrap();
    let tree = variants::compressed_tree(&plain, kind);
    let root = scratch(&tree, kind.name());
    let out = run(&root);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n =
        variants::compare_with_golden(&root.join("lib/modules").join(KVER), &golden(), Some(kind))
            .unwrap();
    assert_eq!(n, 11, "every golden file compared");
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn gzip_tree_gives_the_golden_outputs() {
    check_tree(Compression::Gz);
}

#[test]
fn xz_tree_gives_the_golden_outputs() {
    check_tree(Compression::Xz);
}

#[test]
fn zstd_tree_gives_the_golden_outputs() {
    check_tree(Compression::Zst);
}

/// Corrupt and truncated copies of real compressed modules, added next to the good
/// ones: each is reported once, by path and reason, listed with no dependencies, and
/// nothing else changes.
#[test]
fn bad_compressed_modules_are_named_and_skipped() {
    let plain = debian::image_root().unwrap();
    let root = debian::target_dir()
        .join("scratch")
        .join(debian::unique_name("badcomp"));
    let moddir = root.join("lib/modules").join(KVER);
    let src = plain.join("lib/modules").join(KVER);
    // A small real subset with dependencies among its modules.
    let subset = [
        "kernel/fs/btrfs/btrfs.ko",
        "kernel/lib/raid6/raid6_pq.ko",
        "kernel/lib/libcrc32c.ko",
        "kernel/crypto/xor.ko",
        "kernel/fs/xfs/xfs.ko",
        "kernel/drivers/net/dummy.ko",
    ];
    for m in subset {
        let to = moddir.join(m);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(src.join(m), &to).unwrap();
    }
    // The inputs kmod warns about when missing.
    for f in ["modules.builtin", "modules.builtin.modinfo"] {
        fs::copy(src.join(f), moddir.join(f)).unwrap();
    }
    fs::write(moddir.join("modules.order"), b"").unwrap();
    let good = run(&root);
    assert_eq!(good.status.code(), Some(0));
    let read = |n: &str| fs::read(moddir.join(n)).unwrap();
    let good_dep = read("modules.dep");
    let good_alias = read("modules.alias");
    let good_symbols = read("modules.symbols");

    // Bad variants, made from a real module with the real tools.
    let base = src.join("kernel/drivers/net/dummy.ko");
    let bad = moddir.join("kernel/bad");
    fs::create_dir_all(&bad).unwrap();
    let mut expected: Vec<(String, &str)> = Vec::new();
    for kind in Compression::ALL {
        let tmp = bad.join("tmp.ko");
        fs::copy(&base, &tmp).unwrap();
        let tool = match kind {
            Compression::Gz => Command::new("gzip").args(["-n", "-f"]).arg(&tmp).status(),
            Compression::Xz => Command::new("xz")
                .args(["--check=crc32", "--lzma2=dict=1MiB", "-f"])
                .arg(&tmp)
                .status(),
            Compression::Zst => Command::new("zstd")
                .args(["-q", "--rm", "-f"])
                .arg(&tmp)
                .status(),
        };
        assert!(tool.unwrap().success());
        let packed = fs::read(bad.join(format!("tmp.ko{}", kind.suffix()))).unwrap();
        fs::remove_file(bad.join(format!("tmp.ko{}", kind.suffix()))).unwrap();
        let name = kind.name();
        // Cut in the middle of the stream.
        let trunc = format!("trunc-{name}.ko{}", kind.suffix());
        fs::write(bad.join(&trunc), &packed[..packed.len() / 2]).unwrap();
        expected.push((trunc, "truncated"));
        // Garbage after a valid header.
        let mut junk = packed[..16.min(packed.len())].to_vec();
        junk.extend(std::iter::repeat_n(0xA5u8, 4096));
        let junkname = format!("junk-{name}.ko{}", kind.suffix());
        fs::write(bad.join(&junkname), &junk).unwrap();
        expected.push((junkname, ""));
    }
    let out = run(&root);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "one line per bad module:\n{stderr}"
    );
    for (file, what) in &expected {
        let path = bad.join(file);
        let line = lines
            .iter()
            .find(|l| l.contains(&*path.to_string_lossy()))
            .unwrap_or_else(|| panic!("no message names {}:\n{stderr}", path.display()));
        assert!(
            line.starts_with("depmod: ERROR: failed to load symbols from "),
            "{line}"
        );
        assert!(line.contains(what), "{line} should say {what}");
    }
    // Everything else as before; each bad module listed with no dependencies.
    let dep = read("modules.dep");
    let dep_text = String::from_utf8_lossy(&dep);
    let mut kept: Vec<&str> = dep_text
        .lines()
        .filter(|l| !l.starts_with("kernel/bad/"))
        .collect();
    let good_text = String::from_utf8_lossy(&good_dep);
    let mut before: Vec<&str> = good_text.lines().collect();
    kept.sort();
    before.sort();
    assert_eq!(kept, before);
    for (file, _) in &expected {
        assert!(
            dep_text.lines().any(|l| l == format!("kernel/bad/{file}:")),
            "{file} listed without deps"
        );
    }
    assert_eq!(read("modules.alias"), good_alias);
    assert_eq!(read("modules.symbols"), good_symbols);
    let _ = fs::remove_dir_all(&root);
}
