//! The kernel's own callers: `scripts/depmod.sh DEPMOD KVER` as kbuild runs it
//! (`kbuild-depmod.sh`), and `make modules_install DEPMOD=…` for an external module
//! with Debian's headers and kbuild (`kbuild-make`).

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::util::debian::{self, KVER};

use super::outcome::{outcome, read_tree, Outcome};
use super::setup::{command, deb_name, join_lower, namespace, path_str, EXTRA_MODULE};
use super::Ctx;

/// Debian 12 packages the checks need (unpacked, never installed).
const KBUILD: &str = "linux-kbuild-6.1";
const HEADERS_COMMON: &str = "linux-headers-6.1.0-56-common";

impl Ctx {
    pub(super) fn kbuild_script(&self, work: &Path, d: &Path) -> Result<Outcome, String> {
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

    pub(super) fn kbuild_make(&self, work: &Path, d: &Path) -> Result<Outcome, String> {
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
}
