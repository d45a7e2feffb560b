//! The operating system, through libc only: files, directories, standard streams,
//! threads, the clock.
//!
//! The host layer uses this instead of `std` so that the `depmod` binary can be
//! built without `std` at all: the precompiled `std` links its panic hook's
//! backtrace symbolizer (gimli, addr2line, a demangler, libunwind — ~200 KiB) into
//! every binary, which alone would break the 512 KiB budget of the static x86_64
//! build. What is here is what depmod needs and no more; errors are the `errno`
//! values, worded by [`super::strerror`] as glibc words them.
#![allow(unsafe_code)]

use alloc::vec::Vec;
use core::ffi::{c_char, c_int, c_void};
use core::mem::MaybeUninit;

/// An `errno` value from a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

/// The result of a system call wrapper.
pub type Result<T> = core::result::Result<T, Errno>;

impl Errno {
    /// The calling thread's `errno`, just after a call failed.
    pub fn last() -> Errno {
        // SAFETY: `__errno_location` returns the calling thread's errno slot, valid
        // for the thread's lifetime (glibc and musl both provide it).
        Errno(unsafe { *libc::__errno_location() })
    }
}

/// The C library's own text for `errno` (`strerror_r`, the XSI version).
pub fn strerror(errno: i32) -> Vec<u8> {
    let mut buf = [0u8; 128];
    // SAFETY: `buf` is writable for its length, which is passed.
    let r = unsafe { libc::strerror_r(errno, buf.as_mut_ptr().cast::<c_char>(), buf.len()) };
    if r != 0 {
        return alloc::format!("Unknown error {errno}").into_bytes();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    buf.get(..len).unwrap_or_default().to_vec()
}

/// `path` as a NUL-terminated C string; a path with a NUL byte inside cannot name a
/// file (`EINVAL`, as std reports it).
fn c_path(path: &[u8]) -> Result<CPath> {
    if path.contains(&0) {
        return Err(Errno(libc::EINVAL));
    }
    if path.len() < SHORT_PATH {
        let mut short = [0u8; SHORT_PATH];
        if let Some(room) = short.get_mut(..path.len()) {
            room.copy_from_slice(path);
            return Ok(CPath::Short(short));
        }
    }
    let mut c = Vec::with_capacity(path.len() + 1);
    c.extend_from_slice(path);
    c.push(0);
    Ok(CPath::Long(c))
}

/// Paths shorter than this are made C strings on the stack.
const SHORT_PATH: usize = 256;

/// A NUL-terminated path for a system call: on the stack when short, as module
/// paths and names are (a heap copy per `open` and `stat` was a sixth of a cold
/// run's allocations). Large on purpose: it lives on the stack for one call.
#[allow(clippy::large_enum_variant)]
enum CPath {
    /// The path, then NULs.
    Short([u8; SHORT_PATH]),
    /// The path and its NUL.
    Long(Vec<u8>),
}

impl CPath {
    fn as_ptr(&self) -> *const u8 {
        match self {
            CPath::Short(a) => a.as_ptr(),
            CPath::Long(v) => v.as_ptr(),
        }
    }
}

/// Retries a call interrupted by a signal.
fn retry(mut call: impl FnMut() -> isize) -> Result<usize> {
    loop {
        let r = call();
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = Errno::last();
        if e.0 != libc::EINTR {
            return Err(e);
        }
    }
}

/// What `stat` says of a file (following symlinks).
#[derive(Clone, Copy)]
pub struct Metadata(libc::stat);

impl Metadata {
    /// The file type and permission bits.
    pub fn mode(&self) -> u32 {
        self.0.st_mode
    }
    fn kind(&self) -> u32 {
        self.0.st_mode & libc::S_IFMT
    }
    /// A directory?
    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }
    /// A regular file?
    pub fn is_file(&self) -> bool {
        self.kind() == libc::S_IFREG
    }
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.0.st_size as u64
    }
    /// Device and inode: identity of the file, for loop detection.
    // The field types differ between targets (32-bit ones among them).
    #[allow(clippy::unnecessary_cast)]
    pub fn id(&self) -> (u64, u64) {
        (self.0.st_dev as u64, self.0.st_ino as u64)
    }
    /// What the module cache compares to tell a change (`crate::cache`).
    #[allow(clippy::unnecessary_cast)]
    pub fn file_id(&self) -> crate::cache::FileId {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        crate::cache::FileId {
            dev: self.0.st_dev as u64,
            ino: self.0.st_ino as u64,
            size: self.0.st_size as u64,
            mtime_ns: ns(self.0.st_mtime as i64, self.0.st_mtime_nsec as i64),
            ctime_ns: ns(self.0.st_ctime as i64, self.0.st_ctime_nsec as i64),
        }
    }
    /// Owner and group.
    pub fn owner(&self) -> (u32, u32) {
        (self.0.st_uid, self.0.st_gid)
    }
    /// Number of hard links.
    #[allow(clippy::unnecessary_cast)]
    pub fn links(&self) -> u64 {
        self.0.st_nlink as u64
    }
    /// Modification time, whole seconds (what kmod compares for `-A`).
    #[allow(clippy::unnecessary_cast)]
    pub fn mtime(&self) -> i64 {
        self.0.st_mtime as i64
    }
}

/// `stat(2)`.
pub fn metadata(path: &[u8]) -> Result<Metadata> {
    let c = c_path(path)?;
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `c` is NUL-terminated; `st` is writable storage for one `stat`.
    if unsafe { libc::stat(c.as_ptr().cast(), st.as_mut_ptr()) } != 0 {
        return Err(Errno::last());
    }
    // SAFETY: `stat` succeeded, so it filled `st` in.
    Ok(Metadata(unsafe { st.assume_init() }))
}

/// An open file descriptor, closed on drop.
///
/// Opened without `O_CLOEXEC`: depmod never starts another program, so no
/// descriptor can leak into one, and musl's `open` follows every `O_CLOEXEC`
/// open with an `fcntl(F_SETFD)` of its own (for kernels that ignore the flag):
/// one system call more per module in the static binaries.
pub struct File(c_int);

impl File {
    fn open_with(path: &[u8], flags: c_int, mode: libc::mode_t) -> Result<File> {
        let c = c_path(path)?;
        let fd = retry(|| {
            // SAFETY: `c` is NUL-terminated; `open` takes a mode argument with
            // O_CREAT and ignores it otherwise.
            let fd = unsafe { libc::open(c.as_ptr().cast(), flags, mode) };
            fd as isize
        })?;
        Ok(File(fd as c_int))
    }

    /// Opens for reading.
    pub fn open(path: &[u8]) -> Result<File> {
        File::open_with(path, libc::O_RDONLY, 0)
    }

    /// Creates a new file for writing (`O_EXCL`: never an existing one).
    pub fn create_new(path: &[u8], mode: libc::mode_t) -> Result<File> {
        File::open_with(path, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, mode)
    }

    /// `fstat(2)`.
    pub fn metadata(&self) -> Result<Metadata> {
        let mut st = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `self.0` is an open descriptor; `st` is writable storage.
        if unsafe { libc::fstat(self.0, st.as_mut_ptr()) } != 0 {
            return Err(Errno::last());
        }
        // SAFETY: `fstat` succeeded, so it filled `st` in.
        Ok(Metadata(unsafe { st.assume_init() }))
    }

    /// Appends the rest of the file to `buf`, but at most `limit` bytes; a file
    /// longer than that leaves `buf` holding `limit + 1` bytes of it (so the
    /// caller can tell "too large" from "exactly `limit`").
    pub fn read_to_end(&self, buf: &mut Vec<u8>, limit: usize) -> Result<()> {
        let stop = buf.len().saturating_add(limit).saturating_add(1);
        loop {
            if buf.len() >= stop {
                return Ok(());
            }
            if buf.capacity() == buf.len() {
                buf.reserve((buf.len().max(8192)).min(stop - buf.len()));
            }
            let room = (buf.capacity() - buf.len()).min(stop - buf.len());
            let n = retry(|| {
                // SAFETY: the spare capacity of `buf` has at least `room` writable
                // bytes past its length.
                unsafe {
                    libc::read(
                        self.0,
                        buf.as_mut_ptr().add(buf.len()).cast::<c_void>(),
                        room,
                    )
                }
            })?;
            if n == 0 {
                return Ok(());
            }
            // SAFETY: `read` initialised `n <= room` bytes past the old length.
            unsafe { buf.set_len(buf.len() + n) };
        }
    }

    /// Reads into `buf` from byte `offset` of the file (`pread`: the file position is
    /// left alone) until `buf` is full or the file ends; returns how many bytes were
    /// read (fewer than `buf.len()` only at the end of the file).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset
                .checked_add(done as u64)
                .and_then(|at| libc::off_t::try_from(at).ok())
                .ok_or(Errno(libc::EOVERFLOW))?;
            let rest = buf.get_mut(done..).unwrap_or_default();
            let n = retry(|| {
                // SAFETY: `rest` is writable for its length, which is passed.
                unsafe { libc::pread(self.0, rest.as_mut_ptr().cast::<c_void>(), rest.len(), at) }
            })?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    /// Writes all of `bytes`.
    pub fn write_all(&self, bytes: &[u8]) -> Result<()> {
        write_all_fd(self.0, bytes)
    }

    /// Another descriptor of the same open file (`dup(2)`).
    pub fn try_clone(&self) -> Result<File> {
        // SAFETY: `self.0` is an open descriptor; `dup` makes a new one.
        let fd = unsafe { libc::dup(self.0) };
        if fd < 0 {
            return Err(Errno::last());
        }
        Ok(File(fd))
    }

    /// `fsync(2)`.
    pub fn sync_all(&self) -> Result<()> {
        // SAFETY: `self.0` is an open descriptor.
        retry(|| unsafe { libc::fsync(self.0) } as isize).map(|_| ())
    }

    /// Starts writing the file's dirty pages to disk without waiting
    /// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so that a later
    /// [`File::sync_all`] finds them on their way. Advisory: on a file system
    /// that does not support it, `fsync` does it all.
    pub fn start_writeback(&self) {
        // SAFETY: `self.0` is an open descriptor; the call only schedules I/O.
        let _ = unsafe { libc::sync_file_range(self.0, 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
}

impl Drop for File {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and nothing uses it after this.
        unsafe { libc::close(self.0) };
    }
}

fn write_all_fd(fd: c_int, mut bytes: &[u8]) -> Result<()> {
    while !bytes.is_empty() {
        let n = retry(|| {
            // SAFETY: `bytes` is valid for reads of its length.
            unsafe { libc::write(fd, bytes.as_ptr().cast::<c_void>(), bytes.len()) }
        })?;
        if n == 0 {
            return Err(Errno(libc::EIO));
        }
        bytes = bytes.get(n..).unwrap_or_default();
    }
    Ok(())
}

/// Reads a whole file.
pub fn read(path: &[u8]) -> Result<Vec<u8>> {
    let f = File::open(path)?;
    let hint = f.metadata().map_or(0, |m| m.size() as usize);
    let mut buf = Vec::new();
    buf.try_reserve_exact(hint.saturating_add(1))
        .map_err(|_| Errno(libc::ENOMEM))?;
    f.read_to_end(&mut buf, usize::MAX - 1)?;
    Ok(buf)
}

/// What `readdir` says an entry is, when it says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryType {
    /// `DT_REG`.
    File,
    /// `DT_DIR`.
    Dir,
}

impl EntryType {
    /// The type a directory entry's `d_type` tells (`None`: ask `stat`).
    fn of(d_type: u8) -> Option<EntryType> {
        match d_type {
            libc::DT_REG => Some(EntryType::File),
            libc::DT_DIR => Some(EntryType::Dir),
            _ => None,
        }
    }
}

/// An open directory stream, closed on drop.
struct Dir(*mut libc::DIR);

impl Dir {
    fn open(path: &[u8]) -> Result<Dir> {
        let c = c_path(path)?;
        // SAFETY: `c` is NUL-terminated.
        let dir = unsafe { libc::opendir(c.as_ptr().cast()) };
        if dir.is_null() {
            return Err(Errno::last());
        }
        Ok(Dir(dir))
    }
}

impl Dir {
    /// A stream over the directory open at `fd`, through a duplicate of it (the
    /// stream owns and closes the duplicate; `fd` stays open).
    fn from_fd(fd: c_int) -> Result<Dir> {
        // SAFETY: `fd` is an open descriptor; `F_DUPFD_CLOEXEC` returns a new one.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(Errno::last());
        }
        // SAFETY: `dup` is an open directory descriptor, owned by the stream from
        // here on.
        let dir = unsafe { libc::fdopendir(dup) };
        if dir.is_null() {
            let e = Errno::last();
            // SAFETY: `fdopendir` failed, so `dup` is still ours to close.
            unsafe { libc::close(dup) };
            return Err(e);
        }
        Ok(Dir(dir))
    }

    /// The entries (without `.` and `..`), in `readdir` order.
    fn entries(self) -> Vec<(Vec<u8>, Option<EntryType>)> {
        let mut entries = Vec::new();
        loop {
            // SAFETY: `self.0` is an open directory stream, used by this thread only.
            let entry = unsafe { libc::readdir(self.0) };
            if entry.is_null() {
                break;
            }
            // SAFETY: `readdir` returned a valid entry, alive until the next call on
            // the stream; `d_name` is NUL-terminated within it.
            let (name, d_type) = unsafe {
                let name = core::ffi::CStr::from_ptr((*entry).d_name.as_ptr().cast::<c_char>());
                (name.to_bytes(), (*entry).d_type)
            };
            if name == b"." || name == b".." {
                continue;
            }
            entries.push((name.to_vec(), EntryType::of(d_type)));
        }
        entries
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: the stream came from `opendir` and is closed once, here.
        unsafe { libc::closedir(self.0) };
    }
}

/// The entries of a directory (without `.` and `..`), in `readdir` order, each with
/// its type when the file system gives it (`None`: ask `stat`).
pub fn read_dir(path: &[u8]) -> Result<Vec<(Vec<u8>, Option<EntryType>)>> {
    Dir::open(path).map(Dir::entries)
}

/// Sets a file's times to now (`utimensat(2)`), as `touch` does.
pub fn touch(path: &[u8]) -> Result<()> {
    touch_at(libc::AT_FDCWD, path, 0)
}

/// `utimensat(dir, path, now, flags)`: `path`'s times set to now.
fn touch_at(dir: c_int, path: &[u8], flags: c_int) -> Result<()> {
    let c = c_path(path)?;
    // SAFETY: `dir` is `AT_FDCWD` or an open directory descriptor; `c` is
    // NUL-terminated; a null `times` means "now" for both.
    if unsafe { libc::utimensat(dir, c.as_ptr().cast(), core::ptr::null(), flags) } != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The file mode creation mask. Read by setting it and setting it back, so it
/// must be called before any other thread creates files.
pub fn umask() -> u32 {
    // SAFETY: `umask` cannot fail; the old mask is put back at once.
    let old = unsafe { libc::umask(0o022) };
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    // `mode_t` is `u32` on the Linux targets; narrower elsewhere.
    #[allow(clippy::useless_conversion)]
    u32::from(old)
}

/// The effective user and group id: who owns the files this process creates.
pub fn effective_ids() -> (u32, u32) {
    // SAFETY: neither call can fail.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// `unlink(2)`.
pub fn remove_file(path: &[u8]) -> Result<()> {
    let c = c_path(path)?;
    // SAFETY: `c` is NUL-terminated.
    if unsafe { libc::unlink(c.as_ptr().cast()) } != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Can the directory be opened (kmod opens it before it writes there)?
pub fn open_dir(path: &[u8]) -> Result<()> {
    Dir::open(path).map(drop)
}

/// `openat(2)` of `name` in the directory open at `dir`.
fn open_at(dir: &File, name: &[u8], flags: c_int, mode: libc::mode_t) -> Result<File> {
    let c = c_path(name)?;
    let fd = retry(|| {
        // SAFETY: `dir.0` is an open directory descriptor and `c` is
        // NUL-terminated; `openat` takes the mode argument with O_CREAT and
        // ignores it otherwise.
        let fd = unsafe { libc::openat(dir.0, c.as_ptr().cast(), flags, mode) };
        fd as isize
    })?;
    Ok(File(fd as c_int))
}

/// A directory opened once, so that files are created, renamed and removed relative
/// to it (`openat`, `renameat`, `unlinkat`) as kmod does: a run keeps writing into
/// the same directory even if its path changes meanwhile, and the path is resolved
/// once, by `open` (which path-rewriting `LD_PRELOAD` shims, kmod's test suite's
/// among them, intercept).
pub struct DirFd(File);

impl DirFd {
    /// Opens `path` as a directory.
    pub fn open(path: &[u8]) -> Result<DirFd> {
        File::open_with(path, libc::O_RDONLY | libc::O_DIRECTORY, 0).map(DirFd)
    }

    /// Creates the new file `name` in this directory for writing (`O_EXCL`).
    pub fn create_new(&self, name: &[u8], mode: libc::mode_t) -> Result<File> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
        open_at(&self.0, name, flags, mode)
    }

    /// Opens `name` in this directory for reading, but not through a symbolic
    /// link (`O_NOFOLLOW`) and without waiting on a FIFO (`O_NONBLOCK`).
    pub fn open_file(&self, name: &[u8]) -> Result<File> {
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        open_at(&self.0, name, flags, 0)
    }

    /// Sets the times of `name` in this directory to now (`utimensat(2)`), not
    /// following a symbolic link.
    pub fn touch(&self, name: &[u8]) -> Result<()> {
        touch_at((self.0).0, name, libc::AT_SYMLINK_NOFOLLOW)
    }

    /// `renameat(2)` of `from` over `to`, both in this directory.
    pub fn rename(&self, from: &[u8], to: &[u8]) -> Result<()> {
        let (a, b) = (c_path(from)?, c_path(to)?);
        let fd = (self.0).0;
        // SAFETY: `fd` is an open directory descriptor; both names are
        // NUL-terminated.
        if unsafe { libc::renameat(fd, a.as_ptr().cast(), fd, b.as_ptr().cast()) } != 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    /// `unlinkat(2)` of the file `name` in this directory.
    pub fn remove(&self, name: &[u8]) -> Result<()> {
        let c = c_path(name)?;
        // SAFETY: `self.0.0` is an open directory descriptor; `c` is NUL-terminated.
        if unsafe { libc::unlinkat((self.0).0, c.as_ptr().cast(), 0) } != 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    /// The names in this directory (without `.` and `..`), in `readdir` order.
    pub fn names(&self) -> Result<Vec<Vec<u8>>> {
        let entries = Dir::from_fd((self.0).0)?.entries();
        Ok(entries.into_iter().map(|(name, _)| name).collect())
    }

    /// `fsync` of the directory, so that renames in it are durable.
    pub fn sync(&self) -> Result<()> {
        self.0.sync_all()
    }
}

/// A directory of the module tree, opened for the walk: subdirectories are opened
/// and entries `stat`ed relative to it (`openat`, `fstatat`), as kmod's walk does,
/// so that the kernel resolves one name, not the whole path, each time; and it
/// is listed by `getdents64` into the walk's one buffer.
pub struct WalkDir(File);

impl WalkDir {
    /// Opens `path` (the walk's root).
    pub fn open(path: &[u8]) -> Result<WalkDir> {
        File::open_with(path, libc::O_RDONLY | libc::O_DIRECTORY, 0).map(WalkDir)
    }

    /// Opens the directory `name` in this one.
    pub fn open_at(&self, name: &[u8]) -> Result<WalkDir> {
        open_at(&self.0, name, libc::O_RDONLY | libc::O_DIRECTORY, 0).map(WalkDir)
    }

    /// `fstat(2)` of this directory.
    pub fn metadata(&self) -> Result<Metadata> {
        self.0.metadata()
    }

    /// `fstatat(2)` of `name` in this directory, following symlinks.
    pub fn metadata_at(&self, name: &[u8]) -> Result<Metadata> {
        let c = c_path(name)?;
        let mut st = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `self.0.0` is an open directory descriptor, `c` is
        // NUL-terminated and `st` is writable storage for one `stat`.
        if unsafe { libc::fstatat((self.0).0, c.as_ptr().cast(), st.as_mut_ptr(), 0) } != 0 {
            return Err(Errno::last());
        }
        // SAFETY: `fstatat` succeeded, so it filled `st` in.
        Ok(Metadata(unsafe { st.assume_init() }))
    }

    /// The entries (without `.` and `..`), in the order the file system gives
    /// them, each with its type when the file system tells it. `buf` is scratch
    /// space, reused from one directory to the next.
    pub fn entries(&self, buf: &mut Vec<u8>) -> Result<Vec<(Vec<u8>, Option<EntryType>)>> {
        if buf.is_empty() {
            buf.resize(32 << 10, 0);
        }
        let mut entries = Vec::new();
        loop {
            let n = retry(|| {
                // SAFETY: `self.0.0` is an open directory descriptor and `buf` is
                // writable for `buf.len()` bytes.
                let n = unsafe {
                    libc::syscall(
                        libc::SYS_getdents64,
                        (self.0).0,
                        buf.as_mut_ptr(),
                        buf.len(),
                    )
                };
                n as isize
            })?;
            if n == 0 {
                return Ok(entries);
            }
            parse_dirents(buf.get(..n).unwrap_or_default(), &mut entries);
        }
    }
}

/// The records `getdents64` wrote (`struct linux_dirent64`: inode u64, offset
/// i64, record length u16, type u8, NUL-terminated name), checked as they are
/// read: a record that does not fit ends the batch.
fn parse_dirents(mut batch: &[u8], entries: &mut Vec<(Vec<u8>, Option<EntryType>)>) {
    const TYPE: usize = 18;
    while let Some(&[a, b]) = batch.get(16..18) {
        let reclen = usize::from(u16::from_ne_bytes([a, b]));
        let (Some(rec), Some(rest)) = (batch.get(..reclen), batch.get(reclen..)) else {
            return;
        };
        let (Some(&d_type), Some(raw)) = (rec.get(TYPE), rec.get(TYPE + 1..)) else {
            return;
        };
        batch = rest;
        let name = raw.split(|&b| b == 0).next().unwrap_or_default();
        if name == b"." || name == b".." || name.is_empty() {
            continue;
        }
        entries.push((name.to_vec(), EntryType::of(d_type)));
    }
}

fn mkdir(path: &[u8], mode: libc::mode_t) -> Result<()> {
    let c = c_path(path)?;
    // SAFETY: `c` is NUL-terminated.
    if unsafe { libc::mkdir(c.as_ptr().cast(), mode) } != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// `mkdir -p` (umask applies), without recursion: climbs to the first ancestor that
/// exists or can be made, then creates the rest downwards.
pub fn create_dir_all(path: &[u8], mode: libc::mode_t) -> Result<()> {
    let is_dir = |p: &[u8]| metadata(p).is_ok_and(|m| m.is_dir());
    let trim = |mut end: usize| {
        while end > 1 && path.get(end - 1) == Some(&b'/') {
            end -= 1;
        }
        end
    };
    let mut end = trim(path.len());
    let mut missing = Vec::new();
    loop {
        let here = path.get(..end).unwrap_or(path);
        if here.is_empty() {
            return Ok(());
        }
        match mkdir(here, mode) {
            Ok(()) => break,
            Err(Errno(libc::ENOENT)) => {
                missing.push(end);
                match here.iter().rposition(|&b| b == b'/') {
                    Some(0) | None => return Err(Errno(libc::ENOENT)),
                    Some(slash) => end = trim(slash),
                }
            }
            Err(_) if is_dir(here) => break,
            Err(e) => return Err(e),
        }
    }
    for &end in missing.iter().rev() {
        let here = path.get(..end).unwrap_or(path);
        match mkdir(here, mode) {
            Ok(()) => {}
            Err(_) if is_dir(here) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `bytes` to standard output (unbuffered: callers hand whole lines
/// or whole files).
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    write_all_fd(libc::STDOUT_FILENO, bytes)
}

/// Writes all of `bytes` to standard error.
pub fn write_stderr(bytes: &[u8]) -> Result<()> {
    write_all_fd(libc::STDERR_FILENO, bytes)
}

/// An environment variable's value.
pub fn env_var(name: &core::ffi::CStr) -> Option<Vec<u8>> {
    // SAFETY: `name` is NUL-terminated; nothing in depmod changes the environment,
    // so the returned string stays valid while we copy it.
    let v = unsafe { libc::getenv(name.as_ptr()) };
    if v.is_null() {
        return None;
    }
    // SAFETY: a non-null `getenv` result is a NUL-terminated string.
    Some(unsafe { core::ffi::CStr::from_ptr(v) }.to_bytes().to_vec())
}

/// `getcwd(3)`, growing the buffer as needed.
pub fn current_dir() -> Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    loop {
        // SAFETY: `buf` has `capacity` writable bytes.
        let p = unsafe { libc::getcwd(buf.as_mut_ptr().cast::<c_char>(), buf.capacity()) };
        if !p.is_null() {
            // SAFETY: `getcwd` wrote a NUL-terminated path into `buf`.
            let len = unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes().len();
            // SAFETY: the first `len` bytes are initialised (the path).
            unsafe { buf.set_len(len) };
            return Ok(buf);
        }
        let e = Errno::last();
        if e.0 != libc::ERANGE {
            return Err(e);
        }
        let more = buf.capacity();
        buf.reserve(more);
    }
}

/// Wall-clock time: (seconds, microseconds) since the epoch.
pub fn now() -> (u64, u32) {
    let mut ts = MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: `ts` is writable storage for one `timespec`.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, ts.as_mut_ptr()) } != 0 {
        return (0, 0);
    }
    // SAFETY: `clock_gettime` succeeded, so it filled `ts` in.
    let ts = unsafe { ts.assume_init() };
    (ts.tv_sec as u64, (ts.tv_nsec / 1000) as u32)
}

/// Wall-clock time in nanoseconds since the epoch (the clock file timestamps use).
pub fn now_ns() -> i64 {
    let (secs, usecs) = now();
    (secs as i64)
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(usecs) * 1000)
}

/// A pthread mutex usable as a `static` (a waiting thread sleeps, not spins).
pub struct StaticMutex(core::cell::UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: a pthread mutex is made to be shared between threads; it is only used
// through `pthread_mutex_lock`/`unlock`, never moved (it lives in a static).
unsafe impl Sync for StaticMutex {}

impl StaticMutex {
    /// An unlocked mutex (`PTHREAD_MUTEX_INITIALIZER`).
    pub const fn new() -> StaticMutex {
        StaticMutex(core::cell::UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER))
    }

    /// The mutex if no other thread holds it, without waiting.
    pub fn try_lock(&'static self) -> Option<StaticMutexGuard> {
        // SAFETY: as in `lock`; `trylock` returns 0 when it took the mutex.
        (unsafe { libc::pthread_mutex_trylock(self.0.get()) } == 0)
            .then_some(StaticMutexGuard(self))
    }

    /// Waits for the mutex; it is released when the guard drops.
    pub fn lock(&'static self) -> StaticMutexGuard {
        // SAFETY: the mutex is initialised and lives forever (`'static`); a
        // default mutex locked by a thread that does not hold it just waits.
        unsafe { libc::pthread_mutex_lock(self.0.get()) };
        StaticMutexGuard(self)
    }
}

impl Default for StaticMutex {
    fn default() -> StaticMutex {
        StaticMutex::new()
    }
}

/// Holds a [`StaticMutex`].
pub struct StaticMutexGuard(&'static StaticMutex);

impl Drop for StaticMutexGuard {
    fn drop(&mut self) {
        // SAFETY: this thread locked the mutex in `lock` and unlocks it once.
        unsafe { libc::pthread_mutex_unlock((self.0).0.get()) };
    }
}

/// The process id.
pub fn pid() -> u32 {
    // SAFETY: `getpid` cannot fail.
    unsafe { libc::getpid() as u32 }
}

/// Is there no process `pid` (in this process's pid namespace)? `kill(pid, 0)`
/// fails with `ESRCH` exactly then; a process we may not signal still exists.
pub fn process_gone(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that `pid` exists and may be signalled.
    unsafe { libc::kill(pid, 0) != 0 && Errno::last().0 == libc::ESRCH }
}

/// The kernel's release string (`uname -r`).
pub fn uname_release() -> Result<Vec<u8>> {
    let mut u = MaybeUninit::<libc::utsname>::zeroed();
    // SAFETY: `u` is writable storage for one `utsname`.
    if unsafe { libc::uname(u.as_mut_ptr()) } != 0 {
        return Err(Errno::last());
    }
    // SAFETY: zeroed `utsname` is valid, and `uname` succeeded.
    let u = unsafe { u.assume_init() };
    Ok(u.release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect())
}

/// How many CPUs this process may run on (its affinity mask), as std's
/// `available_parallelism` counts them; at least 1.
pub fn parallelism() -> usize {
    let mut set = MaybeUninit::<libc::cpu_set_t>::zeroed();
    // SAFETY: `set` is writable storage of the size passed.
    let r = unsafe {
        libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), set.as_mut_ptr())
    };
    if r == 0 {
        // SAFETY: zeroed is a valid `cpu_set_t`, and the call filled it in;
        // `CPU_COUNT` only reads the set.
        let n = unsafe { libc::CPU_COUNT(set.assume_init_ref()) };
        if n > 0 {
            return n as usize;
        }
    }
    // SAFETY: `sysconf` has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as usize
    } else {
        1
    }
}

/// Stack of each worker thread: what std gives its threads.
const WORKER_STACK: usize = 2 << 20;

/// Runs `work` on `n` threads at once (the calling thread is one of them) and
/// returns what each returned, the caller's first. `work` must take its jobs from
/// shared state (an atomic counter): when a thread cannot be started, the others,
/// the caller at least, do its share, so every job is done whatever happens.
pub fn run_workers<T: Send, F: Fn() -> T + Sync>(n: usize, work: &F) -> Vec<T> {
    struct Job<'a, T, F> {
        work: &'a F,
        out: Option<T>,
    }
    extern "C" fn start<T, F: Fn() -> T>(arg: *mut c_void) -> *mut c_void {
        // SAFETY: `arg` is the `Job` handed to `pthread_create` below; it outlives
        // this thread (joined before `jobs` is touched again) and no one else
        // accesses it meanwhile.
        let job = unsafe { &mut *arg.cast::<Job<'_, T, F>>() };
        job.out = Some((job.work)());
        core::ptr::null_mut()
    }
    let mut jobs: Vec<Job<'_, T, F>> = (1..n.max(1)).map(|_| Job { work, out: None }).collect();
    let mut started = Vec::with_capacity(jobs.len());
    for job in jobs.iter_mut() {
        // SAFETY: `job` stays at its address (the Vec is not resized) until the
        // thread is joined; `start` matches the job's types.
        let tid =
            unsafe { start_thread(start::<T, F>, (job as *mut Job<'_, T, F>).cast::<c_void>()) };
        started.extend(tid);
    }
    let mine = work();
    for tid in started {
        // SAFETY: `tid` is a started, not yet joined thread.
        unsafe { libc::pthread_join(tid, core::ptr::null_mut()) };
    }
    let mut out = Vec::with_capacity(n);
    out.push(mine);
    out.extend(jobs.into_iter().filter_map(|j| j.out));
    out
}

/// Starts a thread of [`WORKER_STACK`] bytes of stack running `start(arg)`; its
/// id, or `None` when no thread could be started.
///
/// The thread runs on another CPU than the caller's when there is another
/// ([`other_cpus`]): a new thread is queued on the CPU of the thread that
/// started it, and on a VM whose other CPUs were idle it either ran there at
/// once, the starter waiting (2 to 4 ms for the first thread of a run), or
/// waited there itself (1.8 ms on average) until the load balancer moved one of
/// them, the two sharing one CPU meanwhile: every phase that starts workers
/// lost that much of its parallel time (measured on a 2-CPU VM). Kept off the
/// starter's CPU from its first instruction (if it runs first) or from the
/// starter's next (if it waits), it starts within 0.1 ms on another.
///
/// # Safety
/// `arg` must stay valid for `start` until the thread is joined.
unsafe fn start_thread(
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> Option<libc::pthread_t> {
    let others = other_cpus();
    let launch = alloc::boxed::Box::into_raw(alloc::boxed::Box::new(Launch { start, arg, others }));
    let mut attr = MaybeUninit::<libc::pthread_attr_t>::uninit();
    let mut tid = MaybeUninit::<libc::pthread_t>::uninit();
    // SAFETY: `attr` is initialised by `pthread_attr_init` before use and
    // destroyed after; the caller keeps `arg` valid for `start`; `launch` is
    // the new thread's to free (or ours again if none was started).
    unsafe {
        if libc::pthread_attr_init(attr.as_mut_ptr()) != 0 {
            drop(alloc::boxed::Box::from_raw(launch));
            return None;
        }
        libc::pthread_attr_setstacksize(attr.as_mut_ptr(), WORKER_STACK);
        let r = libc::pthread_create(tid.as_mut_ptr(), attr.as_ptr(), launched, launch.cast());
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        if r != 0 {
            drop(alloc::boxed::Box::from_raw(launch));
            return None;
        }
        // `pthread_create` stored the id, as it succeeded.
        let tid = tid.assume_init();
        if let Some(set) = &others {
            // Best effort: where the thread may run, not whether it runs.
            pthread_setaffinity_np(tid, core::mem::size_of::<libc::cpu_set_t>(), set);
        }
        Some(tid)
    }
}

/// What a thread [`start_thread`] started runs, and where.
struct Launch {
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
    others: Option<libc::cpu_set_t>,
}

/// A started thread's first code: off its starter's CPU, then its work.
extern "C" fn launched(launch: *mut c_void) -> *mut c_void {
    // SAFETY: `launch` is the box `start_thread` made for this thread and gave
    // up to it.
    let Launch { start, arg, others } =
        *unsafe { alloc::boxed::Box::from_raw(launch.cast::<Launch>()) };
    if let Some(set) = &others {
        // SAFETY: `set` is a valid CPU set of the size passed.
        unsafe { libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), set) };
    }
    start(arg)
}

extern "C" {
    /// glibc's and musl's (the `libc` crate declares it for neither).
    fn pthread_setaffinity_np(
        thread: libc::pthread_t,
        cpusetsize: libc::size_t,
        cpuset: *const libc::cpu_set_t,
    ) -> c_int;
}

/// The CPUs this thread may run on but the one it runs on, when there are
/// others: where a thread it starts is to run ([`start_thread`]).
fn other_cpus() -> Option<libc::cpu_set_t> {
    let mut set = MaybeUninit::<libc::cpu_set_t>::zeroed();
    // SAFETY: `set` is writable storage of the size passed; zeroed is a valid
    // `cpu_set_t`, filled in on success.
    let mut set = unsafe {
        if libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), set.as_mut_ptr())
            != 0
        {
            return None;
        }
        set.assume_init()
    };
    // SAFETY: `sched_getcpu` has no preconditions.
    let cpu = usize::try_from(unsafe { libc::sched_getcpu() }).ok()?;
    if cpu >= libc::CPU_SETSIZE as usize {
        return None;
    }
    // SAFETY: the CPU_* helpers only read and write the set given, `cpu` is
    // within it.
    unsafe {
        if !libc::CPU_ISSET(cpu, &set) || libc::CPU_COUNT(&set) < 2 {
            return None;
        }
        libc::CPU_CLR(cpu, &mut set);
    }
    Some(set)
}

/// A thread's closure and, once it ran, its result.
struct Task<T, F> {
    work: Option<F>,
    out: Option<T>,
}

extern "C" fn run_task<T, F: FnOnce() -> T>(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `Task` handed to `start_thread` by `join` or
    // `Background::spawn`; it outlives this thread (joined before the task is
    // touched or freed) and no one else accesses it meanwhile.
    let task = unsafe { &mut *arg.cast::<Task<T, F>>() };
    task.out = task.work.take().map(|f| f());
    core::ptr::null_mut()
}

/// Runs `a` on another thread while the caller runs `b`, and returns both
/// results once both are done. When no thread can be started, `a` runs after
/// `b` on the caller's.
pub fn join<A: Send, B>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B) -> (A, B) {
    fn both<A, FA: FnOnce() -> A, B>(a: FA, b: impl FnOnce() -> B) -> (A, B) {
        let mut task = Task {
            work: Some(a),
            out: None,
        };
        /// Joins the thread when dropped: after `b` returns, and also if `b`
        /// unwinds (tests), so `task` never goes while the thread still uses it.
        struct Joined(Option<libc::pthread_t>);
        impl Drop for Joined {
            fn drop(&mut self) {
                if let Some(tid) = self.0.take() {
                    // SAFETY: `tid` is a started, not yet joined thread.
                    unsafe { libc::pthread_join(tid, core::ptr::null_mut()) };
                }
            }
        }
        // SAFETY: `task` lives on this frame, and `joined` (declared after it,
        // so dropped before it) joins the thread before the frame is left.
        let joined = Joined(unsafe {
            start_thread(
                run_task::<A, FA>,
                (&mut task as *mut Task<A, FA>).cast::<c_void>(),
            )
        });
        let rb = b();
        drop(joined);
        let ra = match (task.out, task.work) {
            (Some(out), _) => out,
            // The thread never started: the work is still here.
            (None, Some(work)) => work(),
            // Not reached: a started thread takes the work and leaves its result.
            (None, None) => unreachable_task(),
        };
        (ra, rb)
    }
    both(a, b)
}

/// A started task's thread always leaves a result; reaching this is a bug.
#[cold]
fn unreachable_task() -> ! {
    let _ = write_stderr(b"depmod: internal error: a thread left no result\n");
    // SAFETY: `abort` has no preconditions.
    unsafe { libc::abort() }
}

/// Work started on another thread for the caller to collect later
/// ([`Background::join`]); dropping it waits for the thread too. The work owns
/// everything it uses (`'static`), so even a handle that is never dropped
/// cannot leave the thread with dangling references.
pub struct Background<T: Send + 'static, F: FnOnce() -> T + Send + 'static> {
    /// The task, boxed so that its address stays put while the thread runs;
    /// `None` once joined.
    task: Option<alloc::boxed::Box<Task<T, F>>>,
    tid: Option<libc::pthread_t>,
}

// SAFETY: what a `Background` holds is the boxed task, which only the started
// thread uses until it is joined, and that thread's id, which is only ever
// used to join it (`join` takes the value, `wait` a unique borrow); POSIX lets
// any thread join another, so the owner may be any thread (on musl the id is a
// pointer, which alone kept this from being `Send`). `T` and `F` are `Send`.
unsafe impl<T: Send + 'static, F: FnOnce() -> T + Send + 'static> Send for Background<T, F> {}

// SAFETY: a shared `&Background` can do nothing (no method takes `&self`).
unsafe impl<T: Send + 'static, F: FnOnce() -> T + Send + 'static> Sync for Background<T, F> {}

impl<T: Send + 'static, F: FnOnce() -> T + Send + 'static> Background<T, F> {
    /// Starts `work` on another thread (or, when none can be started, runs it
    /// now).
    pub fn spawn(work: F) -> Self {
        let mut task = alloc::boxed::Box::new(Task {
            work: Some(work),
            out: None,
        });
        let arg = (&mut *task as *mut Task<T, F>).cast::<c_void>();
        // SAFETY: the box is freed only after the thread is joined (`join`,
        // `drop`); if `self` is leaked the box is leaked with it.
        let tid = unsafe { start_thread(run_task::<T, F>, arg) };
        if tid.is_none() {
            task.out = task.work.take().map(|f| f());
        }
        Background {
            task: Some(task),
            tid,
        }
    }

    /// Waits for the work and returns its result.
    pub fn join(mut self) -> T {
        self.wait();
        match self.task.take().and_then(|t| t.out) {
            Some(out) => out,
            None => unreachable_task(),
        }
    }

    fn wait(&mut self) {
        if let Some(tid) = self.tid.take() {
            // SAFETY: `tid` is a started, not yet joined thread.
            unsafe { libc::pthread_join(tid, core::ptr::null_mut()) };
        }
    }
}

impl<T: Send + 'static, F: FnOnce() -> T + Send + 'static> Drop for Background<T, F> {
    fn drop(&mut self) {
        self.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// A thread we start may run anywhere this one may but on this one's CPU
    /// (when there is another): the set it runs with says so.
    #[test]
    fn started_threads_keep_off_the_starters_cpu() {
        fn count(set: &libc::cpu_set_t) -> i32 {
            // SAFETY: only reads the set.
            unsafe { libc::CPU_COUNT(set) }
        }
        fn own() -> libc::cpu_set_t {
            let mut set = MaybeUninit::<libc::cpu_set_t>::zeroed();
            // SAFETY: writable storage of the size passed; zeroed is valid.
            unsafe {
                assert_eq!(
                    libc::sched_getaffinity(
                        0,
                        core::mem::size_of::<libc::cpu_set_t>(),
                        set.as_mut_ptr()
                    ),
                    0
                );
                set.assume_init()
            }
        }
        let allowed = count(&own());
        let theirs = Background::spawn(move || count(&own())).join();
        if allowed >= 2 {
            assert_eq!(theirs, allowed - 1);
            let others = other_cpus().unwrap();
            assert_eq!(count(&others), allowed - 1);
        } else {
            assert_eq!(theirs, allowed);
            assert!(other_cpus().is_none());
        }
    }

    #[test]
    fn workers_share_the_jobs_and_return_their_results() {
        let next = AtomicUsize::new(0);
        let results = run_workers(4, &|| {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= 1000 {
                    return mine;
                }
                mine.push(i);
            }
        });
        assert_eq!(results.len(), 4);
        let mut all: Vec<usize> = results.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }

    /// `join` runs both closures, on two threads, over data on the caller's
    /// stack; a `Background` hands back what its thread made, and one dropped
    /// unjoined waits for it.
    #[test]
    fn join_and_background_return_what_their_threads_made() {
        let numbers: Vec<u64> = (1..=1000).collect();
        let (a, b) = join(
            || (pid(), numbers.iter().sum::<u64>()),
            || (pid(), numbers.iter().map(|n| n * 2).sum::<u64>()),
        );
        assert_eq!((a.1, b.1), (500_500, 1_001_000));
        let owned = numbers.clone();
        let bg = Background::spawn(move || owned.into_iter().max());
        assert_eq!(bg.join(), Some(1000));
        let done = alloc::sync::Arc::new(core::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        drop(Background::spawn(move || {
            flag.store(true, core::sync::atomic::Ordering::SeqCst)
        }));
        assert!(done.load(core::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn create_dir_all_makes_every_level_and_accepts_existing_ones() {
        let base = std::env::temp_dir().join(std::format!("depmod-sys-{}", pid()));
        let base = base.to_str().unwrap().as_bytes().to_vec();
        let mut deep = base.clone();
        deep.extend_from_slice(b"/a/b//c/");
        create_dir_all(&deep, 0o755).unwrap();
        assert!(metadata(&deep).unwrap().is_dir());
        create_dir_all(&deep, 0o755).unwrap();
        let mut file = base.clone();
        file.extend_from_slice(b"/a/f");
        File::create_new(&file, 0o644)
            .unwrap()
            .write_all(b"x")
            .unwrap();
        assert_eq!(read(&file).unwrap(), b"x");
        let mut under_file = file.clone();
        under_file.extend_from_slice(b"/g");
        assert_eq!(
            create_dir_all(&under_file, 0o755),
            Err(Errno(libc::ENOTDIR))
        );
        std::fs::remove_dir_all(std::str::from_utf8(&base).unwrap()).unwrap();
    }

    #[test]
    fn walk_dir_lists_what_readdir_lists() {
        let mut buf = Vec::new();
        for dir in [&b"/"[..], b"/usr/lib", b"/proc/self"] {
            let mut by_readdir = read_dir(dir).unwrap();
            let mut by_getdents = WalkDir::open(dir).unwrap().entries(&mut buf).unwrap();
            by_readdir.sort_by(|a, b| a.0.cmp(&b.0));
            by_getdents.sort_by(|a, b| a.0.cmp(&b.0));
            assert!(by_readdir.len() > 3);
            assert_eq!(by_getdents, by_readdir);
        }
        // A small buffer: listed in several batches.
        let mut small = alloc::vec![0u8; 512];
        let root = WalkDir::open(b"/usr/lib").unwrap();
        let sub = root.open_at(b"..").unwrap().metadata().unwrap().id();
        assert_eq!(sub, metadata(b"/usr").unwrap().id());
        let mut whole = read_dir(b"/usr/lib").unwrap();
        whole.sort_by(|a, b| a.0.cmp(&b.0));
        let mut listed = WalkDir::open(b"/usr/lib")
            .unwrap()
            .entries(&mut small)
            .unwrap();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(listed, whole);
    }

    #[test]
    fn read_dir_lists_entries_without_dot_entries() {
        let mut names: Vec<Vec<u8>> = read_dir(b"/").unwrap().into_iter().map(|e| e.0).collect();
        names.sort();
        assert!(names.iter().any(|n| n == b"proc"));
        assert!(!names.iter().any(|n| n == b"." || n == b".."));
        assert_eq!(
            read_dir(b"/nonexistent-depmod-dir").err(),
            Some(Errno(libc::ENOENT))
        );
    }
}
