//! The parse tree: glibc's `bin_tree_t`, as an arena of nodes linked by index, and
//! glibc's parent-pointer walks over it.
//!
//! `parse` builds the tree (`Tree::create`, and `Tree::duplicate`, which expands `{m,n}`
//! by copying as glibc does) and hands it on, with the root of the pattern's content, to
//! one of the two back ends: `nfa` (patterns without back-references) adds `END_OF_RE`,
//! rewrites the tree and numbers its nodes with `preorder`/`postorder`, filling in the
//! `first`/`next`/`node_idx` fields kept here for it; `backref` reads it in postfix
//! order. Indices are `u32` with `NIL` for "no node"; the arena holds at most
//! `MAX_NODES` nodes (`Error::Space` past that).

use alloc::vec;
use alloc::vec::Vec;

use super::{Error, MAX_NODES, NIL};

/// Node types of glibc's parse tree (`bin_tree_t`), for the ERE subset in the C locale:
/// single bytes, `.`, brackets and `\w`-like classes are all byte sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TType {
    Set(u32),
    /// An anchor with its `re_context_type`.
    Anchor(u16),
    BackRef(u8),
    EndOfRe,
    Concat,
    Alt,
    Star,
    /// A group (`SUBEXP`) with its 0-based number.
    Subexp(u32),
    OpenSubexp(u32),
    CloseSubexp(u32),
}

#[derive(Clone, Copy, Debug)]
pub(super) struct TNode {
    pub(super) ty: TType,
    pub(super) left: u32,
    pub(super) right: u32,
    pub(super) parent: u32,
    /// Made by `duplicate_tree` (glibc's `token.duplicated`).
    pub(super) duplicated: bool,
    pub(super) first: u32,
    pub(super) next: u32,
    pub(super) node_idx: u32,
}

/// What a read of a missing tree node gives (never happens: indices come from the
/// arena itself).
static DEAD_TNODE: TNode = TNode {
    ty: TType::EndOfRe,
    left: NIL,
    right: NIL,
    parent: NIL,
    duplicated: true,
    first: NIL,
    next: NIL,
    node_idx: NIL,
};

/// The parse tree, nodes in an arena; `NIL` is "no node".
#[derive(Debug)]
pub(super) struct Tree {
    nodes: Vec<TNode>,
    /// Where writes to a missing node go (never happens; see `DEAD_TNODE`).
    sink: TNode,
}

impl Tree {
    /// An empty tree.
    pub(super) fn new() -> Tree {
        Tree {
            nodes: Vec::new(),
            sink: DEAD_TNODE,
        }
    }

    /// glibc's `create_tree`/`create_token_tree`.
    pub(super) fn create(&mut self, ty: TType, left: u32, right: u32) -> Result<u32, Error> {
        if self.nodes.len() >= MAX_NODES {
            return Err(Error::Space);
        }
        let id = self.nodes.len() as u32;
        self.nodes.push(TNode {
            ty,
            left,
            right,
            parent: NIL,
            duplicated: false,
            first: NIL,
            next: NIL,
            node_idx: NIL,
        });
        for child in [left, right] {
            if child != NIL {
                self.m(child).parent = id;
            }
        }
        Ok(id)
    }

    /// glibc's `duplicate_tree`: a copy of the subtree, every node marked duplicated.
    pub(super) fn duplicate(&mut self, root: u32) -> Result<u32, Error> {
        let copy = |tree: &mut Tree, src: u32, parent: u32| -> Result<u32, Error> {
            let ty = tree.n(src).ty;
            let id = tree.create(ty, NIL, NIL)?;
            let n = tree.m(id);
            n.parent = parent;
            n.duplicated = true;
            Ok(id)
        };
        let new_root = copy(self, root, NIL)?;
        let mut stack = vec![(root, new_root)];
        while let Some((src, dst)) = stack.pop() {
            let (l, r) = (self.n(src).left, self.n(src).right);
            if l != NIL {
                let c = copy(self, l, dst)?;
                self.m(dst).left = c;
                stack.push((l, c));
            }
            if r != NIL {
                let c = copy(self, r, dst)?;
                self.m(dst).right = c;
                stack.push((r, c));
            }
        }
        Ok(new_root)
    }

    pub(super) fn n(&self, i: u32) -> &TNode {
        self.nodes.get(i as usize).unwrap_or(&DEAD_TNODE)
    }

    pub(super) fn m(&mut self, i: u32) -> &mut TNode {
        match self.nodes.get_mut(i as usize) {
            Some(n) => n,
            None => &mut self.sink,
        }
    }
}

/// glibc's `preorder`: parent-pointer walk, `f` runs before the children (and may
/// replace them).
pub(super) fn preorder<F>(tree: &mut Tree, root: u32, mut f: F) -> Result<(), Error>
where
    F: FnMut(&mut Tree, u32) -> Result<(), Error>,
{
    let mut node = root;
    loop {
        f(tree, node)?;
        if tree.n(node).left != NIL {
            node = tree.n(node).left;
        } else {
            let mut prev = NIL;
            while tree.n(node).right == prev || tree.n(node).right == NIL {
                prev = node;
                node = tree.n(node).parent;
                if node == NIL {
                    return Ok(());
                }
            }
            node = tree.n(node).right;
        }
    }
}

/// glibc's `postorder`: parent-pointer walk, `f` runs after the children.
pub(super) fn postorder<F>(tree: &mut Tree, root: u32, mut f: F) -> Result<(), Error>
where
    F: FnMut(&mut Tree, u32) -> Result<(), Error>,
{
    let mut node = root;
    loop {
        loop {
            let n = tree.n(node);
            if n.left != NIL {
                node = n.left;
            } else if n.right != NIL {
                node = n.right;
            } else {
                break;
            }
        }
        loop {
            f(tree, node)?;
            let parent = tree.n(node).parent;
            if parent == NIL {
                return Ok(());
            }
            let prev = node;
            node = parent;
            let right = tree.n(node).right;
            if !(right == prev || right == NIL) {
                break;
            }
        }
        node = tree.n(node).right;
    }
}
