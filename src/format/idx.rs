//! Pack index (`pack-*.idx`) v1 and v2 reading (git-formats.md §2).
//!
//! STUB: contract only; bodies land with the parser work.

use std::ops::Deref;

use super::PrefixMatch;
use super::fanout::SortedIds;
use crate::oid::ObjectId;

/// Why index bytes were rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Placeholder until the parser lands.
    #[error("not implemented")]
    Unimplemented,
}

/// A validated view over `.idx` bytes.
#[derive(Debug)]
pub struct PackIndex<D> {
    data: D,
    fanout: [u32; 256],
}

impl<D: Deref<Target = [u8]>> PackIndex<D> {
    /// Validates `data` as a v1 or v2 index.
    pub fn from_bytes(data: D) -> Result<Self, Error> {
        let _ = data;
        Err(Error::Unimplemented)
    }

    /// 1 or 2.
    pub fn version(&self) -> u32 {
        unimplemented!()
    }

    /// Number of objects.
    pub fn num_objects(&self) -> usize {
        unimplemented!()
    }

    /// The fanout + sorted ids, for lookups and iteration.
    pub fn ids(&self) -> SortedIds<'_> {
        let _ = (&self.data, &self.fanout);
        unimplemented!()
    }

    /// Id at `index` (`index < num_objects()`).
    pub fn oid_at(&self, _index: usize) -> ObjectId {
        unimplemented!()
    }

    /// Pack offset of the object at `index`; an error for a large-offset index out of range.
    pub fn offset_at(&self, _index: usize) -> Result<u64, Error> {
        unimplemented!()
    }

    /// CRC32 of the entry at `index` (v2 only).
    pub fn crc32_at(&self, _index: usize) -> Option<u32> {
        unimplemented!()
    }

    /// Position of `oid`.
    pub fn find(&self, _oid: &ObjectId) -> Option<usize> {
        unimplemented!()
    }

    /// Prefix lookup.
    pub fn find_prefix(&self, _prefix: &crate::oid::Prefix) -> PrefixMatch {
        unimplemented!()
    }

    /// The pack checksum recorded in the index (equals the pack's trailer).
    pub fn pack_checksum(&self) -> ObjectId {
        unimplemented!()
    }
}
