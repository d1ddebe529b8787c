//! libgit2's C types that a backend sees, mirrored with `#[repr(C)]`.
//!
//! The layouts are identical in every libgit2 release from 1.2 to 1.9 in default (SHA-1) builds
//! (libgit2-contract.md §1.2, §1.5); tests compare sizes and offsets with libgit2-sys's
//! declarations. The generated header does not re-declare these: it includes libgit2's own
//! headers, so C code sees libgit2's definitions.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_uint, c_void};

/// `git_oid` (SHA-1 build): 20 raw bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct git_oid {
    /// The raw id.
    pub id: [u8; 20],
}

/// `git_object_t`, a C enum (4 bytes).
pub type git_object_t = c_int;

/// Opaque `git_odb`.
#[repr(C)]
pub struct git_odb {
    _private: [u8; 0],
}

/// Opaque `git_odb_object` (an object read with `git_odb_read`).
#[repr(C)]
pub struct git_odb_object {
    _private: [u8; 0],
}

/// Opaque `git_odb_stream` (odbpack implements no streams).
#[repr(C)]
pub struct git_odb_stream {
    _private: [u8; 0],
}

/// `git_indexer_progress`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct git_indexer_progress {
    /// Objects in the pack.
    pub total_objects: c_uint,
    /// Objects whose id is known.
    pub indexed_objects: c_uint,
    /// Objects parsed from the stream.
    pub received_objects: c_uint,
    /// Thin-pack bases injected from the odb.
    pub local_objects: c_uint,
    /// Deltas in the pack.
    pub total_deltas: c_uint,
    /// Deltas resolved.
    pub indexed_deltas: c_uint,
    /// Bytes received (owned by the transport).
    pub received_bytes: usize,
}

/// `git_indexer_progress_cb`.
pub type git_indexer_progress_cb =
    Option<unsafe extern "C" fn(stats: *const git_indexer_progress, payload: *mut c_void) -> c_int>;

/// `git_odb_foreach_cb`.
pub type git_odb_foreach_cb =
    Option<unsafe extern "C" fn(id: *const git_oid, payload: *mut c_void) -> c_int>;

/// `struct git_odb_writepack`.
#[repr(C)]
pub struct git_odb_writepack {
    /// The backend that created it.
    pub backend: *mut git_odb_backend,
    /// Feeds pack bytes.
    pub append: Option<
        unsafe extern "C" fn(
            *mut git_odb_writepack,
            *const c_void,
            usize,
            *mut git_indexer_progress,
        ) -> c_int,
    >,
    /// Finishes the pack.
    pub commit:
        Option<unsafe extern "C" fn(*mut git_odb_writepack, *mut git_indexer_progress) -> c_int>,
    /// Releases it.
    pub free: Option<unsafe extern "C" fn(*mut git_odb_writepack)>,
}

/// `struct git_odb_backend` (version 1, 128 bytes on LP64).
#[repr(C)]
pub struct git_odb_backend {
    /// `GIT_ODB_BACKEND_VERSION` (1).
    pub version: c_uint,
    /// Set by libgit2 when the backend is added to an odb.
    pub odb: *mut git_odb,
    /// `read`.
    pub read: Option<
        unsafe extern "C" fn(
            *mut *mut c_void,
            *mut usize,
            *mut git_object_t,
            *mut git_odb_backend,
            *const git_oid,
        ) -> c_int,
    >,
    /// `read_prefix`.
    pub read_prefix: Option<
        unsafe extern "C" fn(
            *mut git_oid,
            *mut *mut c_void,
            *mut usize,
            *mut git_object_t,
            *mut git_odb_backend,
            *const git_oid,
            usize,
        ) -> c_int,
    >,
    /// `read_header`.
    pub read_header: Option<
        unsafe extern "C" fn(
            *mut usize,
            *mut git_object_t,
            *mut git_odb_backend,
            *const git_oid,
        ) -> c_int,
    >,
    /// `write` (NULL: the loose backend takes writes).
    pub write: Option<
        unsafe extern "C" fn(
            *mut git_odb_backend,
            *const git_oid,
            *const c_void,
            usize,
            git_object_t,
        ) -> c_int,
    >,
    /// `writestream` (NULL).
    pub writestream: Option<
        unsafe extern "C" fn(
            *mut *mut git_odb_stream,
            *mut git_odb_backend,
            u64,
            git_object_t,
        ) -> c_int,
    >,
    /// `readstream` (NULL).
    pub readstream: Option<
        unsafe extern "C" fn(
            *mut *mut git_odb_stream,
            *mut usize,
            *mut git_object_t,
            *mut git_odb_backend,
            *const git_oid,
        ) -> c_int,
    >,
    /// `exists`.
    pub exists: Option<unsafe extern "C" fn(*mut git_odb_backend, *const git_oid) -> c_int>,
    /// `exists_prefix`.
    pub exists_prefix: Option<
        unsafe extern "C" fn(*mut git_oid, *mut git_odb_backend, *const git_oid, usize) -> c_int,
    >,
    /// `refresh`.
    pub refresh: Option<unsafe extern "C" fn(*mut git_odb_backend) -> c_int>,
    /// `foreach`.
    pub foreach: Option<
        unsafe extern "C" fn(*mut git_odb_backend, git_odb_foreach_cb, *mut c_void) -> c_int,
    >,
    /// `writepack`.
    pub writepack: Option<
        unsafe extern "C" fn(
            *mut *mut git_odb_writepack,
            *mut git_odb_backend,
            *mut git_odb,
            git_indexer_progress_cb,
            *mut c_void,
        ) -> c_int,
    >,
    /// `writemidx`.
    pub writemidx: Option<unsafe extern "C" fn(*mut git_odb_backend) -> c_int>,
    /// `freshen`.
    pub freshen: Option<unsafe extern "C" fn(*mut git_odb_backend, *const git_oid) -> c_int>,
    /// `free`.
    pub free: Option<unsafe extern "C" fn(*mut git_odb_backend)>,
}

/// `GIT_ODB_BACKEND_VERSION`.
pub const GIT_ODB_BACKEND_VERSION: c_uint = 1;

/// Return codes (`git_error_code`).
pub mod code {
    use std::ffi::c_int;
    /// Success.
    pub const GIT_OK: c_int = 0;
    /// Generic error.
    pub const GIT_ERROR: c_int = -1;
    /// Not found: the odb asks the next backend.
    pub const GIT_ENOTFOUND: c_int = -3;
    /// Prefix matches several objects.
    pub const GIT_EAMBIGUOUS: c_int = -5;
    /// A lock file exists.
    pub const GIT_ELOCKED: c_int = -14;
}

/// Error classes (`git_error_t`) for `git_error_set_str`.
pub mod class {
    use std::ffi::c_int;
    /// Out of memory.
    pub const GIT_ERROR_NOMEMORY: c_int = 1;
    /// Operating-system error.
    pub const GIT_ERROR_OS: c_int = 2;
    /// Invalid input.
    pub const GIT_ERROR_INVALID: c_int = 3;
    /// zlib error.
    pub const GIT_ERROR_ZLIB: c_int = 5;
    /// Object database error.
    pub const GIT_ERROR_ODB: c_int = 9;
    /// Indexer error.
    pub const GIT_ERROR_INDEXER: c_int = 15;
    /// A user callback failed.
    pub const GIT_ERROR_CALLBACK: c_int = 26;
}

/// Signature of `git_odb_backend_data_alloc`: a buffer libgit2 will own and free.
pub type odbpack_data_alloc_fn =
    unsafe extern "C" fn(backend: *mut git_odb_backend, len: usize) -> *mut c_void;
/// Signature of `git_odb_backend_data_free`.
pub type odbpack_data_free_fn =
    unsafe extern "C" fn(backend: *mut git_odb_backend, data: *mut c_void);
/// Signature of `git_error_set_str` (libgit2 >= 1.8 returns `int`; earlier releases return
/// `void`, cast the pointer: the value is never read).
pub type odbpack_error_set_str_fn =
    unsafe extern "C" fn(class: c_int, message: *const c_char) -> c_int;

/// Signature of `git_odb_read`.
pub type odbpack_odb_read_fn = unsafe extern "C" fn(
    out: *mut *mut git_odb_object,
    db: *mut git_odb,
    id: *const git_oid,
) -> c_int;
/// Signature of `git_odb_object_data`.
pub type odbpack_odb_object_data_fn =
    unsafe extern "C" fn(object: *mut git_odb_object) -> *const c_void;
/// Signature of `git_odb_object_size`.
pub type odbpack_odb_object_size_fn = unsafe extern "C" fn(object: *mut git_odb_object) -> usize;
/// Signature of `git_odb_object_type`.
pub type odbpack_odb_object_type_fn =
    unsafe extern "C" fn(object: *mut git_odb_object) -> git_object_t;
/// Signature of `git_odb_object_free`.
pub type odbpack_odb_object_free_fn = unsafe extern "C" fn(object: *mut git_odb_object);

// The foreach slot hands libgit2 pointers into mapped index tables as `git_oid`s.
const _: () = assert!(std::mem::size_of::<git_oid>() == 20 && std::mem::align_of::<git_oid>() == 1);
