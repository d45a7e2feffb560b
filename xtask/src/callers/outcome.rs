//! What a run leaves (exit status, output, the files of the trees it wrote) and how
//! the run with ours is held to the run with kmod 34.2; for the initramfs tools, also
//! kmod 34.2 run directly on the modules found in our image.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::debian::{self, KVER};
use crate::util::run;

use super::setup::{command, fresh_dir};
use super::{Ctx, INPUTS};

/// What one run leaves: exit status, output, and named trees of files.
pub(super) struct Outcome {
    pub(super) status: Option<i32>,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
    pub(super) trees: Vec<(&'static str, Tree)>,
    /// A summary for the PASS line.
    pub(super) note: String,
    /// The arguments of each depmod call, one line each (work directory left out).
    pub(super) calls: Vec<u8>,
}

#[derive(PartialEq, Eq)]
pub(super) enum Node {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

pub(super) type Tree = BTreeMap<String, Node>;

impl Ctx {
    /// kmod 34.2 on the modules of our image (`work/image`), with the same form the
    /// tool used (`-a -b ROOT KVER`); its outputs must be the image's index files.
    pub(super) fn kmod_on_image(&self, work: &Path) -> Result<String, String> {
        let image = work.join("image");
        let moddir = ["usr/lib/modules", "lib/modules"]
            .iter()
            .map(|p| image.join(p).join(KVER))
            .find(|p| p.is_dir())
            .ok_or("no lib/modules/KVER in the image")?;
        let check = self.dir.join("work/image-kmod");
        fresh_dir(&check)?;
        let dest = check.join("lib/modules");
        fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
        run(Command::new("cp").arg("-a").arg(&moddir).arg(&dest))?;
        let dest = dest.join(KVER);
        let mut in_image = BTreeMap::new();
        for e in fs::read_dir(&dest).map_err(|e| e.to_string())?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("modules.") && !INPUTS.contains(&name.as_str()) {
                in_image.insert(name, fs::read(e.path()).map_err(|e| e.to_string())?);
                fs::remove_file(e.path()).map_err(|e| e.to_string())?;
            }
        }
        let out = command(
            Command::new(&self.kmod)
                .arg("-a")
                .arg("-b")
                .arg(&check)
                .arg(KVER),
        )?;
        if !out.status.success() {
            return Err(format!(
                "kmod 34.2 on the image's modules: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut from_kmod = BTreeMap::new();
        for e in fs::read_dir(&dest).map_err(|e| e.to_string())?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("modules.") && !INPUTS.contains(&name.as_str()) {
                from_kmod.insert(name, fs::read(e.path()).map_err(|e| e.to_string())?);
            }
        }
        let modules = count_modules(&dest);
        let _ = fs::remove_dir_all(&check);
        if in_image.is_empty() || in_image != from_kmod {
            let names: BTreeSet<&String> = in_image.keys().chain(from_kmod.keys()).collect();
            let diffs: Vec<String> = names
                .into_iter()
                .filter(|n| in_image.get(*n) != from_kmod.get(*n))
                .map(|n| match (in_image.get(n), from_kmod.get(n)) {
                    (Some(a), Some(b)) => format!(
                        "{n}: {}",
                        debian::first_difference(b, a).unwrap_or_default()
                    ),
                    (Some(_), None) => format!("{n}: in the image, not written by kmod"),
                    _ => format!("{n}: written by kmod, not in the image"),
                })
                .collect();
            return Err(format!(
                "the image's indexes are not kmod 34.2's for its {modules} modules:\n{}",
                diffs.join("\n")
            ));
        }
        Ok(format!(
            "; kmod 34.2 run on the image's {modules} modules writes its {} index files",
            in_image.len()
        ))
    }
}

pub(super) fn outcome(out: Output, trees: Vec<(&'static str, Tree)>, note: String) -> Outcome {
    Outcome {
        status: out.status.code(),
        stdout: out.stdout,
        stderr: out.stderr,
        trees,
        note,
        calls: Vec::new(),
    }
}

/// Masks the random part of temporary names in a run's stdout and stderr.
pub(super) fn normalized(mut out: Output, prefixes: &[&str]) -> Output {
    out.stdout = normalize(out.stdout, prefixes);
    out.stderr = normalize(out.stderr, prefixes);
    out
}

/// Masks the random part (6 characters) of temporary names after each prefix.
pub(super) fn normalize(mut buf: Vec<u8>, prefixes: &[&str]) -> Vec<u8> {
    {
        let buf = &mut buf;
        for prefix in prefixes {
            let p = prefix.as_bytes();
            let mut i = 0;
            while i + p.len() <= buf.len() {
                if &buf[i..i + p.len()] == p {
                    let start = i + p.len();
                    let mut j = start;
                    while j < buf.len() && j < start + 6 && buf[j].is_ascii_alphanumeric() {
                        j += 1;
                    }
                    if j == start + 6 {
                        buf[start..j].copy_from_slice(b"XXXXXX");
                    }
                    i = j;
                } else {
                    i += 1;
                }
            }
        }
    }
    buf
}

/// Every entry under `dir`, by path relative to it.
pub(super) fn read_tree(dir: &Path) -> Result<Tree, String> {
    let mut tree = Tree::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let e = e.map_err(|e| e.to_string())?;
            let path = e.path();
            let rel = path
                .strip_prefix(dir)
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .into_owned();
            let ty = e.file_type().map_err(|e| e.to_string())?;
            if ty.is_symlink() {
                let target = fs::read_link(&path).map_err(|e| e.to_string())?;
                tree.insert(rel, Node::Link(target));
            } else if ty.is_dir() {
                tree.insert(rel, Node::Dir);
                stack.push(path);
            } else {
                let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                tree.insert(rel, Node::File(bytes));
            }
        }
    }
    Ok(tree)
}

/// "image: N modules, M index files, P paths" for a PASS line.
pub(super) fn image_summary(trees: &[(&'static str, Tree)]) -> String {
    let Some((_, image)) = trees.iter().find(|(n, _)| *n == "image") else {
        return "no image".into();
    };
    let modules = image.keys().filter(|k| k.ends_with(".ko")).count();
    let marker = format!("lib/modules/{KVER}/modules.");
    let indexes = image
        .keys()
        .filter(|k| k.contains(&marker) && !INPUTS.iter().any(|i| k.ends_with(&format!("/{i}"))))
        .count();
    format!(
        "image with {modules} modules, {indexes} index files, {} paths",
        image.len()
    )
}

fn count_modules(dir: &Path) -> usize {
    read_tree(dir)
        .map(|t| t.keys().filter(|k| k.ends_with(".ko")).count())
        .unwrap_or(0)
}

/// Compares two outcomes; the error lists what differs.
pub(super) fn compare(ours: &Outcome, kmod: &Outcome) -> Result<(), String> {
    let mut diffs = Vec::new();
    if ours.status != kmod.status {
        diffs.push(format!(
            "exit status: ours {:?}, kmod 34.2 {:?}",
            ours.status, kmod.status
        ));
    }
    for (what, a, b) in [
        ("stdout", &ours.stdout, &kmod.stdout),
        ("stderr", &ours.stderr, &kmod.stderr),
    ] {
        if let Some(d) = debian::first_difference(b, a) {
            diffs.push(format!("{what} (expected: kmod 34.2's run): {d}"));
        }
    }
    if let Some(d) = debian::first_difference(&kmod.calls, &ours.calls) {
        diffs.push(format!("depmod calls (expected: kmod 34.2's run): {d}"));
    }
    if ours.status != Some(0) {
        diffs.push(format!(
            "the tool failed (exit {:?}): {}",
            ours.status,
            tail(&ours.stderr)
        ));
    }
    let names: BTreeSet<&str> = ours
        .trees
        .iter()
        .chain(&kmod.trees)
        .map(|(n, _)| *n)
        .collect();
    for name in names {
        match (find_tree(ours, name), find_tree(kmod, name)) {
            (Some(a), Some(b)) => diffs.extend(tree_diffs(name, a, b)),
            (Some(_), None) => diffs.push(format!("{name}: only in our run")),
            (None, _) => diffs.push(format!("{name}: only in kmod 34.2's run")),
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n  "))
    }
}

fn find_tree<'a>(outcome: &'a Outcome, name: &str) -> Option<&'a Tree> {
    outcome
        .trees
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| t)
}

fn tree_diffs(name: &str, ours: &Tree, kmod: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    let paths: BTreeSet<&String> = ours.keys().chain(kmod.keys()).collect();
    for p in paths {
        let line = match (ours.get(p), kmod.get(p)) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(Node::File(a)), Some(Node::File(b))) => format!(
                "{name}: {p} differs: {}",
                debian::first_difference(b, a).unwrap_or_default()
            ),
            (Some(_), Some(_)) => format!("{name}: {p} is of another kind"),
            (Some(_), None) => format!("{name}: {p} only in our run"),
            (None, _) => format!("{name}: {p} only in kmod 34.2's run"),
        };
        out.push(line);
        if out.len() == 20 {
            out.push(format!("{name}: …"));
            break;
        }
    }
    out
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}
