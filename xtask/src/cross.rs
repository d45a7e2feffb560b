//! `cargo xtask cross [ARCH…]`: our depmod, running on this x86_64 host, over the
//! real Debian 12 module trees of the other architectures Debian ships — the
//! cross-built root filesystem case (`depmod -b $ROOTFS $KVER`).
//!
//! For each architecture it fetches the kernel package (private apt state,
//! `util/apt.rs`), then runs kmod 34.2 (`cargo xtask oracle`) and ours on the same
//! unpacked root, twice each: `depmod -b ROOT KVER` and
//! `depmod -b ROOT -e -F ROOT/boot/System.map-KVER KVER`. It fails unless both
//! write the same set of files, byte for byte, and print the same stdout, stderr and
//! exit status. Both get an empty `-C` directory, so the host's depmod.d is not read.
//!
//! `--ours PATH` runs that binary instead of the release build (`cargo xtask test`
//! gives it the static dist binary, which is what a cross build would run). A binary
//! built for another architecture than the host's (`target/dist/depmod-armv7`) runs
//! through Debian's qemu-user, as it would in a foreign-architecture chroot; its
//! system calls are logged (`-strace`) and checked for the one qemu-user gets wrong
//! ([`check_qemu_log`]). Every depmod run is killed after [`TIMEOUT`]: a process
//! spinning under qemu-user ignores SIGTERM.
//!
//! `--matrix [BIN…]` ([`matrix`]): every host over every tree, the dist binaries
//! by default.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::apt::Apt;
use crate::util::arch::{Build, ALL};
use crate::util::{cargo, debian, ensure_packages, oracle, run, variants};

/// A Debian architecture and the kernel flavour taken from it.
struct Target {
    /// Debian's architecture name.
    arch: &'static str,
    /// The kernel package's flavour suffix at the pinned ABI.
    flavour: &'static str,
    /// The metapackage whose dependency is taken when the pinned ABI is gone.
    meta: &'static str,
}

/// The pinned kernel ABI (the same as the amd64 golden tree and the images).
const ABI: &str = "6.1.0-56";

/// Every architecture of Debian 12 but amd64 (which `tests/golden.rs` covers):
/// ELF64 and ELF32, little and big endian (s390x).
const TARGETS: &[Target] = &[
    Target {
        arch: "arm64",
        flavour: "arm64-unsigned",
        meta: "linux-image-arm64",
    },
    Target {
        arch: "armhf",
        flavour: "armmp",
        meta: "linux-image-armmp",
    },
    Target {
        arch: "i386",
        flavour: "686-unsigned",
        meta: "linux-image-686",
    },
    Target {
        arch: "ppc64el",
        flavour: "powerpc64le",
        meta: "linux-image-powerpc64le",
    },
    Target {
        arch: "s390x",
        flavour: "s390x",
        meta: "linux-image-s390x",
    },
    Target {
        arch: "mips64el",
        flavour: "5kc-malta",
        meta: "linux-image-5kc-malta",
    },
    Target {
        arch: "mipsel",
        flavour: "4kc-malta",
        meta: "linux-image-4kc-malta",
    },
];

/// `cargo xtask cross [--ours PATH] [ARCH…]` or `cross --matrix [BIN…]`.
pub fn run_cli(root: &Path, args: &[String]) -> Result<(), String> {
    if args.first().map(String::as_str) == Some("--matrix") {
        let hosts: Vec<PathBuf> = if args.len() > 1 {
            args[1..].iter().map(PathBuf::from).collect()
        } else {
            ALL.iter()
                .map(|a| {
                    Build {
                        arch: *a,
                        tiny: false,
                    }
                    .output(root)
                })
                .collect()
        };
        return matrix(root, &hosts);
    }
    let mut ours = None;
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--ours" {
            let p = it.next().ok_or("--ours needs a path")?;
            ours = Some(PathBuf::from(p));
        } else {
            names.push(a.clone());
        }
    }
    let args = names;
    let targets: Vec<&Target> = if args.is_empty() {
        TARGETS.iter().collect()
    } else {
        args.iter()
            .map(|a| {
                TARGETS.iter().find(|t| t.arch == a).ok_or_else(|| {
                    let all: Vec<&str> = TARGETS.iter().map(|t| t.arch).collect();
                    format!("unknown architecture {a} ({})", all.join(", "))
                })
            })
            .collect::<Result<_, _>>()?
    };
    let ours = match ours {
        Some(p) => fs::canonicalize(&p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => {
            run(Command::new(cargo())
                .args(["build", "--release", "--bin", "depmod"])
                .current_dir(root))?;
            root.join("target/release/depmod")
        }
    };
    let emulator = qemu_user_for(&ours)?;
    oracle::run(root)?;
    let kmod = Runner {
        program: oracle::depmod(root),
        qemu: None,
    };
    let ours = Runner {
        program: ours,
        qemu: emulator.map(|qemu| (qemu, root.join("target/cross/qemu-strace.log"))),
    };
    let config = root.join("target/cross/empty-depmod.d");
    fs::create_dir_all(&config).map_err(|e| e.to_string())?;

    let mut rows = Vec::new();
    for t in targets {
        let (package, unpacked, kver) = fetch_tree(root, t)?;
        let system_map = unpacked.join("boot").join(format!("System.map-{kver}"));
        let elf = elf_kind(&unpacked.join("lib/modules").join(&kver))?;
        let count = count_modules(&unpacked.join("lib/modules").join(&kver));
        let mut timing = Vec::new();
        for symbols in [false, true] {
            let mut args: Vec<String> = vec!["-C".into(), path_str(&config)];
            args.push("-b".into());
            args.push(path_str(&unpacked));
            if symbols {
                args.extend(["-e".into(), "-F".into(), path_str(&system_map)]);
            }
            args.push(kver.clone());
            let moddir = unpacked.join("lib/modules").join(&kver);
            let (k_out, k_files, k_time) = run_depmod(&kmod, &args, &moddir)?;
            let (o_out, o_files, o_time) = run_depmod(&ours, &args, &moddir)?;
            let label = format!(
                "{} ({package}){}",
                t.arch,
                if symbols { " -e -F" } else { "" }
            );
            compare(&label, &k_out, &k_files, &o_out, &o_files)?;
            timing.push((o_time, k_time, o_files.len()));
        }
        rows.push((t.arch, elf, kver, count, timing));
    }
    let how = match &ours.qemu {
        Some((qemu, _)) => format!("under {qemu}"),
        None => format!("{} host", std::env::consts::ARCH),
    };
    println!("\ncross: our depmod ({how}) against kmod 34.2 on Debian 12 trees");
    println!(
        "{:9} {:22} {:24} {:>7} {:>6} {:>16} {:>16}",
        "arch", "modules", "kernel", "count", "files", "ours/kmod", "-e -F ours/kmod"
    );
    for (arch, elf, kver, count, timing) in rows {
        let t = |i: usize| {
            let (o, k, _): (f64, f64, usize) = timing[i];
            format!("{o:.2}s/{k:.2}s")
        };
        println!(
            "{arch:9} {elf:22} {kver:24} {count:>7} {:>6} {:>16} {:>16}",
            timing[0].2,
            t(0),
            t(1)
        );
    }
    println!("every file, stdout, stderr and exit status identical");
    Ok(())
}

/// The kernel package of `t`, unpacked: (package, root, kernel version).
fn fetch_tree(root: &Path, t: &Target) -> Result<(String, PathBuf, String), String> {
    let apt = Apt::new(root, t.arch)?;
    let pinned = format!("linux-image-{ABI}-{}", t.flavour);
    let package = apt.pick(&[&pinned], t.meta)?;
    let unpacked = apt.fetch(&[&package])?.remove(0);
    let kver = only_kernel_version(&unpacked)?;
    Ok((package, unpacked, kver))
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// The single `lib/modules/<kver>` of an unpacked kernel package.
fn only_kernel_version(unpacked: &Path) -> Result<String, String> {
    let dir = unpacked.join("lib/modules");
    let mut found: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        _ => Err(format!(
            "{}: expected one kernel, found {found:?}",
            dir.display()
        )),
    }
}

fn module_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            module_files(&p, out);
        } else if p.to_string_lossy().ends_with(".ko") {
            out.push(p);
        }
    }
}

fn count_modules(moddir: &Path) -> usize {
    let mut v = Vec::new();
    module_files(moddir, &mut v);
    v.len()
}

/// "ELF64 big-endian S390" for the tree's first module, read from its header.
fn elf_kind(moddir: &Path) -> Result<String, String> {
    let mut v = Vec::new();
    module_files(moddir, &mut v);
    v.sort();
    let first = v.first().ok_or(format!("{}: no .ko", moddir.display()))?;
    let head = fs::read(first).map_err(|e| e.to_string())?;
    let (Some(&class), Some(&data), Some(m)) = (head.get(4), head.get(5), head.get(18..20)) else {
        return Err(format!("{}: too short", first.display()));
    };
    let machine = if data == 2 {
        u16::from_be_bytes([m[0], m[1]])
    } else {
        u16::from_le_bytes([m[0], m[1]])
    };
    let name = match machine {
        3 => "i386",
        8 => "MIPS",
        21 => "PPC64",
        22 => "S390",
        40 => "ARM",
        62 => "x86-64",
        183 => "AArch64",
        _ => "?",
    };
    Ok(format!(
        "ELF{} {} {name}",
        if class == 2 { 64 } else { 32 },
        if data == 2 { "BE" } else { "LE" }
    ))
}

/// What one run wrote: file name → bytes.
type Files = BTreeMap<String, Vec<u8>>;

/// The `modules.*` files depmod writes (the package ships only kbuild's inputs).
fn is_output(name: &str) -> bool {
    name.starts_with("modules.")
        && !matches!(
            name,
            "modules.order" | "modules.builtin" | "modules.builtin.modinfo"
        )
}

fn remove_outputs(moddir: &Path) -> Result<(), String> {
    for e in fs::read_dir(moddir).map_err(|e| e.to_string())?.flatten() {
        if is_output(&e.file_name().to_string_lossy()) {
            fs::remove_file(e.path()).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// How long one depmod run may take. The slowest, ours under qemu-user on the
/// largest tree, takes about a second; kmod natively half that.
const TIMEOUT: Duration = Duration::from_secs(120);

/// A depmod to run: natively, or through qemu-user (emulator, `-strace` log file).
struct Runner {
    program: PathBuf,
    qemu: Option<(&'static str, PathBuf)>,
}

impl Runner {
    fn command(&self, args: &[String]) -> Command {
        let mut cmd = match &self.qemu {
            None => Command::new(&self.program),
            Some((qemu, log)) => {
                let mut c = Command::new(qemu);
                c.arg("-strace").arg("-D").arg(log).arg(&self.program);
                c
            }
        };
        cmd.args(args);
        cmd
    }
}

/// The qemu-user emulator `bin` needs on this host, if any (installed when missing).
fn qemu_user_for(bin: &Path) -> Result<Option<&'static str>, String> {
    let head = fs::read(bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let (Some(b"\x7fELF"), Some(&data), Some(m)) = (head.get(..4), head.get(5), head.get(18..20))
    else {
        return Err(format!("{}: not an ELF executable", bin.display()));
    };
    let machine = if data == 2 {
        u16::from_be_bytes([m[0], m[1]])
    } else {
        u16::from_le_bytes([m[0], m[1]])
    };
    let host = match std::env::consts::ARCH {
        "x86_64" => 62,
        "aarch64" => 183,
        "arm" => 40,
        "riscv64" => 243,
        "s390x" => 22,
        _ => 0,
    };
    if machine == host {
        return Ok(None);
    }
    let qemu = match machine {
        40 => "qemu-arm-static",
        183 => "qemu-aarch64-static",
        62 => "qemu-x86_64-static",
        243 => "qemu-riscv64-static",
        22 => "qemu-s390x-static",
        _ => {
            return Err(format!(
                "{}: ELF machine {machine}, no qemu-user for it here",
                bin.display()
            ))
        }
    };
    ensure_packages(&[("qemu-user-static", "/usr/bin/qemu-arm-static")])?;
    Ok(Some(qemu))
}

/// Fails if ours, under qemu-user, shrank a mapping in place (`mremap` without
/// `MREMAP_MAYMOVE` to a smaller size). qemu-user emulates that wrongly for 32-bit
/// guests on 64-bit hosts (Debian 12 has 7.2; the fix was reviewed upstream in
/// October 2025): it takes away the pages after the mapping's *old* end instead of
/// its tail, so whatever was mapped there (a heap segment, a thread stack) faults.
/// The armv7 binary died with SIGSEGV or spun forever on that while dlmalloc ran on
/// its own page source; our allocator (src/main.rs, `heap`) never does it, and this
/// keeps it so whatever the address layout of a run (on which the crash depended).
fn check_qemu_log(log: &Path) -> Result<(), String> {
    let text = fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    for line in text.lines() {
        let Some(at) = line.find(" mremap(") else {
            continue;
        };
        let args: Vec<u64> = line[at + " mremap(".len()..]
            .split([',', ')'])
            .take(4)
            .map(|a| {
                let a = a.trim();
                match a.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16).unwrap_or(0),
                    None => a.parse().unwrap_or(0),
                }
            })
            .collect();
        if let [_, old, new, flags] = args[..] {
            const MREMAP_MAYMOVE: u64 = 1;
            if new < old && flags & MREMAP_MAYMOVE == 0 {
                return Err(format!(
                    "ours shrank a mapping in place under qemu-user, which corrupts \
                     the neighbouring mapping there: {}",
                    line.trim()
                ));
            }
        }
    }
    Ok(())
}

/// Runs a command to completion with its output captured, killing it (SIGKILL)
/// after [`TIMEOUT`].
fn output_with_timeout(mut cmd: Command) -> Result<Output, String> {
    let name = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{name}: {e}"))?;
    fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("{name}: {e}"))? {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{name}: no result after {TIMEOUT:?}, killed"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Runs one depmod on a clean module directory; returns its output, the files it
/// wrote (name → bytes) and its wall time. The outputs are removed again after.
fn run_depmod(
    runner: &Runner,
    args: &[String],
    moddir: &Path,
) -> Result<(Output, Files, f64), String> {
    remove_outputs(moddir)?;
    let start = Instant::now();
    let out = output_with_timeout(runner.command(args))
        .map_err(|e| format!("{}: {e}", runner.program.display()))?;
    let took = start.elapsed().as_secs_f64();
    if let Some((_, log)) = &runner.qemu {
        check_qemu_log(log)?;
    }
    let mut files = BTreeMap::new();
    for e in fs::read_dir(moddir).map_err(|e| e.to_string())?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if is_output(&name) {
            files.insert(name, fs::read(e.path()).map_err(|e| e.to_string())?);
        }
    }
    remove_outputs(moddir)?;
    Ok((out, files, took))
}

fn compare(
    label: &str,
    kmod: &Output,
    kmod_files: &Files,
    ours: &Output,
    our_files: &Files,
) -> Result<(), String> {
    let mut diffs = Vec::new();
    if kmod.status.code() != ours.status.code() {
        diffs.push(format!(
            "exit status: kmod {:?}, ours {:?}",
            kmod.status.code(),
            ours.status.code()
        ));
    }
    for (what, k, o) in [
        ("stdout", &kmod.stdout, &ours.stdout),
        ("stderr", &kmod.stderr, &ours.stderr),
    ] {
        if k != o {
            diffs.push(format!(
                "{what} differs:\n--- kmod 34.2\n{}\n--- ours\n{}",
                head(k),
                head(o)
            ));
        }
    }
    let names: BTreeSet<&String> = kmod_files.keys().chain(our_files.keys()).collect();
    for name in names {
        match (kmod_files.get(name), our_files.get(name)) {
            (Some(k), Some(o)) if k == o => {}
            (Some(k), Some(o)) => diffs.push(format!(
                "{name} differs ({} bytes from kmod, {} from ours)",
                k.len(),
                o.len()
            )),
            (Some(_), None) => diffs.push(format!("{name}: kmod wrote it, ours did not")),
            (None, _) => diffs.push(format!("{name}: ours wrote it, kmod did not")),
        }
    }
    if kmod_files.is_empty() {
        diffs.push("kmod wrote nothing".into());
    }
    if diffs.is_empty() {
        eprintln!(
            "xtask: cross {label}: {} files identical to kmod 34.2",
            our_files.len()
        );
        Ok(())
    } else {
        Err(format!("cross {label}:\n{}", diffs.join("\n")))
    }
}

/// The first lines of a process's output, for a failure message.
fn head(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().take(20).collect();
    lines.join("\n")
}

/// One column of the host × tree matrix: a tree, with and without `-e -F`.
struct Case {
    /// Column name: the Debian architecture, or gz/xz/zst for the amd64 copies.
    name: String,
    base: PathBuf,
    kver: String,
    /// `-e -F` this (None: plain runs only, as for the compressed copies).
    system_map: Option<PathBuf>,
    /// The gz copy: kmod 34.2 (Debian's, built without zlib) cannot read it, so
    /// ours is held to kmod's outputs on the plain tree, module paths suffixed.
    gz_of: Option<PathBuf>,
}

/// One host's line of the matrix.
struct HostRow {
    name: String,
    qemu: Option<&'static str>,
    /// Per case: every mode identical to kmod 34.2's.
    cells: Vec<bool>,
    took: Duration,
    problems: Vec<String>,
}

/// kmod 34.2's result for one case and mode.
struct Expected {
    out: Output,
    files: Files,
}

/// `cargo xtask cross --matrix [BIN…]`: every host over every tree. Each binary
/// (default: every `cargo xtask dist` binary) runs on its own architecture —
/// natively or under qemu-user, with its system calls checked — over the real
/// Debian 12 trees of every architecture (plain and `-e -F System.map`) and the
/// amd64 tree's gz, xz and zst copies; every file, stdout, stderr and exit status
/// must equal kmod 34.2's. Whatever differs between hosts on the same tree is
/// host-dependent code (byte order, `usize` width, `stat`/`dirent` layouts,
/// atomics, threads). Outputs go to a fresh `-o` directory, so the shared cached
/// trees are only read. kmod runs once per tree; prints a host × tree table.
pub fn matrix(root: &Path, hosts: &[PathBuf]) -> Result<(), String> {
    let start = Instant::now();
    oracle::run(root)?;
    let kmod = Runner {
        program: oracle::depmod(root),
        qemu: None,
    };
    let config = root.join("target/cross/empty-depmod.d");
    fs::create_dir_all(&config).map_err(|e| e.to_string())?;
    let work = root.join("target/cross/matrix");

    // The trees: amd64 (the golden tree), every other architecture's, the copies.
    let amd64 = debian::image_root()?;
    let mut cases = vec![Case {
        name: "amd64".into(),
        base: amd64.clone(),
        kver: debian::KVER.into(),
        system_map: Some(amd64.join(format!("boot/System.map-{}", debian::KVER))),
        gz_of: None,
    }];
    for t in TARGETS {
        let (_, base, kver) = fetch_tree(root, t)?;
        cases.push(Case {
            name: t.arch.into(),
            system_map: Some(base.join("boot").join(format!("System.map-{kver}"))),
            base,
            kver,
            gz_of: None,
        });
    }
    for k in variants::Compression::ALL {
        cases.push(Case {
            name: k.name().into(),
            base: variants::compressed_tree(&amd64, k),
            kver: debian::KVER.into(),
            system_map: None,
            gz_of: (k == variants::Compression::Gz).then(|| amd64.clone()),
        });
    }

    // What kmod 34.2 writes and prints, once per case and mode.
    let args = |c: &Case, base: &Path, symbols: bool, out: &Path| -> Vec<String> {
        let mut a = vec!["-C".into(), path_str(&config), "-b".into(), path_str(base)];
        a.extend(["-o".into(), path_str(out)]);
        if symbols {
            let map = c.system_map.as_ref().expect("only cases with a map");
            a.extend(["-e".into(), "-F".into(), path_str(map)]);
        }
        a.push(c.kver.clone());
        a
    };
    let modes = |c: &Case| -> Vec<bool> {
        if c.system_map.is_some() {
            vec![false, true]
        } else {
            vec![false]
        }
    };
    let mut expected: BTreeMap<(String, bool), Expected> = BTreeMap::new();
    for c in &cases {
        for symbols in modes(c) {
            let out = work.join("kmod");
            let base = c.gz_of.as_deref().unwrap_or(&c.base);
            let (o, files) = run_into(&kmod, &args(c, base, symbols, &out), &out, &c.kver)?;
            if files.is_empty() {
                return Err(format!("kmod 34.2 wrote nothing on the {} tree", c.name));
            }
            expected.insert((c.name.clone(), symbols), Expected { out: o, files });
        }
    }

    // Each host over each case; two hosts at a time (under qemu-user a depmod
    // keeps about one core busy, and the xz copy takes it half a minute).
    let host_run = |bin: &PathBuf| -> Result<HostRow, String> {
        let program = fs::canonicalize(bin).map_err(|e| format!("{}: {e}", bin.display()))?;
        let name = program
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .trim_start_matches("depmod-")
                    .to_string()
            })
            .unwrap_or_default();
        // Under the name `depmod`, which the messages carry (argv[0]'s basename).
        let dir = work.join("hosts").join(&name);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let shipped = dir.join("depmod");
        fs::copy(&program, &shipped).map_err(|e| format!("{}: {e}", shipped.display()))?;
        let emulator = qemu_user_for(&shipped)?;
        let ours = Runner {
            program: shipped,
            qemu: emulator.map(|q| (q, dir.join("qemu-strace.log"))),
        };
        let host_start = Instant::now();
        let mut cells = Vec::new();
        let mut problems = Vec::new();
        for c in &cases {
            let mut ok = true;
            for symbols in modes(c) {
                let out = dir.join("out");
                let label = format!(
                    "{name} on {}{}",
                    c.name,
                    if symbols { " -e -F" } else { "" }
                );
                let result = run_into(&ours, &args(c, &c.base, symbols, &out), &out, &c.kver)
                    .and_then(|(o, files)| {
                        let want = &expected[&(c.name.clone(), symbols)];
                        match &c.gz_of {
                            None => compare(&label, &want.out, &want.files, &o, &files),
                            Some(plain) => compare_gz(&label, want, plain, &c.base, &o, &files),
                        }
                    });
                if let Err(e) = result {
                    ok = false;
                    problems.push(e);
                }
            }
            cells.push(ok);
        }
        Ok(HostRow {
            name,
            qemu: ours.qemu.map(|(q, _)| q),
            cells,
            took: host_start.elapsed(),
            problems,
        })
    };
    let queue = std::sync::Mutex::new((0..hosts.len()).rev().collect::<Vec<usize>>());
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let Some(i) = queue.lock().unwrap().pop() else {
                    break;
                };
                let row = host_run(&hosts[i]);
                done.lock().unwrap().push((i, row));
            });
        }
    });
    let mut done = done.into_inner().unwrap();
    done.sort_by_key(|(i, _)| *i);
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (_, row) in done {
        let row = row?;
        problems.extend(row.problems.iter().cloned());
        rows.push(row);
    }

    println!("\ncross --matrix: each host's depmod over each tree, against kmod 34.2");
    println!("(plain and -e -F System.map on the architectures' trees; gz/xz/zst: the amd64 tree's copies)");
    print!("{:9} {:20}", "host", "run");
    for c in &cases {
        print!(" {:>8}", c.name);
    }
    println!(" {:>7}", "time");
    for row in &rows {
        print!("{:9} {:20}", row.name, row.qemu.unwrap_or("native"));
        for ok in &row.cells {
            print!(" {:>8}", if *ok { "ok" } else { "DIFF" });
        }
        println!(" {:>6.1}s", row.took.as_secs_f64());
    }
    let runs: usize = cases.iter().map(|c| modes(c).len()).sum();
    println!(
        "{} hosts x {runs} runs, {:.0} s in all",
        rows.len(),
        start.elapsed().as_secs_f64()
    );
    if problems.is_empty() {
        println!("every file, stdout, stderr and exit status identical to kmod 34.2's");
        Ok(())
    } else {
        Err(format!("cross --matrix:\n{}", problems.join("\n")))
    }
}

/// Runs a depmod whose arguments send its outputs to `out` (`-o`), from scratch;
/// returns its output and the files it wrote under `out/lib/modules/KVER`.
fn run_into(
    runner: &Runner,
    args: &[String],
    out: &Path,
    kver: &str,
) -> Result<(Output, Files), String> {
    let _ = fs::remove_dir_all(out);
    fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let result = output_with_timeout(runner.command(args))
        .map_err(|e| format!("{}: {e}", runner.program.display()))?;
    if let Some((_, log)) = &runner.qemu {
        check_qemu_log(log)?;
    }
    let dir = out.join("lib/modules").join(kver);
    let mut files = BTreeMap::new();
    for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        files.insert(name, fs::read(e.path()).map_err(|e| e.to_string())?);
    }
    let _ = fs::remove_dir_all(out);
    Ok((result, files))
}

/// Ours on the gz copy against kmod on the plain tree: the same files, except that
/// module paths in modules.dep carry `.gz` and modules.dep.bin holds the same keys
/// and (suffixed) values; the same exit status and messages, paths aside.
fn compare_gz(
    label: &str,
    kmod: &Expected,
    plain: &Path,
    gz: &Path,
    ours: &Output,
    our_files: &Files,
) -> Result<(), String> {
    let kind = variants::Compression::Gz;
    let retarget = |b: &[u8]| {
        let text = String::from_utf8_lossy(b).replace(&path_str(plain), &path_str(gz));
        variants::with_suffix(text.as_bytes(), kind)
    };
    let want_out = Output {
        status: kmod.out.status,
        stdout: retarget(&kmod.out.stdout),
        stderr: retarget(&kmod.out.stderr),
    };
    let mut want = kmod.files.clone();
    if let Some(dep) = want.get_mut("modules.dep") {
        *dep = variants::with_suffix(dep, kind);
    }
    // modules.dep.bin by content: kmod never wrote it for this tree.
    let entries = |b: &[u8]| {
        depmod::index::Reader::new(b)
            .and_then(|r| r.entries())
            .map_err(|e| format!("{label}: modules.dep.bin: {e:?}"))
    };
    let (Some(k), Some(o)) = (
        want.remove("modules.dep.bin"),
        our_files.get("modules.dep.bin"),
    ) else {
        return Err(format!("{label}: modules.dep.bin missing"));
    };
    let k: Vec<_> = entries(&k)?
        .into_iter()
        .map(|(key, vals)| {
            let vals: Vec<_> = vals
                .into_iter()
                .map(|(p, v)| (p, variants::with_suffix(&v, kind)))
                .collect();
            (key, vals)
        })
        .collect();
    if entries(o)? != k {
        return Err(format!("{label}: modules.dep.bin differs in content"));
    }
    let mut rest = our_files.clone();
    rest.remove("modules.dep.bin");
    compare(label, &want_out, &want, ours, &rest)
}
