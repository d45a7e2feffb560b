//! `cargo xtask bench`: our depmod against kmod's on the same trees, in one run.
//!
//! Trees: the real Debian amd64 tree (plain) and gz/xz/zst copies made as kbuild
//! makes them. For each tree it first checks our outputs equal kmod 34.2's (modulo
//! the compression suffix in modules.dep and modules.dep.bin), then runs ours and
//! kmod's alternately (a warm-up, then `--runs N`, default 7, each) and prints the
//! medians of wall time, CPU time (user+sys) and peak RSS, and the ratio ours/kmod.
//! kmod is Debian's `/usr/sbin/depmod` unless `$KMOD_DEPMOD` names another.
//! `--tree NAME` (repeatable: plain, gz, xz, zst) limits the run to those trees;
//! `--ours PATH` times another build of ours (say `target/dist/depmod-x86_64`).

use std::fs;
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
    let start = Instant::now();
    let child = Command::new(bin)
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
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().and_then(|v| v.parse().ok()).ok_or("--runs N")?,
            "--tree" => only.push(it.next().cloned().ok_or("--tree plain|gz|xz|zst")?),
            "--ours" => ours = Some(PathBuf::from(it.next().ok_or("--ours PATH")?)),
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
        if kw.is_empty() {
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
        }
    }
    Ok(())
}
