//! The differential check: one command line run by kmod 34.2, by the subject and by
//! kmod 30 on the same tree, and every difference between them that is not one of the
//! contracts (`contracts.rs`).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use super::compare::{clip, compare, diff_text, Policy};
use super::contracts::{
    apply_substs, check_crash_equivalent, check_index_fatal, crashed_in_cycles,
    expect_decompress_errors, index_fatal, settle_dep_bin, strip_debug, undo_substs, PathMap,
    Subst,
};
use super::kmod::{kmod30, kmod34, subject, Kind};
use super::outcome::{run, Outcome, RunOpts};

// ---------------------------------------------------------------------------------------
// modules.order for kmod 30

/// kmod 30 uses the *last* occurrence of a duplicated modules.order line, 34.2 the first:
/// drop later duplicates so that kmod 30 computes what 34.2 does. A final chunk without
/// newline is kept (it disables reordering in both versions).
pub fn dedup_order(content: &[u8]) -> Vec<u8> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in content.split_inclusive(|&b| b == b'\n') {
        if !line.ends_with(b"\n") || seen.insert(line.to_vec()) {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Run kmod 30 with `order_file` deduplicated for the duration of the run.
pub fn run_v30<S: AsRef<OsStr>>(
    args: &[S],
    root: &Path,
    order_file: Option<&Path>,
    opts: &RunOpts,
) -> Outcome {
    let v30 = kmod30();
    let saved = order_file.and_then(|p| fs::read(p).ok().map(|c| (p, c)));
    if let Some((p, c)) = &saved {
        let d = dedup_order(c);
        if &d != c {
            let md = fs::metadata(p).unwrap();
            fs::write(p, &d).unwrap();
            let o = run(&v30, args, root, opts);
            fs::write(p, c).unwrap();
            let f = fs::File::options().write(true).open(p).unwrap();
            f.set_modified(md.modified().unwrap()).unwrap();
            return o;
        }
    }
    run(&v30, args, root, opts)
}

// ---------------------------------------------------------------------------------------
// The differential check

#[derive(Clone, Debug)]
pub struct Diff {
    pub run: RunOpts,
    /// Also compare with kmod 30 (text files).
    pub v30: bool,
    /// modules.order to deduplicate for kmod 30.
    pub order_file: Option<PathBuf>,
    /// Replace hex pointers (`0x55d0c0ffee00`) in stderr before comparing (`-vv` prints
    /// libkmod INFO lines with pointer values).
    pub mask_pointers: bool,
    /// Module files that ours reads differently from kmod, by intent (README
    /// "Differences from kmod"): the oracles run on the tree with each replaced by its
    /// stand-in, see [`Subst`].
    pub substs: Vec<Subst>,
}

impl Default for Diff {
    fn default() -> Self {
        Diff {
            run: RunOpts::default(),
            v30: true,
            order_file: None,
            mask_pointers: false,
            substs: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The differential run

/// Run kmod 34.2, the subject and (optionally) kmod 30 on the same tree and compare:
/// subject vs 34.2 byte for byte (text-only when the subject is kmod 30), subject vs
/// kmod 30 on the text files. Returns the kmod 34.2 outcome (stand-in paths mapped
/// back, see [`Subst`]), or the description of every mismatch.
///
/// Where ours differs from kmod by intent (README "Differences from kmod"), ours is
/// checked against its documented behaviour instead:
/// * A, B, C: the oracles run on stand-ins (`d.substs`, see [`Subst`]);
/// * D: kmod's `Module index: bad character` FATAL: ours leaves the key out and
///   writes the rest (see [`check_index_fatal`]);
/// * E: kmod's `DEBUG:` lines (`-vvv`) are not expected from ours;
/// * kmod aborting or looping in its cycle report: see [`check_crash_equivalent`].
pub fn differential<S: AsRef<OsStr>>(root: &Path, args: &[S], d: &Diff) -> Result<Outcome, String> {
    let k34 = kmod34();
    let subj = subject();
    let self_test = subj.kind == Kind::Kmod30;
    let changed = d.substs.iter().any(Subst::changes_tree);
    // kmod 30 runs on the stand-ins unless it reads every original as ours does.
    let v30_on_stand_ins = changed && d.substs.iter().any(|s| !s.v30_as_is);
    let paths = PathMap::new(root, &d.substs);

    // The oracles' runs on the stand-ins.
    let saved = if changed {
        apply_substs(root, &d.substs)
    } else {
        Vec::new()
    };
    let mut o34 = run(&k34, args, root, &d.run);
    let need30 = d.v30 && (self_test || !o34.status.crashed());
    let mut o30 = (need30 && v30_on_stand_ins).then(|| {
        let mut o = run_v30(args, root, d.order_file.as_deref(), &d.run);
        paths.map_outcome(&mut o);
        o
    });
    undo_substs(saved);
    paths.map_outcome(&mut o34);
    if self_test && !d.v30 {
        // Self-test mode, and the scenario is not meant for kmod 30.
        return Ok(o34);
    }
    if need30 && o30.is_none() {
        o30 = Some(run_v30(args, root, d.order_file.as_deref(), &d.run));
    }

    let mut os = if self_test {
        o30.clone().unwrap()
    } else {
        run(&subj, args, root, &d.run)
    };
    if d.mask_pointers {
        o34.stderr = mask_pointers(&o34.stderr);
        os.stderr = mask_pointers(&os.stderr);
    }
    // What ours prints instead of kmod (B, E); the returned outcome stays kmod's.
    let mut want = o34.clone();
    if !self_test {
        want.stderr = strip_debug(&expect_decompress_errors(root, &d.substs, &want.stderr));
    }
    let mut msg = String::new();
    let cmdline = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    if want.status.crashed() && !crashed_in_cycles(&want) {
        // kmod died elsewhere (libkmod-elf assertions on malformed files): ours must
        // just survive.
        if os.status.crashed() && os.who != "kmod 30" {
            let _ = writeln!(
                msg,
                "{} {} ({} {})",
                os.who, os.status, want.who, want.status
            );
        }
    } else if want.status.crashed() {
        if let Err(e) = check_crash_equivalent(&want, &os) {
            let _ = write!(
                msg,
                "{} vs {} ({} {}):\n{e}",
                os.who, want.who, want.who, want.status
            );
        }
    } else if index_fatal(&want) {
        // D (kmod 30 silently writes a corrupt index: nothing to compare with).
        if !self_test {
            if let Err(e) = check_index_fatal(&want, &os) {
                let _ = write!(msg, "{} vs {} (index FATAL):\n{e}", os.who, want.who);
            }
        }
    } else {
        let policy = if self_test {
            Policy::V30
        } else {
            settle_dep_bin(&paths, &mut want, &os, &mut msg);
            Policy::FULL
        };
        if let Err(e) = compare(&want, &os, policy) {
            let _ = write!(msg, "{} vs {}:\n{e}", os.who, want.who);
        } else if self_test
            && std::env::var_os("DEPMOD_SELFTEST_STDERR").is_some()
            && (want.stderr != os.stderr || want.status != os.status)
        {
            // Informational (self-test): kmod 30 and 34.2 differ on stderr/status.
            let e = format!(
                "status {} / {}\n{}",
                want.status,
                os.status,
                diff_text(want.who, &want.stderr, os.who, &os.stderr)
            );
            eprintln!("NOTE stderr/status differ: depmod {cmdline}\n{e}");
        }
        if !self_test {
            if let Some(o30) = o30.as_ref().filter(|o| !o.status.crashed()) {
                if let Err(e) = compare(o30, &os, Policy::V30) {
                    let _ = write!(msg, "{} vs {} (text files):\n{e}", os.who, o30.who);
                }
            }
        }
    }
    if msg.is_empty() {
        Ok(o34)
    } else {
        let stand_ins = d
            .substs
            .iter()
            .map(|s| {
                format!(
                    "  {}{}{}\n",
                    s.rel,
                    if s.changes_tree() {
                        format!(" → oracles: {}", s.oracle_rel)
                    } else {
                        String::new()
                    },
                    s.ours_error
                        .as_deref()
                        .map(|e| format!(" (ours: {e})"))
                        .unwrap_or_default()
                )
            })
            .collect::<String>();
        Err(format!(
            "depmod {cmdline}\n{msg}{}\n--- {} stderr:\n{}--- {} stderr:\n{}",
            if stand_ins.is_empty() {
                String::new()
            } else {
                format!("intended differences:\n{stand_ins}")
            },
            o34.who,
            clip(&o34.stderr, 3000),
            os.who,
            clip(&os.stderr, 3000)
        ))
    }
}

/// `0x` followed by at least 6 hex digits → `0xPTR`.
pub fn mask_pointers(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(b"0x") {
            let n = s[i + 2..]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            if n >= 6 {
                out.extend_from_slice(b"0xPTR");
                i += 2 + n;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}
