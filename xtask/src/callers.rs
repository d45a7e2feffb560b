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
//! installing them (`debs.rs`). Those that insist on absolute paths run in a private
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use crate::debs::Apt;

#[allow(clippy::duplicate_mod)]
#[path = "../../tests/common/debian.rs"]
mod debian;

use debian::KVER;

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
const EXTRA_MODULE: &str = "kernel/net/ipv4/netfilter/nft_fib_ipv4.ko";

/// The modules initramfs-tools is asked for (its `MODULES=list` file) and the drivers
/// dracut is asked to add.
const INITRAMFS_MODULES: &[&str] = &["btrfs", "ext4", "vfat"];

/// The files in a module directory that depmod reads and does not write.
const INPUTS: &[&str] = &[
    "modules.order",
    "modules.builtin",
    "modules.builtin.modinfo",
];

/// Debian 12 packages each check needs (unpacked, never installed).
const KBUILD: &str = "linux-kbuild-6.1";
const HEADERS_COMMON: &str = "linux-headers-6.1.0-56-common";
const INITRAMFS_TOOLS: &[&str] = &["initramfs-tools-core", "klibc-utils", "libklibc", "cpio"];
const DRACUT: &[&str] = &["dracut-core", "cpio"];
const DKMS: &str = "dkms";

/// Host packages the tools run with, besides `test::PACKAGES` (which has Debian's
/// kmod, whose modprobe and modinfo initramfs-tools, dracut and DKMS call, busybox
/// and util-linux's unshare): make for kbuild.
const HOST_PACKAGES: &[(&str, &str)] = &[("make", "/usr/bin/make")];

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
            crate::run(
                Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                    .args(["build", "--release", "--bin", "depmod"])
                    .current_dir(root),
            )?;
            root.join("target/release/depmod")
        }
    };
    let ours = fs::canonicalize(&ours).map_err(|e| format!("{}: {e}", ours.display()))?;
    crate::test::ensure_packages(HOST_PACKAGES)?;
    crate::oracle::run(root)?;
    let kmod = root.join("target/oracle/depmod-34.2");

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

/// What one run leaves: exit status, output, and named trees of files.
struct Outcome {
    status: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    trees: Vec<(&'static str, Tree)>,
    /// A summary for the PASS line.
    note: String,
    /// The arguments of each depmod call, one line each (work directory left out).
    calls: Vec<u8>,
}

#[derive(PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

type Tree = BTreeMap<String, Node>;

impl Ctx {
    fn prepare(root: &Path, kmod: &Path) -> Result<Ctx, String> {
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
            "alpine-mkinitfs" => {
                let root = self.copy_tree(work, "root")?;
                // mkinitfs copies modules.order and modules.builtin, not .modinfo.
                let moddir = root.join("lib/modules").join(KVER);
                fs::remove_file(moddir.join("modules.builtin.modinfo"))
                    .map_err(|e| e.to_string())?;
                self.form(
                    work,
                    d,
                    &[KVER, "-b", &path_str(&root)],
                    "depmod KVER -b DIR",
                )
            }
            "mkinitcpio" => {
                let root = self.copy_tree(work, "root")?;
                self.form(
                    work,
                    d,
                    &["-b", &path_str(&root), KVER],
                    "depmod -b DIR KVER",
                )
            }
            "buildroot" => {
                let root = self.copy_tree(work, "root")?;
                self.form(
                    work,
                    d,
                    &["-a", "-b", &path_str(&root), KVER],
                    "depmod -a -b DIR KVER",
                )
            }
            "yocto" => {
                let root = self.copy_tree(work, "root")?;
                let staging = work.join("staging");
                fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
                let map = staging.join(format!("System.map-{KVER}"));
                fs::copy(&self.system_map, &map).map_err(|e| e.to_string())?;
                let args = ["-a", "-b", &path_str(&root), "-F", &path_str(&map), KVER];
                self.form(work, d, &args, "depmod -a -b DIR -F System.map KVER")
            }
            _ => Err(format!("unknown check {name}")),
        }
    }

    /// A copy of the pristine tree as `work/NAME` (a root holding `lib/modules/KVER`).
    fn copy_tree(&self, work: &Path, name: &str) -> Result<PathBuf, String> {
        let dest = work.join(name);
        fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
        crate::run(
            Command::new("cp")
                .arg("-a")
                .arg(self.tree.join("lib"))
                .arg(&dest),
        )?;
        Ok(dest)
    }

    /// A command line as a tool writes it, run directly.
    fn form(&self, work: &Path, d: &Path, args: &[&str], what: &str) -> Result<Outcome, String> {
        let out = command(Command::new(d).args(args).current_dir(work))?;
        let trees = vec![("module tree", read_tree(&work.join("root/lib/modules"))?)];
        Ok(outcome(
            out,
            trees,
            format!("`{what}` (the tool's command line)"),
        ))
    }

    fn kbuild_script(&self, work: &Path, d: &Path) -> Result<Outcome, String> {
        let kbuild = self.unpacked(KBUILD)?;
        let script = kbuild.join("usr/lib/linux-kbuild-6.1/scripts/depmod.sh");
        let root = self.copy_tree(work, "root")?;
        // kbuild runs it in the object tree, where System.map is.
        let objtree = work.join("objtree");
        let tmp = work.join("tmp");
        for dir in [&objtree, &tmp] {
            fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        fs::copy(&self.system_map, objtree.join("System.map")).map_err(|e| e.to_string())?;
        let out = command(
            Command::new("sh")
                .arg(&script)
                .arg(d)
                .arg(KVER)
                .env("INSTALL_MOD_PATH", &root)
                .env("TMPDIR", &tmp)
                .current_dir(&objtree),
        )?;
        let trees = vec![("module tree", read_tree(&root.join("lib/modules"))?)];
        Ok(outcome(
            out,
            trees,
            format!(
                "{} scripts/depmod.sh DEPMOD KVER (-ae -F System.map -b)",
                deb_name(&kbuild)
            ),
        ))
    }

    fn kbuild_make(&self, work: &Path, d: &Path) -> Result<Outcome, String> {
        let kbuild = self.unpacked(KBUILD)?;
        let common = self.unpacked(HEADERS_COMMON)?;
        let arch = self.unpacked(debian::HEADERS_PACKAGE)?;
        let root = self.copy_tree(work, "root")?;
        let ext = work.join("ext");
        let top = work.join("top/src").join(format!("linux-headers-{KVER}"));
        for dir in [&ext, &top, &work.join("tmp")] {
            fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        fs::copy(&self.system_map, top.join("System.map")).map_err(|e| e.to_string())?;
        fs::copy(
            self.debian_modules.join(EXTRA_MODULE),
            ext.join("nft_fib_ipv4.ko"),
        )
        .map_err(|e| e.to_string())?;
        fs::write(
            ext.join("modules.order"),
            format!("{}\n", ext.join("nft_fib_ipv4.ko").display()),
        )
        .map_err(|e| e.to_string())?;
        let lower = [
            work.join("top"),
            arch.join("usr"),
            common.join("usr"),
            kbuild.join("usr"),
        ];
        let script = r#"
mount -t overlay overlay -o "lowerdir=$LOWER:/usr" /usr
TMPDIR="$W/tmp" exec make -C "/usr/src/linux-headers-$K" M="$W/ext" modules_install \
    INSTALL_MOD_PATH="$W/root" DEPMOD="$D"
"#;
        let out = namespace(
            script,
            &[
                ("W", path_str(work)),
                ("K", KVER.into()),
                ("D", path_str(d)),
                ("LOWER", join_lower(&lower)?),
            ],
        )?;
        let trees = vec![("module tree", read_tree(&root.join("lib/modules"))?)];
        Ok(outcome(
            out,
            trees,
            format!(
                "make -C /usr/src/linux-headers-{KVER} M=… modules_install DEPMOD=… ({}, {})",
                deb_name(&arch),
                deb_name(&kbuild)
            ),
        ))
    }

    fn mkinitramfs(&self, work: &Path) -> Result<Outcome, String> {
        let pkgs = self.all_unpacked(INITRAMFS_TOOLS)?;
        let layer = self.layer("initramfs-tools", &pkgs)?;
        self.copy_tree(work, "")?;
        let boot = self.boot(work, false)?;
        // Our depmod as /usr/bin/depmod: mkinitramfs's PATH is /usr/bin:/sbin:/bin.
        let shim = work.join("shim/bin");
        fs::create_dir_all(&shim).map_err(|e| e.to_string())?;
        symlink(work.join("bin/depmod"), shim.join("depmod")).map_err(|e| e.to_string())?;
        let conf = work.join("conf");
        for sub in ["scripts", "hooks", "conf.d"] {
            fs::create_dir_all(conf.join(sub)).map_err(|e| e.to_string())?;
        }
        let shipped = fs::read_to_string(pkgs[0].join("etc/initramfs-tools/initramfs.conf"))
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        for line in shipped.lines() {
            let line = match line {
                l if l.starts_with("MODULES=") => "MODULES=list",
                l if l.starts_with("COMPRESS=") => "COMPRESS=gzip",
                l => l,
            };
            text.push_str(line);
            text.push('\n');
        }
        fs::write(conf.join("initramfs.conf"), text).map_err(|e| e.to_string())?;
        let list: String = INITRAMFS_MODULES.iter().map(|m| format!("{m}\n")).collect();
        fs::write(conf.join("modules"), list).map_err(|e| e.to_string())?;
        fs::create_dir_all(work.join("tmp")).map_err(|e| e.to_string())?;
        let script = r#"
mount -t overlay overlay -o "lowerdir=$W/shim:$LAYER:/usr" /usr
mount --bind "$W/lib/modules" /lib/modules
mount --bind "$BOOT" /boot
TMPDIR="$W/tmp" mkinitramfs -d "$W/conf" -o "$W/initrd.img" "$K"
"#;
        let env = [
            ("W", path_str(work)),
            ("K", KVER.into()),
            ("LAYER", path_str(&layer)),
            ("BOOT", path_str(&boot)),
        ];
        let out = namespace(script, &env)?;
        let mut trees = vec![("module tree", read_tree(&work.join("lib/modules"))?)];
        if out.status.success() {
            let unpack = r#"
mount -t overlay overlay -o "lowerdir=$LAYER:/usr" /usr
exec unmkinitramfs "$W/initrd.img" "$W/image"
"#;
            let u = namespace(unpack, &env)?;
            if !u.status.success() {
                return Err(format!(
                    "unmkinitramfs: {}",
                    String::from_utf8_lossy(&u.stderr)
                ));
            }
            trees.push(("image", read_tree(&work.join("image"))?));
        }
        let note = format!(
            "{} (MODULES=list: {}): {}",
            deb_name(&pkgs[0]),
            INITRAMFS_MODULES.join(" "),
            image_summary(&trees)
        );
        Ok(outcome(
            normalized(out, &["mkinitramfs_", "mkinitramfs-"]),
            trees,
            note,
        ))
    }

    fn dracut(&self, work: &Path, d: &Path) -> Result<Outcome, String> {
        let pkgs = self.all_unpacked(DRACUT)?;
        let layer = self.layer("dracut", &pkgs)?;
        self.copy_tree(work, "")?;
        for sub in ["tmp", "conf.d", "image"] {
            fs::create_dir_all(work.join(sub)).map_err(|e| e.to_string())?;
        }
        // dracut sets PATH from DRACUT_PATH after reading its configuration.
        fs::write(
            work.join("conf.d/10-depmod.conf"),
            format!(
                "DRACUT_PATH=\"{} /sbin /bin /usr/sbin /usr/bin\"\n",
                work.join("bin").display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let script = r#"
mount -t overlay overlay -o "lowerdir=$LAYER:/usr" /usr
mount --bind "$W/lib/modules" /lib/modules
"$D" -a "$K"
dracut -q --conf /dev/null --confdir "$W/conf.d" \
    --no-hostonly --kver "$K" --modules kernel-modules --add-drivers "$DRIVERS" \
    --no-compress --no-early-microcode --force --tmpdir "$W/tmp" "$W/initrd.img"
"#;
        let out = namespace(
            script,
            &[
                ("W", path_str(work)),
                ("K", KVER.into()),
                ("D", path_str(d)),
                ("LAYER", path_str(&layer)),
                ("DRIVERS", INITRAMFS_MODULES.join(" ")),
            ],
        )?;
        let mut trees = vec![("module tree", read_tree(&work.join("lib/modules"))?)];
        if out.status.success() {
            // --no-compress, no early cpio: one plain newc archive.
            command(
                Command::new(layer.join("bin/cpio"))
                    .args(["-idm", "--quiet", "--no-absolute-filenames", "-F"])
                    .arg(work.join("initrd.img"))
                    .current_dir(work.join("image")),
            )
            .and_then(|o| {
                if o.status.success() {
                    Ok(())
                } else {
                    Err(format!("cpio: {}", String::from_utf8_lossy(&o.stderr)))
                }
            })?;
            trees.push(("image", read_tree(&work.join("image"))?));
        }
        let note = format!(
            "{} (--modules kernel-modules --add-drivers '{}'): {}",
            deb_name(&pkgs[0]),
            INITRAMFS_MODULES.join(" "),
            image_summary(&trees)
        );
        Ok(outcome(normalized(out, &["dracut."]), trees, note))
    }

    fn dkms(&self, work: &Path, d: &Path) -> Result<Outcome, String> {
        let dkms = self.unpacked(DKMS)?;
        self.copy_tree(work, "")?;
        let boot = self.boot(work, true)?;
        // A module already built: `dkms install` copies it and runs depmod.
        let src = work.join("src/nftfib-1.0");
        let built = work
            .join("dkms/nftfib/1.0")
            .join(KVER)
            .join("x86_64/module");
        for dir in [&src, &built] {
            fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        fs::write(
            src.join("dkms.conf"),
            "PACKAGE_NAME=\"nftfib\"\nPACKAGE_VERSION=\"1.0\"\nBUILT_MODULE_NAME[0]=\"nft_fib_ipv4\"\nDEST_MODULE_LOCATION[0]=\"/updates/dkms\"\nAUTOINSTALL=\"yes\"\n",
        )
        .map_err(|e| e.to_string())?;
        symlink(&src, work.join("dkms/nftfib/1.0/source")).map_err(|e| e.to_string())?;
        fs::copy(
            self.debian_modules.join(EXTRA_MODULE),
            built.join("nft_fib_ipv4.ko"),
        )
        .map_err(|e| e.to_string())?;
        let script = r#"
mount --bind "$W/lib/modules" /lib/modules
mount --bind "$BOOT" /boot
"$D" -a "$K"
PATH="$W/bin:$PATH" exec "$DKMS" install -m nftfib -v 1.0 -k "$K" --dkmstree "$W/dkms" --sourcetree "$W/src"
"#;
        let out = namespace(
            script,
            &[
                ("W", path_str(work)),
                ("K", KVER.into()),
                ("D", path_str(d)),
                ("BOOT", path_str(&boot)),
                ("DKMS", path_str(&dkms.join("usr/sbin/dkms"))),
            ],
        )?;
        let tree = read_tree(&work.join("lib/modules"))?;
        let installed = format!("{KVER}/updates/dkms/nft_fib_ipv4.ko");
        if out.status.success() && !tree.contains_key(&installed) {
            return Err(format!("dkms did not install {installed}"));
        }
        let trees = vec![("module tree", tree)];
        // DKMS prints a dot every 3 s while depmod runs: mask them.
        let mut out = out;
        out.stdout = mask_dots(&out.stdout);
        Ok(outcome(
            out,
            trees,
            format!(
                "{} `dkms install` → depmod -a KVER -F /boot/System.map-KVER",
                deb_name(&dkms)
            ),
        ))
    }

    /// `work/boot` with Debian's config and either the synthesized System.map or
    /// Debian's placeholder.
    fn boot(&self, work: &Path, debian_map: bool) -> Result<PathBuf, String> {
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

    /// kmod 34.2 on the modules of our image (`work/image`), with the same form the
    /// tool used (`-a -b ROOT KVER`); its outputs must be the image's index files.
    fn kmod_on_image(&self, work: &Path) -> Result<String, String> {
        let image = work.join("image");
        let moddir = ["usr/lib/modules", "lib/modules"]
            .iter()
            .map(|p| image.join(p).join(KVER))
            .find(|p| p.is_dir())
            .ok_or("no lib/modules/KVER in the image")?;
        let check = self.dir.join("work/image-kmod");
        fresh_dir(&check)?;
        let dest = check.join("lib/modules");
        fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
        crate::run(Command::new("cp").arg("-a").arg(&moddir).arg(&dest))?;
        let dest = dest.join(KVER);
        let mut in_image = BTreeMap::new();
        for e in fs::read_dir(&dest).map_err(|e| e.to_string())?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("modules.") && !INPUTS.contains(&name.as_str()) {
                in_image.insert(name, fs::read(e.path()).map_err(|e| e.to_string())?);
                fs::remove_file(e.path()).map_err(|e| e.to_string())?;
            }
        }
        let out = command(
            Command::new(&self.kmod)
                .arg("-a")
                .arg("-b")
                .arg(&check)
                .arg(KVER),
        )?;
        if !out.status.success() {
            return Err(format!(
                "kmod 34.2 on the image's modules: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut from_kmod = BTreeMap::new();
        for e in fs::read_dir(&dest).map_err(|e| e.to_string())?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("modules.") && !INPUTS.contains(&name.as_str()) {
                from_kmod.insert(name, fs::read(e.path()).map_err(|e| e.to_string())?);
            }
        }
        let modules = count_modules(&dest);
        let _ = fs::remove_dir_all(&check);
        if in_image.is_empty() || in_image != from_kmod {
            let names: BTreeSet<&String> = in_image.keys().chain(from_kmod.keys()).collect();
            let diffs: Vec<String> = names
                .into_iter()
                .filter(|n| in_image.get(*n) != from_kmod.get(*n))
                .map(|n| match (in_image.get(n), from_kmod.get(n)) {
                    (Some(a), Some(b)) => format!(
                        "{n}: {}",
                        debian::first_difference(b, a).unwrap_or_default()
                    ),
                    (Some(_), None) => format!("{n}: in the image, not written by kmod"),
                    _ => format!("{n}: written by kmod, not in the image"),
                })
                .collect();
            return Err(format!(
                "the image's indexes are not kmod 34.2's for its {modules} modules:\n{}",
                diffs.join("\n")
            ));
        }
        Ok(format!(
            "; kmod 34.2 run on the image's {modules} modules writes its {} index files",
            in_image.len()
        ))
    }

    fn unpacked(&self, package: &str) -> Result<PathBuf, String> {
        Ok(self.apt.fetch(&[package])?.remove(0))
    }

    fn all_unpacked(&self, packages: &[&str]) -> Result<Vec<PathBuf>, String> {
        self.apt.fetch(packages)
    }

    /// One directory to lay over `/usr`, merging the packages' `usr/` with their
    /// `bin/`, `sbin/` and `lib/` (Debian 12 packages still ship some files there;
    /// on a merged-/usr system those are `/usr/bin` …). Copied, not linked: tools
    /// copy what they find into images, and a link would point outside them.
    fn layer(&self, name: &str, packages: &[PathBuf]) -> Result<PathBuf, String> {
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
                crate::run(Command::new("cp").arg("-a").arg(dot).arg(&dest))?;
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
fn namespace(script: &str, env: &[(&str, String)]) -> Result<Output, String> {
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
fn command(cmd: &mut Command) -> Result<Output, String> {
    for var in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CARGO_MAKEFLAGS"] {
        cmd.env_remove(var);
    }
    cmd.output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))
}

fn outcome(out: Output, trees: Vec<(&'static str, Tree)>, note: String) -> Outcome {
    Outcome {
        status: out.status.code(),
        stdout: out.stdout,
        stderr: out.stderr,
        trees,
        note,
        calls: Vec::new(),
    }
}

/// Masks the random part of temporary names in a run's stdout and stderr.
fn normalized(mut out: Output, prefixes: &[&str]) -> Output {
    out.stdout = normalize(out.stdout, prefixes);
    out.stderr = normalize(out.stderr, prefixes);
    out
}

/// Masks the random part (6 characters) of temporary names after each prefix.
fn normalize(mut buf: Vec<u8>, prefixes: &[&str]) -> Vec<u8> {
    {
        let buf = &mut buf;
        for prefix in prefixes {
            let p = prefix.as_bytes();
            let mut i = 0;
            while i + p.len() <= buf.len() {
                if &buf[i..i + p.len()] == p {
                    let start = i + p.len();
                    let mut j = start;
                    while j < buf.len() && j < start + 6 && buf[j].is_ascii_alphanumeric() {
                        j += 1;
                    }
                    if j == start + 6 {
                        buf[start..j].copy_from_slice(b"XXXXXX");
                    }
                    i = j;
                } else {
                    i += 1;
                }
            }
        }
    }
    buf
}

/// `depmod....` → `depmod...` (DKMS's progress dots).
fn mask_dots(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut run = 0;
    for &b in text {
        if b == b'.' {
            run += 1;
            if run > 3 {
                continue;
            }
        } else {
            run = 0;
        }
        out.push(b);
    }
    out
}

/// Every entry under `dir`, by path relative to it.
fn read_tree(dir: &Path) -> Result<Tree, String> {
    let mut tree = Tree::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let e = e.map_err(|e| e.to_string())?;
            let path = e.path();
            let rel = path
                .strip_prefix(dir)
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .into_owned();
            let ty = e.file_type().map_err(|e| e.to_string())?;
            if ty.is_symlink() {
                let target = fs::read_link(&path).map_err(|e| e.to_string())?;
                tree.insert(rel, Node::Link(target));
            } else if ty.is_dir() {
                tree.insert(rel, Node::Dir);
                stack.push(path);
            } else {
                let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                tree.insert(rel, Node::File(bytes));
            }
        }
    }
    Ok(tree)
}

/// "image: N modules, M index files, P paths" for a PASS line.
fn image_summary(trees: &[(&'static str, Tree)]) -> String {
    let Some((_, image)) = trees.iter().find(|(n, _)| *n == "image") else {
        return "no image".into();
    };
    let modules = image.keys().filter(|k| k.ends_with(".ko")).count();
    let marker = format!("lib/modules/{KVER}/modules.");
    let indexes = image
        .keys()
        .filter(|k| k.contains(&marker) && !INPUTS.iter().any(|i| k.ends_with(&format!("/{i}"))))
        .count();
    format!(
        "image with {modules} modules, {indexes} index files, {} paths",
        image.len()
    )
}

fn count_modules(dir: &Path) -> usize {
    read_tree(dir)
        .map(|t| t.keys().filter(|k| k.ends_with(".ko")).count())
        .unwrap_or(0)
}

/// Compares two outcomes; the error lists what differs.
fn compare(ours: &Outcome, kmod: &Outcome) -> Result<(), String> {
    let mut diffs = Vec::new();
    if ours.status != kmod.status {
        diffs.push(format!(
            "exit status: ours {:?}, kmod 34.2 {:?}",
            ours.status, kmod.status
        ));
    }
    for (what, a, b) in [
        ("stdout", &ours.stdout, &kmod.stdout),
        ("stderr", &ours.stderr, &kmod.stderr),
    ] {
        if let Some(d) = debian::first_difference(b, a) {
            diffs.push(format!("{what} (expected: kmod 34.2's run): {d}"));
        }
    }
    if let Some(d) = debian::first_difference(&kmod.calls, &ours.calls) {
        diffs.push(format!("depmod calls (expected: kmod 34.2's run): {d}"));
    }
    if ours.status != Some(0) {
        diffs.push(format!(
            "the tool failed (exit {:?}): {}",
            ours.status,
            tail(&ours.stderr)
        ));
    }
    let names: BTreeSet<&str> = ours
        .trees
        .iter()
        .chain(&kmod.trees)
        .map(|(n, _)| *n)
        .collect();
    for name in names {
        match (find_tree(ours, name), find_tree(kmod, name)) {
            (Some(a), Some(b)) => diffs.extend(tree_diffs(name, a, b)),
            (Some(_), None) => diffs.push(format!("{name}: only in our run")),
            (None, _) => diffs.push(format!("{name}: only in kmod 34.2's run")),
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n  "))
    }
}

fn find_tree<'a>(outcome: &'a Outcome, name: &str) -> Option<&'a Tree> {
    outcome
        .trees
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| t)
}

fn tree_diffs(name: &str, ours: &Tree, kmod: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    let paths: BTreeSet<&String> = ours.keys().chain(kmod.keys()).collect();
    for p in paths {
        let line = match (ours.get(p), kmod.get(p)) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(Node::File(a)), Some(Node::File(b))) => format!(
                "{name}: {p} differs: {}",
                debian::first_difference(b, a).unwrap_or_default()
            ),
            (Some(_), Some(_)) => format!("{name}: {p} is of another kind"),
            (Some(_), None) => format!("{name}: {p} only in our run"),
            (None, _) => format!("{name}: {p} only in kmod 34.2's run"),
        };
        out.push(line);
        if out.len() == 20 {
            out.push(format!("{name}: …"));
            break;
        }
    }
    out
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

fn fresh_dir(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    }
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Overlay lower directories, top first (no `:` or `,` allowed in them).
fn join_lower(dirs: &[PathBuf]) -> Result<String, String> {
    let parts: Vec<String> = dirs.iter().map(|d| path_str(d)).collect();
    if let Some(bad) = parts.iter().find(|p| p.contains([':', ','])) {
        return Err(format!(
            "{bad}: overlayfs cannot take a path with ':' or ','"
        ));
    }
    Ok(parts.join(":"))
}

/// `dracut-core_059-4_amd64` → `dracut-core 059-4`.
fn deb_name(unpacked: &Path) -> String {
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
