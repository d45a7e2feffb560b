//! All-or-nothing output: every file is written to a temp file in the output
//! directory and fsynced; only when all of them are complete are they renamed over
//! the old ones, and the directory is fsynced. A crash, a full disk or a read-only
//! directory leaves the previous index set intact and no temp file behind.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::sys::{self, Errno, File};

/// A failed output step, naming the file it concerns.
#[derive(Debug)]
pub struct WriteError {
    /// Path of the file (or directory) concerned.
    pub path: Vec<u8>,
    /// What the system said.
    pub error: Errno,
}

/// The output directory with the temp files written so far.
pub struct Staging {
    dir: Vec<u8>,
    suffix: String,
    /// (temp file, its final name), in the order written.
    staged: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Staging {
    /// Starts staging into `dir`. Temp names are `<name>.<pid>.<usec>.<sec>`, as
    /// kmod's.
    pub fn open(dir: &[u8]) -> Self {
        let (secs, usecs) = sys::now();
        Staging {
            dir: dir.to_vec(),
            suffix: format!(".{}.{}.{}", sys::pid(), usecs, secs),
            staged: Vec::new(),
        }
    }

    /// `mkdir -p` with mode 0755 (umask applies).
    pub fn create_dir(dir: &[u8]) -> sys::Result<()> {
        sys::create_dir_all(dir, 0o755)
    }

    fn path_of(&self, name: &str, suffix: &str) -> Vec<u8> {
        let mut p = self.dir.clone();
        if p.last() != Some(&b'/') {
            p.push(b'/');
        }
        p.extend_from_slice(name.as_bytes());
        p.extend_from_slice(suffix.as_bytes());
        p
    }

    /// Writes `bytes` to a new temp file for `name` and syncs it.
    pub fn stage(&mut self, name: &str, bytes: &[u8]) -> Result<(), WriteError> {
        let target = self.path_of(name, "");
        let tmp = self.path_of(name, &self.suffix);
        let f = match File::create_new(&tmp, 0o644) {
            Ok(f) => f,
            Err(error) => {
                return Err(WriteError {
                    path: target,
                    error,
                })
            }
        };
        self.staged.push((tmp, target.clone()));
        let written = f.write_all(bytes).and_then(|()| f.sync_all());
        written.map_err(|error| WriteError {
            path: target,
            error,
        })
    }

    /// Renames every temp file over its target, then syncs the directory.
    pub fn commit(mut self) -> Result<(), WriteError> {
        let staged = core::mem::take(&mut self.staged);
        for (i, (tmp, target)) in staged.iter().enumerate() {
            if let Err(error) = sys::rename(tmp, target) {
                // Earlier renames stand (each is atomic); drop the rest.
                for (t, _) in staged.iter().skip(i) {
                    let _ = sys::remove_file(t);
                }
                return Err(WriteError {
                    path: target.clone(),
                    error,
                });
            }
        }
        sys::sync_dir(&self.dir);
        Ok(())
    }
}

impl Drop for Staging {
    /// Anything still staged was not committed: remove it.
    fn drop(&mut self) {
        for (tmp, _) in &self.staged {
            let _ = sys::remove_file(tmp);
        }
    }
}
