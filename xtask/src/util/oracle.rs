//! The kmod 34.2 reference binary (`cargo xtask oracle`, and the first step of every
//! task that compares with kmod 34.2), and its outputs for the real Debian tree.
//!
//! Debian 12's own kmod is version 30. The version we match byte for byte, 34.2, is
//! Debian 13 (trixie)'s. Its binary needs glibc 2.38+, so we fetch trixie's `kmod`,
//! `libkmod2`, `libc6` and the libraries they load, unpack them under
//! `target/oracle/root`, and run `kmod` through trixie's own `ld-linux` with
//! `--argv0 depmod`, so it behaves (and names itself) exactly as an installed depmod.
//! apt's system state is not touched: lists and cache live under `target/oracle/apt`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::apt::private_options;
use super::apt_source::{self, Archive};
use super::debian;
use super::{run as run_cmd, short};

const PACKAGES: &[&str] = &[
    "kmod",
    "libkmod2",
    "libc6",
    "libssl3t64",
    "liblzma5",
    "libzstd1",
    "zlib1g",
];

/// The oracle: a script that runs kmod 34.2 as `depmod` (made by [`run`]).
pub fn depmod(root: &Path) -> PathBuf {
    root.join("target/oracle/depmod-34.2")
}

/// Fetches kmod 34.2 and writes [`depmod()`] unless it is there; prints its path.
pub fn run(root: &Path) -> Result<(), String> {
    let dir = root.join("target/oracle");
    let wrapper = depmod(root);
    if wrapper.exists() {
        println!("{}", wrapper.display());
        return Ok(());
    }
    let apt = dir.join("apt");
    let debs = dir.join("debs");
    let unpacked = dir.join("root");
    for d in [
        &apt.join("lists/partial"),
        &apt.join("cache/archives/partial"),
        &debs,
        &unpacked,
    ] {
        fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let sources = apt.join("sources.list");
    // Trixie from the mirror this machine's apt uses for its own release.
    let mirror = apt_source::mirror(Archive::Main)?;
    fs::write(&sources, format!("deb {mirror} trixie main\n")).map_err(|e| e.to_string())?;
    let opts = private_options(&apt);
    run_cmd(Command::new("apt-get").args(&opts).arg("-q").arg("update"))?;
    run_cmd(
        Command::new("apt-get")
            .args(&opts)
            .arg("-q")
            .arg("download")
            .args(PACKAGES)
            .current_dir(&debs),
    )?;
    for entry in fs::read_dir(&debs).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            run_cmd(Command::new("dpkg").arg("-x").arg(&path).arg(&unpacked))?;
        }
    }
    let lib = unpacked.join("usr/lib/x86_64-linux-gnu");
    let script = format!(
        "#!/bin/sh\n# kmod 34.2 from Debian trixie, run with its own loader (written by cargo xtask oracle)\nexec {lib}/ld-linux-x86-64.so.2 --library-path {lib} --argv0 depmod {kmod} \"$@\"\n",
        lib = lib.display(),
        kmod = unpacked.join("usr/bin/kmod").display()
    );
    fs::write(&wrapper, script).map_err(|e| e.to_string())?;
    run_cmd(Command::new("chmod").arg("755").arg(&wrapper))?;
    let out = Command::new(&wrapper)
        .arg("--version")
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.starts_with("kmod version 34.2") {
        let _ = fs::remove_file(&wrapper);
        return Err(format!("unexpected oracle version: {text}"));
    }
    println!("{}", wrapper.display());
    Ok(())
}

/// kmod 34.2's outputs for the Debian tree (`debian::golden_dir`), fetching the kmod
/// 34.2 oracle first if it is missing. Prints one line saying where they come from.
/// (`demo` and `bench` compare with them.)
pub fn reference_outputs(root: &Path) -> Result<PathBuf, String> {
    if std::env::var_os("DEPMOD_GOLDEN_DIR").is_none() && debian::kmod34_path().is_err() {
        println!("fetching: kmod 34.2 from Debian 13 (cargo xtask oracle, once)");
        run(root)?;
    }
    let cached = debian::golden_cache_dir().is_dir();
    let start = Instant::now();
    let dir = debian::golden_dir()?;
    let how = if cached || std::env::var_os("DEPMOD_GOLDEN_DIR").is_some() {
        String::new()
    } else {
        format!(", generated now in {:.1} s", start.elapsed().as_secs_f64())
    };
    println!(
        "golden:   kmod 34.2's outputs in {}{how}, sha256 checked against {}",
        short(root, &dir),
        short(root, &debian::golden_manifest())
    );
    Ok(dir)
}
