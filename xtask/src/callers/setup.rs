//! What every check shares: the test tree (a subset of the real Debian 12 tree, with
//! a `System.map` made from `Module.symvers`), the Debian packages the tools come
//! from (unpacked, never installed) and the overlays laid over `/usr`, and running
//! a tool in a private mount namespace.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::apt::Apt;
use crate::util::debian::{self, KVER};
use crate::util::run;

use super::Ctx;

/// Modules whose dependency closure forms the tree.
const ROOTS: &[&str] = &[
    "btrfs",
    "xfs",
    "ext4",
    "vfat",
    "isofs",
    "squashfs",
    "overlay",
    "fuse",
    "nf_tables",
    "nft_ct",
    "nft_nat",
    "nft_chain_nat",
    "nft_fib_inet",
    "dm_crypt",
    "raid456",
    "virtio_net",
    "virtio_blk",
    "e1000e",
    "nvme",
    "nbd",
    "iscsi_tcp",
];

/// Directories taken whole (the crypto modules softdeps name).
const WHOLE_DIRS: &[&str] = &["kernel/crypto/", "kernel/arch/x86/crypto/"];

/// Left out on purpose: `nft_fib_inet` needs them, so `-e` has something to report.
const LEFT_OUT: &[&str] = &["nft_fib_ipv4", "nft_fib_ipv6"];

/// The module the make and DKMS checks install (one of `LEFT_OUT`).
pub(super) const EXTRA_MODULE: &str = "kernel/net/ipv4/netfilter/nft_fib_ipv4.ko";

impl Ctx {
    pub(super) fn prepare(root: &Path, kmod: &Path) -> Result<Ctx, String> {
        let dir = root.join("target/callers");
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let image = debian::image_root()?;
        let debian_modules = debian::module_dir()?;
        let full = dir.join("full");
        let full_dep = full.join("lib/modules").join(KVER).join("modules.dep");
        if !full_dep.is_file() {
            // kmod 34.2's modules.dep of the whole tree picks the subset.
            let _ = fs::remove_dir_all(&full);
            let out = Command::new(kmod)
                .args([
                    "-b".as_ref(),
                    image.as_os_str(),
                    "-o".as_ref(),
                    full.as_os_str(),
                ])
                .arg(KVER)
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() || !full_dep.is_file() {
                return Err(format!(
                    "kmod 34.2 on the full tree: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let tree = dir.join("tree");
        make_subset(&debian_modules, &full_dep, &tree)?;
        let system_map = dir.join("System.map");
        write_system_map(&debian::module_symvers()?, &system_map)?;
        let apt = Apt::new(root, "amd64")?;
        Ok(Ctx {
            kmod: kmod.to_path_buf(),
            tree,
            system_map,
            debian_boot: image.join("boot"),
            debian_modules,
            apt,
            dir,
        })
    }

    /// A copy of the pristine tree as `work/NAME` (a root holding `lib/modules/KVER`).
    pub(super) fn copy_tree(&self, work: &Path, name: &str) -> Result<PathBuf, String> {
        let dest = work.join(name);
        fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
        run(Command::new("cp")
            .arg("-a")
            .arg(self.tree.join("lib"))
            .arg(&dest))?;
        Ok(dest)
    }

    /// `work/boot` with Debian's config and either the synthesized System.map or
    /// Debian's placeholder.
    pub(super) fn boot(&self, work: &Path, debian_map: bool) -> Result<PathBuf, String> {
        let boot = work.join("boot");
        fs::create_dir_all(&boot).map_err(|e| e.to_string())?;
        let config = format!("config-{KVER}");
        let map = format!("System.map-{KVER}");
        fs::copy(self.debian_boot.join(&config), boot.join(&config)).map_err(|e| e.to_string())?;
        let from = if debian_map {
            self.debian_boot.join(&map)
        } else {
            self.system_map.clone()
        };
        fs::copy(from, boot.join(&map)).map_err(|e| e.to_string())?;
        Ok(boot)
    }

    pub(super) fn unpacked(&self, package: &str) -> Result<PathBuf, String> {
        Ok(self.apt.fetch(&[package])?.remove(0))
    }

    pub(super) fn all_unpacked(&self, packages: &[&str]) -> Result<Vec<PathBuf>, String> {
        self.apt.fetch(packages)
    }

    /// One directory to lay over `/usr`, merging the packages' `usr/` with their
    /// `bin/`, `sbin/` and `lib/` (Debian 12 packages still ship some files there;
    /// on a merged-/usr system those are `/usr/bin` …). Copied, not linked: tools
    /// copy what they find into images, and a link would point outside them.
    pub(super) fn layer(&self, name: &str, packages: &[PathBuf]) -> Result<PathBuf, String> {
        let layer = self.dir.join("layers").join(name);
        let _ = fs::remove_dir_all(&layer);
        fs::create_dir_all(&layer).map_err(|e| e.to_string())?;
        for pkg in packages {
            for (from, to) in [
                ("usr", ""),
                ("bin", "bin"),
                ("sbin", "sbin"),
                ("lib", "lib"),
            ] {
                let src = pkg.join(from);
                if !src.is_dir() {
                    continue;
                }
                let dest = layer.join(to);
                fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
                let mut dot = src.into_os_string();
                dot.push("/.");
                run(Command::new("cp").arg("-a").arg(dot).arg(&dest))?;
            }
        }
        Ok(layer)
    }
}

/// Writes the subset of `modules` (the cached Debian module directory) chosen from
/// kmod's `modules.dep` of the whole tree, as `tree/lib/modules/KVER`.
fn make_subset(modules: &Path, full_dep: &Path, tree: &Path) -> Result<(), String> {
    let text = fs::read_to_string(full_dep).map_err(|e| format!("{}: {e}", full_dep.display()))?;
    let mut deps: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut by_name: HashMap<String, &str> = HashMap::new();
    for line in text.lines() {
        let Some((module, rest)) = line.split_once(':') else {
            continue;
        };
        deps.insert(module, rest.split_whitespace().collect());
        by_name.insert(module_name(module), module);
    }
    // A module and its dependencies (modules.dep lists them all, not just direct ones).
    let mut chosen: BTreeSet<&str> = BTreeSet::new();
    let mut wanted: Vec<&str> = Vec::new();
    for name in ROOTS {
        let path = by_name
            .get(*name)
            .ok_or_else(|| format!("module {name} is not in the Debian tree"))?;
        wanted.push(path);
    }
    wanted.extend(
        deps.keys()
            .copied()
            .filter(|m| WHOLE_DIRS.iter().any(|d| m.starts_with(d))),
    );
    for m in wanted {
        chosen.insert(m);
        chosen.extend(deps[m].iter().copied());
    }
    for name in LEFT_OUT {
        let path = by_name.get(*name).ok_or_else(|| format!("no {name}"))?;
        chosen.remove(path);
    }
    let _ = fs::remove_dir_all(tree);
    let moddir = tree.join("lib/modules").join(KVER);
    for m in &chosen {
        let dest = moddir.join(m);
        fs::create_dir_all(dest.parent().ok_or("module without a directory")?)
            .map_err(|e| e.to_string())?;
        if fs::hard_link(modules.join(m), &dest).is_err() {
            fs::copy(modules.join(m), &dest).map_err(|e| format!("{m}: {e}"))?;
        }
    }
    let order = fs::read_to_string(modules.join("modules.order")).map_err(|e| e.to_string())?;
    let kept: String = order
        .lines()
        .filter(|l| chosen.contains(l.trim()))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(moddir.join("modules.order"), kept).map_err(|e| e.to_string())?;
    for name in ["modules.builtin", "modules.builtin.modinfo"] {
        fs::copy(modules.join(name), moddir.join(name)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `kernel/fs/fat/vfat.ko` → `vfat` (dashes as underscores).
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// A System.map as a kernel build writes it, as far as depmod reads one: for each
/// symbol vmlinux exports (`Module.symvers`), its `T` line and its `__ksymtab_` entry.
fn write_system_map(symvers: &Path, dest: &Path) -> Result<(), String> {
    let text = fs::read_to_string(symvers).map_err(|e| format!("{}: {e}", symvers.display()))?;
    let mut code = String::new();
    let mut ksymtab = String::new();
    let mut n: u64 = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() >= 3 && fields[2] == "vmlinux" {
            code.push_str(&format!(
                "{:016x} T {}\n",
                0xffff_ffff_8100_0000 + 16 * n,
                fields[1]
            ));
            ksymtab.push_str(&format!(
                "{:016x} r __ksymtab_{}\n",
                0xffff_ffff_8280_0000 + 12 * n,
                fields[1]
            ));
            n += 1;
        }
    }
    if n < 1000 {
        return Err(format!("{}: only {n} vmlinux symbols", symvers.display()));
    }
    fs::write(dest, code + &ksymtab).map_err(|e| e.to_string())
}

/// Runs `script` with `sh -e` in a private mount namespace (mounts made there are
/// gone when it exits; the host's are never changed).
pub(super) fn namespace(script: &str, env: &[(&str, String)]) -> Result<Output, String> {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--fork",
        "sh",
        "-ec",
        script,
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    command(&mut cmd)
}

/// Runs a command without cargo's make jobserver variables.
pub(super) fn command(cmd: &mut Command) -> Result<Output, String> {
    for var in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CARGO_MAKEFLAGS"] {
        cmd.env_remove(var);
    }
    cmd.output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))
}

pub(super) fn fresh_dir(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    }
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

pub(super) fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Overlay lower directories, top first (no `:` or `,` allowed in them).
pub(super) fn join_lower(dirs: &[PathBuf]) -> Result<String, String> {
    let parts: Vec<String> = dirs.iter().map(|d| path_str(d)).collect();
    if let Some(bad) = parts.iter().find(|p| p.contains([':', ','])) {
        return Err(format!(
            "{bad}: overlayfs cannot take a path with ':' or ','"
        ));
    }
    Ok(parts.join(":"))
}

/// `dracut-core_059-4_amd64` → `dracut-core 059-4`.
pub(super) fn deb_name(unpacked: &Path) -> String {
    let stem = unpacked
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = stem.splitn(3, '_');
    match (parts.next(), parts.next()) {
        (Some(p), Some(v)) => format!("{p} {v}"),
        _ => stem,
    }
}
