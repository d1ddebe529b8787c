//! Multi-pack-index (`multi-pack-index`, v1 and v2, and incremental layers) reading and
//! verification (git-formats.md §4–7).
//!
//! [`MultiPackIndex::from_bytes`] validates everything that can be checked without the packs
//! (header, chunk table, required chunk sizes, fanout order, PNAM), with git's `t5319` wording
//! where git has one. [`verify`] adds what needs the packs' indexes (git's
//! `multi-pack-index verify`). Writing lives in [`super::midx_write`].

use std::fmt;
use std::ops::{Deref, Range};

use super::chunk::{self, ChunkId};
use super::fanout::{Fanout, FanoutError, SortedIds, parse_fanout};
use super::{PrefixMatch, be_u32, be_u64};
use crate::hash::Sha1;
use crate::oid::{HASH_LEN, HEX_LEN, ObjectId, Prefix};

/// `MIDX`.
pub const SIGNATURE: [u8; 4] = *b"MIDX";
/// Header length: signature, version, hash version, chunk count, base count, pack count.
pub const HEADER_LEN: usize = 12;
/// Hash-version byte for SHA-1, the only object format served.
pub const HASH_VERSION_SHA1: u8 = 1;

/// Pack names (`PNAM`).
pub const PNAM: ChunkId = ChunkId(*b"PNAM");
/// OID fanout (`OIDF`).
pub const OIDF: ChunkId = ChunkId(*b"OIDF");
/// OID lookup (`OIDL`).
pub const OIDL: ChunkId = ChunkId(*b"OIDL");
/// Object offsets (`OOFF`).
pub const OOFF: ChunkId = ChunkId(*b"OOFF");
/// Large offsets (`LOFF`).
pub const LOFF: ChunkId = ChunkId(*b"LOFF");
/// Reverse index in pseudo-pack order (`RIDX`).
pub const RIDX: ChunkId = ChunkId(*b"RIDX");
/// Bitmapped packs (`BTMP`).
pub const BTMP: ChunkId = ChunkId(*b"BTMP");

/// In an OOFF offset: "the low 31 bits index LOFF" (only when LOFF exists).
pub const LARGE_OFFSET_FLAG: u32 = 0x8000_0000;

/// Why MIDX bytes were rejected, or an access failed. Messages follow git's (midx.c) where git
/// has one, so logs and tests can be compared with git's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Shorter than a header plus a trailer.
    #[error("multi-pack-index file is too small ({0} bytes)")]
    TooSmall(usize),
    /// The first four bytes are not `MIDX`.
    #[error("multi-pack-index signature 0x{0:08x} does not match signature 0x4d494458")]
    Signature(u32),
    /// Version other than 1 or 2.
    #[error("multi-pack-index version {0} not recognized")]
    Version(u8),
    /// Hash version other than SHA-1 (2 is SHA-256).
    #[error("multi-pack-index hash version {0} does not match version 1")]
    HashVersion(u8),
    /// The chunk table is malformed.
    #[error(transparent)]
    ChunkTable(#[from] chunk::Error),
    /// A required chunk is absent (`what` is git's name: "pack-name", "OID fanout", …).
    #[error("multi-pack-index required {0} chunk missing or corrupted")]
    MissingChunk(&'static str),
    /// OIDF is not 1024 bytes.
    #[error("multi-pack-index OID fanout is of the wrong size")]
    FanoutSize,
    /// OIDF decreases.
    #[error("oid fanout out of order: fanout[{}] = {previous:x} > {value:x} = fanout[{index}]", index - 1)]
    FanoutOrder {
        /// Position of the decreasing entry.
        index: usize,
        /// Its value.
        value: u32,
        /// The entry before it.
        previous: u32,
    },
    /// OIDL is not `20 * N` bytes.
    #[error("multi-pack-index OID lookup chunk is the wrong size")]
    OidLookupSize,
    /// OOFF is not `8 * N` bytes.
    #[error("multi-pack-index object offset chunk is the wrong size")]
    ObjectOffsetsSize,
    /// LOFF is not a multiple of 8 bytes.
    #[error("multi-pack-index large offset chunk is the wrong size")]
    LargeOffsetsSize,
    /// RIDX is present but not `4 * N` bytes. Not fatal: the chunk is ignored (see
    /// [`MultiPackIndex::ignored`]), as git ignores it and only loses the bitmap.
    #[error("multi-pack-index reverse-index chunk is the wrong size")]
    ReverseIndexSize,
    /// BTMP is present but not `8 * P` bytes. Not fatal, like [`Error::ReverseIndexSize`].
    #[error("multi-pack-index BTMP chunk is the wrong size")]
    BitmappedPacksSize,
    /// PNAM ends before P NUL-terminated names.
    #[error("multi-pack-index pack-name chunk is too short")]
    PackNamesTooShort,
    /// A PNAM entry is not a plausible `.idx` basename.
    #[error("multi-pack-index pack name {index} is invalid: {reason}")]
    PackNameInvalid {
        /// Position in PNAM.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// v1 names not strictly increasing.
    #[error("multi-pack-index pack names out of order: '{previous}' before '{name}'")]
    PackNamesOutOfOrder {
        /// The earlier name.
        previous: String,
        /// The name that should have sorted after it.
        name: String,
    },
    /// The same name twice (v2, where order is free).
    #[error("multi-pack-index pack name '{0}' appears twice")]
    DuplicatePackName(String),
    /// Something other than NUL after the last name.
    #[error("multi-pack-index pack-name chunk has non-NUL bytes after the last name")]
    PackNamesPadding,
    /// An object index at or past the object count was asked for.
    #[error("object index {index} out of range ({num_objects} objects)")]
    ObjectIndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The object count.
        num_objects: usize,
    },
    /// OOFF names a pack id `>= P`.
    #[error("bad pack-int-id: {pack_id} ({num_packs} total packs)")]
    BadPackIntId {
        /// The pack id read.
        pack_id: u32,
        /// P.
        num_packs: u32,
    },
    /// OOFF points past the end of LOFF.
    #[error("multi-pack-index large offset out of bounds")]
    LargeOffsetOutOfBounds,
    /// The chain file is non-empty but shorter than one line.
    #[error("multi-pack-index chain file too small")]
    ChainTooSmall,
    /// A chain line is not a hash. git warns and stops reading; `valid` holds the layers
    /// before that line so the store can decide to keep them, as git does.
    #[error("invalid multi-pack-index chain: line {line} not a hash")]
    ChainLine {
        /// 1-based line number.
        line: usize,
        /// The layers read before it, base first.
        valid: Vec<ObjectId>,
    },
}

/// A validated view over one MIDX file (a whole MIDX or one layer of a chain).
#[derive(Debug)]
pub struct MultiPackIndex<D> {
    data: D,
    version: u8,
    num_packs: u32,
    num_objects: usize,
    fanout: Fanout,
    /// Byte ranges of the names inside `data`; validated UTF-8.
    pack_names: Vec<Range<usize>>,
    /// Pack ids sorted by name: `pack_names` order for v1, a sort for v2.
    names_sorted: Vec<u32>,
    oidl: Range<usize>,
    ooff: Range<usize>,
    loff: Option<Range<usize>>,
    ridx: Option<Range<usize>>,
    btmp: Option<Range<usize>>,
    ignored: Vec<Error>,
}

impl<D: Deref<Target = [u8]>> MultiPackIndex<D> {
    /// Validates `data` (header, chunk table, required chunks and their sizes, fanout, PNAM).
    ///
    /// Not checked here (see [`verify`]): the trailer checksum, OIDL order, OOFF contents.
    pub fn from_bytes(data: D) -> Result<Self, Error> {
        let bytes: &[u8] = &data;
        if bytes.len() < HEADER_LEN + HASH_LEN {
            return Err(Error::TooSmall(bytes.len()));
        }
        if bytes[..4] != SIGNATURE {
            return Err(Error::Signature(be_u32(bytes, 0).unwrap_or(0)));
        }
        let version = bytes[4];
        if version != 1 && version != 2 {
            return Err(Error::Version(version));
        }
        if bytes[5] != HASH_VERSION_SHA1 {
            return Err(Error::HashVersion(bytes[5]));
        }
        let num_chunks = usize::from(bytes[6]);
        // Byte 7 ("number of base MIDX files") is written 0 even in layers and never read.
        let num_packs = be_u32(bytes, 8).unwrap_or(0);
        let table = chunk::Table::read(bytes, HEADER_LEN, num_chunks, HASH_LEN)?;

        let pnam = table.get(PNAM).ok_or(Error::MissingChunk("pack-name"))?;
        let oidf = table.get(OIDF).ok_or(Error::MissingChunk("OID fanout"))?;
        let oidl = table.get(OIDL).ok_or(Error::MissingChunk("OID lookup"))?;
        let ooff = table
            .get(OOFF)
            .ok_or(Error::MissingChunk("object offsets"))?;

        let fanout = match parse_fanout(&bytes[oidf]) {
            Ok(fanout) => fanout,
            Err(FanoutError::WrongSize(_)) => return Err(Error::FanoutSize),
            Err(FanoutError::NotMonotonic {
                index,
                value,
                previous,
            }) => {
                return Err(Error::FanoutOrder {
                    index,
                    value,
                    previous,
                });
            }
        };
        let num_objects = fanout[255] as usize;
        if (oidl.len() as u64) != num_objects as u64 * HASH_LEN as u64 {
            return Err(Error::OidLookupSize);
        }
        if (ooff.len() as u64) != num_objects as u64 * 8 {
            return Err(Error::ObjectOffsetsSize);
        }
        let loff = table.get(LOFF);
        if loff.as_ref().is_some_and(|r| r.len() % 8 != 0) {
            return Err(Error::LargeOffsetsSize);
        }
        let mut ignored = Vec::new();
        let ridx = table.get(RIDX).filter(|r| {
            let ok = r.len() as u64 == num_objects as u64 * 4;
            if !ok {
                ignored.push(Error::ReverseIndexSize);
            }
            ok
        });
        let btmp = table.get(BTMP).filter(|r| {
            let ok = r.len() as u64 == u64::from(num_packs) * 8;
            if !ok {
                ignored.push(Error::BitmappedPacksSize);
            }
            ok
        });
        let (pack_names, names_sorted) = parse_pack_names(bytes, pnam, num_packs, version)?;
        Ok(MultiPackIndex {
            data,
            version,
            num_packs,
            num_objects,
            fanout: Fanout::new(fanout),
            pack_names,
            names_sorted,
            oidl,
            ooff,
            loff,
            ridx,
            btmp,
            ignored,
        })
    }

    /// File version: 1, or 2 (PNAM in any order).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Optional chunks that were present but ignored because malformed (git ignores them too:
    /// a bad RIDX only disables the bitmap).
    pub fn ignored(&self) -> &[Error] {
        &self.ignored
    }

    /// Number of packs (PNAM entries).
    pub fn num_packs(&self) -> usize {
        self.num_packs as usize
    }

    /// The `.idx` basename of pack `pack_id` (`pack_id < num_packs()`; panics otherwise).
    pub fn pack_name(&self, pack_id: usize) -> &str {
        // Validated as UTF-8 in `from_bytes`, so the fallback is unreachable.
        std::str::from_utf8(self.pack_name_bytes(pack_id)).unwrap_or("")
    }

    fn pack_name_bytes(&self, pack_id: usize) -> &[u8] {
        &self.data[self.pack_names[pack_id].clone()]
    }

    /// The pack id of `name`, given as `pack-X.idx` or `pack-X.pack` (git's
    /// `cmp_idx_or_pack_name`). Compares bytes: a scan asks this of every index in the
    /// directory, and checking a name's UTF-8 again at each step of the search was a tenth of
    /// opening a store on 50 packs.
    pub fn find_pack(&self, name: &str) -> Option<u32> {
        let idx_name = idx_name_of(name);
        self.names_sorted
            .binary_search_by(|&id| self.pack_name_bytes(id as usize).cmp(idx_name.as_bytes()))
            .ok()
            .map(|at| self.names_sorted[at])
    }

    /// Number of objects.
    pub fn num_objects(&self) -> usize {
        self.num_objects
    }

    /// The fanout + OIDL pair, for lookups.
    pub fn ids(&self) -> SortedIds<'_> {
        SortedIds::new(&self.fanout, &self.data[self.oidl.clone()])
    }

    /// Id at `index` (`index < num_objects()`; panics otherwise).
    pub fn oid_at(&self, index: usize) -> ObjectId {
        let mut id = ObjectId::ZERO;
        id.0.copy_from_slice(self.ids().id_at(index));
        id
    }

    /// Position of `oid`.
    pub fn find(&self, oid: &ObjectId) -> Option<usize> {
        self.ids().find(oid)
    }

    /// Prefix lookup.
    pub fn find_prefix(&self, prefix: &Prefix) -> PrefixMatch {
        self.ids().find_prefix(prefix)
    }

    /// Whether a LOFF chunk is present (then OOFF offsets with the MSB set index it).
    pub fn has_large_offsets(&self) -> bool {
        self.loff.is_some()
    }

    /// (pack id, pack offset) of the object at `index`; an error for an index, a pack id or a
    /// LOFF index out of range.
    pub fn pack_and_offset(&self, index: usize) -> Result<(u32, u64), Error> {
        if index >= self.num_objects {
            return Err(Error::ObjectIndexOutOfRange {
                index,
                num_objects: self.num_objects,
            });
        }
        let ooff = &self.data[self.ooff.clone()];
        // In bounds: OOFF is exactly 8 * num_objects bytes.
        let pack_id = be_u32(ooff, index * 8).unwrap_or(u32::MAX);
        let offset = be_u32(ooff, index * 8 + 4).unwrap_or(0);
        if pack_id >= self.num_packs {
            return Err(Error::BadPackIntId {
                pack_id,
                num_packs: self.num_packs,
            });
        }
        match &self.loff {
            // Without LOFF the MSB is part of the offset: git stores offsets in
            // 2^31..2^32 directly when no offset needs 64 bits.
            Some(loff) if offset & LARGE_OFFSET_FLAG != 0 => {
                let slot = (offset & !LARGE_OFFSET_FLAG) as usize;
                let large = be_u64(&self.data[loff.clone()], slot * 8)
                    .ok_or(Error::LargeOffsetOutOfBounds)?;
                Ok((pack_id, large))
            }
            _ => Ok((pack_id, u64::from(offset))),
        }
    }

    /// RIDX entry `k`: the object position of the `k`-th object in pseudo-pack order. `None`
    /// without a (well-sized) RIDX chunk or for `k >= num_objects()`. In a chain layer the value
    /// is global (includes the objects of the base layers).
    pub fn reverse_index_at(&self, k: usize) -> Option<u32> {
        let ridx = self.ridx.as_ref()?;
        be_u32(&self.data[ridx.clone()], k.checked_mul(4)?)
    }

    /// Whether a (well-sized) RIDX chunk is present.
    pub fn has_reverse_index(&self) -> bool {
        self.ridx.is_some()
    }

    /// BTMP entry of `pack_id`: (first pseudo-pack position, number of objects selected from
    /// it). `None` without a (well-sized) BTMP chunk or for `pack_id >= num_packs()`.
    pub fn bitmapped_pack(&self, pack_id: usize) -> Option<(u32, u32)> {
        let btmp = &self.data[self.btmp.clone()?];
        let at = pack_id.checked_mul(8)?;
        Some((be_u32(btmp, at)?, be_u32(btmp, at + 4)?))
    }

    /// The trailer checksum (names `.bitmap`/`.rev` sidecars and chain layers).
    pub fn checksum(&self) -> ObjectId {
        let mut id = ObjectId::ZERO;
        // The file is at least HEADER_LEN + HASH_LEN bytes (checked in `from_bytes`).
        id.0.copy_from_slice(&self.data[self.data.len() - HASH_LEN..]);
        id
    }

    /// Whether the trailer is the SHA-1 of everything before it (a detected SHA-1 collision
    /// attack counts as a mismatch).
    pub fn verify_checksum(&self) -> bool {
        let body = &self.data[..self.data.len() - HASH_LEN];
        let mut hasher = Sha1::new();
        hasher.update(body);
        hasher
            .finalize()
            .is_ok_and(|digest| digest == self.checksum())
    }

    /// The raw bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// `name` with a `.pack` suffix replaced by `.idx`, for name lookups.
pub(crate) fn idx_name_of(name: &str) -> std::borrow::Cow<'_, str> {
    match name.strip_suffix(".pack") {
        Some(stem) => format!("{stem}.idx").into(),
        None => name.into(),
    }
}

/// Splits and validates PNAM; returns the name ranges and the pack ids in name order.
fn parse_pack_names(
    bytes: &[u8],
    pnam: Range<usize>,
    num_packs: u32,
    version: u8,
) -> Result<(Vec<Range<usize>>, Vec<u32>), Error> {
    let chunk = &bytes[pnam.clone()];
    // Each name takes at least 2 bytes ("x" + NUL), which bounds the allocation by the file.
    if num_packs as usize > chunk.len() / 2 {
        return Err(Error::PackNamesTooShort);
    }
    let mut names = Vec::with_capacity(num_packs as usize);
    let mut cursor = 0;
    for index in 0..num_packs as usize {
        let len = chunk[cursor..]
            .iter()
            .position(|&b| b == 0)
            .ok_or(Error::PackNamesTooShort)?;
        let name = &chunk[cursor..cursor + len];
        let invalid = |reason| Error::PackNameInvalid { index, reason };
        if name.is_empty() {
            return Err(invalid("empty"));
        }
        if name.contains(&b'/') {
            return Err(invalid("contains '/'"));
        }
        if !name.ends_with(b".idx") {
            return Err(invalid("does not end in .idx"));
        }
        if std::str::from_utf8(name).is_err() {
            return Err(invalid("not UTF-8"));
        }
        if let Some(previous) = names.last().map(|r: &Range<usize>| &chunk[r.clone()])
            && version == 1
            && previous >= name
        {
            return Err(Error::PackNamesOutOfOrder {
                previous: String::from_utf8_lossy(previous).into_owned(),
                name: String::from_utf8_lossy(name).into_owned(),
            });
        }
        names.push(cursor..cursor + len);
        cursor += len + 1;
    }
    // git pads with up to 3 NULs; tolerate any number of NULs (as gitoxide does), nothing else.
    if chunk[cursor..].iter().any(|&b| b != 0) {
        return Err(Error::PackNamesPadding);
    }
    let mut sorted: Vec<u32> = (0..num_packs).collect();
    if version != 1 {
        sorted.sort_unstable_by(|&a, &b| {
            chunk[names[a as usize].clone()].cmp(&chunk[names[b as usize].clone()])
        });
        if let Some(pair) = sorted
            .windows(2)
            .find(|w| chunk[names[w[0] as usize].clone()] == chunk[names[w[1] as usize].clone()])
        {
            let name = &chunk[names[pair[0] as usize].clone()];
            return Err(Error::DuplicatePackName(
                String::from_utf8_lossy(name).into_owned(),
            ));
        }
    }
    let absolute = names
        .into_iter()
        .map(|r| pnam.start + r.start..pnam.start + r.end)
        .collect();
    Ok((absolute, sorted))
}

/// Parses `multi-pack-index-chain`: one layer hash per line, base first.
///
/// Follows git's `load_midx_chain`: an empty file is an empty chain; `len / 41` lines are read;
/// each must start with 40 hex digits (git's `get_oid_hex` ignores the rest of the line). A
/// line that is not a hash stops reading with [`Error::ChainLine`], which carries the layers
/// read before it.
pub fn parse_chain(bytes: &[u8]) -> Result<Vec<ObjectId>, Error> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let count = bytes.len() / (HEX_LEN + 1);
    if count == 0 {
        return Err(Error::ChainTooSmall);
    }
    let mut layers = Vec::with_capacity(count);
    for (i, line) in bytes.split(|&b| b == b'\n').take(count).enumerate() {
        let hex = line
            .get(..HEX_LEN)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(ObjectId::from_hex) {
            Some(id) => layers.push(id),
            None => {
                return Err(Error::ChainLine {
                    line: i + 1,
                    valid: layers,
                });
            }
        }
    }
    Ok(layers)
}

/// A pack index's entries, sorted by id and unique, as the MIDX writer and [`verify`] need them.
///
/// The store implements it for its `.idx` reader; tests implement it for vectors.
pub trait PackEntries {
    /// Number of objects in the pack.
    fn len(&self) -> usize;
    /// Whether the pack has no objects.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Id of entry `i` (`i < len()`); entries are sorted by id.
    fn oid_at(&self, i: usize) -> ObjectId;
    /// Pack offset of entry `i`.
    fn offset_at(&self, i: usize) -> u64;
    /// Position of `oid`. The default binary-searches `oid_at`; an index with a fanout table
    /// should override it with its own lookup.
    fn find(&self, oid: &ObjectId) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.oid_at(mid).cmp(oid) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }
}

/// One problem found by [`verify`]; `Display` gives git's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The trailer is not the hash of the file.
    Checksum,
    /// Pack `position` could not be loaded (the caller passed `None`).
    PackNotLoaded {
        /// The pack id.
        position: u32,
    },
    /// N = 0.
    NoObjects,
    /// OIDL not strictly increasing at `index`.
    OidOrder {
        /// Position of the second id of the pair.
        index: usize,
        /// The id before it.
        previous: ObjectId,
        /// The id at `index`.
        oid: ObjectId,
    },
    /// OOFF names a pack id `>= P`.
    BadPackIntId {
        /// The object position.
        index: usize,
        /// The pack id read.
        pack_id: u32,
        /// P.
        num_packs: u32,
    },
    /// The object's pack failed to load, so its entry cannot be checked.
    PackEntry {
        /// The object position.
        index: usize,
        /// Its id.
        oid: ObjectId,
    },
    /// OOFF points past LOFF.
    LargeOffsetOutOfBounds {
        /// The object position.
        index: usize,
    },
    /// The MIDX offset differs from the pack index's (0 when the pack lacks the object).
    Offset {
        /// The object position.
        index: usize,
        /// Its id.
        oid: ObjectId,
        /// The pack it is said to be in.
        pack_id: u32,
        /// Offset in the MIDX.
        midx_offset: u64,
        /// Offset in the pack index.
        pack_offset: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Checksum => write!(f, "incorrect checksum"),
            Problem::PackNotLoaded { position } => {
                write!(f, "failed to load pack in position {position}")
            }
            Problem::NoObjects => write!(f, "the midx contains no oid"),
            Problem::OidOrder {
                index,
                previous,
                oid,
            } => write!(
                f,
                "oid lookup out of order: oid[{}] = {previous} >= {oid} = oid[{index}]",
                index - 1
            ),
            Problem::BadPackIntId {
                pack_id, num_packs, ..
            } => {
                write!(f, "bad pack-int-id: {pack_id} ({num_packs} total packs)")
            }
            Problem::PackEntry { index, oid } => {
                write!(f, "failed to load pack entry for oid[{index}] = {oid}")
            }
            Problem::LargeOffsetOutOfBounds { .. } => {
                write!(f, "multi-pack-index large offset out of bounds")
            }
            Problem::Offset {
                index,
                oid,
                midx_offset,
                pack_offset,
                ..
            } => write!(
                f,
                "incorrect object offset for oid[{index}] = {oid}: {midx_offset:x} != {pack_offset:x}"
            ),
        }
    }
}

/// git's `multi-pack-index verify` on one MIDX: `packs[id]` is pack `id`'s index, `None` when it
/// failed to load (a missing slot counts as `None`).
///
/// Checks in git's order: checksum; every pack loads; N > 0 (stops there otherwise); OIDL
/// strictly increasing; for every object a valid pack id and the same offset as the pack's
/// index. git visits objects grouped by pack; we report them in OIDL order.
pub fn verify<D: Deref<Target = [u8]>>(
    midx: &MultiPackIndex<D>,
    packs: &[Option<&dyn PackEntries>],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !midx.verify_checksum() {
        problems.push(Problem::Checksum);
    }
    let pack = |id: u32| packs.get(id as usize).copied().flatten();
    for position in 0..midx.num_packs {
        if pack(position).is_none() {
            problems.push(Problem::PackNotLoaded { position });
        }
    }
    if midx.num_objects() == 0 {
        problems.push(Problem::NoObjects);
        return problems;
    }
    let ids = midx.ids();
    for index in 1..midx.num_objects() {
        if ids.id_at(index - 1) >= ids.id_at(index) {
            problems.push(Problem::OidOrder {
                index,
                previous: midx.oid_at(index - 1),
                oid: midx.oid_at(index),
            });
        }
    }
    for index in 0..midx.num_objects() {
        let oid = midx.oid_at(index);
        let (pack_id, midx_offset) = match midx.pack_and_offset(index) {
            Ok(found) => found,
            Err(Error::BadPackIntId { pack_id, num_packs }) => {
                problems.push(Problem::BadPackIntId {
                    index,
                    pack_id,
                    num_packs,
                });
                continue;
            }
            Err(_) => {
                problems.push(Problem::LargeOffsetOutOfBounds { index });
                continue;
            }
        };
        let Some(entries) = pack(pack_id) else {
            problems.push(Problem::PackEntry { index, oid });
            continue;
        };
        let pack_offset = entries.find(&oid).map_or(0, |i| entries.offset_at(i));
        if pack_offset != midx_offset {
            problems.push(Problem::Offset {
                index,
                oid,
                pack_id,
                midx_offset,
                pack_offset,
            });
        }
    }
    problems
}
