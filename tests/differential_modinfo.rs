//! What modules declare in `.modinfo` (aliases, softdep, weakdep, devname) and what
//! the kernel build declares for built-in modules (modules.builtin,
//! modules.builtin.modinfo), and the files made of them.
//!
//! Oracles: kmod 34.2, compared with ours on everything (every output file incl. the
//! `.bin` indexes and their modes, stdout, stderr, exit status), and kmod 30 on the
//! text files; see `tests/common/scenario.rs` (`check`; `check34`: kmod 34.2 alone).

mod common;

use common::elfgen::*;
use common::scenario::*;
use common::tree::*;
use std::fs;

// ---------------------------------------------------------------------------------------
// aliases, softdep, weakdep, devname

#[test]
fn aliases() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    t.module(
        "kernel/drivers/net/e1000e.ko",
        Elf::x86_64()
            .modinfo(&[
                "alias=pci:v00008086d000010D3sv*sd*bc*sc*i*",
                "alias=usb:v1234p[0-9A-F]*d*",
                "alias=foo-bar",
                "alias=a[b-c]-d",
                "alias=bad]alias",
                "alias=a[b",
                "alias=dup-x",
                "alias=dup_x",
                "alias=dup-x",
                "alias=with=equals",
                "alias=",
                "alias",
                "ALIAS=upper",
                "alias =space",
                "description=Intel(R) PRO/1000",
                "depends=ptp,foo-bar",
                "alias=x[]]y",
                "alias=[]",
                "alias=*",
                "alias=tab\there",
            ])
            .build(),
    );
    t.module(
        "kernel/other-mod.ko",
        Elf::x86_64()
            .modinfo(&["alias=foo-bar", "alias=foo_bar"])
            .build(),
    );
    // Raw .modinfo: leading NULs, runs of NULs, a final string without NUL.
    let mut e = Elf::x86_64();
    e.modinfo_raw =
        Some(b"\0\0\0alias=raw-one\0\0\0license=GPL\0alias=raw-two\0\0alias=raw-last".to_vec());
    t.module("kernel/raw-modinfo.ko", e.build());
    let mut e = Elf::x86_64();
    e.modinfo_raw = Some(b"\0".to_vec());
    t.module("kernel/nul-modinfo.ko", e.build());
    let mut e = Elf::x86_64();
    e.modinfo_raw = Some(b"\0\0a".to_vec());
    t.module("kernel/short-modinfo.ko", e.build());
    let mut e = Elf::x86_64();
    e.modinfo_raw = Some(b"alias=x".to_vec());
    t.module("kernel/unterminated-modinfo.ko", e.build());
    let o = check(&t, &[]);
    let alias = text(&o, "modules.alias");
    assert!(
        alias.contains("alias usb:v1234p[0-9A-F]*d* e1000e\n"),
        "{alias}"
    );
    check(&t, &["-w"]);
}

#[test]
fn softdep_weakdep_devname() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    t.module(
        "kernel/fs/fuse.ko",
        Elf::x86_64()
            .modinfo(&[
                "alias=fs-fuse",
                "alias=devname:fuse",
                "alias=char-major-10-229",
                "softdep=pre: cuse",
                "weakdep=virtiofs",
                "weakdep=",
            ])
            .build(),
    );
    t.module(
        "kernel/block/loop.ko",
        Elf::x86_64()
            .modinfo(&[
                "alias=block-major-7-*",
                "alias=block-major-7-0",
                "alias=devname:loop-control",
                "alias=char-major-10-237",
            ])
            .build(),
    );
    // devname without major/minor → error.
    t.module(
        "kernel/misc/nomajor.ko",
        Elf::x86_64()
            .modinfo(&["alias=devname:nomajor", "alias=char-major-x-1"])
            .build(),
    );
    // Two devnames: the last one before both are known wins; later ones are ignored.
    t.module(
        "kernel/misc/twodev.ko",
        Elf::x86_64()
            .modinfo(&[
                "alias=devname:first",
                "alias=devname:second",
                "alias=char-major-42-7trailing",
                "alias=devname:third",
                "alias=block-major-1-1",
            ])
            .build(),
    );
    t.module(
        "kernel/misc/majorfirst.ko",
        Elf::x86_64()
            .modinfo(&[
                "alias=block-major-8-0",
                "alias=char-major-9-9",
                "alias=devname:sdx",
                "alias=devname:late",
            ])
            .build(),
    );
    t.module(
        "kernel/misc/signs.ko",
        Elf::x86_64()
            .modinfo(&["alias=devname:sig", "alias=char-major- 4-+5"])
            .build(),
    );
    t.module(
        "kernel/misc/emptydev.ko",
        Elf::x86_64()
            .modinfo(&["alias=devname:", "alias=char-major-1-2"])
            .build(),
    );
    t.module(
        "kernel/misc/softs.ko",
        Elf::x86_64()
            .modinfo(&[
                "softdep=pre: a b post: c",
                "softdep=",
                "softdep=post:d",
                "weakdep=mod-simple other",
                "weakdep=x",
                "softdep",
            ])
            .build(),
    );
    let o = check(&t, &[]);
    assert!(text(&o, "modules.devname").contains("fuse fuse c10:229\n"));
    check(&t, &["-n"]);
}

#[test]
fn devname_empty_file() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    t.module(
        "kernel/x.ko",
        Elf::x86_64().modinfo(&["alias=devname:only"]).build(),
    );
    let o = check(&t, &[]);
    assert_eq!(o.file("modules.devname"), Some(&b""[..]));
}

/// kmod's `depmod_check_weakdep`.
#[test]
fn kmod_testsuite_weakdep() {
    let t = Tree::new("4.4.4");
    t.module(
        "kernel/mod-weakdep.ko",
        Elf::x86_64().modinfo(&["weakdep=mod-simple"]).build(),
    );
    t.module("kernel/mod-simple.ko", simple());
    let o = check(&t, &[]);
    assert_eq!(
        text(&o, "modules.weakdep"),
        "# Weak dependencies extracted from modules themselves.\nweakdep mod_weakdep mod-simple\n"
    );
}

// ---------------------------------------------------------------------------------------
// built-in modules

#[test]
fn modules_builtin_variants() {
    let t = Tree::new("4.4.4");
    t.order("");
    t.builtin_modinfo(b"");
    t.module("kernel/x.ko", km(&[], &[]).build());
    let cases = [
        "kernel/drivers/foo.ko\nkernel/fs/bar-baz.ko\nkernel/fs/bar-baz.ko\n",
        "kernel/a.ko\n/abs/path.ko\n\n  indented.ko\n1digit.ko\nnoslash\nkernel/dots.in.name.ko\nkernel/ends-with-slash/\nlast.ko",
        "_underscore.ko\n-dash.ko\nZ.ko\nkernel/x.ko.xz\nkernel/\tTAB.ko\n",
        "",
        "#comment\n",
    ];
    for c in cases {
        t.builtin(c);
        check(&t, &[]);
    }
    t.builtin(&format!(
        "kernel/{}.ko\nkernel/short.ko\n",
        "l".repeat(5000)
    ));
    check(&t, &[]);
    fs::remove_file(t.moddir().join("modules.builtin")).unwrap();
    let o = check(&t, &[]);
    assert_eq!(o.file("modules.builtin.bin"), Some(&b""[..]));
}

#[test]
fn modules_builtin_modinfo_variants() {
    let t = Tree::new("4.4.4");
    t.order("");
    t.builtin("kernel/a.ko\n");
    t.module("kernel/x.ko", km(&[], &[]).build());
    // The worked example of compat §8.5: check the exact v34 pre-order bytes too.
    t.builtin_modinfo_records(&[
        "a.alias=ask",
        "b.alias=ate",
        "c.alias=on",
        "d.alias=once",
        "e.alias=one",
        "z.alias=on",
    ]);
    let o = check(&t, &[]);
    let mut expect: Vec<u8> = vec![
        0xB0, 0x07, 0xF4, 0x57, 0x00, 0x02, 0x00, 0x01, 0x20, 0x00, 0x00, 0x0C, // header
        0x61, 0x6F, 0x20, 0x00, 0x00, 0x4A, // root: 'a'..'o', 'a' → node A
    ];
    expect.extend_from_slice(&[0u8; 52]); // 'b'..'n': no child
    expect.extend_from_slice(&[
        0xE0, 0x00, 0x00, 0x6C, // 'o' → node O
        0x73, 0x74, 0xC0, 0x00, 0x00, 0x54, 0xC0, 0x00, 0x00, 0x60, // node A
        0x6B, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x61, 0x00, // leaf k
        0x65, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x62, 0x00, // leaf e
        0x6E, 0x00, 0x63, 0x65, 0xC0, 0x00, 0x00, 0x8C, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00,
        0x98, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x7A, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x63, 0x00, // node O
        0x65, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x64, 0x00, // leaf once
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x65, 0x00, // leaf one
    ]);
    assert_eq!(
        o.file("modules.builtin.alias.bin"),
        Some(&expect[..]),
        "compat §8.5 example"
    );
    let cases: Vec<Vec<u8>> = vec![
        // record swallowing: `x.broken` has no '=', the next record is lost
        b"a.alias=pci:v*d*\0x.broken\0y.alias=swallowed\0z.alias=kept\0".to_vec(),
        // other keys, empty name, empty value, unmatched bracket, dashes, duplicates
        b"m.license=GPL\0.alias=noname\0n.alias=\0o.alias=a[b\0p.alias=bad]x\0q.alias=dash-ed\0q.alias=dash-ed\0r.alias=[x-y]-z\0".to_vec(),
        // no final NUL; a record with two dots; name with dash
        b"s-t.alias=first\0u.v.alias=dots\0w.alias=unterminated".to_vec(),
        b"\0\0\0".to_vec(),
        b"noalias".to_vec(),
        b"".to_vec(),
        b"a.alias=x\0\0\0b.alias=x\0c.file=kernel/c.ko\0c.alias=x\0".to_vec(),
    ];
    for c in cases {
        t.builtin_modinfo(&c);
        check(&t, &[]);
        check(&t, &["-w"]);
    }
    fs::remove_file(t.moddir().join("modules.builtin.modinfo")).unwrap();
    let o = check(&t, &[]);
    assert_eq!(o.file("modules.builtin.alias.bin"), Some(&b""[..]));
}

/// Fields longer than 4096 bytes in modules.builtin.modinfo ("Could not flush stream").
#[test]
fn modules_builtin_modinfo_long_field() {
    let t = Tree::new("4.4.4");
    t.order("");
    t.builtin("");
    let mut v = Vec::new();
    v.extend_from_slice(b"a.alias=before\0");
    v.extend_from_slice(format!("{}.alias=x\0", "n".repeat(4100)).as_bytes());
    v.extend_from_slice(format!("b.alias={}\0", "v".repeat(4096)).as_bytes());
    v.extend_from_slice(format!("c.alias={}\0", "w".repeat(4095)).as_bytes());
    v.extend_from_slice(b"d.alias=after\0");
    t.builtin_modinfo(&v);
    check(&t, &[]);
}
