//! The fanout table + sorted id table search shared by `.idx` and the MIDX OIDF/OIDL chunks.
//!
//! Both formats store 256 big-endian `u32` cumulative counts (entry `b` = number of ids whose
//! first byte is `<= b`) followed, somewhere, by the sorted ids. [`SortedIds`] is a validated view
//! over the pair: the fanout is checked monotonic and consistent with the id count when built,
//! so lookups need no further checks beyond slice bounds.

use std::cmp::Ordering;

use super::{PrefixMatch, be_u32};
use crate::oid::{HASH_LEN, ObjectId, Prefix};

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

/// The first eight bytes of an id as a big-endian integer (orders like the bytes).
#[inline]
fn leading_u64(id: &[u8]) -> u64 {
    let mut leading = [0u8; 8];
    leading.copy_from_slice(&id[..8]);
    u64::from_be_bytes(leading)
}

/// A validated fanout plus the sorted id table it indexes. Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct SortedIds<'a> {
    fanout: &'a [u32; 256],
    ids: &'a [u8],
}

impl<'a> SortedIds<'a> {
    /// Pairs `fanout` with `ids`; `ids.len()` must be `fanout[255] * 20` (callers check at open).
    pub fn new(fanout: &'a [u32; 256], ids: &'a [u8]) -> SortedIds<'a> {
        debug_assert_eq!(ids.len(), fanout[255] as usize * HASH_LEN);
        SortedIds { fanout, ids }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ids.len() / HASH_LEN
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The raw id at `index` (panics if out of range: callers index from this table's own results).
    #[inline]
    pub fn id_at(&self, index: usize) -> &'a [u8] {
        &self.ids[index * HASH_LEN..(index + 1) * HASH_LEN]
    }

    /// Every id, in order: one pass over the table with no per-id bounds check.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8; HASH_LEN]> + use<'a> {
        self.ids.as_chunks::<HASH_LEN>().0.iter()
    }

    /// Range of positions whose ids start with `first_byte`, clamped to the table.
    #[inline]
    fn bucket(&self, first_byte: u8) -> (usize, usize) {
        let len = self.len();
        let hi = (self.fanout[first_byte as usize] as usize).min(len);
        let lo = if first_byte == 0 {
            0
        } else {
            self.fanout[first_byte as usize - 1] as usize
        };
        (lo.min(hi), hi)
    }

    /// Orders the id at `index` against `oid` (`target` = its leading eight bytes): one integer
    /// compare decides almost every probe; the 20-byte compare runs only on near-equal ids.
    #[inline]
    fn cmp_at(&self, index: usize, oid: &ObjectId, target: u64) -> Ordering {
        let id = self.id_at(index);
        match leading_u64(id).cmp(&target) {
            Ordering::Equal => id[8..].cmp(&oid.0[8..]),
            decided => decided,
        }
    }

    /// Position of `oid`, if present: fanout bucket, then binary search.
    ///
    /// Plain bisection, not interpolation: the first probes of every search in a bucket land on
    /// the same few entries, which stay in the CPU cache, while interpolated guesses land
    /// anywhere and miss it every time. Timed on random lookups in the 210k-id index of the
    /// read bench's one-pack corpus, two interpolation steps first made lookups a few percent
    /// slower, not faster.
    #[inline]
    pub fn find(&self, oid: &ObjectId) -> Option<usize> {
        let target = leading_u64(&oid.0);
        let (mut lo, mut hi) = self.bucket(oid.0[0]);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.cmp_at(mid, oid, target) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// First position whose id is `>= prefix.id()` within the prefix's first-byte bucket, and
    /// the bucket's end.
    fn lower_bound(&self, prefix: &Prefix) -> (usize, usize) {
        let start = prefix.id();
        let target = leading_u64(&start.0);
        let (bucket_lo, bucket_hi) = self.bucket(start.0[0]);
        let (mut lo, mut hi) = (bucket_lo, bucket_hi);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.cmp_at(mid, start, target) == Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (lo, bucket_hi)
    }

    /// Looks a prefix up: none, exactly one position, or ambiguous (ids here are unique, so two
    /// matches are two distinct objects).
    pub fn find_prefix(&self, prefix: &Prefix) -> PrefixMatch {
        let (first, bucket_end) = self.lower_bound(prefix);
        if first >= bucket_end || !prefix.matches(self.id_at(first)) {
            return PrefixMatch::None;
        }
        if first + 1 < bucket_end && prefix.matches(self.id_at(first + 1)) {
            return PrefixMatch::Ambiguous;
        }
        PrefixMatch::One(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(ids: &[[u8; HASH_LEN]]) -> ([u32; 256], Vec<u8>) {
        let mut fanout = [0u32; 256];
        for id in ids {
            for slot in fanout.iter_mut().skip(id[0] as usize) {
                *slot += 1;
            }
        }
        (fanout, ids.concat())
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

    /// Interpolation + binary search agree with a linear scan on large tables: every present id,
    /// ids just beside them, and prefixes of every length.
    #[test]
    fn large_tables_match_a_linear_scan() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut ids: Vec<[u8; HASH_LEN]> = (0..20_000)
            .map(|i| {
                let mut id = [0u8; HASH_LEN];
                for chunk in id.chunks_mut(8) {
                    let bytes = next().to_be_bytes();
                    chunk.copy_from_slice(&bytes[..chunk.len()]);
                }
                // Clusters of ids sharing 8 leading bytes exercise the tail comparison.
                if i % 97 == 0 {
                    id[..8].copy_from_slice(&[0x42; 8]);
                }
                id
            })
            .collect();
        ids.sort();
        ids.dedup();
        let (fanout, raw) = table(&ids);
        let sorted = SortedIds::new(&fanout, &raw);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(sorted.find(&ObjectId(*id)), Some(i));
            let mut beside = *id;
            beside[19] ^= 1;
            assert_eq!(
                sorted.find(&ObjectId(beside)),
                ids.binary_search(&beside).ok()
            );
        }
        for (i, id) in ids.iter().enumerate().step_by(41) {
            for hex_len in [4, 5, 7, 12, 16, 17, 40] {
                let prefix = Prefix::new(ObjectId(*id), hex_len).expect("valid length");
                let matches: Vec<usize> = (0..ids.len())
                    .filter(|&j| prefix.matches(&ids[j]))
                    .collect();
                let expected = match matches.len() {
                    0 => PrefixMatch::None,
                    1 => PrefixMatch::One(matches[0]),
                    _ => PrefixMatch::Ambiguous,
                };
                assert_eq!(
                    sorted.find_prefix(&prefix),
                    expected,
                    "id {i} prefix {hex_len}"
                );
            }
        }
    }
}
