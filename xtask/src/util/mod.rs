//! What two or more tasks use; the only module a task imports.
//!
//! Belongs here: running a command ([`run`], [`cargo`]), installing Debian packages
//! ([`ensure_packages`] and the lists several tasks install), fetching Debian
//! packages of any architecture into a private apt state ([`apt`], with the
//! machine's mirror from [`apt_source`]), the `dist` architectures and where their
//! binaries land ([`arch`]), the kmod 34.2 oracle and its golden outputs
//! ([`oracle`]), what `image` hands to `qemu` ([`image`]), the workspace paths
//! ([`root`], [`short`]), and the test suite's helpers for the real Debian tree
//! ([`debian`], [`variants`]: one copy each, where every task had its own).
//!
//! Does not belong here: anything only one task uses (it stays in that task's file),
//! and any task itself. A task never calls another: when one command runs several
//! tasks (`cargo xtask test`, `qemu`), `main.rs` runs them in order, and where a task
//! needs another's product mid-way (`image` and `install --static` need a dist
//! binary) `main.rs` passes the producing function in ([`arch::BuildDist`]).

use std::path::{Path, PathBuf};

pub mod apt;
pub mod apt_source;
pub mod arch;
pub mod cmd;
pub mod image;
pub mod oracle;
pub mod packages;

// The real Debian 12 tree, fetched and cached (shared with the integration tests).
#[path = "../../../tests/common/debian.rs"]
pub mod debian;
// gz/xz/zst copies of a module tree, made as kbuild makes them (shared with the tests).
#[allow(dead_code)]
#[path = "../../../tests/common/variants.rs"]
pub mod variants;

pub use cmd::{cargo, run};
pub use packages::ensure_packages;

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `path` relative to the workspace root when it is inside it, for shorter output.
pub fn short(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
