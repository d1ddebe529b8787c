//! Merging the sorted id lists of several pack indexes into one sorted list holding each id
//! once, from its best copy: what a MIDX's OIDL chunk holds, and what the store's in-memory
//! merged index holds for packs no MIDX covers.
//!
//! Like git's `compute_sorted_entries`, it works one fanout bucket (first id byte) at a time:
//! every pack's entries of the bucket are gathered and sorted by (id, rank of the copy), and the
//! first copy of each id wins. Memory is one bucket (about 1/256 of all entries), a bucket's
//! sort stays in the CPU cache, and ids compare as integers, never as byte slices: far cheaper
//! than one sort of every entry, or a heap over one cursor per pack.

use super::midx::PackEntries;
use crate::oid::{HASH_LEN, ObjectId, leading_u64, trailing};

/// The winning copy of one object.
#[derive(Clone, Copy, Debug)]
pub struct Selected {
    /// The object's id.
    pub oid: ObjectId,
    /// Position of its pack in the merge's input.
    pub pack: usize,
    /// Entry index within that pack.
    pub entry: usize,
}

/// A pack whose ids do not strictly increase (a corrupt index): the first entry out of order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsorted {
    /// Position of the pack in the merge's input.
    pub pack: usize,
    /// The entry.
    pub entry: usize,
}

/// An id as three integers that order like its bytes (the fanout search's split of an id).
type IdKey = (u64, u64, u32);

#[inline]
fn key_of(id: &[u8; HASH_LEN]) -> IdKey {
    let (middle, last) = trailing(id);
    (leading_u64(id), middle, last)
}

fn id_of(key: IdKey) -> ObjectId {
    let mut id = [0u8; HASH_LEN];
    id[..8].copy_from_slice(&key.0.to_be_bytes());
    id[8..16].copy_from_slice(&key.1.to_be_bytes());
    id[16..].copy_from_slice(&key.2.to_be_bytes());
    ObjectId(id)
}

/// One copy of an object in a bucket, sorted by id then by the rank of its pack (lower wins).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Cursor {
    id: IdKey,
    rank: u32,
    pack: u32,
    entry: u32,
}

/// Sorts `gathered` (one first byte's entries) into `sorted`. A comparison sort of random ids
/// mispredicts a branch on every other comparison; this is a counting sort on the bits after
/// the first byte, as many as it takes for runs of about one entry, then an insertion sort of
/// each run (by the whole cursor: id, then rank) that rarely has anything to move.
fn radix_sort(gathered: &[Cursor], sorted: &mut Vec<Cursor>, starts: &mut Vec<u32>) {
    let bits = (usize::BITS - gathered.len().leading_zeros()).clamp(1, 16);
    let run_of = |cursor: &Cursor| ((cursor.id.0 << 8) >> (64 - bits)) as usize;
    starts.clear();
    starts.resize((1 << bits) + 1, 0);
    for cursor in gathered {
        starts[run_of(cursor) + 1] += 1;
    }
    for run in 1..starts.len() {
        starts[run] += starts[run - 1];
    }
    sorted.clear();
    sorted.resize(gathered.len(), Cursor::default());
    for cursor in gathered {
        let slot = &mut starts[run_of(cursor)];
        sorted[*slot as usize] = *cursor;
        *slot += 1;
    }
    // Each run now ends where the next begins; the first starts at 0.
    let mut start = 0;
    for &end in &starts[..1 << bits] {
        let run = &mut sorted[start..end as usize];
        start = end as usize;
        if run.len() > INSERTION_SORT_MAX {
            // Ids crowding into one run (a huge bucket, or ids made to share their leading
            // bytes): insertion would be quadratic.
            run.sort_unstable();
            continue;
        }
        for i in 1..run.len() {
            let mut j = i;
            while j > 0 && run[j] < run[j - 1] {
                run.swap(j, j - 1);
                j -= 1;
            }
        }
    }
}

/// Longest run of [`radix_sort`] sorted by insertion.
const INSERTION_SORT_MAX: usize = 16;

/// Merge of the packs' sorted entries that yields each id once, in id order, from the copy in
/// the pack of lowest rank.
pub struct Merge<'a> {
    packs: Vec<&'a dyn PackEntries>,
    /// Rank of each pack's copies (lower wins; equal ranks: the lower input position wins).
    rank: Vec<u32>,
    /// Next entry of each pack.
    next: Vec<usize>,
    /// The current bucket, sorted, and the position in it.
    bucket: Vec<Cursor>,
    /// The bucket as gathered, before [`radix_sort`] puts it into `bucket`.
    gathered: Vec<Cursor>,
    /// Run starts of the radix sort.
    starts: Vec<u32>,
    position: usize,
    /// The next first byte to gather (256: done).
    next_byte: usize,
    last: Option<IdKey>,
    visited: u64,
}

impl<'a> Merge<'a> {
    /// A merge of `packs` (at most `u32::MAX` of them, each with at most `u32::MAX` entries:
    /// callers check) where the copy in pack `p` has rank `rank[p]`.
    pub fn new(packs: Vec<&'a dyn PackEntries>, rank: Vec<u32>) -> Merge<'a> {
        debug_assert_eq!(packs.len(), rank.len());
        let next = vec![0; packs.len()];
        Merge {
            packs,
            rank,
            next,
            bucket: Vec::new(),
            gathered: Vec::new(),
            starts: Vec::new(),
            position: 0,
            next_byte: 0,
            last: None,
            visited: 0,
        }
    }

    /// Pack entries gathered so far (copies that lost included), for progress reports.
    pub fn visited(&self) -> u64 {
        self.visited
    }

    /// Gathers the entries whose id starts with `byte` from every pack, checking that each
    /// pack's ids strictly increase.
    fn fill(&mut self, byte: usize) -> Result<(), Unsorted> {
        self.gathered.clear();
        self.position = 0;
        for (pack, entries) in self.packs.iter().enumerate() {
            let mut entry = self.next[pack];
            let mut previous = (entry > 0).then(|| key_of(&entries.oid_at(entry - 1).0));
            while entry < entries.len() {
                let oid = entries.oid_at(entry);
                let id = key_of(&oid.0);
                let first_byte = (id.0 >> 56) as usize;
                if previous.is_some_and(|previous| id <= previous) || first_byte < byte {
                    return Err(Unsorted { pack, entry });
                }
                if first_byte != byte {
                    break;
                }
                self.gathered.push(Cursor {
                    id,
                    rank: self.rank[pack],
                    pack: pack as u32,
                    entry: entry as u32,
                });
                previous = Some(id);
                entry += 1;
            }
            self.next[pack] = entry;
        }
        self.visited += self.gathered.len() as u64;
        radix_sort(&self.gathered, &mut self.bucket, &mut self.starts);
        Ok(())
    }

    /// The next id and its winning copy; `None` after the last.
    pub fn next_selected(&mut self) -> Result<Option<Selected>, Unsorted> {
        loop {
            while let Some(cursor) = self.bucket.get(self.position) {
                self.position += 1;
                // Later copies of the same id lost to this one (the sort ranks them).
                if self.last == Some(cursor.id) {
                    continue;
                }
                self.last = Some(cursor.id);
                return Ok(Some(Selected {
                    oid: id_of(cursor.id),
                    pack: cursor.pack as usize,
                    entry: cursor.entry as usize,
                }));
            }
            if self.next_byte > 255 {
                return Ok(None);
            }
            let byte = self.next_byte;
            self.next_byte += 1;
            self.fill(byte)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::fanout::tests::random_ids;
    use crate::format::midx_write::tests::VecPack;

    fn id(first: u8, middle: u8, last: u8) -> ObjectId {
        let mut id = ObjectId::ZERO;
        id.0[0] = first;
        id.0[10] = middle;
        id.0[19] = last;
        id
    }

    fn run(packs: &[&VecPack], rank: Vec<u32>) -> Result<Vec<(ObjectId, usize, usize)>, Unsorted> {
        let mut merge = Merge::new(
            packs.iter().map(|&pack| pack as &dyn PackEntries).collect(),
            rank,
        );
        let mut out = Vec::new();
        while let Some(selected) = merge.next_selected()? {
            out.push((selected.oid, selected.pack, selected.entry));
        }
        assert_eq!(
            merge.visited(),
            packs.iter().map(|pack| pack.0.len() as u64).sum::<u64>()
        );
        Ok(out)
    }

    /// Each id once, in byte order (ids differing only past the first eight bytes, and across
    /// first bytes), from the pack of lowest rank; equal ranks go to the earlier pack.
    #[test]
    fn yields_each_id_once_from_its_best_copy() {
        let a = VecPack(vec![(id(1, 0, 0), 0), (id(1, 0, 7), 0), (id(200, 3, 0), 0)]);
        let b = VecPack(vec![(id(1, 0, 7), 0), (id(1, 5, 0), 0), (id(200, 3, 0), 0)]);
        let c = VecPack(vec![(id(1, 0, 0), 0), (id(1, 5, 0), 0)]);
        for (rank, expected) in [
            (
                vec![2, 0, 2],
                [(0, 0), (1, 0), (1, 1), (1, 2)], // b (rank 0) wins; a beats c (same rank, earlier)
            ),
            (
                vec![1, 1, 0],
                [(2, 0), (0, 1), (2, 1), (0, 2)], // c wins; a beats b (same rank, earlier)
            ),
        ] {
            let ids = [id(1, 0, 0), id(1, 0, 7), id(1, 5, 0), id(200, 3, 0)];
            let expected: Vec<_> = ids
                .into_iter()
                .zip(expected)
                .map(|(id, (pack, entry))| (id, pack, entry))
                .collect();
            assert_eq!(run(&[&a, &b, &c], rank).expect("sorted"), expected);
        }
    }

    /// A pack whose ids repeat or go down, within a first byte or across, is reported at the
    /// first entry out of order.
    #[test]
    fn reports_the_first_entry_out_of_order() {
        let sorted = VecPack(vec![(id(1, 0, 0), 0), (id(9, 0, 0), 0)]);
        for (entries, entry) in [
            (vec![(id(1, 0, 1), 0), (id(1, 0, 1), 0)], 1),
            (
                vec![(id(1, 0, 0), 0), (id(3, 0, 0), 0), (id(2, 0, 0), 0)],
                2,
            ),
            (vec![(id(1, 2, 0), 0), (id(1, 1, 9), 0)], 1),
        ] {
            let bad = VecPack(entries);
            assert_eq!(
                run(&[&sorted, &bad], vec![0, 1]).err(),
                Some(Unsorted { pack: 1, entry })
            );
        }
    }

    /// Many packs of random ids, some shared by several packs, some crowding into one run of
    /// the radix sort (equal leading bytes): the merge equals a reference built with a map.
    #[test]
    fn matches_a_reference_merge() {
        let pool: Vec<ObjectId> = random_ids(6000)
            .into_iter()
            .enumerate()
            .map(|(n, mut id)| {
                if n % 3 == 0 {
                    // A third share their first four bytes: one long run.
                    id[..4].copy_from_slice(&[0x5a, 1, 2, 3]);
                }
                ObjectId(id)
            })
            .collect();
        // Each pack takes about a third of the pool, chosen by one of the ids' random bytes.
        let packs: Vec<VecPack> = (0..7)
            .map(|pack| {
                let mut ids: Vec<ObjectId> = pool
                    .iter()
                    .filter(|id| id.0[12 + pack] % 3 == 0)
                    .copied()
                    .collect();
                ids.sort();
                VecPack(ids.into_iter().map(|id| (id, 0)).collect())
            })
            .collect();
        let rank = vec![3, 1, 0, 2, 1, 3, 0];
        let mut reference = std::collections::BTreeMap::new();
        for (pack, entries) in packs.iter().enumerate() {
            for (entry, (id, _)) in entries.0.iter().enumerate() {
                let best = reference.entry(*id).or_insert((rank[pack], pack, entry));
                *best = (*best).min((rank[pack], pack, entry));
            }
        }
        let expected: Vec<_> = reference
            .into_iter()
            .map(|(id, (_, pack, entry))| (id, pack, entry))
            .collect();
        let inputs: Vec<&VecPack> = packs.iter().collect();
        assert_eq!(run(&inputs, rank).expect("sorted"), expected);
    }
}
