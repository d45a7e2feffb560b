//! `cargo xtask kmod-suite [--ours PATH]`: kmod 34.2's own `test-depmod`, unmodified,
//! run with our depmod in place of kmod's.
//!
//! The source is Debian trixie's kmod 34.2 (its orig tarball carries upstream's
//! `testsuite/`), fetched with `apt-get source` through a private apt state from
//! the mirror this machine's apt uses, so apt checks it against the signed
//! `Sources` index. It is built with meson under `target/kmod-suite/`, the module
//! playground against Debian's kernel headers (`KDIR`). The suite runs
//! `<builddir>/depmod` (meson makes it a symlink to `kmod`) inside a fake root
//! filesystem set up by an `LD_PRELOAD` library that redirects absolute paths, so
//! that file becomes a copy of our release build: it must be a glibc dynamically
//! linked binary for the trap to work. Each case runs on a freshly made rootfs,
//! first with kmod's own depmod (a check of the harness), then with ours.
//!
//! Everything is cached: a second run only rebuilds the rootfs and reruns the cases.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::apt::private_options;
use crate::util::apt_source::{self, Archive};
use crate::util::{cargo, ensure_packages, run};

/// The orig tarball of the version we match, and the directory it unpacks to.
const ORIG: &str = "kmod_34.2.orig.tar.xz";
const SOURCE_DIR: &str = "kmod-34.2";

/// `test-depmod`'s cases in kmod 34.2.
const CASES: usize = 11;

/// What building kmod and its test suite needs, with a file showing each is there.
const BUILD_PACKAGES: &[(&str, &str)] = &[
    ("meson", "/usr/bin/meson"),
    ("ninja-build", "/usr/bin/ninja"),
    ("pkgconf", "/usr/bin/pkg-config"),
    ("gcc", "/usr/bin/gcc"),
    ("make", "/usr/bin/make"),
    ("libc6-dev", "/usr/include/stdio.h"),
    ("libzstd-dev", "/usr/include/zstd.h"),
    ("liblzma-dev", "/usr/include/lzma.h"),
    ("zlib1g-dev", "/usr/include/zlib.h"),
];

/// Build targets `meson test test-depmod` depends on, less the rootfs (made
/// before each run).
const TARGETS: &[&str] = &[
    "depmod",
    "testsuite/test-depmod",
    "testsuite/path.so",
    "testsuite/uname.so",
    "testsuite/init_module.so",
    "testsuite/delete_module.so",
];

/// Meson options: the tools and tests, every decompressor (so the suite's
/// compressed-module case uses gzip, xz and zstd), nothing that needs more
/// packages (manual pages want scdoc, signatures OpenSSL).
const MESON_OPTIONS: &[&str] = &[
    "-Dbuild-tests=true",
    "-Dmanpages=false",
    "-Ddocs=false",
    "-Dopenssl=disabled",
    "-Dzstd=enabled",
    "-Dxz=enabled",
    "-Dzlib=enabled",
    "-Dbashcompletiondir=no",
    "-Dfishcompletiondir=no",
    "-Dzshcompletiondir=no",
];

/// `cargo xtask kmod-suite [--ours PATH]`.
pub fn run_cli(root: &Path, args: &[String]) -> Result<(), String> {
    let ours = match args {
        [] => None,
        [flag, path] if flag == "--ours" => Some(PathBuf::from(path)),
        _ => return Err("usage: cargo xtask kmod-suite [--ours PATH]".into()),
    };
    let started = Instant::now();
    let ours = match ours {
        Some(path) => path,
        None => {
            run(Command::new(cargo())
                .args(["build", "--release", "-p", "depmod"])
                .current_dir(root))?;
            root.join("target/release/depmod")
        }
    };
    let ours = fs::canonicalize(&ours).map_err(|e| format!("{}: {e}", ours.display()))?;
    if !has_interpreter(&ours)? {
        return Err(format!(
            "{} is statically linked: the suite's LD_PRELOAD path trap cannot reach it",
            ours.display()
        ));
    }

    ensure_packages(BUILD_PACKAGES)?;
    let kdir = kernel_headers()?;
    let dir = root.join("target/kmod-suite");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tarball = fetch_source(&dir)?;
    let source = unpack(&dir, &tarball)?;
    let build = dir.join("build");
    let log = dir.join("build.log");
    build_suite(&source, &build, &kdir, &log)?;
    let suite = build.join("testsuite/test-depmod");
    let cases = list_cases(&suite)?;
    println!(
        "kmod-suite: kmod 34.2's test-depmod ({}), module playground built with KDIR={}",
        suite.display(),
        kdir.display()
    );

    // The harness first: kmod's own depmod must pass everything.
    install_depmod(&build, None)?;
    let results = run_cases(&build, &kdir, &log, &cases, &dir.join("logs/kmod"))?;
    let kmod_pass = results.iter().filter(|r| r.passed).count();
    println!(
        "kmod-suite: kmod's own depmod: {kmod_pass} of {} pass",
        cases.len()
    );
    if kmod_pass != cases.len() {
        report(&results);
        return Err("kmod's own depmod fails its test suite here: the harness is broken".into());
    }

    install_depmod(&build, Some(&ours))?;
    let results = run_cases(&build, &kdir, &log, &cases, &dir.join("logs/ours"))?;
    println!("kmod-suite: our depmod ({}):", ours.display());
    report(&results);
    let passed = results.iter().filter(|r| r.passed).count();
    println!(
        "kmod-suite: {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
    println!(
        "test-depmod: {passed} passed, {} failed",
        results.len() - passed
    );
    if passed == results.len() {
        Ok(())
    } else {
        Err(format!(
            "kmod 34.2's test-depmod: {} of {} cases fail with our depmod (logs: {}; rerun \
             one: KDIR={} ninja -C {} testsuite/stamp-rootfs && {} CASE)",
            results.len() - passed,
            results.len(),
            dir.join("logs/ours").display(),
            kdir.display(),
            build.display(),
            suite.display()
        ))
    }
}

/// Whether an ELF executable names a dynamic loader (`PT_INTERP`): a static one
/// never loads the suite's `LD_PRELOAD` library.
fn has_interpreter(path: &Path) -> Result<bool, String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let field = |at: usize, len: usize| -> Option<u64> {
        let b = bytes.get(at..at + len)?;
        Some(b.iter().rev().fold(0, |v, &x| (v << 8) | u64::from(x)))
    };
    // ELF64 little endian only: the suite is built for this x86_64 host.
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01") {
        return Err(format!(
            "{}: not an ELF64 little-endian file",
            path.display()
        ));
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) =
        (field(0x20, 8), field(0x36, 2), field(0x38, 2))
    else {
        return Err(format!("{}: truncated ELF header", path.display()));
    };
    Ok((0..phnum).any(|i| {
        i.checked_mul(phentsize)
            .and_then(|off| off.checked_add(phoff))
            .and_then(|at| usize::try_from(at).ok())
            .and_then(|at| field(at, 4))
            == Some(3)
    }))
}

/// `KDIR` if set, else the newest `/usr/src/linux-headers-*-ARCH` (installing the
/// `linux-headers-ARCH` metapackage when there is none).
fn kernel_headers() -> Result<PathBuf, String> {
    if let Some(kdir) = std::env::var_os("KDIR") {
        return Ok(PathBuf::from(kdir));
    }
    let out = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .map_err(|e| format!("cannot run dpkg: {e}"))?;
    let arch = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let find = || -> Option<PathBuf> {
        fs::read_dir("/usr/src")
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with("linux-headers-")
                    && name.ends_with(&format!("-{arch}"))
                    && p.join("Makefile").exists()
            })
            .max_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()))
    };
    if let Some(kdir) = find() {
        return Ok(kdir);
    }
    let meta = format!("linux-headers-{arch}");
    let stamp = format!("/usr/share/doc/{meta}");
    ensure_packages(&[(meta.as_str(), stamp.as_str())])?;
    find().ok_or_else(|| format!("{meta} installed no /usr/src/linux-headers-*-{arch}"))
}

/// Compares names with their digit runs as numbers (`6.1.0-9` before `6.1.0-57`).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    fn key((digits, text): (bool, &str)) -> (bool, usize, &str) {
        let trimmed = text.trim_start_matches('0');
        if digits {
            (true, trimmed.len(), trimmed)
        } else {
            (false, 0, text)
        }
    }
    let (a, b) = (chunks(a), chunks(b));
    a.into_iter().map(key).cmp(b.into_iter().map(key))
}

/// The orig tarball, fetched once through a private apt state (`deb-src` trixie
/// from the machine's mirror); apt checks its hash against the signed index.
fn fetch_source(dir: &Path) -> Result<PathBuf, String> {
    let tarball = dir.join("src").join(ORIG);
    if tarball.exists() {
        return Ok(tarball);
    }
    let apt = dir.join("apt");
    let download = dir.join("download");
    let _ = fs::remove_dir_all(&download);
    for d in [
        apt.join("lists/partial"),
        apt.join("cache/archives/partial"),
        download.clone(),
        dir.join("src"),
    ] {
        fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let sources = apt.join("sources.list");
    let mirror = apt_source::mirror(Archive::Main)?;
    fs::write(&sources, format!("deb-src {mirror} trixie main\n"))
        .map_err(|e| format!("{}: {e}", sources.display()))?;
    let mut opts = private_options(&apt);
    opts.extend([
        "-oAcquire::Retries=3".to_string(),
        "-oAcquire::Languages=none".to_string(),
    ]);
    eprintln!("xtask: fetching kmod's source (trixie, {mirror})");
    let mut update = Command::new("apt-get");
    update.args(&opts).args(["-q", "update"]);
    run(&mut update).or_else(|_| run(&mut update))?;
    // The orig tarball only: upstream's tree, suite included, without Debian's
    // patches (and the .dsc, which we would not use).
    run(Command::new("apt-get")
        .args(&opts)
        .args(["-q", "source", "--download-only", "--tar-only", "kmod"])
        .current_dir(&download))?;
    let fetched = download.join(ORIG);
    if !fetched.exists() {
        let got: Vec<String> = fs::read_dir(&download)
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        return Err(format!(
            "trixie's kmod source is not upstream 34.2: apt fetched {got:?}, not {ORIG}"
        ));
    }
    fs::rename(&fetched, &tarball).map_err(|e| format!("{}: {e}", tarball.display()))?;
    let _ = fs::remove_dir_all(&download);
    Ok(tarball)
}

/// The unpacked source tree (unpacked once, then renamed into place whole).
fn unpack(dir: &Path, tarball: &Path) -> Result<PathBuf, String> {
    let source = dir.join(SOURCE_DIR);
    if source.join("testsuite/test-depmod.c").exists() {
        return Ok(source);
    }
    let tmp = dir.join("unpack.tmp");
    let _ = fs::remove_dir_all(&tmp);
    let _ = fs::remove_dir_all(&source);
    fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(tarball)
        .arg("-C")
        .arg(&tmp))?;
    fs::rename(tmp.join(SOURCE_DIR), &source).map_err(|e| format!("{}: {e}", source.display()))?;
    let _ = fs::remove_dir_all(&tmp);
    Ok(source)
}

/// Runs `cmd` with its output appended to `log`; on failure the error carries the
/// log's tail.
fn logged(cmd: &mut Command, log: &Path) -> Result<(), String> {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let status = cmd
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        return Ok(());
    }
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    Err(format!(
        "{cmd:?} failed: {status}; end of {}:\n{tail}",
        log.display()
    ))
}

/// Configures (once) and builds kmod, the test program and its preload libraries.
/// A cached build directory that no longer builds (moved, say) is set up again.
fn build_suite(source: &Path, build: &Path, kdir: &Path, log: &Path) -> Result<(), String> {
    let _ = fs::remove_file(log);
    let attempt = |fresh: bool| -> Result<(), String> {
        if fresh || !build.join("build.ninja").exists() {
            let _ = fs::remove_dir_all(build);
            eprintln!(
                "xtask: building kmod 34.2 and its test suite (log: {})",
                log.display()
            );
            logged(
                Command::new("meson")
                    .arg("setup")
                    .arg(build)
                    .arg(source)
                    .args(MESON_OPTIONS),
                log,
            )?;
        }
        logged(
            Command::new("ninja")
                .arg("-C")
                .arg(build)
                .args(TARGETS)
                .env("KDIR", kdir),
            log,
        )
    };
    attempt(false).or_else(|e| {
        eprintln!("xtask: warning: cached kmod build failed, setting it up again: {e}");
        attempt(true)
    })
}

/// The case names `test-depmod --list` prints (`\tNAME, DESCRIPTION`).
fn list_cases(suite: &Path) -> Result<Vec<String>, String> {
    let out = Command::new(suite)
        .arg("--list")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", suite.display()))?;
    let cases: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix('\t'))
        .filter_map(|l| l.split(',').next())
        .map(str::to_string)
        .collect();
    if cases.len() != CASES {
        return Err(format!(
            "{} lists {} cases, kmod 34.2 has {CASES}: {cases:?}",
            suite.display(),
            cases.len()
        ));
    }
    Ok(cases)
}

/// Makes `<build>/depmod` kmod's (the symlink meson creates) or a copy of `ours`.
fn install_depmod(build: &Path, ours: Option<&Path>) -> Result<(), String> {
    let depmod = build.join("depmod");
    match fs::remove_file(&depmod) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("{}: {e}", depmod.display()))
        }
        _ => {}
    }
    match ours {
        None => std::os::unix::fs::symlink(build.join("kmod"), &depmod).map(|_| ()),
        Some(path) => fs::copy(path, &depmod).map(|_| ()),
    }
    .map_err(|e| format!("{}: {e}", depmod.display()))
}

/// One case's outcome and everything it printed.
struct CaseResult {
    name: String,
    passed: bool,
    output: String,
}

/// Remakes the suite's rootfs (as `meson test` does: the cases write into it),
/// then runs each case alone, its output and depmod's in one log per case.
fn run_cases(
    build: &Path,
    kdir: &Path,
    log: &Path,
    cases: &[String],
    logs: &Path,
) -> Result<Vec<CaseResult>, String> {
    logged(
        Command::new("ninja")
            .arg("-C")
            .arg(build)
            .arg("testsuite/stamp-rootfs")
            .env("KDIR", kdir),
        log,
    )?;
    let _ = fs::remove_dir_all(logs);
    fs::create_dir_all(logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let suite = build.join("testsuite/test-depmod");
    let mut results = Vec::new();
    for name in cases {
        let path = logs.join(format!("{name}.log"));
        let file = fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new(&suite)
            .arg(name)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", suite.display()))?;
        // The suite kills a case after 2 s itself; this only guards the harness.
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().map_err(|e| e.to_string())?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = fs::read_to_string(&path).unwrap_or_default();
        results.push(CaseResult {
            passed: case_passed(&output, name),
            name: name.clone(),
            output,
        });
    }
    Ok(results)
}

/// Whether the suite's verdict line for `name` is a pass. Its exit status is no
/// guide: a single case returns the raw wait status, which truncates to 0.
fn case_passed(output: &str, name: &str) -> bool {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("TESTSUITE: "))
        .filter_map(|l| l.strip_suffix(name)?.strip_suffix(": "))
        .any(|verdict| {
            let mut parts = verdict.split('\x1b');
            let first = parts.next().unwrap_or("");
            let verdict: String = [first].into_iter().chain(parts.map(strip_sgr)).collect();
            verdict == "PASSED" || verdict == "EXPECTED FAIL"
        })
}

/// Drops an ANSI colour code's `[…m` (the suite colours verdicts on a terminal).
fn strip_sgr(s: &str) -> &str {
    match s.strip_prefix('[') {
        Some(rest) => rest.split_once('m').map_or(s, |(_, after)| after),
        None => s,
    }
}

fn report(results: &[CaseResult]) {
    for r in results {
        println!("  {} {}", if r.passed { "PASS" } else { "FAIL" }, r.name);
    }
    for r in results.iter().filter(|r| !r.passed) {
        println!("--- {} ---", r.name);
        for line in r.output.lines() {
            println!("  | {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let pass = "TESTSUITE: running a_b, in forked context\nTESTSUITE: PASSED: a_b\n";
        assert!(case_passed(pass, "a_b"));
        assert!(!case_passed(pass, "b"));
        assert!(case_passed("TESTSUITE: EXPECTED FAIL: loop\n", "loop"));
        assert!(case_passed("TESTSUITE: \x1b[1;32mPASSED\x1b[0m: x\n", "x"));
        for fail in [
            "TESTSUITE: ERR: FAILED: x\n",
            "TESTSUITE: ERR: FAILED: exit ok but outputs do not match: x\n",
            "TESTSUITE: EXPECTED FAIL: exit with 1 but outputs do not match: x\n",
            "TESTSUITE: ERR: UNEXPECTED PASS: exit with 0: x\n",
            "TESTSUITE: SKIPPED: x\n",
            "",
        ] {
            assert!(!case_passed(fail, "x"), "{fail:?}");
        }
    }

    #[test]
    fn natural_order() {
        use std::cmp::Ordering::Less;
        assert_eq!(
            natural_cmp(
                "linux-headers-6.1.0-9-amd64",
                "linux-headers-6.1.0-57-amd64"
            ),
            Less
        );
        assert_eq!(natural_cmp("6.1.0-57", "6.10.0-1"), Less);
    }
}
