//! The set of modules: which file wins for each module name (compat §2.4), and the
//! final module order — kmod's hash-table order, then `modules.order` (compat §5).

use alloc::vec::Vec;
use core::cmp::Ordering;

use crate::byteindex::ByteIndex;
use crate::cache::FileId;
use crate::config::{Config, Search};
use crate::diag::Diag;
use crate::hash;
use crate::names;

/// A module file accepted into the set.
#[derive(Clone, Debug)]
pub struct Module {
    /// The path as scanned (`<DIR>/kernel/…`, or an external or file-mode path).
    pub path: Vec<u8>,
    /// Where the part relative to DIR starts in `path`, if it is under DIR.
    pub rel_start: Option<usize>,
    /// Module name (dashes turned into underscores).
    pub name: Vec<u8>,
    /// What `stat` said of the file when the walk found it, if the host asked
    /// (with the module cache: the identity a record is checked against).
    pub found_as: Option<FileId>,
}

impl Module {
    /// Path relative to DIR if it has one, else the full path: what the outputs print.
    pub fn out_path(&self) -> &[u8] {
        match self.rel_start {
            Some(i) => self.path.get(i..).unwrap_or(&self.path),
            None => &self.path,
        }
    }
}

/// Outcome of offering a file to the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// First file with this name.
    Added,
    /// Replaced a lower-priority file of the same name.
    Replaced,
    /// An existing file of the same name ranks higher; this one is ignored.
    Ignored,
    /// The name is too long (kmod: "could not get modname from path").
    BadName,
}

/// Why a file-mode module could not be added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddError {
    /// The name is too long.
    BadName,
    /// The same path was given twice (the module name is attached).
    SamePath(Vec<u8>),
    /// Another path already holds this module name: (name, old path).
    OtherPath(Vec<u8>, Vec<u8>),
}

/// Modules collected during discovery, deduplicated by name.
pub struct ModuleSet<'c> {
    dir: Vec<u8>,
    cfg: &'c Config,
    /// The modules, one per name, in no particular order.
    modules: Vec<Module>,
    /// Their positions, by name.
    by_name: ByteIndex,
}

impl<'c> ModuleSet<'c> {
    /// An empty set for module directory `dir` (`<base>/lib/modules/<kver>`).
    pub fn new(dir: &[u8], cfg: &'c Config) -> Self {
        ModuleSet {
            dir: dir.to_vec(),
            cfg,
            modules: Vec::new(),
            by_name: ByteIndex::with_capacity(4096),
        }
    }

    /// Where the module named `name` is in `modules`.
    // `by_name` holds positions of `modules` only.
    #[allow(clippy::indexing_slicing)]
    fn position(&self, name: &[u8]) -> Option<usize> {
        let modules = &self.modules;
        let at = |p: u32| modules[p as usize].name.as_slice();
        self.by_name.get(name, at).map(|p| p as usize)
    }

    /// Adds a module of a name not yet in the set.
    // `by_name` holds positions of `modules` only.
    #[allow(clippy::indexing_slicing)]
    fn add(&mut self, module: Module) {
        let pos = self.modules.len() as u32;
        let modules = &self.modules;
        self.by_name
            .insert(&module.name, pos, |p| modules[p as usize].name.as_slice());
        self.modules.push(module);
    }

    /// The module directory.
    pub fn dir(&self) -> &[u8] {
        &self.dir
    }

    fn relative(&self, path: &[u8]) -> Option<usize> {
        let l = self.dir.len();
        (path.len() > l + 1 && path.starts_with(&self.dir) && path.get(l) == Some(&b'/'))
            .then_some(l + 1)
    }

    /// Offers a scanned file; keeps it unless a same-named file ranks higher.
    pub fn offer(&mut self, path: &[u8]) -> Offer {
        self.offer_found(path.to_vec(), None)
            .unwrap_or(Offer::BadName)
    }

    /// [`ModuleSet::offer`] of a path the walk owns, with what `stat` said of it;
    /// the path back if no module name can be made of it ([`Offer::BadName`]).
    pub fn offer_found(
        &mut self,
        path: Vec<u8>,
        found_as: Option<FileId>,
    ) -> Result<Offer, Vec<u8>> {
        let Some(name) = names::modname(&path) else {
            return Err(path);
        };
        let module = Module {
            rel_start: self.relative(&path),
            path,
            name,
            found_as,
        };
        let Some(i) = self.position(&module.name) else {
            self.add(module);
            return Ok(Offer::Added);
        };
        Ok(match self.modules.get(i) {
            Some(old) if self.old_wins(&old.path, &module.path) => Offer::Ignored,
            _ => {
                if let Some(old) = self.modules.get_mut(i) {
                    *old = module;
                }
                Offer::Replaced
            }
        })
    }

    /// Adds a file given on the command line (file mode: no ranking, and a second
    /// file with the same name is an error).
    pub fn add_file(&mut self, path: &[u8]) -> Result<(), AddError> {
        let Some(name) = names::modname(path) else {
            return Err(AddError::BadName);
        };
        if let Some(old) = self.position(&name).and_then(|i| self.modules.get(i)) {
            return Err(if old.path == path {
                AddError::SamePath(name)
            } else {
                AddError::OtherPath(name, old.path.clone())
            });
        }
        let module = Module {
            path: path.to_vec(),
            rel_start: self.relative(path),
            name: name.clone(),
            found_as: None,
        };
        self.add(module);
        Ok(())
    }

    /// kmod's `depmod_module_is_higher_priority`: does the existing file `old` rank
    /// at least as high as `new`?
    fn old_wins(&self, old: &[u8], new: &[u8]) -> bool {
        // `stem_len` is at most the length of the path.
        let cut_new = new.get(..names::stem_len(new)).unwrap_or(new);
        let cut_old = old.get(..names::stem_len(old)).unwrap_or(old);
        let l = self.dir.len();
        let rel = |cut: &'_ [u8]| -> Option<Vec<u8>> {
            if cut.starts_with(&self.dir) {
                Some(cut.get(l + 1..).unwrap_or(&[]).to_vec())
            } else {
                None
            }
        };
        let (rel_new, rel_old) = (rel(cut_new), rel(cut_old));
        for o in &self.cfg.overrides {
            if rel_new.as_deref() == Some(o.as_slice()) {
                return false;
            }
            if rel_old.as_deref() == Some(o.as_slice()) {
                return true;
            }
        }
        let under = |p: &[u8], dir: &[u8]| p.get(dir.len()) == Some(&b'/') && p.starts_with(dir);
        let (mut bprio, mut oldprio, mut newprio) = (-1i64, -1i64, -1i64);
        let mut i = 0i64;
        for s in &self.cfg.search {
            match s {
                Search::BuiltIn => bprio = i,
                Search::External => {
                    for e in &self.cfg.externals {
                        if under(cut_new, e) {
                            newprio = i;
                        }
                        if under(cut_old, e) {
                            oldprio = i;
                        }
                        i += 1;
                    }
                }
                Search::Path(p) => {
                    if rel_new.as_deref().is_some_and(|r| under(r, p)) {
                        newprio = i;
                    } else if rel_old.as_deref().is_some_and(|r| under(r, p)) {
                        oldprio = i;
                    }
                }
            }
            i += 1;
        }
        if newprio < 0 {
            newprio = bprio;
        }
        if oldprio < 0 {
            oldprio = bprio;
        }
        newprio <= oldprio
    }

    /// The final module array: hash order (512 buckets, names ascending within a
    /// bucket), then stably sorted by first appearance in `modules.order` (when given
    /// and not corrupted). An index into it is a module's priority in the indexes.
    pub fn finish(self, order: Option<&[u8]>, diags: &mut Vec<Diag>) -> Vec<Module> {
        let modules = self.modules;
        // Positions are sorted, not the modules (a hundred bytes each), which
        // move once, at the end. Names are unique, so the sort fixes the order
        // whatever the input order.
        let mut keyed: Vec<(u32, u32)> = modules
            .iter()
            .enumerate()
            .map(|(i, m)| (hash::bucket(&m.name, hash::MODULE_BUCKETS), i as u32))
            .collect();
        let name = |i: u32| {
            modules
                .get(i as usize)
                .map_or(&[][..], |m| m.name.as_slice())
        };
        sort_pairs(&mut keyed, &|a, b| {
            a.0.cmp(&b.0).then_with(|| name(a.1).cmp(name(b.1)))
        });
        let mut order_of: Vec<u32> = keyed.into_iter().map(|(_, i)| i).collect();
        if let Some(text) = order {
            apply_order(&modules, &mut order_of, text, diags);
        }
        let mut slots: Vec<Option<Module>> = modules.into_iter().map(Some).collect();
        order_of
            .into_iter()
            .filter_map(|i| slots.get_mut(i as usize).and_then(Option::take))
            .collect()
    }
}

/// A sort key and a position.
type Pair = (u32, u32);

/// Sorts `pairs` by `order`: one sort for both of [`ModuleSet::finish`]'s (a
/// sort is several KiB of code per comparison it is made for, which the static
/// binaries' size budget notices).
fn sort_pairs(pairs: &mut [Pair], order: &dyn Fn(&Pair, &Pair) -> Ordering) {
    pairs.sort_unstable_by(order);
}

/// Leaves out the modules whose path as printed (or name) is not 7-bit ASCII, one
/// [`Diag::NonAsciiModule`] each: `modules.dep.bin` holds the name as a key and
/// the paths in values, and its format has room for 7-bit bytes only (kmod 34.2
/// stops the whole run with FATAL there). The others keep their order. Only for
/// runs that write the indexes: `-n` prints what kmod prints.
pub fn leave_out_non_ascii(modules: &mut Vec<Module>, diags: &mut Vec<Diag>) {
    modules.retain(|m| {
        let ok = m.name.is_ascii() && m.out_path().is_ascii();
        if !ok {
            diags.push(Diag::NonAsciiModule(m.path.clone()));
        }
        ok
    });
}

/// `modules.order` as kmod reads it: `fgets` chunks of at most 4095 bytes, each cut
/// at its first NUL. Yields (line number, chunk).
fn order_chunks(text: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    (1..).zip(crate::builtin::fgets_chunks(text))
}

/// Reorders `order_of` (positions in `modules`, in hash order) by first
/// appearance in `modules.order`, stably: modules missing from it keep their
/// order, last.
fn apply_order(modules: &[Module], order_of: &mut Vec<u32>, text: &[u8], diags: &mut Vec<Diag>) {
    for (n, chunk) in order_chunks(text) {
        if !chunk.is_empty() && chunk.last() != Some(&b'\n') {
            diags.push(Diag::OrderCorrupted(n));
            return;
        }
    }
    // Each module's path relative to the directory, without a compression
    // suffix (`None`: not below it), in hash order, and their places by it.
    let unc: Vec<Option<&[u8]>> = order_of
        .iter()
        .map(|&i| {
            let m = modules.get(i as usize)?;
            m.rel_start
                .map(|_| names::uncompressed_relpath(m.out_path()))
        })
        .collect();
    let unc_at = |p: u32| unc.get(p as usize).copied().flatten().unwrap_or_default();
    let mut by_unc = ByteIndex::with_capacity(unc.len());
    for (i, u) in unc.iter().enumerate() {
        if let Some(u) = u {
            by_unc.insert(u, i as u32, unc_at);
        }
    }
    // (first line naming it, or u32::MAX; place in hash order): sorted, the
    // place breaks ties, which makes the sort stable.
    let mut key: Vec<(u32, u32)> = (0..unc.len() as u32).map(|p| (u32::MAX, p)).collect();
    let mut next = 0u32;
    for (_, chunk) in order_chunks(text) {
        let Some(line) = chunk.strip_suffix(b"\n") else {
            continue;
        };
        // `by_unc` holds places in `unc`, and `key` has one slot per place.
        if let Some(k) = by_unc
            .get(line, unc_at)
            .and_then(|p| key.get_mut(p as usize))
        {
            if k.0 == u32::MAX {
                k.0 = next;
                next += 1;
            }
        }
    }
    sort_pairs(&mut key, &|a, b| a.cmp(b));
    let hash_order = core::mem::take(order_of);
    order_of.extend(
        key.into_iter()
            .filter_map(|(_, p)| hash_order.get(p as usize).copied()),
    );
}
