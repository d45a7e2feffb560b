//! dracut (`--no-hostonly --modules kernel-modules`), our depmod first on its
//! `DRACUT_PATH`, after `depmod -a KVER`; the uncompressed image is unpacked with
//! `cpio` and compared too.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::util::debian::KVER;

use super::outcome::{image_summary, normalized, outcome, read_tree, Outcome};
use super::setup::{command, deb_name, namespace, path_str};
use super::{Ctx, INITRAMFS_MODULES};

/// Debian 12 packages the check needs (unpacked, never installed).
const DRACUT: &[&str] = &["dracut-core", "cpio"];

impl Ctx {
    pub(super) fn dracut(&self, work: &Path, d: &Path) -> Result<Outcome, String> {
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
}
