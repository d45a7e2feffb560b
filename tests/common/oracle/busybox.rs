//! busybox's `modprobe -D` (dry run), which reads the text files (modules.dep,
//! modules.alias, modules.symbols) where libkmod reads the `.bin` indexes, run in a
//! chroot of a root.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use super::libkmod::Query;
use super::tool;

/// The busybox binary (`BUSYBOX`, default `/bin/busybox`); it must be static to run in
/// a chroot.
pub fn busybox() -> PathBuf {
    tool(
        "BUSYBOX",
        "/bin/busybox",
        "install a static busybox (`apt-get install busybox-static`)",
    )
}

/// busybox's modprobe in a chroot of the root: `chroot ROOT /bin/busybox modprobe -D
/// [-a] NAMES…` (through `unshare -r` when not root).
pub struct Busybox {
    pub chroot: Vec<OsString>,
}

impl Busybox {
    /// `chroot` as root, else `unshare -r chroot` (an unprivileged user namespace).
    pub fn in_chroot() -> Busybox {
        let chroot: Vec<OsString> = if effective_uid() == Some(0) {
            vec!["chroot".into()]
        } else {
            vec!["unshare".into(), "-r".into(), "chroot".into()]
        };
        Busybox { chroot }
    }
}

impl Query for Busybox {
    fn what(&self) -> &str {
        "busybox modprobe -D"
    }

    fn command(&self, root: &Path, names: &[String]) -> (OsString, Vec<OsString>) {
        let mut args: Vec<OsString> = self.chroot[1..].to_vec();
        args.extend([
            root.into(),
            "/bin/busybox".into(),
            "modprobe".into(),
            "-D".into(),
        ]);
        if names.len() > 1 {
            args.push("-a".into());
        }
        args.extend(names.iter().map(OsString::from));
        (self.chroot[0].clone(), args)
    }

    fn prints_root(&self) -> bool {
        false // busybox prints paths inside the chroot
    }
}

fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}
