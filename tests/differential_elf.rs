//! Reading ELF modules: every class, byte order and machine, malformed and unusual
//! files (listed without dependencies), files on which kmod dies on an assertion, and
//! odd export tables; with the generator behind them cross-checked with readelf.
//!
//! Oracles: kmod 34.2, compared with ours on everything (every output file incl. the
//! `.bin` indexes and their modes, stdout, stderr, exit status), and kmod 30 on the
//! text files; see `tests/common/scenario.rs` (`check`; `check34`: kmod 34.2 alone).

mod common;

use common::elfgen::*;
use common::oracle::*;
use common::scenario::*;
use common::tree::*;
use std::fs;

// ---------------------------------------------------------------------------------------
// the ELF writer itself

/// Cross-check the generator with binutils' readelf (if installed).
#[test]
fn elfgen_readelf_crosscheck() {
    if std::process::Command::new("readelf")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("readelf not installed; skipping the cross-check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (class, endian, machine) in [
        (Class::Elf64, Endian::Little, EM_X86_64),
        (Class::Elf32, Endian::Little, EM_386),
        (Class::Elf64, Endian::Big, EM_SPARCV9),
        (Class::Elf32, Endian::Big, EM_MIPS),
    ] {
        let bytes = Elf::new(class, endian, machine)
            .modinfo(&["alias=foo", "license=GPL"])
            .sym(Sym::crc("exp_a", 0x1234))
            .sym(Sym::crc_tab("exp_b", 0xdeadbeef))
            .sym(Sym::defined("init_module"))
            .sym(Sym::undef("printk"))
            .sym(Sym::weak("maybe"))
            .versions(&[(0x1111, "module_layout"), (0x2222, "printk")])
            .build();
        let p = dir.path().join("m.ko");
        fs::write(&p, bytes).unwrap();
        let out = std::process::Command::new("readelf")
            .args(["-W", "-h", "-S", "-s", "-x", "__kcrctab"])
            .arg(&p)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{class:?} {endian:?}: {err}");
        assert!(
            err.trim().is_empty(),
            "{class:?} {endian:?}: readelf warns: {err}"
        );
        for needle in [
            ".modinfo",
            "__kcrctab",
            "__versions",
            ".symtab",
            ".strtab",
            ".shstrtab",
            "__crc_exp_a",
            "__crc_exp_b",
            "init_module",
            "printk",
            "WEAK",
            "ABS",
            "REL (Relocatable file)",
        ] {
            assert!(
                text.contains(needle),
                "{class:?} {endian:?}: no {needle} in\n{text}"
            );
        }
        let word = if endian == Endian::Little {
            "efbeadde"
        } else {
            "deadbeef"
        };
        assert!(
            text.contains(word),
            "{class:?} {endian:?}: kcrctab word\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// ELF variants

/// Every class/endianness/machine combination, linked into one dependency graph, with
/// CRCs read in each byte order (checked by `-e -E`).
#[test]
fn elf_classes_endianness_machines() {
    let t = Tree::new("6.1.0-13-amd64");
    t.empty_inputs();
    let e32le = |m| Elf::new(Class::Elf32, Endian::Little, m);
    let e32be = |m| Elf::new(Class::Elf32, Endian::Big, m);
    let e64le = |m| Elf::new(Class::Elf64, Endian::Little, m);
    let e64be = |m| Elf::new(Class::Elf64, Endian::Big, m);
    // An undefined STT_REGISTER symbol (SPARC's register declarations).
    let register = |name: &str| Sym::Raw {
        name: name.into(),
        info: STB_GLOBAL << 4 | STT_REGISTER,
        shndx: SHN_UNDEF,
        value: 0,
    };
    // mips (ELF32 BE): leaf, exports through __kcrctab.
    t.module(
        "kernel/arch/mips-leaf.ko",
        e32be(EM_MIPS)
            .modinfo(&["alias=mips:leaf", "license=GPL"])
            .sym(Sym::crc_tab("be32_fn", 0x1234_5678))
            .sym(Sym::crc_tab("be32_other", 0x9abc_def0))
            .versions(&[(7, "module_layout")])
            .build(),
    );
    // x86-64: imports be32_fn with the right CRC, be32_other with a wrong one.
    t.module(
        "kernel/arch/x64.ko",
        e64le(EM_X86_64)
            .sym(Sym::undef("be32_fn"))
            .sym(Sym::undef("be32_other"))
            .sym(Sym::crc("x64_fn", 0xaaaa_bbbb))
            .versions(&[
                (0x1234_5678, "be32_fn"),
                (0x1111, "be32_other"),
                (9, "module_layout"),
            ])
            .build(),
    );
    // i386 (ELF32 LE): imports x64_fn, exports via kcrctab.
    t.module(
        "kernel/arch/i386.ko",
        e32le(EM_386)
            .sym(Sym::undef("x64_fn"))
            .sym(Sym::undef("_GLOBAL_OFFSET_TABLE_"))
            .sym(Sym::crc_tab("i386_fn", 0x0102_0304))
            .versions(&[(0xaaaa_bbbb, "x64_fn"), (1, "module_layout")])
            .build(),
    );
    // sparc64 (ELF64 BE): an STT_REGISTER undefined symbol named like an export must
    // be ignored; imports i386_fn.
    t.module(
        "kernel/arch/sparc.ko",
        e64be(EM_SPARCV9)
            .sym(register("be32_fn"))
            .sym(Sym::undef("i386_fn"))
            .sym(Sym::crc("sparc_fn", 0xffff_ffff_0000_0001))
            .versions(&[(0x0102_0304, "i386_fn"), (2, "module_layout")])
            .build(),
    );
    // 32-bit SPARC: STT_REGISTER skipped too.
    t.module(
        "kernel/arch/sparc32.ko",
        e32be(EM_SPARC).sym(register("x64_fn")).build(),
    );
    // STT_REGISTER on a non-SPARC machine is a normal import.
    t.module(
        "kernel/arch/mipsreg.ko",
        e32be(EM_MIPS).sym(register("x64_fn")).build(),
    );
    // ppc64 (ELF64 BE): dot-prefixed imports (function descriptors), TOC.
    t.module(
        "kernel/arch/ppc.ko",
        e64be(EM_PPC64)
            .undefs(&[".sparc_fn", ".TOC.", "TOC.", ".unknown_dot"])
            .sym(Sym::crc_tab("ppc_fn", 0xcafe))
            .versions(&[(0xffff_ffff_0000_0001, "sparc_fn"), (3, "module_layout")])
            .build(),
    );
    // s390 (ELF64 BE).
    t.module(
        "kernel/arch/s390.ko",
        e64be(EM_S390)
            .undefs(&["_GLOBAL_OFFSET_TABLE_", "ppc_fn", "__this_module"])
            .build(),
    );
    // arm (ELF32 LE), aarch64, riscv (ELF64 LE), ppc (ELF32 BE via EM 20).
    t.module(
        "kernel/arch/arm.ko",
        e32le(EM_ARM)
            .undefs(&["ppc_fn"])
            .sym(Sym::crc("arm_fn", 5))
            .versions(&[(0xcafe, "ppc_fn")])
            .build(),
    );
    t.module(
        "kernel/arch/arm64.ko",
        e64le(EM_AARCH64)
            .undefs(&["arm_fn", "x64_fn"])
            .sym(Sym::crc_tab("arm64_fn", 0x7777))
            .versions(&[(5, "arm_fn"), (0xaaaa_bbbc, "x64_fn")])
            .build(),
    );
    t.module(
        "kernel/arch/riscv.ko",
        e64le(EM_RISCV)
            .undefs(&["arm64_fn", "be32_fn"])
            .ksymtab(&["riscv_fn"])
            .build(),
    );
    t.module(
        "kernel/arch/ppc32.ko",
        e32be(20)
            .undefs(&["riscv_fn"])
            .ksymtab(&["ppc32_fn"])
            .build(),
    );
    // ELF64 BE exporting through __ksymtab_strings only; ELF32 LE with a big ABS CRC.
    t.module(
        "kernel/arch/be64ksym.ko",
        e64be(EM_S390).ksymtab(&["s390_ksym"]).build(),
    );
    t.module(
        "kernel/arch/le32abs.ko",
        e32le(EM_386)
            .sym(Sym::crc("le32_abs", 0x8000_0001))
            .undefs(&["s390_ksym"])
            .build(),
    );
    t.write(
        "Module.symvers",
        "0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n0x00000001\tx64_fn\tvmlinux\tEXPORT_SYMBOL\t\n",
    );
    let o = check(&t, &[]);
    assert!(text(&o, "modules.dep").contains("kernel/arch/x64.ko: kernel/arch/mips-leaf.ko\n"));
    let symvers = t.path("Module.symvers").display().to_string();
    check(&t, &["-e", "-E", &symvers]);
    check(&t, &["-e", "-E", &symvers, "-v"]);
    let sysmap = t.write(
        "System.map",
        "ffffffff81000000 T _text\nffffffff81000010 r __ksymtab_printk\nffffffff81000020 r __ksymtab_x64_fn\n",
    );
    check(&t, &["-e", "-F", &sysmap.display().to_string()]);
}

/// Broken and unusual ELF files: they are listed without dependencies, with an error.
#[test]
fn elf_malformed() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    let good = km(&["good_fn"], &[]).build();
    t.module("kernel/good.ko", &good);
    // Wrong e_shentsize.
    let mut b = km(&[], &["good_fn"]).build();
    b[58] = 0x41; // ELF64 e_shentsize (LE) at 58
    t.module("kernel/bad-shentsize.ko", &b);
    // Section header table beyond the end of the file.
    let mut b = km(&[], &["good_fn"]).build();
    let n = b.len();
    b.truncate(n - 10);
    t.module("kernel/truncated.ko", &b);
    // Bad class / data bytes.
    let mut b = km(&[], &["good_fn"]).build();
    b[4] = 3;
    t.module("kernel/bad-class.ko", &b);
    let mut b = km(&[], &["good_fn"]).build();
    b[5] = 0;
    t.module("kernel/bad-data.ko", &b);
    // Not ELF, empty, 3 bytes, 16 bytes of ELF magic only.
    t.module("kernel/text.ko", "this is not an ELF file\n");
    t.module("kernel/empty.ko", "");
    t.module("kernel/three.ko", "abc");
    t.module("kernel/magic.ko", b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    // ELF32 truncated right after the header.
    let b32 = kmod_elf(
        Elf::new(Class::Elf32, Endian::Little, EM_386),
        &[],
        &["good_fn"],
    )
    .build();
    t.module("kernel/short32.ko", &b32[..53]);
    // A first `.symtab` whose size is not a multiple of the entry size: no CRC exports
    // (fallback to __ksymtab_strings), no deps, silently.
    let mut e = km(&["odd_fn"], &["good_fn"]).ksymtab(&["odd_ksym"]);
    e.extra_sections.push((".symtab".into(), vec![0; 25]));
    t.module("kernel/odd-symtab.ko", e.build());
    // A first (empty) `.strtab` section: names out of range.
    let mut e = km(&["odd2_fn"], &["good_fn"]);
    e.extra_sections.push((".strtab".into(), vec![]));
    t.module("kernel/empty-strtab.ko", e.build());
    // Extra sections with the same names later on are ignored.
    let mut e = km(&["first_fn"], &["good_fn"]).modinfo(&["alias=first-modinfo"]);
    e.extra_sections.push(("dummy".into(), vec![0; 3]));
    let b = e.build();
    t.module("kernel/first-wins.ko", &b);
    // st_name out of .strtab: the CRC path fails (fallback to __ksymtab_strings) and,
    // being an undefined symbol, the import list fails too.
    let e = Elf::x86_64()
        .sym(Sym::crc("never_exported", 1))
        .sym(Sym::undef("good_fn"))
        .sym(Sym::RawName {
            st_name: 0x7fff,
            info: STB_GLOBAL << 4,
            shndx: SHN_UNDEF,
            value: 0,
        })
        .ksymtab(&["fallback_fn"]);
    t.module("kernel/bad-stname.ko", e.build());
    // Same but the bad entry is defined (imports still work, exports fall back).
    let e = Elf::x86_64()
        .sym(Sym::crc("never_exported2", 1))
        .sym(Sym::undef("good_fn"))
        .sym(Sym::RawName {
            st_name: 0x7fff,
            info: STB_GLOBAL << 4,
            shndx: SHN_ABS,
            value: 0,
        })
        .ksymtab(&["fallback_fn2"]);
    t.module("kernel/bad-stname-def.ko", e.build());
    // Empty-name undefined symbols are skipped.
    t.module(
        "kernel/empty-name.ko",
        Elf::x86_64()
            .sym(Sym::RawName {
                st_name: 0,
                info: STB_GLOBAL << 4,
                shndx: SHN_UNDEF,
                value: 0,
            })
            .undefs(&["good_fn"])
            .build(),
    );
    // `__crc_` symbols: UNDEF shndx (value used), offset beyond the section, a section
    // smaller than 4 bytes. (An out-of-range st_shndx aborts kmod: elf_kmod_assertions.)
    let mut e = Elf::x86_64()
        .sym(Sym::Raw {
            name: "__crc_undef_crc".into(),
            info: 0x10,
            shndx: SHN_UNDEF,
            value: 0x4242,
        })
        .sym(Sym::crc_tab("tab_ok", 0x5151))
        .sym(Sym::Raw {
            name: "__crc_tab_far".into(),
            info: 0x10,
            shndx: 1,
            value: 0x100,
        })
        .sym(Sym::Raw {
            name: "__crc_tab_edge".into(),
            info: 0x10,
            shndx: 1,
            value: 1,
        })
        .sym(Sym::Raw {
            name: "__crc_tiny".into(),
            info: 0x10,
            shndx: 3,
            value: 0,
        })
        .modinfo(&["x=y"]);
    // section 1 = .modinfo ("x=y\0", 4 bytes), 2 = __kcrctab, 3 = "tiny" (2 bytes)
    e.extra_sections.push(("tiny".into(), vec![1, 2]));
    t.module("kernel/crc-odd.ko", e.build());
    t.module(
        "kernel/crc-user.ko",
        Elf::x86_64()
            .undefs(&["undef_crc", "tiny", "tab_ok", "tab_far", "tab_edge"])
            .versions(&[
                (0x4242, "undef_crc"),
                (u64::MAX, "tiny"),
                (0x5151, "tab_ok"),
                (u64::MAX, "tab_far"),
            ])
            .build(),
    );
    // A directory named like a module, a file named ".ko", dotted names, non-modules.
    t.module("kernel/dir.ko/inner.ko", km(&[], &["good_fn"]).build());
    t.module("kernel/.ko", &good);
    t.module("kernel/foo.bar.ko", km(&["foobar_fn"], &[]).build());
    t.module("kernel/foo.ko.bak", &good);
    t.module("kernel/UPPER.KO", &good);
    t.module("kernel/x.o", &good);
    t.module(
        "kernel/.hidden/hidden-mod.ko",
        km(&[], &["foobar_fn"]).build(),
    );
    let o = check(&t, &[]);
    let dep = text(&o, "modules.dep");
    assert!(dep.contains("kernel/text.ko:\n"), "{dep}");
    let symvers = t.write("Module.symvers", "");
    check(&t, &["-e", "-E", &symvers.display().to_string()]);
}

/// ELF files on which kmod (30 and 34.2) dies on an assertion in libkmod-elf.c
/// (`elf_get_section_header_offset: Assertion \`idx < elf->header.section.count' failed.`,
/// exit 134) although its code means "invalid → EINVAL" / "CRC = ~0": e_shstrndx out of
/// range, e_shnum = 0, a `__crc_` symbol whose st_shndx is out of range. Ours only has to
/// survive them: no crash, no hang, exit 0 or 1.
#[test]
fn elf_kmod_assertions() {
    let mut variants: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut b = km(&[], &["good_fn"]).build();
    b[62] = 0xff; // e_shstrndx (ELF64 LE)
    variants.push(("bad-shstrndx", b));
    let mut b = km(&[], &["good_fn"]).build();
    b[60] = 0; // e_shnum
    b[61] = 0;
    variants.push(("no-sections", b));
    let b = Elf::x86_64()
        .sym(Sym::Raw {
            name: "__crc_bad_index".into(),
            info: 0x10,
            shndx: 0x7000,
            value: 0,
        })
        .build();
    variants.push(("crc-bad-index", b));
    for (name, bytes) in variants {
        let t = Tree::new("4.4.4");
        t.empty_inputs();
        t.module("kernel/good.ko", km(&["good_fn"], &[]).build());
        t.module(&format!("kernel/{name}.ko"), &bytes);
        let o = run(&kmod34(), &args(&t, &[]), &t.root, &RunOpts::default());
        assert_eq!(
            o.status,
            Status::Signal(6),
            "{name}: kmod 34.2 no longer aborts:\n{}",
            o.stderr_str()
        );
        let s = subject();
        let os = run(&s, &args(&t, &[]), &t.root, &RunOpts::default());
        assert!(
            matches!(os.status, Status::Exit(0) | Status::Exit(1))
                || (s.kind == Kind::Kmod30 && os.status == Status::Signal(6)),
            "{name}: {} {}\n{}",
            s.name(),
            os.status,
            os.stderr_str()
        );
    }
}

/// `__ksymtab_strings` without a final NUL: kmod 34.2 rejects the module, kmod 30 takes
/// the last string (so no kmod 30 comparison).
#[test]
fn ksymtab_strings_unterminated() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    let mut e = Elf::x86_64();
    e.ksymtab_strings_raw = Some(b"\0\0first\0\0second\0last".to_vec());
    t.module("kernel/unterminated.ko", e.build());
    let mut e = Elf::x86_64();
    e.ksymtab_strings_raw = Some(b"\0\0\0".to_vec());
    t.module("kernel/allnul.ko", e.build());
    let mut e = Elf::x86_64();
    e.ksymtab_strings_raw = Some(b"x".to_vec());
    t.module("kernel/onebyte.ko", e.build());
    let mut e = Elf::x86_64();
    e.ksymtab_strings_raw = Some(b"\0\0a\0\0\0b\0".to_vec());
    t.module("kernel/runs.ko", e.build());
    t.module(
        "kernel/user.ko",
        Elf::x86_64()
            .undefs(&["first", "a", "b", "last", "x"])
            .build(),
    );
    check34(&t, &[]);
}
