//! All-or-nothing output: every file is written to a temp file in the output
//! directory, its writeback started and its `fsync` begun (on a thread of its
//! own) at once; when all of them are written and synced, and only then, they
//! are renamed over the old ones, and the directory is fsynced. A crash, a full
//! disk or a read-only
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
    /// (temp file, its final name), in the order written; no temp file for an
    /// output left in place ([`Staging::keep`]).
    staged: Vec<(Option<Temp>, &'static str)>,
    /// Permission bits, owner and group a file this run creates gets.
    new_file: (u32, u32, u32),
}

/// A temp file [`Staging::write_temp`] wrote, kept open for [`Staging::sync`].
pub struct Temp {
    name: Vec<u8>,
    file: sys::File,
    /// Its `fsync`, started as soon as it was written.
    syncing: Option<Syncing>,
}

/// An `fsync` on a thread of its own.
type Syncing =
    sys::Background<sys::Result<()>, alloc::boxed::Box<dyn FnOnce() -> sys::Result<()> + Send>>;

/// How much of an output in place [`Staging::holds`] reads at a time.
const PIECE: usize = 64 << 10;

impl Staging {
    /// Opens the output directory `path` to stage files in it. Temp names are
    /// `<name>.<pid>.<usec>.<sec>`, as kmod's.
    /// `umask` is the process's (read before any thread started: [`sys::umask`]).
    pub fn open(path: &[u8], umask: u32) -> sys::Result<Self> {
        let dir = DirFd::open(path)?;
        let (uid, gid) = sys::effective_ids();
        Ok(Staging {
            dir,
            path: path.to_vec(),
            suffix: temp_suffix(),
            staged: Vec::new(),
            new_file: (NEW_FILE_MODE & !umask, uid, gid),
        })
    }

    /// Whether output `name` as it stands may be left in place of writing it
    /// again: a regular file of `size` bytes, with no other name (hard link) and
    /// not reached through a symbolic link, with the permission bits, owner and
    /// group a file written now would get, and whose bytes `same` accepts, given
    /// in order, piece by piece (false at the first piece it refuses). Then
    /// nothing a reader can see tells it from the file this run would write but
    /// the inode number (its times are set at [`Staging::commit`]). False on any
    /// error: the output is written as usual.
    pub fn holds(&self, name: &str, size: u64, mut same: impl FnMut(&[u8]) -> bool) -> bool {
        let Ok(file) = self.dir.open_file(name.as_bytes()) else {
            return false;
        };
        let Ok(m) = file.metadata() else {
            return false;
        };
        let (mode, uid, gid) = self.new_file;
        let fits = m.is_file()
            && m.links() == 1
            && m.mode() & 0o7777 == mode
            && m.owner() == (uid, gid)
            && m.size() == size;
        if !fits {
            return false;
        }
        // Read in pieces into one small buffer: no pages touched for a copy of
        // the whole file.
        let mut buf = alloc::vec![0u8; PIECE];
        let mut at = 0u64;
        loop {
            let n = match file.read_at(&mut buf, at) {
                Ok(n) => n,
                Err(_) => return false,
            };
            let piece = buf.get(..n).unwrap_or_default();
            if n == 0 {
                // The whole file, and it did not grow or shrink meanwhile.
                return at == size;
            }
            at += n as u64;
            if at > size || !same(piece) {
                return false;
            }
        }
    }

    /// Leaves output `name` as it stands ([`Staging::holds`] said it holds
    /// this run's bytes); [`Staging::commit`] only sets its times, as a new
    /// file's would be. Kept in the order of the renames.
    pub fn keep(&mut self, name: &'static str) {
        self.staged.push((None, name));
    }

    /// `mkdir -p` with mode 0755 (umask applies).
    pub fn create_dir(dir: &[u8]) -> sys::Result<()> {
        sys::create_dir_all(dir, 0o755)
    }

    /// `name`'s path, for messages.
    fn path_of(&self, name: &str) -> Vec<u8> {
        path_in(&self.path, name)
    }

    /// Writes `bytes` to a new temp file for `name` and starts its writeback, to
    /// go on while the other outputs are made ([`Staging::sync`] waits for it);
    /// returns the temp file, for [`Staging::adopt`]. Takes `&self`, so that the
    /// threads making the outputs each write theirs as soon as it is made. A temp
    /// file that could not be written whole is removed at once.
    pub fn write_temp(&self, name: &'static str, bytes: &[u8]) -> Result<Temp, WriteError> {
        let mut tmp = name.as_bytes().to_vec();
        tmp.extend_from_slice(self.suffix.as_bytes());
        let failed = |error| WriteError {
            path: self.path_of(name),
            error,
        };
        let file = self.dir.create_new(&tmp, NEW_FILE_MODE).map_err(failed)?;
        match file.write_all(bytes) {
            Ok(()) => {
                file.start_writeback();
                // Synced at once, on a thread of its own: what an `fsync` waits
                // for (the disk taking the file's bytes) then goes on while the
                // other outputs are made, and the one the renames wait for
                // after the last output is written is the last output's.
                let syncing = file.try_clone().ok().map(|f| {
                    let work: alloc::boxed::Box<dyn FnOnce() -> sys::Result<()> + Send> =
                        alloc::boxed::Box::new(move || f.sync_all());
                    sys::Background::spawn(work)
                });
                Ok(Temp {
                    name: tmp,
                    file,
                    syncing,
                })
            }
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
    pub fn adopt(&mut self, tmp: Temp, name: &'static str) {
        self.staged.push((Some(tmp), name));
    }

    /// Waits until every adopted temp file is on disk: for the `fsync` each
    /// began when it was written ([`Staging::write_temp`]), so this mostly
    /// waits for the last, or for one made now if that thread could not be
    /// started. Before [`Staging::commit`]; a failure is a write error of the
    /// first output that failed.
    pub fn sync(&mut self) -> Result<(), WriteError> {
        let mut failed = None;
        for (tmp, name) in &mut self.staged {
            if let Some(t) = tmp {
                let synced = match t.syncing.take() {
                    Some(s) => s.join(),
                    None => t.file.sync_all(),
                };
                if let (Err(error), None) = (synced, &failed) {
                    failed = Some(WriteError {
                        path: path_in(&self.path, name),
                        error,
                    });
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Renames every temp file over its target (and sets the times of the files
    /// kept in place), then syncs the directory.
    pub fn commit(mut self) -> Result<(), WriteError> {
        let staged = core::mem::take(&mut self.staged);
        for (i, (tmp, name)) in staged.iter().enumerate() {
            let Some(tmp) = tmp else {
                // Best effort: the file holds this run's bytes either way; its
                // time is what `-A` compares with the modules'.
                let _ = self.dir.touch(name.as_bytes());
                continue;
            };
            if let Err(error) = self.dir.rename(&tmp.name, name.as_bytes()) {
                // Earlier renames stand (each is atomic); drop the rest.
                for (t, _) in staged.iter().skip(i) {
                    if let Some(t) = t {
                        let _ = self.dir.remove(&t.name);
                    }
                }
                return Err(WriteError {
                    path: self.path_of(name),
                    error,
                });
            }
        }
        // Best effort: every file is complete and in place whether or not the
        // directory's metadata reaches the disk now.
        if staged.iter().any(|(tmp, _)| tmp.is_some()) {
            let _ = self.dir.sync();
        }
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

/// The path of output `name` in the directory at `dir` (for messages).
fn path_in(dir: &[u8], name: &str) -> Vec<u8> {
    let mut p = dir.to_vec();
    if p.last() != Some(&b'/') {
        p.push(b'/');
    }
    p.extend_from_slice(name.as_bytes());
    p
}

/// The mode outputs are created with, as kmod's (less the umask).
const NEW_FILE_MODE: u32 = 0o644;

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
            if let Some(tmp) = tmp {
                let _ = self.dir.remove(&tmp.name);
            }
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
