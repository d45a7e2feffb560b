//! A newc ("070701") cpio writer: the format the kernel unpacks as initramfs.
//!
//! Entries are written in the order given, with inode numbers counted from 1,
//! owner root and mtime 0, so the same tree always gives the same archive.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// What an entry is.
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    CharDev(u32, u32),
}

pub struct Writer {
    out: Vec<u8>,
    ino: u32,
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            out: Vec::new(),
            ino: 0,
        }
    }

    fn header(&mut self, name: &str, mode: u32, size: usize, rdev: (u32, u32)) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            0, // mtime
            size as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// Adds one entry; `path` is relative to the archive root (no leading `/`).
    pub fn add(&mut self, path: &str, perm: u32, kind: Kind) {
        let path = path.trim_start_matches('/');
        match kind {
            Kind::Dir => self.header(path, 0o040000 | perm, 0, (0, 0)),
            Kind::File(data) => {
                self.header(path, 0o100000 | perm, data.len(), (0, 0));
                self.out.extend_from_slice(&data);
                self.pad();
            }
            Kind::Symlink(target) => {
                self.header(path, 0o120000 | 0o777, target.len(), (0, 0));
                self.out.extend_from_slice(target.as_bytes());
                self.pad();
            }
            Kind::CharDev(major, minor) => self.header(path, 0o020000 | perm, 0, (major, minor)),
        }
    }

    /// Adds `dir`'s contents (not `dir` itself) under `prefix`, sorted by name,
    /// each directory before what it holds.
    pub fn add_tree(&mut self, dir: &Path, prefix: &str) -> Result<(), String> {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            let path = e.path();
            let meta = fs::symlink_metadata(&path).map_err(|e| e.to_string())?;
            let perm = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).map_err(|e| e.to_string())?;
                self.add(&name, 0o777, Kind::Symlink(target.to_string_lossy().into()));
            } else if meta.is_dir() {
                self.add(&name, perm, Kind::Dir);
                self.add_tree(&path, &format!("{name}/"))?;
            } else {
                let data = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                self.add(&name, perm, Kind::File(data));
            }
        }
        Ok(())
    }

    /// Ends the archive and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 0, (0, 0));
        // Conventional: a multiple of 512 bytes.
        while !self.out.len().is_multiple_of(512) {
            self.out.push(0);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout() {
        let mut w = Writer::new();
        w.add("init", 0o755, Kind::File(b"#!/bin/sh\n".to_vec()));
        let out = w.finish();
        assert_eq!(&out[..6], b"070701");
        // ino 1, mode 0100755, size 10, name "init" + NUL = 5
        assert_eq!(&out[6..14], b"00000001");
        assert_eq!(&out[14..22], b"000081ED");
        assert_eq!(&out[54..62], b"0000000A");
        assert_eq!(&out[94..102], b"00000005");
        // 110-byte header + 5-byte name, padded to 116; then the data.
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(&out[116..126], b"#!/bin/sh\n");
        assert_eq!(out.len() % 512, 0);
        let trailer = out.windows(10).position(|w| w == b"TRAILER!!!");
        assert_eq!(trailer, Some(128 + 110));
    }
}
