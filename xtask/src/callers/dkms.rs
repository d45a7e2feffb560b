//! DKMS: `dkms install` of a module already built (no compiler runs), which runs
//! `depmod -a KVER -F /boot/System.map-KVER` with Debian's placeholder map.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::util::debian::KVER;

use super::outcome::{outcome, read_tree, Outcome};
use super::setup::{deb_name, namespace, path_str, EXTRA_MODULE};
use super::Ctx;

/// The Debian 12 package the check needs (unpacked, never installed).
const DKMS: &str = "dkms";

impl Ctx {
    pub(super) fn dkms(&self, work: &Path, d: &Path) -> Result<Outcome, String> {
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
