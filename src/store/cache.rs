//! The shared delta-base cache: decoded objects that delta chains are built on, keyed by
//! (pack, offset), bounded in bytes.
//!
//! libgit2 keeps 16 MiB per pack, never caches bases over 1 MiB and drops *everything* when full;
//! this cache is one budget for the whole store, takes big bases too (up to half the budget, see
//! [`DeltaBaseCache::new_entry`]), and evicts a segment at a time.
//!
//! What goes in is decided by the decoder (`decode.rs`): chain roots and the intermediate results
//! at every second depth, once the store has decoded a few chains; the object a read asked for
//! is looked up here first, so a cached base is served by a copy, as in libgit2.
//!
//! Objects live in [`Segment`]s (anonymous mappings of up to 2 MiB, see the mmap layer for why
//! not the heap), written front to back, as a log: the segments form a queue, a full segment
//! joins its back, and eviction takes the segment at its front. An object in that segment that
//! was read since it was written gets a second chance: it is copied into the segment being
//! filled, so hot bases stay, as under CLOCK. The evicted segment is kept aside, and once no
//! reader holds one of its objects it is the next segment filled: a cache that turns over reuses
//! the same memory instead of faulting in new pages. A cache that is dropped (the last backend
//! on its directory closed) leaves its segments to the next cache of the process, through a
//! pool of at most 256 MiB: a program that opens a repository again fills pages it already
//! has, as libgit2's cache refills the heap its allocator kept.
//!
//! The index is sharded so that threads reading different objects rarely meet on a lock: a shard
//! is a hash table with the entries inline. Allocation and eviction go through one lock, the
//! log's, taken once to reserve an entry's bytes and once to index it; a hit takes only its
//! shard's.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::format::pack::ObjectKind;
use crate::mmap::{Block, BlockMut, Segment, SegmentFill};

/// Shards of the tables keyed by [`CacheKey`] (this cache and the header memo).
pub(super) const SHARDS: usize = 16;

/// Memory an entry costs beyond its object bytes, charged to the budget so that the budget
/// bounds memory rather than payload: its hash-table bucket with the slack of the table's
/// growth, and its key in its segment's list (under 160 bytes on 64-bit; objects average
/// ~2 KiB). A segment holds entries while their bytes and overheads fit in it.
const ENTRY_OVERHEAD: usize = 160;

/// The largest segment: 2 MiB, 1/120 of the default budget, so an eviction drops a small part of
/// the cache at a time. Small budgets get smaller segments (see `segment_len`).
const MAX_SEGMENT: usize = 2 << 20;

/// Segments are whole pages.
const PAGE: usize = 4 << 10;

/// The most bytes of segments the process keeps for caches to come: the default budget.
const POOLED_BYTES: usize = 256 << 20;

/// The segments of dropped caches, kept for the next caches to fill.
static POOL: SegmentPool = SegmentPool::new(POOLED_BYTES);

/// Segments that no cache uses, up to a number of bytes, each released to the kernel
/// ([`Segment::release_pages`]): it takes their pages back if it needs memory, else they are
/// still there when a cache fills them again, which costs no page faults. In the read bench,
/// where each measurement opens new backends on a directory no backend holds open, page faults
/// were a third of a +MIDX random read's time at two threads, most of it the kernel zeroing
/// fresh pages; the cache's own were the largest part.
struct SegmentPool {
    segments: Mutex<Vec<Segment>>,
    limit: usize,
}

impl SegmentPool {
    /// A pool keeping up to `limit` bytes of segments.
    const fn new(limit: usize) -> SegmentPool {
        SegmentPool {
            segments: Mutex::new(Vec::new()),
            limit,
        }
    }

    /// A kept segment of `len` bytes, if there is one.
    fn take(&self, len: usize) -> Option<Segment> {
        let mut segments = self.segments.lock();
        let position = segments.iter().position(|segment| segment.len() == len)?;
        Some(segments.swap_remove(position))
    }

    /// Keeps what of `segments` fits within the limit; the rest are unmapped.
    fn keep(&self, segments: impl IntoIterator<Item = Segment>) {
        for mut segment in segments {
            let kept = |segments: &[Segment]| segments.iter().map(Segment::len).sum::<usize>();
            if kept(&self.segments.lock()) + segment.len() > self.limit {
                break;
            }
            // Outside the lock: the advice walks the segment's page tables.
            if segment.release_pages().is_err() {
                break;
            }
            let mut segments = self.segments.lock();
            if kept(&segments) + segment.len() <= self.limit {
                segments.push(segment);
            }
        }
    }
}

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
    /// Its bytes, in a segment of the cache (built by [`DeltaBaseCache::new_entry`]). Holding
    /// them keeps the segment from being filled again, not from being evicted.
    pub data: Block,
    /// How many deltas lie between it and the whole object at the root of its chain (0 for the
    /// root itself): decides which results of later chains through it are worth keeping.
    pub depth: u32,
}

/// An entry and its second-chance bit.
struct Slot {
    value: CachedObject,
    /// Set by a hit; an entry whose bit is set when its segment is evicted is copied forward.
    referenced: bool,
}

/// One lock's worth of the index.
#[derive(Default)]
struct Shard {
    /// Entries inline in the table: a lookup touches the control bytes and the bucket.
    map: HashMap<CacheKey, Slot, BuildHasherDefault<KeyHasher>>,
}

/// Bytes being written by the decoder for a new entry; [`DeltaBaseCache::insert`] indexes them.
#[derive(Debug)]
pub struct NewEntry {
    bytes: BlockMut,
    /// The fill of the segment the bytes are in, to find its key list at insert.
    fill: u64,
}

impl std::ops::Deref for NewEntry {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::ops::DerefMut for NewEntry {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

/// A segment in the log and the keys of the entries written into it (some of which may have
/// been dropped or copied forward since: eviction checks that an entry is still this segment's).
struct Filled {
    segment: Arc<Segment>,
    /// Tells this fill of the segment from earlier and later ones (segments are refilled).
    fill: u64,
    keys: Vec<CacheKey>,
    /// What it costs the budget: its mapped bytes (which bound its entries' overheads too,
    /// except for a dedicated segment, which is charged its one entry's on top).
    charge: usize,
}

/// The segment being filled.
struct Open {
    fill: SegmentFill,
    id: u64,
    keys: Vec<CacheKey>,
    /// Bytes of the segment not yet promised to an entry or its overhead.
    room: usize,
}

/// The order segments are filled and evicted in, and the memory they use.
#[derive(Default)]
struct Log {
    open: Option<Open>,
    /// Full segments, oldest first, and segments dedicated to one large entry.
    sealed: VecDeque<Filled>,
    /// The last evicted segment, to be filled next once no reader holds any of its bytes.
    spare: Option<Arc<Segment>>,
    /// Bytes charged: the mapped segments (open, sealed and spare), plus the overheads of the
    /// entries in dedicated segments.
    charged: usize,
    next_fill: u64,
    /// Segments mapped so far, so tests can tell a refill from a new mapping.
    #[cfg(test)]
    segments_mapped: usize,
}

/// The store-wide cache of delta bases.
pub struct DeltaBaseCache {
    shards: Box<[Mutex<Shard>]>,
    log: Mutex<Log>,
    budget: usize,
    /// Length of a standard segment (0 when the budget is too small for one).
    segment_len: usize,
    /// `Log::charged`, readable without the log's lock.
    charged: AtomicUsize,
    /// Where segments come from before new ones are mapped, and go when the cache is dropped.
    pool: &'static SegmentPool,
    /// The key of the last lookup that hit, so tests can tell which entry served a read.
    #[cfg(test)]
    pub(crate) last_hit: Mutex<Option<CacheKey>>,
}

impl std::fmt::Debug for DeltaBaseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaBaseCache")
            .field("budget", &self.budget)
            .field("charged", &self.charged.load(Ordering::Relaxed))
            .finish()
    }
}

/// The standard segment length for `budget`: a sixteenth of it, in whole pages, at most
/// [`MAX_SEGMENT`]; 0 when the budget cannot hold three (one being filled, one full, one
/// spare), which turns caching off.
fn segment_len(budget: usize) -> usize {
    let len = (budget / 16).clamp(PAGE, MAX_SEGMENT) / PAGE * PAGE;
    if budget >= 3 * len { len } else { 0 }
}

impl DeltaBaseCache {
    /// A cache holding at most `budget` bytes (0 disables it).
    pub fn new(budget: usize) -> DeltaBaseCache {
        DeltaBaseCache::with_pool(budget, &POOL)
    }

    /// A cache whose segments come from, and go back to, `pool`.
    fn with_pool(budget: usize, pool: &'static SegmentPool) -> DeltaBaseCache {
        DeltaBaseCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            log: Mutex::default(),
            budget,
            segment_len: segment_len(budget),
            charged: AtomicUsize::new(0),
            pool,
            #[cfg(test)]
            last_hit: Mutex::new(None),
        }
    }

    /// Bytes charged to the budget: the segments mapped, whatever part of them holds entries.
    pub fn bytes(&self) -> usize {
        self.charged.load(Ordering::Relaxed)
    }

    /// Entries indexed, for tests.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().map.len()).sum()
    }

    /// Looks an entry up and marks it as read, for the second chance.
    pub fn get(&self, key: &CacheKey) -> Option<CachedObject> {
        if self.charged.load(Ordering::Relaxed) == 0 {
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
    /// single use).
    fn admits(&self, len: usize) -> bool {
        self.segment_len > 0 && charge(len) <= self.budget / 2
    }

    /// Room for an object of `len` bytes for the decoder to write it into, or `None` when the
    /// cache would refuse it (see `admits`) or cannot map memory. The bytes are not zeroed:
    /// whoever writes the object overwrites all of them. Pass it to [`DeltaBaseCache::insert`]
    /// once written.
    pub fn new_entry(&self, len: usize) -> Option<NewEntry> {
        if !self.admits(len) {
            return None;
        }
        let mut log = self.log.lock();
        let entry = if charge(len) > self.segment_len / 2 {
            self.dedicated_entry(&mut log, len)
        } else {
            if log.open.as_ref().is_none_or(|open| open.room < charge(len)) {
                self.open_next(&mut log);
            }
            let open = log.open.as_mut()?;
            open.room = open.room.checked_sub(charge(len))?;
            Some(NewEntry {
                bytes: open.fill.take(len)?,
                fill: open.id,
            })
        };
        self.charged.store(log.charged, Ordering::Relaxed);
        entry
    }

    /// Indexes a written entry under `key` and returns it as a cached object. It is not indexed
    /// (but still returned, for the decoder to go on with) when the key is already present, or
    /// its segment was evicted while it was being written.
    pub fn insert(
        &self,
        key: CacheKey,
        entry: NewEntry,
        kind: ObjectKind,
        depth: u32,
    ) -> CachedObject {
        let value = CachedObject {
            kind,
            data: entry.bytes.freeze(),
            depth,
        };
        let mut log = self.log.lock();
        let log = &mut *log;
        let keys = match &mut log.open {
            Some(open) if open.id == entry.fill => Some(&mut open.keys),
            _ => log
                .sealed
                .iter_mut()
                .rev()
                .find(|filled| filled.fill == entry.fill)
                .map(|filled| &mut filled.keys),
        };
        if let Some(keys) = keys {
            let mut shard = self.shards[shard_of(&key)].lock();
            if let std::collections::hash_map::Entry::Vacant(vacant) = shard.map.entry(key) {
                vacant.insert(Slot {
                    value: value.clone(),
                    referenced: false,
                });
                keys.push(key);
            }
        }
        value
    }

    /// Maps a segment for one entry too large to share one, evicting to make room.
    fn dedicated_entry(&self, log: &mut Log, len: usize) -> Option<NewEntry> {
        let mapped = len.div_ceil(PAGE).max(1) * PAGE;
        let charge = mapped + ENTRY_OVERHEAD;
        while log.charged + charge > self.budget {
            // The spare goes before any entry does: this entry needs the room more.
            if let Some(spare) = log.spare.take() {
                log.charged -= spare.len();
            } else if !self.evict_oldest(log) {
                return None;
            }
        }
        let mut fill = SegmentFill::new(Arc::new(Segment::map(mapped).ok()?)).ok()?;
        let bytes = fill.take(len)?;
        let id = log.next_fill;
        log.next_fill += 1;
        log.charged += charge;
        log.sealed.push_back(Filled {
            segment: Arc::clone(fill.segment()),
            fill: id,
            keys: Vec::new(),
            charge,
        });
        Some(NewEntry { bytes, fill: id })
    }

    /// Seals the open segment and opens the next: the spare if no reader holds it, else a new
    /// mapping. Then evicts until the budget holds a spare for next time.
    fn open_next(&self, log: &mut Log) {
        if let Some(open) = log.open.take() {
            log.sealed.push_back(Filled {
                segment: Arc::clone(open.fill.segment()),
                fill: open.id,
                keys: open.keys,
                charge: open.fill.segment().len(),
            });
        }
        let mut fill = None;
        if let Some(spare) = log.spare.take() {
            match SegmentFill::new(spare) {
                Ok(reused) => fill = Some(reused),
                // A reader still holds one of its objects: it goes when the reader is done.
                Err(busy) => log.charged -= busy.len(),
            }
        }
        let fill = match fill {
            Some(fill) => fill,
            None => {
                while log.charged + self.segment_len > self.budget {
                    if !self.evict_oldest(log) {
                        return;
                    }
                }
                let segment = match self.pool.take(self.segment_len) {
                    Some(segment) => segment,
                    None => {
                        let Ok(segment) = Segment::map(self.segment_len) else {
                            return;
                        };
                        #[cfg(test)]
                        {
                            log.segments_mapped += 1;
                        }
                        segment
                    }
                };
                log.charged += segment.len();
                let Ok(fill) = SegmentFill::new(Arc::new(segment)) else {
                    unreachable!("a new segment has no other reference")
                };
                fill
            }
        };
        let id = log.next_fill;
        log.next_fill += 1;
        log.open = Some(Open {
            room: fill.remaining(),
            fill,
            id,
            keys: Vec::new(),
        });
        // Keep a spare ready: when the next segment would not fit, evict now, while there is a
        // segment to copy the evicted segment's read entries forward into.
        while log.spare.is_none() && log.charged + self.segment_len > self.budget {
            if !self.evict_oldest(log) {
                break;
            }
        }
    }

    /// Evicts the oldest segment: drops its entries from the index, copying those read since
    /// they were written into the open segment while it has room for them; keeps the segment as
    /// the spare when there is none (and it is a standard one), else unmaps it. `false` when
    /// there was nothing to evict.
    fn evict_oldest(&self, log: &mut Log) -> bool {
        let Some(victim) = log.sealed.pop_front() else {
            return false;
        };
        for key in &victim.keys {
            let mut shard = self.shards[shard_of(key)].lock();
            let Some(slot) = shard.map.get(key) else {
                continue;
            };
            if !Arc::ptr_eq(slot.value.data.segment(), &victim.segment) {
                continue;
            }
            let Some(slot) = shard.map.remove(key) else {
                continue;
            };
            let Some(open) = log.open.as_mut().filter(|_| slot.referenced) else {
                continue;
            };
            // At most half of what is left: new entries need room too.
            let cost = charge(slot.value.data.len());
            if cost > open.room / 2 {
                continue;
            }
            let Some(mut copy) = open.fill.take(slot.value.data.len()) else {
                continue;
            };
            copy.copy_from_slice(&slot.value.data);
            open.room -= cost;
            open.keys.push(*key);
            shard.map.insert(
                *key,
                Slot {
                    value: CachedObject {
                        data: copy.freeze(),
                        ..slot.value
                    },
                    referenced: false,
                },
            );
        }
        // A standard segment is charged its length; a dedicated one more than its own.
        let standard = victim.charge == self.segment_len;
        if standard && log.spare.is_none() {
            log.spare = Some(victim.segment);
        } else {
            log.charged -= victim.charge;
        }
        true
    }

    /// Drops every entry of one pack (when the pack leaves the store). Their bytes stay until
    /// their segments are evicted.
    pub fn forget_pack(&self, pack: u64) {
        for shard in self.shards.iter() {
            shard.lock().map.retain(|key, _| key.0 != pack);
        }
    }
}

impl Shard {
    fn get(&mut self, key: &CacheKey) -> Option<CachedObject> {
        let slot = self.map.get_mut(key)?;
        slot.referenced = true;
        Some(slot.value.clone())
    }
}

impl Drop for DeltaBaseCache {
    /// Leaves the standard segments no reader holds an object of to the pool.
    fn drop(&mut self) {
        // The entries' blocks refer to their segments: gone first, so that a segment is shared
        // only while a reader holds one of its objects (it is unmapped when the reader is done).
        for shard in self.shards.iter_mut() {
            shard.get_mut().map.clear();
        }
        let log = std::mem::take(self.log.get_mut());
        let mut segments: Vec<Arc<Segment>> = log
            .sealed
            .into_iter()
            .map(|filled| filled.segment)
            .collect();
        segments.extend(log.spare);
        if let Some(open) = log.open {
            segments.push(Arc::clone(open.fill.segment()));
        }
        let segment_len = self.segment_len;
        self.pool.keep(
            segments
                .into_iter()
                .filter(|segment| segment.len() == segment_len)
                .filter_map(|segment| Arc::try_unwrap(segment).ok()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A budget of 16 segments of one page.
    const BUDGET: usize = 16 * PAGE;

    /// Caches `len` bytes of `byte` under `key`; whether the cache took them.
    fn put(cache: &DeltaBaseCache, key: CacheKey, len: usize, byte: u8) -> bool {
        let Some(mut entry) = cache.new_entry(len) else {
            return false;
        };
        entry.fill(byte);
        cache.insert(key, entry, ObjectKind::Blob, 0);
        true
    }

    /// The bytes cached under `key`, if any, checked to be all `byte`.
    fn held(cache: &DeltaBaseCache, key: CacheKey, byte: u8) -> bool {
        let Some(cached) = cache.get(&key) else {
            return false;
        };
        assert!(cached.data.iter().all(|&b| b == byte), "bytes of {key:?}");
        true
    }

    #[test]
    fn evicts_oldest_segments_within_budget() {
        let cache = DeltaBaseCache::new(BUDGET);
        assert_eq!(cache.segment_len, PAGE);
        for offset in 0..200u64 {
            assert!(put(&cache, (1, offset), 1000, offset as u8), "put {offset}");
            assert!(cache.bytes() <= BUDGET, "over budget after put {offset}");
        }
        // Three entries fit in a segment: the last 13 segments' worth are there (one is the
        // spare), the first ones are gone.
        assert!((190..200).all(|offset| held(&cache, (1, offset), offset as u8)));
        assert!((0..100).all(|offset| !held(&cache, (1, offset), offset as u8)));
        assert!(
            cache.len() >= 36 && cache.len() <= 45,
            "{} entries",
            cache.len()
        );
        assert_eq!(cache.bytes(), BUDGET);
    }

    #[test]
    fn entries_read_since_written_are_kept() {
        let cache = DeltaBaseCache::new(BUDGET);
        assert!(put(&cache, (1, 0), 1000, 0xAA));
        assert!(put(&cache, (1, 1), 1000, 0xBB));
        for offset in 2..500u64 {
            assert!(
                held(&cache, (1, 0), 0xAA),
                "read entry evicted at put {offset}"
            );
            assert!(put(&cache, (1, offset), 1000, offset as u8));
        }
        assert!(
            !held(&cache, (1, 1), 0xBB),
            "an entry never read is evicted"
        );
    }

    #[test]
    fn refills_evicted_segments_but_not_under_a_reader() {
        let cache = DeltaBaseCache::new(BUDGET);
        assert!(put(&cache, (1, 0), 1000, 0xAA));
        let reader = cache.get(&(1, 0)).expect("cached");
        // Turn the cache over several times while the reader holds its object: the evicted
        // segment must not be filled again under it.
        for offset in 1..500u64 {
            assert!(put(&cache, (1, offset), 1000, offset as u8));
            assert!(cache.bytes() <= BUDGET);
        }
        assert!(
            reader.data.iter().all(|&b| b == 0xAA),
            "bytes changed under a reader"
        );
        // Once full, the cache turns over in the memory it has: one segment is mapped for the
        // one the reader kept, not one per turn.
        let mapped = cache.log.lock().segments_mapped;
        assert!(mapped <= 16 + 1, "{mapped} segments mapped");
        drop(reader);
        for offset in 500..1000u64 {
            assert!(put(&cache, (1, offset), 1000, offset as u8));
        }
        assert_eq!(cache.log.lock().segments_mapped, mapped);
    }

    #[test]
    fn a_dropped_cache_leaves_its_segments_to_the_next() {
        // A pool of its own, keeping four one-page segments.
        let pool: &'static SegmentPool = Box::leak(Box::new(SegmentPool::new(4 * PAGE)));
        let fill = |cache: &DeltaBaseCache| {
            for offset in 0..30u64 {
                assert!(put(cache, (1, offset), 1000, offset as u8), "put {offset}");
            }
        };
        let first = DeltaBaseCache::with_pool(BUDGET, pool);
        fill(&first);
        let mapped = first.log.lock().segments_mapped;
        assert!(mapped >= 8, "{mapped} segments mapped");
        // A reader keeps an object of the segment being filled: that segment is not pooled.
        let reader = first.get(&(1, 29)).expect("cached");
        drop(first);
        let second = DeltaBaseCache::with_pool(BUDGET, pool);
        fill(&second);
        assert_eq!(second.log.lock().segments_mapped, mapped - 4);
        assert!((0..30u64).all(|offset| held(&second, (1, offset), offset as u8)));
        assert!(
            reader.data.iter().all(|&b| b == 29),
            "a segment a reader held was filled again"
        );
    }

    #[test]
    fn refuses_oversized_and_forgets_packs() {
        let cache = DeltaBaseCache::new(BUDGET);
        assert!(!put(&cache, (1, 1), BUDGET / 2, 1), "over half the budget");
        // Larger than half a segment: a segment of its own.
        assert!(put(&cache, (2, 1), 3 * PAGE, 2));
        assert!(put(&cache, (2, 2), 1000, 3));
        assert!(put(&cache, (3, 1), 1000, 4));
        assert!(held(&cache, (2, 1), 2));
        cache.forget_pack(2);
        assert!(!held(&cache, (2, 1), 2) && !held(&cache, (2, 2), 3));
        assert!(held(&cache, (3, 1), 4));
        assert_eq!(cache.len(), 1);
        assert!(cache.bytes() <= BUDGET);
        // Room for the largest entry admitted is made from every segment, the spare included.
        for offset in 0..100u64 {
            assert!(put(&cache, (4, offset), 1000, 5));
        }
        let largest = BUDGET / 2 - ENTRY_OVERHEAD - PAGE;
        assert!(put(&cache, (5, 1), largest, 6), "largest admitted entry");
        assert!(
            put(&cache, (5, 2), largest, 7),
            "second largest admitted entry"
        );
        assert!(held(&cache, (5, 2), 7), "second");
        assert!(held(&cache, (5, 1), 6), "first");
        assert!(cache.bytes() <= BUDGET);
        // Off, and too small for three segments: nothing is taken.
        assert!(!put(&DeltaBaseCache::new(0), (3, 1), 10, 0));
        assert!(!put(&DeltaBaseCache::new(2 * PAGE), (3, 1), 10, 0));
    }
}
