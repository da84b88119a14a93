//! The append-only Poseidon Merkle tree of notes, in the LeanIMT shape the pool contract
//! keeps on chain (`@zk-kit/lean-imt.sol`), see `docs/PROTOCOL.md §3`.
//!
//! Shape: a node is `H(left, right)`; a node without a right sibling is carried up
//! unchanged instead of being hashed with a zero; the depth grows with the number of
//! leaves. On chain this costs about one hash per deposit instead of `depth` hashes,
//! which is what keeps a deposit under 250k gas. The circuit proves membership with one
//! "has a sibling" flag per level, so it stays fixed-size (20 levels by default).
//!
//! This type keeps every node (about two per leaf), so an append touches one node per
//! level, a path reads one sibling per level, and a saved tree reloads without hashing.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::Fr;
use crate::field;
use crate::poseidon::hash_node;

/// The most levels a LeanIMT may have (the Solidity library's own limit).
pub const MAX_DEPTH: usize = 32;

const FILE_MAGIC: &[u8; 4] = b"ZKCT";
const FILE_VERSION: u8 = 1;

/// Errors from the tree and its persisted form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TreeError {
    /// The tree already holds `2^max_depth` leaves.
    #[error("the tree is full ({0} levels)")]
    Full(usize),
    /// The pool never inserts a zero leaf, so neither do we.
    #[error("a leaf of zero is not allowed")]
    ZeroLeaf,
    /// A path was asked for a leaf the tree does not hold.
    #[error("leaf index {index} is out of range (the tree has {len} leaves)")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The number of leaves.
        len: u64,
    },
    /// A saved tree is damaged: wrong header, length or checksum; resync from the chain.
    #[error("the saved tree is corrupt ({0}); delete it and resync from the chain")]
    Corrupt(&'static str),
}

/// A root of the note tree: what a request or a close proves membership under, what the
/// pool commits and answers `isKnownRoot` for, what a gateway keeps a window of, and what
/// a client caches its proving work under. It crosses every crate and the wire, so it has
/// a type of its own rather than travelling as an `Fr`, 32 bytes, a `U256` or a hex
/// string by turns, and cannot be mistaken for another field element (a leaf, a
/// nullifier) of the same shape.
///
/// The empty tree's root is zero, as the contract reports it. Its text form is `0x`
/// followed by 64 lowercase hex digits ([`fmt::Display`]), and that is the only form
/// [`FromStr`] accepts (either case).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Root(Fr);

impl Root {
    /// The root whose field element is `r` (read from a proof's public inputs or from
    /// the pool).
    pub const fn from_field(r: Fr) -> Self {
        Self(r)
    }

    /// The field element, as the circuits and the contract take it.
    pub const fn field(&self) -> Fr {
        self.0
    }

    /// Big-endian bytes, as stored and as on the wire.
    pub fn to_bytes(&self) -> [u8; 32] {
        field::to_be_bytes(&self.0)
    }

    /// The root with these big-endian bytes, if they are a canonical field element.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        field::from_be_bytes_canonical(bytes).map(Self)
    }
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&field::to_hex(&self.0))
    }
}

/// A text that is not a root's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a tree root is 0x followed by 64 hex digits of a field element")]
pub struct RootSyntaxError;

impl FromStr for Root {
    type Err = RootSyntaxError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        field::from_strict_hex(text)
            .map(Self)
            .ok_or(RootSyntaxError)
    }
}

/// An append-only LeanIMT with every node kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeanImt {
    /// `levels[0]` are the leaves; `levels[l + 1][j]` is the parent of `levels[l][2j]`
    /// and `levels[l][2j + 1]`; the last level holds the root alone.
    levels: Vec<Vec<Fr>>,
}

/// A membership path: for each level from the leaves up, the sibling, or `None` where
/// the node had no sibling and was carried up unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerklePath {
    /// The leaf's position in the tree.
    pub leaf_index: u64,
    /// One entry per level of the tree at the time the path was taken.
    pub siblings: Vec<Option<Fr>>,
}

impl MerklePath {
    /// The root this path leads to from `leaf`.
    pub fn root_from(&self, leaf: Fr) -> Root {
        let mut node = leaf;
        for (level, sibling) in self.siblings.iter().enumerate() {
            if let Some(sibling) = sibling {
                node = if self.is_right(level) {
                    hash_node(*sibling, node)
                } else {
                    hash_node(node, *sibling)
                };
            }
        }
        Root(node)
    }

    /// Whether the node at `level` on the path is a right child.
    pub fn is_right(&self, level: usize) -> bool {
        level < 64 && (self.leaf_index >> level) & 1 == 1
    }
}

impl LeanImt {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of levels above the leaves (0 for zero or one leaf).
    pub fn depth(&self) -> usize {
        self.levels.len().saturating_sub(1)
    }

    /// The root, or zero for the empty tree (as the contract reports it).
    pub fn root(&self) -> Root {
        Root(
            self.levels
                .last()
                .and_then(|top| top.first().copied())
                .unwrap_or_default(),
        )
    }

    /// The root the tree had when it held only its first `len` leaves (zero for none),
    /// from the nodes kept: a node whose leaves all lie in that prefix is the same in both
    /// trees, so only the prefix's right edge is recomputed, at most one hash per level.
    pub fn root_at(&self, len: u64) -> Result<Root, TreeError> {
        let leaves = self.len();
        if len > leaves {
            return Err(TreeError::IndexOutOfRange {
                index: len,
                len: leaves,
            });
        }
        if len == leaves {
            return Ok(self.root());
        }
        if len == 0 {
            return Ok(Root::default());
        }
        // `count` nodes of the prefix tree at `level`; `node` is the last of them, the
        // only one that may differ from the full tree's node at its position.
        let mut count = len as usize;
        let mut node = self.levels[0][count - 1];
        let mut level = 0;
        while count > 1 {
            let last = count - 1;
            if last & 1 == 1 {
                node = hash_node(self.levels[level][last - 1], node);
            }
            count = count.div_ceil(2);
            level += 1;
        }
        Ok(Root(node))
    }

    /// The leaf at `index`, if present.
    pub fn leaf(&self, index: u64) -> Option<Fr> {
        self.levels
            .first()?
            .get(usize::try_from(index).ok()?)
            .copied()
    }

    /// Appends a leaf, updating one node per level. Returns the leaf's index.
    pub fn push(&mut self, leaf: Fr) -> Result<u64, TreeError> {
        if leaf == Fr::from(0u64) {
            return Err(TreeError::ZeroLeaf);
        }
        let index = self.len();
        if index >= 1u64 << MAX_DEPTH {
            return Err(TreeError::Full(MAX_DEPTH));
        }
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let mut node = leaf;
        let mut idx = index as usize;
        let mut level = 0;
        while self.levels[level].len() > 1 {
            // The new node is the last of its level: it has a left sibling when its
            // index is odd, and no right sibling ever.
            let parent = if idx & 1 == 1 {
                hash_node(self.levels[level][idx - 1], node)
            } else {
                node
            };
            if level + 1 == self.levels.len() {
                self.levels.push(Vec::new());
            }
            let up = &mut self.levels[level + 1];
            let parent_idx = idx >> 1;
            if parent_idx < up.len() {
                up[parent_idx] = parent;
            } else {
                up.push(parent);
            }
            node = parent;
            idx = parent_idx;
            level += 1;
        }
        Ok(index)
    }

    /// Appends `leaves` in order, as that many [`LeanImt::push`] calls would, but level by
    /// level: each new or changed node is hashed once, about `leaves.len() + depth` hashes
    /// in all, where pushing one at a time rehashes the right edge for every leaf (about
    /// half the depth per leaf: 8 times more for a 100,000-leaf sync). Large levels are
    /// hashed on rayon's threads. Returns the index of the first appended leaf.
    ///
    /// Unlike a run of pushes, a zero leaf or an overflow anywhere in `leaves` is refused
    /// before the tree changes.
    pub fn extend(&mut self, leaves: &[Fr]) -> Result<u64, TreeError> {
        let first = self.len();
        if leaves.is_empty() {
            return Ok(first);
        }
        if leaves.iter().any(|l| *l == Fr::from(0u64)) {
            return Err(TreeError::ZeroLeaf);
        }
        let total = u64::try_from(leaves.len())
            .ok()
            .and_then(|n| first.checked_add(n))
            .filter(|t| *t <= 1u64 << MAX_DEPTH)
            .ok_or(TreeError::Full(MAX_DEPTH))?;
        debug_assert!(total > first);
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].extend_from_slice(leaves);
        // `start` is the first node of `level` that is new or changed: every parent from
        // `start / 2` on is recomputed; the ones before it cover unchanged nodes only.
        let mut start = first as usize;
        let mut level = 0;
        while self.levels[level].len() > 1 {
            if level + 1 == self.levels.len() {
                self.levels.push(Vec::new());
            }
            let (below, above) = self.levels.split_at_mut(level + 1);
            let (nodes, up) = (&below[level], &mut above[0]);
            let from = start / 2;
            up.truncate(from);
            up.resize(nodes.len().div_ceil(2), Fr::from(0u64));
            parents(&nodes[2 * from..], &mut up[from..]);
            start = from;
            level += 1;
        }
        Ok(first)
    }

    /// Keeps the first `len` leaves and drops the rest, as if only they had been pushed
    /// (a chain reorg took the others back). Recomputes one node per level: the last one,
    /// which alone can depend on a dropped leaf.
    pub fn truncate(&mut self, len: u64) {
        if len >= self.len() {
            return;
        }
        let Ok(mut below) = usize::try_from(len) else {
            return;
        };
        if below == 0 {
            self.levels.clear();
            return;
        }
        self.levels[0].truncate(below);
        let mut level = 0;
        while below > 1 {
            let parents = below.div_ceil(2);
            let last = if below % 2 == 0 {
                hash_node(self.levels[level][below - 2], self.levels[level][below - 1])
            } else {
                self.levels[level][below - 1]
            };
            let up = &mut self.levels[level + 1];
            up.truncate(parents);
            up[parents - 1] = last;
            below = parents;
            level += 1;
        }
        self.levels.truncate(level + 1);
    }

    /// The membership path of the leaf at `index` against the current root.
    pub fn path(&self, index: u64) -> Result<MerklePath, TreeError> {
        let len = self.len();
        if index >= len {
            return Err(TreeError::IndexOutOfRange { index, len });
        }
        let mut idx = index as usize;
        let siblings = self.levels[..self.depth()]
            .iter()
            .map(|nodes| {
                let sibling = if idx & 1 == 1 {
                    Some(nodes[idx - 1])
                } else {
                    nodes.get(idx + 1).copied()
                };
                idx >>= 1;
                sibling
            })
            .collect();
        Ok(MerklePath {
            leaf_index: index,
            siblings,
        })
    }

    /// Serialises every node, with a checksum, so that loading costs no hashing.
    pub fn to_bytes(&self) -> Vec<u8> {
        let nodes: usize = self.levels.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(4 + 1 + 8 + nodes * 32 + 32);
        out.extend_from_slice(FILE_MAGIC);
        out.push(FILE_VERSION);
        out.extend_from_slice(&self.len().to_be_bytes());
        for node in self.levels.iter().flatten() {
            out.extend_from_slice(&field::to_be_bytes(node));
        }
        let checksum = Sha256::digest(&out);
        out.extend_from_slice(&checksum);
        out
    }

    /// Loads a tree written by [`LeanImt::to_bytes`], checking its header, its length
    /// and its checksum, and that every node is a canonical field element.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TreeError> {
        const HEADER: usize = 4 + 1 + 8;
        if bytes.len() < HEADER + 32 {
            return Err(TreeError::Corrupt("too short"));
        }
        let (body, checksum) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != checksum {
            return Err(TreeError::Corrupt("checksum mismatch"));
        }
        if &body[..4] != FILE_MAGIC || body[4] != FILE_VERSION {
            return Err(TreeError::Corrupt("unknown header"));
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&body[5..HEADER]);
        let leaves = u64::from_be_bytes(len_bytes);
        if leaves > 1u64 << MAX_DEPTH {
            return Err(TreeError::Corrupt("leaf count"));
        }
        let mut sizes = Vec::new();
        let mut size = leaves as usize;
        if size > 0 {
            sizes.push(size);
            while size > 1 {
                size = size.div_ceil(2);
                sizes.push(size);
            }
        }
        let total: usize = sizes.iter().sum();
        let mut chunks = body[HEADER..].chunks_exact(32);
        if chunks.len() != total || !chunks.remainder().is_empty() {
            return Err(TreeError::Corrupt("node count"));
        }
        let mut levels = Vec::with_capacity(sizes.len());
        for size in sizes {
            let mut level = Vec::with_capacity(size);
            for chunk in chunks.by_ref().take(size) {
                let mut buf = [0u8; 32];
                buf.copy_from_slice(chunk);
                level.push(
                    field::from_be_bytes_canonical(&buf)
                        .ok_or(TreeError::Corrupt("non-canonical node"))?,
                );
            }
            levels.push(level);
        }
        Ok(Self { levels })
    }
}

/// Below this many parents a level is hashed on the calling thread: splitting costs more
/// than it saves (one hash is some microseconds).
const PARALLEL_PARENTS: usize = 1024;

/// `out[j] = H(nodes[2j], nodes[2j + 1])`, or `nodes[2j]` carried up when it has no right
/// sibling (only possible for the last one).
fn parents(nodes: &[Fr], out: &mut [Fr]) {
    debug_assert_eq!(out.len(), nodes.len().div_ceil(2));
    if out.len() >= PARALLEL_PARENTS {
        use rayon::prelude::*;
        // Chunks of whole pairs, so that each thread's slice of `out` matches its nodes.
        const CHUNK: usize = 256;
        nodes
            .par_chunks(2 * CHUNK)
            .zip(out.par_chunks_mut(CHUNK))
            .for_each(|(n, o)| parents(n, o));
        return;
    }
    for (pair, slot) in nodes.chunks(2).zip(out.iter_mut()) {
        *slot = match pair {
            [l, r] => hash_node(*l, *r),
            [only] => *only,
            _ => unreachable!("chunks of at most two, never empty"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaf(i: u64) -> Fr {
        Fr::from(i + 1) * Fr::from(0x1234_5678u64)
    }

    /// The tree recomputed from scratch, the slow obvious way, for comparison.
    fn naive_root(leaves: &[Fr]) -> Root {
        let mut level = leaves.to_vec();
        if level.is_empty() {
            return Root::default();
        }
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| match pair {
                    [l, r] => hash_node(*l, *r),
                    [only] => *only,
                    _ => unreachable!("chunks of two"),
                })
                .collect();
        }
        Root(level[0])
    }

    #[test]
    fn the_root_of_one_leaf_is_the_leaf() {
        let mut tree = LeanImt::new();
        assert_eq!(tree.root(), Root::from_field(Fr::from(0u64)));
        tree.push(leaf(0)).expect("push");
        assert_eq!(tree.root(), Root::from_field(leaf(0)));
        assert_eq!(tree.depth(), 0);
    }

    #[test]
    fn only_the_one_text_form_of_a_root_parses() {
        let mut tree = LeanImt::new();
        tree.extend(&[leaf(0), leaf(1), leaf(2)]).expect("extend");
        let r = tree.root().to_string();
        let digits = &r[2..];
        let modulus = "30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001";
        for bad in [
            digits.to_owned(),               // no 0x
            format!("0x{}", &digits[1..]),   // 63 digits
            format!("0x0{digits}"),          // 65 digits
            format!("0x{}g", &digits[..63]), // not hex
            format!("0x{modulus}"),          // not canonical
            format!(" {r}"),                 // whitespace
            String::new(),
        ] {
            assert_eq!(bad.parse::<Root>(), Err(RootSyntaxError), "{bad:?}");
        }
        let mut above = [0xffu8; 32];
        above[0] = 0x31;
        assert_eq!(Root::from_bytes(&above), None);
        // The empty tree's root, as the contract reports it.
        assert_eq!(Root::default().to_string(), format!("0x{}", "0".repeat(64)));
    }

    #[test]
    fn a_zero_leaf_is_refused() {
        assert_eq!(
            LeanImt::new().push(Fr::from(0u64)),
            Err(TreeError::ZeroLeaf)
        );
    }

    #[test]
    fn a_path_beyond_the_leaves_is_refused() {
        let mut tree = LeanImt::new();
        tree.push(leaf(0)).expect("push");
        assert_eq!(
            tree.path(1),
            Err(TreeError::IndexOutOfRange { index: 1, len: 1 })
        );
    }

    #[test]
    fn a_damaged_file_is_refused() {
        let mut tree = LeanImt::new();
        for i in 0..9 {
            tree.push(leaf(i)).expect("push");
        }
        let mut bytes = tree.to_bytes();
        bytes[20] ^= 1;
        assert_eq!(
            LeanImt::from_bytes(&bytes),
            Err(TreeError::Corrupt("checksum mismatch"))
        );
        assert_eq!(
            LeanImt::from_bytes(&bytes[..10]),
            Err(TreeError::Corrupt("too short"))
        );
    }

    #[test]
    fn a_bad_leaf_anywhere_in_an_extension_leaves_the_tree_as_it_was() {
        let mut tree = LeanImt::new();
        tree.extend(&[leaf(0), leaf(1), leaf(2)]).expect("extend");
        let before = tree.clone();
        assert_eq!(
            tree.extend(&[leaf(3), Fr::from(0u64), leaf(4)]),
            Err(TreeError::ZeroLeaf)
        );
        assert_eq!(tree, before);
        assert_eq!(tree.extend(&[]), Ok(3));
        assert_eq!(tree, before);
    }

    #[test]
    fn a_large_extension_hashed_on_several_threads_equals_pushing_one_by_one() {
        // 2,500 leaves at once make 1,250 parents on the first level: above
        // PARALLEL_PARENTS, so that level is split across threads.
        let leaves: Vec<Fr> = (0..4_100u64).map(leaf).collect();
        let mut pushed = LeanImt::new();
        for l in &leaves {
            pushed.push(*l).expect("push");
        }
        let mut extended = LeanImt::new();
        assert_eq!(extended.extend(&leaves[..3]), Ok(0));
        assert_eq!(extended.extend(&leaves[3..2_503]), Ok(3));
        assert_eq!(extended.extend(&leaves[2_503..]), Ok(2_503));
        assert_eq!(extended, pushed);
        assert_eq!(extended.root(), naive_root(&leaves));
        for i in [0u64, 1, 2, 3, 1_024, 2_502, 2_503, 4_095, 4_096, 4_099] {
            let path = extended.path(i).expect("in range");
            assert_eq!(path, pushed.path(i).expect("in range"));
            assert_eq!(path.root_from(leaves[i as usize]), extended.root());
        }
    }

    proptest! {
        #[test]
        fn a_root_round_trips_through_its_text_and_its_bytes(r in any::<[u8; 32]>()) {
            use ark_ff::PrimeField;
            let r = Root::from_field(Fr::from_le_bytes_mod_order(&r));
            let text = r.to_string();
            prop_assert_eq!(text.len(), 66);
            prop_assert_eq!(text.parse::<Root>(), Ok(r));
            prop_assert_eq!(text.to_uppercase().replacen("0X", "0x", 1).parse::<Root>(), Ok(r));
            prop_assert_eq!(Root::from_bytes(&r.to_bytes()), Some(r));
            prop_assert_eq!(Root::from_bytes(&r.to_bytes()).map(|r| r.field()), Some(r.field()));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn extending_in_any_chunks_gives_the_tree_and_paths_of_pushing_one_by_one(
            chunks in prop::collection::vec(0usize..40, 1..8),
        ) {
            let n: usize = chunks.iter().sum();
            let leaves: Vec<Fr> = (0..n as u64).map(leaf).collect();
            let mut pushed = LeanImt::new();
            let mut extended = LeanImt::new();
            let mut at = 0;
            for size in chunks {
                let chunk = &leaves[at..at + size];
                prop_assert_eq!(extended.extend(chunk), Ok(at as u64));
                for l in chunk {
                    pushed.push(*l).expect("push");
                }
                // The same tree after every chunk: every node, so every root and path.
                prop_assert_eq!(&extended, &pushed);
                at += size;
            }
            prop_assert_eq!(extended.root(), naive_root(&leaves));
            for (i, l) in leaves.iter().enumerate() {
                let path = extended.path(i as u64).expect("in range");
                prop_assert_eq!(&path, &pushed.path(i as u64).expect("in range"));
                prop_assert_eq!(path.root_from(*l), extended.root());
            }
        }

        #[test]
        fn appends_match_a_full_recomputation_and_every_path_leads_to_the_root(n in 1usize..70) {
            let mut tree = LeanImt::new();
            let leaves: Vec<Fr> = (0..n as u64).map(leaf).collect();
            for (i, l) in leaves.iter().enumerate() {
                prop_assert_eq!(tree.push(*l), Ok(i as u64));
                if i.is_power_of_two() || i + 1 == n {
                    prop_assert_eq!(tree.root(), naive_root(&leaves[..=i]));
                }
            }
            let expected_depth = (n as f64).log2().ceil() as usize;
            prop_assert_eq!(tree.depth(), expected_depth);
            for (i, l) in leaves.iter().enumerate() {
                let path = tree.path(i as u64).expect("in range");
                prop_assert_eq!(path.root_from(*l), tree.root());
                prop_assert_ne!(path.root_from(*l + Fr::from(1u64)), tree.root());
            }
            let reloaded = LeanImt::from_bytes(&tree.to_bytes()).expect("reload");
            prop_assert_eq!(reloaded, tree);
        }

        #[test]
        fn the_root_at_a_prefix_is_the_root_of_that_prefix_alone(n in 0usize..70) {
            let leaves: Vec<Fr> = (0..n as u64).map(leaf).collect();
            let mut tree = LeanImt::new();
            tree.extend(&leaves).expect("extend");
            for m in 0..=n {
                prop_assert_eq!(tree.root_at(m as u64), Ok(naive_root(&leaves[..m])));
            }
            prop_assert_eq!(
                tree.root_at(n as u64 + 1),
                Err(TreeError::IndexOutOfRange { index: n as u64 + 1, len: n as u64 })
            );
        }

        #[test]
        fn a_truncated_tree_is_the_tree_of_its_prefix(n in 1usize..70, keep in 0usize..70) {
            let leaves: Vec<Fr> = (0..n as u64).map(leaf).collect();
            let mut tree = LeanImt::new();
            for l in &leaves {
                tree.push(*l).expect("push");
            }
            tree.truncate(keep as u64);
            let mut prefix = LeanImt::new();
            for l in &leaves[..keep.min(n)] {
                prefix.push(*l).expect("push");
            }
            prop_assert_eq!(&tree, &prefix);
            // And it grows on as if it had never held the dropped leaves.
            tree.push(leaf(1000)).expect("push");
            prefix.push(leaf(1000)).expect("push");
            prop_assert_eq!(tree, prefix);
        }
    }
}
