//! Which module files depmod finds and in what order it takes them: the walk of the
//! module directory (symlinks, `build` and `source`, file types it skips, a dangling
//! link, a missing directory), ties between equally ranked duplicates (name order),
//! and modules.order.
//!
//! Oracles: kmod 34.2, compared with ours on everything (every output file incl. the
//! `.bin` indexes and their modes, stdout, stderr, exit status), and kmod 30 on the
//! text files; see `tests/common/scenario.rs` (`check`; `check34`: kmod 34.2 alone).

mod common;

use common::scenario::*;
use common::tree::*;
use std::fs;

// ---------------------------------------------------------------------------------------
// the directory walk

/// Symlinks (to files, to directories), `build`/`source` entries, unsupported types,
/// and pre-existing outputs that are symlinks.
#[test]
fn symlinks_and_skipped_entries() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    t.write("store/real.ko", km(&["real_fn"], &[]).build());
    t.write("store/dir/indir.ko", km(&[], &["real_fn"]).build());
    t.symlink(
        "../../../../store/real.ko",
        "lib/modules/4.4.4/kernel/link.ko",
    );
    t.symlink(
        &t.path("store/dir").display().to_string(),
        "lib/modules/4.4.4/kernel/linkdir",
    );
    t.module("kernel/build/skipped.ko", km(&[], &[]).build());
    t.module("kernel/sub/source", km(&[], &[]).build());
    t.module("kernel/build.ko", km(&[], &[]).build());
    t.symlink("/nonexistent", "lib/modules/4.4.4/source");
    t.write("elsewhere/modules.alias", "old");
    t.symlink(
        "../../../elsewhere/modules.alias",
        "lib/modules/4.4.4/modules.alias",
    );
    let fifo = t.moddir().join("kernel/fifo.ko");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let o = check(&t, &[]);
    assert!(text(&o, "modules.dep").contains("kernel/link.ko"));
}

/// A dangling symlink: the message contains a directory fd number.
#[test]
fn dangling_symlink() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    t.module("kernel/ok.ko", km(&[], &[]).build());
    t.symlink("nowhere.ko", "lib/modules/4.4.4/kernel/dangling.ko");
    check(&t, &[]);
}

/// A missing module directory.
#[test]
fn missing_moddir() {
    let t = Tree::new("4.4.4");
    check(&t, &["-n"]);
    let argv = vec![
        "-b".to_string(),
        t.root.display().to_string(),
        "-C".into(),
        t.confdir().display().to_string(),
        "9.9.9".into(),
    ];
    check_with(&t, &argv, &diff_opts(&t));
}

// ---------------------------------------------------------------------------------------
// ties between duplicates

/// Equally ranked duplicates: kmod keeps the first one its `readdir` meets (the last,
/// inside one search directory), so its choice changes with the file system. Ours
/// walks each directory in name order, and the oracles run with `readdir` sorted
/// the same way (`oracle::sorted_readdir`): the winner is the first (or last) in
/// name order, whatever order the directories were created in or the file system
/// lists them in.
#[test]
fn duplicate_ties_follow_name_order() {
    let dirs = [
        "zeta", "alpha", "mid", "omega", "beta", "kappa", "delta", "x",
    ];
    // Default configuration: every kernel/ directory ranks alike; first found wins.
    let kernel: Vec<String> = dirs.iter().map(|d| format!("kernel/{d}")).collect();
    let kernel: Vec<&str> = kernel.iter().map(String::as_str).collect();
    let o = dup_case(&kernel, &[], &[]);
    let dep = dep(&o);
    assert!(dep.contains("kernel/alpha/mod-simple.ko:\n"), "{dep}");
    assert_eq!(dep.matches("mod-simple.ko:").count(), 1, "{dep}");
    // Inside one search directory (the `else` quirk): last found wins.
    let updates: Vec<String> = dirs.iter().map(|d| format!("updates/{d}")).collect();
    let mut updates: Vec<&str> = updates.iter().map(String::as_str).collect();
    updates.push("kernel");
    let o = dup_case(&updates, &[], &[("a.conf", "search updates built-in\n")]);
    let dep = self::dep(&o);
    assert!(dep.contains("updates/zeta/mod-simple.ko:\n"), "{dep}");
    assert_eq!(dep.matches("mod-simple.ko:").count(), 1, "{dep}");
}

// ---------------------------------------------------------------------------------------
// modules.order

fn order_tree() -> Tree {
    let t = Tree::new("4.4.4");
    t.builtin("");
    t.builtin_modinfo(b"");
    t.module(
        "kernel/drivers/block/cciss.ko",
        km(&["cciss_fn"], &[])
            .modinfo(&["alias=pci:v0E11d0046sv*"])
            .build(),
    );
    t.module(
        "kernel/drivers/scsi/scsi_mod.ko",
        km(&["scsi_fn"], &[]).build(),
    );
    t.module(
        "kernel/drivers/scsi/hpsa.ko",
        km(&[], &["scsi_fn"])
            .modinfo(&["alias=pci:v103Cd3241sv*"])
            .build(),
    );
    t.module("extra/zz-top.ko", km(&["zz_fn"], &["scsi_fn"]).build());
    t.module("kernel/a.ko", km(&[], &["zz_fn", "cciss_fn"]).build());
    t.module("kernel/b.ko", km(&[], &[]).build());
    t.module("kernel/c-d.ko", km(&[], &[]).build());
    t
}

#[test]
fn modules_order_variants() {
    let t = order_tree();
    let cases: &[&str] = &[
        // kmod's modules-order-compressed layout (comments, all present)
        "#336\nkernel/drivers/block/cciss.ko\n#2094\nkernel/drivers/scsi/scsi_mod.ko\n#2137\nkernel/drivers/scsi/hpsa.ko\n",
        // duplicates (first occurrence decides in 34.2), missing entries, dashes
        "kernel/b.ko\nkernel/a.ko\nkernel/b.ko\nextra/zz-top.ko\nkernel/missing.ko\nkernel/a.ko\nkernel/c-d.ko\n",
        "kernel/c_d.ko\nextra/zz_top.ko\nkernel/b.ko\n",
        // last line without newline → no reordering at all
        "kernel/b.ko\nkernel/a.ko",
        "kernel/b.ko\nkernel/a.ko\nkernel/b.ko",
        // CR, blanks, absolute/relative variants
        "kernel/b.ko\r\n kernel/a.ko\n/kernel/c-d.ko\n./extra/zz-top.ko\n\nkernel/drivers/scsi/hpsa.ko\n",
        "",
        "\n\n\n",
    ];
    for c in cases {
        t.order(c);
        check(&t, &[]);
    }
    fs::remove_file(t.moddir().join("modules.order")).unwrap();
    check(&t, &[]);
    // A very long line (> 4095 bytes, split by fgets).
    t.order(&format!("kernel/b.ko\n{}\nkernel/a.ko\n", "x".repeat(5000)));
    check(&t, &[]);
}

/// Compressed modules matched by their uncompressed relpath; external modules in
/// modules.order.
#[test]
fn modules_order_compressed_and_external() {
    let t = Tree::new("4.4.4");
    t.builtin("");
    t.builtin_modinfo(b"");
    t.module(
        "kernel/drivers/block/cciss.ko",
        km(&[], &[])
            .modinfo(&["alias=cciss-a", "alias=cciss-b"])
            .build(),
    );
    t.module(
        "kernel/drivers/scsi/scsi_mod.ko.xz",
        compress(
            "xz",
            &["-c", "--check=crc32"],
            &km(&["scsi_fn"], &[]).build(),
        ),
    );
    t.module(
        "kernel/drivers/scsi/hpsa.ko.zst",
        compress(
            "zstd",
            &["-q", "-c"],
            &km(&[], &["scsi_fn"]).modinfo(&["alias=hpsa-a"]).build(),
        ),
    );
    t.module(
        "extra/zz-top.ko.zst",
        compress("zstd", &["-q", "-c"], &km(&[], &[]).build()),
    );
    t.write("ext/extmod.ko", km(&[], &["scsi_fn"]).build());
    t.conf(
        "ext.conf",
        &format!(
            "external * {}/ext\nsearch external built-in\n",
            t.root.display()
        ),
    );
    t.order(&format!(
        "#336\nkernel/drivers/block/cciss.ko\nextra/zz-top.ko\n{}/ext/extmod.ko\nkernel/drivers/scsi/hpsa.ko\nkernel/drivers/scsi/scsi_mod.ko.xz\nkernel/drivers/scsi/scsi_mod.ko\n",
        t.root.display()
    ));
    let o = check(&t, &[]);
    let alias = text(&o, "modules.alias");
    assert!(
        alias.starts_with("# Aliases extracted from modules themselves.\nalias cciss-a cciss\n"),
        "{alias}"
    );
}
