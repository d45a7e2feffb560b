//! `cargo xtask bench`: our depmod against kmod's on the same trees, in one run.
//!
//! Trees: the real Debian amd64 tree (plain) and gz/xz/zst copies made as kbuild
//! makes them. For each tree it first checks our outputs equal kmod 34.2's (modulo
//! the compression suffix in modules.dep and modules.dep.bin), then runs ours and
//! kmod's alternately (a warm-up, then `--runs N`, default 7, each) and prints the
//! medians of wall time, CPU time (user+sys) and peak RSS, and the ratio ours/kmod.
//! Every timed run starts with the file system synced (see `run_with`).
//! kmod is Debian's `/usr/sbin/depmod` unless `$KMOD_DEPMOD` names another.
//! `--tree NAME` (repeatable: plain, gz, xz, zst, big) limits the run to those trees
//! (`big`, only when asked: the xz tree with amdgpu grown to 47 MB, as Debian 13's);
//! `--ours PATH` times another build of ours (say `target/dist/depmod-x86_64`).
//! `--dist PATH` also times that binary (the static dist build) against ours,
//! alternating, and prints dist/release per tree.
//!
//! Per tree it also times the module cache (`DEPMOD_CACHE`) after one module
//! changed, against kmod's full run on the same tree: rebuilt with other bytes
//! (nothing depmod takes from it changed, so every output in place is kept), and
//! with one of its aliases changed (the alias files are made and written).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::util::oracle::reference_outputs;
use crate::util::variants::{self, Compression};
use crate::util::{cargo, debian, run as run_cmd};

struct Sample {
    wall: f64,
    cpu: f64,
    rss_kb: i64,
    ok: bool,
}

// The child is reaped by wait4 below (clippy cannot see it).
#[allow(clippy::zombie_processes)]
fn run_once(bin: &Path, root: &Path, kver: &str, cfg: &Path) -> Sample {
    run_with(bin, root, kver, cfg, None)
}

/// One run, with `DEPMOD_CACHE=cache` when given, after the file system is
/// synced (not timed): kmod leaves the outputs it writes unsynced, and a run
/// that renames its outputs over files still being written back waits for
/// that writeback, so without it a run of ours after one of kmod's paid for
/// kmod's writes (about 10 ms of a 100 ms cold plain run on the VM measured).
/// Ours sync their outputs, so kmod's runs found nothing to wait for either way.
#[allow(clippy::zombie_processes)]
fn run_with(bin: &Path, root: &Path, kver: &str, cfg: &Path, cache: Option<&Path>) -> Sample {
    let _ = Command::new("sync").status();
    let start = Instant::now();
    let mut cmd = Command::new(bin);
    match cache {
        Some(dir) => cmd.env("DEPMOD_CACHE", dir),
        None => cmd.env_remove("DEPMOD_CACHE"),
    };
    let child = cmd
        .arg("-C")
        .arg(cfg)
        .arg("-b")
        .arg(root)
        .arg(kver)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn depmod");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child; pointers are to valid locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Sample {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        rss_kb: usage.ru_maxrss,
        ok: r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `cargo xtask bench [--runs N] [--tree NAME]… [--ours PATH]`.
pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let mut runs = 7usize;
    let mut only: Vec<String> = Vec::new();
    let mut ours: Option<PathBuf> = None;
    let mut dist: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().and_then(|v| v.parse().ok()).ok_or("--runs N")?,
            "--tree" => only.push(it.next().cloned().ok_or("--tree plain|gz|xz|zst|big")?),
            "--ours" => ours = Some(PathBuf::from(it.next().ok_or("--ours PATH")?)),
            "--dist" => dist = Some(PathBuf::from(it.next().ok_or("--dist PATH")?)),
            other => return Err(format!("unknown bench argument {other}")),
        }
    }
    run_cmd(
        Command::new(cargo())
            .args(["build", "--release", "--bin", "depmod"])
            .current_dir(root),
    )?;
    let ours = ours.unwrap_or_else(|| root.join("target/release/depmod"));
    let kmod = std::env::var_os("KMOD_DEPMOD")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/sbin/depmod".into());
    if !kmod.exists() {
        return Err(format!(
            "{} not found (apt-get install kmod, or set KMOD_DEPMOD)",
            kmod.display()
        ));
    }
    let kmod_features = Command::new(&kmod)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let tree = debian::image_root()?;
    let kver = debian::KVER;
    // kmod 34.2's outputs (generated once with the oracle, checked against the sums
    // committed in tests/data/).
    let golden = reference_outputs(root)?;
    let cfg = root.join("target/bench/empty-depmod.d");
    fs::create_dir_all(&cfg).map_err(|e| e.to_string())?;
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let mut trees: Vec<(String, PathBuf, Option<Compression>)> = Vec::new();
    if wanted("plain") {
        trees.push(("plain".into(), tree.clone(), None));
    }
    for k in Compression::ALL {
        if !wanted(k.name()) {
            continue;
        }
        eprintln!(
            "xtask: preparing the {} tree (cached after the first run)",
            k.name()
        );
        trees.push((
            k.name().into(),
            variants::compressed_tree(&tree, k),
            Some(k),
        ));
    }
    if only.iter().any(|o| o == "big") {
        // Debian 13's kernels carry an amdgpu.ko of 47 MB (about 9 MB as .ko.xz);
        // Debian 12's is 19 MB. The xz tree with amdgpu grown to 47 MB (its own
        // bytes repeated, so it compresses like a real module): peak memory with
        // one very large image.
        trees.push((
            "big".into(),
            big_tree(root, &tree, kver)?,
            Some(Compression::Xz),
        ));
    }
    println!("ours: {}", ours.display());
    println!(
        "kmod: {} ({})",
        kmod.display(),
        kmod_features.lines().next().unwrap_or("?")
    );
    println!("{runs} runs each after a warm-up, alternating; medians.\n");
    println!(
        "{:6} {:>10} {:>10} {:>7} {:>10} {:>10} {:>7} {:>9} {:>9} {:>7}",
        "tree",
        "wall ours",
        "wall kmod",
        "ratio",
        "cpu ours",
        "cpu kmod",
        "ratio",
        "rss ours",
        "rss kmod",
        "ratio"
    );
    let mut kmod_plain_wall = None;
    let mut summary: Vec<String> = Vec::new();
    for (name, src, kind) in &trees {
        // Work on a scratch copy with hard links, so outputs do not touch the cache.
        let work = root.join("target/bench/work").join(name);
        let _ = fs::remove_dir_all(&work);
        if let Some(parent) = work.parent() {
            fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        run_cmd(Command::new("cp").arg("-al").arg(src).arg(&work))?;
        for f in fs::read_dir(work.join("lib/modules").join(kver))
            .map_err(|e| e.to_string())?
            .flatten()
        {
            if f.file_name().to_string_lossy().starts_with("modules.") {
                // Break hard links to the cached tree's inputs only for files we write.
                let p = f.path();
                let data = fs::read(&p).map_err(|e| e.to_string())?;
                fs::remove_file(&p).map_err(|e| e.to_string())?;
                fs::write(&p, data).map_err(|e| e.to_string())?;
            }
        }
        let first = run_once(&ours, &work, kver, &cfg);
        if !first.ok {
            return Err(format!("our depmod failed on the {name} tree"));
        }
        variants::compare_with_golden(&work.join("lib/modules").join(kver), &golden, *kind)?;
        let kmod_reads = !(kind == &Some(Compression::Gz) && kmod_features.contains("-ZLIB"));
        let warm = run_once(&kmod, &work, kver, &cfg);
        let (mut ow, mut oc, mut or, mut kw, mut kc, mut kr) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..runs {
            let o = run_once(&ours, &work, kver, &cfg);
            ow.push(o.wall);
            oc.push(o.cpu);
            or.push(o.rss_kb as f64);
            if kmod_reads && warm.ok {
                let k = run_once(&kmod, &work, kver, &cfg);
                kw.push(k.wall);
                kc.push(k.cpu);
                kr.push(k.rss_kb as f64);
            }
        }
        let (ow, oc, or) = (median(ow), median(oc), median(or));
        // The module cache after one module changed (README, "Module cache").
        let cached = cached_one_change(&ours, &work, kver, &cfg, *kind, runs, Change::Rebuilt)?;
        let aliased = cached_one_change(&ours, &work, kver, &cfg, *kind, runs, Change::Alias)?;
        // The static dist binary against this build, alternating.
        let dist_row = match &dist {
            Some(d) => {
                let (mut dw, mut rw) = (vec![], vec![]);
                run_once(d, &work, kver, &cfg);
                for _ in 0..runs {
                    dw.push(run_once(d, &work, kver, &cfg).wall);
                    rw.push(run_once(&ours, &work, kver, &cfg).wall);
                }
                Some((median(dw), median(rw)))
            }
            None => None,
        };
        let kw_is_empty = kw.is_empty();
        if kw_is_empty {
            // No ratio on this tree; compare with kmod's time on the same modules
            // uncompressed, when the plain tree ran (the yardstick for gz).
            let vs_plain = kmod_plain_wall
                .map(|k| format!("; ours here / kmod on plain: {:.2}", ow / k))
                .unwrap_or_default();
            println!("{name:6} {ow:>9.3}s {:>10} {:>7} {oc:>9.3}s {:>10} {:>7} {:>7.0}MB {:>9} {:>7}   (kmod cannot read .ko.{name}: built without it{vs_plain})", "-", "-", "-", "-", or / 1024.0, "-", "-");
        } else {
            let (kw, kc, kr) = (median(kw), median(kc), median(kr));
            if kind.is_none() {
                kmod_plain_wall = Some(kw);
            }
            println!(
                "{name:6} {ow:>9.3}s {kw:>9.3}s {:>7.2} {oc:>9.3}s {kc:>9.3}s {:>7.2} {:>7.0}MB {:>7.0}MB {:>7.2}",
                ow / kw,
                oc / kc,
                or / 1024.0,
                kr / 1024.0,
                or / kr
            );
            summary.push(format!(
                "{name:6} cached after one change: {:.3}s = {:.3} of kmod's full run ({kw:.3}s); rss {:.0}MB; \
                 after one alias changed: {:.3}s = {:.3}",
                cached.0,
                cached.0 / kw,
                cached.1 / 1024.0,
                aliased.0,
                aliased.0 / kw
            ));
        }
        if kw_is_empty {
            summary.push(format!(
                "{name:6} cached after one change: {:.3}s (kmod cannot read this tree); rss {:.0}MB; \
                 after one alias changed: {:.3}s",
                cached.0,
                cached.1 / 1024.0,
                aliased.0
            ));
        }
        if let Some((dw, rw)) = dist_row {
            summary.push(format!(
                "{name:6} dist {dw:.3}s / release {rw:.3}s = {:.2}",
                dw / rw
            ));
        }
    }
    println!();
    for line in summary {
        println!("{line}");
    }
    Ok(())
}

/// How [`cached_one_change`] changes the module between runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    /// One byte more at the end of the ELF file: a rebuild that gives depmod
    /// the same aliases, exports and imports (every output stays the same).
    Rebuilt,
    /// `alias=fs-ext4` becomes `alias=fs-ext5`: `modules.alias` and its index
    /// change.
    Alias,
}

/// `DEPMOD_CACHE` with one module changed between runs: a cache filled by a first
/// run and, past the timestamp granularity, a second; then each measured run
/// follows a rewrite of one module (`ext4`) with other bytes (see [`Change`]),
/// compressed again, alternating between the original and the changed version.
/// Returns the median wall time and peak RSS (KiB). The module is replaced by
/// rename: the work tree's files are hard links to the cached tree's.
fn cached_one_change(
    ours: &Path,
    work: &Path,
    kver: &str,
    cfg: &Path,
    kind: Option<Compression>,
    runs: usize,
    change: Change,
) -> Result<(f64, f64), String> {
    let cache = work.with_extension("cache");
    let _ = fs::remove_dir_all(&cache);
    let suffix = kind
        .map(|k| format!(".ko.{}", k.name()))
        .unwrap_or(".ko".into());
    let module = work
        .join("lib/modules")
        .join(kver)
        .join(format!("kernel/fs/ext4/ext4{suffix}"));
    let original = fs::read(&module).map_err(|e| format!("{}: {e}", module.display()))?;
    let plain = match kind {
        None => original.clone(),
        Some(k) => unpack(k, &original)?,
    };
    let mut changed = plain.clone();
    match change {
        Change::Rebuilt => changed.push(0),
        Change::Alias => {
            let from = b"alias=fs-ext4\0";
            let at = changed
                .windows(from.len())
                .position(|w| w == from)
                .ok_or("ext4 has no alias=fs-ext4")?;
            changed[at + from.len() - 2] = b'5';
        }
    }
    let versions = [pack(kind, &plain)?, pack(kind, &changed)?];
    let replace = |bytes: &[u8]| -> Result<(), String> {
        let tmp = module.with_extension("bench-tmp");
        fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
        fs::rename(&tmp, &module).map_err(|e| e.to_string())
    };
    replace(&versions[0])?;
    run_with(ours, work, kver, cfg, Some(&cache));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    run_with(ours, work, kver, cfg, Some(&cache));
    let (mut wall, mut rss) = (vec![], vec![]);
    for i in 0..runs {
        replace(&versions[(i + 1) % 2])?;
        let s = run_with(ours, work, kver, cfg, Some(&cache));
        if !s.ok {
            return Err("our depmod failed with the cache".into());
        }
        wall.push(s.wall);
        rss.push(s.rss_kb as f64);
    }
    // Leave the tree as it was: the outputs are checked against kmod's.
    replace(&original)?;
    run_with(ours, work, kver, cfg, None);
    let _ = fs::remove_dir_all(&cache);
    Ok((median(wall), median(rss)))
}

/// The xz tree with `amdgpu.ko.xz` unpacking to 47 MiB (made once, cached).
fn big_tree(root: &Path, plain: &Path, kver: &str) -> Result<PathBuf, String> {
    let big = root.join("target/bench/big-tree");
    let rel = format!("lib/modules/{kver}/kernel/drivers/gpu/drm/amd/amdgpu/amdgpu.ko");
    let module = big.join(format!("{rel}.xz"));
    if module.exists() && fs::metadata(&module).map(|m| m.nlink()).unwrap_or(0) == 1 {
        return Ok(big);
    }
    eprintln!("xtask: preparing the big tree (cached after the first run)");
    let _ = fs::remove_dir_all(&big);
    let xz = variants::compressed_tree(plain, Compression::Xz);
    run_cmd(Command::new("cp").arg("-al").arg(&xz).arg(&big))?;
    fs::remove_file(&module).map_err(|e| e.to_string())?;
    // In a shell pipeline, not in this process: the peak RSS a child reports
    // (`wait4`) includes ours when it was spawned with `vfork` semantics, so
    // xtask itself must never hold a 47 MB buffer.
    run_cmd(
        Command::new("sh")
            .arg("-c")
            .arg(
                "{ while cat \"$1\"; do :; done; } 2>/dev/null | head -c $((47 << 20)) \
                 | xz -6 --check=crc32 --lzma2=dict=1MiB -c > \"$2\"",
            )
            .arg("sh")
            .arg(plain.join(&rel))
            .arg(&module),
    )?;
    Ok(big)
}

fn tool(kind: Compression) -> &'static str {
    match kind {
        Compression::Gz => "gzip",
        Compression::Xz => "xz",
        Compression::Zst => "zstd",
    }
}

fn pipe(program: &str, args: &[&str], input: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("stdin")?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(format!("{program} {args:?} failed"));
    }
    Ok(out.stdout)
}

fn unpack(kind: Compression, bytes: &[u8]) -> Result<Vec<u8>, String> {
    pipe(tool(kind), &["-dc"], bytes)
}

fn pack(kind: Option<Compression>, plain: &[u8]) -> Result<Vec<u8>, String> {
    match kind {
        None => Ok(plain.to_vec()),
        Some(k) => pipe(tool(k), &["-c"], plain),
    }
}
