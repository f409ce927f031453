//! [`DomainSet`]: one or more domain lists compiled for look-ups whose cost
//! does not depend on their size.
//!
//! Every distinct name of every list is stored once, in one byte arena, as
//! `[length: u8][name][combination: u32 LE]`; a `hashbrown` table holds only
//! the 4-byte offsets of those records and finds one by hashing the name and
//! comparing the bytes in the arena (so a hash collision can never produce a
//! false match). The hash is foldhash, seeded by the caller
//! ([`DomainSet::build_seeded`]): names in a list come from outside, and with
//! an unknown seed nobody can prepare names that all collide (which would
//! make building quadratic and look-ups slow). The combination says which lists have the name as an exact
//! entry and which as a wildcard; the few distinct combinations are interned.
//!
//! A query `a.b.example.com` costs one look-up per label: the name itself
//! (exact entries) and each parent suffix `b.example.com`, `example.com`,
//! `com` (wildcard entries). A name has at most 127 labels; typical names
//! have 2 to 4.

use std::hash::Hasher;

use foldhash::fast::FoldHasher;
use foldhash::SharedSeed;
use hashbrown::HashTable;
use rustc_hash::FxHashMap;

use crate::list::{DomainList, EntryKind};
use crate::name::{suffixes, DomainName};

/// Which lists hold a name, exactly and as a wildcard (sorted list indices).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Combo {
    pub(crate) exact: Box<[u32]>,
    pub(crate) subdomains: Box<[u32]>,
}

/// How a name matched a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListMatch<'a> {
    /// The list's position in the slice the set was built from.
    pub list: usize,
    /// The list's key that matched: the name itself for an exact entry, the
    /// parent suffix for a wildcard (`*.` + key is the entry).
    pub key: &'a str,
    pub kind: EntryKind,
}

/// Domain lists compiled for suffix look-ups. Immutable once built.
#[derive(Debug, Clone)]
pub struct DomainSet {
    arena: Vec<u8>,
    table: HashTable<u32>,
    combos: Vec<Combo>,
    seed: Seed,
}

/// The hash's keys.
#[derive(Debug, Clone)]
struct Seed {
    per_table: u64,
    shared: SharedSeed,
}

impl Seed {
    fn new(seed: u64) -> Seed {
        Seed {
            per_table: seed,
            shared: SharedSeed::from_u64(seed.rotate_left(32) ^ 0x5741_5244_494e_4554),
        }
    }

    fn hash(&self, name: &[u8]) -> u64 {
        let mut h = FoldHasher::with_seed(self.per_table, &self.shared);
        h.write(name);
        h.finish()
    }
}

/// The arena's record at `offset`: (name, combination).
fn record(arena: &[u8], offset: u32) -> (&[u8], u32) {
    let o = offset as usize;
    let len = arena[o] as usize;
    let name = &arena[o + 1..o + 1 + len];
    let c = &arena[o + 1 + len..o + 5 + len];
    (name, u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

impl DomainSet {
    /// Compile `lists` with a fixed hash seed; a list is named by its
    /// position in the slice. For lists from untrusted sources prefer
    /// [`DomainSet::build_seeded`] with a secret random seed.
    pub fn build(lists: &[&DomainList]) -> DomainSet {
        DomainSet::build_seeded(lists, 0)
    }

    /// Compile `lists`, keying the hash with `seed`. The seed changes the
    /// layout, never an answer.
    pub fn build_seeded(lists: &[&DomainList], seed: u64) -> DomainSet {
        let mut builder = Builder::new(lists, Seed::new(seed));
        for (i, list) in lists.iter().enumerate() {
            for entry in list.entries() {
                builder.add(entry.name, i as u32, entry.kind);
            }
        }
        builder.finish()
    }

    /// The number of distinct names (a name both exact and wildcard counts once).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Bytes of heap the set holds: the arena, the table and the combinations.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.table.allocation_size()
            + self.combos.capacity() * std::mem::size_of::<Combo>()
            + self
                .combos
                .iter()
                .map(|c| (c.exact.len() + c.subdomains.len()) * 4)
                .sum::<usize>()
    }

    fn find(&self, key: &str) -> Option<&Combo> {
        let key = key.as_bytes();
        let offset = self
            .table
            .find(self.seed.hash(key), |&o| record(&self.arena, o).0 == key)?;
        self.combos.get(record(&self.arena, *offset).1 as usize)
    }

    /// Call `f` with every (list, kind) that matches `name`, for the name
    /// itself first, then its parents from the longest. A list can be
    /// reported more than once (exactly and through a wildcard).
    pub(crate) fn for_each_match<'n>(&self, name: &'n str, mut f: impl FnMut(u32, EntryKind, &'n str)) {
        for (depth, suffix) in suffixes(name).enumerate() {
            let Some(combo) = self.find(suffix) else {
                continue;
            };
            if depth == 0 {
                combo.exact.iter().for_each(|&l| f(l, EntryKind::Exact, suffix));
            } else {
                combo
                    .subdomains
                    .iter()
                    .for_each(|&l| f(l, EntryKind::Subdomains, suffix));
            }
        }
    }

    /// Every way `name` matches the lists.
    pub fn matches<'n>(&self, name: &'n DomainName) -> Vec<ListMatch<'n>> {
        let mut out = Vec::new();
        self.for_each_match(name.as_str(), |list, kind, key| {
            out.push(ListMatch {
                list: list as usize,
                key,
                kind,
            })
        });
        out
    }

    /// Whether any list matches `name`.
    pub fn contains(&self, name: &DomainName) -> bool {
        suffixes(name.as_str()).enumerate().any(|(depth, suffix)| {
            self.find(suffix).is_some_and(|c| {
                if depth == 0 {
                    !c.exact.is_empty()
                } else {
                    !c.subdomains.is_empty()
                }
            })
        })
    }
}

struct Builder {
    seed: Seed,
    arena: Vec<u8>,
    table: HashTable<u32>,
    combos: Vec<Combo>,
    interned: FxHashMap<Combo, u32>,
    /// (combination, list, exact?) -> combination with that list added.
    transitions: FxHashMap<(u32, u32, bool), u32>,
}

impl Builder {
    fn new(lists: &[&DomainList], seed: Seed) -> Builder {
        // Distinct names, roughly: an adblock rule writes the same name twice
        // in a row (exact, then wildcard); count it once.
        let mut names = 0usize;
        let mut bytes = 0usize;
        for list in lists {
            let mut previous: Option<&str> = None;
            for entry in list.entries() {
                if previous != Some(entry.name) {
                    names += 1;
                    bytes += entry.name.len() + 5;
                }
                previous = Some(entry.name);
            }
        }
        let empty = Combo::default();
        let mut interned = FxHashMap::default();
        interned.insert(empty.clone(), 0);
        Builder {
            seed,
            arena: Vec::with_capacity(bytes),
            table: HashTable::with_capacity(names),
            combos: vec![empty],
            interned,
            transitions: FxHashMap::default(),
        }
    }

    fn add(&mut self, name: &str, list: u32, kind: EntryKind) {
        let exact = kind == EntryKind::Exact;
        let key = name.as_bytes();
        // Names in a DomainList are normalised: at most 253 bytes.
        let Ok(len) = u8::try_from(key.len()) else {
            return;
        };
        let h = self.seed.hash(key);
        let arena = &self.arena;
        if let Some(&offset) = self.table.find(h, |&o| record(arena, o).0 == key) {
            let (_, combo) = record(&self.arena, offset);
            let next = self.transition(combo, list, exact);
            let at = offset as usize + 1 + key.len();
            self.arena[at..at + 4].copy_from_slice(&next.to_le_bytes());
            return;
        }
        // Offsets are u32: past 4 GiB of names, further names are dropped.
        let Ok(offset) = u32::try_from(self.arena.len()) else {
            return;
        };
        let combo = self.transition(0, list, exact);
        self.arena.push(len);
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(&combo.to_le_bytes());
        let (arena, seed) = (&self.arena, &self.seed);
        self.table.insert_unique(h, offset, |&o| seed.hash(record(arena, o).0));
    }

    fn transition(&mut self, from: u32, list: u32, exact: bool) -> u32 {
        if let Some(&to) = self.transitions.get(&(from, list, exact)) {
            return to;
        }
        let mut combo = self.combos[from as usize].clone();
        let side = if exact { &mut combo.exact } else { &mut combo.subdomains };
        if let Err(at) = side.binary_search(&list) {
            let mut v = side.to_vec();
            v.insert(at, list);
            *side = v.into_boxed_slice();
        }
        let to = match self.interned.get(&combo) {
            Some(&id) => id,
            None => {
                let id = self.combos.len() as u32;
                self.combos.push(combo.clone());
                self.interned.insert(combo, id);
                id
            }
        };
        self.transitions.insert((from, list, exact), to);
        to
    }

    fn finish(mut self) -> DomainSet {
        self.arena.shrink_to_fit();
        self.combos.shrink_to_fit();
        DomainSet {
            arena: self.arena,
            table: self.table,
            combos: self.combos,
            seed: self.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::list::{parse_list, ListFormat};

    fn name(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    #[test]
    fn exact_wildcard_and_subtree() {
        let plain = parse_list(b"exact.example\n*.wild.example\n", Some(ListFormat::Plain)).list;
        let adblock = parse_list(b"||tree.example^\n||exact.example^\n", Some(ListFormat::Adblock)).list;
        let set = DomainSet::build(&[&plain, &adblock]);
        assert_eq!(set.len(), 3);
        let lists = |s: &str| {
            let n = name(s);
            let mut v: Vec<(usize, EntryKind)> = set.matches(&n).iter().map(|m| (m.list, m.kind)).collect();
            v.sort_by_key(|(l, k)| (*l, *k == EntryKind::Exact));
            v
        };
        assert_eq!(lists("exact.example"), [(0, EntryKind::Exact), (1, EntryKind::Exact)]);
        assert_eq!(lists("a.exact.example"), [(1, EntryKind::Subdomains)]);
        assert_eq!(lists("wild.example"), []);
        assert_eq!(lists("a.b.wild.example"), [(0, EntryKind::Subdomains)]);
        assert_eq!(lists("tree.example"), [(1, EntryKind::Exact)]);
        assert_eq!(lists("x.tree.example"), [(1, EntryKind::Subdomains)]);
        assert_eq!(lists("other.example"), []);
        assert!(set.contains(&name("deep.a.b.c.wild.example")));
        assert!(!set.contains(&name("example")));
        let deep = name("x.y.wild.example");
        let m = set.matches(&deep);
        assert_eq!(m[0].key, "wild.example");
    }

    #[test]
    fn empty_set() {
        let set = DomainSet::build(&[]);
        assert!(set.is_empty());
        assert!(!set.contains(&name("a.example")));
    }
}
