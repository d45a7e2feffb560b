//! Debian packages of any architecture, without touching the system's apt state.
//!
//! Each Debian architecture gets a private apt state under `target/xtask/apt/ARCH`
//! (its own sources list, lists, cache, and `/dev/null` as dpkg status), so
//! `apt-get download` fetches e.g. arm64 packages on an amd64 host. Downloads are
//! cached in `target/xtask/debs/ARCH` and unpacked once (`dpkg -x`) under
//! `target/xtask/unpacked/ARCH/PACKAGE_VERSION`. Debs already fetched by the test
//! suite into `target/debs` are reused.
//!
//! [`private_options`] are the `apt-get` options of any private apt state (also the
//! oracle's and `kmod-suite`'s source download).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::apt_source::{self, Archive};
use super::run;

/// The `apt-get` options that make `dir` a private apt state: its own
/// `sources.list`, `lists/` and `cache/` (the caller creates `lists/partial` and
/// `cache/archives/partial` and writes `sources.list`), no `sources.list.d`, no dpkg
/// status (so nothing counts as installed), and downloads as root rather than apt's
/// `_apt` user (which may not write into the workspace).
pub fn private_options(dir: &Path) -> Vec<String> {
    vec![
        format!(
            "-oDir::Etc::sourcelist={}",
            dir.join("sources.list").display()
        ),
        "-oDir::Etc::sourceparts=/dev/null".into(),
        format!("-oDir::State::Lists={}", dir.join("lists").display()),
        format!("-oDir::Cache={}", dir.join("cache").display()),
        "-oDir::State::status=/dev/null".into(),
        "-oAPT::Sandbox::User=root".into(),
    ]
}

/// A Debian suite (Debian 12 unless [`Apt::with_suite`] says otherwise) from the
/// mirrors this machine's apt uses: the point releases plus the security archive
/// (where the current kernel ABI lives), when one is configured.
fn sources(suite: &str) -> Result<String, String> {
    let main = apt_source::mirror(Archive::Main)?;
    let mut list = format!("deb {main} {suite} main\n");
    match apt_source::mirror(Archive::Security) {
        Ok(security) => list.push_str(&format!("deb {security} {suite}-security main\n")),
        Err(e) => eprintln!("xtask: warning: {e} (only the point releases' packages)"),
    }
    Ok(list)
}

/// One Debian architecture's private apt state.
pub struct Apt {
    arch: String,
    dir: PathBuf,
    debs: PathBuf,
    shared: PathBuf,
    unpacked: PathBuf,
}

impl Apt {
    /// `arch` is a Debian architecture name: amd64, arm64, armhf.
    pub fn new(root: &Path, arch: &str) -> Result<Apt, String> {
        Apt::with_suite(root, arch, "bookworm")
    }

    /// Another suite than Debian 12's, e.g. trixie for riscv64, which became a
    /// release architecture only in Debian 13. Its state, downloads and unpacked
    /// packages live apart from bookworm's (`ARCH-SUITE`).
    pub fn with_suite(root: &Path, arch: &str, suite: &str) -> Result<Apt, String> {
        let base = root.join("target/xtask");
        let key = if suite == "bookworm" {
            arch.to_string()
        } else {
            format!("{arch}-{suite}")
        };
        let apt = Apt {
            arch: arch.to_string(),
            dir: base.join("apt").join(&key),
            debs: base.join("debs").join(&key),
            shared: if suite == "bookworm" {
                root.join("target/debs")
            } else {
                base.join("debs").join(&key)
            },
            unpacked: base.join("unpacked").join(&key),
        };
        for d in [
            apt.dir.join("lists/partial"),
            apt.dir.join("cache/archives/partial"),
            apt.debs.clone(),
            apt.unpacked.clone(),
        ] {
            fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        fs::write(apt.dir.join("sources.list"), sources(suite)?).map_err(|e| e.to_string())?;
        Ok(apt)
    }

    fn options(&self) -> Vec<String> {
        let mut options = vec![
            format!("-oAPT::Architecture={}", self.arch),
            format!("-oAPT::Architectures={}", self.arch),
        ];
        options.extend(private_options(&self.dir));
        options.extend([
            "-oAcquire::Retries=3".into(),
            // Package lists only (no AppStream metadata).
            "-oAcquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
            "-oAcquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".into(),
            "-oAcquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".into(),
            "-oAcquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false".into(),
        ]);
        options
    }

    fn has_lists(&self) -> bool {
        fs::read_dir(self.dir.join("lists")).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
        })
    }

    /// `apt-get update` for this architecture (twice at most: mirrors hiccup). A
    /// list that still fails (say, a mirror caught mid-sync) is only a warning when
    /// others arrived: downloads fail later if what they need is missing.
    pub fn update(&self) -> Result<(), String> {
        let mut cmd = Command::new("apt-get");
        cmd.args(self.options()).args(["-q", "update"]);
        match run(&mut cmd).or_else(|_| run(&mut cmd)) {
            Err(e) if self.has_lists() => {
                eprintln!("xtask: warning: {e}");
                Ok(())
            }
            other => other,
        }
    }

    /// A cached .deb of `package` (`target/debs` or ours), if any.
    fn cached(&self, package: &str) -> Option<PathBuf> {
        let prefix = format!("{package}_");
        let suffix = format!("_{}.deb", self.arch);
        let suffix_all = "_all.deb";
        [&self.debs, &self.shared]
            .into_iter()
            .filter_map(|d| fs::read_dir(d).ok())
            .flat_map(|d| d.flatten())
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with(&prefix) && (name.ends_with(&suffix) || name.ends_with(suffix_all))
            })
            .max()
    }

    /// The .deb files of `packages`, downloading the missing ones.
    pub fn download(&self, packages: &[&str]) -> Result<Vec<PathBuf>, String> {
        let missing: Vec<&str> = packages
            .iter()
            .copied()
            .filter(|p| self.cached(p).is_none())
            .collect();
        if !missing.is_empty() {
            eprintln!("xtask: downloading {} ({})", missing.join(" "), self.arch);
            if !self.has_lists() {
                self.update()?;
            }
            let mut cmd = Command::new("apt-get");
            cmd.args(self.options())
                .args(["-q", "download"])
                .args(&missing)
                .current_dir(&self.debs);
            if run(&mut cmd).is_err() {
                // Stale lists (a package superseded since): refresh and retry once.
                self.update()?;
                run(&mut cmd)?;
            }
        }
        packages
            .iter()
            .map(|p| {
                self.cached(p)
                    .ok_or_else(|| format!("{p} ({}): not downloaded", self.arch))
            })
            .collect()
    }

    /// The first package among `candidates` that the archive has (for pinned
    /// kernel ABIs that a security update may retire), else what the metapackage
    /// `fallback` depends on.
    pub fn pick(&self, candidates: &[&str], fallback: &str) -> Result<String, String> {
        if let Some(found) = candidates.iter().find(|p| self.cached(p).is_some()) {
            return Ok(found.to_string());
        }
        if !self.has_lists() {
            self.update()?;
        }
        for p in candidates {
            let out = Command::new("apt-cache")
                .args(self.options())
                .args(["show", "--no-all-versions", p])
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() && !out.stdout.is_empty() {
                return Ok(p.to_string());
            }
        }
        let out = Command::new("apt-cache")
            .args(self.options())
            .args(["depends", fallback])
            .output()
            .map_err(|e| e.to_string())?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.trim().strip_prefix("Depends: ").map(str::to_string))
            .ok_or_else(|| format!("no package for {candidates:?} nor {fallback}"))
    }

    /// Unpacks a .deb (once) and returns the directory it was unpacked into.
    pub fn unpack(&self, deb: &Path) -> Result<PathBuf, String> {
        let stem = deb
            .file_stem()
            .ok_or("deb without a name")?
            .to_string_lossy()
            .into_owned();
        let dir = self.unpacked.join(&stem);
        let stamp = self.unpacked.join(format!("{stem}.done"));
        if !stamp.exists() {
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            run(Command::new("dpkg").arg("-x").arg(deb).arg(&dir))?;
            fs::write(&stamp, "").map_err(|e| e.to_string())?;
        }
        Ok(dir)
    }

    /// Downloads and unpacks `packages`; one directory per package, in order.
    pub fn fetch(&self, packages: &[&str]) -> Result<Vec<PathBuf>, String> {
        self.download(packages)?
            .iter()
            .map(|d| self.unpack(d))
            .collect()
    }
}

/// Reads `path` inside an unpacked tree, following symlinks (absolute ones are
/// relative to `root`, not to the host).
pub fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let mut current = PathBuf::from(path.trim_start_matches('/'));
    for _ in 0..16 {
        let full = root.join(&current);
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&full).ok()?;
                current = if target.is_absolute() {
                    target.strip_prefix("/").ok()?.to_path_buf()
                } else {
                    current.parent().unwrap_or(Path::new("")).join(target)
                };
            }
            Ok(_) => return Some(full),
            Err(_) => return None,
        }
    }
    None
}
