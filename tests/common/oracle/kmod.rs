//! kmod's depmod as the reference, and the binary under test: where kmod 34.2, kmod 30
//! and ours are (each checked to be what it claims), and the `readdir` shim the kmod
//! oracles run under.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Which implementation a [`Depmod`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ours,
    Kmod34,
    Kmod30,
}

#[derive(Clone, Debug)]
pub struct Depmod {
    pub kind: Kind,
    pub path: PathBuf,
}

impl Depmod {
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Ours => "ours",
            Kind::Kmod34 => "kmod 34.2",
            Kind::Kmod30 => "kmod 30",
        }
    }
}

fn version_line(path: &Path) -> Result<String, String> {
    let out = Command::new(path)
        .arg("-V")
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

/// kmod `version`'s depmod, from `env` or at `default`, looked for once per process
/// (`cell`). Panics (test failure) if it is missing or is another version, saying
/// what to do (`if_missing`, `if_other`).
fn checked_kmod(
    cell: &'static OnceLock<Result<PathBuf, String>>,
    kind: Kind,
    env: &str,
    default: PathBuf,
    version: &str,
    if_missing: &str,
    if_other: &str,
) -> Depmod {
    let r = cell.get_or_init(|| {
        let path = match std::env::var_os(env) {
            Some(p) => PathBuf::from(p),
            None => default,
        };
        if !path.exists() {
            return Err(format!(
                "kmod {version} oracle not found at {}: {if_missing}",
                path.display()
            ));
        }
        let v = version_line(&path)?;
        if v != format!("kmod version {version}") {
            return Err(format!(
                "{} is not kmod {version} (-V says {v:?}); {if_other}",
                path.display()
            ));
        }
        Ok(path)
    });
    match r {
        Ok(p) => Depmod {
            kind,
            path: p.clone(),
        },
        Err(e) => panic!("{e}"),
    }
}

/// kmod 34.2. Panics (test failure) if it is missing or is another version.
pub fn kmod34() -> Depmod {
    static P: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    checked_kmod(
        &P,
        Kind::Kmod34,
        "KMOD34_DEPMOD",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/oracle/depmod-34.2"),
        "34.2",
        "run `cargo xtask oracle` (or set KMOD34_DEPMOD)",
        "run `cargo xtask oracle` or set KMOD34_DEPMOD",
    )
}

/// kmod 30 (Debian 12). Panics (test failure) if it is missing or another version.
pub fn kmod30() -> Depmod {
    static P: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    checked_kmod(
        &P,
        Kind::Kmod30,
        "KMOD30_DEPMOD",
        PathBuf::from("/usr/sbin/depmod"),
        "30",
        "run `apt-get install kmod` (Debian 12) or set KMOD30_DEPMOD",
        "install Debian 12's kmod or set KMOD30_DEPMOD",
    )
}

/// Our `depmod` binary: `DEPMOD_UNDER_TEST` when set (`cargo xtask test` points it
/// at the static `no_std` dist binary for a second pass), else the one cargo built.
pub fn ours() -> Depmod {
    Depmod {
        kind: Kind::Ours,
        path: our_binary(),
    }
}

/// The path behind [`ours`].
pub fn our_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("DEPMOD_UNDER_TEST").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    match option_env!("CARGO_BIN_EXE_depmod") {
        Some(p) => PathBuf::from(p),
        None => panic!("our depmod binary was not built (needs the `host` feature)"),
    }
}

/// The binary under test (`DEPMOD_SUBJECT`, default ours).
pub fn subject() -> Depmod {
    match std::env::var("DEPMOD_SUBJECT").as_deref() {
        Err(_) | Ok("") | Ok("ours") => ours(),
        Ok("kmod30") => kmod30(),
        Ok(other) => panic!("DEPMOD_SUBJECT={other:?}: expected `ours` or `kmod30`"),
    }
}

/// The `LD_PRELOAD` shim (`sorted_readdir.c`, built once with the system C compiler)
/// under which the kmod oracles run: it makes `readdir` return each directory's
/// entries in name order, the order in which our depmod walks the tree. kmod leaves
/// the winner among equally ranked duplicates, and the order of its messages about
/// entries, to `readdir`; with the shim both are kmod's answer for our walk.
pub fn sorted_readdir() -> PathBuf {
    static P: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = P.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/sorted_readdir.c");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/oracle");
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let out = dir.join("sorted-readdir.so");
        // Built under a private name and renamed: test processes may race here.
        let tmp = dir.join(format!("sorted-readdir.so.{}", std::process::id()));
        let st = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
            .arg(&tmp)
            .arg(&src)
            .arg("-ldl")
            .status()
            .map_err(|e| format!("cannot run cc for {}: {e}", src.display()))?;
        if !st.success() {
            return Err(format!("cc {} failed: {st}", src.display()));
        }
        fs::rename(&tmp, &out).map_err(|e| e.to_string())?;
        Ok(out)
    });
    match r {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}
