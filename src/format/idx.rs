//! Pack index (`pack-*.idx`) v1 and v2 reading, and v2 writing (git-formats.md §2).
//!
//! [`PackIndex::from_bytes`] makes the checks git's `check_packed_git_idx` makes, and records
//! where each table starts, so accessors only bounds-check. v2 is read in place; v1 interleaves
//! offsets with ids, so its ids are copied once at open into the contiguous table
//! [`SortedIds`] searches (v1 indexes are rare and small: git has written v2 since 1.5.2).

use std::io::{self, Write};
use std::ops::Deref;

use super::PrefixMatch;
use super::fanout::{FANOUT_LEN, Fanout, FanoutError, SortedIds, parse_fanout};
use super::{be_u32, be_u64};
use crate::hash::{HashingWriter, Sha1};
use crate::oid::{HASH_LEN, ObjectId, Prefix};

/// The v2 signature `\377tOc`.
pub const V2_MAGIC: [u8; 4] = [0xff, b't', b'O', b'c'];
/// Smallest index git accepts: a fanout and the two trailer hashes.
pub const MIN_LEN: usize = FANOUT_LEN + 2 * HASH_LEN;
/// The v2 header: magic and version.
const V2_HEADER_LEN: usize = 8;
/// A v1 entry: u32 offset, then the id.
const V1_ENTRY_LEN: usize = 4 + HASH_LEN;
/// The flag bit of a v2 offset that says "index into the large-offset table".
const LARGE_FLAG: u32 = 0x8000_0000;
/// git's default `off32_limit`: offsets above it go to the large table.
pub const DEFAULT_OFF32_LIMIT: u64 = 0x7fff_ffff;

/// Why index bytes were rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Smaller than a fanout plus two hashes.
    #[error("index is {len} bytes, too small")]
    TooSmall {
        /// Length of the index.
        len: usize,
    },
    /// A v2 signature with a version other than 2.
    #[error("index version {0} is not supported")]
    UnsupportedVersion(u32),
    /// The fanout table is malformed.
    #[error(transparent)]
    Fanout(#[from] FanoutError),
    /// A v1 index whose size does not match its object count.
    #[error("wrong v1 index size {len} for {num_objects} objects, expected {expected}")]
    WrongV1Size {
        /// Length of the index.
        len: u64,
        /// Object count from the fanout.
        num_objects: u32,
        /// The only valid length.
        expected: u64,
    },
    /// A v2 index whose size does not match its object count.
    #[error("wrong v2 index size {len} for {num_objects} objects, expected {min}..={max}")]
    WrongV2Size {
        /// Length of the index.
        len: u64,
        /// Object count from the fanout.
        num_objects: u32,
        /// Smallest valid length (no large offsets).
        min: u64,
        /// Largest valid length (every object but one with a large offset).
        max: u64,
    },
    /// A position at or past the object count.
    #[error("index position {index} out of range ({num_objects} objects)")]
    PositionOutOfRange {
        /// The requested position.
        index: usize,
        /// Number of objects.
        num_objects: usize,
    },
    /// A v2 offset points past the large-offset table.
    #[error("object {index}: large offset entry {large_index} past the table of {large_count}")]
    LargeOffsetOutOfRange {
        /// Position of the object.
        index: usize,
        /// Large-table entry it names.
        large_index: u32,
        /// Entries in the large table.
        large_count: usize,
    },
}

/// An index's first bytes that [`Head::check`] reads: the v2 header and the fanout (a v1 index
/// starts with its fanout, and is longer than this too: see [`MIN_LEN`]).
pub const HEAD_LEN: usize = V2_HEADER_LEN + FANOUT_LEN;

/// Bytes of ids one [`Head::find`] reads at most: a bucket (the ids sharing a first byte) larger
/// than this (a pack of over 800k objects) is searched in the mapping instead.
pub const MAX_BUCKET_READ: usize = 64 << 10;

/// What an index's head, trailer and length say, checked as [`PackIndex::from_bytes`] checks
/// them: enough to check a pack against the index, and to look ids up by reading the file
/// ([`Head::find`]) while it is not mapped.
#[derive(Debug)]
pub struct Head {
    layout: Layout,
    len: u64,
    pack_checksum: ObjectId,
}

/// What [`Head::find`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum FileLookup {
    /// The id is in the index; its object is at this pack offset.
    Found(u64),
    /// The id is not in the index.
    Absent,
    /// The id's bucket is over [`MAX_BUCKET_READ`]: search the mapping.
    BucketTooLarge,
}

/// Why [`Head::find`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FileLookupError {
    /// Reading the file failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The index is corrupt where the lookup read it.
    #[error(transparent)]
    Index(#[from] Error),
}

impl Head {
    /// Checks an index from its first [`HEAD_LEN`] bytes, its last two hashes (`tail`) and its
    /// length.
    pub fn check(head: &[u8], tail: &[u8; 2 * HASH_LEN], len: u64) -> Result<Head, Error> {
        let layout = Layout::check(head, usize::try_from(len).unwrap_or(usize::MAX))?;
        let mut pack_checksum = [0; HASH_LEN];
        pack_checksum.copy_from_slice(&tail[..HASH_LEN]);
        Ok(Head {
            layout,
            len,
            pack_checksum: ObjectId(pack_checksum),
        })
    }

    /// Number of objects.
    pub fn num_objects(&self) -> usize {
        self.layout.num_objects
    }

    /// The pack checksum recorded in the index.
    pub fn pack_checksum(&self) -> ObjectId {
        self.pack_checksum
    }

    /// Looks `oid` up in the index file, `read(position, buffer)` filling `buffer` with the
    /// file's bytes at `position`: one read of the ids sharing its first byte (none when the
    /// fanout says there are none), then one of its offset (two for a large offset).
    pub fn find(
        &self,
        oid: &ObjectId,
        mut read: impl FnMut(u64, &mut [u8]) -> io::Result<()>,
    ) -> Result<FileLookup, FileLookupError> {
        let fanout = &self.layout.fanout;
        let first = usize::from(oid.0[0]);
        let start = if first == 0 { 0 } else { fanout[first - 1] } as usize;
        let end = fanout[first] as usize;
        if start == end {
            return Ok(FileLookup::Absent);
        }
        // v1 entries are an offset and an id; v2 ids are a table of their own.
        let (table, entry_len, id_at) = if self.layout.version == 1 {
            (FANOUT_LEN, V1_ENTRY_LEN, 4)
        } else {
            (V2_HEADER_LEN + FANOUT_LEN, HASH_LEN, 0)
        };
        let bucket_len = (end - start) * entry_len;
        if bucket_len > MAX_BUCKET_READ {
            return Ok(FileLookup::BucketTooLarge);
        }
        let mut small = [0; 4096];
        let mut large = Vec::new();
        let bucket = if bucket_len <= small.len() {
            &mut small[..bucket_len]
        } else {
            large.resize(bucket_len, 0);
            &mut large[..]
        };
        // `Layout::check` matched the length to the count: every table lies in the file.
        read((table + start * entry_len) as u64, bucket)?;
        let id = |i: usize| &bucket[i * entry_len + id_at..i * entry_len + id_at + HASH_LEN];
        let (mut low, mut high) = (0, end - start);
        let found = loop {
            if low >= high {
                return Ok(FileLookup::Absent);
            }
            let middle = low + (high - low) / 2;
            match id(middle).cmp(&oid.0[..]) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => break middle,
            }
        };
        let position = start + found;
        if self.layout.version == 1 {
            let entry = &bucket[found * entry_len..];
            let offset = be_u32(entry, 0).ok_or(Error::TooSmall { len: bucket_len })?;
            return Ok(FileLookup::Found(u64::from(offset)));
        }
        let count = self.layout.num_objects;
        let offsets = table + count * (HASH_LEN + 4);
        let mut small_offset = [0; 4];
        read((offsets + position * 4) as u64, &mut small_offset)?;
        let small_offset = u32::from_be_bytes(small_offset);
        if small_offset & LARGE_FLAG == 0 {
            return Ok(FileLookup::Found(u64::from(small_offset)));
        }
        let large_index = small_offset & !LARGE_FLAG;
        let large_start = (offsets + count * 4) as u64;
        let large_count =
            usize::try_from((self.len - 2 * HASH_LEN as u64).saturating_sub(large_start) / 8)
                .unwrap_or(usize::MAX);
        if large_index as usize >= large_count {
            return Err(Error::LargeOffsetOutOfRange {
                index: position,
                large_index,
                large_count,
            }
            .into());
        }
        let mut large_offset = [0; 8];
        read(large_start + u64::from(large_index) * 8, &mut large_offset)?;
        Ok(FileLookup::Found(u64::from_be_bytes(large_offset)))
    }
}

/// An index's version and fanout, checked against its length.
#[derive(Debug)]
struct Layout {
    version: u32,
    fanout: [u32; 256],
    num_objects: usize,
}

impl Layout {
    /// Checks what `head` (the index's first bytes, at least [`HEAD_LEN`] of them) and the
    /// index's length `len` say: the version, a monotonic fanout, and a length that fits the
    /// object count.
    fn check(head: &[u8], len: usize) -> Result<Layout, Error> {
        if len < MIN_LEN {
            return Err(Error::TooSmall { len });
        }
        // As in git, the signature decides: a v1 fanout starting with 0xff744f63 objects would
        // need a multi-GiB index, so the two cannot be confused.
        let version = if head.get(..4) == Some(&V2_MAGIC[..]) {
            let version = be_u32(head, 4).ok_or(Error::TooSmall { len })?;
            if version != 2 {
                return Err(Error::UnsupportedVersion(version));
            }
            2
        } else {
            1
        };
        let fanout_start = if version == 2 { V2_HEADER_LEN } else { 0 };
        let fanout_bytes = head
            .get(fanout_start..fanout_start + FANOUT_LEN)
            .ok_or(Error::TooSmall { len })?;
        let fanout = parse_fanout(fanout_bytes)?;
        let count = fanout[255];
        // Sizes are computed in u64 from a u32 count, so they cannot overflow; once a size
        // matches `len`, every table offset fits in usize.
        let n = u64::from(count);
        let len64 = len as u64;
        let hash = HASH_LEN as u64;
        if version == 1 {
            let expected = FANOUT_LEN as u64 + n * V1_ENTRY_LEN as u64 + 2 * hash;
            if len64 != expected {
                return Err(Error::WrongV1Size {
                    len: len64,
                    num_objects: count,
                    expected,
                });
            }
        } else {
            let min = (V2_HEADER_LEN + FANOUT_LEN) as u64 + n * (hash + 8) + 2 * hash;
            let max = min + n.saturating_sub(1) * 8;
            if len64 < min || len64 > max {
                return Err(Error::WrongV2Size {
                    len: len64,
                    num_objects: count,
                    min,
                    max,
                });
            }
        }
        Ok(Layout {
            version,
            fanout,
            num_objects: count as usize,
        })
    }
}

/// A validated view over `.idx` bytes.
#[derive(Debug)]
pub struct PackIndex<D> {
    data: D,
    fanout: Fanout,
    version: u32,
    num_objects: usize,
    /// v1 only: the ids copied out of the interleaved entries; empty for v2.
    v1_ids: Vec<u8>,
    /// v2: start of the id table; v1: start of the entries.
    ids_start: usize,
    /// v2: start of the CRC32 table.
    crc_start: usize,
    /// v2: start of the 32-bit offset table.
    offsets_start: usize,
    /// v2: start of the large-offset table.
    large_start: usize,
    /// v2: whole entries in the large-offset table.
    large_count: usize,
    /// Start of the two trailer hashes.
    trailer_start: usize,
}

impl<D: Deref<Target = [u8]>> PackIndex<D> {
    /// Validates `data` as a v1 or v2 index.
    pub fn from_bytes(data: D) -> Result<Self, Error> {
        let bytes: &[u8] = &data;
        let len = bytes.len();
        let Layout {
            version,
            fanout,
            num_objects,
        } = Layout::check(bytes, len)?;
        let fanout_start = if version == 2 { V2_HEADER_LEN } else { 0 };
        let trailer_start = len - 2 * HASH_LEN;
        // `Layout::check` matched the size to the count, so every table offset below fits.
        let ids_start = fanout_start + FANOUT_LEN;
        if version == 1 {
            let entries = bytes
                .get(ids_start..ids_start + num_objects * V1_ENTRY_LEN)
                .ok_or(Error::TooSmall { len })?;
            let v1_ids = entries
                .chunks_exact(V1_ENTRY_LEN)
                .flat_map(|entry| entry.get(4..).unwrap_or_default())
                .copied()
                .collect();
            return Ok(PackIndex {
                data,
                fanout: Fanout::new(fanout),
                version,
                num_objects,
                v1_ids,
                ids_start,
                crc_start: ids_start,
                offsets_start: ids_start,
                large_start: ids_start,
                large_count: 0,
                trailer_start,
            });
        }
        let crc_start = ids_start + num_objects * HASH_LEN;
        let offsets_start = crc_start + num_objects * 4;
        let large_start = offsets_start + num_objects * 4;
        let large_count = trailer_start.saturating_sub(large_start) / 8;
        Ok(PackIndex {
            data,
            fanout: Fanout::new(fanout),
            version,
            num_objects,
            v1_ids: Vec::new(),
            ids_start,
            crc_start,
            offsets_start,
            large_start,
            large_count,
            trailer_start,
        })
    }

    /// 1 or 2.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Number of objects.
    pub fn num_objects(&self) -> usize {
        self.num_objects
    }

    /// The fanout + sorted ids, for lookups and iteration.
    pub fn ids(&self) -> SortedIds<'_> {
        let ids = if self.version == 1 {
            &self.v1_ids[..]
        } else {
            // Validated at open: the table lies inside the data.
            self.data
                .get(self.ids_start..self.ids_start + self.num_objects * HASH_LEN)
                .unwrap_or_default()
        };
        SortedIds::new(&self.fanout, ids)
    }

    /// Id at `index` (`index < num_objects()`).
    ///
    /// # Panics
    ///
    /// If `index >= num_objects()`, like slice indexing: positions come from this index's own
    /// lookups or iteration, never from file contents.
    pub fn oid_at(&self, index: usize) -> ObjectId {
        ObjectId(*self.ids().id_at(index))
    }

    /// Pack offset of the object at `index`; an error for a large-offset index out of range.
    pub fn offset_at(&self, index: usize) -> Result<u64, Error> {
        let out_of_range = Error::PositionOutOfRange {
            index,
            num_objects: self.num_objects,
        };
        if index >= self.num_objects {
            return Err(out_of_range);
        }
        if self.version == 1 {
            return be_u32(&self.data, self.ids_start + index * V1_ENTRY_LEN)
                .map(u64::from)
                .ok_or(out_of_range);
        }
        let small = be_u32(&self.data, self.offsets_start + index * 4).ok_or(out_of_range)?;
        if small & LARGE_FLAG == 0 {
            return Ok(u64::from(small));
        }
        let large_index = small & !LARGE_FLAG;
        let beyond = Error::LargeOffsetOutOfRange {
            index,
            large_index,
            large_count: self.large_count,
        };
        let slot = large_index as usize;
        if slot >= self.large_count {
            return Err(beyond);
        }
        be_u64(&self.data, self.large_start + slot * 8).ok_or(beyond)
    }

    /// CRC32 of the entry at `index` (v2 only).
    pub fn crc32_at(&self, index: usize) -> Option<u32> {
        if self.version != 2 || index >= self.num_objects {
            return None;
        }
        be_u32(&self.data, self.crc_start + index * 4)
    }

    /// Position of `oid`.
    pub fn find(&self, oid: &ObjectId) -> Option<usize> {
        self.ids().find(oid)
    }

    /// Prefix lookup.
    pub fn find_prefix(&self, prefix: &Prefix) -> PrefixMatch {
        self.ids().find_prefix(prefix)
    }

    /// The pack checksum recorded in the index (equals the pack's trailer).
    pub fn pack_checksum(&self) -> ObjectId {
        self.trailer_hash(0)
    }

    /// The index's own checksum: the SHA-1 of everything before it.
    pub fn checksum(&self) -> ObjectId {
        self.trailer_hash(HASH_LEN)
    }

    /// Whether [`checksum`](Self::checksum) is the SHA-1 of the rest of the file (reads it all).
    pub fn verify_checksum(&self) -> bool {
        let hashed_len = self.trailer_start + HASH_LEN;
        let Some(hashed) = self.data.get(..hashed_len) else {
            return false;
        };
        let mut hasher = Sha1::new();
        hasher.update(hashed);
        hasher
            .finalize()
            .is_ok_and(|digest| digest == self.checksum())
    }

    /// The trailer hash `skip` bytes into the trailer (0: pack checksum, 20: idx checksum).
    fn trailer_hash(&self, skip: usize) -> ObjectId {
        let start = self.trailer_start + skip;
        // At open `len >= MIN_LEN`, so both trailer hashes are present.
        self.data
            .get(start..start + HASH_LEN)
            .and_then(ObjectId::from_slice)
            .unwrap_or_default()
    }
}

/// One object of an index being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The object id.
    pub id: ObjectId,
    /// Offset of its entry in the pack.
    pub offset: u64,
    /// CRC32 of the whole pack entry (header, base reference, compressed data).
    pub crc32: u32,
}

/// Writes a v2 index byte-identical to what `git index-pack` writes for the same pack;
/// `entries` must be sorted by id. Returns the index's checksum (also its trailer).
pub fn write_v2<W: Write>(
    entries: &[IndexEntry],
    pack_checksum: &ObjectId,
    out: W,
) -> io::Result<ObjectId> {
    write_v2_with_limit(entries, pack_checksum, DEFAULT_OFF32_LIMIT, out)
}

/// [`write_v2`] with git's `off32_limit` (`--index-version=2,<limit>`): offsets above `limit`,
/// and all offsets of 2^31 or more, go to the large-offset table.
pub fn write_v2_with_limit<W: Write>(
    entries: &[IndexEntry],
    pack_checksum: &ObjectId,
    off32_limit: u64,
    out: W,
) -> io::Result<ObjectId> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
    if u32::try_from(entries.len()).is_err() {
        return Err(invalid("more than 2^32-1 objects in one index"));
    }
    if entries.windows(2).any(|pair| pair[0].id > pair[1].id) {
        return Err(invalid("index entries are not sorted by id"));
    }
    let needs_large = |offset: u64| offset >> 31 != 0 || offset > off32_limit;

    let mut file = HashingWriter::new(out);
    file.write_all(&V2_MAGIC)?;
    file.write_all(&2u32.to_be_bytes())?;
    let mut fanout = [0u32; 256];
    for entry in entries {
        fanout[usize::from(entry.id.0[0])] += 1;
    }
    let mut running = 0u32;
    for count in fanout {
        // Sum of bucket sizes = entries.len(), checked to fit u32 above.
        running += count;
        file.write_all(&running.to_be_bytes())?;
    }
    for entry in entries {
        file.write_all(&entry.id.0)?;
    }
    for entry in entries {
        file.write_all(&entry.crc32.to_be_bytes())?;
    }
    let mut large = 0u32;
    for entry in entries {
        let value = if needs_large(entry.offset) {
            if large & LARGE_FLAG != 0 {
                return Err(invalid("more than 2^31 large offsets"));
            }
            let slot = LARGE_FLAG | large;
            large += 1;
            slot
        } else {
            // Not large, so it fits in 31 bits.
            entry.offset as u32
        };
        file.write_all(&value.to_be_bytes())?;
    }
    for entry in entries.iter().filter(|entry| needs_large(entry.offset)) {
        file.write_all(&entry.offset.to_be_bytes())?;
    }
    file.write_all(&pack_checksum.0)?;
    let (checksum, _out) = file.finish()?;
    Ok(checksum)
}

/// A pack index is the entry list the MIDX writer and `verify` consume.
impl<D: Deref<Target = [u8]>> super::midx::PackEntries for PackIndex<D> {
    fn len(&self) -> usize {
        self.num_objects()
    }

    fn oid_at(&self, i: usize) -> ObjectId {
        PackIndex::oid_at(self, i)
    }

    /// A large-offset slot out of range reads as `u64::MAX`, which no pack reaches: the MIDX
    /// writer's callers validate every offset first (`offset_at` is the checked accessor).
    fn offset_at(&self, i: usize) -> u64 {
        PackIndex::offset_at(self, i).unwrap_or(u64::MAX)
    }

    fn find(&self, oid: &ObjectId) -> Option<usize> {
        PackIndex::find(self, oid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: u8, last: u8) -> ObjectId {
        let mut id = ObjectId([0x11; HASH_LEN]);
        id.0[0] = first;
        id.0[19] = last;
        id
    }

    fn entries() -> Vec<IndexEntry> {
        vec![
            IndexEntry {
                id: id(0x00, 1),
                offset: 12,
                crc32: 0xdead_beef,
            },
            IndexEntry {
                id: id(0x7f, 1),
                offset: 0x8000_0000,
                crc32: 2,
            },
            IndexEntry {
                id: id(0x7f, 2),
                offset: 300,
                crc32: 3,
            },
            IndexEntry {
                id: id(0xff, 9),
                offset: 1 << 40,
                crc32: 4,
            },
        ]
    }

    fn written(entries: &[IndexEntry]) -> (Vec<u8>, ObjectId) {
        let mut out = Vec::new();
        let sum = write_v2(entries, &ObjectId([0xaa; HASH_LEN]), &mut out).expect("vec write");
        (out, sum)
    }

    /// A v1 index of `entries` (offsets must fit 32 bits).
    fn v1_bytes(entries: &[IndexEntry]) -> Vec<u8> {
        let mut out = Vec::new();
        for byte in 0..=255u8 {
            let count = entries.iter().filter(|e| e.id.0[0] <= byte).count() as u32;
            out.extend_from_slice(&count.to_be_bytes());
        }
        for e in entries {
            out.extend_from_slice(&(e.offset as u32).to_be_bytes());
            out.extend_from_slice(&e.id.0);
        }
        out.extend_from_slice(&[0xaa; HASH_LEN]);
        let mut hasher = Sha1::new();
        hasher.update(&out);
        out.extend_from_slice(&hasher.finalize().expect("no collision").0);
        out
    }

    #[test]
    fn v2_round_trip() {
        let entries = entries();
        let (bytes, sum) = written(&entries);
        assert_eq!(bytes.len(), 8 + 1024 + 4 * 28 + 2 * 8 + 40);
        let idx = PackIndex::from_bytes(&bytes[..]).expect("valid v2");
        assert_eq!((idx.version(), idx.num_objects()), (2, 4));
        assert_eq!(idx.checksum(), sum);
        assert_eq!(idx.pack_checksum(), ObjectId([0xaa; HASH_LEN]));
        assert!(idx.verify_checksum());
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(idx.oid_at(i), e.id);
            assert_eq!(idx.offset_at(i), Ok(e.offset));
            assert_eq!(idx.crc32_at(i), Some(e.crc32));
            assert_eq!(idx.find(&e.id), Some(i));
        }
        assert_eq!(idx.find(&id(0x7f, 3)), None);
        assert_eq!(
            idx.offset_at(4),
            Err(Error::PositionOutOfRange {
                index: 4,
                num_objects: 4
            })
        );
        assert_eq!(idx.crc32_at(4), None);
        assert_file_lookups_agree(&bytes);
        let head = head_of(&bytes).expect("head");
        let absent = file_find(&head, &bytes, &id(0x7f, 3)).expect("lookup");
        assert_eq!(absent, FileLookup::Absent);
        let prefix = |hex: &str| Prefix::from_hex(hex).expect("prefix");
        assert_eq!(idx.find_prefix(&prefix("7f11")), PrefixMatch::Ambiguous);
        assert_eq!(idx.find_prefix(&prefix("ff11")), PrefixMatch::One(3));
        assert_eq!(idx.find_prefix(&prefix("ab11")), PrefixMatch::None);

        let mut flipped = bytes.clone();
        flipped[8 + 1024] ^= 1;
        let idx = PackIndex::from_bytes(flipped).expect("still structurally valid");
        assert!(!idx.verify_checksum());
    }

    #[test]
    fn write_v2_honours_limit_and_order() {
        let entries = entries();
        let mut out = Vec::new();
        write_v2_with_limit(&entries, &ObjectId::ZERO, 100, &mut out).expect("vec write");
        let idx = PackIndex::from_bytes(&out[..]).expect("valid");
        // 0x8000_0000, 300 and 2^40 are large; 12 is not.
        assert_eq!(idx.large_count, 3);
        assert_eq!(idx.offset_at(2), Ok(300));
        let mut reversed = entries.clone();
        reversed.reverse();
        let err = write_v2(&reversed, &ObjectId::ZERO, Vec::new()).expect_err("unsorted");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn empty_v2() {
        let (bytes, _) = written(&[]);
        assert_eq!(bytes.len(), 8 + 1024 + 40);
        let idx = PackIndex::from_bytes(&bytes[..]).expect("valid");
        assert_eq!(idx.num_objects(), 0);
        assert_eq!(idx.find(&id(0, 0)), None);
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 8]);
        assert_eq!(
            PackIndex::from_bytes(&longer[..]).map(|_| ()),
            Err(Error::WrongV2Size {
                len: 1080,
                num_objects: 0,
                min: 1072,
                max: 1072
            })
        );
    }

    #[test]
    fn v2_rejections() {
        let (bytes, _) = written(&entries());
        let parse = |b: &[u8]| {
            let opened = PackIndex::from_bytes(b);
            let read = head_of(b).map(|head| summary(&head));
            assert_eq!(
                read,
                opened.as_ref().map(summary_of_index).map_err(Clone::clone)
            );
            opened.map(|_| ())
        };
        assert_eq!(parse(&bytes[..1063]), Err(Error::TooSmall { len: 1063 }));
        let min = (8 + 1024 + 4 * 28 + 40) as u64;
        let short = &bytes[..bytes.len() - 2 * 8 - 1];
        assert_eq!(
            parse(short),
            Err(Error::WrongV2Size {
                len: min - 1,
                num_objects: 4,
                min,
                max: min + 24
            })
        );
        let mut long = bytes.clone();
        long.extend_from_slice(&[0; 9]);
        assert!(matches!(parse(&long), Err(Error::WrongV2Size { .. })));
        let mut v3 = bytes.clone();
        v3[7] = 3;
        assert_eq!(parse(&v3), Err(Error::UnsupportedVersion(3)));
        let mut fanout = bytes.clone();
        fanout[8 + 4 * 10 + 3] = 9; // fanout[10] = 9 > fanout[11] = 1
        assert_eq!(
            parse(&fanout),
            Err(Error::Fanout(FanoutError::NotMonotonic {
                index: 11,
                value: 1,
                previous: 9
            }))
        );
    }

    #[test]
    fn large_offset_out_of_range() {
        let (mut bytes, _) = written(&entries());
        let offsets = 8 + 1024 + 4 * 24;
        // Entry 3 names large slot 7; the table holds 2.
        bytes[offsets + 12..offsets + 16].copy_from_slice(&(LARGE_FLAG | 7).to_be_bytes());
        let idx = PackIndex::from_bytes(&bytes[..]).expect("structure still valid");
        assert_eq!(
            idx.offset_at(3),
            Err(Error::LargeOffsetOutOfRange {
                index: 3,
                large_index: 7,
                large_count: 2
            })
        );
        assert_eq!(idx.offset_at(0), Ok(12));
        assert_file_lookups_agree(&bytes);
    }

    #[test]
    fn v1_reading() {
        let mut entries = entries();
        entries[1].offset = 0x1234;
        entries[3].offset = 0xffff_fff0;
        let bytes = v1_bytes(&entries);
        let idx = PackIndex::from_bytes(&bytes[..]).expect("valid v1");
        assert_eq!((idx.version(), idx.num_objects()), (1, 4));
        assert!(idx.verify_checksum());
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(idx.oid_at(i), e.id);
            assert_eq!(idx.offset_at(i), Ok(e.offset));
            assert_eq!(idx.crc32_at(i), None);
            assert_eq!(idx.find(&e.id), Some(i));
        }
        assert_eq!(idx.pack_checksum(), ObjectId([0xaa; HASH_LEN]));
        assert_file_lookups_agree(&bytes);
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(
            PackIndex::from_bytes(&extra[..]).map(|_| ()),
            Err(Error::WrongV1Size {
                len: 1161,
                num_objects: 4,
                expected: 1160
            })
        );
    }

    /// The [`Head`] of `bytes` read as a file: its head, its last two hashes and its length.
    fn head_of(bytes: &[u8]) -> Result<Head, Error> {
        let head = &bytes[..bytes.len().min(HEAD_LEN)];
        let tail = bytes[bytes.len() - 2 * HASH_LEN..]
            .try_into()
            .expect("40 bytes");
        Head::check(head, tail, bytes.len() as u64)
    }

    /// What a head and an opened index say of the object count and the pack checksum.
    fn summary(head: &Head) -> (usize, ObjectId) {
        (head.num_objects(), head.pack_checksum())
    }

    fn summary_of_index(idx: &PackIndex<&[u8]>) -> (usize, ObjectId) {
        (idx.num_objects(), idx.pack_checksum())
    }

    /// [`Head::find`] over `bytes` as the file.
    fn file_find(head: &Head, bytes: &[u8], oid: &ObjectId) -> Result<FileLookup, FileLookupError> {
        head.find(oid, |position, buffer| {
            let start = usize::try_from(position).expect("position");
            let source = bytes
                .get(start..start + buffer.len())
                .ok_or(io::ErrorKind::UnexpectedEof)?;
            buffer.copy_from_slice(source);
            Ok(())
        })
    }

    /// Looking every id of a valid index up by reading it as a file finds what the opened
    /// index finds (the offset, or the same error); ids one bit off are found in neither.
    fn assert_file_lookups_agree(bytes: &[u8]) {
        let idx = PackIndex::from_bytes(bytes).expect("valid index");
        let head = head_of(bytes).expect("valid head");
        assert_eq!(summary(&head), summary_of_index(&idx));
        for i in 0..idx.num_objects() {
            let oid = idx.oid_at(i);
            match (idx.offset_at(i), file_find(&head, bytes, &oid)) {
                (Ok(offset), Ok(found)) => assert_eq!(found, FileLookup::Found(offset)),
                (Err(error), Err(FileLookupError::Index(read_error))) => {
                    assert_eq!(error, read_error)
                }
                (opened, read) => panic!("object {i}: {opened:?} opened, {read:?} read"),
            }
            let mut absent = oid;
            absent.0[HASH_LEN - 1] ^= 1;
            if idx.find(&absent).is_none() {
                let found = file_find(&head, bytes, &absent).expect("lookup");
                assert_eq!(found, FileLookup::Absent);
            }
        }
    }

    #[test]
    fn corrupted_bytes_never_panic() {
        let (bytes, _) = written(&entries());
        let v1 = v1_bytes(&entries()[..3]);
        for original in [bytes, v1] {
            for pos in 0..original.len() {
                for value in [0x00, 0x80, 0xff] {
                    let mut bad = original.clone();
                    bad[pos] = value;
                    let opened = PackIndex::from_bytes(&bad[..]);
                    let head = head_of(&bad);
                    assert_eq!(
                        head.as_ref().map(summary).map_err(Clone::clone),
                        opened.as_ref().map(summary_of_index).map_err(Clone::clone),
                        "at {pos}"
                    );
                    let (Ok(idx), Ok(head)) = (opened, head) else {
                        continue;
                    };
                    for i in 0..idx.num_objects() {
                        let _ = file_find(&head, &bad, &idx.oid_at(i));
                    }
                    for i in 0..idx.num_objects() + 1 {
                        let _ = (idx.offset_at(i), idx.crc32_at(i));
                    }
                    for i in 0..idx.num_objects() {
                        let _ = idx.find(&idx.oid_at(i));
                    }
                    let _ = (idx.pack_checksum(), idx.checksum(), idx.verify_checksum());
                }
            }
        }
    }

    /// End-to-end against real git packs: see `git_repo`.
    mod git_repo {
        use super::*;
        use crate::format::delta;
        use crate::format::pack::{self, EntryKind, ObjectKind};
        use crate::hash::object_id;
        use crate::zlib;
        use std::collections::HashMap;
        use std::path::{Path, PathBuf};

        fn git(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
            crate::test_git::git_bytes(dir, args, stdin.unwrap_or_default())
        }

        /// A repository with many versions of a few files, so packs hold delta chains.
        fn make_repo() -> tempfile::TempDir {
            let dir = tempfile::tempdir().expect("tempdir");
            let root = dir.path();
            git(root, &["-c", "init.defaultBranch=main", "init", "-q"], None);
            let mut lines: Vec<String> = (0..400)
                .map(|i| format!("line {i} of some text that repeats\n"))
                .collect();
            for version in 0..12 {
                lines[version * 7 % 400] = format!("changed in version {version}\n");
                lines.insert(version * 31 % 400, format!("inserted {version}\n"));
                std::fs::write(root.join("file.txt"), lines.concat()).expect("write");
                std::fs::write(root.join("other.txt"), lines[..100 + version].concat())
                    .expect("write");
                git(root, &["add", "."], None);
                git(
                    root,
                    &["commit", "-q", "-m", &format!("version {version}")],
                    None,
                );
            }
            git(root, &["tag", "-a", "-m", "a tag", "v1"], None);
            dir
        }

        fn pack_files(dir: &Path, prefix: &str) -> (PathBuf, PathBuf) {
            let mut packs: Vec<PathBuf> = std::fs::read_dir(dir)
                .expect("read pack dir")
                .map(|entry| entry.expect("dir entry").path())
                .filter(|path| {
                    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    name.starts_with(prefix) && name.ends_with(".pack")
                })
                .collect();
            assert_eq!(packs.len(), 1, "one {prefix}*.pack in {}", dir.display());
            let pack = packs.remove(0);
            (pack.with_extension("idx"), pack)
        }

        struct Stats {
            ofs: usize,
            refs: usize,
            large: usize,
        }

        fn resolve(
            pack: &[u8],
            idx: &PackIndex<Vec<u8>>,
            offset: u64,
            depth: usize,
        ) -> (ObjectKind, Vec<u8>) {
            assert!(depth < 100, "delta chain too deep");
            let entry = pack::parse_entry(pack, offset).expect("entry header");
            let data = &pack[entry.data_offset as usize..];
            let mut body = vec![0u8; entry.size as usize];
            zlib::inflate_exact(data, &mut body).expect("inflate");
            let base_offset = match entry.kind {
                EntryKind::Base(kind) => return (kind, body),
                EntryKind::OfsDelta { base_offset } => base_offset,
                EntryKind::RefDelta { base } => idx
                    .offset_at(idx.find(&base).expect("base in pack"))
                    .expect("offset"),
            };
            let (kind, base) = resolve(pack, idx, base_offset, depth + 1);
            let mut head = [0u8; 20];
            let got = zlib::inflate_prefix(data, &mut head).expect("prefix");
            let header = delta::parse_header(&head[..got]).expect("delta header");
            assert_eq!(header.base_size, base.len() as u64);
            let mut out = Vec::new();
            delta::apply(&base, &body, header.result_size, &mut out).expect("apply");
            assert_eq!(out.len() as u64, header.result_size);
            (kind, out)
        }

        /// Checks every object of the pack against `git cat-file`, and that `write_v2`
        /// reproduces the index (when it is v2).
        fn check_pack(repo: &Path, idx_path: &Path, pack_path: &Path, off32_limit: u64) -> Stats {
            let idx_bytes = std::fs::read(idx_path).expect("read idx");
            let pack = std::fs::read(pack_path).expect("read pack");
            let idx = PackIndex::from_bytes(idx_bytes.clone()).expect("valid idx");
            assert!(idx.verify_checksum());
            assert_file_lookups_agree(&idx_bytes);
            let header = pack::parse_header(&pack).expect("pack header");
            assert_eq!(header.num_objects as usize, idx.num_objects());
            assert_eq!(&pack[pack.len() - HASH_LEN..], &idx.pack_checksum().0);

            let n = idx.num_objects();
            let mut offsets: Vec<u64> = (0..n).map(|i| idx.offset_at(i).expect("offset")).collect();
            offsets.sort_unstable();
            offsets.push((pack.len() - HASH_LEN) as u64);
            let next: HashMap<u64, u64> = offsets.windows(2).map(|w| (w[0], w[1])).collect();

            let ids: Vec<String> = (0..n).map(|i| idx.oid_at(i).to_hex()).collect();
            let batch = git(
                repo,
                &["cat-file", "--batch"],
                Some(ids.join("\n").as_bytes()),
            );
            let mut rest = &batch[..];
            let mut stats = Stats {
                ofs: 0,
                refs: 0,
                large: 0,
            };
            let mut entries = Vec::new();
            for i in 0..n {
                let oid = idx.oid_at(i);
                let offset = idx.offset_at(i).expect("offset");
                stats.large += usize::from(offset > off32_limit);

                // The entry spans exactly up to the next one: header, then one zlib stream.
                let entry = pack::parse_entry(&pack, offset).expect("entry");
                match entry.kind {
                    EntryKind::OfsDelta { .. } => stats.ofs += 1,
                    EntryKind::RefDelta { .. } => stats.refs += 1,
                    EntryKind::Base(_) => {}
                }
                let mut body = vec![0u8; entry.size as usize];
                let used = zlib::inflate_exact(&pack[entry.data_offset as usize..], &mut body)
                    .expect("inflate");
                let end = next[&offset];
                assert_eq!(entry.data_offset + used as u64, end);
                let crc = zlib::crc32(0, &pack[offset as usize..end as usize]);
                if idx.version() == 2 {
                    assert_eq!(idx.crc32_at(i), Some(crc));
                }
                entries.push(IndexEntry {
                    id: oid,
                    offset,
                    crc32: crc,
                });

                let (kind, body) = resolve(&pack, &idx, offset, 0);
                assert_eq!(object_id(kind, &body).expect("no collision"), oid);
                let line_end = rest.iter().position(|&b| b == b'\n').expect("batch line");
                let line = String::from_utf8(rest[..line_end].to_vec()).expect("utf8");
                let want = format!("{} {} {}", oid, kind.name(), body.len());
                assert_eq!(line, want);
                let start = line_end + 1;
                assert_eq!(&rest[start..start + body.len()], &body[..]);
                rest = &rest[start + body.len() + 1..];
            }
            assert!(rest.is_empty());

            if idx.version() == 2 {
                let mut out = Vec::new();
                let sum =
                    write_v2_with_limit(&entries, &idx.pack_checksum(), off32_limit, &mut out)
                        .expect("write");
                assert_eq!(sum, idx.checksum());
                assert!(
                    out == idx_bytes,
                    "write_v2 differs from git's {}",
                    idx_path.display()
                );
            }
            stats
        }

        #[test]
        fn real_packs_parse_resolve_and_rewrite() {
            let repo = make_repo();
            let root = repo.path();
            let pack_dir = root.join(".git/objects/pack");
            git(root, &["repack", "-adf", "--window=10", "--depth=50"], None);
            let (idx, pack) = pack_files(&pack_dir, "pack-");
            let stats = check_pack(root, &idx, &pack, DEFAULT_OFF32_LIMIT);
            assert!(stats.ofs > 5, "repack wrote OFS_DELTA entries");
            assert_eq!(stats.refs, 0);

            let objects = git(root, &["rev-list", "--objects", "--all"], None);
            let out = root.join("out");
            std::fs::create_dir(&out).expect("mkdir");
            let pack_objects = |base: &str, extra: &[&str]| {
                let base = out.join(base);
                let base = base.to_str().expect("utf8 path");
                let mut args = vec!["pack-objects", "-q", "--window=10", "--depth=50"];
                args.extend_from_slice(extra);
                args.push(base);
                git(root, &args, Some(&objects));
            };

            pack_objects("refd", &[]);
            let (idx, pack) = pack_files(&out, "refd-");
            let stats = check_pack(root, &idx, &pack, DEFAULT_OFF32_LIMIT);
            assert!(stats.refs > 5, "pack-objects wrote REF_DELTA entries");
            assert_eq!(stats.ofs, 0);

            pack_objects("v1", &["--delta-base-offset", "--index-version=1"]);
            let (idx, pack) = pack_files(&out, "v1-");
            assert_ne!(
                std::fs::read(&idx).expect("idx").get(..4),
                Some(&V2_MAGIC[..])
            );
            let v1 = PackIndex::from_bytes(std::fs::read(&idx).expect("idx")).expect("v1");
            assert_eq!(v1.version(), 1);
            check_pack(root, &idx, &pack, DEFAULT_OFF32_LIMIT);

            pack_objects("large", &["--delta-base-offset", "--index-version=2,0x40"]);
            let (idx, pack) = pack_files(&out, "large-");
            let stats = check_pack(root, &idx, &pack, 0x40);
            assert!(
                stats.large > 5,
                "offsets above 0x40 went to the large table"
            );
            let large = PackIndex::from_bytes(std::fs::read(&idx).expect("idx")).expect("v2");
            assert_eq!(large.large_count, stats.large);
        }
    }
}
