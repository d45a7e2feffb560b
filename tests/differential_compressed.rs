//! Compressed modules (xz, zstd, gzip), detected by content, and streams that cannot
//! be decompressed. Where ours reads a file otherwise than kmod 34.2 by intent (A:
//! gzip, B: one line per undecodable stream, C: zstd without content size), the
//! oracles run on stand-ins (`Subst` in `tests/common/oracle/contracts.rs`).
//!
//! Oracles: kmod 34.2, compared with ours on everything (every output file incl. the
//! `.bin` indexes and their modes, stdout, stderr, exit status), and kmod 30 on the
//! text files; see `tests/common/scenario.rs` (`check`; `check34`: kmod 34.2 alone).

mod common;

use common::oracle::*;
use common::scenario::*;
use common::tree::*;

// ---------------------------------------------------------------------------------------
// helpers

/// `check` with the oracles run on stand-ins for the files ours reads otherwise by
/// intent (see `Subst`; `Tree::packed` makes them).
fn check_substs(t: &Tree, opts: &[&str], substs: &[Subst], v30: bool) -> Outcome {
    check_with(
        t,
        &args(t, opts),
        &Diff {
            substs: substs.to_vec(),
            v30,
            ..diff_opts(t)
        },
    )
}

/// Compressed modules (xz with both checks, zstd), compression detected by magic, and
/// streams that cannot be decompressed: ours names each once with the reason (intended
/// difference B), kmod prints its decompressor's lines and "Invalid argument".
#[test]
fn compressed_modules() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    let a = km(&["a_fn"], &[]).modinfo(&["alias=comp:a"]).build();
    let b = km(&["b_fn"], &["a_fn"]).build();
    let c = km(&[], &["b_fn", "a_fn"]).build();
    t.module(
        "kernel/comp-a.ko.xz",
        compress("xz", &["-c", "--check=crc32"], &a),
    );
    t.module("kernel/comp-b.ko.zst", compress("zstd", &["-q", "-c"], &b));
    t.module("kernel/comp-c.ko.xz", compress("xz", &["-c"], &c));
    // Suffix says xz, content is plain ELF; suffix .ko, content is zstd.
    t.module("kernel/plain-in-xz.ko.xz", km(&[], &["a_fn"]).build());
    t.module(
        "kernel/zst-in-ko.ko",
        compress("zstd", &["-q", "-c"], &km(&[], &["b_fn"]).build()),
    );
    // Streams that cannot be decompressed (B).
    let mut substs = Vec::new();
    // A flipped byte amid the LZMA2 data (kmod: "xz: File is corrupt").
    let mut x = compress("xz", &["-c"], &km(&[], &["a_fn"]).build());
    let n = x.len();
    x[n / 2] ^= 0xff;
    t.module("kernel/corrupt.ko.xz", &x);
    substs.push(Subst {
        rel: t.mod_rel("kernel/corrupt.ko.xz"),
        oracle_rel: t.mod_rel("kernel/corrupt.ko.xz"),
        oracle_content: None,
        ours_error: Some("corrupt xz data".into()),
        v30_as_is: true,
    });
    let bad = km(&["bad_fn"], &["a_fn"]).build();
    for (rel, p, d) in [
        ("kernel/truncated.ko.zst", Pack::Zst, Damage::Truncated),
        ("kernel/badcrc.ko.zst", Pack::Zst, Damage::Corrupt),
        ("kernel/badcheck.ko.xz", Pack::Xz, Damage::Corrupt),
        ("kernel/badcheck64.ko.xz", Pack::XzCrc64, Damage::Corrupt),
        ("kernel/half.ko.xz", Pack::Xz, Damage::Truncated),
        ("kernel/half-in-ko.ko", Pack::Xz, Damage::Truncated),
        (
            "kernel/nosize-half.ko.zst",
            Pack::ZstPiped,
            Damage::Truncated,
        ),
    ] {
        substs.extend(t.packed_module(rel, &bad, p, d));
    }
    // A module importing from one that fails: no dependency.
    t.module("kernel/bad-user.ko", km(&[], &["bad_fn", "a_fn"]).build());
    t.order_lines(&[
        "kernel/comp-c.ko",
        "kernel/comp-a.ko",
        "kernel/comp-b.ko.zst",
        "kernel/half.ko",
    ]);
    assert_eq!(substs.len(), 8);
    let o = check_substs(&t, &[], &substs, true);
    assert!(
        text(&o, "modules.dep").contains("\nkernel/half.ko.xz:\n"),
        "{}",
        text(&o, "modules.dep")
    );
    check_substs(&t, &["-n", "-v"], &substs, true);
    check_substs(&t, &["-e", "-w"], &substs, true);
}

/// zstd frames without the content size in their header (`zstd < in > out`): kmod 34.2
/// cannot decompress them ("zstd: Failed to determine decompression size", printed three
/// times per module), kmod 30 and ours can (intended difference C). The oracles get the
/// payload itself in the same file; kmod 30 also runs on the tree as it is.
#[test]
fn compressed_zstd_without_content_size() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    let mut substs = Vec::new();
    let a = km(&["a_fn"], &[]).modinfo(&["alias=zst:a"]).build();
    substs.extend(t.packed_module("kernel/a.ko.zst", &a, Pack::ZstPiped, Damage::Intact));
    let b = km(&["b_fn"], &["a_fn"]).build();
    assert!(t
        .packed_module("kernel/b.ko.zst", &b, Pack::Zst, Damage::Intact)
        .is_none());
    // Without content size, behind a .ko suffix, and in an external directory.
    let c = km(&["c_fn"], &["a_fn", "b_fn"]).build();
    substs.extend(t.packed_module("kernel/c.ko", &c, Pack::ZstPiped, Damage::Intact));
    let x = km(&[], &["c_fn"]).build();
    substs.extend(t.packed("ext/x.ko.zst", &x, Pack::ZstPiped, Damage::Intact));
    t.conf(
        "ext.conf",
        &format!("external * {}/ext\n", t.root.display()),
    );
    assert_eq!(substs.len(), 3);
    assert!(substs.iter().all(|s| s.v30_as_is && s.oracle_rel == s.rel));
    let o = check_substs(&t, &[], &substs, true);
    assert_eq!(
        text(&o, "modules.dep"),
        format!(
            "kernel/c.ko: kernel/b.ko.zst kernel/a.ko.zst\n\
             kernel/b.ko.zst: kernel/a.ko.zst\n\
             kernel/a.ko.zst:\n\
             {}/ext/x.ko.zst: kernel/c.ko kernel/b.ko.zst kernel/a.ko.zst\n",
            t.root.display()
        )
    );
    check_substs(&t, &["-n", "-v"], &substs, true);
}

/// Compressed payloads that are empty or not ELF. kmod 34.2 rejects a zstd frame whose
/// content size is 0 ("zstd: Failed to determine decompression size", Invalid
/// argument); ours decodes it, as kmod 30 does (intended difference C), and finds an
/// empty payload, as kmod does for an empty xz payload ("Exec format error").
#[test]
fn compressed_edge_payloads() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    let elf = km(&["e_fn"], &[]).build();
    let mut substs = Vec::new();
    for (name, payload) in [
        ("empty", &b""[..]),
        ("text", &b"not an elf"[..]),
        ("header", &elf[..64]),
        ("short", &b"\x7fEL"[..]),
    ] {
        for (suffix, p) in [
            ("z.ko.zst", Pack::Zst),
            ("x.ko.xz", Pack::Xz),
            ("p.ko.zst", Pack::ZstPiped),
            ("g.ko.gz", Pack::Gz),
        ] {
            substs.extend(t.packed_module(
                &format!("kernel/{name}-{suffix}"),
                payload,
                p,
                Damage::Intact,
            ));
        }
    }
    t.module("kernel/user.ko", km(&[], &["e_fn"]).build());
    // empty-z (content size 0), every piped zstd, every gzip.
    assert_eq!(substs.len(), 9);
    check_substs(&t, &[], &substs, true);
}

/// `.ko.gz` (intended difference A): ours reads it (as upstream kmod built with zlib
/// does); Debian's kmod 34.2 and kmod 30 are built without zlib and ignore such files.
/// The oracles see the decompressed module as `.ko`; their outputs must equal ours but
/// for the `.ko.gz` paths. gzip content behind a `.ko` suffix is decompressed too
/// (detection by magic), where kmod says "Function not implemented".
#[test]
fn compressed_gzip() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    let mut substs = Vec::new();
    let mut add = |rel: &str, data: Vec<u8>, d: Damage| {
        let s = t.packed(rel, &data, Pack::Gz, d);
        substs.push(s.expect("gzip needs a stand-in"));
    };
    add(
        &t.mod_rel("kernel/g.ko.gz"),
        km(&["g_fn"], &[]).modinfo(&["alias=gz:g"]).build(),
        Damage::Intact,
    );
    add(
        &t.mod_rel("kernel/gz-in-ko.ko"),
        km(&["h_fn"], &["g_fn"]).build(),
        Damage::Intact,
    );
    add(
        &t.mod_rel("kernel/deep/dir/k.ko.gz"),
        km(&["k_fn"], &["h_fn", "g_fn"]).build(),
        Damage::Intact,
    );
    // External, so modules.dep shows its full path.
    add(
        "ext/e.ko.gz",
        km(&["e_fn"], &["k_fn"]).build(),
        Damage::Intact,
    );
    // Damaged streams (B): the oracles get an xz stream damaged the same way.
    add(
        &t.mod_rel("kernel/badcrc.ko.gz"),
        km(&["bad_fn"], &[]).build(),
        Damage::Corrupt,
    );
    add(
        &t.mod_rel("kernel/half.ko.gz"),
        km(&["bad_fn"], &[]).build(),
        Damage::Truncated,
    );
    add(
        &t.mod_rel("kernel/half-in-ko.ko"),
        km(&["bad2_fn"], &[]).build(),
        Damage::Truncated,
    );
    t.module(
        "kernel/user.ko",
        km(&[], &["g_fn", "e_fn", "bad_fn"]).build(),
    );
    t.conf(
        "ext.conf",
        &format!(
            "external * {}/ext\nsearch external built-in\n",
            t.root.display()
        ),
    );
    t.order_lines(&["kernel/deep/dir/k.ko", "kernel/g.ko", "kernel/user.ko"]);
    let o = check_substs(&t, &[], &substs, true);
    let dep = text(&o, "modules.dep");
    assert!(
        dep.starts_with("kernel/deep/dir/k.ko.gz: kernel/gz-in-ko.ko kernel/g.ko.gz\n"),
        "{dep}"
    );
    for opts in [&["-n"][..], &["-v"], &["-n", "-v", "-w"]] {
        check_substs(&t, opts, &substs, true);
    }
    // -e: unknown symbols are named with the importer's path.
    substs.extend(t.packed_module(
        "kernel/needy.ko.gz",
        &km(&[], &["nowhere_fn", "g_fn"]).build(),
        Pack::Gz,
        Damage::Intact,
    ));
    check_substs(&t, &["-e"], &substs, true);
}
