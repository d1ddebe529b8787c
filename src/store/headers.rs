//! What `read_header` has learnt: the final type of pack entries whose delta chains were walked,
//! and the final size of the entries a header was asked for.
//!
//! A header of a deltified object costs a walk down its chain to learn the type (one entry
//! header per link, each a cache miss in a large pack) and an inflate of the delta's first
//! bytes to learn the size. Every entry of a chain has the type of its root, so one walk
//! teaches the type of all of them: remembering it turns the next walk through that chain into a
//! single lookup. Remembering the size too makes a repeated header a lookup and nothing else.
//!
//! Bounded: the memo's share of the store's cache budget (see [`HeaderMemo::new`]) is divided
//! among shards, and a shard that reaches its share is emptied, which costs only re-learning.
//! Keys are (pack number, offset), as in the delta-base cache; pack numbers are never reused,
//! so an entry can never describe another pack's bytes.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use parking_lot::Mutex;

use crate::format::pack::ObjectKind;

use super::cache::{CacheKey, KeyHasher, SHARDS, shard_of};

/// What one remembered entry costs: the key, the value and the hash table's control byte, with
/// the slack of its growth (its buckets are between 7/16 and 7/8 full).
pub const ENTRY_COST: usize = 64;

/// Size bits of a packed value: sizes are below 2^61 (the store's maximum object size is far
/// smaller), the three bits above hold the type.
const SIZE_BITS: u32 = 61;
const UNKNOWN_SIZE: u64 = (1 << SIZE_BITS) - 1;

/// A type and maybe a size in one word, so that an entry is 24 bytes.
#[derive(Clone, Copy)]
struct Packed(u64);

impl Packed {
    fn new(kind: ObjectKind, size: Option<u64>) -> Packed {
        let size = size
            .filter(|&size| size < UNKNOWN_SIZE)
            .unwrap_or(UNKNOWN_SIZE);
        Packed((kind as u64) << SIZE_BITS | size)
    }

    fn kind(self) -> ObjectKind {
        // Only `new` makes values, from an `ObjectKind`.
        ObjectKind::from_type_bits((self.0 >> SIZE_BITS) as u8).unwrap_or(ObjectKind::Blob)
    }

    fn size(self) -> Option<u64> {
        Some(self.0 & UNKNOWN_SIZE).filter(|&size| size != UNKNOWN_SIZE)
    }
}

type Shard = HashMap<CacheKey, Packed, BuildHasherDefault<KeyHasher>>;

/// The store-wide memo of entry types and sizes.
pub struct HeaderMemo {
    shards: Box<[Mutex<Shard>]>,
    entries_per_shard: usize,
}

impl std::fmt::Debug for HeaderMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderMemo")
            .field("entries_per_shard", &self.entries_per_shard)
            .finish_non_exhaustive()
    }
}

impl HeaderMemo {
    /// A memo that uses at most about `budget` bytes (0 disables it).
    pub fn new(budget: usize) -> HeaderMemo {
        HeaderMemo {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            entries_per_shard: budget / ENTRY_COST / SHARDS,
        }
    }

    /// The type of the entry at `key`, and its size if a header was asked of it.
    pub fn get(&self, key: &CacheKey) -> Option<(ObjectKind, Option<u64>)> {
        if self.entries_per_shard == 0 {
            return None;
        }
        let packed = *self.shards[shard_of(key)].lock().get(key)?;
        Some((packed.kind(), packed.size()))
    }

    /// Remembers the type of the entry at `key`, and its size when known; a known size is never
    /// forgotten by a later call that does not know it.
    pub fn remember(&self, key: CacheKey, kind: ObjectKind, size: Option<u64>) {
        if self.entries_per_shard == 0 {
            return;
        }
        let mut shard = self.shards[shard_of(&key)].lock();
        if shard.len() >= self.entries_per_shard && !shard.contains_key(&key) {
            // Emptying is the cheapest bound: this memo only saves work, nothing depends on it.
            shard.clear();
        }
        let entry = shard.entry(key).or_insert(Packed::new(kind, None));
        if size.is_some() {
            *entry = Packed::new(kind, size);
        }
    }

    /// Drops every entry of one pack (when the pack leaves the store).
    pub fn forget_pack(&self, pack: u64) {
        for shard in self.shards.iter() {
            shard.lock().retain(|key, _| key.0 != pack);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_types_and_sizes_within_its_bound() {
        let memo = HeaderMemo::new(SHARDS * ENTRY_COST * 4);
        memo.remember((1, 10), ObjectKind::Tree, None);
        assert_eq!(memo.get(&(1, 10)), Some((ObjectKind::Tree, None)));
        memo.remember((1, 10), ObjectKind::Tree, Some(1234));
        // A later walk through the entry knows only its type; the size stays.
        memo.remember((1, 10), ObjectKind::Tree, None);
        assert_eq!(memo.get(&(1, 10)), Some((ObjectKind::Tree, Some(1234))));
        memo.remember((2, 0), ObjectKind::Tag, Some(0));
        assert_eq!(memo.get(&(2, 0)), Some((ObjectKind::Tag, Some(0))));
        // Sizes too large to pack are not remembered, types are.
        memo.remember((2, 1), ObjectKind::Blob, Some(u64::MAX));
        assert_eq!(memo.get(&(2, 1)), Some((ObjectKind::Blob, None)));
        memo.forget_pack(2);
        assert_eq!(memo.get(&(2, 0)), None);
        assert!(memo.get(&(1, 10)).is_some());

        // Four entries a shard: many more keys never grow a shard past that.
        for offset in 0..1000 {
            memo.remember((3, offset), ObjectKind::Blob, Some(offset));
        }
        for shard in memo.shards.iter() {
            assert!(shard.lock().len() <= 4);
        }
        assert_eq!(
            memo.get(&(3, 999)),
            Some((ObjectKind::Blob, Some(999))),
            "the newest entry is kept"
        );
        assert_eq!(HeaderMemo::new(0).get(&(3, 999)), None);
    }
}
