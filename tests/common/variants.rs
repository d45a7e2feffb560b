//! Compressed copies of a module tree, made the way kbuild makes them:
//! `gzip -n`, `xz --check=crc32 --lzma2=dict=1MiB`, `zstd` at its default level.
//! Built once under `target/trees/` and reused (by the tests and `cargo xtask bench`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A compression kbuild can apply to modules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// `.ko.gz`
    Gz,
    /// `.ko.xz`
    Xz,
    /// `.ko.zst`
    Zst,
}

impl Compression {
    pub const ALL: [Compression; 3] = [Compression::Gz, Compression::Xz, Compression::Zst];

    /// File suffix after `.ko`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Gz => ".gz",
            Compression::Xz => ".xz",
            Compression::Zst => ".zst",
        }
    }

    pub fn name(self) -> &'static str {
        &self.suffix()[1..]
    }

    fn command(self, file: &Path) -> Command {
        let mut c = match self {
            Compression::Gz => {
                let mut c = Command::new("gzip");
                c.args(["-n", "-k", "-f"]);
                c
            }
            Compression::Xz => {
                let mut c = Command::new("xz");
                c.args(["--check=crc32", "--lzma2=dict=1MiB", "-k", "-f"]);
                c
            }
            Compression::Zst => {
                let mut c = Command::new("zstd");
                c.args(["-q", "-k", "-f"]);
                c
            }
        };
        c.arg(file);
        c
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            walk(&p, out);
        } else if t.is_file() {
            out.push(p);
        }
    }
}

/// Makes (once) `<plain>-<kind>`: a copy of the `lib/` tree of `plain` (a root
/// directory holding `lib/modules/…`) whose every `.ko` is compressed; other files
/// are copied as is. Returns the new root. Safe against concurrent callers (built in
/// a temp dir, then renamed).
pub fn compressed_tree(plain: &Path, kind: Compression) -> PathBuf {
    let name = format!(
        "{}-{}",
        plain.file_name().unwrap().to_string_lossy(),
        kind.name()
    );
    let dest = plain.with_file_name(name);
    if dest.join(".complete").exists() {
        return dest;
    }
    let tmp = plain.with_file_name(format!(
        ".{}.tmp.{}",
        dest.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&tmp);
    let mut files = Vec::new();
    walk(&plain.join("lib"), &mut files);
    let modules: Vec<PathBuf> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "ko"))
        .cloned()
        .collect();
    for f in &files {
        let rel = f.strip_prefix(plain).unwrap();
        let target = tmp.join(rel);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(f, &target).unwrap();
    }
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(m) = modules.get(i) else { break };
                let copy = tmp.join(m.strip_prefix(plain).unwrap());
                let ok = kind
                    .command(&copy)
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                if ok {
                    let _ = fs::remove_file(&copy);
                } else {
                    failures.lock().unwrap().push(copy);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "compressing failed for {failures:?} (is {} installed?)",
        kind.name()
    );
    fs::write(tmp.join(".complete"), b"").unwrap();
    if fs::rename(&tmp, &dest).is_err() {
        // Someone else finished first.
        let _ = fs::remove_dir_all(&tmp);
    }
    dest
}

/// `text` with every module path's `.ko` given the suffix of `kind` — the golden
/// modules.dep as it reads for a compressed tree.
pub fn with_suffix(text: &[u8], kind: Compression) -> Vec<u8> {
    let s = kind.suffix().as_bytes();
    let mut out = Vec::with_capacity(text.len() + text.len() / 8);
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(b".ko") {
            let next = text.get(i + 3).copied();
            if matches!(next, None | Some(b':') | Some(b' ') | Some(b'\n') | Some(0)) {
                out.extend_from_slice(b".ko");
                out.extend_from_slice(s);
                i += 3;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

/// Compares the outputs in `outdir` with kmod's golden files: byte for byte, except
/// that on a compressed tree the module paths in modules.dep and modules.dep.bin
/// carry the compression suffix (modules.dep.bin is then compared by content).
pub fn compare_with_golden(
    outdir: &Path,
    golden: &Path,
    kind: Option<Compression>,
) -> Result<usize, String> {
    let mut compared = 0;
    let mut names: Vec<String> = fs::read_dir(golden)
        .map_err(|e| format!("{}: {e}", golden.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("modules."))
        .collect();
    names.sort();
    for name in names {
        let want = fs::read(golden.join(&name)).map_err(|e| format!("{name}: {e}"))?;
        let got = fs::read(outdir.join(&name))
            .map_err(|e| format!("{}: {e}", outdir.join(&name).display()))?;
        let same = match (kind, name.as_str()) {
            (Some(k), "modules.dep") => got == with_suffix(&want, k),
            (Some(k), "modules.dep.bin") => {
                let entries = |b: &[u8]| depmod::index::Reader::new(b).and_then(|r| r.entries());
                let want = entries(&want).map_err(|e| format!("golden {name}: {e:?}"))?;
                let want: Vec<_> = want
                    .into_iter()
                    .map(|(key, vals)| {
                        (
                            key,
                            vals.into_iter()
                                .map(|(p, v)| (p, with_suffix(&v, k)))
                                .collect::<Vec<_>>(),
                        )
                    })
                    .collect();
                entries(&got).map_err(|e| format!("our {name}: {e:?}"))? == want
            }
            _ => got == want,
        };
        if !same {
            let at = want
                .iter()
                .zip(&got)
                .position(|(a, b)| a != b)
                .unwrap_or(want.len().min(got.len()));
            return Err(format!(
                "{} differs from the golden {name} (sizes {} vs {}, first difference at byte {at})",
                outdir.join(&name).display(),
                got.len(),
                want.len()
            ));
        }
        compared += 1;
    }
    Ok(compared)
}
