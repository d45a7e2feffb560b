//! The command line: options in every form getopt accepts, bad ones with their
//! messages and exit codes, `-h` and `-V`, `-v` and `-vv` (messages), module paths as
//! arguments (file mode) and `-A` (quick mode).
//!
//! Oracles: kmod 34.2, compared with ours on everything (every output file incl. the
//! `.bin` indexes and their modes, stdout, stderr, exit status), and kmod 30 on the
//! text files; see `tests/common/scenario.rs` (`check`; `check34`: kmod 34.2 alone).

mod common;

use common::oracle::*;
use common::scenario::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

// ---------------------------------------------------------------------------------------
// helpers

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

fn set_mtime(p: &Path, t: SystemTime) {
    let f = fs::File::options().write(true).open(p).unwrap();
    f.set_modified(t).unwrap();
}

// ---------------------------------------------------------------------------------------
// options, errors, help

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

// ---------------------------------------------------------------------------------------
// modes

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
