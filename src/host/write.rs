//! All-or-nothing output: every file is written to a temp file in the output
//! directory and fsynced; only when all of them are complete are they renamed over
//! the old ones, and the directory is fsynced. A crash, a full disk or a read-only
//! directory leaves the previous index set intact and no temp file behind.

#[allow(unused_imports)]
use std::prelude::rust_2021::*;
#[allow(unused_imports)]
use std::{format, vec};

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

fn os(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

/// A failed output step, naming the file it concerns.
#[derive(Debug)]
pub struct WriteError {
    /// Path of the file (or directory) concerned.
    pub path: PathBuf,
    /// What the system said.
    pub error: io::Error,
}

/// The output directory with the temp files written so far.
pub struct Staging {
    dir: PathBuf,
    suffix: String,
    staged: Vec<(PathBuf, PathBuf)>,
}

impl Staging {
    /// Opens the output directory (creating it, like `mkdir -p`, unless `create` is
    /// false). Temp names are `<name>.<pid>.<usec>.<sec>`, as kmod's.
    pub fn open(dir: &[u8]) -> Result<Self, WriteError> {
        let dir = os(dir).to_path_buf();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Staging {
            dir,
            suffix: format!(
                ".{}.{}.{}",
                std::process::id(),
                now.subsec_micros(),
                now.as_secs()
            ),
            staged: Vec::new(),
        })
    }

    /// `mkdir -p` with mode 0755 (umask applies).
    pub fn create_dir(dir: &[u8]) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(os(dir))
    }

    /// Writes `bytes` to a new temp file for `name` and syncs it.
    pub fn stage(&mut self, name: &str, bytes: &[u8]) -> Result<(), WriteError> {
        let target = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}{}", self.suffix));
        let fail = |path: &Path, error| WriteError {
            path: path.to_path_buf(),
            error,
        };
        let mut f: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| fail(&target, e))?;
        self.staged.push((tmp.clone(), target.clone()));
        f.write_all(bytes).map_err(|e| fail(&target, e))?;
        f.sync_all().map_err(|e| fail(&target, e))?;
        Ok(())
    }

    /// Renames every temp file over its target, then syncs the directory.
    pub fn commit(mut self) -> Result<(), WriteError> {
        let staged = std::mem::take(&mut self.staged);
        for (i, (tmp, target)) in staged.iter().enumerate() {
            if let Err(error) = fs::rename(tmp, target) {
                // Earlier renames stand (each is atomic); drop the rest.
                for (t, _) in staged.iter().skip(i) {
                    let _ = fs::remove_file(t);
                }
                return Err(WriteError {
                    path: target.clone(),
                    error,
                });
            }
        }
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for Staging {
    /// Anything still staged was not committed: remove it.
    fn drop(&mut self) {
        for (tmp, _) in &self.staged {
            let _ = fs::remove_file(tmp);
        }
    }
}
