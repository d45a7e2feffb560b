//! The kmod 34.2 reference binary.
//!
//! Debian 12's own kmod is version 30. The version we match byte for byte, 34.2, is
//! Debian 13 (trixie)'s. Its binary needs glibc 2.38+, so we fetch trixie's `kmod`,
//! `libkmod2`, `libc6` and the libraries they load, unpack them under
//! `target/oracle/root`, and run `kmod` through trixie's own `ld-linux` with
//! `--argv0 depmod`, so it behaves (and names itself) exactly as an installed depmod.
//! apt's system state is not touched: lists and cache live under `target/oracle/apt`.

use std::fs;
use std::path::Path;
use std::process::Command;

const PACKAGES: &[&str] = &[
    "kmod",
    "libkmod2",
    "libc6",
    "libssl3t64",
    "liblzma5",
    "libzstd1",
    "zlib1g",
];

pub fn run(root: &Path) -> Result<(), String> {
    let dir = root.join("target/oracle");
    let wrapper = dir.join("depmod-34.2");
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
    let mirror = crate::apt_source::mirror(crate::apt_source::Archive::Main)?;
    fs::write(&sources, format!("deb {mirror} trixie main\n")).map_err(|e| e.to_string())?;
    let opts = [
        format!("-oDir::Etc::sourcelist={}", sources.display()),
        "-oDir::Etc::sourceparts=/dev/null".to_string(),
        format!("-oDir::State::Lists={}", apt.join("lists").display()),
        format!("-oDir::Cache={}", apt.join("cache").display()),
        "-oDir::State::status=/dev/null".to_string(),
        "-oAPT::Sandbox::User=root".to_string(),
    ];
    crate::run(Command::new("apt-get").args(&opts).arg("-q").arg("update"))?;
    crate::run(
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
            crate::run(Command::new("dpkg").arg("-x").arg(&path).arg(&unpacked))?;
        }
    }
    let lib = unpacked.join("usr/lib/x86_64-linux-gnu");
    let script = format!(
        "#!/bin/sh\n# kmod 34.2 from Debian trixie, run with its own loader (written by cargo xtask oracle)\nexec {lib}/ld-linux-x86-64.so.2 --library-path {lib} --argv0 depmod {kmod} \"$@\"\n",
        lib = lib.display(),
        kmod = unpacked.join("usr/bin/kmod").display()
    );
    fs::write(&wrapper, script).map_err(|e| e.to_string())?;
    crate::run(Command::new("chmod").arg("755").arg(&wrapper))?;
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
