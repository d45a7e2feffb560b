//! `cargo xtask demo`: our depmod on a real kernel's modules.
//!
//! Builds `depmod` in release mode, fetches Debian 12's
//! `linux-image-6.1.0-56-amd64-unsigned` once (cached under `target/`, shared with the
//! tests through `tests/common/debian.rs`), copies its module tree to
//! `target/demo/root`, runs `depmod -b target/demo/root 6.1.0-56-amd64` and prints what
//! it wrote: every output file with its size, the number of modules and dependency
//! edges, the wall time, and — when `../shared/golden` is there — whether each file is
//! byte-identical to kmod 34.2's.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

// Also included by `fuzz`, `image` and `bench`: each user gets its own copy.
#[allow(clippy::duplicate_mod)]
#[path = "../../tests/common/debian.rs"]
mod debian;

use debian::KVER;

/// `path` relative to the workspace root when it is inside it, for shorter output.
fn short(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

pub fn run(root: &Path) -> Result<(), String> {
    // 1. Our depmod, release build.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("building: cargo build --release --bin depmod");
    crate::run(
        Command::new(&cargo)
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

    // 3. A writable copy (modules hard-linked).
    let scratch = root.join("target/demo");
    let tree_root = scratch.join("root");
    debian::remove_tree(&tree_root).map_err(|e| format!("{}: {e}", tree_root.display()))?;
    fs::create_dir_all(&tree_root).map_err(|e| format!("{}: {e}", tree_root.display()))?;
    let dir = debian::fresh_copy(&tree_root)?;
    let inputs = debian::list_files(&dir)?;

    // 4. Run it.
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

    // 5. What it wrote.
    let golden = debian::golden_dir();
    let outputs: Vec<String> = debian::list_files(&dir)?
        .into_iter()
        .filter(|n| !inputs.contains(n))
        .collect();
    println!("\nwrote into {}:", short(root, &dir));
    let mut differ = Vec::new();
    for name in &outputs {
        let bytes = fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
        let verdict = match &golden {
            None => String::new(),
            Some(g) => match fs::read(g.join(name)) {
                Err(_) => {
                    differ.push(name.clone());
                    "not in the golden set".to_string()
                }
                Ok(want) => match debian::first_difference(&want, &bytes) {
                    None => "identical to kmod 34.2".to_string(),
                    Some(d) => {
                        differ.push(name.clone());
                        format!("DIFFERS from kmod 34.2: {d}")
                    }
                },
            },
        };
        println!("  {name:<28} {:>9} bytes  {verdict}", bytes.len());
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

    // 6. Against kmod 34.2's outputs, when we have them.
    match golden {
        None => {
            println!("golden:  ../shared/golden not found, comparison skipped");
            Ok(())
        }
        Some(g) => {
            let expected: Vec<String> = debian::list_files(&g)?
                .into_iter()
                .filter(|n| n != "MANIFEST")
                .collect();
            for name in &expected {
                if !outputs.contains(name) {
                    differ.push(format!("{name} (not written)"));
                }
            }
            if differ.is_empty() {
                println!(
                    "golden:  all {} files byte-identical to kmod 34.2's ({})",
                    expected.len(),
                    g.display()
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
    }
}
