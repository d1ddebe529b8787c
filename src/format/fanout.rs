//! The fanout table + sorted id table search shared by `.idx`, the MIDX OIDF/OIDL chunks and
//! the in-memory merged index.
//!
//! Both formats store 256 big-endian `u32` cumulative counts (entry `b` = number of ids whose
//! first byte is `<= b`) followed, somewhere, by the sorted ids. [`SortedIds`] is a validated view
//! over the pair: the fanout is checked monotonic and consistent with the id count when built,
//! so lookups need no further checks beyond slice bounds.
//!
//! A table that serves many lookups also gets a finer fanout, built in memory ([`Fanout`]): a
//! lookup then scans a bucket of a dozen ids instead of bisecting a whole first-byte bucket.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use super::{PrefixMatch, be_u32};
use crate::oid::{HASH_LEN, ObjectId, Prefix, leading_u64, trailing};

/// Size in bytes of a fanout table.
pub const FANOUT_LEN: usize = 256 * 4;

/// Why a fanout table was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FanoutError {
    /// The table is not 1024 bytes.
    #[error("fanout table is {0} bytes, expected 1024")]
    WrongSize(usize),
    /// Entry `index` is smaller than the entry before it.
    #[error("fanout out of order: fanout[{index}] = {value:#x} < {previous:#x} = fanout[{}]", index - 1)]
    NotMonotonic {
        /// Position of the decreasing entry.
        index: usize,
        /// Its value.
        value: u32,
        /// The value before it.
        previous: u32,
    },
}

/// Parses and validates a 1024-byte fanout table; returns the 256 counts.
///
/// The last count is the number of ids; callers check it against the table they own.
pub fn parse_fanout(bytes: &[u8]) -> Result<[u32; 256], FanoutError> {
    if bytes.len() != FANOUT_LEN {
        return Err(FanoutError::WrongSize(bytes.len()));
    }
    let mut fanout = [0u32; 256];
    let mut previous = 0;
    for (index, slot) in fanout.iter_mut().enumerate() {
        let value = be_u32(bytes, index * 4).unwrap_or(0);
        if value < previous {
            return Err(FanoutError::NotMonotonic {
                index,
                value,
                previous,
            });
        }
        *slot = value;
        previous = value;
    }
    Ok(fanout)
}

/// Tables with fewer ids never get a fine fanout: their first-byte buckets hold a few dozen ids
/// at most, and the whole table stays in the CPU cache.
const FINE_MIN_IDS: usize = 1 << 14;

/// A fine bucket holds `2^FINE_BUCKET_IDS_LOG2` ids at most on average, half that at least.
const FINE_BUCKET_IDS_LOG2: u32 = 4;

/// Buckets of up to this many ids are scanned, bigger ones bisected: a fine bucket rarely holds
/// more (its size has a mean of 8 to 16), a first-byte bucket of a table too small for a fine
/// fanout often does.
const SCAN_MAX_IDS: usize = 32;

/// A fine fanout is built once a table has served `ids / FINE_LOOKUPS_DIVISOR` lookups:
/// building reads every id once, and each later lookup saves most of a bisection's cache misses
/// (a one-shot process looking a few ids up never pays for it).
const FINE_LOOKUPS_DIVISOR: usize = 4;

/// A file's 256-entry fanout, plus the finer one a busy table gets: a table of where each run
/// of ids sharing their leading bits starts, a bucket for every 8 to 16 ids.
#[derive(Debug)]
pub struct Fanout {
    counts: [u32; 256],
    /// Built on the lookup that crosses the threshold; `None` inside if it could not be allocated.
    fine: OnceLock<Option<FineFanout>>,
    /// Lookups so far, counted until the fine fanout exists.
    lookups: AtomicUsize,
}

impl Fanout {
    /// The fanout of a file, from [`parse_fanout`]'s counts; a fine one comes with use.
    pub fn new(counts: [u32; 256]) -> Fanout {
        Fanout {
            counts,
            fine: OnceLock::new(),
            lookups: AtomicUsize::new(0),
        }
    }

    /// A fanout whose fine table is built now, over `ids` (`counts[255]` ids of `HASH_LEN` bytes,
    /// sorted): for tables built in memory to serve lookups, like the merged index.
    pub fn with_fine(counts: [u32; 256], ids: &[u8]) -> Fanout {
        let fanout = Fanout::new(counts);
        let ids = ids.as_chunks::<HASH_LEN>().0;
        if ids.len() >= FINE_MIN_IDS {
            let _ = fanout.fine.set(FineFanout::build(ids));
        }
        fanout
    }

    /// The fine fanout over `ids`, once this table has earned one.
    #[inline]
    fn fine(&self, ids: &[[u8; HASH_LEN]]) -> Option<&FineFanout> {
        if let Some(fine) = self.fine.get() {
            return fine.as_ref();
        }
        let len = ids.len();
        if len < FINE_MIN_IDS
            || self.lookups.fetch_add(1, AtomicOrdering::Relaxed) < len / FINE_LOOKUPS_DIVISOR
        {
            return None;
        }
        self.fine.get_or_init(|| FineFanout::build(ids)).as_ref()
    }
}

/// Where each run of ids sharing their leading `bits` bits starts: one bucket for every 8 to 16
/// ids, so a lookup reads one entry here and then scans a bucket of a few adjacent cache lines
/// of ids, where a first-byte bucket of a 200k-id table holds 800 to bisect.
///
/// Why buckets this size: the table must stay in the CPU cache while lookups stream through an
/// id table that does not (here 4 bytes every ~12 ids: 64 KiB for 200k ids, 32 MiB for 100M),
/// and a scan issues its loads at once where a bisection makes each wait for the one before.
/// With a bucket for every one or two ids (2 to 4 bytes an id) this table missed the cache on
/// its own, a second miss in every lookup.
#[derive(Debug)]
struct FineFanout {
    bits: u32,
    /// `starts[b]` = position of the first id whose leading bits are `>= b`; `2^bits + 1`
    /// entries, non-decreasing, each at most the id count.
    starts: Box<[u32]>,
}

impl FineFanout {
    /// Builds the table over sorted `ids` (`None` if it cannot be allocated). Ids out of order
    /// (a corrupt file) give wrong answers, as the bisection would, but never an out-of-range
    /// position: entries only grow and are capped by the id count.
    fn build(ids: &[[u8; HASH_LEN]]) -> Option<FineFanout> {
        let len = u32::try_from(ids.len()).ok()?;
        // 8 to 16 ids a bucket: ceil(log2(len)) - 4 bits, at most 2^24 buckets (64 MiB).
        let bits = (u32::BITS - len.saturating_sub(1).leading_zeros())
            .saturating_sub(FINE_BUCKET_IDS_LOG2)
            .clamp(8, 24);
        let buckets = 1usize << bits;
        let mut starts = Vec::new();
        starts.try_reserve_exact(buckets + 1).ok()?;
        for (position, id) in (0u32..).zip(ids) {
            let bucket = (leading_u64(id) >> (64 - bits)) as usize;
            while starts.len() <= bucket {
                starts.push(position);
            }
        }
        starts.resize(buckets + 1, len);
        Some(FineFanout {
            bits,
            starts: starts.into_boxed_slice(),
        })
    }

    /// Range of positions whose ids share `target`'s leading bits (`target` = an id's leading
    /// eight bytes).
    #[inline]
    fn range(&self, target: u64) -> (usize, usize) {
        let bucket = (target >> (64 - self.bits)) as usize;
        let lo = self.starts.get(bucket).copied().unwrap_or(0) as usize;
        let hi = self.starts.get(bucket + 1).copied().unwrap_or(0) as usize;
        (lo.min(hi), hi)
    }
}

/// A validated fanout plus the sorted id table it indexes. Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct SortedIds<'a> {
    fanout: &'a Fanout,
    /// Split into ids once, here: positions and the length then need no division by 20.
    ids: &'a [[u8; HASH_LEN]],
}

impl<'a> SortedIds<'a> {
    /// Pairs `fanout` with `ids`; `ids.len()` must be `counts[255] * 20` (callers check at open).
    pub fn new(fanout: &'a Fanout, ids: &'a [u8]) -> SortedIds<'a> {
        debug_assert_eq!(ids.len(), fanout.counts[255] as usize * HASH_LEN);
        SortedIds {
            fanout,
            ids: ids.as_chunks::<HASH_LEN>().0,
        }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The raw id at `index` (panics if out of range: callers index from this table's own results).
    #[inline]
    pub fn id_at(&self, index: usize) -> &'a [u8; HASH_LEN] {
        &self.ids[index]
    }

    /// Every id, in order: one pass over the table with no per-id bounds check.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8; HASH_LEN]> + use<'a> {
        self.ids.iter()
    }

    /// Range of positions whose ids start with `first_byte`, clamped to the table.
    #[inline]
    fn bucket(&self, first_byte: u8) -> (usize, usize) {
        let len = self.len();
        let counts = &self.fanout.counts;
        let hi = (counts[first_byte as usize] as usize).min(len);
        let lo = if first_byte == 0 {
            0
        } else {
            counts[first_byte as usize - 1] as usize
        };
        (lo.min(hi), hi)
    }

    /// Range of positions to search for an id whose leading eight bytes are `target`: its fine
    /// bucket when the table has one, else its first-byte bucket. Clamped to the table. Also
    /// how many leading bits every id of the range shares with `target`.
    #[inline]
    fn candidates(&self, target: u64) -> (usize, usize, u32) {
        match self.fanout.fine(self.ids) {
            Some(fine) => {
                let (lo, hi) = fine.range(target);
                let hi = hi.min(self.len());
                (lo.min(hi), hi, fine.bits)
            }
            None => {
                let (lo, hi) = self.bucket((target >> 56) as u8);
                (lo, hi, 8)
            }
        }
    }

    /// Position of `oid`, if present: fanout bucket (the fine one if built), then the first id of
    /// the bucket not below `oid` (see `SortedIds::first_not_below`), compared with it. Ids
    /// compare as three integers (eight, eight and four bytes): the first decides almost every
    /// comparison.
    #[inline]
    pub fn find(&self, oid: &ObjectId) -> Option<usize> {
        let target = leading_u64(&oid.0);
        let wanted = trailing(&oid.0);
        let (lo, hi, _) = self.candidates(target);
        let position = self.first_not_below(lo, hi, target, wanted);
        let id = self.ids.get(position)?;
        (leading_u64(id) == target && trailing(id) == wanted).then_some(position)
    }

    /// The first position in `lo..hi` whose id is not below (`target`, `wanted`) (an id's
    /// [`leading_u64`] and [`trailing`] words), `hi` if none is: a scan of a bucket of up to
    /// [`SCAN_MAX_IDS`] ids, a bisection of a bigger one.
    ///
    /// The scan's loads do not depend on each other, so the CPU runs those of a bucket's few
    /// cache lines at once, where each bisection step waits for the last (the read bench's
    /// 1-pack `exists` ran more than twice as fast when fine buckets grew from 1-2 ids to 8-16
    /// and were scanned instead of bisected).
    ///
    /// Plain bisection, not interpolation: the first probes of every search in a bucket land on
    /// the same few entries, which stay in the CPU cache, while interpolated guesses land
    /// anywhere and miss it every time. Timed on random lookups in the 210k-id index of the
    /// read bench's one-pack corpus, two interpolation steps first made lookups a few percent
    /// slower, not faster.
    #[inline]
    fn first_not_below(&self, lo: usize, hi: usize, target: u64, wanted: (u64, u32)) -> usize {
        let Some(candidates) = self.ids.get(lo..hi) else {
            return hi;
        };
        let below = |id: &[u8; HASH_LEN]| (leading_u64(id), trailing(id)) < (target, wanted);
        let offset = if candidates.len() <= SCAN_MAX_IDS {
            candidates
                .iter()
                .position(|id| !below(id))
                .unwrap_or(candidates.len())
        } else {
            candidates.partition_point(below)
        };
        lo + offset
    }

    /// First position whose id is `>= prefix.id()`, and the end of the range where ids starting
    /// with the prefix can lie. The search runs in the start id's bucket (the fine one when there
    /// is one): if no id there is `>=` the start, the first id of the next bucket is the answer.
    /// A prefix at least as long as the bits a bucket's ids share has all its matches in the
    /// bucket, so the range ends with it and the id after the bucket, often on another cache
    /// line, is never read; a shorter one's range ends with its first-byte bucket.
    fn lower_bound(&self, prefix: &Prefix) -> (usize, usize) {
        let (target, wanted) = prefix.words();
        let (lo, hi, shared_bits) = self.candidates(target);
        let end = if prefix.hex_len() * 4 >= shared_bits as usize {
            hi
        } else {
            self.bucket(prefix.id().0[0]).1
        };
        (self.first_not_below(lo, hi, target, wanted), end)
    }

    /// Looks a prefix up: none, exactly one position, or ambiguous (ids here are unique, so two
    /// matches are two distinct objects).
    pub fn find_prefix(&self, prefix: &Prefix) -> PrefixMatch {
        let (first, end) = self.lower_bound(prefix);
        if first >= end || !prefix.matches(self.id_at(first)) {
            return PrefixMatch::None;
        }
        if first + 1 < end && prefix.matches(self.id_at(first + 1)) {
            return PrefixMatch::Ambiguous;
        }
        PrefixMatch::One(first)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn counts(ids: &[[u8; HASH_LEN]]) -> [u32; 256] {
        let mut counts = [0u32; 256];
        for id in ids {
            for slot in counts.iter_mut().skip(id[0] as usize) {
                *slot += 1;
            }
        }
        counts
    }

    fn table(ids: &[[u8; HASH_LEN]]) -> (Fanout, Vec<u8>) {
        (Fanout::new(counts(ids)), ids.concat())
    }

    fn id(first: u8, second: u8, third: u8) -> [u8; HASH_LEN] {
        let mut id = [0u8; HASH_LEN];
        id[0] = first;
        id[1] = second;
        id[2] = third;
        id[19] = 1;
        id
    }

    #[test]
    fn finds_exact_and_prefix() {
        let ids = [
            id(0x00, 0x01, 0),
            id(0x12, 0x30, 0),
            id(0x12, 0x34, 0x10),
            id(0x12, 0x34, 0x50),
            id(0xff, 0xff, 0),
        ];
        let (fanout, raw) = table(&ids);
        let sorted = SortedIds::new(&fanout, &raw);
        for (i, one) in ids.iter().enumerate() {
            assert_eq!(sorted.find(&ObjectId(*one)), Some(i));
        }
        assert_eq!(sorted.find(&ObjectId(id(0x12, 0x33, 0))), None);
        let p = |hex: &str| Prefix::from_hex(hex).expect("valid prefix");
        assert_eq!(sorted.find_prefix(&p("1234")), PrefixMatch::Ambiguous);
        assert_eq!(sorted.find_prefix(&p("12341")), PrefixMatch::One(2));
        assert_eq!(sorted.find_prefix(&p("123450")), PrefixMatch::One(3));
        assert_eq!(sorted.find_prefix(&p("1230")), PrefixMatch::One(1));
        assert_eq!(sorted.find_prefix(&p("1235")), PrefixMatch::None);
        assert_eq!(sorted.find_prefix(&p("ffff")), PrefixMatch::One(4));
        assert_eq!(sorted.find_prefix(&p("0001")), PrefixMatch::One(0));
    }

    /// Ids that share their leading eight bytes differ in the words after them: a bucket small
    /// enough to be scanned and one big enough to be bisected find them alike.
    #[test]
    fn ids_sharing_their_leading_word() {
        for count in [5usize, 40] {
            let shared = |n: usize| {
                let mut id = [0x20u8; HASH_LEN];
                id[12] = (n / 4) as u8;
                id[19] = (n % 4) as u8 * 2;
                id
            };
            let ids: Vec<[u8; HASH_LEN]> = (0..count).map(shared).collect();
            assert!(ids.is_sorted());
            let (fanout, raw) = table(&ids);
            let sorted = SortedIds::new(&fanout, &raw);
            for (i, one) in ids.iter().enumerate() {
                assert_eq!(sorted.find(&ObjectId(*one)), Some(i), "{count} ids");
                let mut odd = *one;
                odd[19] += 1;
                assert_eq!(sorted.find(&ObjectId(odd)), None, "{count} ids");
            }
            // 25 digits end inside the middle word: ids 0 to 3 share them, and so on.
            let p = |hex: &str| Prefix::from_hex(hex).expect("valid prefix");
            let middle = "2020202020202020202020200";
            assert_eq!(sorted.find_prefix(&p(middle)), PrefixMatch::Ambiguous);
            // Ids 4 to 7 (those of them there are) share 39 digits, ending inside the last
            // word; 40 name id 4 alone.
            let last = format!("{middle}1{}0", "20".repeat(6));
            let expected = if count > 5 {
                PrefixMatch::Ambiguous
            } else {
                PrefixMatch::One(4)
            };
            assert_eq!(sorted.find_prefix(&p(&last)), expected, "{count} ids");
            assert_eq!(
                sorted.find_prefix(&p(&format!("{last}0"))),
                PrefixMatch::One(4)
            );
            let after = format!("{middle}{:x}", count.div_ceil(4) + 1);
            assert_eq!(sorted.find_prefix(&p(&after)), PrefixMatch::None);
        }
    }

    #[test]
    fn rejects_bad_fanouts() {
        assert_eq!(parse_fanout(&[0; 1020]), Err(FanoutError::WrongSize(1020)));
        let mut bytes = vec![0u8; FANOUT_LEN];
        bytes[254 * 4..255 * 4].copy_from_slice(&5u32.to_be_bytes());
        bytes[255 * 4..].copy_from_slice(&4u32.to_be_bytes());
        assert_eq!(
            parse_fanout(&bytes),
            Err(FanoutError::NotMonotonic {
                index: 255,
                value: 4,
                previous: 5
            })
        );
    }

    /// `count` random sorted ids; every 97th shares its leading eight bytes with the others of
    /// its kind, which exercises the tail comparison.
    pub(in crate::format) fn random_ids(count: usize) -> Vec<[u8; HASH_LEN]> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut ids: Vec<[u8; HASH_LEN]> = (0..count)
            .map(|i| {
                let mut id = [0u8; HASH_LEN];
                for chunk in id.chunks_mut(8) {
                    let bytes = next().to_be_bytes();
                    chunk.copy_from_slice(&bytes[..chunk.len()]);
                }
                if i % 97 == 0 {
                    id[..8].copy_from_slice(&[0x42; 8]);
                }
                id
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Checks `sorted` against a search of the sorted `ids` themselves: every `step`th id and
    /// ids just beside it, and prefixes of several lengths of every `41 * step`th.
    fn check_against_reference(ids: &[[u8; HASH_LEN]], sorted: SortedIds<'_>, step: usize) {
        for (i, id) in ids.iter().enumerate().step_by(step) {
            assert_eq!(sorted.find(&ObjectId(*id)), Some(i));
            let mut beside = *id;
            beside[19] ^= 1;
            assert_eq!(
                sorted.find(&ObjectId(beside)),
                ids.binary_search(&beside).ok()
            );
        }
        for (i, id) in ids.iter().enumerate().step_by(41 * step) {
            for hex_len in [4, 5, 7, 12, 16, 17, 40] {
                // The id's own prefix, and the prefix with its last digit changed: one that
                // often matches nothing, or starts past every id of its bucket.
                let mut changed = *id;
                changed[(hex_len - 1) / 2] ^= if hex_len % 2 == 1 { 0x10 } else { 0x01 };
                for start in [*id, changed] {
                    let digits = &ObjectId(start).to_hex()[..hex_len];
                    check_prefix(ids, sorted, digits, &format!("id {i}"));
                }
            }
        }
    }

    /// Checks `sorted`'s answer for the prefix `digits` against the hex digits of the ids.
    fn check_prefix(ids: &[[u8; HASH_LEN]], sorted: SortedIds<'_>, digits: &str, what: &str) {
        let prefix = Prefix::from_hex(digits).expect("valid prefix");
        let first = ids.partition_point(|other| other < &prefix.id().0);
        let matches = ids[first..]
            .iter()
            .take(2)
            // Independent of `Prefix::matches`: the hex digits themselves.
            .filter(|other| ObjectId(**other).to_hex().starts_with(digits))
            .count();
        let expected = match matches {
            0 => PrefixMatch::None,
            1 => PrefixMatch::One(first),
            _ => PrefixMatch::Ambiguous,
        };
        assert_eq!(
            sorted.find_prefix(&prefix),
            expected,
            "{what}: prefix {digits}"
        );
    }

    /// Bisection of first-byte buckets, and of fine buckets, agrees with a search of the ids
    /// themselves.
    #[test]
    fn large_tables_match_a_reference_search() {
        let ids = random_ids(20_000);
        let raw = ids.concat();
        let plain = Fanout::new(counts(&ids));
        assert!(plain.fine.get().is_none());
        check_against_reference(&ids, SortedIds::new(&plain, &raw), 1);
        // The lookups above were enough to earn the fine fanout; answers stay the same with it.
        assert!(plain.fine.get().is_some_and(Option::is_some));
        check_against_reference(&ids, SortedIds::new(&plain, &raw), 1);
        let fine = Fanout::with_fine(counts(&ids), &raw);
        check_against_reference(&ids, SortedIds::new(&fine, &raw), 1);
    }

    /// With more than 2^20 ids the fine buckets are narrower than a 4-hex prefix: a prefix's
    /// matches can start in the bucket after its start id's, or continue there.
    #[test]
    fn short_prefixes_span_fine_buckets() {
        let mut ids = random_ids(1_200_000);
        // A 4-hex prefix spans two fine buckets here. Of every 16th prefix the lower bucket is
        // emptied (its matches all lie in the upper one); of the prefix 8 after it, the lower
        // bucket keeps one id (a second match lies in the upper one).
        let four_hex = |id: &[u8; HASH_LEN]| u16::from_be_bytes([id[0], id[1]]);
        let mut kept_one_of = None;
        ids.retain(|id| {
            let (prefix, in_lower_bucket) = (four_hex(id), id[2] < 0x80);
            match prefix % 16 {
                0 if in_lower_bucket => false,
                8 if in_lower_bucket => kept_one_of.replace(prefix) != Some(prefix),
                _ => true,
            }
        });
        let raw = ids.concat();
        let fanout = Fanout::with_fine(counts(&ids), &raw);
        let bits = fanout
            .fine
            .get()
            .and_then(Option::as_ref)
            .expect("built")
            .bits;
        assert_eq!(bits, 17);
        let sorted = SortedIds::new(&fanout, &raw);
        check_against_reference(&ids, sorted, 97);
        for prefix in (0..=u16::MAX).step_by(8) {
            check_prefix(&ids, sorted, &format!("{prefix:04x}"), "thinned bucket");
        }
    }

    /// Ids out of order (a corrupt file) give wrong answers at worst, never a position out of
    /// range or a panic.
    #[test]
    fn fine_fanout_of_unsorted_ids_stays_in_range() {
        let mut ids = random_ids(20_000);
        ids.reverse();
        ids.swap(10, 15_000);
        let raw = ids.concat();
        let fanout = Fanout::with_fine(counts(&random_ids(20_000)), &raw);
        let sorted = SortedIds::new(&fanout, &raw);
        for id in ids.iter().step_by(7) {
            if let Some(position) = sorted.find(&ObjectId(*id)) {
                assert!(position < ids.len());
            }
            let prefix = Prefix::new(ObjectId(*id), 5).expect("valid length");
            if let PrefixMatch::One(position) = sorted.find_prefix(&prefix) {
                assert!(position < ids.len());
            }
        }
    }
}
