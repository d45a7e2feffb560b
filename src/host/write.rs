//! All-or-nothing output: every file is written to a temp file in the output
//! directory and fsynced; only when all of them are complete are they renamed over
//! the old ones, and the directory is fsynced. A crash, a full disk or a read-only
//! directory leaves the previous index set intact and no temp file behind.
//!
//! The output directory is opened once and everything after that is relative to
//! it (`openat`, `renameat`, `unlinkat`), as kmod's `depmod_output` does: the run
//! cannot end up writing half its files into a directory that was moved or
//! replaced meanwhile, and tools that rewrite paths (kmod's own test suite runs
//! depmod under an `LD_PRELOAD` trap of `open`, `stat`, `mkdir`, …) see the
//! directory's path exactly once.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::sys::{self, DirFd, Errno};

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
    dir: DirFd,
    /// The directory's path, for messages only.
    path: Vec<u8>,
    suffix: String,
    /// (temp file name, its final name), in the order written.
    staged: Vec<(Vec<u8>, &'static str)>,
}

impl Staging {
    /// Opens the output directory `path` to stage files in it. Temp names are
    /// `<name>.<pid>.<usec>.<sec>`, as kmod's.
    pub fn open(path: &[u8]) -> sys::Result<Self> {
        let dir = DirFd::open(path)?;
        Ok(Staging {
            dir,
            path: path.to_vec(),
            suffix: temp_suffix(),
            staged: Vec::new(),
        })
    }

    /// `mkdir -p` with mode 0755 (umask applies).
    pub fn create_dir(dir: &[u8]) -> sys::Result<()> {
        sys::create_dir_all(dir, 0o755)
    }

    /// `name`'s path, for messages.
    fn path_of(&self, name: &str) -> Vec<u8> {
        let mut p = self.path.clone();
        if p.last() != Some(&b'/') {
            p.push(b'/');
        }
        p.extend_from_slice(name.as_bytes());
        p
    }

    /// Writes `bytes` to a new temp file for `name` and syncs it; returns the temp
    /// file's name, for [`Staging::adopt`]. Takes `&self`, so that the threads
    /// making the outputs each write theirs as soon as it is made. A temp file
    /// that could not be written whole is removed at once.
    pub fn write_temp(&self, name: &'static str, bytes: &[u8]) -> Result<Vec<u8>, WriteError> {
        let mut tmp = name.as_bytes().to_vec();
        tmp.extend_from_slice(self.suffix.as_bytes());
        let failed = |error| WriteError {
            path: self.path_of(name),
            error,
        };
        let file = self.dir.create_new(&tmp, 0o644).map_err(failed)?;
        match file.write_all(bytes).and_then(|()| file.sync_all()) {
            Ok(()) => Ok(tmp),
            Err(error) => {
                drop(file);
                let _ = self.dir.remove(&tmp);
                Err(failed(error))
            }
        }
    }

    /// Takes on a temp file [`Staging::write_temp`] wrote: [`Staging::commit`]
    /// renames it over `name`; dropping the staging first removes it. Adopted in
    /// the order the renames are to be done.
    pub fn adopt(&mut self, tmp: Vec<u8>, name: &'static str) {
        self.staged.push((tmp, name));
    }

    /// Renames every temp file over its target, then syncs the directory.
    pub fn commit(mut self) -> Result<(), WriteError> {
        let staged = core::mem::take(&mut self.staged);
        for (i, (tmp, name)) in staged.iter().enumerate() {
            if let Err(error) = self.dir.rename(tmp, name.as_bytes()) {
                // Earlier renames stand (each is atomic); drop the rest.
                for (t, _) in staged.iter().skip(i) {
                    let _ = self.dir.remove(t);
                }
                return Err(WriteError {
                    path: self.path_of(name),
                    error,
                });
            }
        }
        // Best effort: every file is complete and in place whether or not the
        // directory's metadata reaches the disk now.
        let _ = self.dir.sync();
        self.remove_dead_runs_temp_files(staged.iter().map(|(_, name)| *name));
        Ok(())
    }

    /// Removes the temp files that killed or crashed runs (ours or kmod's: the
    /// names are the same) left beside `outputs`, now that this run's outputs
    /// replace whatever those runs were writing. Only names of the exact form
    /// `<output>.<pid>.<usec>.<sec>` whose process no longer exists are touched, so
    /// a depmod still writing into this directory keeps its files. Best effort: a
    /// leftover that cannot be removed changes nothing a reader sees.
    fn remove_dead_runs_temp_files<'a>(&self, outputs: impl Iterator<Item = &'a str> + Clone) {
        let Ok(names) = self.dir.names() else {
            return;
        };
        let own = sys::pid();
        for name in names {
            let pid = outputs
                .clone()
                .find_map(|output| temp_file_pid(&name, output.as_bytes()));
            if pid.is_some_and(|pid| pid != own && sys::process_gone(pid)) {
                let _ = self.dir.remove(&name);
            }
        }
    }
}

/// What this run appends to a file's name for its temp file: `.<pid>.<usec>.<sec>`,
/// as kmod's (and what [`temp_file_pid`] recognises in a dead run's leftovers).
pub fn temp_suffix() -> String {
    let (secs, usecs) = sys::now();
    format!(".{}.{}.{}", sys::pid(), usecs, secs)
}

/// The pid in `name` if it is a temp file name of `output`:
/// `<output>.<pid>.<usec>.<sec>`, each number plain decimal.
fn temp_file_pid(name: &[u8], output: &[u8]) -> Option<u32> {
    let rest = name.strip_prefix(output)?.strip_prefix(b".")?;
    let mut numbers = rest.split(|&b| b == b'.');
    let mut pid = None;
    for i in 0..3 {
        let field = numbers.next()?;
        if field.is_empty() || field.len() > 20 || !field.iter().all(u8::is_ascii_digit) {
            return None;
        }
        if i == 0 {
            let text = core::str::from_utf8(field).ok()?;
            pid = Some(text.parse().ok()?);
        }
    }
    if numbers.next().is_some() {
        return None;
    }
    pid
}

impl Drop for Staging {
    /// Anything still staged was not committed: remove it.
    fn drop(&mut self) {
        for (tmp, _) in &self.staged {
            let _ = self.dir.remove(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::temp_file_pid;

    #[test]
    fn temp_file_names_are_recognised_exactly() {
        assert_eq!(
            temp_file_pid(b"modules.dep.4242.17.1796394365", b"modules.dep"),
            Some(4242)
        );
        for other in [
            &b"modules.dep"[..],
            b"modules.dep.bin.4242.17.1796394365",
            b"modules.dep.4242.17",
            b"modules.dep.4242.17.1796394365.1",
            b"modules.dep.4242..1796394365",
            b"modules.dep.42x2.17.1796394365",
            b"modules.dep.orig",
            b"modules.dep~",
        ] {
            assert_eq!(temp_file_pid(other, b"modules.dep"), None, "{other:?}");
        }
    }
}
