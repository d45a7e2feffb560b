//! The second stage for patterns without back-references: glibc's NFA construction.
//!
//! A port of glibc's `parse` tail and `analyze` (`posix/regcomp.c`) for a pattern
//! compiled with `REG_NOSUB`: `END_OF_RE` is appended, `optimize_subexps` and
//! `lower_subexps` drop the groups (an empty one becomes `OP_OPEN_SUBEXP`,
//! `OP_CLOSE_SUBEXP`), `calc_first`, `calc_next` and `link_nfa_nodes` number the tree's
//! nodes in postorder and link them (`dfa->nexts`, `dfa->edests`), and `calc_eclosure`
//! copies the epsilon closure of every anchor onto copies of the nodes it reaches, each
//! carrying the anchor's constraint (`duplicate_node_closure`). The copying is replayed
//! in glibc's exact order, because which nodes get which constraint is what gives
//! glibc's odd answers (`(a$){2}` matches `"aa"`).
//!
//! In: the tree and content root from `parse` (no back-reference in it; the tree is
//! rewritten in place). Out: an [`Nfa`]: consuming nodes with their byte set (an index
//! into the parser's table) and `next`, epsilon nodes with at most two destinations,
//! each node's constraint bits, and `init`, the epsilon closure of the first node. The
//! closures themselves are not stored: after the copies they are plain reachability,
//! walked by [`Nfa::add_closure`]. The `matcher` stage runs this NFA over the text.

use alloc::vec;
use alloc::vec::Vec;

use super::tree::{postorder, preorder, TType, Tree};
use super::{Error, MAX_NODES, NIL};

/// Checked reads and writes of the internal tables. Every index comes from the tables
/// themselves, so the fallbacks are never taken; they keep a bug from panicking on
/// configuration data.
pub(super) fn get_u32(v: &[u32], i: u32) -> u32 {
    v.get(i as usize).copied().unwrap_or(NIL)
}

pub(super) fn set_u32(v: &mut [u32], i: u32, x: u32) {
    if let Some(slot) = v.get_mut(i as usize) {
        *slot = x;
    }
}

fn get_flag(v: &[bool], i: u32) -> bool {
    v.get(i as usize).copied().unwrap_or(true)
}

fn set_flag(v: &mut [bool], i: u32, x: bool) {
    if let Some(slot) = v.get_mut(i as usize) {
        *slot = x;
    }
}

/// Node types of glibc's NFA (`re_token_type_t`, the subset that survives `analyze`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NType {
    Set(u32),
    EndOfRe,
    BackRef,
    OpenSubexp,
    CloseSubexp,
    Alt,
    Star,
    Anchor,
}

impl NType {
    /// glibc's `IS_EPSILON_NODE`.
    fn is_epsilon(self) -> bool {
        matches!(
            self,
            NType::OpenSubexp | NType::CloseSubexp | NType::Alt | NType::Star | NType::Anchor
        )
    }
}

#[derive(Clone, Debug)]
pub(super) struct NNode {
    pub(super) ty: NType,
    pub(super) constraint: u16,
    duplicated: bool,
    /// `dfa->nexts`: where a consuming node goes.
    pub(super) next: u32,
    /// `dfa->edests`: epsilon destinations (a sorted set).
    edests: Dests,
    /// `dfa->org_indices`: the node a constraint copy was made from.
    org: u32,
    /// This node's constraint copies: the head of its list in `Nfa::copy_list`.
    copies: u32,
}

/// `dfa->edests` of one node, inline: a sorted set of at most two epsilon destinations
/// (an alternation or a star has two, every other epsilon node one, and
/// `duplicate_node_closure` empties a clone's set before it adds at most two).
#[derive(Clone, Copy, Debug)]
struct Dests {
    at: [u32; 2],
    len: u8,
}

impl Dests {
    const EMPTY: Dests = Dests {
        at: [NIL; 2],
        len: 0,
    };

    fn one(x: u32) -> Dests {
        Dests {
            at: [x, NIL],
            len: 1,
        }
    }

    fn as_slice(&self) -> &[u32] {
        self.at.get(..usize::from(self.len)).unwrap_or(&[])
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    /// Sorted insertion (`re_node_set_insert`; glibc never inserts a present element
    /// here). A third destination cannot occur (see above); it would refuse the
    /// pattern rather than drop an edge.
    fn insert(&mut self, x: u32) -> Result<(), Error> {
        match (self.len, self.at[0]) {
            (0, _) => self.at[0] = x,
            (1, first) if first <= x => self.at[1] = x,
            (1, first) => self.at = [x, first],
            _ => return Err(Error::Space),
        }
        self.len += 1;
        Ok(())
    }
}

/// One entry of a node's list of constraint copies: the newest copy with this
/// constraint, and the next entry of the same node.
#[derive(Clone, Copy, Debug)]
struct CopyEntry {
    constraint: u16,
    node: u32,
    next: u32,
}

/// What a read of a missing NFA node gives (never happens: indices come from the NFA
/// itself): an epsilon node going nowhere.
static DEAD_NNODE: NNode = NNode {
    ty: NType::Anchor,
    constraint: 0,
    duplicated: true,
    next: NIL,
    edests: Dests::EMPTY,
    org: NIL,
    copies: NIL,
};

/// glibc's compiled NFA for a pattern without back-references.
#[derive(Clone, Debug)]
pub(super) struct Nfa {
    pub(super) nodes: Vec<NNode>,
    /// Where writes to a missing node go (never happens; see `DEAD_NNODE`).
    sink: NNode,
    /// The epsilon closure of the first node (`create_initial_state`).
    pub(super) init: Vec<u32>,
    /// The newest constraint copy of each `(original, constraint)`, as lists from
    /// `NNode::copies` (one entry per distinct constraint): what glibc's backward scan
    /// in `search_duplicated_node` finds, without the scan.
    copy_list: Vec<CopyEntry>,
}

impl Nfa {
    /// glibc's `parse` (adding `END_OF_RE`) and `analyze`, for a tree without
    /// back-references, compiled with `REG_NOSUB`.
    pub(super) fn build(tree: &mut Tree, content: u32) -> Result<Nfa, Error> {
        let eor = tree.create(TType::EndOfRe, NIL, NIL)?;
        let root = if content == NIL {
            eor
        } else {
            tree.create(TType::Concat, content, eor)?
        };

        // optimize_subexps: a group directly inside a group is dropped.
        preorder(tree, root, |t, node| {
            if let TType::Subexp(_) = t.n(node).ty {
                let left = t.n(node).left;
                if left != NIL && matches!(t.n(left).ty, TType::Subexp(_)) {
                    let inner = t.n(left).left;
                    t.m(node).left = inner;
                    if inner != NIL {
                        t.m(inner).parent = node;
                    }
                }
            }
            Ok(())
        })?;

        // lower_subexps: with REG_NOSUB and no back-reference, a non-empty group is just
        // its content; an empty one becomes OP_OPEN_SUBEXP, OP_CLOSE_SUBEXP.
        postorder(tree, root, |t, node| {
            for right in [false, true] {
                let child = if right {
                    t.n(node).right
                } else {
                    t.n(node).left
                };
                if child == NIL {
                    continue;
                }
                let TType::Subexp(idx) = t.n(child).ty else {
                    continue;
                };
                let body = t.n(child).left;
                let lowered = if body != NIL {
                    body
                } else {
                    let op = t.create(TType::OpenSubexp(idx), NIL, NIL)?;
                    let cls = t.create(TType::CloseSubexp(idx), NIL, NIL)?;
                    t.create(TType::Concat, op, cls)?
                };
                if right {
                    t.m(node).right = lowered;
                } else {
                    t.m(node).left = lowered;
                }
                t.m(lowered).parent = node;
            }
            Ok(())
        })?;

        let mut nfa = Nfa {
            nodes: Vec::new(),
            init: Vec::new(),
            copy_list: Vec::new(),
            sink: DEAD_NNODE.clone(),
        };

        // calc_first: nodes are numbered in postorder (CONCATs are not nodes).
        postorder(tree, root, |t, node| {
            let n = *t.n(node);
            if n.ty == TType::Concat {
                let first = t.n(n.left).first;
                let idx = t.n(n.left).node_idx;
                let m = t.m(node);
                m.first = first;
                m.node_idx = idx;
            } else {
                let (ty, constraint) = match n.ty {
                    TType::Set(s) => (NType::Set(s), 0),
                    TType::Anchor(c) => (NType::Anchor, c),
                    TType::BackRef(_) => (NType::BackRef, 0),
                    TType::EndOfRe => (NType::EndOfRe, 0),
                    TType::Alt => (NType::Alt, 0),
                    TType::Star => (NType::Star, 0),
                    TType::OpenSubexp(_) | TType::Subexp(_) => (NType::OpenSubexp, 0),
                    TType::CloseSubexp(_) => (NType::CloseSubexp, 0),
                    TType::Concat => unreachable_concat(),
                };
                let idx = nfa.add_node(ty, n.duplicated)?;
                nfa.node_mut(idx).constraint = constraint;
                let m = t.m(node);
                m.first = node;
                m.node_idx = idx;
            }
            Ok(())
        })?;

        // calc_next.
        preorder(tree, root, |t, node| {
            let n = *t.n(node);
            match n.ty {
                TType::Star => t.m(n.left).next = node,
                TType::Concat => {
                    let right_first = t.n(n.right).first;
                    t.m(n.left).next = right_first;
                    t.m(n.right).next = n.next;
                }
                _ => {
                    if n.left != NIL {
                        t.m(n.left).next = n.next;
                    }
                    if n.right != NIL {
                        t.m(n.right).next = n.next;
                    }
                }
            }
            Ok(())
        })?;

        // link_nfa_nodes.
        preorder(tree, root, |t, node| {
            let n = *t.n(node);
            let next_idx = |t: &Tree| {
                if n.next == NIL {
                    NIL
                } else {
                    t.n(n.next).node_idx
                }
            };
            let idx = n.node_idx;
            match n.ty {
                TType::Concat | TType::EndOfRe => {}
                TType::Alt | TType::Star => {
                    let side = |c: u32| {
                        if c != NIL {
                            t.n(t.n(c).first).node_idx
                        } else {
                            next_idx(t)
                        }
                    };
                    let (l, r) = (side(n.left), side(n.right));
                    let mut dests = Dests::one(l);
                    if r != l {
                        dests.insert(r)?;
                    }
                    nfa.node_mut(idx).edests = dests;
                }
                TType::Anchor(_)
                | TType::OpenSubexp(_)
                | TType::CloseSubexp(_)
                | TType::Subexp(_) => nfa.node_mut(idx).edests = Dests::one(next_idx(t)),
                TType::BackRef(_) => {
                    let next = next_idx(t);
                    nfa.node_mut(idx).next = next;
                    nfa.node_mut(idx).edests = Dests::one(next);
                }
                TType::Set(_) => nfa.node_mut(idx).next = next_idx(t),
            }
            Ok(())
        })?;

        nfa.calc_eclosure()?;
        let first = tree.n(tree.n(root).first).node_idx;
        let mut init = Vec::new();
        let mut stamp = vec![NIL; nfa.nodes.len()];
        nfa.add_closure(first, &mut stamp, 0, &mut init, &mut Vec::new());
        nfa.init = init;
        Ok(nfa)
    }

    pub(super) fn node(&self, i: u32) -> &NNode {
        self.nodes.get(i as usize).unwrap_or(&DEAD_NNODE)
    }

    fn node_mut(&mut self, i: u32) -> &mut NNode {
        match self.nodes.get_mut(i as usize) {
            Some(n) => n,
            None => &mut self.sink,
        }
    }

    /// glibc's `re_dfa_add_node`.
    fn add_node(&mut self, ty: NType, duplicated: bool) -> Result<u32, Error> {
        if self.nodes.len() >= MAX_NODES {
            return Err(Error::Space);
        }
        self.nodes.push(NNode {
            ty,
            constraint: 0,
            duplicated,
            next: NIL,
            edests: Dests::EMPTY,
            org: NIL,
            copies: NIL,
        });
        Ok((self.nodes.len() - 1) as u32)
    }

    /// glibc's `duplicate_node`: a copy of `org` carrying `constraint` as well.
    fn duplicate_node(&mut self, org: u32, constraint: u16) -> Result<u32, Error> {
        let o = self.node(org);
        let (ty, dup, org_constraint) = (o.ty, o.duplicated, o.constraint);
        let idx = self.add_node(ty, dup)?;
        let n = self.node_mut(idx);
        n.constraint = constraint | org_constraint;
        n.duplicated = true;
        n.org = org;
        let constraint = n.constraint;
        if let Some(e) = self
            .copy_entry(org, constraint)
            .and_then(|at| self.copy_list.get_mut(at))
        {
            e.node = idx;
            return Ok(idx);
        }
        let entry = self.copy_list.len() as u32;
        self.copy_list.push(CopyEntry {
            constraint,
            node: idx,
            next: self.node(org).copies,
        });
        self.node_mut(org).copies = entry;
        Ok(idx)
    }

    /// Where `org`'s list of copies has its entry for `constraint`, if it has one.
    fn copy_entry(&self, org: u32, constraint: u16) -> Option<usize> {
        let mut at = self.node(org).copies;
        while let Some(e) = self.copy_list.get(at as usize) {
            if e.constraint == constraint {
                return Some(at as usize);
            }
            at = e.next;
        }
        None
    }

    /// glibc's `search_duplicated_node`: the newest constraint copy of `org` with
    /// exactly `constraint`. glibc scans backwards from the last node while nodes are
    /// marked duplicated; the nodes after `END_OF_RE` (the last node numbered by
    /// `calc_first`, never duplicated) are exactly the constraint copies, so the newest
    /// matching copy is what the scan finds.
    fn search_duplicated_node(&self, org: u32, constraint: u16) -> u32 {
        self.copy_entry(org, constraint)
            .and_then(|at| self.copy_list.get(at))
            .map_or(NIL, |e| e.node)
    }

    /// glibc's `duplicate_node_closure`: copies the epsilon closure of `top_org` onto
    /// `top_clone` with `init_constraint` added to every copy. The recursion on the first
    /// of two epsilon destinations becomes a task stack, in the same order.
    fn duplicate_node_closure(
        &mut self,
        top_org: u32,
        top_clone: u32,
        root: u32,
        init_constraint: u16,
    ) -> Result<(), Error> {
        enum Task {
            /// Walk from `(org, clone)`.
            Run(u32, u32, u16),
            /// After the first branch of a two-way node: copy the second destination
            /// `org_dest` for `clone`, then walk on from there.
            Second(u32, u32, u16),
        }
        let mut tasks = vec![Task::Run(top_org, top_clone, init_constraint)];
        while let Some(task) = tasks.pop() {
            let (mut org, mut clone, mut constraint) = match task {
                Task::Run(o, c, k) => (o, c, k),
                Task::Second(org_dest, clone, k) => {
                    let clone_dest = self.duplicate_node(org_dest, k)?;
                    self.node_mut(clone).edests.insert(clone_dest)?;
                    (org_dest, clone_dest, k)
                }
            };
            loop {
                let (org_dest, clone_dest);
                let o = self.node(org);
                let (org_ty, org_next, org_constraint) = (o.ty, o.next, o.constraint);
                let org_edests = o.edests;
                if org_ty == NType::BackRef {
                    org_dest = org_next;
                    self.node_mut(clone).edests.clear();
                    clone_dest = self.duplicate_node(org_dest, constraint)?;
                    self.node_mut(clone).next = org_next;
                    self.node_mut(clone).edests.insert(clone_dest)?;
                } else {
                    match *org_edests.as_slice() {
                        [] => {
                            self.node_mut(clone).next = org_next;
                            break;
                        }
                        [only] => {
                            org_dest = only;
                            self.node_mut(clone).edests.clear();
                            // A loop back to the root: tie it to the original destination.
                            if org == root && clone != org {
                                self.node_mut(clone).edests.insert(org_dest)?;
                                break;
                            }
                            constraint |= org_constraint;
                            clone_dest = self.duplicate_node(org_dest, constraint)?;
                            self.node_mut(clone).edests.insert(clone_dest)?;
                        }
                        [first, second, ..] => {
                            self.node_mut(clone).edests.clear();
                            let found = self.search_duplicated_node(first, constraint);
                            if found == NIL {
                                let c = self.duplicate_node(first, constraint)?;
                                self.node_mut(clone).edests.insert(c)?;
                                tasks.push(Task::Second(second, clone, constraint));
                                tasks.push(Task::Run(first, c, constraint));
                                break;
                            }
                            self.node_mut(clone).edests.insert(found)?;
                            org_dest = second;
                            clone_dest = self.duplicate_node(org_dest, constraint)?;
                            self.node_mut(clone).edests.insert(clone_dest)?;
                        }
                    }
                }
                org = org_dest;
                clone = clone_dest;
            }
        }
        Ok(())
    }

    /// glibc's `calc_eclosure`, in two steps with the same result.
    ///
    /// glibc computes every closure by a recursive walk over the epsilon edges (nodes
    /// "in progress" are skipped and incomplete closures recomputed later), and the
    /// first time the walk enters a node with a constraint whose first destination is
    /// not a copy, it copies that node's closure with the constraint
    /// (`duplicate_node_closure`). Only those first entries change the NFA (a later
    /// entry finds the first destination already copied, and destinations never change
    /// otherwise), and the final closures are plain reachability. So: first replay the
    /// walk's order of first entries (a depth-first search in glibc's order: nodes by
    /// index, destinations in set order) doing the copies; matching then walks the
    /// closures as reachability (`add_closure`).
    fn calc_eclosure(&mut self) -> Result<(), Error> {
        // Step 1: the copies, in glibc's order.
        let mut visited: Vec<bool> = Vec::new();
        let mut stack: Vec<(u32, usize)> = Vec::new();
        let mut start = 0usize;
        while start < self.nodes.len() {
            visited.resize(self.nodes.len(), false);
            if get_flag(&visited, start as u32) {
                start += 1;
                continue;
            }
            let mut pending = Some(start as u32);
            loop {
                if let Some(node) = pending.take() {
                    visited.resize(self.nodes.len(), false);
                    set_flag(&mut visited, node, true);
                    let n = self.node(node);
                    if n.constraint != 0
                        && n.edests
                            .as_slice()
                            .first()
                            .is_some_and(|&e| !self.node(e).duplicated)
                    {
                        let c = n.constraint;
                        self.duplicate_node_closure(node, node, node, c)?;
                        visited.resize(self.nodes.len(), false);
                    }
                    stack.push((node, 0));
                }
                let Some(top) = stack.last_mut() else {
                    break;
                };
                let next_edge = epsilon_successors(&self.nodes, top.0).get(top.1).copied();
                if let Some(e) = next_edge {
                    top.1 += 1;
                    if !get_flag(&visited, e) {
                        pending = Some(e);
                    }
                } else {
                    stack.pop();
                }
            }
            start += 1;
        }
        Ok(())
    }

    /// Adds `from`'s epsilon closure (every node reachable over epsilon edges, `from`
    /// itself included) to `out`, skipping and marking nodes through `stamp[node] ==
    /// gen`. Closures are walked when needed instead of stored: the nodes of one step's
    /// closures are then visited once per step, where stored closures cost their total
    /// size, which is quadratic in a chain of anchors (`(^^^…^){33}`) to build.
    pub(super) fn add_closure(
        &self,
        from: u32,
        stamp: &mut [u32],
        gen: u32,
        out: &mut Vec<u32>,
        stack: &mut Vec<u32>,
    ) {
        if get_u32(stamp, from) == gen {
            return;
        }
        set_u32(stamp, from, gen);
        stack.push(from);
        while let Some(v) = stack.pop() {
            out.push(v);
            for &w in epsilon_successors(&self.nodes, v) {
                if get_u32(stamp, w) != gen {
                    set_u32(stamp, w, gen);
                    stack.push(w);
                }
            }
        }
    }
}

/// The epsilon edges out of `v` (none for consuming nodes and `END_OF_RE`).
fn epsilon_successors(nodes: &[NNode], v: u32) -> &[u32] {
    match nodes.get(v as usize) {
        Some(nd) if nd.ty.is_epsilon() => nd.edests.as_slice(),
        _ => &[],
    }
}

/// A CONCAT never becomes an NFA node (glibc's `calc_first` skips it).
fn unreachable_concat() -> (NType, u16) {
    (NType::EndOfRe, 0)
}
