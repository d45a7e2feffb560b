//! The vocabulary of the differential scenarios (`tests/differential_*.rs`): the
//! standard command line over a [`Tree`], running it under every oracle, and the
//! modules and trees several scenarios are built from.
//!
//! `check` runs our depmod, kmod 34.2 and kmod 30 on the same tree and compares ours
//! with kmod 34.2 on everything (every output file incl. the `.bin` indexes, their
//! modes, stdout, stderr, exit status) and with kmod 30 on the text files but
//! modules.weakdep (kmod 30 gets a de-duplicated modules.order); `check34` leaves
//! kmod 30 out, `check_with` takes any command line and [`Diff`].
//!
//! `DEPMOD_SUBJECT=kmod30 cargo test --test 'differential_*'` runs the same scenarios
//! with kmod 30 in place of our binary (text files only), to validate the harness
//! itself.

use super::elfgen::*;
use super::oracle::*;
use super::tree::*;

// ---------------------------------------------------------------------------------------
// running a scenario

/// `-b ROOT -C CONFDIR <opts…> KVER`.
pub fn args(t: &Tree, opts: &[&str]) -> Vec<String> {
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

/// The [`Diff`] of a standard run (kmod 30 gets the tree's modules.order
/// de-duplicated).
pub fn diff_opts(t: &Tree) -> Diff {
    Diff {
        order_file: Some(t.moddir().join("modules.order")),
        ..Diff::default()
    }
}

/// Runs `argv` under the oracles `d` asks for; panics with every mismatch, else
/// returns kmod 34.2's outcome.
pub fn check_with(t: &Tree, argv: &[String], d: &Diff) -> Outcome {
    match differential(&t.root, argv, d) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

/// Standard run: `-b ROOT -C CONFDIR <opts> KVER`, compared with both oracles.
pub fn check(t: &Tree, opts: &[&str]) -> Outcome {
    check_with(t, &args(t, opts), &diff_opts(t))
}

/// Like `check` but without kmod 30 (features it lacks, or undefined behaviour there).
pub fn check34(t: &Tree, opts: &[&str]) -> Outcome {
    check_with(
        t,
        &args(t, opts),
        &Diff {
            v30: false,
            ..diff_opts(t)
        },
    )
}

/// The content of the output file `name`, which must have been written.
pub fn text(o: &Outcome, name: &str) -> String {
    String::from_utf8_lossy(o.file(name).unwrap_or_else(|| panic!("{name} not written")))
        .into_owned()
}

// ---------------------------------------------------------------------------------------
// modules

/// A stable fake CRC for a symbol name.
pub fn crc_of(name: &str) -> u64 {
    let mut h: u32 = 0x811c9dc5;
    for b in name.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x01000193);
    }
    h as u64
}

/// A module (x86-64) exporting `exports` with `__crc_` (absolute) symbols and importing
/// `imports`, with a matching `__versions` (plus `module_layout`).
pub fn km(exports: &[&str], imports: &[&str]) -> Elf {
    kmod_elf(Elf::x86_64(), exports, imports)
}

/// [`km`] on another ELF class, byte order or machine `e`.
pub fn kmod_elf(mut e: Elf, exports: &[&str], imports: &[&str]) -> Elf {
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

/// Compress `data` with the `cmd` tool reading from a file (so that zstd records the
/// content size in the frame header, as the kernel build does).
pub fn compress(cmd: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
    compress_with(cmd, args, data, false)
}

/// kmod's testsuite module `mod-simple`: one alias, no symbols.
pub fn simple() -> Vec<u8> {
    Elf::x86_64().modinfo(&["alias=mod-simple"]).build()
}

// ---------------------------------------------------------------------------------------
// trees

/// A tree with a bit of everything (modules.order, built-in modules and their
/// aliases, softdep, weakdep, devname, an `updates/` duplicate, a missing symbol):
/// the ground for the option scenarios.
pub fn rich_tree() -> Tree {
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

/// Place `mod-simple.ko` (and a user of one of its exports, and a `-` variant) in
/// several directories and run with the given config.
pub fn dup_case(dirs: &[&str], externals: &[&str], confs: &[(&str, &str)]) -> Outcome {
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

/// The modules.dep of a run.
pub fn dep(o: &Outcome) -> String {
    text(o, "modules.dep")
}
