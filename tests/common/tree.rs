//! Module trees in a temporary directory:
//!
//! ```text
//! <root>/lib/modules/<kver>/...        modules, modules.order, modules.builtin{,.modinfo}
//! <root>/etc/depmod.d/*.conf           config (always created; pass it with -C)
//! <root>/ext/...                       a place for `external` directories
//! ```
//! `root` is absolute; use `-b <root> -C <root>/etc/depmod.d <kver>`.

use std::fs;
use std::path::{Path, PathBuf};

pub struct Tree {
    _dir: Option<tempfile::TempDir>,
    pub root: PathBuf,
    pub kver: String,
}

impl Tree {
    pub fn new(kver: &str) -> Tree {
        let dir = tempfile::Builder::new()
            .prefix("depmod-tree-")
            .tempdir()
            .unwrap();
        let root = dir.path().to_path_buf();
        // DEPMOD_KEEP_TREES=1 keeps every tree for inspection.
        let dir = if std::env::var_os("DEPMOD_KEEP_TREES").is_some() {
            eprintln!("keeping tree {}", dir.keep().display());
            None
        } else {
            Some(dir)
        };
        let t = Tree {
            _dir: dir,
            root,
            kver: kver.to_string(),
        };
        fs::create_dir_all(t.moddir()).unwrap();
        fs::create_dir_all(t.confdir()).unwrap();
        t
    }

    /// `<root>/lib/modules/<kver>` (DIR).
    pub fn moddir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.kver)
    }

    /// `<root>/etc/depmod.d`.
    pub fn confdir(&self) -> PathBuf {
        self.root.join("etc/depmod.d")
    }

    /// An absolute path under the tree root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Write `bytes` at `<root>/<rel>`, creating parent directories.
    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.root.join(rel);
        write_file(&p, bytes.as_ref());
        p
    }

    /// Write a file relative to DIR (e.g. `kernel/drivers/foo.ko`).
    pub fn module(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.moddir().join(rel);
        write_file(&p, bytes.as_ref());
        p
    }

    /// `DIR/modules.order` (raw content).
    pub fn order(&self, content: &str) {
        write_file(&self.moddir().join("modules.order"), content.as_bytes());
    }

    /// `DIR/modules.order` with one line per entry (each followed by `\n`).
    pub fn order_lines(&self, lines: &[&str]) {
        let mut s = String::new();
        for l in lines {
            s.push_str(l);
            s.push('\n');
        }
        self.order(&s);
    }

    /// `DIR/modules.builtin` (raw content).
    pub fn builtin(&self, content: &str) {
        write_file(&self.moddir().join("modules.builtin"), content.as_bytes());
    }

    /// `DIR/modules.builtin.modinfo` (raw content).
    pub fn builtin_modinfo(&self, content: &[u8]) {
        write_file(&self.moddir().join("modules.builtin.modinfo"), content);
    }

    /// `DIR/modules.builtin.modinfo` from records, each followed by a NUL.
    pub fn builtin_modinfo_records(&self, recs: &[&str]) {
        let mut v = Vec::new();
        for r in recs {
            v.extend_from_slice(r.as_bytes());
            v.push(0);
        }
        self.builtin_modinfo(&v);
    }

    /// Empty `modules.order`, `modules.builtin` and `modules.builtin.modinfo`, which
    /// silences the "could not open" warnings.
    pub fn empty_inputs(&self) {
        self.order("");
        self.builtin("");
        self.builtin_modinfo(b"");
    }

    /// A file in the config dir.
    pub fn conf(&self, name: &str, content: &str) -> PathBuf {
        let p = self.confdir().join(name);
        write_file(&p, content.as_bytes());
        p
    }

    /// Create a directory under the root (for external dirs); returns its absolute path.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.root.join(rel);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// Symlink `<root>/<link>` → `target` (taken verbatim: relative or absolute).
    pub fn symlink(&self, target: &str, link: &str) {
        let l = self.root.join(link);
        if let Some(parent) = l.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        std::os::unix::fs::symlink(target, l).unwrap();
    }

    /// The usual arguments: `-b <root> -C <confdir> <kver>`, as strings.
    pub fn std_args(&self) -> Vec<String> {
        vec![
            "-b".into(),
            self.root.display().to_string(),
            "-C".into(),
            self.confdir().display().to_string(),
            self.kver.clone(),
        ]
    }

    /// `DIR` as a string (as it appears in messages with `-b <root>`).
    pub fn dir_str(&self) -> String {
        self.moddir().display().to_string()
    }
}

pub fn write_file(p: &Path, bytes: &[u8]) {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(p, bytes).unwrap();
}

// ---------------------------------------------------------------------------------------
// Compressed module files

/// How a module file is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pack {
    /// As it is.
    Plain,
    /// `xz -c --check=crc32` (as kbuild does).
    Xz,
    /// `xz -c` (CRC64 check).
    XzCrc64,
    /// `zstd -q -c FILE`: the frame header records the content size (as kbuild).
    Zst,
    /// `zstd -q -c < FILE`: no content size in the frame header.
    ZstPiped,
    /// `gzip -c -n` (as kbuild does).
    Gz,
}

/// A compressed stream made unreadable on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    Intact,
    /// A flipped byte in an integrity check (xz block check, zstd content checksum,
    /// gzip CRC32): the data decodes but does not match its check.
    Corrupt,
    /// The first half of the stream only.
    Truncated,
}

impl Pack {
    /// Name in our decompression messages.
    pub fn format(self) -> &'static str {
        match self {
            Pack::Plain => "plain",
            Pack::Xz | Pack::XzCrc64 => "xz",
            Pack::Zst | Pack::ZstPiped => "zstd",
            Pack::Gz => "gzip",
        }
    }
}

/// Run `cmd args…` on `data` given as a file (`piped`: on stdin) and return its stdout.
pub fn compress_with(cmd: &str, args: &[&str], data: &[u8], piped: bool) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::write(&input, data).unwrap();
    let mut c = Command::new(cmd);
    c.args(args).stdout(Stdio::piped());
    if piped {
        c.stdin(Stdio::piped());
    } else {
        c.arg(&input).stdin(Stdio::null());
    }
    let mut c = c
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd} is needed for the compressed modules: {e}"));
    if piped {
        let mut w = c.stdin.take().unwrap();
        let data = data.to_vec();
        // A separate thread: zstd may write before it has read everything.
        let t = std::thread::spawn(move || w.write_all(&data));
        let out = c.wait_with_output().unwrap();
        t.join().unwrap().unwrap();
        assert!(out.status.success(), "{cmd} failed");
        return out.stdout;
    }
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd} failed");
    out.stdout
}

/// `data` stored as `p`.
pub fn pack(data: &[u8], p: Pack) -> Vec<u8> {
    match p {
        Pack::Plain => data.to_vec(),
        Pack::Xz => compress_with("xz", &["-c", "--check=crc32"], data, false),
        Pack::XzCrc64 => compress_with("xz", &["-c"], data, false),
        Pack::Zst => compress_with("zstd", &["-q", "-c"], data, false),
        Pack::ZstPiped => compress_with("zstd", &["-q", "-c"], data, true),
        Pack::Gz => compress_with("gzip", &["-c", "-n"], data, false),
    }
}

/// The content size a zstd frame header declares (`None`: not recorded, or not a
/// frame header).
pub fn zstd_content_size(b: &[u8]) -> Option<u64> {
    if !b.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) || b.len() < 5 {
        return None;
    }
    let fhd = b[4];
    let fcs_flag = fhd >> 6;
    let single = fhd & 0x20 != 0;
    let did_size = [0usize, 1, 2, 4][(fhd & 3) as usize];
    let fcs_size = match (fcs_flag, single) {
        (0, false) => return None,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let at = 5 + usize::from(!single) + did_size;
    let f = b.get(at..at + fcs_size)?;
    let mut v = 0u64;
    for (i, x) in f.iter().enumerate() {
        v |= u64::from(*x) << (8 * i);
    }
    Some(if fcs_size == 2 { v + 256 } else { v })
}

/// `bytes` (a stream made by [`pack`] with `p`) damaged as `d` says.
pub fn damage(bytes: &[u8], p: Pack, d: Damage) -> Vec<u8> {
    let mut b = bytes.to_vec();
    match d {
        Damage::Intact => {}
        Damage::Truncated => {
            assert!(p != Pack::Plain && b.len() >= 12, "nothing to truncate");
            b.truncate(b.len() / 2);
        }
        Damage::Corrupt => {
            let n = b.len();
            let at = match p {
                Pack::Plain => panic!("a plain file has no check to corrupt"),
                Pack::Xz | Pack::XzCrc64 => {
                    // The block's check ends where the index starts; the stream footer
                    // (12 bytes) gives the index size: (backward size + 1) * 4.
                    let bs = u32::from_le_bytes(b[n - 8..n - 4].try_into().unwrap()) as usize;
                    n - 12 - (bs + 1) * 4 - 1
                }
                Pack::Zst | Pack::ZstPiped => {
                    assert!(b[4] & 0x04 != 0, "zstd frame without a content checksum");
                    n - 1
                }
                Pack::Gz => n - 8,
            };
            b[at] ^= 0x55;
        }
    }
    b
}

/// A file ours reads as the payload `data` (or not at all, if damaged) and kmod reads
/// likewise: `data` itself when kmod would take it as it is (at least 6 bytes, no
/// compression magic), else `data` in xz.
pub fn plain_equivalent(data: &[u8]) -> Vec<u8> {
    let magic = [
        &[0x28u8, 0xB5, 0x2F, 0xFD][..],
        &[0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00],
        &[0x1F, 0x8B],
    ];
    if data.len() >= 6 && !magic.iter().any(|m| data.starts_with(m)) {
        data.to_vec()
    } else {
        pack(data, Pack::Xz)
    }
}

impl Tree {
    /// `<root>`-relative path of `rel` under DIR.
    pub fn mod_rel(&self, rel: &str) -> String {
        format!("lib/modules/{}/{rel}", self.kver)
    }

    /// Write a module file at `<root>/<rel_root>`: `data` stored as `p`, damaged as `d`.
    /// Returns the stand-in the oracles need when ours reads the file otherwise than
    /// kmod 34.2 by intent (README "Differences from kmod"; see
    /// [`super::oracle::Subst`]):
    ///
    /// * gzip (A): kmod 34.2 (built without zlib) ignores `.ko.gz` and cannot read gzip
    ///   content: the stand-in holds the payload ([`plain_equivalent`]) under the name
    ///   without `.gz`;
    /// * damaged streams (B): ours prints `corrupt|truncated <format> data`; a damaged
    ///   gzip stream's stand-in is an xz stream damaged the same way;
    /// * zstd without content size or with content size 0 (C): the stand-in holds the
    ///   payload; kmod 30 reads the original.
    pub fn packed(
        &self,
        rel_root: &str,
        data: &[u8],
        p: Pack,
        d: Damage,
    ) -> Option<super::oracle::Subst> {
        let bytes = damage(&pack(data, p), p, d);
        write_file(&self.root.join(rel_root), &bytes);
        let gz_name = rel_root.ends_with(".ko.gz");
        let oracle_rel = match rel_root.strip_suffix(".gz") {
            Some(r) if gz_name => r.to_string(),
            _ => rel_root.to_string(),
        };
        let ours_error = match d {
            Damage::Intact => None,
            Damage::Corrupt => Some(format!("corrupt {} data", p.format())),
            Damage::Truncated => Some(format!("truncated {} data", p.format())),
        };
        let no_size = matches!(p, Pack::Zst | Pack::ZstPiped)
            && matches!(zstd_content_size(&bytes), None | Some(0));
        let oracle_content = match (p, d) {
            (Pack::Gz, Damage::Intact) => Some(plain_equivalent(data)),
            (Pack::Gz, _) => Some(damage(&pack(data, Pack::Xz), Pack::Xz, d)),
            (Pack::Zst | Pack::ZstPiped, Damage::Intact) if no_size => Some(plain_equivalent(data)),
            _ => None,
        };
        if oracle_content.is_none() && ours_error.is_none() && !gz_name {
            return None;
        }
        Some(super::oracle::Subst {
            rel: rel_root.to_string(),
            oracle_rel,
            oracle_content,
            ours_error,
            v30_as_is: !gz_name && p != Pack::Gz,
        })
    }

    /// [`Tree::packed`] for a file under DIR.
    pub fn packed_module(
        &self,
        rel: &str,
        data: &[u8],
        p: Pack,
        d: Damage,
    ) -> Option<super::oracle::Subst> {
        self.packed(&self.mod_rel(rel), data, p, d)
    }
}
