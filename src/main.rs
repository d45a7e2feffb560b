//! The `depmod` command line: GNU `getopt_long` behaviour (kmod 34.2's options,
//! abbreviations, messages and exit codes), then [`depmod::host::run`].
//!
//! Without feature `std` this is a `no_std`, `no_main` program on libc: `main` is
//! the C entry point, panics abort (after one line on stderr), and memory comes
//! from dlmalloc (static musl builds) or the C library's `malloc`. That keeps the
//! precompiled std's panic and backtrace machinery (~200 KiB) out of the static
//! dist binaries. With `std` (needed when a dependency links it, as `liblzma-sys`
//! does) the same code runs under std's `main`.

#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![cfg_attr(not(any(test, feature = "std")), no_main)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use depmod::host::{self, sys, Options, Report};

/// dlmalloc instead of the C library's allocator (feature `dlmalloc`, which
/// `dist --tiny` leaves out for size). musl's returns memory to the kernel so
/// eagerly that it costs a third of the run time; glibc's gives each worker thread
/// an arena that grows a page at a time, one `mprotect` per page (738 of them in a
/// cold run on the Debian tree, each taking the address-space lock the other
/// worker's page faults need): 10% of the glibc build's wall time (Cargo.toml and
/// README have the numbers). On our own page source, not dlmalloc's: see [`heap`].
#[cfg(all(target_os = "linux", feature = "dlmalloc"))]
#[global_allocator]
static GLOBAL: heap::Heap = heap::Heap::new();

/// Without std and without dlmalloc: the C library's allocator.
#[cfg(all(
    not(any(test, feature = "std")),
    not(all(target_os = "linux", feature = "dlmalloc"))
))]
#[global_allocator]
static GLOBAL: no_std_rt::LibcAlloc = no_std_rt::LibcAlloc;

/// dlmalloc on a page source of our own. dlmalloc's (`dlmalloc::GlobalDlmalloc`)
/// gives memory back by shrinking a mapping in place, `mremap(ptr, old, new, 0)`.
/// qemu-user emulates that wrongly for 32-bit guests on 64-bit hosts, whose whole
/// address space it reserves up front (Debian 12 has qemu 7.2; the upstream fix,
/// "linux-user: fix mremap unmapping adjacent region", was reviewed in October
/// 2025): it re-reserves the `old - new` bytes *after the old end* of the mapping
/// instead of the tail given up, so whatever was mapped next to it (another heap
/// segment, a thread's stack) silently becomes inaccessible. The armv7 binary under
/// `qemu-arm-static` then died with SIGSEGV reading a dlmalloc segment header, or
/// spun forever on a write to such a page (qemu takes the fault for a race on a page
/// it believes writable and retries; SIGTERM stays queued). [`Pages`] gives a tail
/// back with `munmap`, which is what the shrinking `mremap` does on Linux and which
/// qemu-user emulates correctly, and moves mappings only with `MREMAP_MAYMOVE`
/// (also correct there).
#[cfg(all(feature = "dlmalloc", target_os = "linux"))]
#[allow(unsafe_code)]
mod heap {
    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::UnsafeCell;
    use core::ptr;
    use core::sync::atomic::{AtomicBool, Ordering};

    use dlmalloc::Allocator;

    /// Anonymous private mappings, for dlmalloc's segments and large chunks.
    pub struct Pages;

    // SAFETY: `alloc` returns fresh zeroed read-write mappings of the size it
    // reports (or null); `remap`, `free_part` and `free` act only on mappings that
    // dlmalloc got from `alloc` or `remap`, with the sizes it got them with.
    unsafe impl dlmalloc::Allocator for Pages {
        fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
            // SAFETY: a new anonymous mapping where the kernel chooses; touches
            // nothing that exists.
            let p = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    size,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                (ptr::null_mut(), 0, 0)
            } else {
                (p.cast(), size, 0)
            }
        }

        fn remap(&self, ptr: *mut u8, oldsize: usize, newsize: usize, can_move: bool) -> *mut u8 {
            // Never in place (flags 0): a shrink in place is what qemu-user breaks.
            // dlmalloc asks only with `can_move` (realloc of a mapped chunk); when
            // it does not, null makes it allocate, copy and free instead.
            if !can_move {
                return ptr::null_mut();
            }
            // SAFETY: `ptr` is a mapping of `oldsize` bytes from `alloc` or `remap`.
            let p = unsafe { libc::mremap(ptr.cast(), oldsize, newsize, libc::MREMAP_MAYMOVE) };
            if p == libc::MAP_FAILED {
                ptr::null_mut()
            } else {
                p.cast()
            }
        }

        fn free_part(&self, ptr: *mut u8, oldsize: usize, newsize: usize) -> bool {
            // SAFETY: `ptr` is a mapping of `oldsize > newsize` bytes; its tail past
            // `newsize` (page-aligned: dlmalloc trims whole granules) is unmapped,
            // nothing else.
            unsafe { libc::munmap(ptr.add(newsize).cast(), oldsize - newsize) == 0 }
        }

        fn free(&self, ptr: *mut u8, size: usize) -> bool {
            // SAFETY: `ptr` is a whole mapping of `size` bytes that dlmalloc gives up.
            unsafe { libc::munmap(ptr.cast(), size) == 0 }
        }

        fn can_release_part(&self, _flags: u32) -> bool {
            true
        }

        fn allocates_zeros(&self) -> bool {
            true
        }

        fn page_size(&self) -> usize {
            4096
        }
    }

    /// One dlmalloc heap on [`Pages`] for the whole process, behind a spin lock
    /// (the loading and output workers allocate concurrently).
    ///
    /// Why not a mutex: a `malloc` or `free` holds the lock for tens of
    /// nanoseconds, and with musl's `pthread_mutex_t` the two workers met on it
    /// often enough that lock, unlock and the contended path (`futex` waits and
    /// wakes) took 8% of the static binary's CPU time on the Debian tree. A
    /// waiter spins briefly, then yields the CPU, so a holder that was preempted
    /// (or is inside `mmap` for a new segment) is not spun against for long.
    pub struct Heap {
        locked: AtomicBool,
        dl: UnsafeCell<dlmalloc::Dlmalloc<Pages>>,
    }

    // SAFETY: `dl` is only reached through `with`, holding `locked`.
    unsafe impl Sync for Heap {}

    /// Spins before a waiter yields its CPU.
    const SPINS: u32 = 64;

    impl Heap {
        pub const fn new() -> Heap {
            Heap {
                locked: AtomicBool::new(false),
                dl: UnsafeCell::new(dlmalloc::Dlmalloc::new_with_allocator(Pages)),
            }
        }

        fn with<R>(&self, f: impl FnOnce(&mut dlmalloc::Dlmalloc<Pages>) -> R) -> R {
            let mut spins = 0;
            while self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                // Wait for it to look free before trying again: a read keeps the
                // line shared, where a failed exchange takes it from the holder.
                while self.locked.load(Ordering::Relaxed) {
                    if spins < SPINS {
                        spins += 1;
                        core::hint::spin_loop();
                    } else {
                        // SAFETY: `sched_yield` has no preconditions.
                        unsafe { libc::sched_yield() };
                    }
                }
            }
            // SAFETY: holding `locked` (acquired above, released below with
            // release ordering, so each holder sees the last one's writes), this
            // thread is the only one using `dl`; `f` does not allocate through
            // this heap again (dlmalloc does not recurse).
            let r = f(unsafe { &mut *self.dl.get() });
            self.locked.store(false, Ordering::Release);
            r
        }
    }

    /// Blocks this large (and page-aligned at most) are mappings of their own,
    /// made, moved and unmapped without the lock: dlmalloc maps them too, but
    /// under the lock, so a worker that freed a module's multi-megabyte buffer
    /// (an `munmap` that returns every page) or grew an index being built (a
    /// copy) held up the other worker's every small allocation, and in the
    /// static binary waiting for the lock (`sched_yield`) took 12% of the CPU
    /// time of a run on the Debian tree.
    const DIRECT: usize = 256 << 10;

    fn is_direct(size: usize, align: usize) -> bool {
        size >= DIRECT && align <= 4096
    }

    fn pages(size: usize) -> usize {
        size.next_multiple_of(4096)
    }

    // SAFETY: dlmalloc returns blocks of the requested size and alignment, or null,
    // and frees or resizes only blocks it returned, as `GlobalAlloc` requires.
    // Direct blocks are whole page-aligned mappings of `pages(size)` bytes
    // (zeroed, as `alloc_zeroed` needs); which kind a block is follows from the
    // size of the layout it is used with, the same one it was allocated with
    // (`realloc`'s new size included), as `GlobalAlloc` requires.
    unsafe impl GlobalAlloc for Heap {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if is_direct(layout.size(), layout.align()) {
                return Pages.alloc(pages(layout.size())).0;
            }
            self.with(|dl| dl.malloc(layout.size(), layout.align()))
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if is_direct(layout.size(), layout.align()) {
                return Pages.alloc(pages(layout.size())).0;
            }
            self.with(|dl| dl.calloc(layout.size(), layout.align()))
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if is_direct(layout.size(), layout.align()) {
                Pages.free(ptr, pages(layout.size()));
                return;
            }
            self.with(|dl| dl.free(ptr, layout.size(), layout.align()))
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let (old, align) = (layout.size(), layout.align());
            match (is_direct(old, align), is_direct(new_size, align)) {
                (false, false) => self.with(|dl| dl.realloc(ptr, old, align, new_size)),
                (true, true) => Pages.remap(ptr, pages(old), pages(new_size), true),
                _ => {
                    // One kind to the other: a new block, the bytes both hold
                    // copied, the old one freed.
                    // SAFETY: `align` is a power of two (it came in a layout) and
                    // `new_size` is not zero (`realloc`'s contract).
                    let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
                    // SAFETY: `new_layout` has a non-zero size.
                    let new = unsafe { self.alloc(new_layout) };
                    if !new.is_null() {
                        // SAFETY: `ptr` holds `old` bytes and `new` holds
                        // `new_size`; they are distinct blocks.
                        unsafe {
                            ptr::copy_nonoverlapping(ptr, new, old.min(new_size));
                            self.dealloc(ptr, layout);
                        }
                    }
                    new
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Grows, shrinks and frees large blocks from two threads at once: dlmalloc
        /// maps, remaps (moving) and trims segments through `Pages`; every block
        /// keeps its contents.
        #[test]
        fn heap_grows_shrinks_and_trims_across_threads() {
            static HEAP: Heap = Heap::new();
            let work = |seed: u8| {
                for round in 0..8usize {
                    let sizes = [100usize, 70_000, 300_000, 3 << 20, 9 << 20];
                    let mut blocks = std::vec::Vec::new();
                    for (i, &size) in sizes.iter().enumerate() {
                        let layout = Layout::from_size_align(size, 16).unwrap();
                        // SAFETY: a non-zero size.
                        let p = unsafe { HEAP.alloc(layout) };
                        assert!(!p.is_null());
                        let fill = seed ^ (round + i) as u8;
                        // SAFETY: `p` holds `size` bytes.
                        unsafe { p.write_bytes(fill, size) };
                        blocks.push((p, layout, fill));
                    }
                    // Shrink the large ones (mapped chunks: `remap`), then check.
                    for (p, layout, fill) in blocks.iter_mut() {
                        let new = (layout.size() / 3).max(1);
                        // SAFETY: `p` came from `HEAP` with `layout`.
                        let q = unsafe { HEAP.realloc(*p, *layout, new) };
                        assert!(!q.is_null());
                        // SAFETY: `q` holds `new` bytes, the first ones kept.
                        let kept = unsafe { core::slice::from_raw_parts(q, new) };
                        assert!(kept.iter().all(|b| b == fill));
                        *p = q;
                        *layout = Layout::from_size_align(new, 16).unwrap();
                    }
                    for (p, layout, _) in blocks {
                        // SAFETY: `p` came from `HEAP` with `layout`.
                        unsafe { HEAP.dealloc(p, layout) };
                    }
                }
            };
            std::thread::scope(|s| {
                s.spawn(|| work(0x5a));
                work(0xa5);
            });
        }

        /// A block that grows past [`DIRECT`] and shrinks back below it moves
        /// between dlmalloc and a mapping of its own, keeping its bytes.
        #[test]
        fn blocks_cross_the_direct_size_both_ways() {
            static HEAP: Heap = Heap::new();
            let sizes = [
                1000usize,
                DIRECT - 1,
                DIRECT,
                5 * DIRECT + 7,
                DIRECT + 1,
                64,
                1,
            ];
            let mut layout = Layout::from_size_align(sizes[0], 8).unwrap();
            // SAFETY: a non-zero size.
            let mut p = unsafe { HEAP.alloc_zeroed(layout) };
            assert!(!p.is_null());
            // SAFETY: `p` holds `layout.size()` zeroed bytes.
            assert!(unsafe { core::slice::from_raw_parts(p, layout.size()) }
                .iter()
                .all(|&b| b == 0));
            for (i, &size) in sizes.iter().enumerate().skip(1) {
                // SAFETY: `p` holds `layout.size()` bytes.
                unsafe { p.write_bytes(i as u8, layout.size()) };
                // SAFETY: `p` came from `HEAP` with `layout`; `size` is not zero.
                let q = unsafe { HEAP.realloc(p, layout, size) };
                assert!(!q.is_null());
                let kept = layout.size().min(size);
                // SAFETY: `q` holds `size >= kept` bytes.
                let bytes = unsafe { core::slice::from_raw_parts(q, kept) };
                assert!(
                    bytes.iter().all(|&b| b == i as u8),
                    "{} -> {size}",
                    layout.size()
                );
                p = q;
                layout = Layout::from_size_align(size, 8).unwrap();
            }
            // SAFETY: `p` came from `HEAP` with `layout`.
            unsafe { HEAP.dealloc(p, layout) };
        }
    }
}

/// kmod 34.2's long options, in its table order (glibc lists ambiguous matches in
/// this order). The char is the equivalent short option; `true` = takes an argument.
const LONG: &[(&str, char, bool)] = &[
    ("all", 'a', false),
    ("quick", 'A', false),
    ("basedir", 'b', true),
    ("moduledir", 'm', true),
    ("outdir", 'o', true),
    ("config", 'C', true),
    ("symvers", 'E', true),
    ("filesyms", 'F', true),
    ("errsyms", 'e', false),
    ("verbose", 'v', false),
    ("show", 'n', false),
    ("dry-run", 'n', false),
    ("symbol-prefix", 'P', true),
    ("warn", 'w', false),
    ("version", 'V', false),
    ("help", 'h', false),
];

const SHORT_WITH_ARG: &str = "bmoCEFP";
const SHORT_FLAGS: &str = "aAenvwVh";

fn help(prog: &str) -> String {
    format!(
        "Usage:\n\
\t{prog} -[aA] [options] [forced_version]\n\
\n\
If no arguments (except options) are given, \"depmod -a\" is assumed\n\
\n\
depmod will output a dependency list suitable for the modprobe utility.\n\
\n\
Options:\n\
\t-a, --all            Probe all modules\n\
\t-A, --quick          Only does the work if there's a new module\n\
\t-e, --errsyms        Report not supplied symbols\n\
\t-n, --show           Write the dependency file on stdout only\n\
\t-P, --symbol-prefix  Architecture symbol prefix\n\
\t-C, --config=PATH    Read configuration from PATH\n\
\t-v, --verbose        Enable verbose mode\n\
\t-w, --warn           Warn on duplicates\n\
\t-V, --version        show version\n\
\t-h, --help           show this help\n\
\n\
The following options are useful for people managing distributions:\n\
\t-b, --basedir=DIR    Root path (default: /).\n\
\t-m, --moduledir=DIR  Module directory (default: /lib/modules).\n\
\t-o, --outdir=DIR     Output root path (default: same as <basedir>).\n\
\t-F, --filesyms=FILE  Use the file instead of the\n\
\t                     current kernel symbols.\n\
\t-E, --symvers=FILE   Use Module.symvers file to check\n\
\t                     symbol versions.\n"
    )
}

fn version() -> String {
    let feature = |on: bool, name: &str| format!("{}{name}", if on { '+' } else { '-' });
    format!(
        "kmod version 34.2 (depmod-rs {})\n{} {} {} -OPENSSL\n",
        env!("CARGO_PKG_VERSION"),
        feature(cfg!(feature = "zst"), "ZSTD"),
        feature(cfg!(any(feature = "xz", feature = "xz-prebuilt")), "XZ"),
        feature(cfg!(feature = "gz"), "ZLIB"),
    )
}

/// Resolves a long option name (possibly an abbreviation) like glibc does.
fn long_option(prog: &str, name: &str) -> Result<(&'static str, char, bool), String> {
    if let Some(&(n, c, a)) = LONG.iter().find(|o| o.0 == name) {
        return Ok((n, c, a));
    }
    let matches: Vec<_> = LONG.iter().filter(|o| o.0.starts_with(name)).collect();
    match matches.as_slice() {
        [] => Err(format!("{prog}: unrecognized option '--{name}'")),
        [only] => Ok((only.0, only.1, only.2)),
        several @ [first, ..] => {
            // glibc: not ambiguous if every candidate means the same thing.
            if several.iter().all(|o| o.1 == first.1 && o.2 == first.2) {
                return Ok((first.0, first.1, first.2));
            }
            let list: Vec<String> = several.iter().map(|o| format!(" '--{}'", o.0)).collect();
            Err(format!(
                "{prog}: option '--{name}' is ambiguous; possibilities:{}",
                list.concat()
            ))
        }
    }
}

enum Parsed {
    Run(Box<Options>),
    Exit(u8),
}

/// One option as getopt gives it: its short letter and its value (empty when it
/// takes none), or getopt's error message.
type Given = Result<(u8, Vec<u8>), Vec<u8>>;

/// Splits the arguments like glibc's `getopt_long` with kmod's option table:
/// options (short clusters such as `-av` or `-bDIR`, long ones with `=VALUE` or the
/// value in the next argument, abbreviated when unambiguous) in order, the other
/// arguments (and everything after `--`) as positional ones, wherever they are.
/// An error is getopt's message, and the last item: like getopt, the caller acts
/// on each option in turn (`-h -Z` prints the help and never gets to `-Z`).
fn getopt(prog: &str, args: &[Vec<u8>]) -> (Vec<Given>, Vec<Vec<u8>>) {
    let mut opts = Vec::new();
    let mut positional = Vec::new();
    if let Err(e) = split_args(prog, args, &mut opts, &mut positional) {
        opts.push(Err(e));
    }
    (opts, positional)
}

fn split_args(
    prog: &str,
    args: &[Vec<u8>],
    opts: &mut Vec<Given>,
    positional: &mut Vec<Vec<u8>>,
) -> Result<(), Vec<u8>> {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == b"--" {
            positional.extend(rest.cloned());
            break;
        }
        if let Some(body) = arg.strip_prefix(b"--") {
            let (name, attached) = match body.iter().position(|&b| b == b'=') {
                Some(eq) => (
                    body.get(..eq).unwrap_or_default(),
                    body.get(eq + 1..).map(<[u8]>::to_vec),
                ),
                None => (body, None),
            };
            let (full, c, takes_arg) =
                long_option(prog, &String::from_utf8_lossy(name)).map_err(String::into_bytes)?;
            let value = match (takes_arg, attached) {
                (true, Some(v)) => v,
                (true, None) => rest.next().cloned().ok_or_else(|| {
                    format!("{prog}: option '--{full}' requires an argument").into_bytes()
                })?,
                (false, Some(_)) => {
                    return Err(
                        format!("{prog}: option '--{full}' doesn't allow an argument").into_bytes(),
                    )
                }
                (false, None) => Vec::new(),
            };
            opts.push(Ok((c as u8, value)));
            continue;
        }
        let Some(cluster) = arg.strip_prefix(b"-").filter(|c| !c.is_empty()) else {
            positional.push(arg.clone());
            continue;
        };
        for (k, &c) in cluster.iter().enumerate() {
            let invalid = || {
                let mut m = format!("{prog}: invalid option -- '").into_bytes();
                m.push(c);
                m.push(b'\'');
                m
            };
            if !SHORT_FLAGS.as_bytes().contains(&c) && !SHORT_WITH_ARG.as_bytes().contains(&c) {
                return Err(invalid());
            }
            if !SHORT_WITH_ARG.as_bytes().contains(&c) {
                opts.push(Ok((c, Vec::new())));
                continue;
            }
            // The rest of the cluster is the value, else the next argument.
            let value = match cluster.get(k + 1..) {
                Some(v) if !v.is_empty() => v.to_vec(),
                _ => rest.next().cloned().ok_or_else(|| {
                    let mut m = format!("{prog}: option requires an argument -- '").into_bytes();
                    m.push(c);
                    m.push(b'\'');
                    m
                })?,
            };
            opts.push(Ok((c, value)));
            break;
        }
    }
    Ok(())
}

fn parse(prog: &str, args: &[Vec<u8>], report: &Report) -> Parsed {
    let mut opts = Options::default();
    let (given, positional) = getopt(prog, args);
    for opt in given {
        let (c, v) = match opt {
            Ok(o) => o,
            Err(mut msg) => {
                msg.push(b'\n');
                let _ = sys::write_stderr(&msg);
                return Parsed::Exit(1);
            }
        };
        match c {
            b'a' => opts.all = true,
            b'A' => opts.quick = true,
            b'b' => opts.basedir = Some(host::make_absolute(&v)),
            b'm' => opts.moduledir = Some(v),
            b'o' => opts.outdir = Some(host::make_absolute(&v)),
            b'C' => opts.config.push(v),
            b'E' => opts.symvers = Some(v),
            b'F' => opts.system_map = Some(v),
            b'e' => opts.errsyms = true,
            b'v' => {
                opts.verbose += 1;
                report.set_verbosity(opts.verbose);
            }
            b'n' => opts.dry_run = true,
            b'P' => {
                let &[prefix] = v.as_slice() else {
                    report.fatal("-P only takes a single char");
                    return Parsed::Exit(1);
                };
                opts.prefix = Some(prefix);
            }
            b'w' => opts.warn = true,
            b'V' => {
                let _ = sys::write_stdout(version().as_bytes());
                return Parsed::Exit(0);
            }
            b'h' => {
                let _ = sys::write_stdout(help(prog).as_bytes());
                return Parsed::Exit(0);
            }
            // Not reached: `getopt` only returns the options of the table.
            _ => return Parsed::Exit(1),
        }
    }
    let mut rest = positional.into_iter();
    if let Some(v) = rest.next() {
        if !host::is_kernel_version(&v) {
            report.error(format_args!(
                "Bad version passed {}",
                String::from_utf8_lossy(&v)
            ));
            return Parsed::Exit(1);
        }
        opts.kversion = Some(v);
    }
    opts.files = rest.collect();
    Parsed::Run(Box::new(opts))
}

/// depmod on its arguments (`args[0]` is the program); the exit status.
fn depmod_main(args: &[Vec<u8>]) -> u8 {
    let argv0 = args.first().map_or(&b"depmod"[..], Vec::as_slice);
    let prog = String::from_utf8_lossy(depmod::names::basename(argv0)).into_owned();
    let report = Report::new(prog.clone());
    match parse(&prog, args.get(1..).unwrap_or_default(), &report) {
        Parsed::Exit(code) => code,
        Parsed::Run(opts) => host::run(*opts, &report),
    }
}

#[cfg(any(test, feature = "std"))]
fn main() -> std::process::ExitCode {
    use std::os::unix::ffi::OsStringExt;
    // glibc raises its mmap threshold to the size of each large block freed (up to
    // 32 MiB), after which multi-megabyte buffers come from the heap and are not
    // given back when freed: a fixed threshold keeps every buffer of 1 MiB or more
    // in its own mapping, returned on free (peak RSS on Debian 12's xz tree 47 ->
    // 36 MB, when all of depmod's memory came from glibc). With dlmalloc, what is
    // left on glibc's heap is the C decoders' state.
    #[cfg(target_env = "gnu")]
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` only sets a malloc tunable; no allocation is live that
    // depends on it, and the value is in range.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    let args: Vec<Vec<u8>> = std::env::args_os().map(|a| a.into_vec()).collect();
    std::process::ExitCode::from(depmod_main(&args))
}

/// The C entry point, the allocator and the panic handler of the `no_std` binary.
#[cfg(not(any(test, feature = "std")))]
mod no_std_rt {
    #![allow(unsafe_code)]

    use alloc::vec::Vec;
    #[cfg(not(all(target_os = "linux", feature = "dlmalloc")))]
    use core::alloc::{GlobalAlloc, Layout};
    #[cfg(not(all(target_os = "linux", feature = "dlmalloc")))]
    use core::ffi::c_void;
    use core::ffi::{c_char, c_int, CStr};

    use depmod::host::sys;

    // The C library itself: without std nothing else asks the linker for it.
    #[link(name = "c")]
    extern "C" {}

    #[no_mangle]
    extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
        let n = usize::try_from(argc).unwrap_or(0);
        let mut args = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: the C runtime passes `argc` valid pointers in `argv`, each a
            // NUL-terminated string that lives as long as the process.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            args.push(arg.to_bytes().to_vec());
        }
        c_int::from(super::depmod_main(&args))
    }

    /// A panic is a bug (file data never panics: see the lints in lib.rs): say
    /// where, then abort, as the std binary built with `panic = "abort"` does.
    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let line = alloc::format!("depmod: internal error: {info}\n");
        let _ = sys::write_stderr(line.as_bytes());
        // SAFETY: `abort` has no preconditions.
        unsafe { libc::abort() }
    }

    /// The unwinder's entry points that the precompiled `core` and `alloc` refer
    /// to from their cleanup paths. Never called: [`panic`] aborts, so nothing
    /// ever unwinds; should something try, it aborts.
    #[no_mangle]
    extern "C" fn rust_eh_personality() {}

    /// See [`rust_eh_personality`].
    #[no_mangle]
    extern "C" fn _Unwind_Resume() -> ! {
        // SAFETY: `abort` has no preconditions.
        unsafe { libc::abort() }
    }

    /// `memcpy` for the static x86_64 binaries, in front of musl's (the link
    /// passes `--wrap=memcpy`, so every call, musl's own included, comes here
    /// and musl's is `__real_memcpy`). musl's x86_64 `memcpy` starts every copy
    /// with `rep movsq`, whose start-up costs tens of cycles; a run on the
    /// Debian tree makes about 1.1 million copies, two thirds of them under 16
    /// bytes (names, text pieces), and that made `memcpy` 15% of the static
    /// binary's CPU time against 3% for glibc's. Copies up to 64 bytes are done
    /// here with two to four overlapping unaligned loads and stores; longer
    /// ones go to musl's, where `rep movsq` pays off.
    #[cfg(all(target_arch = "x86_64", target_env = "musl"))]
    #[no_mangle]
    unsafe extern "C" fn __wrap_memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        extern "C" {
            fn __real_memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;
        }
        /// Copies `n` bytes, `W <= n <= 2 * W`, as a word at each end (they
        /// overlap when `n < 2 * W`).
        ///
        /// # Safety
        /// `memcpy`'s contract: `src` readable and `dst` writable for `n`
        /// bytes, not overlapping.
        #[inline(always)]
        unsafe fn ends<T: Copy>(dst: *mut u8, src: *const u8, n: usize) {
            let w = core::mem::size_of::<T>();
            // SAFETY: `w <= n`, so both words lie within the `n` bytes the caller
            // vouches for; unaligned access is what `read_unaligned` is for.
            unsafe {
                let a = src.cast::<T>().read_unaligned();
                let b = src.add(n - w).cast::<T>().read_unaligned();
                dst.cast::<T>().write_unaligned(a);
                dst.add(n - w).cast::<T>().write_unaligned(b);
            }
        }
        // SAFETY: the caller keeps `memcpy`'s contract; each branch copies
        // exactly `n` bytes within it (`ends` needs `W <= n <= 2 * W`).
        unsafe {
            match n {
                0 => {}
                1 => *dst = *src,
                2..=3 => ends::<u16>(dst, src, n),
                4..=7 => ends::<u32>(dst, src, n),
                8..=15 => ends::<u64>(dst, src, n),
                16..=32 => ends::<u128>(dst, src, n),
                33..=64 => {
                    ends::<u128>(dst, src, 32);
                    ends::<u128>(dst.add(n - 32), src.add(n - 32), 32);
                }
                _ => return __real_memcpy(dst, src, n),
            }
        }
        dst
    }

    /// `memcmp` for the static x86_64 binaries, in place of musl's (the link
    /// passes `--wrap=memcmp`; musl's `bcmp` calls `memcmp`, so it comes here
    /// too). musl's compares a byte at a time; every slice comparison of ours
    /// (module paths sharing long prefixes in sorts and maps, symbol names in
    /// the symbol table) goes through it. Here eight bytes at a time, the first
    /// differing word ordered by its bytes in memory order.
    #[cfg(all(target_arch = "x86_64", target_env = "musl"))]
    #[no_mangle]
    unsafe extern "C" fn __wrap_memcmp(a: *const u8, b: *const u8, n: usize) -> c_int {
        let mut i = 0;
        // SAFETY: `memcmp`'s contract: `a` and `b` are readable for `n` bytes;
        // every load here lies below `n` (`i + 8 <= n` for words).
        unsafe {
            while i + 8 <= n {
                let x = a.add(i).cast::<u64>().read_unaligned();
                let y = b.add(i).cast::<u64>().read_unaligned();
                if x != y {
                    // Little-endian: the byte first in memory is the lowest;
                    // swapped, it is the most significant.
                    return if x.swap_bytes() < y.swap_bytes() {
                        -1
                    } else {
                        1
                    };
                }
                i += 8;
            }
            while i < n {
                let (x, y) = (*a.add(i), *b.add(i));
                if x != y {
                    return c_int::from(x) - c_int::from(y);
                }
                i += 1;
            }
        }
        0
    }

    /// The C library's `malloc`, for builds without dlmalloc.
    #[cfg(not(all(target_os = "linux", feature = "dlmalloc")))]
    pub struct LibcAlloc;

    /// What `malloc` guarantees: suitable for any fundamental type.
    #[cfg(not(all(target_os = "linux", feature = "dlmalloc")))]
    const MALLOC_ALIGN: usize = 16;

    // SAFETY: every method forwards to the C allocator, which returns blocks of
    // at least the requested size and alignment (`posix_memalign` beyond what
    // `malloc` guarantees), or null on failure, as `GlobalAlloc` requires.
    #[cfg(not(all(target_os = "linux", feature = "dlmalloc")))]
    unsafe impl GlobalAlloc for LibcAlloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if layout.align() <= MALLOC_ALIGN && layout.align() <= layout.size() {
                return libc::malloc(layout.size()).cast();
            }
            let mut p: *mut c_void = core::ptr::null_mut();
            let align = layout.align().max(core::mem::size_of::<usize>());
            if libc::posix_memalign(&mut p, align, layout.size()) != 0 {
                return core::ptr::null_mut();
            }
            p.cast()
        }
        unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
            libc::free(ptr.cast());
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if layout.align() <= MALLOC_ALIGN && layout.align() <= new_size {
                return libc::realloc(ptr.cast(), new_size).cast();
            }
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}
