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
