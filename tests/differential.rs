//! Hand-made scenarios: our depmod against kmod 34.2 (every output file incl. the
//! `.bin` indexes, their modes, stdout, stderr, exit status) and kmod 30 (the text
//! files except modules.weakdep; kmod 30 gets a de-duplicated modules.order).
//!
//! `DEPMOD_SUBJECT=kmod30 cargo test --test differential` runs the same scenarios with
//! kmod 30 in place of our binary (text files only), to validate the harness itself.

mod common;

use common::elfgen::*;
use common::oracle::*;
use common::tree::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

// ---------------------------------------------------------------------------------------
// helpers

/// `-b ROOT -C CONFDIR <opts…> KVER`.
fn args(t: &Tree, opts: &[&str]) -> Vec<String> {
    let mut v = vec![
        "-b".to_string(),
        t.root.display().to_string(),
        "-C".into(),
        t.confdir().display().to_string(),
    ];
    v.extend(opts.iter().map(|s| s.to_string()));
    v.push(t.kver.clone());
    v
}

fn diff_opts(t: &Tree) -> Diff {
    Diff {
        order_file: Some(t.moddir().join("modules.order")),
        ..Diff::default()
    }
}

fn check_with(t: &Tree, argv: &[String], d: &Diff) -> Outcome {
    match differential(&t.root, argv, d) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

/// Standard run: `-b ROOT -C CONFDIR <opts> KVER`, compared with both oracles.
fn check(t: &Tree, opts: &[&str]) -> Outcome {
    check_with(t, &args(t, opts), &diff_opts(t))
}

/// Like `check` but without kmod 30 (features it lacks, or undefined behaviour there).
fn check34(t: &Tree, opts: &[&str]) -> Outcome {
    check_with(
        t,
        &args(t, opts),
        &Diff {
            v30: false,
            ..diff_opts(t)
        },
    )
}

fn text(o: &Outcome, name: &str) -> String {
    String::from_utf8_lossy(o.file(name).unwrap_or_else(|| panic!("{name} not written")))
        .into_owned()
}

/// A stable fake CRC for a symbol name.
fn crc_of(name: &str) -> u64 {
    let mut h: u32 = 0x811c9dc5;
    for b in name.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x01000193);
    }
    h as u64
}

/// A module (x86-64) exporting `exports` with `__crc_` (absolute) symbols and importing
/// `imports`, with a matching `__versions` (plus `module_layout`).
fn km(exports: &[&str], imports: &[&str]) -> Elf {
    kmod_elf(Elf::x86_64(), exports, imports)
}

fn kmod_elf(mut e: Elf, exports: &[&str], imports: &[&str]) -> Elf {
    let mut vers = vec![(0x1234_5678u64, "module_layout".to_string())];
    for i in imports {
        e.symbols.push(Sym::undef(i));
        vers.push((crc_of(i), i.to_string()));
    }
    for x in exports {
        e.symbols.push(Sym::crc(x, crc_of(x)));
    }
    e.versions = Some(vers);
    e
}

fn set_mtime(p: &Path, t: SystemTime) {
    let f = fs::File::options().write(true).open(p).unwrap();
    f.set_modified(t).unwrap();
}

/// Compress `data` with the `cmd` tool reading from a file (so that zstd records the
/// content size in the frame header, as the kernel build does).
fn compress(cmd: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
    compress_with(cmd, args, data, false)
}

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
            .sym(Sym::Raw {
                name: "be32_fn".into(),
                info: STB_GLOBAL << 4 | STT_REGISTER,
                shndx: SHN_UNDEF,
                value: 0,
            })
            .sym(Sym::undef("i386_fn"))
            .sym(Sym::crc("sparc_fn", 0xffff_ffff_0000_0001))
            .versions(&[(0x0102_0304, "i386_fn"), (2, "module_layout")])
            .build(),
    );
    // 32-bit SPARC: STT_REGISTER skipped too.
    t.module(
        "kernel/arch/sparc32.ko",
        e32be(EM_SPARC)
            .sym(Sym::Raw {
                name: "x64_fn".into(),
                info: STB_GLOBAL << 4 | STT_REGISTER,
                shndx: SHN_UNDEF,
                value: 0,
            })
            .build(),
    );
    // STT_REGISTER on a non-SPARC machine is a normal import.
    t.module(
        "kernel/arch/mipsreg.ko",
        e32be(EM_MIPS)
            .sym(Sym::Raw {
                name: "x64_fn".into(),
                info: STB_GLOBAL << 4 | STT_REGISTER,
                shndx: SHN_UNDEF,
                value: 0,
            })
            .build(),
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
// modinfo: aliases, softdep, weakdep, devname

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

// ---------------------------------------------------------------------------------------
// duplicates, search/override/external/exclude (compat §2.4; kmod's testsuite/test-depmod.c)

fn simple() -> Vec<u8> {
    Elf::x86_64().modinfo(&["alias=mod-simple"]).build()
}

/// Place `mod-simple.ko` (and a user of one of its exports, and a `-` variant) in
/// several directories and run with the given config.
fn dup_case(dirs: &[&str], externals: &[&str], confs: &[(&str, &str)]) -> Outcome {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    for d in dirs {
        let tag = d.replace('/', "_");
        t.module(
            &format!("{d}/mod-simple.ko"),
            km(&[&format!("simple_{tag}")], &[])
                .modinfo(&[&format!("alias=simple-in-{tag}")])
                .build(),
        );
        t.module(&format!("{d}/mod_other.ko"), km(&[], &[]).build());
    }
    for e in externals {
        let tag = e.replace('/', "_");
        t.write(
            &format!("{e}/mod-simple.ko"),
            km(&[&format!("simple_ext_{tag}")], &[]).build(),
        );
        t.write(&format!("{e}/extonly-{tag}.ko"), km(&[], &[]).build());
    }
    for (name, content) in confs {
        let c = content.replace("@ROOT@", &t.root.display().to_string());
        t.conf(name, &c);
    }
    check(&t, &[])
}

fn dep(o: &Outcome) -> String {
    text(o, "modules.dep")
}

#[test]
fn kmod_testsuite_search_orders() {
    // depmod_search_order_simple
    let o = dup_case(
        &["kernel/crypto", "updates"],
        &[],
        &[("search.conf", "search updates built-in\n")],
    );
    assert!(dep(&o).contains("updates/mod-simple.ko:\n"), "{}", dep(&o));
    // depmod_search_order_same_prefix
    let o = dup_case(
        &["foo", "foobar"],
        &[],
        &[("search.conf", "search foobar foo built-in\n")],
    );
    assert!(dep(&o).contains("foobar/mod-simple.ko:\n"), "{}", dep(&o));
    // depmod_search_order_external_first / _last
    let ext = &[(
        "external.conf",
        "external 4\\.4\\..* @ROOT@/lib/modules/external\n",
    )];
    let mut c = ext.to_vec();
    c.push(("search.conf", "search external foobar foo built-in\n"));
    let o = dup_case(&["foo", "foobar"], &["lib/modules/external"], &c);
    assert!(
        dep(&o).contains("/lib/modules/external/mod-simple.ko:\n"),
        "{}",
        dep(&o)
    );
    let mut c = ext.to_vec();
    c.push(("search.conf", "search foobar foo built-in external\n"));
    let o = dup_case(&["foo", "foobar"], &["lib/modules/external"], &c);
    assert!(
        dep(&o).contains("\nfoobar/mod-simple.ko:\n")
            || dep(&o).starts_with("foobar/mod-simple.ko:\n"),
        "{}",
        dep(&o)
    );
    // depmod_search_order_override
    let o = dup_case(
        &["foo", "override"],
        &[],
        &[
            ("override.conf", "override mod-simple 4.4.4 override\n"),
            ("search.conf", "search foo built-in\n"),
        ],
    );
    assert!(dep(&o).contains("override/mod-simple.ko:\n"), "{}", dep(&o));
}

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

#[test]
fn duplicate_resolution_configs() {
    let kdirs = &["kernel/a", "updates", "extra", "kernel/b"][..];
    // Default (no config): updates beats everything, otherwise first found.
    dup_case(kdirs, &[], &[]);
    dup_case(&["kernel/a", "kernel/b", "extra"], &[], &[]);
    // built-in only / explicit orders.
    dup_case(kdirs, &[], &[("a.conf", "search built-in\n")]);
    dup_case(kdirs, &[], &[("a.conf", "search extra updates built-in\n")]);
    dup_case(kdirs, &[], &[("a.conf", "search extra\nsearch updates\n")]);
    dup_case(kdirs, &[], &[("a.conf", "search kernel/b kernel\n")]);
    dup_case(
        kdirs,
        &[],
        &[("b.conf", "search updates\n"), ("a.conf", "search extra\n")],
    );
    // Same search directory twice (the `else` quirk): later found wins.
    dup_case(
        &["updates/x", "updates/y", "kernel"],
        &[],
        &[("a.conf", "search updates built-in\n")],
    );
    dup_case(
        &["updates/dkms", "updates", "kernel"],
        &[],
        &[("a.conf", "search updates/dkms updates\n")],
    );
    // Prefix without slash boundary.
    dup_case(
        &["updatesfoo", "kernel"],
        &[],
        &[("a.conf", "search updates\n")],
    );
    // Overrides.
    dup_case(
        kdirs,
        &[],
        &[("a.conf", "override mod-simple 4.4.4 kernel/b\n")],
    );
    dup_case(
        kdirs,
        &[],
        &[("a.conf", "override mod_simple * kernel/b\n")],
    );
    dup_case(
        kdirs,
        &[],
        &[(
            "a.conf",
            "override mod-simple * kernel/b\noverride mod-simple 4\\.4 extra\n",
        )],
    );
    dup_case(
        kdirs,
        &[],
        &[(
            "a.conf",
            "override mod-simple 5.0 kernel/b\noverride mod-simple [ extra\n",
        )],
    );
    dup_case(
        kdirs,
        &[],
        &[(
            "a.conf",
            "override mod-simple 4.4.4 kernel/b/\noverride mod-simple\n",
        )],
    );
    // Externals (absolute dirs outside DIR), several, ranked by config order.
    let ext2 = "external * @ROOT@/ext/one\nexternal 4.4.4 @ROOT@/ext/two\n";
    dup_case(kdirs, &["ext/one", "ext/two"], &[("a.conf", ext2)]);
    dup_case(
        kdirs,
        &["ext/one", "ext/two"],
        &[("a.conf", ext2), ("b.conf", "search external built-in\n")],
    );
    dup_case(
        kdirs,
        &["ext/one", "ext/two"],
        &[
            ("a.conf", ext2),
            ("b.conf", "search built-in external updates\n"),
        ],
    );
    dup_case(
        kdirs,
        &["ext/one", "ext/two"],
        &[(
            "a.conf",
            "external 9.9 @ROOT@/ext/one\nexternal 4 @ROOT@/ext/missing\n",
        )],
    );
    // An external dir inside DIR.
    dup_case(
        kdirs,
        &["lib/modules/4.4.4/inside"],
        &[(
            "a.conf",
            "external 4.4.4 @ROOT@/lib/modules/4.4.4/inside\nsearch external\n",
        )],
    );
    // Exclude.
    dup_case(kdirs, &[], &[("a.conf", "exclude updates\n")]);
    dup_case(kdirs, &[], &[("a.conf", "exclude mod-simple.ko extra\n")]);
    dup_case(
        kdirs,
        &["ext/one"],
        &[("a.conf", "exclude one b\nexternal * @ROOT@/ext/one\n")],
    );
}

/// Config parsing: bad lines, continuations, comments, file collection rules, INFO
/// messages (`-vv`: libkmod pointers are masked).
#[test]
fn config_parsing() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    for d in ["kernel", "updates", "extra", "weird"] {
        t.module(&format!("{d}/dup.ko"), km(&[], &[]).build());
    }
    t.conf(
        "a.conf",
        "# comment\n\n   \nbogus line\n  # indented comment\nsearch \\\nweird\\\n extra\n\tsearch\tbuilt-in  \nsearch\ninclude /etc/foo.conf\nmake_map_files\noverride x\nexternal 4.4.4\nexclude\nsearch up\\dates",
    );
    t.conf("b.conf", "search kernel\r\n");
    t.conf("README", "not a conf\n");
    t.conf(".hidden.conf", "search extra\n");
    t.conf(".conf", "bogus\n");
    t.conf("x.con", "bogus\n");
    fs::create_dir_all(t.confdir().join("sub.conf")).unwrap();
    // A second config dir: same file name (ignored), new name (used), sorted by name.
    t.write("etc/other.d/a.conf", "bogus from other\n");
    t.write("etc/other.d/0.conf", "search extra\n");
    t.write("etc/single", "search weird\n");
    let c2 = t.path("etc/other.d").display().to_string();
    let single = t.path("etc/single").display().to_string();
    let d = Diff {
        mask_pointers: true,
        ..diff_opts(&t)
    };
    for extra in [
        &[][..],
        &["-C", &c2],
        &["-C", &c2, "-C", &single],
        &["-C", "/nonexistent/dir"],
        &["-vv"],
        &["-vv", "-C", &c2],
    ] {
        check_with(&t, &args(&t, extra), &d);
    }
    // Only the later -C paths (no conf dir at all).
    let argv = vec![
        "-b".to_string(),
        t.root.display().to_string(),
        "-C".into(),
        c2.clone(),
        "-vv".into(),
        "4.4.4".into(),
    ];
    check_with(&t, &argv, &d);
    let argv = vec![
        "-b".to_string(),
        t.root.display().to_string(),
        "-C".into(),
        single,
        "4.4.4".into(),
    ];
    check_with(&t, &argv, &d);
}

// ---------------------------------------------------------------------------------------
// modules.order, modules.builtin, modules.builtin.modinfo

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

// ---------------------------------------------------------------------------------------
// cycles

/// kmod's `depmod_detect_loop` test: exact stderr, exit 1, nothing written.
#[test]
fn cycles_detect_loop() {
    let t = Tree::new("4.4.4");
    t.order("");
    let graph: &[(&str, &[&str])] = &[
        ("a", &["b"]),
        ("b", &["c"]),
        ("c", &["a"]),
        ("d", &["e"]),
        ("e", &["d"]),
        ("f", &[]),
        ("g", &[]),
        ("h", &["i"]),
        ("i", &["j"]),
        ("j", &["h", "k"]),
        ("k", &["h"]),
    ];
    for (m, deps) in graph {
        let imports: Vec<String> = deps.iter().map(|d| format!("mod_loop_{d}_fn")).collect();
        let imports: Vec<&str> = imports.iter().map(|s| s.as_str()).collect();
        t.module(
            &format!("kernel/mod-loop-{m}.ko"),
            km(&[&format!("mod_loop_{m}_fn")], &imports).build(),
        );
    }
    let o = check(&t, &[]);
    assert_eq!(
        o.stderr_str(),
        "depmod: ERROR: Cycle detected: mod_loop_d -> mod_loop_e -> mod_loop_d\n\
               depmod: ERROR: Cycle detected: mod_loop_i -> mod_loop_j -> mod_loop_k -> mod_loop_h -> mod_loop_i\n\
               depmod: ERROR: Cycle detected: mod_loop_i -> mod_loop_j -> mod_loop_h -> mod_loop_i\n\
               depmod: ERROR: Cycle detected: mod_loop_c -> mod_loop_a -> mod_loop_b -> mod_loop_c\n\
               depmod: ERROR: Found 9 modules in dependency cycles!\n"
    );
    assert_eq!(o.status, Status::Exit(1));
    assert!(o.files.is_empty());
    check(&t, &["-n"]);
    check(&t, &["-v"]);
}

#[test]
fn cycles_simple_and_self() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    t.module("kernel/x.ko", km(&["x_fn"], &["y_fn"]).build());
    t.module("kernel/y.ko", km(&["y_fn"], &["x_fn"]).build());
    t.module("kernel/ok.ko", km(&[], &["x_fn"]).build());
    check(&t, &[]);
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    t.module("kernel/self.ko", km(&["self_fn"], &["self_fn"]).build());
    t.module("kernel/other.ko", km(&[], &["self_fn"]).build());
    check(&t, &[]);
}

/// kmod aborts on an assertion (stack overflow of its cycle walk): ours must exit 1
/// with the cycle lines kmod printed first, an error line, and write nothing.
#[test]
fn cycles_kmod_abort() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    for (m, deps) in [("p", ["q", "r"]), ("q", ["p", "r"]), ("r", ["p", "q"])] {
        let imports: Vec<String> = deps.iter().map(|d| format!("{d}_fn")).collect();
        let imports: Vec<&str> = imports.iter().map(|s| s.as_str()).collect();
        t.module(
            &format!("kernel/{m}.ko"),
            km(&[&format!("{m}_fn")], &imports).build(),
        );
    }
    // p, q, r in this order: kmod's stack overflows before any cycle is printed.
    t.order_lines(&["kernel/p.ko", "kernel/q.ko", "kernel/r.ko"]);
    let o = check(&t, &[]);
    assert_eq!(
        o.status,
        Status::Signal(6),
        "expected kmod 34.2 to abort:\n{}",
        o.stderr_str()
    );
    // q first: one cycle line, then the abort.
    t.order_lines(&["kernel/q.ko", "kernel/p.ko", "kernel/r.ko"]);
    let o = check(&t, &[]);
    assert_eq!(
        o.status,
        Status::Signal(6),
        "expected kmod 34.2 to abort:\n{}",
        o.stderr_str()
    );
    assert_eq!(cycle_lines(&o.stderr).len(), 1, "{}", o.stderr_str());
}

/// The same complete graph with `r` first: kmod prints ever longer "Cycle detected"
/// lines without end (a non-terminating case compat §6.4 does not list: the root is on
/// the cycle). Ours must stop with exit 1 after printing a prefix of kmod's lines.
#[test]
fn cycles_kmod_endless_output() {
    let t = Tree::new("4.4.4");
    t.builtin("");
    t.builtin_modinfo(b"");
    for (m, deps) in [("p", ["q", "r"]), ("q", ["p", "r"]), ("r", ["p", "q"])] {
        let imports: Vec<String> = deps.iter().map(|d| format!("{d}_fn")).collect();
        let imports: Vec<&str> = imports.iter().map(|s| s.as_str()).collect();
        t.module(
            &format!("kernel/{m}.ko"),
            km(&[&format!("{m}_fn")], &imports).build(),
        );
    }
    t.order_lines(&["kernel/r.ko", "kernel/p.ko", "kernel/q.ko"]);
    let d = Diff {
        run: RunOpts {
            timeout: Duration::from_secs(3),
            ..RunOpts::default()
        },
        ..diff_opts(&t)
    };
    let o = check_with(&t, &args(&t, &[]), &d);
    assert_eq!(
        o.status,
        Status::Timeout,
        "expected kmod 34.2 to hang:\n{}",
        clip(&o.stderr, 2000)
    );
    assert!(o.stderr.starts_with(
        b"depmod: ERROR: Cycle detected: r -> q -> r\n\
          depmod: ERROR: Cycle detected: r -> q -> p -> r\n\
          depmod: ERROR: Cycle detected: r -> q -> p -> q -> r\n"
    ));
}

/// kmod loops forever when a root only leads into a cycle (A↔B, A→X, X→Y, Y↔Z with X
/// first): ours must terminate the same way as for the abort.
#[test]
fn cycles_kmod_hang() {
    let t = Tree::new("4.4.4");
    t.builtin("");
    t.builtin_modinfo(b"");
    for (m, deps) in [
        ("a", &["b", "x"][..]),
        ("b", &["a"]),
        ("x", &["y"]),
        ("y", &["z"]),
        ("z", &["y"]),
    ] {
        let imports: Vec<String> = deps.iter().map(|d| format!("{d}_fn")).collect();
        let imports: Vec<&str> = imports.iter().map(|s| s.as_str()).collect();
        t.module(
            &format!("kernel/{m}.ko"),
            km(&[&format!("{m}_fn")], &imports).build(),
        );
    }
    t.order_lines(&[
        "kernel/x.ko",
        "kernel/a.ko",
        "kernel/b.ko",
        "kernel/y.ko",
        "kernel/z.ko",
    ]);
    let d = Diff {
        run: RunOpts {
            timeout: Duration::from_secs(5),
            ..RunOpts::default()
        },
        ..diff_opts(&t)
    };
    let o = check_with(&t, &args(&t, &[]), &d);
    assert_eq!(
        o.status,
        Status::Timeout,
        "expected kmod 34.2 to hang:\n{}",
        o.stderr_str()
    );
}

// ---------------------------------------------------------------------------------------
// options and modes

fn rich_tree() -> Tree {
    let t = Tree::new("4.4.4");
    t.order_lines(&["kernel/core.ko", "kernel/mid.ko"]);
    t.builtin("kernel/builtin-one.ko\nkernel/fs/ext4.ko\n");
    t.builtin_modinfo_records(&[
        "ext4.alias=fs-ext4",
        "ext4.alias=ext3",
        "builtin_one.alias=b-[1]",
    ]);
    t.module(
        "kernel/core.ko",
        km(&["core_fn", "core_b"], &["printk"])
            .modinfo(&["alias=core-alias", "softdep=post: mid"])
            .build(),
    );
    t.module(
        "kernel/mid.ko",
        km(&["mid_fn"], &["core_fn", "missing_fn"])
            .modinfo(&["weakdep=top", "alias=devname:mid", "alias=char-major-99-1"])
            .build(),
    );
    t.module(
        "kernel/top.ko",
        km(&[], &["mid_fn", "core_b", "core_fn"])
            .modinfo(&["alias=top:[a-z]*"])
            .build(),
    );
    t.module("updates/top.ko", km(&["top_updated"], &["mid_fn"]).build());
    t.module("extra/lone.ko", km(&["lone_fn"], &[]).build());
    t
}

#[test]
fn show_dry_run() {
    let t = rich_tree();
    let o = check(&t, &["-n"]);
    assert!(o.files.is_empty());
    check(&t, &["--show"]);
    check(&t, &["--dry-run"]);
    check(&t, &["--dry"]);
    check(&t, &["-n", "-v"]);
    check(&t, &["-nv", "-w"]);
}

#[test]
fn verbose() {
    let t = rich_tree();
    check(&t, &["-v"]);
    // -vv: libkmod's INFO lines carry pointer values, masked on both sides.
    let d = Diff {
        mask_pointers: true,
        ..diff_opts(&t)
    };
    check_with(&t, &args(&t, &["-v", "-v"]), &d);
    check_with(&t, &args(&t, &["-vv", "-n"]), &d);
    // -vvv: kmod's DEBUG lines (internal pointers and state) are not emulated
    // (intended difference E): ours must print kmod's stderr without them, and the
    // same stdout, outputs and status.
    for opts in [&["-vv", "--verbose", "-n"][..], &["-vvv"], &["-vvvv", "-e"]] {
        let o = check_with(&t, &args(&t, opts), &d);
        assert!(
            o.stderr_str().contains("depmod: DEBUG: "),
            "{opts:?}: kmod printed no DEBUG lines"
        );
    }
}

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

/// Module paths as positional arguments (no config, no scan).
#[test]
fn file_mode() {
    let t = rich_tree();
    let p = |rel: &str| t.moddir().join(rel).display().to_string();
    let ext = t.write(
        "elsewhere/ext-mod.ko",
        km(&[], &["core_fn"]).modinfo(&["alias=ext-alias"]).build(),
    );
    let ext = ext.display().to_string();
    let base = vec![
        "-b".to_string(),
        t.root.display().to_string(),
        "4.4.4".to_string(),
    ];
    let mk = |files: &[&str]| {
        let mut v = base.clone();
        v.extend(files.iter().map(|s| s.to_string()));
        v
    };
    let d = diff_opts(&t);
    check_with(
        &t,
        &mk(&[
            &p("kernel/top.ko"),
            &p("kernel/core.ko"),
            &p("kernel/mid.ko"),
        ]),
        &d,
    );
    check_with(&t, &mk(&[&p("kernel/top.ko"), &ext]), &d);
    check_with(
        &t,
        &mk(&[
            &p("kernel/core.ko"),
            &ext,
            &p("extra/lone.ko"),
            &p("updates/top.ko"),
        ]),
        &d,
    );
    // -a: file arguments ignored.
    let mut v = mk(&[&p("kernel/top.ko")]);
    v.insert(0, "-a".into());
    v.insert(1, "-C".into());
    v.insert(2, t.confdir().display().to_string());
    check_with(&t, &v, &d);
    // -n in file mode.
    let mut v = mk(&[&p("kernel/core.ko"), &p("kernel/mid.ko")]);
    v.insert(0, "-n".into());
    check_with(&t, &v, &d);
    // Errors: relative path, missing file, duplicate modname, non-ELF file.
    check_with(&t, &mk(&["kernel/top.ko"]), &d);
    check_with(
        &t,
        &mk(&[&p("kernel/core.ko"), &p("kernel/nonexistent.ko")]),
        &d,
    );
    let bad = t.module("kernel/bad.ko", "not elf");
    check_with(
        &t,
        &mk(&[&p("kernel/core.ko"), &bad.display().to_string()]),
        &d,
    );
    let dup_d = Diff {
        v30: false,
        ..diff_opts(&t)
    }; // libkmod message format differs in v30
    check_with(
        &t,
        &mk(&[&p("kernel/top.ko"), &p("updates/top.ko")]),
        &dup_d,
    );
    check_with(&t, &mk(&[&p("kernel/top.ko"), &p("kernel/top.ko")]), &dup_d);
    // A path that is not a module name (no .ko) and a directory.
    check_with(
        &t,
        &mk(&[&t.moddir().join("modules.order").display().to_string()]),
        &d,
    );
    check_with(&t, &mk(&[&p("kernel")]), &d);
}

#[test]
fn quick_mode() {
    let t = rich_tree();
    let dep = t.moddir().join("modules.dep");
    // Whole seconds, so that "+500 ms" below stays within the same second.
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    let old = now - Duration::from_secs(3600);
    let older = now - Duration::from_secs(7200);
    // No modules.dep: error line and full run.
    check(&t, &["-A"]);
    // Up to date: nothing happens.
    for m in [
        "kernel/core.ko",
        "kernel/mid.ko",
        "kernel/top.ko",
        "updates/top.ko",
        "extra/lone.ko",
    ] {
        set_mtime(&t.moddir().join(m), older);
    }
    fs::write(&dep, "stale\n").unwrap();
    set_mtime(&dep, old);
    let o = check(&t, &["-A"]);
    assert!(o.files.is_empty(), "{:?}", o.files.keys());
    check(&t, &["--quick"]);
    // Same second: still up to date (whole seconds compared).
    set_mtime(
        &t.moddir().join("kernel/mid.ko"),
        old + Duration::from_millis(500),
    );
    check(&t, &["-A"]);
    // A newer module: full run.
    set_mtime(&t.moddir().join("extra/lone.ko"), now);
    let o = check(&t, &["-A"]);
    assert!(!o.files.is_empty());
    // -A -n: silent no-op.
    check(&t, &["-A", "-n"]);
    // -A with file arguments: full scan when outdated.
    let mut v = args(&t, &["-A"]);
    v.push(t.moddir().join("kernel/core.ko").display().to_string());
    check_with(&t, &v, &diff_opts(&t));
    // Non-module files newer than modules.dep don't count; a FIFO is reported.
    set_mtime(&t.moddir().join("extra/lone.ko"), older);
    t.module("kernel/notes.txt", "x");
    let fifo = t.moddir().join("kernel/fifo.ko");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    check(&t, &["-A"]);
}

/// `-o OUTDIR` and `-m MODDIR` (kmod 34.2 only; kmod 30 has neither).
#[test]
fn outdir_and_moddir() {
    let t = rich_tree();
    let out = t.path("out").display().to_string();
    let o = check34(&t, &["-o", &out]);
    assert!(
        o.file("out/lib/modules/4.4.4/modules.dep").is_some(),
        "{:?}",
        o.files.keys()
    );
    check34(&t, &["--outdir", &format!("{out}/")]);
    // -n never creates the output directory.
    check34(&t, &[&format!("--outdir={out}/no/such/dir"), "-n"]);
    // Relative outdir / basedir against the cwd.
    let d = Diff {
        v30: false,
        run: RunOpts {
            cwd: Some(t.root.clone()),
            ..RunOpts::default()
        },
        ..diff_opts(&t)
    };
    check_with(
        &t,
        &["-b", ".", "-C", "etc/depmod.d", "-o", "out", "4.4.4"].map(String::from),
        &d,
    );
    check_with(
        &t,
        &["-b", "lib/..", "-C", "etc/depmod.d", "4.4.4"].map(String::from),
        &d,
    );
    // kmod's another-moddir cases.
    let t2 = Tree::new("4.4.4");
    t2.write("foobar/4.4.4/kernel/mod-simple.ko", simple());
    t2.write("foobar2/4.4.4/kernel/mod-simple.ko", simple());
    let o = check34(&t2, &["-m", "/foobar"]);
    assert_eq!(
        o.file("foobar/4.4.4/modules.dep"),
        Some(&b"kernel/mod-simple.ko:\n"[..]),
        "{:?}",
        o.files.keys()
    );
    let o = check34(&t2, &["-m", "foobar2"]);
    assert_eq!(
        o.file("foobar2/4.4.4/modules.dep"),
        Some(&b"kernel/mod-simple.ko:\n"[..])
    );
    check34(
        &t2,
        &[
            "--moduledir=///foobar",
            "-o",
            &t2.path("o").display().to_string(),
        ],
    );
    check34(&t2, &["-m", "nonexistent"]);
    check34(&t2, &["-m", ""]);
}

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

/// Keys an index cannot hold (bytes >= 0x80): kmod 34.2 stops the whole run with
/// `FATAL: Module index: bad character` in the middle of writing (having renamed some
/// outputs into place and left a temp file). Ours leaves each such key out of the
/// index and of its text twin, with one error line naming the module and the key,
/// and writes everything else, exit 0 (intended difference D). Checked against
/// kmod 34.2 twice: on the tree itself (what kmod did before its FATAL, see
/// `check_index_fatal`), and on the same tree without the bad keys, whose outputs
/// ours must write byte for byte. With `-n` nothing is indexed, and ours prints
/// exactly what kmod prints.
#[test]
fn non_ascii_keys_are_left_out_of_the_indexes() {
    // (bad tree, the same tree without what cannot be indexed)
    let trees = [true, false].map(|bad| {
        let t = Tree::new("4.4.4");
        t.empty_inputs();
        let u_aliases: &[&str] = if bad {
            &[
                "alias=caf\u{e9}",
                "alias=pci:v0000BEEFd*",
                "alias=platform:jsl\u{da}x",
            ]
        } else {
            &["alias=pci:v0000BEEFd*"]
        };
        t.module("kernel/u.ko", Elf::x86_64().modinfo(u_aliases).build());
        t.module("kernel/v.ko", km(&["v_fn"], &[]).build());
        let w_exports: &[&str] = if bad {
            &["w_\u{fc}ber", "w_ok"]
        } else {
            &["w_ok"]
        };
        t.module("kernel/w.ko", km(w_exports, &[]).build());
        t.module("kernel/x.ko", km(&[], &["w_ok", "v_fn"]).build());
        if bad {
            t.module("kernel/caf\u{e9}.ko", km(&["cafe_fn"], &[]).build());
            t.builtin("kernel/good.ko\nkernel/b\u{e4}d.ko\n");
            t.builtin_modinfo_records(&["good.alias=ok", "bad.alias=b\u{e4}d", "good.alias=fine"]);
        } else {
            t.builtin("kernel/good.ko\n");
            t.builtin_modinfo_records(&["good.alias=ok", "good.alias=fine"]);
        }
        t
    });
    let [bad, clean] = &trees;
    let o = check34(bad, &[]);
    assert_eq!(o.status, Status::Exit(1), "{}", o.stderr_str());
    assert!(o
        .stderr_str()
        .contains("depmod: FATAL: Module index: bad character"));
    check34(bad, &["-n"]);

    let left_out = equals_kmod_without_what_is_left_out(bad, clean);
    let moddir = bad.moddir().display().to_string();
    let expect = [
        format!("{moddir}/kernel/caf\u{e9}.ko: the path has the byte 0xc3, "),
        format!("{moddir}/kernel/u.ko: alias caf\u{e9} has the byte 0xc3, "),
        format!("{moddir}/kernel/u.ko: alias platform:jsl\u{da}x has the byte 0xc3, "),
        format!("{moddir}/kernel/w.ko: symbol w_\u{fc}ber has the byte 0xc3, "),
        format!("{moddir}/modules.builtin: kernel/b\u{e4}d.ko has the byte 0xc3, "),
        format!("{moddir}/modules.builtin.modinfo: alias b\u{e4}d of bad has the byte 0xc3, "),
    ];
    assert_eq!(left_out.len(), expect.len(), "{left_out:#?}");
    for e in expect {
        let e = format!("depmod: ERROR: {e}");
        assert!(
            left_out.iter().any(|l| l.starts_with(&e)),
            "{e}\nnot in {left_out:#?}"
        );
    }
}

/// An exported symbol with an empty name (a damaged `__crc_` symbol): kmod 34.2's
/// `modules.symbols.bin` writer takes the empty string for a failure ("Could not
/// write index … Cannot allocate memory", exit 1) or reads past it (undefined
/// behaviour: what it prints varies from run to run, so it is not compared on this
/// tree). Ours leaves that one symbol out of modules.symbols and
/// modules.symbols.bin, says so and writes the rest: every output must equal kmod
/// 34.2's on the same tree without that symbol.
#[test]
fn empty_symbol_name_is_left_out_of_the_indexes() {
    let trees = [true, false].map(|bad| {
        let t = Tree::new("4.4.4");
        t.empty_inputs();
        let exports: &[&str] = if bad { &["", "w_ok"] } else { &["w_ok"] };
        t.module("kernel/w.ko", km(exports, &[]).build());
        t.module("kernel/x.ko", km(&[], &["w_ok"]).build());
        t
    });
    let [bad, clean] = &trees;
    let left_out = equals_kmod_without_what_is_left_out(bad, clean);
    assert_eq!(
        left_out,
        [format!(
            "depmod: ERROR: {}/kernel/w.ko: an exported symbol with an empty name cannot be \
             indexed; left out of modules.symbols and modules.symbols.bin\n",
            bad.moddir().display()
        )]
    );
}

/// Runs ours on `bad` and kmod 34.2 on `clean` (the same tree without what ours
/// must leave out of the indexes): both exit 0 with the same stdout and the same
/// files, byte for byte, and ours's stderr is kmod's once its lines about left-out
/// keys are taken out. Returns those lines.
fn equals_kmod_without_what_is_left_out(bad: &Tree, clean: &Tree) -> Vec<String> {
    let run_opts = RunOpts::default();
    let ours = run(&subject(), &args(bad, &[]), &bad.root, &run_opts);
    let kmod_clean = run(&kmod34(), &args(clean, &[]), &clean.root, &run_opts);
    assert_eq!(
        kmod_clean.status,
        Status::Exit(0),
        "{}",
        kmod_clean.stderr_str()
    );
    assert_eq!(ours.status, Status::Exit(0), "{}", ours.stderr_str());
    assert_eq!(ours.stdout, kmod_clean.stdout);
    for (k, v) in &kmod_clean.files {
        assert!(
            ours.files.get(k) == Some(v),
            "{k} differs from kmod 34.2's on the tree without the bad keys"
        );
    }
    assert_eq!(
        ours.files.keys().collect::<Vec<_>>(),
        kmod_clean.files.keys().collect::<Vec<_>>()
    );
    let (left_out, rest): (Vec<&[u8]>, Vec<&[u8]>) = ours
        .stderr
        .split_inclusive(|&c| c == b'\n')
        .partition(|l| l.windows(NOT_INDEXED.len()).any(|w| w == NOT_INDEXED));
    assert_eq!(rest.concat(), kmod_clean.stderr, "{}", ours.stderr_str());
    left_out
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
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

/// An empty tree: every output with its empty form.
#[test]
fn empty_tree() {
    let t = Tree::new("4.4.4");
    let o = check(&t, &[]);
    assert_eq!(o.file("modules.dep"), Some(&b""[..]));
    t.empty_inputs();
    check(&t, &[]);
    check(&t, &["-n"]);
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

/// kmod's `depmod_modules_outdir`.
#[test]
fn kmod_testsuite_outdir() {
    let t = Tree::new("4.4.4");
    t.builtin("");
    t.order("#336\nkernel/drivers/block/cciss.ko\n#2094\nkernel/drivers/scsi/scsi_mod.ko\n#2137\nkernel/drivers/scsi/hpsa.ko\n");
    t.module(
        "kernel/drivers/block/cciss.ko",
        km(&[], &[])
            .modinfo(&["alias=pci:v00009005d00000285sv00000E11sd00000295bc*sc*i*"])
            .build(),
    );
    t.module(
        "kernel/drivers/scsi/scsi_mod.ko",
        km(&["scsi_host_alloc"], &[]).build(),
    );
    t.module(
        "kernel/drivers/scsi/hpsa.ko",
        km(&[], &["scsi_host_alloc"])
            .modinfo(&["alias=pci:v0000103Cd*sv*sd*bc01sc07i*"])
            .build(),
    );
    let o = check34(
        &t,
        &["--outdir", &format!("{}/", t.path("outdir").display())],
    );
    assert_eq!(
        o.file("outdir/lib/modules/4.4.4/modules.dep").map(|b| String::from_utf8_lossy(b).into_owned()),
        Some("kernel/drivers/block/cciss.ko:\nkernel/drivers/scsi/scsi_mod.ko:\nkernel/drivers/scsi/hpsa.ko: kernel/drivers/scsi/scsi_mod.ko\n".to_string())
    );
}

// ---------------------------------------------------------------------------------------
// command line

/// Compare stdout/stderr/status/files of a command line (in `@ROOT@` as cwd; `@ROOT@`
/// and `@C@` = `-C @ROOT@/etc/depmod.d` are substituted). Every command line that gets
/// past option parsing must carry `-b @ROOT@` so that nothing outside the tree is read
/// or written.
fn cli_with(argv: &[&str], v30: bool) {
    let t = rich_tree();
    let d = Diff {
        run: RunOpts {
            cwd: Some(t.root.clone()),
            ..RunOpts::default()
        },
        v30,
        ..diff_opts(&t)
    };
    let root = t.root.display().to_string();
    let mut v: Vec<String> = Vec::new();
    for a in argv {
        if *a == "@C@" {
            v.push("-C".into());
            v.push(format!("{root}/etc/depmod.d"));
        } else {
            v.push(a.replace("@ROOT@", &root));
        }
    }
    check_with(&t, &v, &d);
}

fn cli(argv: &[&str]) {
    cli_with(argv, true)
}

/// Without kmod 30 (options it interprets differently: deprecated `-u -q -r -m`, help
/// text, `-P ''`).
fn cli34(argv: &[&str]) {
    cli_with(argv, false)
}

#[test]
fn cli_errors() {
    for argv in [
        &["-Z"][..],
        &["--bogus"],
        &["-b"],
        &["--basedir"],
        &["-C"],
        &["-E"],
        &["-F"],
        &["-P"],
        &["-o"],
        &["-b", "@ROOT@", "@C@", "foo"],
        &["-b", "@ROOT@", "@C@", "v5.1"],
        &["-b", "@ROOT@", "@C@", "x4.4"],
        &["-b", "@ROOT@", "@C@", "/abs/mod.ko"],
        &["-P", "ab", "-b", "@ROOT@", "@C@", "4.4.4"],
        &["--s", "-b", "@ROOT@", "@C@", "4.4.4"],
        &["--sy", "-b", "@ROOT@", "@C@", "4.4.4"],
        &["--all=x", "-b", "@ROOT@", "@C@", "4.4.4"],
        &["--verbose=1", "-b", "@ROOT@", "@C@", "4.4.4"],
        &["-b", "@ROOT@", "@C@", "--", "-n"],
        &["-Z", "-h"],
        &["-b", "@ROOT@", "@C@", "4.4.4", "-n", "--", "-x"],
        &["-b", "@ROOT@", "@C@", "4.4.4", "relative.ko"],
        &["-b", "@ROOT@", "@C@", " 4.4", "-n"],
        &["-b", "@ROOT@", "@C@", "+4.4", "-n"],
        &["-b", "@ROOT@", "@C@", "4.", "-n"],
        &["-b", "@ROOT@", "@C@", "4", "-n"],
        &["-b", "@ROOT@", "@C@", "4.4.4", "-e"],
        // getopt's own forms: an abbreviation named in full in the message, `=`
        // kept in a short option's value, a lone `-` as an argument, an empty
        // long value, an unknown letter after a known one.
        &["--al=x", "-b", "@ROOT@", "@C@", "4.4.4"],
        &["-b=@ROOT@", "@C@", "4.4.4", "-n"],
        &["-b", "@ROOT@", "@C@", "-"],
        &["--basedir=", "@C@", "4.4.4", "-n"],
        &["-nZ", "-b", "@ROOT@", "@C@", "4.4.4"],
    ] {
        cli(argv);
    }
    for argv in [
        &["-m"][..],
        &["-P", "", "-b", "@ROOT@", "@C@", "4.4.4"],
        &["-u", "-b", "@ROOT@", "@C@", "4.4.4"],
        &["-q", "-b", "@ROOT@", "@C@", "4.4.4"],
        &["-r", "-b", "@ROOT@", "@C@", "4.4.4"],
        &["--quiet", "-b", "@ROOT@", "@C@", "4.4.4"],
        &["--unresolved-error", "-b", "@ROOT@", "@C@", "4.4.4"],
        &["--root", "-b", "@ROOT@", "@C@", "4.4.4"],
        &["--map", "-b", "@ROOT@", "@C@", "4.4.4"],
        &["-b", "@ROOT@", "@C@", "-m", "4.4.4"],
    ] {
        cli34(argv);
    }
}

#[test]
fn cli_option_forms() {
    for argv in [
        &["-b", "@ROOT@", "-C", "@ROOT@/etc/depmod.d", "4.4.4", "-n"][..],
        &["-n", "-b@ROOT@", "-C@ROOT@/etc/depmod.d", "4.4.4"],
        &[
            "--basedir=@ROOT@",
            "--config=@ROOT@/etc/depmod.d",
            "--show",
            "4.4.4",
        ],
        &[
            "--base",
            "@ROOT@",
            "--conf",
            "@ROOT@/etc/depmod.d",
            "--sh",
            "4.4.4",
        ],
        &[
            "-b",
            "/nonexistent",
            "-b",
            "@ROOT@",
            "-C",
            "@ROOT@/etc/depmod.d",
            "-an",
            "4.4.4",
        ],
        &["-anv", "-b", "@ROOT@", "-C", "@ROOT@/etc/depmod.d", "4.4.4"],
        &["-wn", "-b", "@ROOT@", "-C", "@ROOT@/etc/depmod.d", "4.4.4"],
        &[
            "-b",
            "@ROOT@",
            "-C",
            "@ROOT@/etc/depmod.d",
            "4.4.4",
            "--",
            "-n",
        ],
        &["-b", "@ROOT@/", "-C", "@ROOT@/etc/depmod.d", "-n", "4.4.4"],
        &["-b", ".", "-C", "etc/depmod.d", "-n", "4.4.4"],
        &[
            "-b",
            "",
            "-C",
            "@ROOT@/etc/depmod.d",
            "-n",
            "4.4.4-nonexistent",
        ],
    ] {
        cli(argv);
    }
}

#[test]
fn help_and_version() {
    cli34(&["-h"]);
    cli34(&["--help"]);
    cli34(&["--he"]);
    cli34(&["-n", "-h", "-Z"]);
    cli34(&["-h", "-V"]);
    // -V: ours may print another feature string; check the shape only.
    let s = subject();
    let (out, _err, st) = run_raw(&s, &["-V"], &RunOpts::default());
    assert_eq!(st, Status::Exit(0));
    let out = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("kmod version "), "{out}");
    assert!(
        lines[1].starts_with('+') || lines[1].starts_with('-'),
        "{out}"
    );
    let (out2, _, st2) = run_raw(&s, &["--version", "-Z"], &RunOpts::default());
    assert_eq!(st2, Status::Exit(0));
    assert_eq!(out, String::from_utf8_lossy(&out2));
}
