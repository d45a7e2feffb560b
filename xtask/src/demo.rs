//! `cargo xtask demo`: our depmod on a real kernel's modules, against kmod 34.2.
//!
//! Builds `depmod` in release mode, fetches Debian 12's
//! `linux-image-6.1.0-56-amd64-unsigned` once (cached under `target/`, shared with the
//! tests through `tests/common/debian.rs`), copies its module tree to
//! `target/demo/root`, runs `depmod -b target/demo/root 6.1.0-56-amd64` and prints:
//! every output file with its size and whether it is byte-identical to kmod 34.2's, the
//! number of modules and dependency edges, the wall time, and lookups read back from
//! our `.bin` files as libkmod (modprobe) does them: the modules `btrfs` needs and the
//! order modprobe loads them in (`modules.dep.bin`), and the module that serves an alias
//! (`modules.alias.bin`, whose keys may be fnmatch patterns).
//!
//! kmod 34.2's outputs come from `debian::golden_dir` (generated once with the kmod
//! 34.2 oracle and checked against the sums committed in `tests/data/`); the oracle is
//! fetched first (`cargo xtask oracle`) when it is missing (`util::oracle`).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::util::debian::{self, KVER};
use crate::util::oracle::reference_outputs;
use crate::util::{cargo, run as run_cmd, short};
use depmod::index::Reader;

/// The module whose dependency chain is shown.
const MODULE: &str = "btrfs";
/// Aliases looked up, with what they are: one plain key, one that only a pattern
/// matches (the modalias the kernel reports for the device, as udev passes it to
/// modprobe).
const ALIASES: &[(&str, &str)] = &[
    ("fs-btrfs", "`mount -t btrfs` asks for it"),
    (
        "pci:v00008086d000015B7sv00008086sd00000000bc02sc00i00",
        "an Intel I219-LM Ethernet controller, PCI 8086:15b7",
    ),
];

/// Runs the demo; fails if any file differs from kmod 34.2's.
pub fn run(root: &Path) -> Result<(), String> {
    // 1. Our depmod, release build.
    println!("building: cargo build --release --bin depmod");
    run_cmd(
        Command::new(cargo())
            .args(["build", "--release", "--bin", "depmod"])
            .current_dir(root),
    )?;
    let depmod = root.join("target/release/depmod");

    // 2. The real tree, fetched and unpacked once.
    let deb = debian::deb_path(debian::IMAGE_PACKAGE, debian::DEB_VERSION);
    if !deb.is_file() {
        println!(
            "fetching: apt-get download {}={} (about 70 MB, once)",
            debian::IMAGE_PACKAGE,
            debian::DEB_VERSION
        );
    }
    let cached = debian::module_dir()?;
    println!(
        "tree:     {} {} (sha256 checked), unpacked in {}",
        debian::IMAGE_PACKAGE,
        debian::DEB_VERSION,
        short(root, &cached)
    );

    // 3. The reference: kmod 34.2's outputs for the same tree.
    let golden = reference_outputs(root)?;
    let expected = debian::golden_files()?;

    // 4. A writable copy (modules hard-linked).
    let scratch = root.join("target/demo");
    let tree_root = scratch.join("root");
    debian::remove_tree(&tree_root).map_err(|e| format!("{}: {e}", tree_root.display()))?;
    fs::create_dir_all(&tree_root).map_err(|e| format!("{}: {e}", tree_root.display()))?;
    let dir = debian::fresh_copy(&tree_root)?;
    let inputs = debian::list_files(&dir)?;

    // 5. Run it.
    println!(
        "running:  {} -b {} {KVER}",
        short(root, &depmod),
        short(root, &tree_root)
    );
    let start = Instant::now();
    let out = Command::new(&depmod)
        .arg("-b")
        .arg(&tree_root)
        .arg(KVER)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", depmod.display()))?;
    let elapsed = start.elapsed();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    println!("          {} in {:.3} s", out.status, elapsed.as_secs_f64());
    if !out.status.success() {
        return Err(format!("depmod failed: {}", out.status));
    }

    // 6. What it wrote, against kmod 34.2's.
    let outputs: Vec<String> = debian::list_files(&dir)?
        .into_iter()
        .filter(|n| !inputs.contains(n))
        .collect();
    println!("\nwrote into {}:", short(root, &dir));
    let mut differ = Vec::new();
    for name in &outputs {
        let bytes = fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
        let verdict = if !expected.contains(name) {
            differ.push(format!("{name} (kmod 34.2 writes no such file)"));
            "NOT written by kmod 34.2".to_string()
        } else {
            let want = fs::read(golden.join(name)).map_err(|e| format!("{name}: {e}"))?;
            match debian::first_difference(&want, &bytes) {
                None => "= kmod 34.2".to_string(),
                Some(d) => {
                    differ.push(name.clone());
                    format!("DIFFERS from kmod 34.2: {d}")
                }
            }
        };
        println!("  {name:<26} {:>9} bytes  {verdict}", bytes.len());
    }
    for name in &expected {
        if !outputs.contains(name) {
            println!(
                "  {name:<26} {:>9}        NOT WRITTEN (kmod 34.2 writes it)",
                "-"
            );
            differ.push(format!("{name} (not written)"));
        }
    }

    let dep =
        fs::read_to_string(dir.join("modules.dep")).map_err(|e| format!("modules.dep: {e}"))?;
    let modules = dep.lines().count();
    let edges: usize = dep
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(_, deps)| deps.split_whitespace().count())
        .sum();
    println!("\nmodules: {modules}, dependency edges: {edges}");
    println!("time:    {:.3} s wall", elapsed.as_secs_f64());

    // 7. Read back from our indexes, as libkmod does.
    println!("\nlooked up in our indexes, as modprobe does:");
    show_dependencies(&dir, MODULE)?;
    for (alias, what) in ALIASES {
        show_alias(&dir, alias, what)?;
    }

    // 8. The verdict.
    println!();
    if differ.is_empty() {
        println!(
            "result:  all {} files byte-identical to kmod 34.2's",
            expected.len()
        );
        Ok(())
    } else {
        Err(format!(
            "{} file(s) differ from kmod 34.2's: {}",
            differ.len(),
            differ.join(", ")
        ))
    }
}

/// Every key of an index with its values, in key order.
fn read_index(path: &Path) -> Result<Vec<depmod::index::Entry>, String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Reader::new(&bytes)
        .and_then(|r| r.entries())
        .map_err(|e| format!("{}: {e:?}", path.display()))
}

/// A module's name from its path, as libkmod derives it (`kernel/fs/btrfs/btrfs.ko.xz`
/// -> `btrfs`, dashes -> underscores).
fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split_once(".ko").map_or(base, |(s, _)| s);
    stem.replace('-', "_")
}

/// `name`'s dependencies read from `modules.dep.bin`, and the order modprobe loads
/// them in: the line holds every module `name` needs, directly or not (depmod
/// resolved the chain), and libkmod reads it into a list in reverse
/// (`kmod_module_parse_depline` prepends), loads that list in order and `name` last.
/// Softdeps (`modules.softdep`) are left out here.
fn show_dependencies(dir: &Path, name: &str) -> Result<(), String> {
    let entries = read_index(&dir.join("modules.dep.bin"))?;
    let value = entries
        .iter()
        .find(|(key, _)| key.as_slice() == name.as_bytes())
        .and_then(|(_, values)| values.first())
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
        .ok_or_else(|| format!("{name} is not in our modules.dep.bin"))?;
    let (path, deps) = value.split_once(':').unwrap_or((&value, ""));
    let deps: Vec<String> = deps.split_whitespace().map(module_name).collect();
    let mut order: Vec<&str> = deps.iter().rev().map(String::as_str).collect();
    order.push(name);
    println!("  modprobe {name}");
    println!("    module {path}     (modules.dep.bin)");
    println!(
        "    needs  {}",
        if deps.is_empty() {
            "nothing".to_string()
        } else {
            deps.join(", ")
        }
    );
    println!("    loads  {}   (softdeps aside)", order.join(" -> "));
    Ok(())
}

/// The modules that serve `alias`, looked up in `modules.alias.bin` as libkmod does:
/// the alias is normalised (dashes to underscores outside `[...]`), then every key
/// that equals it or, holding `*`, `?` or `[`, matches it as an fnmatch(3) pattern.
fn show_alias(dir: &Path, alias: &str, what: &str) -> Result<(), String> {
    let query = depmod::alias::normalize(alias.as_bytes())
        .ok_or_else(|| format!("{alias}: unmatched bracket"))?;
    let mut hits: Vec<(u32, String, String)> = Vec::new();
    for (key, values) in read_index(&dir.join("modules.alias.bin"))? {
        if fnmatch(&key, &query) {
            for (priority, module) in values {
                hits.push((
                    priority,
                    String::from_utf8_lossy(&module).into_owned(),
                    String::from_utf8_lossy(&key).into_owned(),
                ));
            }
        }
    }
    hits.sort();
    println!("  modprobe {alias}");
    println!("    ({what})");
    if hits.is_empty() {
        println!("    -> no module (modules.alias.bin)");
    }
    for (_, module, key) in hits {
        let how = if key.as_bytes() == query.as_slice() {
            format!("key {key}")
        } else {
            format!("pattern {key}")
        };
        println!("    -> {module}     (modules.alias.bin: {how})");
    }
    Ok(())
}

/// fnmatch(3) with no flags: `*` (any run, `/` included), `?`, `[...]` classes with `!`
/// or `^` negation and ranges, and `\` escaping the next character.
fn fnmatch(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, text index).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => class(pattern, p, text[t]),
            Some(b'\\') if p + 1 < pattern.len() => (pattern[p + 1] == text[t]).then_some(p + 2),
            Some(&c) => (c == text[t]).then_some(p + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                t += 1;
            }
            (None, Some((sp, st))) => {
                // Let the last `*` swallow one more character.
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[open] == b'['`: the index after
/// its `]` if it matches, `None` if not. An unterminated `[` is a literal `[`.
fn class(pattern: &[u8], open: usize, c: u8) -> Option<usize> {
    let mut i = open + 1;
    let negate = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let Some(&b) = pattern.get(i) else {
            // No closing bracket: `[` stands for itself.
            return (c == b'[').then_some(open + 1);
        };
        if b == b']' && !first {
            return (matched != negate).then_some(i + 1);
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&e| e != b']') {
            let hi = pattern[i + 2];
            matched |= b <= c && c <= hi;
            i += 3;
        } else {
            matched |= b == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn fnmatch_as_libc() {
        let yes = |p: &str, t: &str| assert!(fnmatch(p.as_bytes(), t.as_bytes()), "{p} {t}");
        let no = |p: &str, t: &str| assert!(!fnmatch(p.as_bytes(), t.as_bytes()), "{p} {t}");
        yes("fs_btrfs", "fs_btrfs");
        no("fs_btrfs", "fs_btrfsx");
        yes(
            "pci:v00008086d000015B7sv*sd*bc*sc*i*",
            "pci:v00008086d000015B7sv00008086sd00000000bc02sc00i00",
        );
        no(
            "pci:v00008086d000015B8sv*sd*bc*sc*i*",
            "pci:v00008086d000015B7sv00008086sd00000000bc02sc00i00",
        );
        yes("a*b*c", "aXbYbZc");
        no("a*b*c", "aXbYbZ");
        yes("*", "");
        yes("a?c", "abc");
        no("a?c", "ac");
        yes(
            "usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*",
            "usb:v1234p5678d0100dc00dsc00dp00ic08isc06ip50in00",
        );
        yes("x[0-9A-F]y", "xBy");
        no("x[0-9A-F]y", "xby");
        yes("x[!0-9]y", "xay");
        no("x[!0-9]y", "x5y");
        yes("x[]]y", "x]y");
        yes("x[y", "x[y");
        yes("a\\*b", "a*b");
        no("a\\*b", "aXb");
        yes("*/x", "a/b/x");
    }
}
