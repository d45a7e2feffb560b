//! Names derived from module paths (compat §2.3): the module name that keys every
//! index, and the "uncompressed relative path" matched against `modules.order`.

use alloc::vec::Vec;

/// kmod's limit for a module name (its `PATH_MAX` buffer).
pub const MODNAME_MAX: usize = 4095;

/// The file name part of `path` (after the last `/`).
pub fn basename(path: &[u8]) -> &[u8] {
    // `rsplit` yields at least one (possibly empty) piece.
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// Module name of a file: its basename up to the first `.`, with `-` turned into `_`
/// (`snd-hda-intel.ko.zst` → `snd_hda_intel`). `None` when longer than kmod accepts.
pub fn modname(path: &[u8]) -> Option<Vec<u8>> {
    let base = basename(path);
    // `split` yields at least one (possibly empty) piece.
    let stem = base.split(|&b| b == b'.').next().unwrap_or(base);
    if stem.len() > MODNAME_MAX {
        return None;
    }
    Some(
        stem.iter()
            .map(|&b| if b == b'-' { b'_' } else { b })
            .collect(),
    )
}

/// Length of `dir/` + the file name up to its first `.` — the bytes of the path that
/// kmod compares when it ranks duplicates and matches `modules.order` (it keeps the
/// original dashes).
pub fn stem_len(path: &[u8]) -> usize {
    let dir = path.len() - basename(path).len();
    let base = basename(path);
    dir + base.iter().position(|&b| b == b'.').unwrap_or(base.len())
}

/// The relative path with the compression suffix cut off, kmod's way: the first
/// `len(dir/) + len(modname) + 3` bytes (`kernel/a/b-c.ko.xz` → `kernel/a/b-c.ko`).
pub fn uncompressed_relpath(relpath: &[u8]) -> &[u8] {
    let n = stem_len(relpath) + 3;
    relpath.get(..n).unwrap_or(relpath)
}

/// Module name of a `modules.builtin` line: basename after the last `/`, up to the
/// first `.`, dashes to underscores.
pub fn builtin_modname(line: &[u8]) -> Vec<u8> {
    modname(line).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            modname(b"kernel/snd-hda-intel.ko.zst").unwrap(),
            b"snd_hda_intel"
        );
        assert_eq!(modname(b"/x/foo.bar.ko").unwrap(), b"foo");
        assert_eq!(
            uncompressed_relpath(b"kernel/drivers/scsi/hpsa.ko.zst"),
            b"kernel/drivers/scsi/hpsa.ko"
        );
        assert_eq!(
            uncompressed_relpath(b"extra/zz-top.ko.zst"),
            b"extra/zz-top.ko"
        );
        assert_eq!(uncompressed_relpath(b"a/foo.bar.ko"), b"a/foo.ba");
    }
}
