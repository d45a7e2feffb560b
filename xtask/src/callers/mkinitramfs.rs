//! initramfs-tools' `mkinitramfs` (`MODULES=list`), which finds our depmod as
//! `/usr/bin/depmod` and runs it on `/lib/modules/KVER` and on the image root; the
//! image is unpacked with `unmkinitramfs` and compared too.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::util::debian::KVER;

use super::outcome::{image_summary, normalized, outcome, read_tree, Outcome};
use super::setup::{deb_name, namespace, path_str};
use super::{Ctx, INITRAMFS_MODULES};

/// Debian 12 packages the check needs (unpacked, never installed).
const INITRAMFS_TOOLS: &[&str] = &["initramfs-tools-core", "klibc-utils", "libklibc", "cpio"];

impl Ctx {
    pub(super) fn mkinitramfs(&self, work: &Path) -> Result<Outcome, String> {
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
}
