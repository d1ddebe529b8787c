//! Multi-pack-index (`multi-pack-index`, v1 and v2, and incremental layers) reading
//! (git-formats.md §4–6).
//!
//! STUB: contract only; bodies land with the MIDX work.

use std::ops::Deref;

use super::PrefixMatch;
use crate::oid::{ObjectId, Prefix};

/// Why MIDX bytes were rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Placeholder until the parser lands.
    #[error("not implemented")]
    Unimplemented,
}

/// A validated view over one MIDX file (a whole MIDX or one layer of a chain).
#[derive(Debug)]
pub struct MultiPackIndex<D> {
    data: D,
}

impl<D: Deref<Target = [u8]>> MultiPackIndex<D> {
    /// Validates `data` (header, chunk table, required chunks and their sizes, fanout, PNAM).
    pub fn from_bytes(data: D) -> Result<Self, Error> {
        let _ = data;
        Err(Error::Unimplemented)
    }

    /// Number of packs (PNAM entries).
    pub fn num_packs(&self) -> usize {
        let _ = &self.data;
        unimplemented!()
    }

    /// The `.idx` basename of pack `pack_id` (`pack_id < num_packs()`).
    pub fn pack_name(&self, _pack_id: usize) -> &str {
        unimplemented!()
    }

    /// Number of objects.
    pub fn num_objects(&self) -> usize {
        unimplemented!()
    }

    /// Id at `index`.
    pub fn oid_at(&self, _index: usize) -> ObjectId {
        unimplemented!()
    }

    /// Position of `oid`.
    pub fn find(&self, _oid: &ObjectId) -> Option<usize> {
        unimplemented!()
    }

    /// Prefix lookup.
    pub fn find_prefix(&self, _prefix: &Prefix) -> PrefixMatch {
        unimplemented!()
    }

    /// (pack id, pack offset) of the object at `index`; an error for a pack id or LOFF index
    /// out of range.
    pub fn pack_and_offset(&self, _index: usize) -> Result<(u32, u64), Error> {
        unimplemented!()
    }

    /// The trailer checksum (names `.bitmap`/`.rev` sidecars and chain layers).
    pub fn checksum(&self) -> ObjectId {
        unimplemented!()
    }
}

/// Parses `multi-pack-index-chain`: one layer hash per line, base first.
pub fn parse_chain(_bytes: &[u8]) -> Result<Vec<ObjectId>, Error> {
    Err(Error::Unimplemented)
}
