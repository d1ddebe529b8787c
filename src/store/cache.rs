//! The shared delta-base cache: decoded objects that delta chains are built on, keyed by
//! (pack, offset), bounded in bytes, evicting entries one at a time by CLOCK (second chance): an
//! LRU approximation whose hits write nothing but a bit in the entry they read.
//!
//! libgit2 keeps 16 MiB per pack, never caches bases over 1 MiB and drops *everything* when full;
//! this cache is one budget for the whole store, takes big bases too (up to half the budget, see
//! [`DeltaBaseCache::insert`]), and evicts only as much as it must.
//!
//! What goes in is decided by the decoder (`decode.rs`): chain roots and the intermediate results
//! at every second depth; the object a read asked for is looked up here first, so a cached base
//! is served by a copy, as in libgit2.
//!
//! It is sharded so that threads reading different objects rarely meet on a lock: a shard is a
//! hash table with the entries inline and a ring of its keys for the clock hand. The byte total
//! is global; an insert that pushes it over budget evicts from its own shard first, then from the
//! others.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::format::pack::ObjectKind;

/// Shards of the tables keyed by [`CacheKey`] (this cache and the header memo).
pub(super) const SHARDS: usize = 16;

/// Memory an entry costs beyond its object bytes, charged to the budget so that the budget
/// bounds memory rather than payload: the `Arc`'s counts and its allocation's rounding, the
/// hash-table bucket and the ring slot, with the slack of both tables' growth (under 160 bytes
/// on 64-bit; objects average ~2 KiB).
const ENTRY_OVERHEAD: usize = 160;

/// What an object of `len` bytes costs the budget.
fn charge(len: usize) -> usize {
    len.saturating_add(ENTRY_OVERHEAD)
}

/// Identifies an entry: the store-unique pack number and the entry's offset in that pack.
pub type CacheKey = (u64, u64);

/// Keys are two integers from our own numbering, not attacker-chosen strings: a multiply-mix is
/// enough and costs a fraction of SipHash on every chain step.
#[derive(Default)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(26) ^ value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The shard of a key, for the sharded tables keyed by [`CacheKey`].
pub(super) fn shard_of(key: &CacheKey) -> usize {
    // Offsets are spread well; mixing in the pack number keeps two packs' early entries apart.
    let mixed = key.1 ^ key.0.rotate_left(29);
    (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % SHARDS
}

/// A cached, fully decoded object.
#[derive(Clone, Debug)]
pub struct CachedObject {
    /// Its type.
    pub kind: ObjectKind,
    /// Its bytes, in one allocation with their reference count: a hit's clone and the copy
    /// that follows touch the same first cache line. Built by [`DeltaBaseCache::new_entry`].
    pub data: Arc<[u8]>,
    /// How many deltas lie between it and the whole object at the root of its chain (0 for the
    /// root itself): decides which results of later chains through it are worth keeping.
    pub depth: u32,
}

/// An entry and its second-chance bit.
struct Slot {
    value: CachedObject,
    /// Set by a hit, cleared when the clock hand passes: an entry is evicted only if it was not
    /// used since the hand last passed it.
    referenced: bool,
}

/// One lock's worth of the cache: a CLOCK (second-chance) cache. A hit only sets a bit in the
/// entry it already reads, where an LRU list would relink three other nodes — on a table far
/// larger than the CPU caches, each of those is a cache miss on every hit.
#[derive(Default)]
struct Shard {
    /// Entries inline in the table: a lookup touches the control bytes and the bucket.
    map: HashMap<CacheKey, Slot, BuildHasherDefault<KeyHasher>>,
    /// Every key of `map` once, in insertion order; the front is under the clock hand.
    ring: VecDeque<CacheKey>,
    bytes: usize,
}

impl Shard {
    fn get(&mut self, key: &CacheKey) -> Option<CachedObject> {
        let slot = self.map.get_mut(key)?;
        slot.referenced = true;
        Some(slot.value.clone())
    }

    /// Inserts; returns the bytes added (0 when the key was already present).
    fn insert(&mut self, key: CacheKey, value: CachedObject) -> usize {
        if self.map.contains_key(&key) {
            return 0;
        }
        let size = charge(value.data.len());
        self.map.insert(
            key,
            Slot {
                value,
                referenced: false,
            },
        );
        self.ring.push_back(key);
        self.bytes += size;
        size
    }

    /// Evicts the first entry under the clock hand not used since the hand last passed it;
    /// returns its size, or `None` when empty.
    fn evict_one(&mut self) -> Option<usize> {
        while let Some(key) = self.ring.pop_front() {
            let Some(slot) = self.map.get_mut(&key) else {
                continue;
            };
            if slot.referenced {
                slot.referenced = false;
                self.ring.push_back(key);
                continue;
            }
            let size = charge(slot.value.data.len());
            self.map.remove(&key);
            self.bytes -= size;
            return Some(size);
        }
        None
    }
}

/// The store-wide cache of delta bases.
pub struct DeltaBaseCache {
    shards: Box<[Mutex<Shard>]>,
    budget: usize,
    total: AtomicUsize,
    /// The key of the last lookup that hit, so tests can tell which entry served a read.
    #[cfg(test)]
    pub(crate) last_hit: Mutex<Option<CacheKey>>,
}

impl std::fmt::Debug for DeltaBaseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaBaseCache")
            .field("budget", &self.budget)
            .field("total", &self.total.load(Ordering::Relaxed))
            .finish()
    }
}

impl DeltaBaseCache {
    /// A cache holding at most `budget` bytes of object data (0 disables it).
    pub fn new(budget: usize) -> DeltaBaseCache {
        DeltaBaseCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            budget,
            total: AtomicUsize::new(0),
            #[cfg(test)]
            last_hit: Mutex::new(None),
        }
    }

    /// Bytes charged to the budget: object bytes plus a fixed per-entry overhead.
    pub fn bytes(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Looks an entry up and marks it most recently used.
    pub fn get(&self, key: &CacheKey) -> Option<CachedObject> {
        if self.budget == 0 || self.total.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let found = self.shards[shard_of(key)].lock().get(key);
        #[cfg(test)]
        if found.is_some() {
            *self.last_hit.lock() = Some(*key);
        }
        found
    }

    /// Whether an object of `len` bytes may be cached: not when caching is off, nor when it is
    /// larger than half the budget (one huge base would otherwise flush everything else for a
    /// single use). The decoder asks before building an entry, so an entry's allocation is never
    /// larger than half the budget the user configured.
    fn admits(&self, len: usize) -> bool {
        charge(len) <= self.budget / 2
    }

    /// A zeroed entry of `len` bytes for the decoder to write the object into, or `None` when
    /// the cache would refuse it (see `admits`). Infallible allocation, like any `Arc`,
    /// which `admits` bounds: a size from a hostile pack is checked before it is allocated.
    pub fn new_entry(&self, len: usize) -> Option<Arc<[u8]>> {
        self.admits(len)
            .then(|| std::iter::repeat_n(0u8, len).collect())
    }

    /// Inserts an entry, unless the cache does not admit its size (`admits`). Room is made
    /// first by evicting entries not used since the clock hand last passed them, from the entry's
    /// own shard and then from the others, so the total never exceeds the budget and the new
    /// entry is never its own victim.
    pub fn insert(&self, key: CacheKey, value: CachedObject) {
        if !self.admits(value.data.len()) {
            return;
        }
        let size = charge(value.data.len());
        let home = shard_of(&key);
        let mut shard = home;
        let mut empty_shards = 0;
        while self.total.load(Ordering::Relaxed) + size > self.budget && empty_shards < SHARDS {
            match self.shards[shard].lock().evict_one() {
                Some(freed) => {
                    self.total.fetch_sub(freed, Ordering::Relaxed);
                    empty_shards = 0;
                }
                None => {
                    empty_shards += 1;
                    shard = (shard + 1) % SHARDS;
                }
            }
        }
        let added = self.shards[home].lock().insert(key, value);
        self.total.fetch_add(added, Ordering::Relaxed);
    }

    /// Drops every entry.
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            self.total.fetch_sub(shard.bytes, Ordering::Relaxed);
            *shard = Shard::default();
        }
    }

    /// Drops every entry of one pack (when the pack leaves the store).
    pub fn forget_pack(&self, pack: u64) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let mut freed = 0;
            shard.map.retain(|key, slot| {
                let keep = key.0 != pack;
                if !keep {
                    freed += charge(slot.value.data.len());
                }
                keep
            });
            shard.ring.retain(|key| key.0 != pack);
            shard.bytes -= freed;
            self.total.fetch_sub(freed, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An object that costs `cost` bytes of budget.
    fn object(cost: usize) -> CachedObject {
        CachedObject {
            kind: ObjectKind::Blob,
            data: vec![7u8; cost - ENTRY_OVERHEAD].into(),
            depth: 0,
        }
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let cache = DeltaBaseCache::new(10_000);
        for offset in 0..20u64 {
            cache.insert((1, offset), object(1000));
            assert!(cache.bytes() <= 10_000, "over budget after insert {offset}");
        }
        // The newest entries survive, the oldest are gone.
        assert!(cache.get(&(1, 19)).is_some());
        assert!(cache.get(&(1, 0)).is_none());
        assert_eq!(cache.bytes(), 10_000);
    }

    #[test]
    fn recently_used_entry_survives() {
        // Keys of one shard, so the clock hand sweeps them in insertion order.
        let home = shard_of(&(1, 0));
        let keys: Vec<CacheKey> = (0..10_000u64)
            .map(|offset| (1, offset))
            .filter(|key| shard_of(key) == home)
            .take(12)
            .collect();
        let cache = DeltaBaseCache::new(4000);
        cache.insert(keys[0], object(1000));
        for (i, key) in keys.iter().enumerate().skip(1) {
            assert!(
                cache.get(&keys[0]).is_some(),
                "touched entry evicted at insert {i}"
            );
            cache.insert(*key, object(1000));
            assert!(cache.bytes() <= 4000);
        }
        assert!(
            cache.get(&keys[1]).is_none(),
            "untouched old entry should be gone"
        );
    }

    #[test]
    fn refuses_oversized_and_forgets_packs() {
        let cache = DeltaBaseCache::new(10_000);
        cache.insert((1, 1), object(6000));
        assert!(cache.get(&(1, 1)).is_none());
        cache.insert((2, 1), object(1000));
        cache.insert((3, 1), object(1000));
        cache.forget_pack(2);
        assert!(cache.get(&(2, 1)).is_none());
        assert!(cache.get(&(3, 1)).is_some());
        assert_eq!(cache.bytes(), 1000);
        assert!(DeltaBaseCache::new(0).get(&(3, 1)).is_none());
    }
}
