//! An in-memory multi-pack index over the packs no MIDX file covers.
//!
//! Without a MIDX, finding an object means asking each pack's index in turn. A miss asks all of
//! them, and libgit2 misses twice per absent id (before and after its refresh); a hit asks half
//! of them on average. A repository that fetched many times and never ran `git gc` or `git
//! maintenance` has dozens of packs, and then those probes are most of every lookup. So when at
//! least [`MERGE_AT_PACKS`] packs are uncovered, a snapshot merges their ids into one sorted table
//! — what a MIDX file holds, built in memory from the `.idx` files — and every lookup is one
//! search, however many packs there are.
//!
//! It costs 28 bytes an object (the id and where it lives), plus a fraction of a byte for its
//! fine fanout (built at once: see [`crate::format::fanout::Fanout`]). Building it merges the
//! packs' sorted ids one first byte at a time, as a MIDX write does ([`crate::format::merge`]),
//! and copies them out of the `.idx` maps, so a rebuild reads no file again. It is built by the
//! lookup that earns it ([`MERGE_AFTER_LOOKUPS`] into a snapshot: see [`PendingMerge`]); the
//! ones before probe the packs one by one. Later snapshots reuse it (built or pending) while all
//! of its packs are still there, and probe newer packs one by one until there are
//! [`MERGE_AT_PACKS`] of those. Above [`MERGE_MAX_OBJECTS`] nothing is merged: a repository that
//! big should have a MIDX file (`git multi-pack-index write`, `git maintenance`).

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};
use crate::format::PrefixMatch;
use crate::format::fanout::{Fanout, SortedIds};
use crate::format::merge::Merge;
use crate::format::midx::PackEntries;
use crate::oid::{HASH_LEN, ObjectId, Prefix};

use super::pack::Pack;
use super::packset::Location;

/// Uncovered packs from which on they are merged. Below it, probing each pack costs at most a
/// few lookups and the memory is better left to the delta-base cache.
pub const MERGE_AT_PACKS: usize = 4;

/// Most objects merged (4M ids: 112 MiB). Beyond it, packs are probed one by one.
pub const MERGE_MAX_OBJECTS: usize = 1 << 22;

/// Lookups a snapshot serves by probing its packs one by one before it merges them. Merging
/// reads every id of every pack; a process that opens a repository to look a few objects up,
/// or only to write a MIDX over its packs, would pay that at open for nothing. Merging costs in
/// proportion to the ids, probing in proportion to the packs on every lookup: this is a round
/// number, not a measured break-even, small beside the lookups of a process that reads much
/// and large beside those of a command that looks a few ids up.
pub const MERGE_AFTER_LOOKUPS: usize = 1024;

/// Packs to merge, once lookups have earned it ([`MERGE_AFTER_LOOKUPS`]): until then a lookup
/// probes them one by one. Shared by the snapshots that keep the same packs, so the merge is
/// built at most once for all of them.
#[derive(Debug)]
pub struct PendingMerge {
    /// The packs, newest first.
    pub packs: Vec<Arc<Pack>>,
    /// The merge, once built (`None` inside when the packs cannot be merged: too many objects,
    /// too few readable indexes, an index out of order, no memory), with the packs it left out.
    built: OnceLock<Option<(MergedIndex, Vec<Arc<Pack>>)>>,
    /// Lookups served so far, counted until the merge is built.
    lookups: AtomicUsize,
}

impl PendingMerge {
    /// Packs to merge later (newest first).
    pub fn new(packs: Vec<Arc<Pack>>) -> PendingMerge {
        PendingMerge {
            packs,
            built: OnceLock::new(),
            lookups: AtomicUsize::new(0),
        }
    }

    /// For a lookup: the merged index once built (built by the lookup that earns it), and the
    /// packs to probe one by one besides it: all of them until then (or when they cannot be
    /// merged), afterwards those the merge left out.
    #[inline]
    pub fn for_lookup(&self) -> (Option<&MergedIndex>, &[Arc<Pack>]) {
        let built = match self.built.get() {
            Some(built) => built,
            None if self.lookups.fetch_add(1, AtomicOrdering::Relaxed) < MERGE_AFTER_LOOKUPS => {
                return (None, &self.packs);
            }
            None => self.built.get_or_init(|| MergedIndex::build(&self.packs)),
        };
        match built {
            Some((merged, left_out)) => (Some(merged), left_out),
            None => (None, &self.packs),
        }
    }

    /// The merged index if it was built, without building it.
    pub fn built(&self) -> Option<&MergedIndex> {
        self.built.get()?.as_ref().map(|(index, _)| index)
    }
}

/// The merged, sorted ids of several packs, each id once.
#[derive(Debug)]
pub struct MergedIndex {
    /// With its fine fanout built at once: the merged index exists to serve many lookups.
    fanout: Fanout,
    /// Sorted, distinct ids, `HASH_LEN` bytes each.
    ids: Vec<u8>,
    /// For the id at the same position: its pack (position in `packs`) and its position in that
    /// pack's index.
    slots: Vec<(u32, u32)>,
    /// The packs merged, newest first.
    pub packs: Vec<Arc<Pack>>,
}

impl MergedIndex {
    /// Merges the ids of `candidates` (newest first: an id in several packs is served by the
    /// first that has it, as probing in that order would). Packs whose index cannot be read are
    /// left out and returned, to be probed one by one (and skipped, as then). `None` when fewer
    /// than [`MERGE_AT_PACKS`] packs are readable or they hold more than [`MERGE_MAX_OBJECTS`].
    pub fn build(candidates: &[Arc<Pack>]) -> Option<(MergedIndex, Vec<Arc<Pack>>)> {
        let mut packs = Vec::new();
        let mut left_out = Vec::new();
        let mut total = 0usize;
        for pack in candidates {
            match pack.index() {
                Ok(index) => {
                    total = total.saturating_add(index.num_objects());
                    packs.push(pack.clone());
                }
                Err(_) => left_out.push(pack.clone()),
            }
        }
        // The table stores pack numbers and index positions as u32: a pack's index counts its
        // objects in a u32, and the pack count is checked here.
        if packs.len() < MERGE_AT_PACKS
            || total > MERGE_MAX_OBJECTS
            || u32::try_from(packs.len()).is_err()
        {
            return None;
        }
        // Newest first: an id in several packs is served by the first that has it. A pack
        // whose ids are out of order (a corrupt index) leaves the packs unmerged, to be probed
        // one by one as its index's own lookups allow.
        let indexes = packs
            .iter()
            .map(|pack| pack.index().ok().map(|index| index as &dyn PackEntries))
            .collect::<Option<Vec<_>>>()?;
        let rank = (0..packs.len() as u32).collect();
        let mut merge = Merge::new(indexes, rank);
        let mut counts = [0u32; 256];
        let mut ids = Vec::new();
        ids.try_reserve_exact(total * HASH_LEN).ok()?;
        let mut slots = Vec::new();
        slots.try_reserve_exact(total).ok()?;
        while let Some(selected) = merge.next_selected().ok()? {
            counts[usize::from(selected.oid.0[0])] += 1;
            ids.extend_from_slice(&selected.oid.0);
            // Pack counts are checked above to fit u32, index positions fit by format.
            slots.push((selected.pack as u32, selected.entry as u32));
        }
        let mut cumulative = [0u32; 256];
        let mut running = 0u32;
        for (slot, count) in cumulative.iter_mut().zip(counts) {
            running += count;
            *slot = running;
        }
        Some((
            MergedIndex {
                fanout: Fanout::with_fine(cumulative, &ids),
                ids,
                slots,
                packs,
            },
            left_out,
        ))
    }

    fn sorted(&self) -> SortedIds<'_> {
        SortedIds::new(&self.fanout, &self.ids)
    }

    /// Position of `oid`, if a merged pack has it.
    pub fn find(&self, oid: &ObjectId) -> Option<usize> {
        self.sorted().find(oid)
    }

    /// Looks a prefix up among the merged ids (each distinct, so two matches are two objects).
    pub fn find_prefix(&self, prefix: &Prefix) -> PrefixMatch {
        self.sorted().find_prefix(prefix)
    }

    /// The id at `position`.
    pub fn oid_at(&self, position: usize) -> ObjectId {
        ObjectId::from_slice(self.sorted().id_at(position)).expect("id_at returns HASH_LEN bytes")
    }

    /// Where the object at `position` lives.
    pub fn location(&self, position: usize) -> Result<Location<'_>> {
        let (pack_position, index_position) = self.slots[position];
        let pack = &self.packs[pack_position as usize];
        // Merged packs had their index loaded at build time; it stays loaded.
        let index = pack.index()?;
        let offset = index
            .offset_at(index_position as usize)
            .map_err(|source| Error::Index {
                path: pack.idx_path().to_owned(),
                source,
            })?;
        Ok(Location { pack, offset })
    }

    /// Number of distinct ids merged.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no id was merged (packs without objects).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}
