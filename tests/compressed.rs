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
    debian::golden_dir().unwrap_or_else(|e| panic!("{e}"))
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

/// Runs `tool ARGS… FILE` on `data` written to a scratch file: its output.
fn run_tool_on(data: &[u8], tool: &str, args: &[&str]) -> std::process::Output {
    let path = debian::target_dir()
        .join("scratch")
        .join(debian::unique_name(tool));
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, data).unwrap();
    let out = Command::new(tool).args(args).arg(&path).output().unwrap();
    fs::remove_file(&path).unwrap();
    out
}

/// Runs `gzip -dc` on `data`: what it writes, or `None` when it rejects the input.
fn gunzip(data: &[u8]) -> Option<Vec<u8>> {
    let out = run_tool_on(data, "gzip", &["-dc"]);
    out.status.success().then_some(out.stdout)
}

/// The gzip member header is read by our code (the inflate state is reused in raw
/// mode, see src/decompress/gz.rs): every optional field, a header CRC, and damaged
/// headers and trailers, each judged as GNU gzip judges it; and one set of decoders
/// reused across all of them, errors included, gives what fresh ones give.
#[test]
fn gzip_member_headers_and_trailers_match_gnu_gzip() {
    use depmod::decompress::{decompress, Decoders, Error, Format};
    let payload: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i.wrapping_mul(2_654_435_761) >> (i % 13)).to_le_bytes())
        .collect();
    // A member from gzip itself (with the file name), then its parts.
    let named = run_tool_on(&payload, "gzip", &["-c"]);
    assert!(named.status.success());
    let named = named.stdout;
    assert_eq!(named[3] & 0x08, 0x08, "gzip -c stores the name");
    let name_end = 10 + named[10..].iter().position(|&b| b == 0).unwrap() + 1;
    let deflate_and_trailer = &named[name_end..];
    let crc16 = |h: &[u8]| {
        let mut c = zlib_crc32(h);
        c &= 0xFFFF;
        (c as u16).to_le_bytes()
    };
    let member = |flags: u8, fields: &[u8], with_hcrc: bool| {
        let mut m = vec![0x1F, 0x8B, 8, flags | if with_hcrc { 0x02 } else { 0 }];
        m.extend_from_slice(&[0, 0, 0, 0, 0, 3]);
        m.extend_from_slice(fields);
        if with_hcrc {
            let c = crc16(&m);
            m.extend_from_slice(&c);
        }
        m.extend_from_slice(deflate_and_trailer);
        m
    };
    let mut extra = vec![6, 0];
    extra.extend_from_slice(b"AB\x02\x00xy");
    let mut all_fields = extra.clone();
    all_fields.extend_from_slice(b"name.ko\0a comment\0");
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("named", named.clone()),
        ("plain", member(0, &[], false)),
        ("extra", member(0x04, &extra, false)),
        (
            "all fields + header CRC",
            member(0x04 | 0x08 | 0x10, &all_fields, true),
        ),
        ("header CRC only", member(0, &[], true)),
    ];
    let mut bad_hcrc = member(0, &[], true);
    bad_hcrc[10] ^= 1;
    cases.push(("wrong header CRC", bad_hcrc));
    let mut reserved = member(0, &[], false);
    reserved[3] |= 0x20;
    cases.push(("reserved flag", reserved));
    let mut method = member(0, &[], false);
    method[2] = 7;
    cases.push(("method 7", method));
    let mut crc = named.clone();
    let n = crc.len();
    crc[n - 8] ^= 0x40;
    cases.push(("wrong data CRC", crc));
    let mut len = named.clone();
    len[n - 3] ^= 0x01;
    cases.push(("wrong length", len));
    for cut in [5, 10, 12, name_end - 1, n - 6, n - 1] {
        cases.push(("truncated", named[..cut].to_vec()));
    }
    let mut shared = Decoders::default();
    for (what, data) in &cases {
        let expected = gunzip(data);
        let mut fresh_out = Vec::new();
        let fresh = decompress(Format::Gzip, data, &mut fresh_out, 1 << 30);
        let mut reused_out = Vec::new();
        let reused = shared.decompress(Format::Gzip, data, &mut reused_out, 1 << 30);
        assert_eq!(fresh, reused, "{what}: fresh and reused decoders disagree");
        match (&expected, fresh) {
            (Some(bytes), Ok(())) => {
                assert_eq!(&fresh_out, bytes, "{what}");
                assert_eq!(&reused_out, bytes, "{what}");
            }
            (None, Err(Error::Corrupt(_) | Error::Truncated(_))) => {}
            (e, r) => panic!(
                "{what}: gzip says {:?}, ours {r:?}",
                e.as_ref().map(Vec::len)
            ),
        }
        if what == &"truncated" {
            assert_eq!(fresh, Err(Error::Truncated(Format::Gzip)), "{what}");
        }
    }
    // Output limits: over by one fails, exact fits, and the decoder is still good.
    let mut out = Vec::new();
    assert_eq!(
        shared.decompress(Format::Gzip, &named, &mut out, payload.len() - 1),
        Err(Error::TooLarge(Format::Gzip))
    );
    shared
        .decompress(Format::Gzip, &named, &mut out, payload.len())
        .unwrap();
    assert_eq!(out, payload);
}

/// CRC-32 (IEEE), bitwise: the test's own, independent of the decoder's.
fn zlib_crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// Regression (the `decompress_zst` fuzz target, once decoders were reused): these
/// damaged frames are refused at once by a new libzstd context ("destination buffer
/// is too small": corrupt) but decoded by a used one until the input runs out
/// (truncated) or the output reaches the limit (too large), so the message depended
/// on what the worker had read before. A frame that fails with a used context is
/// now judged again with a new one.
#[test]
fn regression_zstd_damaged_frame_is_judged_alike_after_other_frames() {
    use depmod::decompress::{decompress, Decoders, Format};
    let damaged: [&[u8]; 2] = [
        include_bytes!("data/zstd-judged-by-history.zst"),
        include_bytes!("data/zstd-judged-by-history-2.zst"),
    ];
    let mut out = Vec::new();
    let payload: Vec<u8> = (0..50_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    // Without a content size in the header (as when compressing a pipe), so that
    // the context decodes through its own window buffers.
    let good = run_tool_on(&payload, "zstd", &["-qc", "--no-content-size"]);
    assert!(good.status.success());
    let mut shared = Decoders::default();
    shared
        .decompress(Format::Zstd, &good.stdout, &mut out, 1 << 20)
        .unwrap();
    assert_eq!(out, payload);
    // And seven small frames with a 1 KiB window, from the fuzzer's corpus.
    let small: &[u8] = include_bytes!("data/zstd-seven-small-frames.zst");
    for before in [&good.stdout[..], small] {
        for frame in damaged {
            let fresh = decompress(Format::Zstd, frame, &mut out, 1 << 20);
            assert!(fresh.is_err(), "{fresh:?}");
            shared
                .decompress(Format::Zstd, before, &mut out, 1 << 20)
                .unwrap();
            assert_eq!(
                shared.decompress(Format::Zstd, frame, &mut out, 1 << 20),
                fresh
            );
        }
    }
}
