//! `cargo xtask image ARCH` (x86_64, aarch64, armv7, riscv64): a gzip'd newc initramfs in which
//! `/init` runs our static depmod and loads modules with the indexes it wrote.
//!
//! Inputs, all cached under `target/`: Debian 12's kernel package of ARCH (the
//! x86_64 one through `tests/common/debian.rs`, pinned by hash; arm64's and armhf's
//! armmp with a private foreign-architecture apt state, `util/apt.rs`; for riscv64,
//! which Debian 12 does not release, everything comes from Debian 13), `busybox-static` of ARCH, our
//! `cargo xtask dist` binary of ARCH and, when the plan uses it, Debian's `kmod` with
//! the shared libraries it needs. From the repository: `images/init` (the `/init`
//! script) and `images/ARCH/plan` (the modprobe steps).
//!
//! The module subset is the plan's modules and the closure of their dependencies
//! and softdeps, computed from our depmod's outputs on the whole tree. The image
//! carries the modules, `modules.order`, `modules.builtin` and
//! `modules.builtin.modinfo`, and no index: depmod writes those inside the VM.
//! Our depmod also runs on the host over the staged tree (`target/images/ARCH/host`,
//! and kmod 34.2 into `oracle` when `cargo xtask oracle` has fetched it) so that
//! `cargo xtask qemu` can compare what the VM wrote (the [`Image`] it returns).
//!
//! The dist binaries come from `dist`'s builder, which `main.rs` passes in. The
//! archive is written by `cpio.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::apt::Apt;
use crate::util::arch::{Arch, Build, BuildDist};
use crate::util::image::{parse_arch, Image};
use crate::util::{self, debian, ensure_packages, oracle, run};

use cpio::{Kind, Writer};

mod cpio;

/// `cargo xtask image ARCH`: builds the image (its dist binaries with `build_dist`)
/// and prints the kernel's and the initramfs's paths.
pub fn run_cli(root: &Path, args: &[String], build_dist: BuildDist) -> Result<(), String> {
    let image = build(root, parse_arch(args)?, build_dist)?;
    println!("{}\n{}", image.kernel.display(), image.initrd.display());
    Ok(())
}

/// The kernel package of `arch`, unpacked: its root directory.
fn kernel_tree(root: &Path, arch: Arch) -> Result<PathBuf, String> {
    let (pinned, meta) = match arch {
        Arch::X86_64 => return debian::image_root(),
        Arch::Aarch64 => ("linux-image-6.1.0-56-arm64-unsigned", "linux-image-arm64"),
        // Debian 12's multiplatform ARMv7 kernel (it runs on QEMU's `virt`).
        Arch::Armv7 => ("linux-image-6.1.0-56-armmp", "linux-image-armmp"),
        // Debian 13's: riscv64 is no release architecture of Debian 12.
        Arch::Riscv64 => ("", "linux-image-riscv64"),
        Arch::S390x => return Err(format!("no image for {}", arch.name())),
    };
    let apt = arch.apt(root)?;
    let candidates: Vec<&str> = [pinned].into_iter().filter(|p| !p.is_empty()).collect();
    let pkg = apt.pick(&candidates, meta)?;
    let tree = apt.fetch(&[&pkg])?.remove(0);
    // Debian 13's kernel packages put the modules under /usr/lib/modules (/lib is a
    // link to usr/lib there): give depmod -b the /lib/modules it reads.
    if !tree.join("lib").exists() && tree.join("usr/lib/modules").is_dir() {
        std::os::unix::fs::symlink("usr/lib", tree.join("lib")).map_err(|e| e.to_string())?;
    }
    Ok(tree)
}

/// Debian's multiarch triplet (where shared libraries live).
fn multiarch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64-linux-gnu",
        Arch::Aarch64 => "aarch64-linux-gnu",
        Arch::Armv7 => "arm-linux-gnueabihf",
        Arch::Riscv64 => "riscv64-linux-gnu",
        Arch::S390x => "s390x-linux-gnu",
    }
}

fn kernel_image(arch: Arch) -> &'static str {
    match arch {
        // bzImage; arm64's vmlinuz is a plain `Image` that QEMU boots directly.
        Arch::X86_64 | Arch::Aarch64 => "vmlinuz",
        Arch::Armv7 => "zImage",
        Arch::Riscv64 => "Image",
        Arch::S390x => "vmlinuz",
    }
}

/// Module name of a modules.dep path: basename without `.ko[.gz|.xz|.zst]`, `-`
/// as `_`.
fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = base.split(".ko").next().unwrap_or(base);
    base.replace('-', "_")
}

/// What depmod said about the whole tree.
struct Tree {
    /// name → path relative to the module directory.
    path: BTreeMap<String, String>,
    /// name → all dependencies (modules.dep is already transitive).
    deps: BTreeMap<String, Vec<String>>,
    /// alias → module names (exact patterns only).
    alias: BTreeMap<String, Vec<String>>,
    /// name → softdep targets (pre and post), one list per modules.softdep line.
    softdep: BTreeMap<String, Vec<Vec<String>>>,
    builtin: BTreeSet<String>,
}

impl Tree {
    fn read(outputs: &Path, moddir: &Path) -> Result<Tree, String> {
        let read = |dir: &Path, f: &str| {
            fs::read_to_string(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()))
        };
        let mut t = Tree {
            path: BTreeMap::new(),
            deps: BTreeMap::new(),
            alias: BTreeMap::new(),
            softdep: BTreeMap::new(),
            builtin: BTreeSet::new(),
        };
        for line in read(outputs, "modules.dep")?.lines() {
            let Some((m, deps)) = line.split_once(':') else {
                continue;
            };
            let name = module_name(m);
            t.path.insert(name.clone(), m.to_string());
            t.deps
                .insert(name, deps.split_whitespace().map(module_name).collect());
        }
        for line in read(outputs, "modules.alias")?.lines() {
            let mut w = line.split_whitespace();
            if let (Some("alias"), Some(pattern), Some(name)) = (w.next(), w.next(), w.next()) {
                t.alias
                    .entry(pattern.to_string())
                    .or_default()
                    .push(name.to_string());
            }
        }
        for line in read(outputs, "modules.softdep")?.lines() {
            let mut w = line.split_whitespace();
            if let (Some("softdep"), Some(name)) = (w.next(), w.next()) {
                let targets = w.filter(|x| !x.ends_with(':')).map(str::to_string);
                t.softdep
                    .entry(module_name(name))
                    .or_default()
                    .push(targets.collect());
            }
        }
        for line in read(moddir, "modules.builtin")?.lines() {
            t.builtin.insert(module_name(line));
        }
        Ok(t)
    }

    /// The modules a name or alias stands for (empty: built into the kernel).
    fn resolve(&self, what: &str) -> Result<Vec<String>, String> {
        let name = what.replace('-', "_");
        if self.path.contains_key(&name) {
            return Ok(vec![name]);
        }
        if let Some(names) = self.alias.get(what) {
            return Ok(names.clone());
        }
        if self.builtin.contains(&name) {
            return Ok(Vec::new());
        }
        Err(format!(
            "{what}: neither a module nor an alias of this tree"
        ))
    }

    /// `m`, its dependencies, and recursively every module its and their softdeps
    /// stand for.
    fn closure(&self, m: &str, into: &mut BTreeSet<String>) -> Result<(), String> {
        if !into.insert(m.to_string()) {
            return Ok(());
        }
        let mut with_deps = vec![m.to_string()];
        with_deps.extend(self.deps.get(m).cloned().unwrap_or_default());
        for d in &with_deps {
            into.insert(d.clone());
            for s in self.softdep.get(d).into_iter().flatten().flatten() {
                for p in self.resolve(s)? {
                    self.closure(&p, into)?;
                }
            }
        }
        Ok(())
    }
}

/// One plan line.
struct Step {
    tool: String,
    by: String,
    what: String,
}

fn read_plan(path: &Path) -> Result<Vec<Step>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut steps = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        match w[..] {
            [tool @ ("kmod" | "busybox"), by @ ("name" | "alias"), what] => steps.push(Step {
                tool: tool.into(),
                by: by.into(),
                what: what.into(),
            }),
            _ => return Err(format!("{}: bad line: {line}", path.display())),
        }
    }
    Ok(steps)
}

/// Where kmod's modprobe is in the image (a symlink to `/usr/bin/kmod`: kmod acts
/// as modprobe when called by that name).
const KMOD_MODPROBE: &str = "usr/libexec/kmod/modprobe";

fn single_dir(dir: &Path) -> Result<String, String> {
    let names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match &names[..] {
        [one] => Ok(one.clone()),
        _ => Err(format!(
            "{}: expected one entry, found {names:?}",
            dir.display()
        )),
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))
}

/// Runs a depmod (`program`, maybe a wrapper script) on `base` into `out`.
fn run_depmod(program: &Path, base: &Path, out: &Path, kver: &str) -> Result<PathBuf, String> {
    let _ = fs::remove_dir_all(out);
    fs::create_dir_all(out).map_err(|e| e.to_string())?;
    run(Command::new(program)
        .arg("-b")
        .arg(base)
        .arg("-o")
        .arg(out)
        .arg(kver))?;
    Ok(out.join("lib/modules").join(kver))
}

/// Builds the image of `arch`; `build_dist` builds the dist binaries it needs.
pub fn build(root: &Path, arch: Arch, build_dist: BuildDist) -> Result<Image, String> {
    ensure_packages(&[])?;
    let work = root.join("target/images").join(arch.name());
    fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let apt = arch.apt(root)?;

    let tree = kernel_tree(root, arch)?;
    let kver = single_dir(&tree.join("lib/modules"))?;
    let moddir = tree.join("lib/modules").join(&kver);
    let ours = build_dist(root, Build { arch, tiny: false })?;
    let host = if arch == Arch::X86_64 {
        ours.clone()
    } else {
        build_dist(
            root,
            Build {
                arch: Arch::X86_64,
                tiny: false,
            },
        )?
    };

    // The whole tree's dependencies, from our depmod.
    let full = run_depmod(&host, &tree, &work.join("full"), &kver)?;
    let info = Tree::read(&full, &moddir)?;

    // The plan: what each step loads, what must then be loaded, and the subset.
    let plan = read_plan(&root.join("images").join(arch.name()).join("plan"))?;
    let mut subset = BTreeSet::new();
    let mut plan_lines = String::new();
    let mut ids = Vec::new();
    for (i, step) in plan.iter().enumerate() {
        let targets = if step.by == "name" {
            let name = step.what.replace('-', "_");
            if !info.path.contains_key(&name) {
                return Err(format!("{}: not a module of {kver}", step.what));
            }
            vec![name]
        } else {
            info.resolve(&step.what)?
        };
        if targets.is_empty() {
            return Err(format!("{}: built into {kver}", step.what));
        }
        let mut groups: Vec<String> = vec![targets.join(",")];
        let mut loaded: Vec<String> = Vec::new();
        for t in &targets {
            info.closure(t, &mut subset)?;
        }
        if let [one] = &targets[..] {
            loaded.push(one.clone());
            for d in info.deps.get(one).into_iter().flatten() {
                groups.push(d.clone());
                loaded.push(d.clone());
            }
        }
        if step.tool == "kmod" {
            // kmod also loads the softdeps of the module and of its dependencies:
            // those of the first softdep line that names the module ("as modprobe
            // from module-init-tools does"), so btrfs gets blake2b-256 only.
            for m in &loaded {
                let first = info.softdep.get(m).and_then(|lines| lines.first());
                for s in first.into_iter().flatten() {
                    let providers = info.resolve(s)?;
                    if !providers.is_empty() {
                        groups.push(providers.join(","));
                    }
                }
            }
        }
        let mut seen = BTreeSet::new();
        groups.retain(|g| seen.insert(g.clone()));
        let command = match step.tool.as_str() {
            "kmod" => format!("/{KMOD_MODPROBE} {}", step.what),
            _ => format!("/bin/busybox modprobe {}", step.what),
        };
        let id = format!(
            "{} {} modprobe {} ({})",
            i + 1,
            step.tool,
            step.what,
            step.by
        );
        plan_lines.push_str(&format!("{id};{command};{}\n", groups.join(" ")));
        ids.push(id);
    }

    // Stage the root file system.
    let stage = work.join("root");
    let _ = fs::remove_dir_all(&stage);
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc/depmod-test",
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "root",
    ] {
        fs::create_dir_all(stage.join(d)).map_err(|e| e.to_string())?;
    }
    copy(&root.join("images/init"), &stage.join("init"))?;
    fs::write(stage.join("etc/depmod-test/plan"), &plan_lines).map_err(|e| e.to_string())?;
    let busybox = apt.fetch(&["busybox-static"])?.remove(0);
    // /bin/busybox in Debian 12, /usr/bin/busybox in Debian 13.
    let busybox = ["bin/busybox", "usr/bin/busybox"]
        .iter()
        .find_map(|p| util::apt::resolve(&busybox, p))
        .ok_or("busybox-static without busybox")?;
    copy(&busybox, &stage.join("bin/busybox"))?;
    copy(&ours, &stage.join("sbin/depmod"))?;
    let staged_mods = stage.join("lib/modules").join(&kver);
    for f in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        copy(&moddir.join(f), &staged_mods.join(f))?;
    }
    for m in &subset {
        let rel = &info.path[m];
        copy(&moddir.join(rel), &staged_mods.join(rel))?;
    }
    if plan.iter().any(|s| s.tool == "kmod") {
        stage_kmod(&apt, arch, &stage)?;
    }

    // What our depmod (and kmod 34.2) write for this very tree on the host.
    let host_outputs = run_depmod(&host, &stage, &work.join("host"), &kver)?;
    let oracle = oracle::depmod(root);
    let oracle_outputs = if oracle.exists() {
        Some(run_depmod(&oracle, &stage, &work.join("oracle"), &kver)?)
    } else {
        None
    };

    // Pack: the staged tree plus the console device the kernel opens for /init.
    let mut cpio = Writer::new();
    cpio.add_tree(&stage, "")?;
    cpio.add("dev/console", 0o600, Kind::CharDev(5, 1));
    let raw = work.join("initrd.cpio");
    fs::write(&raw, cpio.finish()).map_err(|e| e.to_string())?;
    run(Command::new("gzip").args(["-n", "-6", "-f"]).arg(&raw))?;
    let initrd = work.join("initrd.cpio.gz");
    let kernel = work.join(kernel_image(arch));
    // riscv64's is `vmlinux-KVER`: an uncompressed `Image` (with an EFI stub's
    // PE header), which QEMU loads as it is.
    let boot = tree.join("boot");
    let shipped = [format!("vmlinuz-{kver}"), format!("vmlinux-{kver}")]
        .iter()
        .map(|f| boot.join(f))
        .find(|p| p.exists())
        .ok_or(format!(
            "{}: no vmlinuz-{kver} nor vmlinux-{kver}",
            boot.display()
        ))?;
    copy(&shipped, &kernel)?;

    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let modules_size: u64 = subset
        .iter()
        .map(|m| size(&staged_mods.join(&info.path[m])))
        .sum();
    println!(
        "image {}: Linux {kver}, {} modules ({:.1} MiB): {}",
        arch.name(),
        subset.len(),
        modules_size as f64 / 1048576.0,
        subset.iter().cloned().collect::<Vec<_>>().join(" ")
    );
    println!(
        "image {}: {} ({:.1} MiB), {} ({:.1} MiB)",
        arch.name(),
        initrd.strip_prefix(root).unwrap_or(&initrd).display(),
        size(&initrd) as f64 / 1048576.0,
        kernel.strip_prefix(root).unwrap_or(&kernel).display(),
        size(&kernel) as f64 / 1048576.0
    );
    Ok(Image {
        arch,
        kver,
        kernel,
        initrd,
        steps: ids,
        host_outputs,
        oracle_outputs,
    })
}

/// Debian's kmod and the shared libraries it loads (found through `readelf`),
/// placed where Debian puts them.
fn stage_kmod(apt: &Apt, arch: Arch, stage: &Path) -> Result<(), String> {
    // Debian 13 renamed libssl3 (64-bit time_t) and its kmod 34 loads the
    // decompression libraries with dlopen (copied below, not NEEDED).
    let pkgs = if arch.suite() == "trixie" {
        apt.fetch(&[
            "kmod",
            "libkmod2",
            "liblzma5",
            "libzstd1",
            "libssl3t64",
            "libc6",
            "zlib1g",
        ])?
    } else {
        apt.fetch(&[
            "kmod", "libkmod2", "liblzma5", "libzstd1", "libssl3", "libc6",
        ])?
    };
    let kmod = ["bin/kmod", "usr/bin/kmod"]
        .iter()
        .find_map(|p| util::apt::resolve(&pkgs[0], p))
        .ok_or("kmod package without kmod")?;
    copy(&kmod, &stage.join("usr/bin/kmod"))?;
    let link = stage.join(KMOD_MODPROBE);
    fs::create_dir_all(link.parent().unwrap()).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink("/usr/bin/kmod", &link).map_err(|e| e.to_string())?;

    let ma = multiarch(arch);
    let find = |file: &str| {
        pkgs.iter().find_map(|p| {
            [format!("lib/{ma}/{file}"), format!("usr/lib/{ma}/{file}")]
                .iter()
                .find_map(|c| util::apt::resolve(p, c))
        })
    };
    let mut todo = vec![kmod.clone()];
    let mut done = BTreeSet::new();
    let mut interp = None;
    while let Some(elf) = todo.pop() {
        let out = Command::new("readelf")
            .args(["-d", "-l", "-W"])
            .arg(&elf)
            .output()
            .map_err(|e| format!("readelf: {e}"))?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(rest) = line.split("program interpreter: ").nth(1) {
                interp = Some(rest.trim_end_matches(']').to_string());
            }
            if line.contains("(NEEDED)") {
                let lib = line.split('[').nth(1).unwrap_or("").trim_end_matches(']');
                if done.insert(lib.to_string()) {
                    let path = find(lib).ok_or(format!("{lib}: not in {pkgs:?}"))?;
                    copy(&path, &stage.join("lib").join(ma).join(lib))?;
                    todo.push(path);
                }
            }
        }
    }
    if arch.suite() == "trixie" {
        for lib in ["liblzma.so.5", "libzstd.so.1", "libz.so.1"] {
            if done.insert(lib.to_string()) {
                let path = find(lib).ok_or(format!("{lib}: not in {pkgs:?}"))?;
                copy(&path, &stage.join("lib").join(ma).join(lib))?;
            }
        }
    }
    let interp = interp.ok_or("kmod has no program interpreter")?;
    let ld = pkgs
        .iter()
        .find_map(|p| {
            // Debian 13's packages hold /usr only (/lib is base-files' link).
            util::apt::resolve(p, &interp)
                .or_else(|| util::apt::resolve(p, &format!("/usr{interp}")))
        })
        .ok_or(format!("{interp}: not in libc6"))?;
    copy(&ld, &stage.join(interp.trim_start_matches('/')))?;
    Ok(())
}
