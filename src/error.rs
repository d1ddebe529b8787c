//! The store's error type. Format modules have their own error enums (no file names: they see
//! only bytes); the store wraps them here with the path of the file and, for pack data, the
//! offset. `ffi::error` maps an [`Error`] to a libgit2 code and message, once, at the C edge.

use std::io;
use std::path::PathBuf;

use crate::format::{delta, idx, midx, pack};
use crate::zlib;

/// Result with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object (or prefix) is not in this backend: libgit2 moves on to the next backend.
    #[error("object not found")]
    NotFound,
    /// A prefix names two or more distinct objects in this backend.
    #[error("ambiguous object id prefix {0}")]
    Ambiguous(String),
    /// An operating-system error on a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A pack index is malformed.
    #[error("{}: corrupt pack index: {source}", path.display())]
    Index {
        /// The `.idx` file.
        path: PathBuf,
        /// What is wrong.
        source: idx::Error,
    },
    /// A multi-pack-index is malformed.
    #[error("{}: corrupt multi-pack-index: {source}", path.display())]
    Midx {
        /// The MIDX file.
        path: PathBuf,
        /// What is wrong.
        source: midx::Error,
    },
    /// A pack's structure is malformed.
    #[error("{}: corrupt pack at offset {offset}: {source}", path.display())]
    Pack {
        /// The `.pack` file.
        path: PathBuf,
        /// Offset of the entry (0 for the header).
        offset: u64,
        /// What is wrong.
        source: pack::Error,
    },
    /// A delta in a pack is malformed.
    #[error("{}: corrupt delta at offset {offset}: {source}", path.display())]
    Delta {
        /// The `.pack` file.
        path: PathBuf,
        /// Offset of the delta entry.
        offset: u64,
        /// What is wrong.
        source: delta::Error,
    },
    /// A zlib stream in a pack is malformed.
    #[error("{}: corrupt zlib stream at offset {offset}: {source}", path.display())]
    Zlib {
        /// The `.pack` file.
        path: PathBuf,
        /// Offset of the entry.
        offset: u64,
        /// What is wrong.
        source: zlib::Error,
    },
    /// A pack and its index disagree, or a pack changed under us.
    #[error("{}: {what}", path.display())]
    Inconsistent {
        /// The file found inconsistent.
        path: PathBuf,
        /// What disagrees.
        what: String,
    },
    /// An object is larger than the configured maximum, or a delta chain is longer than allowed.
    #[error("{}: {what}", path.display())]
    Limit {
        /// The pack holding the object.
        path: PathBuf,
        /// Which limit.
        what: String,
    },
    /// A lock file exists: someone else is writing.
    #[error("{}: lock file exists; another process is writing", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A caller passed something unusable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Memory for an object could not be allocated.
    #[error("out of memory allocating {0} bytes")]
    OutOfMemory(usize),
    /// Indexing a pack (`writepack`) failed.
    #[error("indexer: {0}")]
    Indexer(#[from] crate::writepack::Error),
}

impl Error {
    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
