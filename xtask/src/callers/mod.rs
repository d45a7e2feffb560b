//! `cargo xtask callers [--ours PATH] [CHECK…]`: the tools that call depmod, each run
//! once with our depmod and once with kmod 34.2 on the same input, every file they
//! leave behind compared byte for byte.
//!
//! The input is a subset of the real Debian 12 tree (`tests/common/debian.rs`): the
//! dependency closure of a few file systems, netfilter, md/dm, virtio, NVMe and iSCSI
//! drivers, plus every crypto module (softdep targets): 165 modules, with
//! `modules.order` (filtered), `modules.builtin` and `modules.builtin.modinfo`.
//! `nft_fib_inet` is in it without `nft_fib_ipv4` and `nft_fib_ipv6`, so `-e`
//! reports unknown symbols; the make and DKMS checks install `nft_fib_ipv4`.
//!
//! Debian's `System.map` is a one-line placeholder (the real one is in the 858 MB
//! `-dbg` package), so where a caller passes `-F System.map` as a kernel build would,
//! it gets one made from the headers package's `Module.symvers`: a `T` and an
//! `r __ksymtab_` line for each of vmlinux's 10503 exports. DKMS gets Debian's own
//! placeholder, as on a Debian system.
//!
//! The tools run unmodified, from Debian 12 packages fetched and unpacked without
//! installing them (`util/apt.rs`). Those that insist on absolute paths run in a private
//! mount namespace (`unshare --mount`): an overlay on `/usr` adds the unpacked
//! packages, and bind mounts put the test tree on `/lib/modules` and `/boot`, so the
//! host is never written. Our depmod is reached the way each tool finds depmod:
//!
//! - `kbuild-depmod.sh`: linux-kbuild-6.1's `scripts/depmod.sh DEPMOD KVER`, run as
//!   kbuild runs it (cwd holding `System.map`, `INSTALL_MOD_PATH` set).
//! - `kbuild-make`: `make -C /usr/src/linux-headers-KVER M=DIR modules_install
//!   DEPMOD=…` with Debian's headers and kbuild (a prebuilt `nft_fib_ipv4.ko` as
//!   the external module; `System.map` added to the headers directory).
//! - `mkinitramfs`: initramfs-tools' `mkinitramfs` (MODULES=list: btrfs ext4 vfat).
//!   It resets PATH to `/usr/bin:/sbin:/bin`, so our depmod is `/usr/bin/depmod`
//!   in the overlay. It runs depmod twice: `depmod KVER` on `/lib/modules/KVER`
//!   (no `modules.dep` yet) and `depmod -a -b DESTDIR KVER` on the image root.
//! - `dracut`: `dracut --no-hostonly --modules kernel-modules --add-drivers …`
//!   after `depmod -a KVER` (dracut refuses a tree without `modules.dep`). dracut
//!   sets its own PATH from `DRACUT_PATH` (default `/sbin /bin /usr/sbin /usr/bin`)
//!   after reading its configuration, so a `dracut.conf.d` file setting it puts ours
//!   first. dracut runs `depmod -a -b INITDIR KVER`.
//! - `dkms`: `dkms install` of a module already built (so no compiler runs), after
//!   `depmod -a KVER`; DKMS runs `depmod -a KVER -F /boot/System.map-KVER`.
//! - `alpine-mkinitfs`: `depmod KVER -b DIR` (options after the version), on the
//!   tree mkinitfs copies (`modules.order` and `modules.builtin`, no `.modinfo`:
//!   both warn that it is missing).
//! - `mkinitcpio`: `depmod -b BUILDROOT KVER`.
//! - `buildroot`: `$(HOST_DIR)/sbin/depmod -a -b $(TARGET_DIR) KVER`.
//! - `yocto`: depmodwrapper's `depmod -a -b ROOTFS -F System.map-KVER KVER`.
//!
//! The last four are the tools' command lines (read from their sources), not the
//! tools. For each check both runs use the same paths (one after the other, the
//! work directory made afresh), and the check compares the exit status, stdout,
//! stderr (random temp-directory names masked) and every file of the module trees
//! and unpacked images. The tool reaches depmod as `WORK/bin/depmod`, a wrapper
//! that logs its arguments: a check fails if the tool never called it (it found
//! another depmod) or called it differently in the two runs. For the two initramfs
//! tools it also runs kmod 34.2 itself on the module set found in our image and
//! compares with the image's indexes.
//!
//! `--ours PATH` tests another binary; a script that runs ours and appends a line to
//! `modules.dep`, or one that does nothing, fails every check.
//!
//! Files: `setup.rs` (the test tree, the packages, the mount namespace), `outcome.rs`
//! (what a run leaves and how two runs are compared), then one file per caller:
//! `kbuild.rs` (`scripts/depmod.sh` and `make modules_install`), `mkinitramfs.rs`,
//! `dracut.rs`, `dkms.rs`, and `forms.rs` (the four tools' command lines, options
//! after the version among them).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::util::apt::Apt;
use crate::util::{cargo, ensure_packages, oracle, run};

use outcome::{compare, normalize, Node, Outcome};
use setup::{fresh_dir, path_str};

mod dkms;
mod dracut;
mod forms;
mod kbuild;
mod mkinitramfs;
mod outcome;
mod setup;

/// The modules initramfs-tools is asked for (its `MODULES=list` file) and the drivers
/// dracut is asked to add.
const INITRAMFS_MODULES: &[&str] = &["btrfs", "ext4", "vfat"];

/// The files in a module directory that depmod reads and does not write.
const INPUTS: &[&str] = &[
    "modules.order",
    "modules.builtin",
    "modules.builtin.modinfo",
];

/// Host packages the tools run with, besides `util::packages::BASE` (which has Debian's
/// kmod, whose modprobe and modinfo initramfs-tools, dracut and DKMS call, busybox
/// and util-linux's unshare): make for kbuild.
const HOST_PACKAGES: &[(&str, &str)] = &[("make", "/usr/bin/make")];

/// Every check, in the order they run (the names the command line takes).
const CHECKS: &[&str] = &[
    "kbuild-depmod.sh",
    "kbuild-make",
    "mkinitramfs",
    "dracut",
    "dkms",
    "alpine-mkinitfs",
    "mkinitcpio",
    "buildroot",
    "yocto",
];

/// `cargo xtask callers [--ours PATH] [CHECK…]`.
pub fn run_cli(root: &Path, args: &[String]) -> Result<(), String> {
    let started = Instant::now();
    let mut ours = None;
    let mut only = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--ours" {
            ours = Some(PathBuf::from(it.next().ok_or("--ours needs a path")?));
        } else if CHECKS.contains(&a.as_str()) {
            only.push(a.clone());
        } else {
            return Err(format!(
                "usage: cargo xtask callers [--ours PATH] [{}]",
                CHECKS.join("|")
            ));
        }
    }
    let ours = match ours {
        Some(p) => p,
        None => {
            run(Command::new(cargo())
                .args(["build", "--release", "--bin", "depmod"])
                .current_dir(root))?;
            root.join("target/release/depmod")
        }
    };
    let ours = fs::canonicalize(&ours).map_err(|e| format!("{}: {e}", ours.display()))?;
    ensure_packages(HOST_PACKAGES)?;
    oracle::run(root)?;
    let kmod = oracle::depmod(root);

    let ctx = Ctx::prepare(root, &kmod)?;
    let depmods = [("ours", ours.as_path()), ("kmod 34.2", kmod.as_path())];
    let mut failed = Vec::new();
    for &name in CHECKS {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let t = Instant::now();
        let result = ctx.check(name, &depmods);
        let secs = t.elapsed().as_secs_f64();
        match result {
            Ok(what) => println!("PASS {name}: {what} ({secs:.1}s)"),
            Err(why) => {
                println!("FAIL {name}: {why}");
                failed.push(name);
            }
        }
    }
    println!(
        "callers: {} checks in {:.0}s",
        if only.is_empty() {
            CHECKS.len()
        } else {
            only.len()
        },
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("callers failed: {}", failed.join(", ")))
    }
}

/// Everything the checks share: the pristine tree and the unpacked packages.
struct Ctx {
    kmod: PathBuf,
    dir: PathBuf,
    /// A root holding `lib/modules/KVER` (the subset; never written by a check).
    tree: PathBuf,
    /// `System.map` made from `Module.symvers`.
    system_map: PathBuf,
    /// Debian's `boot/` (config and the placeholder `System.map`).
    debian_boot: PathBuf,
    /// The cached Debian tree's module directory (for `EXTRA_MODULE`).
    debian_modules: PathBuf,
    apt: Apt,
}

impl Ctx {
    /// Runs check `name` with each depmod in turn and compares the outcomes.
    fn check(&self, name: &str, depmods: &[(&str, &Path); 2]) -> Result<String, String> {
        let work = self.dir.join("work").join(name);
        let mut outcomes = Vec::new();
        let mut direct = Ok(String::new());
        for (i, (who, depmod)) in depmods.iter().enumerate() {
            fresh_dir(&work)?;
            let outcome = self
                .run(name, &work, depmod)
                .map_err(|e| format!("with {who}: {e}"))?;
            if i == 0 && matches!(name, "mkinitramfs" | "dracut") {
                // kmod 34.2 itself on the module set of our image.
                direct = self.kmod_on_image(&work);
            }
            outcomes.push(outcome);
        }
        let (a, b) = (&outcomes[0], &outcomes[1]);
        let direct = match (compare(a, b), direct) {
            // Passed: the work directory goes (a failure keeps kmod's run there).
            (Ok(()), Ok(direct)) => {
                let _ = fs::remove_dir_all(&work);
                direct
            }
            (Err(e), Ok(_)) | (Ok(()), Err(e)) => return Err(e),
            (Err(e), Err(d)) => return Err(format!("{e}\n  {d}")),
        };
        let files: usize = a
            .trees
            .iter()
            .map(|(_, t)| t.values().filter(|n| matches!(n, Node::File(_))).count())
            .sum();
        let calls: Vec<String> = String::from_utf8_lossy(&a.calls)
            .lines()
            .map(|l| format!("`depmod {l}`"))
            .collect();
        Ok(format!(
            "{}; calls {}; exit {}, stdout, stderr and {files} files identical to kmod 34.2's run{direct}",
            a.note,
            calls.join(", "),
            a.status.map_or("by a signal".into(), |c| c.to_string())
        ))
    }

    fn run(&self, name: &str, work: &Path, depmod: &Path) -> Result<Outcome, String> {
        // Every check calls depmod by the same path, `work/bin/depmod`: a wrapper
        // that logs its arguments and runs the depmod under test with the same
        // argv[0] (messages start with its base name).
        let bin = work.join("bin");
        fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
        let d = bin.join("depmod");
        let calls = work.join("depmod.calls");
        let (real, log) = (path_str(depmod), path_str(&calls));
        if real.contains('\'') || log.contains('\'') {
            return Err("a path with a single quote".into());
        }
        fs::write(
            &d,
            format!(
                "#!/bin/bash\nprintf '%s\\n' \"$*\" >> '{log}'\nexec -a \"$0\" '{real}' \"$@\"\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        let mut outcome = self.run_check(name, work, &d)?;
        let logged = fs::read(&calls).unwrap_or_default();
        if logged.is_empty() {
            return Err(format!("{name} never ran {}", d.display()));
        }
        let prefix = format!("{}/", work.display());
        let text = String::from_utf8_lossy(&logged).replace(&prefix, "");
        // Temporary directories: depmod.sh's probe, mkinitramfs's and dracut's roots.
        outcome.calls = normalize(text.into_bytes(), &["depmod.", "mkinitramfs_", "dracut."]);
        Ok(outcome)
    }

    fn run_check(&self, name: &str, work: &Path, d: &Path) -> Result<Outcome, String> {
        match name {
            "kbuild-depmod.sh" => self.kbuild_script(work, d),
            "kbuild-make" => self.kbuild_make(work, d),
            "mkinitramfs" => self.mkinitramfs(work),
            "dracut" => self.dracut(work, d),
            "dkms" => self.dkms(work, d),
            "alpine-mkinitfs" => self.alpine_mkinitfs(work, d),
            "mkinitcpio" => self.mkinitcpio(work, d),
            "buildroot" => self.buildroot(work, d),
            "yocto" => self.yocto(work, d),
            _ => Err(format!("unknown check {name}")),
        }
    }
}
