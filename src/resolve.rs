//! Symbols → dependencies (compat §4, §6): the symbol table, each module's direct
//! dependencies, kmod's topological numbering, the full dependency lists, and the
//! cycle report when there is no order.

use alloc::vec::Vec;

use crate::diag::Diag;
use crate::hash;
use crate::scan::ModuleData;
use crate::symvers::KernelSymbol;

/// Who provides a symbol.
pub const KERNEL: u32 = u32::MAX;

/// What the caller decided on the command line.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResolveOptions {
    /// `-P c`: the architecture's symbol prefix.
    pub prefix: Option<u8>,
    /// `-E` given: compare CRCs.
    pub check_crcs: bool,
    /// `-e` (effective: only with `-E` or `-F`): report unknown symbols and mismatches.
    pub errsyms: bool,
    /// `-v`: report each new dependency.
    pub verbose: bool,
    /// `-E` or `-F` given: the kernel's own symbols are known.
    pub kernel_symbols: bool,
}

/// One entry of the symbol table.
#[derive(Clone, Copy, Debug)]
pub struct Symbol<'a> {
    /// Stored name (after prefix strip).
    pub name: &'a [u8],
    /// Module index, or [`KERNEL`].
    pub owner: u32,
    /// CRC the provider declares.
    pub crc: u64,
    hash: u32,
}

/// kmod's symbol table: insertion replaces ("last writer wins"). An open-addressing
/// map keyed by kmod's own hash; kmod's 2048-bucket iteration order is recreated by
/// [`SymbolTable::in_kmod_order`].
#[derive(Default)]
pub struct SymbolTable<'a> {
    entries: Vec<Symbol<'a>>,
    slots: Vec<u32>,
}

const EMPTY: u32 = u32::MAX;

impl<'a> SymbolTable<'a> {
    // Cannot fail, and is the hottest loop of the run: `slots` has a power-of-two
    // length (`grow` makes it so before any lookup), `i` is always masked by
    // `len - 1`, and a non-empty slot holds the index of an entry.
    #[allow(clippy::indexing_slicing)]
    #[inline]
    fn find_slot(&self, name: &[u8], h: u32) -> (usize, Option<usize>) {
        let mask = self.slots.len() - 1;
        let mut i = (h as usize).wrapping_mul(0x9e37_79b9) & mask;
        loop {
            let e = self.slots[i];
            if e == EMPTY {
                return (i, None);
            }
            let s = &self.entries[e as usize];
            if s.hash == h && s.name == name {
                return (i, Some(e as usize));
            }
            i = (i + 1) & mask;
        }
    }

    // Cannot fail: `n` is a power of two, `i` is masked by `n - 1`.
    #[allow(clippy::indexing_slicing)]
    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(1024);
        self.slots = alloc::vec![EMPTY; n];
        let mask = n - 1;
        for (k, s) in self.entries.iter().enumerate() {
            let mut i = (s.hash as usize).wrapping_mul(0x9e37_79b9) & mask;
            while self.slots[i] != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = k as u32;
        }
    }

    /// Inserts or replaces.
    pub fn insert(&mut self, name: &'a [u8], owner: u32, crc: u64) {
        if (self.entries.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let h = hash::superfast(name);
        let (slot, found) = self.find_slot(name, h);
        let sym = Symbol {
            name,
            owner,
            crc,
            hash: h,
        };
        // `find_slot` returns a slot of `slots` and, if found, an index of `entries`.
        match found {
            Some(e) => {
                if let Some(entry) = self.entries.get_mut(e) {
                    *entry = sym;
                }
            }
            None => {
                if let Some(s) = self.slots.get_mut(slot) {
                    *s = self.entries.len() as u32;
                }
                self.entries.push(sym);
            }
        }
    }

    /// Exact lookup.
    pub fn get(&self, name: &[u8]) -> Option<&Symbol<'a>> {
        if self.slots.is_empty() {
            return None;
        }
        let (_, found) = self.find_slot(name, hash::superfast(name));
        found.and_then(|e| self.entries.get(e))
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No symbols?
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Module-provided symbols in kmod's table order (2048 buckets, names ascending
    /// within a bucket): the order of `modules.symbols`.
    pub fn in_kmod_order(&self) -> Vec<&Symbol<'a>> {
        // Placed by bucket (a counting sort), then each bucket's few sorted by
        // name.
        let buckets = hash::SYMBOL_BUCKETS as usize;
        let bucket = |s: &Symbol<'_>| (s.hash & (hash::SYMBOL_BUCKETS - 1)) as usize;
        let modules = || self.entries.iter().filter(|s| s.owner != KERNEL);
        let mut start = alloc::vec![0usize; buckets + 1];
        for s in modules() {
            if let Some(c) = start.get_mut(bucket(s) + 1) {
                *c += 1;
            }
        }
        let mut sum = 0;
        for c in start.iter_mut() {
            sum += *c;
            *c = sum;
        }
        let mut placed: Vec<Option<&Symbol<'a>>> =
            alloc::vec![None; start.last().copied().unwrap_or(0)];
        let mut next = start.clone();
        for s in modules() {
            if let Some(n) = next.get_mut(bucket(s)) {
                if let Some(slot) = placed.get_mut(*n) {
                    *slot = Some(s);
                }
                *n += 1;
            }
        }
        let mut v: Vec<&Symbol<'a>> = placed.into_iter().flatten().collect();
        for (&a, &b) in start.iter().zip(start.iter().skip(1)) {
            if let Some(run) = v.get_mut(a..b) {
                run.sort_unstable_by(|a, b| a.name.cmp(b.name));
            }
        }
        v
    }
}

/// The modules have no dependency order; the cycles were reported as diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cycles;

/// The dependency graph of a successful run.
pub struct Resolved<'a> {
    /// The symbol table (for modules.symbols).
    pub symbols: SymbolTable<'a>,
    /// Full dependency list of each module, in output order.
    pub deps: Vec<Vec<u32>>,
}

fn strip_prefix(name: &[u8], prefix: Option<u8>) -> &[u8] {
    match (prefix, name.split_first()) {
        (Some(p), Some((&c, rest))) if c == p => rest,
        _ => name,
    }
}

/// Builds the symbol table and dependencies of `data` (one entry per module, in final
/// module order). Diagnostics are appended in kmod's order. `Err(Cycles)` means a
/// dependency cycle: it has been reported and nothing must be written.
///
/// The three stages in turn, on one thread: [`symbol_table`], [`direct_deps`] over
/// all modules, [`order`]. A host with threads runs `direct_deps` over parts of
/// the modules at once and hands the parts to `order` in module order.
pub fn resolve<'a>(
    data: &'a [ModuleData],
    kernel: &[KernelSymbol<'a>],
    opts: &ResolveOptions,
    diags: &mut Vec<Diag>,
) -> Result<Resolved<'a>, Cycles> {
    let symbols = symbol_table(data, kernel, opts, diags);
    let part = direct_deps(data, &symbols, opts, 0..data.len());
    order(symbols, alloc::vec![part], diags)
}

/// The symbol table: the kernel's symbols (with `-E` or `-F`), then every
/// module's exports, the last writer winning. Says which modules could not be
/// read, in module order.
pub fn symbol_table<'a>(
    data: &'a [ModuleData],
    kernel: &[KernelSymbol<'a>],
    opts: &ResolveOptions,
    diags: &mut Vec<Diag>,
) -> SymbolTable<'a> {
    let mut symbols = SymbolTable::default();
    if opts.kernel_symbols {
        for k in kernel {
            symbols.insert(k.name, KERNEL, k.crc);
        }
        symbols.insert(b"__this_module", KERNEL, 0);
        symbols.insert(b"_GLOBAL_OFFSET_TABLE_", KERNEL, 0);
        if symbols.get(b"TOC.").is_none() {
            symbols.insert(b"TOC.", KERNEL, 0);
        }
    }
    for (i, d) in data.iter().enumerate() {
        if let Some(e) = d.error {
            diags.push(Diag::LoadFailed(i as u32, e));
        }
        for (name, crc) in d.exports() {
            symbols.insert(strip_prefix(name, opts.prefix), i as u32, crc);
        }
    }
    symbols
}

/// What [`direct_deps`] found for a run of modules.
pub struct DirectDeps {
    /// The first module of the run.
    first: usize,
    /// Each module's direct dependencies, in the order its imports name them.
    direct: Vec<Vec<u32>>,
    /// Their diagnostics, in module order.
    diags: Vec<Diag>,
}

/// The direct dependencies of modules `range` (indices of `data`): the owners of
/// the symbols each imports, found in `symbols`. Parts of the modules are
/// independent, so a host may look them up on several threads at once.
pub fn direct_deps(
    data: &[ModuleData],
    symbols: &SymbolTable<'_>,
    opts: &ResolveOptions,
    range: core::ops::Range<usize>,
) -> DirectDeps {
    let mut part = DirectDeps {
        first: range.start,
        direct: Vec::with_capacity(range.len()),
        diags: Vec::new(),
    };
    for (i, d) in data.iter().enumerate().skip(range.start).take(range.len()) {
        let mut direct_i = Vec::new();
        for (name, crc, weak) in d.imports() {
            let mut key = name.strip_prefix(b".").unwrap_or(name);
            key = strip_prefix(key, opts.prefix);
            let Some(sym) = symbols.get(key) else {
                if opts.errsyms && !weak {
                    part.diags
                        .push(Diag::UnknownSymbol(i as u32, name.to_vec()));
                }
                continue;
            };
            if opts.check_crcs && sym.crc != crc && !weak && opts.errsyms {
                part.diags
                    .push(Diag::VersionMismatch(i as u32, name.to_vec()));
            }
            let owner = sym.owner;
            if owner == KERNEL || direct_i.contains(&owner) {
                continue;
            }
            direct_i.push(owner);
            if opts.verbose {
                part.diags
                    .push(Diag::Needs(i as u32, sym.name.to_vec(), owner));
            }
        }
        part.direct.push(direct_i);
    }
    part
}

/// kmod's order and the full dependency lists, from the [`direct_deps`] of every
/// module: `parts` in module order, covering all of them once. `Err(Cycles)`: a
/// cycle, reported in `diags`.
pub fn order<'a>(
    symbols: SymbolTable<'a>,
    parts: Vec<DirectDeps>,
    diags: &mut Vec<Diag>,
) -> Result<Resolved<'a>, Cycles> {
    let mut direct: Vec<Vec<u32>> = Vec::new();
    for part in parts {
        debug_assert_eq!(part.first, direct.len());
        direct.extend(part.direct);
        diags.extend(part.diags);
    }
    let n = direct.len();
    // Owners other than KERNEL are module indices, so below `n`: the lookups by
    // module index that follow all find their slot.
    let mut users = alloc::vec![0u32; n];
    for &owner in direct.iter().flatten() {
        if let Some(u) = users.get_mut(owner as usize) {
            *u += 1;
        }
    }

    // Topological numbering (compat §6.1): users before what they use, LIFO.
    let mut left = users.clone();
    let mut stack: Vec<u32> = (0..n as u32)
        .zip(&left)
        .filter(|&(_, &l)| l == 0)
        .map(|(i, _)| i)
        .collect();
    let mut sort_idx = alloc::vec![u32::MAX; n];
    let mut sorted = 0u32;
    while let Some(i) = stack.pop() {
        if let Some(s) = sort_idx.get_mut(i as usize) {
            *s = sorted;
        }
        sorted += 1;
        for &d in direct.get(i as usize).map_or(&[][..], Vec::as_slice) {
            if let Some(l) = left.get_mut(d as usize) {
                *l -= 1;
                if *l == 0 {
                    stack.push(d);
                }
            }
        }
    }
    if (sorted as usize) < n {
        report_cycles(&direct, &left, diags);
        return Err(Cycles);
    }

    let rank = |m: u32| sort_idx.get(m as usize).copied().unwrap_or(u32::MAX);
    for d in direct.iter_mut() {
        d.sort_by_key(|&m| rank(m));
    }
    // Full lists: the transitive closure, ascending dep_sort_idx.
    let mut seen = alloc::vec![u32::MAX; n];
    let mut deps = Vec::with_capacity(n);
    let mut work = Vec::new();
    for (i, dir) in direct.iter().enumerate() {
        let mut all: Vec<u32> = Vec::new();
        work.clear();
        work.extend(dir.iter().rev().copied());
        while let Some(m) = work.pop() {
            match seen.get_mut(m as usize) {
                Some(s) if *s != i as u32 => *s = i as u32,
                _ => continue,
            }
            all.push(m);
            if let Some(next) = direct.get(m as usize) {
                work.extend(next.iter().rev().copied());
            }
        }
        all.sort_by_key(|&m| rank(m));
        deps.push(all);
    }
    Ok(Resolved { symbols, deps })
}

/// Upper bound on the steps of the cycle report. kmod's algorithm can loop forever
/// (compat §6.4); a legitimate report of even a huge graph needs far fewer steps.
const CYCLE_STEP_BUDGET: usize = 1 << 22;
/// Upper bound on the module names printed in cycle reports. In some graphs kmod
/// prints ever longer "Cycle detected" lines forever; we stop after this many names
/// (the lines printed until then are kmod's).
const CYCLE_NAME_BUDGET: usize = 1 << 17;

/// kmod's cycle report, reproduced step for step (compat §6.4), including its head
/// rotation when removing from the circular root list. Where kmod would abort on its
/// stack assertion or never terminate, we stop with [`Diag::CycleReportAborted`].
fn report_cycles(deps: &[Vec<u32>], left: &[u32], diags: &mut Vec<Diag>) {
    let n = deps.len();
    // Every module index here (vertices, dependencies) is below `n`, as in `resolve`.
    let mut roots: Vec<u32> = (0..n as u32)
        .zip(left)
        .filter(|&(_, &l)| l > 0)
        .map(|(i, _)| i)
        .collect();
    let capacity = roots.len();
    let mut head = 0usize;
    let mut visited = alloc::vec![false; n];
    let mut in_loop = alloc::vec![false; n];
    let mut loop_count = 0usize;
    let mut steps = 0usize;
    let mut names_printed = 0usize;

    // remove(m): the removed element's successor becomes the head.
    fn remove(roots: &mut Vec<u32>, head: &mut usize, m: u32) {
        if let Some(p) = roots.iter().position(|&r| r == m) {
            roots.remove(p);
            *head = if roots.is_empty() { 0 } else { p % roots.len() };
        }
    }

    // Vertices: (module, parent vertex).
    let mut vertices: Vec<(u32, u32)> = Vec::new();
    while !roots.is_empty() {
        let root = roots.remove(head);
        head = if roots.is_empty() {
            0
        } else {
            head % roots.len()
        };
        vertices.clear();
        vertices.push((root, u32::MAX));
        let mut stack: Vec<u32> = alloc::vec![0];
        while let Some(v) = stack.pop() {
            steps += 1;
            if steps > CYCLE_STEP_BUDGET {
                diags.push(Diag::CycleReportAborted);
                return;
            }
            // `v` and parents are indices of `vertices`, pushed below.
            let Some(&(m, parent)) = vertices.get(v as usize) else {
                continue;
            };
            if visited.get(m as usize) == Some(&true) && m == root {
                let mut chain = Vec::new();
                let mut p = parent;
                while let Some(&(pm, pp)) = vertices.get(p as usize) {
                    chain.push(pm);
                    p = pp;
                }
                chain.reverse();
                for &x in &chain {
                    if let Some(flag @ false) = in_loop.get_mut(x as usize) {
                        *flag = true;
                        loop_count += 1;
                    }
                }
                for &x in &chain {
                    remove(&mut roots, &mut head, x);
                }
                chain.push(m);
                names_printed += chain.len();
                if names_printed > CYCLE_NAME_BUDGET {
                    diags.push(Diag::CycleReportAborted);
                    return;
                }
                diags.push(Diag::Cycle(chain));
                continue;
            }
            if let Some(seen) = visited.get_mut(m as usize) {
                *seen = true;
            }
            let deps_m = deps.get(m as usize).map_or(&[][..], Vec::as_slice);
            if deps_m.is_empty() {
                remove(&mut roots, &mut head, m);
                continue;
            }
            for &d in deps_m {
                if stack.len() == capacity {
                    diags.push(Diag::CycleReportAborted);
                    return;
                }
                vertices.push((d, v));
                stack.push(vertices.len() as u32 - 1);
            }
        }
    }
    diags.push(Diag::CycleCount(loop_count));
}
