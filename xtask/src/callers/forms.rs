//! Four tools' depmod command lines, as read from their sources and run directly
//! (not the tools): Alpine's mkinitfs (`depmod KVER -b DIR`, options after the
//! version, on a tree without `modules.builtin.modinfo`), Arch's mkinitcpio,
//! Buildroot, and Yocto's depmodwrapper (`-F System.map-KVER`).

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::util::debian::KVER;

use super::outcome::{outcome, read_tree, Outcome};
use super::setup::{command, path_str};
use super::Ctx;

impl Ctx {
    /// `alpine-mkinitfs`: `depmod KVER -b DIR`.
    pub(super) fn alpine_mkinitfs(&self, work: &Path, d: &Path) -> Result<Outcome, String> {
        let root = self.copy_tree(work, "root")?;
        // mkinitfs copies modules.order and modules.builtin, not .modinfo.
        let moddir = root.join("lib/modules").join(KVER);
        fs::remove_file(moddir.join("modules.builtin.modinfo")).map_err(|e| e.to_string())?;
        self.form(
            work,
            d,
            &[KVER, "-b", &path_str(&root)],
            "depmod KVER -b DIR",
        )
    }

    /// `mkinitcpio`: `depmod -b BUILDROOT KVER`.
    pub(super) fn mkinitcpio(&self, work: &Path, d: &Path) -> Result<Outcome, String> {
        let root = self.copy_tree(work, "root")?;
        self.form(
            work,
            d,
            &["-b", &path_str(&root), KVER],
            "depmod -b DIR KVER",
        )
    }

    /// `buildroot`: `$(HOST_DIR)/sbin/depmod -a -b $(TARGET_DIR) KVER`.
    pub(super) fn buildroot(&self, work: &Path, d: &Path) -> Result<Outcome, String> {
        let root = self.copy_tree(work, "root")?;
        self.form(
            work,
            d,
            &["-a", "-b", &path_str(&root), KVER],
            "depmod -a -b DIR KVER",
        )
    }

    /// `yocto`: depmodwrapper's `depmod -a -b ROOTFS -F System.map-KVER KVER`.
    pub(super) fn yocto(&self, work: &Path, d: &Path) -> Result<Outcome, String> {
        let root = self.copy_tree(work, "root")?;
        let staging = work.join("staging");
        fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
        let map = staging.join(format!("System.map-{KVER}"));
        fs::copy(&self.system_map, &map).map_err(|e| e.to_string())?;
        let args = ["-a", "-b", &path_str(&root), "-F", &path_str(&map), KVER];
        self.form(work, d, &args, "depmod -a -b DIR -F System.map KVER")
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
}
