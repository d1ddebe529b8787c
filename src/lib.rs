//! odbpack: a pack and multi-pack-index backend for libgit2's object database.
//!
//! The crate is shipped as a C shared library (`libodbpack.so` + `include/odbpack.h`) whose
//! `odbpack_backend_new` returns a `git_odb_backend` that a libgit2 host registers with
//! `git_odb_add_backend`. The Rust API is public so tests, benchmarks and fuzzers reach the
//! internals; the C ABI in [`ffi`] is the product.
//!
//! Layout, by role:
//! - [`oid`]: object ids and hex prefixes.
//! - [`format`](mod@format): zero-copy parsers (and writers) of git's on-disk formats over `&[u8]`-like bytes;
//!   no I/O and no `unsafe`.
//! - [`mmap`]: the only place that maps memory (files, and the delta-base cache's segments).
//! - [`store`]: the shared object store of one objects directory: pack set, MIDX, lookups,
//!   object decoding, caches, refresh.
//! - [`writepack`]: the streaming pack indexer behind the `writepack` slot.
//! - [`ffi`]: the C ABI (`git_odb_backend` slots, options, error reporting, libgit2 functions
//!   found in the host process at run time).
#![deny(unsafe_code, unsafe_op_in_unsafe_fn, missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod error;
pub mod ffi;
pub mod format;
pub mod hash;
pub mod mmap;
pub mod oid;
pub mod store;
#[cfg(test)]
#[path = "../tests/common/git_env.rs"]
pub(crate) mod test_git;
pub mod writepack;
pub mod zlib;

pub use error::{Error, Result};
pub use oid::{ObjectId, Prefix};
