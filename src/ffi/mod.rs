//! The C ABI: `odbpack_*` functions and the `git_odb_backend` slots libgit2 calls.
//!
//! Conventions (also in README "API conventions"):
//! - every exported function goes through [`boundary::guard`]: no panic crosses into C;
//! - pointers are NULL-checked; out-parameters are written only on success;
//! - errors are typed inside and mapped once, in [`error::report`];
//! - read buffers are allocated with the host libgit2's allocator and owned by libgit2.
#![allow(unsafe_code)]

pub mod backend;
pub mod boundary;
pub mod error;
pub mod host;
pub mod midx;
pub mod sys;
pub mod writepack;

pub use backend::*;
pub use midx::*;
