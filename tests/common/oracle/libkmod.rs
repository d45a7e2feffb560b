//! libkmod's lookups, through kmod's `modprobe` (Debian's kmod 30). modprobe,
//! systemd-udevd and dracut find modules only through the five `.bin` indexes (no text
//! fallback), so what `modprobe -d ROOT` prints for a name is what libkmod reads in the
//! indexes below ROOT. A [`Query`] is one kind of lookup over a root; busybox's
//! modprobe (`busybox.rs`) answers queries too.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::super::debian::KVER;
use super::tool;

/// What the root directory is replaced with in modprobe's output.
pub const ROOT_PLACEHOLDER: &str = "<ROOT>";

/// libkmod's modprobe (Debian's kmod 30), checked to be kmod's.
pub fn modprobe() -> PathBuf {
    let path = tool(
        "KMOD30_MODPROBE",
        "/usr/sbin/modprobe",
        "install Debian's kmod (`apt-get install kmod`)",
    );
    let out = Command::new(&path)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.contains("kmod"),
        "{} is not kmod's modprobe (`--version` printed {version:?}): \
         `apt-get install kmod`",
        path.display()
    );
    path
}

/// Runs `cmd` in the C locale; panics if it cannot be started.
pub fn output(cmd: &mut Command) -> Output {
    cmd.env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()))
}

/// What a query printed and how it exited, with the root path replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Lookup {
    /// `root`: replaced by [`ROOT_PLACEHOLDER`] in both streams (if given).
    pub fn new(out: Output, root: Option<&Path>) -> Self {
        let root = root.map(|r| r.to_string_lossy().into_owned());
        let clean = |b: &[u8]| {
            let text = String::from_utf8_lossy(b);
            match &root {
                Some(r) => text.replace(r.as_str(), ROOT_PLACEHOLDER),
                None => text.into_owned(),
            }
        };
        Lookup {
            status: out.status.code(),
            stdout: clean(&out.stdout),
            stderr: clean(&out.stderr),
        }
    }

    pub fn clean_success(&self) -> bool {
        self.status == Some(0) && self.stderr.is_empty()
    }
}

/// Quotes for a POSIX shell, for reproduce commands.
fn shell_quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=+,@%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `program args…` as a shell command line, for reproduce commands.
pub fn command_line(program: &OsStr, args: &[OsString]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(OsString::as_os_str))
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One kind of query (kmod's or busybox's modprobe in some mode) over a root.
pub trait Query: Sync {
    /// What is being compared, for messages.
    fn what(&self) -> &str;
    /// The program and arguments that query `names` (one or a batch) over `root`.
    fn command(&self, root: &Path, names: &[String]) -> (OsString, Vec<OsString>);
    /// Whether the output names `root` (which is then replaced by [`ROOT_PLACEHOLDER`]).
    fn prints_root(&self) -> bool {
        true
    }

    /// Runs the query for `names` over `root`.
    fn run(&self, root: &Path, names: &[String]) -> Lookup {
        let (program, args) = self.command(root, names);
        let out = output(Command::new(&program).args(&args));
        Lookup::new(out, self.prints_root().then_some(root))
    }
}

/// kmod's modprobe: `modprobe -C EMPTY -d ROOT -S KVER MODE [-a] -- NAMES…`.
pub struct Kmod<'a> {
    pub bin: &'a Path,
    pub config: &'a Path,
    pub mode: &'a str,
    pub what: &'a str,
}

impl<'a> Kmod<'a> {
    /// `modprobe --show-depends` (modules.dep.bin; `symbol:NAME` in modules.symbols.bin,
    /// built-in modules in modules.builtin.bin), with the config directory `config`.
    pub fn show_depends(bin: &'a Path, config: &'a Path) -> Self {
        Kmod {
            bin,
            config,
            mode: "--show-depends",
            what: "modprobe --show-depends",
        }
    }

    /// `modprobe -R` (modules.alias.bin, modules.builtin.alias.bin).
    pub fn resolve_alias(bin: &'a Path, config: &'a Path) -> Self {
        Kmod {
            bin,
            config,
            mode: "--resolve-alias",
            what: "modprobe -R",
        }
    }
}

impl Query for Kmod<'_> {
    fn what(&self) -> &str {
        self.what
    }

    fn command(&self, root: &Path, names: &[String]) -> (OsString, Vec<OsString>) {
        let mut args: Vec<OsString> = vec![
            "-C".into(),
            self.config.into(),
            "-d".into(),
            root.into(),
            "-S".into(),
            KVER.into(),
            self.mode.into(),
        ];
        if names.len() > 1 {
            args.push("-a".into());
        }
        args.push("--".into());
        args.extend(names.iter().map(OsString::from));
        (self.bin.into(), args)
    }
}
