//! `cargo xtask dist [--tiny]`: static, stripped musl binaries of `depmod`.
//!
//! Every one is the `no_std` depmod (built without feature `std`, see src/main.rs:
//! core, alloc and libc, no std panic or backtrace machinery):
//!
//! - x86_64 and aarch64 on the stable toolchain (`rustup target add`), linked by
//!   `rust-lld` against the musl that ships with Rust (non-PIE static executables);
//! - armv7 (hard float), riscv64 (rv64gc) and s390x (the big-endian host) through
//!   nightly `-Zbuild-std=core,alloc`, since no musl core for them is distributed
//!   here: musl's `crt1.o`/`libc.a` come from Debian's `musl-dev` of the
//!   architecture (armhf and s390x from Debian 12, riscv64 from Debian 13: riscv64
//!   is no release architecture of Debian 12); riscv64 and s390x are not static by
//!   default, hence `+crt-static`;
//! - `--tiny`: x86_64 on nightly with `-Zbuild-std`, `optimize_for_size` and
//!   `-Cpanic=immediate-abort` (no panic messages, no unwind tables), musl's own
//!   allocator and without the decompressors (like kmod built
//!   `--without-zlib --without-xz --without-zstd`).
//!
//! All use the `dist` profile (the release profile at `opt-level = "s"`; "z" for
//! `--tiny`). The C parts of the decompressors (liblzma, libzstd) are
//! cross-compiled with clang against Debian's musl headers of the target
//! architecture; liblzma is built through `liblzma-sys` in a first step (that
//! crate links std, so the binary cannot depend on it) and linked by build.rs. The binaries land in
//! `target/dist/`; each one's size is printed and checked against its budget, and
//! each is checked to be static and run once (`-V`, through qemu-user for foreign
//! architectures when it is installed).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::arch::{Arch, Build, ALL};
use crate::util::packages::QEMU;
use crate::util::{cargo, ensure_packages, run};

/// Size budget in bytes, if any: 512 KiB for x86_64 on stable, 200 KiB for
/// `--tiny`. The stable one is met because the binary has no `std` (with the
/// precompiled std it was 772 KiB, ~200 of them std's backtrace symbolizer).
fn size_budget(b: Build) -> Option<u64> {
    match (b.arch, b.tiny) {
        (Arch::X86_64, false) => Some(512 * 1024),
        (Arch::X86_64, true) => Some(200 * 1024),
        _ => None,
    }
}

pub fn run_cli(root: &Path, args: &[String]) -> Result<(), String> {
    let mut tiny = false;
    let mut arches = Vec::new();
    for a in args {
        match a.as_str() {
            "--tiny" => tiny = true,
            other => arches.push(Arch::parse(other)?),
        }
    }
    let builds: Vec<Build> = if tiny {
        vec![Build {
            arch: Arch::X86_64,
            tiny: true,
        }]
    } else if arches.is_empty() {
        ALL.into_iter()
            .map(|arch| Build { arch, tiny: false })
            .collect()
    } else {
        arches
            .into_iter()
            .map(|arch| Build { arch, tiny: false })
            .collect()
    };
    let mut report = Vec::new();
    for b in &builds {
        let path = build(root, *b)?;
        report.push((*b, path));
    }
    println!(
        "\ndist: static musl binaries of depmod ({} profile)",
        PROFILE
    );
    let mut over = Vec::new();
    for (b, path) in &report {
        let size = fs::metadata(path).map_err(|e| e.to_string())?.len();
        let toolchain = if b.nightly() { "nightly" } else { "stable" };
        let budget = match size_budget(*b) {
            Some(max) if size > max => {
                over.push(format!("{} is {size} bytes, budget {max}", b.label()));
                format!("budget {} KiB: OVER", max / 1024)
            }
            Some(max) => format!("budget {} KiB: ok", max / 1024),
            None => String::new(),
        };
        println!(
            "  {:<13} {:<8} {:>8} bytes {:>7.1} KiB  {}  {}",
            b.label(),
            toolchain,
            size,
            size as f64 / 1024.0,
            path.strip_prefix(root).unwrap_or(path).display(),
            budget
        );
    }
    if over.is_empty() {
        Ok(())
    } else {
        Err(format!("over budget: {}", over.join("; ")))
    }
}

/// `cargo xtask test`'s part before the QEMU boots and `cross --matrix` (which
/// `main.rs` runs next): the Rust targets, the no_std build of the core for a
/// bare-metal target, `dist` and `dist --tiny` (sizes printed, budgets enforced),
/// and the integration tests once more against the static x86_64 binary (the
/// `no_std` build: its own entry point, argument handling, allocator).
pub fn ci(root: &Path) -> Result<(), String> {
    ensure_packages(QEMU)?;
    ensure_toolchains(true)?;
    run(Command::new(cargo_stable())
        .args(["build", "-p", "depmod", "--lib", "--no-default-features"])
        .args(["--target", "thumbv7em-none-eabihf"])
        .current_dir(root))?;
    run_cli(root, &[])?;
    run_cli(root, &["--tiny".to_string()])?;
    // Under the name `depmod`, which the messages carry (argv[0]'s basename).
    let shipped = root.join("target/dist/under-test/depmod");
    let built = Build {
        arch: Arch::X86_64,
        tiny: false,
    }
    .output(root);
    fs::create_dir_all(root.join("target/dist/under-test")).map_err(|e| e.to_string())?;
    fs::copy(&built, &shipped).map_err(|e| format!("{}: {e}", shipped.display()))?;
    eprintln!("xtask: the integration tests against {}", shipped.display());
    run(Command::new(cargo_stable())
        .args(["test", "--release", "-p", "depmod", "--test", "*"])
        .env("DEPMOD_UNDER_TEST", &shipped)
        .current_dir(root))?;
    Ok(())
}

const PROFILE: &str = "dist";

/// cargo on the stable toolchain (the nightly builds go through `rustup run nightly`).
fn cargo_stable() -> String {
    cargo()
}

/// Rust targets and components the builds need (machines here set
/// `RUSTUP_AUTO_INSTALL=0`, so nothing is installed implicitly).
fn ensure_toolchains(nightly: bool) -> Result<(), String> {
    run(Command::new("rustup").args([
        "target",
        "add",
        "x86_64-unknown-linux-musl",
        "aarch64-unknown-linux-musl",
        "thumbv7em-none-eabihf",
    ]))?;
    if nightly {
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
        run(Command::new("rustup").args([
            "target",
            "add",
            "x86_64-unknown-linux-musl",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

/// Debian's musl-dev for `arch`, unpacked: (include dir, lib dir).
fn musl(root: &Path, arch: Arch) -> Result<(PathBuf, PathBuf), String> {
    let apt = arch.apt(root)?;
    let dir = apt.fetch(&["musl-dev"])?.remove(0);
    let inc = dir.join("usr/include").join(arch.musl_triplet());
    let lib = dir.join("usr/lib").join(arch.musl_triplet());
    if !inc.join("stdlib.h").exists() || !lib.join("libc.a").exists() {
        return Err(format!("musl-dev ({}) lacks headers or libc.a", arch.deb()));
    }
    Ok((inc, lib))
}

fn clang() -> &'static str {
    if Path::new("/usr/bin/clang-14").exists() {
        "clang-14"
    } else {
        "clang"
    }
}

fn archiver() -> &'static str {
    if Path::new("/usr/bin/llvm-ar-14").exists() {
        "llvm-ar-14"
    } else {
        "ar"
    }
}

/// Builds one binary and returns its path (a copy under `target/dist/`).
///
/// The binaries are `no_std` (no feature `std`; see src/main.rs): the precompiled
/// std would bring its backtrace symbolizer. `liblzma-sys` links std, so the xz
/// decoder's `liblzma.a` is built through it for the target in a first step and
/// linked by our build.rs (feature `xz-prebuilt`).
pub fn build(root: &Path, b: Build) -> Result<PathBuf, String> {
    ensure_packages(&[("clang-14", "/usr/bin/clang-14")])?;
    ensure_toolchains(b.nightly())?;
    let triple = b.arch.triple();
    let (musl_inc, musl_lib) = musl(root, b.arch)?;
    let target_dir = root.join(if b.nightly() {
        "target/dist/nightly"
    } else {
        "target/dist/stable"
    });

    let mut rustflags: Vec<String> = [
        "-Crelocation-model=static",
        "-Clinker=rust-lld",
        "-Clink-arg=--icf=all",
    ]
    .map(String::from)
    .to_vec();
    if b.tiny {
        rustflags.extend(
            [
                "-Zunstable-options",
                "-Cpanic=immediate-abort",
                "-Cforce-unwind-tables=no",
                "-Zlocation-detail=none",
            ]
            .map(String::from),
        );
    } else {
        // `opt-level = "s"` inlines only what is smaller than a call (LLVM's
        // threshold 75 at -Os): the scan's and the index writer's small helpers
        // (`Vec::extend_from_slice`, name reads, comparisons) stayed calls, and
        // the x86_64 binary took 1.14-1.18x the glibc build's time on the plain
        // tree. At 100 it takes 1.05-1.09x for 42 KiB (zstd without its BMI2
        // copies below makes the room); `opt-level = 2` would be 634 KiB.
        rustflags.push("-Cllvm-args=--inline-threshold=100".into());
    }
    if matches!(b.arch, Arch::X86_64) {
        // Our `memcpy` for short copies in front of musl's, and our `memcmp`
        // in place of its byte loop (src/main.rs, `__wrap_memcpy`,
        // `__wrap_memcmp`).
        rustflags.push("-Clink-arg=--wrap=memcpy".into());
        rustflags.push("-Clink-arg=--wrap=memcmp".into());
    }
    if matches!(b.arch, Arch::Riscv64 | Arch::S390x) {
        // Static by default on the other musl targets, not on these two.
        rustflags.push("-Ctarget-feature=+crt-static".into());
    }
    if b.arch.build_std() {
        // No self-contained crt objects for these targets: bring musl's own.
        let crt = |o: &str| musl_lib.join(o).display().to_string();
        rustflags.extend([
            "-Clink-self-contained=no".into(),
            format!("-Zpre-link-args={}", crt("crt1.o")),
            format!("-Zpre-link-args={}", crt("crti.o")),
            format!("-Clink-arg={}", crt("crtn.o")),
            format!("-L{}", musl_lib.display()),
        ]);
    }
    // `cargo build` for the target with the settings both steps share.
    let cargo = |build_std: &str, defines: &str| {
        let mut c = if b.nightly() {
            let mut c = Command::new("rustup");
            c.args(["run", "nightly", "cargo", "build"])
                .arg(format!("-Zbuild-std={build_std}"));
            c
        } else {
            let mut c = Command::new(cargo_stable());
            c.arg("build");
            c
        };
        c.args(["--profile", PROFILE, "--target", triple])
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(root);
        // C sources (liblzma, libzstd): clang for the target, musl's headers only,
        // no unwind tables. libzstd's size switches (`lib/README.md`, "Reducing
        // binary size": one Huffman and one sequence decoder, no BMI2 or assembly
        // variants, no inlining, no error strings) were used while std made the
        // binary too large anyway; without std there is room for the fast decoder:
        // 67 KiB more (x86_64 359 -> 426 KiB), ~22% less CPU time on the zst tree.
        let env_triple = triple.replace('-', "_");
        let cflags = format!(
            "-nostdlibinc -isystem {} -fno-asynchronous-unwind-tables{defines}",
            musl_inc.display()
        );
        c.env(format!("CC_{env_triple}"), clang())
            .env(format!("AR_{env_triple}"), archiver())
            .env(format!("CFLAGS_{env_triple}"), cflags)
            .env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"))
            .env_remove("RUSTFLAGS");
        c
    };

    let mut cmd = cargo("core,alloc", zstd_defines(&b));
    cmd.args(["--bin", "depmod", "--no-default-features", "--features"]);
    if b.tiny {
        cmd.env("CARGO_PROFILE_DIST_OPT_LEVEL", "z")
            .arg("host")
            .arg("-Zbuild-std-features=optimize_for_size");
    } else {
        let liblzma = liblzma(b, cargo("std,panic_abort", liblzma_defines(b.arch)))?;
        cmd.arg("host,gz,zst,xz-prebuilt,dlmalloc")
            .env("DEPMOD_LIBLZMA_DIR", liblzma);
    }
    eprintln!("xtask: building depmod for {}", b.label());
    run(&mut cmd)?;

    let built = target_dir.join(triple).join(PROFILE).join("depmod");
    let out = b.output(root);
    fs::copy(&built, &out).map_err(|e| format!("{}: {e}", built.display()))?;
    check_static(&out)?;
    smoke(b, &out)?;
    Ok(out)
}

/// libzstd for the x86_64 dist binary without its second, BMI2 copy of each
/// Huffman and sequence decoder (chosen at run time): 35 KiB, the room the inlining
/// above takes within the 512 KiB budget, for 1.02 -> 1.07x the glibc build's
/// time on the zst tree.
fn zstd_defines(b: &Build) -> &'static str {
    match (b.arch, b.tiny) {
        (Arch::X86_64, false) => " -DDYNAMIC_BMI2=0",
        _ => "",
    }
}

/// What xz's `configure` would define for the target and `liblzma-sys`'s fixed
/// `config.h` leaves out: fast unaligned access, and on x86_64 the SSE2 match copy
/// (`LZMA_LZ_DECODER_CONFIG` 2 in `lz_decoder.h`). Without them liblzma copies every
/// match with `memcpy`, which musl implements with `rep movsq`, slow for the short
/// copies LZMA makes: 19% of the static binary's CPU time on the xz tree.
fn liblzma_defines(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => " -DTUKLIB_FAST_UNALIGNED_ACCESS -DHAVE_IMMINTRIN_H",
        Arch::Aarch64 => " -DTUKLIB_FAST_UNALIGNED_ACCESS",
        Arch::Armv7 | Arch::Riscv64 | Arch::S390x => "",
    }
}

/// Builds `liblzma-sys` (so its build script compiles xz's C sources for the
/// target) and returns the directory holding `liblzma.a`, which that script names
/// in its `build-script-executed` message.
fn liblzma(b: Build, mut cargo: Command) -> Result<PathBuf, String> {
    eprintln!("xtask: building liblzma for {}", b.label());
    cargo.args([
        "-p",
        "liblzma-sys",
        "--message-format=json-render-diagnostics",
    ]);
    let out = cargo
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo build -p liblzma-sys: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo build -p liblzma-sys: {}", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout
        .lines()
        .filter(|l| l.contains("\"build-script-executed\"") && l.contains("liblzma-sys"))
        .find_map(|l| {
            let at = l.find("\"out_dir\":\"")? + "\"out_dir\":\"".len();
            let len = l.get(at..)?.find('"')?;
            l.get(at..at + len).map(PathBuf::from)
        })
        .ok_or("cargo build -p liblzma-sys: no out_dir in its build-script-executed message")?;
    if !dir.join("liblzma.a").exists() {
        return Err(format!("{}: no liblzma.a", dir.display()));
    }
    Ok(dir)
}

/// Fails unless the ELF file has no interpreter and no dynamic section.
fn check_static(path: &Path) -> Result<(), String> {
    let data = fs::read(path).map_err(|e| e.to_string())?;
    let bad = || format!("{}: not an ELF file", path.display());
    if data.len() < 52 || &data[..4] != b"\x7fELF" || !matches!(data[5], 1 | 2) {
        return Err(bad());
    }
    let wide = data[4] == 2;
    // The file's own byte order (s390x is big-endian).
    let big = data[5] == 2;
    let u16_at = |o: usize| {
        let b = [data[o], data[o + 1]];
        (if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }) as usize
    };
    let u32_at = |o: usize| {
        let b = data[o..o + 4].try_into().unwrap();
        (if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }) as usize
    };
    let u64_at = |o: usize| {
        let b = data[o..o + 8].try_into().unwrap();
        (if big {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        }) as usize
    };
    let (phoff, phentsize, phnum) = if wide {
        (u64_at(32), u16_at(54), u16_at(56))
    } else {
        (u32_at(28), u16_at(42), u16_at(44))
    };
    for i in 0..phnum {
        let p_type = u32_at(phoff + i * phentsize);
        // PT_DYNAMIC = 2, PT_INTERP = 3
        if p_type == 2 || p_type == 3 {
            return Err(format!("{}: not a static executable", path.display()));
        }
    }
    Ok(())
}

/// Runs `depmod -V` (natively, or through qemu-user when it is installed).
fn smoke(b: Build, path: &Path) -> Result<(), String> {
    let mut cmd = match b.arch.qemu_user() {
        None => Command::new(path),
        Some(qemu) => {
            if Command::new(qemu).arg("--version").output().is_err() {
                eprintln!("xtask: {qemu} not installed; {} not run", b.label());
                return Ok(());
            }
            let mut c = Command::new(qemu);
            c.arg(path);
            c
        }
    };
    let out = cmd.arg("-V").output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.starts_with("kmod version 34.2") {
        return Err(format!("{} -V failed: {text}", path.display()));
    }
    Ok(())
}
