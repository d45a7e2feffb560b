//! `cargo xtask fuzz [--time SECS] [--jobs N] [--sanitizer address|none] [TARGET…]`:
//! every fuzz target of `fuzz/` (cargo-fuzz, libFuzzer), each for SECS seconds
//! (default 30), N at a time (default: the number of cores).
//!
//! The sanitizer is AddressSanitizer by default (what `cargo xtask test` runs). For
//! long runs `--sanitizer none` is 5–20× faster (ASan makes every large allocation,
//! such as a decoder's dictionary, expensive) and still catches every panic, hang,
//! abort and memory blow-up; ASan only instruments the Rust code, which is safe but
//! for the decoder bindings.
//!
//! Installs what it needs when missing (the nightly toolchain, `cargo-fuzz`), then
//! writes fresh seed corpora under `target/fuzz/seeds/<target>/` from the real Debian
//! 6.1 modules (`tests/common/debian.rs` fetches them) and from small
//! hand-made inputs. What libFuzzer finds stays in `target/fuzz/corpus/<target>/` and
//! is reused by the next run. Logs go to `target/fuzz/logs/<target>.log`, crashing
//! inputs to `target/fuzz/artifacts/<target>/`; any crash fails the command, after the
//! summary (executions per target) is printed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::util::debian::{self, KVER};
use crate::util::{ensure_packages, run};

/// Every target in `fuzz/fuzz_targets/`.
pub const TARGETS: &[&str] = &[
    "scan",
    "decompress_gz",
    "decompress_xz",
    "decompress_zst",
    "depmod_d",
    "modules_order",
    "builtin",
    "builtin_modinfo",
    "symvers",
    "system_map",
    "index_reader",
    "pipeline",
    "cache",
];

/// Separator of module images in `pipeline` inputs (see fuzz/fuzz_targets/pipeline.rs).
const SEP: &[u8] = b"--MODULE--";

struct Args {
    time: u64,
    jobs: usize,
    /// cargo-fuzz's `--sanitizer`: `address` (default) or `none`.
    sanitizer: String,
    targets: Vec<String>,
    extra: Vec<String>,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        time: 30,
        sanitizer: "address".into(),
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        targets: Vec::new(),
        extra: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value"))
                .cloned()
        };
        match arg.as_str() {
            "--time" => {
                a.time = value("--time")?
                    .parse()
                    .map_err(|e| format!("--time: {e}"))?
            }
            "--sanitizer" => {
                a.sanitizer = value("--sanitizer")?;
                if !matches!(a.sanitizer.as_str(), "address" | "none") {
                    return Err("--sanitizer: address or none".into());
                }
            }
            "--jobs" => {
                a.jobs = value("--jobs")?
                    .parse()
                    .map_err(|e| format!("--jobs: {e}"))?
            }
            // Passed to libFuzzer as is, e.g. `-- -runs=10000000`.
            "--" => {
                a.extra.extend(it.by_ref().cloned());
            }
            t if TARGETS.contains(&t) => a.targets.push(t.to_string()),
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: cargo xtask fuzz [--time SECS] [--jobs N] [--sanitizer address|none] [TARGET…] [-- LIBFUZZER-FLAGS…]; targets: {}",
                    TARGETS.join(" ")
                ))
            }
        }
    }
    if a.targets.is_empty() {
        a.targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    a.jobs = a.jobs.max(1);
    Ok(a)
}

pub fn run_cmd(root: &Path, args: &[String]) -> Result<(), String> {
    let args = parse_args(args)?;
    ensure_tools()?;
    let work = root.join("target/fuzz");
    let seeds = work.join("seeds");
    make_seeds(root, &seeds)?;

    // One build for all targets (cargo-fuzz builds with sanitizer flags of its own).
    let build_dir = work.join(match args.sanitizer.as_str() {
        "none" => "build-nosan",
        _ => "build",
    });
    run(Command::new("cargo")
        .args([
            "+nightly",
            "fuzz",
            "build",
            "-s",
            &args.sanitizer,
            "--target-dir",
        ])
        .arg(&build_dir)
        .current_dir(root))?;

    let next = AtomicUsize::new(0);
    let results: Mutex<BTreeMap<String, Outcome>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..args.jobs.min(args.targets.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(target) = args.targets.get(i) else {
                    break;
                };
                let out = fuzz_one(root, &work, &build_dir, target, &args);
                match &out {
                    Ok(o) => eprintln!(
                        "xtask fuzz: {target}: {} executions in {} s{}",
                        o.execs,
                        o.secs,
                        if o.ok { "" } else { ", FAILED" }
                    ),
                    Err(e) => eprintln!("xtask fuzz: {target}: {e}"),
                }
                let o = out.unwrap_or_else(|e| Outcome {
                    ok: false,
                    execs: 0,
                    secs: 0,
                    note: e,
                });
                results.lock().unwrap().insert(target.clone(), o);
            });
        }
    });
    let results = results.into_inner().unwrap();
    println!("\nfuzz target          executions      seconds  result");
    let mut failed = Vec::new();
    for (t, o) in &results {
        println!(
            "{t:<20} {:>12} {:>12}  {}",
            o.execs,
            o.secs,
            if o.ok { "ok" } else { &o.note }
        );
        if !o.ok {
            failed.push(t.as_str());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fuzz targets failed: {} (logs in target/fuzz/logs, inputs in target/fuzz/artifacts)",
            failed.join(", ")
        ))
    }
}

struct Outcome {
    ok: bool,
    execs: u64,
    secs: u64,
    note: String,
}

fn fuzz_one(
    root: &Path,
    work: &Path,
    build_dir: &Path,
    target: &str,
    args: &Args,
) -> Result<Outcome, String> {
    let (time, extra) = (args.time, &args.extra);
    let corpus = work.join("corpus").join(target);
    let artifacts = work.join("artifacts").join(target);
    let logs = work.join("logs");
    for d in [&corpus, &artifacts, &logs] {
        fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let log_path = logs.join(format!("{target}.log"));
    let log = fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let started = std::time::Instant::now();
    let status = Command::new("cargo")
        .args([
            "+nightly",
            "fuzz",
            "run",
            "-s",
            &args.sanitizer,
            "--target-dir",
        ])
        .arg(build_dir)
        .arg(target)
        .arg(&corpus)
        .arg(work.join("seeds").join(target))
        .arg("--")
        .arg(format!("-max_total_time={time}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        // An input that takes longer than this is a hang: a failure like a crash.
        .arg("-timeout=20")
        .arg("-rss_limit_mb=4096")
        .arg("-print_final_stats=1")
        .args(extra)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .status()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    let stat = |key: &str| -> u64 {
        text.lines()
            .filter_map(|l| l.strip_prefix(key))
            .filter_map(|v| v.trim().parse().ok())
            .next_back()
            .unwrap_or(0)
    };
    let execs = stat("stat::number_of_executed_units:");
    let secs = text
        .lines()
        .filter_map(|l| l.strip_prefix("Done "))
        .filter_map(|l| l.split(" in ").nth(1))
        .filter_map(|l| l.split(' ').next())
        .filter_map(|v| v.parse().ok())
        .next_back()
        // A crash ends the run early, without the "Done" line.
        .unwrap_or_else(|| started.elapsed().as_secs().min(time));
    let ok = status.success();
    let note = if ok {
        String::new()
    } else {
        let reason = text
            .lines()
            .find(|l| l.contains("==ERROR:") || l.contains("panicked at") || l.contains("SUMMARY:"))
            .unwrap_or("see the log")
            .trim()
            .to_string();
        format!("{status}: {reason} ({})", log_path.display())
    };
    Ok(Outcome {
        ok,
        execs,
        secs,
        note,
    })
}

fn ensure_tools() -> Result<(), String> {
    let ok = |cmd: &mut Command| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(Command::new("cargo").args(["+nightly", "--version"])) {
        eprintln!("xtask fuzz: installing the nightly toolchain");
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    if !ok(Command::new("cargo").args(["+nightly", "fuzz", "--version"])) {
        eprintln!("xtask fuzz: installing cargo-fuzz");
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    ensure_packages(&[])
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let p = dir.join(name);
    fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))
}

/// Runs `prog args` with `input` on stdin and returns its stdout.
fn filter(prog: &str, args: &[&str], input: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(format!("{prog} failed: {}", out.status));
    }
    Ok(out.stdout)
}

/// All `.ko` files under `dir`, with their sizes.
fn modules_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "ko") {
                if let Ok(m) = e.metadata() {
                    out.push((p, m.len()));
                }
            }
        }
    }
    out.sort();
    out
}

/// Writes every target's seed directory afresh.
fn make_seeds(root: &Path, seeds: &Path) -> Result<(), String> {
    let _ = fs::remove_dir_all(seeds);
    let dir = |t: &str| seeds.join(t);
    hand_made_seeds(&dir)?;

    let moddir = debian::module_dir()?;
    let all = modules_under(&moddir.join("kernel"));
    // The smallest modules: real ELF layouts that fit libFuzzer's input sizes.
    let mut small: Vec<&(PathBuf, u64)> = all.iter().filter(|(_, n)| *n <= 24 << 10).collect();
    small.sort_by_key(|(p, n)| (*n, p.clone()));
    let step = (small.len() / 48).max(1);
    let picked: Vec<&PathBuf> = small
        .iter()
        .step_by(step)
        .map(|(p, _)| p)
        .take(48)
        .collect();
    let read = |p: &Path| fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    for (i, p) in picked.iter().enumerate() {
        let bytes = read(p)?;
        write(&dir("scan"), &format!("module{i:02}.ko"), &bytes)?;
        if i % 4 == 0 {
            write(
                &dir("decompress_gz"),
                &format!("module{i:02}.ko.gz"),
                &filter("gzip", &["-9c"], &bytes)?,
            )?;
            write(
                &dir("decompress_xz"),
                &format!("module{i:02}.ko.xz"),
                &filter("xz", &["-c", "--check=crc32"], &bytes)?,
            )?;
            write(
                &dir("decompress_zst"),
                &format!("module{i:02}.ko.zst"),
                &filter("zstd", &["-19", "-c", "-q"], &bytes)?,
            )?;
        }
    }
    // kmod's own build options: xz with crc32, zstd with default level, gzip -9.
    if let Some(p) = picked.get(1) {
        let bytes = read(p)?;
        write(
            &dir("decompress_xz"),
            "crc64.xz",
            &filter("xz", &["-c"], &bytes)?,
        )?;
        write(
            &dir("decompress_zst"),
            "checksum.zst",
            &filter("zstd", &["-c", "-q", "--check"], &bytes)?,
        )?;
        write(
            &dir("decompress_gz"),
            "fast.gz",
            &filter("gzip", &["-1c"], &bytes)?,
        )?;
    }

    // modules.order, modules.builtin, modules.builtin.modinfo as shipped, and slices.
    let order = read(&moddir.join("modules.order"))?;
    let head = |b: &[u8], max: usize| -> Vec<u8> {
        let cut = b[..b.len().min(max)]
            .iter()
            .rposition(|&c| c == b'\n' || c == 0)
            .map_or(0, |i| i + 1);
        b[..cut].to_vec()
    };
    let order_head = head(&order, 4 << 10);
    let mut seed = order_head.clone();
    seed.push(0xff);
    seed.extend_from_slice(&order_head);
    write(&dir("modules_order"), "debian", &seed)?;
    let mut reversed: Vec<&[u8]> = order_head.split(|&b| b == b'\n').collect();
    reversed.reverse();
    let mut seed = order_head.clone();
    seed.push(0xff);
    seed.extend_from_slice(&reversed.join(&b'\n'));
    write(&dir("modules_order"), "reversed", &seed)?;
    write(
        &dir("builtin"),
        "debian",
        &read(&moddir.join("modules.builtin"))?,
    )?;
    let modinfo = read(&moddir.join("modules.builtin.modinfo"))?;
    write(&dir("builtin_modinfo"), "debian", &head(&modinfo, 16 << 10))?;

    // The real tree through our depmod: its outputs feed the symbol and index seeds.
    let depmod = build_depmod(root)?;
    let out = root.join("target/fuzz/debian-out");
    let _ = fs::remove_dir_all(&out);
    run(Command::new(&depmod)
        .arg("-b")
        .arg(moddir.parent().unwrap().parent().unwrap().parent().unwrap())
        .arg("-o")
        .arg(&out)
        .arg(KVER))?;
    let outdir = out.join("lib/modules").join(KVER);
    let symbols = read(&outdir.join("modules.symbols"))?;
    let mut symvers = Vec::new();
    let mut sysmap = Vec::new();
    for (i, line) in symbols.split(|&b| b == b'\n').enumerate().take(200) {
        let mut f = line.split(|&b| b == b' ');
        let (Some(b"alias"), Some(sym)) = (f.next(), f.next()) else {
            continue;
        };
        let Some(name) = sym.strip_prefix(b"symbol:") else {
            continue;
        };
        let name = String::from_utf8_lossy(name);
        let kind = ["EXPORT_SYMBOL", "EXPORT_SYMBOL_GPL"][i % 2];
        symvers.extend_from_slice(
            format!(
                "0x{:08x}\t{name}\tvmlinux\t{kind}\t\n",
                (i as u32).wrapping_mul(0x9e37_79b9)
            )
            .as_bytes(),
        );
        sysmap.extend_from_slice(
            format!(
                "ffffffff{:08x} r __ksymtab_{name}\nffffffff{:08x} T {name}\n",
                i * 16,
                i * 32
            )
            .as_bytes(),
        );
    }
    write(&dir("symvers"), "synthetic", &symvers)?;
    let real = read(&debian::module_symvers()?)?;
    write(&dir("symvers"), "debian", &head(&real, 8 << 10))?;
    write(&dir("system_map"), "synthetic", &sysmap)?;
    for name in ["modules.builtin.bin", "modules.builtin.alias.bin"] {
        write(&dir("index_reader"), name, &read(&outdir.join(name))?)?;
    }

    // Pipelines: a module with all its dependencies, when they are all small.
    let dep = read(&outdir.join("modules.dep"))?;
    let size: BTreeMap<PathBuf, u64> = all.iter().cloned().collect();
    let mut n = 0;
    for line in dep.split(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        let mut parts = text.split([':', ' ']).filter(|s| !s.is_empty());
        let Some(first) = parts.next() else { continue };
        let members: Vec<PathBuf> = std::iter::once(first)
            .chain(parts)
            .map(|p| moddir.join(p))
            .collect();
        if members.len() < 2 || members.len() > 4 {
            continue;
        }
        let total: u64 = members
            .iter()
            .map(|m| size.get(m).copied().unwrap_or(u64::MAX / 8))
            .sum();
        if total > 96 << 10 {
            continue;
        }
        let mut seed = vec![n as u8 & 0x3f];
        for (k, m) in members.iter().enumerate() {
            if k > 0 {
                seed.extend_from_slice(SEP);
            }
            seed.extend_from_slice(&read(m)?);
        }
        write(&dir("pipeline"), &format!("deps{n:02}"), &seed)?;
        n += 1;
        if n == 24 {
            break;
        }
    }

    // Indexes of a small tree (the picked modules): every .bin output kind.
    let small_root = root.join("target/fuzz/small-tree");
    let _ = fs::remove_dir_all(&small_root);
    let small_dir = small_root.join("lib/modules").join(KVER);
    for (i, p) in picked.iter().enumerate().take(16) {
        let bytes = read(p)?;
        write(&small_dir.join("kernel"), &format!("m{i:02}.ko"), &bytes)?;
    }
    let small_cache = root.join("target/fuzz/small-cache");
    let _ = fs::remove_dir_all(&small_cache);
    run(Command::new(&depmod)
        .arg("-b")
        .arg(&small_root)
        .arg(KVER)
        .env("DEPMOD_CACHE", &small_cache)
        .stderr(Stdio::null()))?;
    // The cache target appends the checksum itself: seeds are files without it
    // (the full cache file and the note of the indexes).
    for entry in fs::read_dir(&small_cache).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        let bytes = read(&path)?;
        let body = &bytes[..bytes.len().saturating_sub(8)];
        write(&dir("cache"), &format!("small-tree-{ext}"), body)?;
    }
    for name in [
        "modules.dep.bin",
        "modules.alias.bin",
        "modules.symbols.bin",
    ] {
        write(&dir("index_reader"), name, &read(&small_dir.join(name))?)?;
    }
    Ok(())
}

fn build_depmod(root: &Path) -> Result<PathBuf, String> {
    run(Command::new("cargo")
        .args(["build", "--release", "--bin", "depmod"])
        .current_dir(root))?;
    Ok(root.join("target/release/depmod"))
}

/// Small inputs written by hand: the syntax corners of each format.
fn hand_made_seeds(dir: &dyn Fn(&str) -> PathBuf) -> Result<(), String> {
    let conf: &[(&str, &[u8])] = &[
        ("search", b"search updates extra built-in weak-updates\nsearch external\n"),
        ("override", b"override e1000 6.1.* updates\noverride e1000e * extra\noverride short\n"),
        ("external", b"external 6.1.0-56-amd64 /opt/ext\nexternal ^6\\.[0-9]+ /srv/x\nexternal *\n"),
        ("exclude", b"exclude debug build source\nexclude\n"),
        ("misc", b"# comment\n\n  \tsearch a\\\n b\ninclude /etc/x\nmake_map_files\nbogus line\n\\"),
        ("ere", b"6.1.0-56-amd64\noverride m ^(6|5)\\.[0-9]{1,2}(\\.[0-9]+)?-[a-z0-9-]*$ x\nexternal [[:digit:]]+\\.1 /e\noverride m (a|b)*c+[^x]? y\n"),
        ("nul", b"search a\0b\noverride x\0 y z\n"),
    ];
    for (n, t) in conf {
        write(&dir("depmod_d"), n, t)?;
    }
    let order: &[(&str, &[u8])] = &[
        ("simple", b"kernel/a.ko\nkernel/b.ko.xz\nkernel/c-d.ko\n\xffkernel/c-d.ko\nkernel/a.ko\nkernel/b.ko\n"),
        ("corrupt", b"kernel/a.ko\nkernel/b.ko\n\xffkernel/b.ko\nkernel/a.ko"),
        ("nul", b"kernel/a.ko\n\xffkernel/a\0.ko\nkernel/a.ko\n"),
        ("dups", b"updates/x.ko\nkernel/x.ko\nextra/x.ko.zst\n\xffkernel/x.ko\nupdates/x.ko\n"),
    ];
    for (n, t) in order {
        write(&dir("modules_order"), n, t)?;
    }
    write(
        &dir("builtin"),
        "lines",
        b"kernel/fs/ext4/ext4.ko\nkernel/a/b-c.ko\n1bad\nkernel/noext\n\n",
    )?;
    write(
        &dir("builtin_modinfo"),
        "records",
        b"ext4.alias=fs-ext4\0ext4.alias=fs-ext3\0ext4.description=x\0usbcore.alias=usb:v*p*d*dc*dsc*dp*ic09isc*ip*in*\0broken\0a.alias=pci:v[00]\0b.alias=x[\0",
    )?;
    write(&dir("symvers"), "lines", b"0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n0xdeadbeef\tfoo\tdrivers/x/y\tEXPORT_SYMBOL_GPL\tNS\nzz\tbad\tvmlinux\tEXPORT_SYMBOL\n-1 _neg vmlinux\n0x\tx\tvmlinux\n")?;
    write(&dir("system_map"), "lines", b"ffffffff81000000 T _text\nffffffff82000000 r __ksymtab_printk\nffffffff82000010 r ___ksymtab_x\nbadline\nffffffff T\n")?;
    // An index with one key, and a truncated one.
    let index: &[u8] = &[
        0xB0, 0x07, 0xF4, 0x57, 0, 2, 0, 1, 0xC0, 0, 0, 0x0C, b'a', b'b', 0, 0, 0, 0, 1, 0, 0, 0,
        0, b'v', 0,
    ];
    write(&dir("index_reader"), "one-key", index)?;
    write(&dir("index_reader"), "truncated", &index[..16])?;
    write(&dir("scan"), "empty", b"")?;
    write(
        &dir("scan"),
        "magic-only",
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\0",
    )?;
    for f in ["decompress_gz", "decompress_xz", "decompress_zst"] {
        write(&dir(f), "empty", b"")?;
    }
    write(&dir("pipeline"), "empty", b"\x1f--MODULE----MODULE--")?;
    Ok(())
}
