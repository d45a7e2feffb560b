//! Exports, imports and their CRCs: `__crc_` symbols, `__kcrctab` and
//! `__ksymtab_strings`, weak imports, `__versions`, a symbol exported twice, `-P`
//! (symbol prefix), and the unknown-symbol and CRC reports of `-e` with `-E`
//! (Module.symvers) and `-F` (System.map).
//!
//! Oracles: kmod 34.2, compared with ours on everything (every output file incl. the
//! `.bin` indexes and their modes, stdout, stderr, exit status), and kmod 30 on the
//! text files; see `tests/common/scenario.rs` (`check`; `check34`: kmod 34.2 alone).

mod common;

use common::elfgen::*;
use common::scenario::*;
use common::tree::*;

// ---------------------------------------------------------------------------------------
// exports, imports, versions

#[test]
fn exports_crc_kcrctab_ksymtab() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    t.module("kernel/abs.ko", km(&["abs_one", "abs_two"], &[]).build());
    t.module(
        "kernel/tab.ko",
        Elf::x86_64()
            .sym(Sym::crc_tab("tab_one", 0x1111))
            .sym(Sym::crc_tab("tab_two", 0x2222))
            .build(),
    );
    t.module(
        "kernel/ksym.ko",
        Elf::x86_64()
            .ksymtab(&["ksym_one", "ksym_two", "NS_NAMESPACE"])
            .build(),
    );
    // Both: __crc_ wins, the ksymtab names are not exports.
    t.module(
        "kernel/both.ko",
        Elf::x86_64()
            .sym(Sym::crc("both_crc", 3))
            .ksymtab(&["both_ksym", "both_crc"])
            .build(),
    );
    // __crc_ symbols of any binding/type count.
    t.module(
        "kernel/local-crc.ko",
        Elf::x86_64()
            .sym(Sym::Raw {
                name: "__crc_local_one".into(),
                info: STT_OBJECT,
                shndx: SHN_ABS,
                value: 77,
            })
            .build(),
    );
    t.module(
        "kernel/user.ko",
        Elf::x86_64()
            .undefs(&[
                "abs_one",
                "tab_two",
                "ksym_two",
                "both_crc",
                "both_ksym",
                "local_one",
                "NS_NAMESPACE",
                "",
            ])
            .sym(Sym::defined("user_private"))
            .versions(&[
                (crc_of("abs_one"), "abs_one"),
                (0x2222, "tab_two"),
                (0, "ksym_two"),
                (4, "both_crc"),
                (77, "local_one"),
            ])
            .build(),
    );
    let sv = t.write(
        "Module.symvers",
        "0x00000003\tboth_crc\tvmlinux\tEXPORT_SYMBOL\t\n",
    );
    let o = check(&t, &[]);
    let syms = text(&o, "modules.symbols");
    assert!(syms.contains("alias symbol:tab_one tab\n"), "{syms}");
    check(&t, &["-e", "-E", &sv.display().to_string()]);
}

/// Weak imports create dependencies but are never reported.
#[test]
fn weak_imports() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    t.module("kernel/provider.ko", km(&["p_fn", "p_other"], &[]).build());
    t.module(
        "kernel/weakuser.ko",
        Elf::x86_64()
            .sym(Sym::weak("p_fn"))
            .sym(Sym::weak("nowhere_weak"))
            .sym(Sym::undef("nowhere_strong"))
            .sym(Sym::weak("p_other"))
            .versions(&[(1, "p_fn"), (2, "p_other")])
            .build(),
    );
    t.module(
        "kernel/weakonly.ko",
        Elf::x86_64().sym(Sym::weak("p_other")).build(),
    );
    let o = check(&t, &[]);
    assert!(text(&o, "modules.dep").contains("kernel/weakuser.ko: kernel/provider.ko\n"));
    let sv = t.write(
        "Module.symvers",
        "0x1\tsome_kernel_sym\tvmlinux\tEXPORT_SYMBOL\t\n",
    );
    check(&t, &["-e", "-E", &sv.display().to_string()]);
    let sm = t.write("System.map", "0 T x\n");
    check(&t, &["-e", "-F", &sm.display().to_string()]);
}

/// `__versions`: matched entries give the import CRC, unmatched ones (module_layout,
/// duplicates, names another module exports) are appended as imports.
#[test]
fn versions_unmatched_entries() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    t.module("kernel/base.ko", km(&["base_fn", "hidden_fn"], &[]).build());
    t.module("kernel/mid.ko", km(&["mid_fn"], &[]).build());
    t.module(
        "kernel/user.ko",
        Elf::x86_64()
            .undefs(&["base_fn"])
            .versions(&[
                (0x1234, "module_layout"),
                (crc_of("base_fn"), "base_fn"),
                (9, "base_fn"),
                (crc_of("mid_fn"), "mid_fn"),
                (crc_of("hidden_fn") + 1, "hidden_fn"),
                (5, "struct_module"),
            ])
            .build(),
    );
    // A name twice, the second copy where the entry after the last one matched is:
    // kmod takes the first copy (and its CRC) for the (weak, so never checked)
    // import, and the second, unmatched, is appended and checked (7: a mismatch).
    let mut e = Elf::x86_64().undefs(&["mid_fn"]);
    e.symbols.push(Sym::weak("base_fn"));
    t.module(
        "kernel/dupguess.ko",
        e.versions(&[
            (crc_of("base_fn"), "base_fn"),
            (crc_of("mid_fn"), "mid_fn"),
            (7, "base_fn"),
        ])
        .build(),
    );
    // ELF32 __versions (4-byte CRCs), big endian.
    t.module(
        "kernel/user32be.ko",
        Elf::new(Class::Elf32, Endian::Big, EM_MIPS)
            .undefs(&["mid_fn"])
            .versions(&[(crc_of("mid_fn"), "mid_fn"), (crc_of("base_fn"), "base_fn")])
            .build(),
    );
    // __versions without .symtab.
    t.module(
        "kernel/nosymtab.ko",
        Elf::x86_64()
            .versions(&[(crc_of("base_fn"), "base_fn")])
            .modinfo(&["alias=nosymtab"])
            .build(),
    );
    // __versions of a size that is not a multiple of 64 is ignored.
    let mut e = Elf::x86_64().undefs(&["mid_fn"]);
    let mut raw = vec![0u8; 70];
    raw[8..14].copy_from_slice(b"base_f");
    e.versions_raw = Some(raw);
    t.module("kernel/oddversions.ko", e.build());
    // Empty __versions; a 64-byte entry with an empty name.
    let mut e = Elf::x86_64().undefs(&["mid_fn"]);
    e.versions_raw = Some(Vec::new());
    t.module("kernel/emptyversions.ko", e.build());
    let mut e = Elf::x86_64().undefs(&["mid_fn"]);
    e.versions_raw = Some(vec![0u8; 64]);
    t.module("kernel/blankversion.ko", e.build());
    let o = check(&t, &[]);
    let dep = text(&o, "modules.dep");
    assert!(
        dep.contains("kernel/user.ko: kernel/base.ko kernel/mid.ko\n")
            || dep.contains("kernel/user.ko: kernel/mid.ko kernel/base.ko\n"),
        "{dep}"
    );
    let sv = t.write(
        "Module.symvers",
        "0x1234\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t\n",
    );
    check(&t, &["-e", "-E", &sv.display().to_string()]);
    check(&t, &["-v"]);
}

/// A `__versions` name that fills its field without a NUL: kmod 34.2 never matches it
/// and fails the import list if it stays unmatched; kmod 30 reads past the field
/// (undefined), so no kmod 30 comparison.
#[test]
fn versions_name_without_nul() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    let long56 = "a".repeat(56);
    let long60 = "b".repeat(60);
    t.module("kernel/p64.ko", km(&[&long56], &[]).build());
    t.module("kernel/p32.ko", km(&[&long60], &[]).build());
    t.module("kernel/p55.ko", km(&[&"c".repeat(55)], &[]).build());
    t.module(
        "kernel/u64.ko",
        Elf::x86_64()
            .undefs(&[&long56])
            .versions(&[(crc_of(&long56), &long56)])
            .build(),
    );
    t.module(
        "kernel/u64-ok.ko",
        Elf::x86_64()
            .undefs(&[&"c".repeat(55)])
            .versions(&[(crc_of("c"), &"c".repeat(55))])
            .build(),
    );
    t.module(
        "kernel/u32.ko",
        Elf::new(Class::Elf32, Endian::Little, EM_386)
            .undefs(&[&long60])
            .versions(&[(1, &long60)])
            .build(),
    );
    check34(&t, &[]);
}

/// Symbol exported by two modules: the provider is the last in module order.
#[test]
fn symbol_exported_twice() {
    let t = Tree::new("4.4.4");
    t.module(
        "kernel/first.ko",
        km(&["shared_fn", "first_only"], &[]).build(),
    );
    t.module("kernel/second.ko", km(&["shared_fn"], &[]).build());
    t.module(
        "kernel/third.ko",
        Elf::x86_64().ksymtab(&["shared_fn"]).build(),
    );
    t.module(
        "kernel/user.ko",
        km(&[], &["shared_fn", "first_only"]).build(),
    );
    // A module export overrides a kernel symbol of the same name.
    t.module("kernel/kern.ko", km(&["printk"], &[]).build());
    t.module("kernel/kuser.ko", km(&[], &["printk"]).build());
    let sv = t
        .write("Module.symvers", "0x1\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n")
        .display()
        .to_string();
    t.empty_inputs();
    check(&t, &[]);
    check(&t, &["-e", "-E", &sv]);
    for order in [
        &["kernel/first.ko", "kernel/second.ko", "kernel/third.ko"][..],
        &["kernel/third.ko", "kernel/second.ko", "kernel/first.ko"],
        &["kernel/second.ko", "kernel/third.ko", "kernel/first.ko"],
    ] {
        t.order_lines(order);
        check(&t, &[]);
    }
}

/// `-P _`: prefix stripped from exports and imports; without -P nothing is stripped.
#[test]
fn symbol_prefix() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    t.module("kernel/pexp.ko", km(&["_foo", "bar", "__baz"], &[]).build());
    t.module(
        "kernel/pksym.ko",
        Elf::x86_64().ksymtab(&["_ksym_a", "ksym_b"]).build(),
    );
    t.module("kernel/pimp1.ko", km(&[], &["foo"]).build());
    t.module("kernel/pimp2.ko", km(&[], &["_foo", "_baz"]).build());
    t.module(
        "kernel/pimp3.ko",
        km(&[], &["._foo", ".bar", "ksym_a", "_ksym_b"]).build(),
    );
    let sm = t.write(
        "System.map",
        "0000000000000000 r ___ksymtab_kern_a\n0000000000000000 r __ksymtab_kern_b\n0000000000000000 r _x__ksymtab_nope\n",
    );
    let sv = t.write(
        "Module.symvers",
        "0x1\t_kern_c\tvmlinux\tEXPORT_SYMBOL\t\n0x2\tkern_d\tvmlinux\tEXPORT_SYMBOL\t\n",
    );
    t.module(
        "kernel/pkern.ko",
        km(&[], &["kern_a", "_kern_b", "kern_c", "_kern_d", "nope"]).build(),
    );
    check(&t, &["-P", "_"]);
    check(&t, &[]);
    check(&t, &["-P", "_", "-e", "-F", &sm.display().to_string()]);
    check(&t, &["-P_", "-e", "-E", &sv.display().to_string()]);
    check(
        &t,
        &["--symbol-prefix=k", "-e", "-F", &sm.display().to_string()],
    );
}

// ---------------------------------------------------------------------------------------
// -e, -E, -F

#[test]
fn errsyms_symvers_sysmap() {
    let t = rich_tree();
    let sv = t.write(
        "Module.symvers",
        "0x11111111\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n\
         0x00000000\tmissing_fn\tdrivers/foo\tEXPORT_SYMBOL\t\n\
         0x1\tthree_fields\tvmlinux\n\
         short line\n\
         \n\
         deadbeef\tnoprefix\tvmlinux\tEXPORT_SYMBOL\n\
         0xZZ\tbadcrc\tvmlinux\tEXPORT_SYMBOL\n\
         0x1 core_fn vmlinux EXPORT_SYMBOL\n",
    );
    let sm = t.write(
        "System.map",
        "ffffffff81000000 T _text\nffffffff81000010 r __ksymtab_printk\ngarbage\nonly one\n\nffffffff81000020 r __ksymtab_missing_fn\n0 r __ksymtab_\n",
    );
    let sv = sv.display().to_string();
    let sm = sm.display().to_string();
    check(&t, &["-e"]);
    check(&t, &["-e", "-E", &sv]);
    check(&t, &["-e", "-F", &sm]);
    check(&t, &["-E", &sv]);
    check(&t, &["-F", &sm]);
    check(&t, &["-e", "-E", &sv, "-F", &sm]);
    check(&t, &["-e", "-F", &sm, "-E", &sv]);
    check(&t, &["-e", "-E", "/nonexistent/Module.symvers"]);
    check(&t, &["-e", "-F", "/nonexistent/System.map"]);
    check(&t, &["--errsyms", "--symvers", &sv, "-v"]);
    check(&t, &["--filesyms", &sm]);
}
