//! Packfile (`pack-*.pack`) parsing: the 12-byte header and object entry headers.
//!
//! STUB: the signatures below are the contract the store codes against; bodies land with the
//! parser work (see git-formats.md §1).

use crate::oid::ObjectId;

/// Size of the pack header (`PACK`, version, object count).
pub const HEADER_LEN: usize = 12;

/// Why pack bytes were rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Placeholder until the parser lands.
    #[error("not implemented")]
    Unimplemented,
}

/// The four object types a pack entry can resolve to, with libgit2's `git_object_t` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ObjectKind {
    /// A commit (1).
    Commit = 1,
    /// A tree (2).
    Tree = 2,
    /// A blob (3).
    Blob = 3,
    /// An annotated tag (4).
    Tag = 4,
}

impl ObjectKind {
    /// The kind for pack type bits 1..=4.
    pub fn from_type_bits(bits: u8) -> Option<ObjectKind> {
        match bits {
            1 => Some(ObjectKind::Commit),
            2 => Some(ObjectKind::Tree),
            3 => Some(ObjectKind::Blob),
            4 => Some(ObjectKind::Tag),
            _ => None,
        }
    }

    /// git's name for the type, as in the `"<type> <len>\0"` hash header.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Commit => "commit",
            ObjectKind::Tree => "tree",
            ObjectKind::Blob => "blob",
            ObjectKind::Tag => "tag",
        }
    }
}

/// The pack file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackHeader {
    /// 2 or 3.
    pub version: u32,
    /// Number of entries the pack claims.
    pub num_objects: u32,
}

/// Validates magic, version (2 or 3) and that the pack can hold header + trailer.
pub fn parse_header(_pack: &[u8]) -> Result<PackHeader, Error> {
    Err(Error::Unimplemented)
}

/// What an entry stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A whole object of this kind.
    Base(ObjectKind),
    /// A delta against the entry at this absolute pack offset (always before the delta).
    OfsDelta {
        /// Absolute offset of the base entry.
        base_offset: u64,
    },
    /// A delta against the object with this id.
    RefDelta {
        /// Id of the base object.
        base: ObjectId,
    },
}

/// A parsed entry header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// What the entry stores.
    pub kind: EntryKind,
    /// Inflated size of the entry's zlib stream (object body, or delta data).
    pub size: u64,
    /// Absolute offset where the zlib stream starts.
    pub data_offset: u64,
}

/// Parses the entry header at `offset`, which must lie inside the pack body (after the header,
/// before the trailer); never reads past `pack`.
pub fn parse_entry(_pack: &[u8], _offset: u64) -> Result<Entry, Error> {
    Err(Error::Unimplemented)
}
