//! The few libgit2 functions odbpack calls, found in the host process at run time.
//!
//! The shipped library links no libgit2: it must load next to whichever copy the host has (a
//! system `libgit2.so`, a private copy inside a Python wheel loaded `RTLD_LOCAL`, or a static
//! copy inside a Rust binary). Resolution order, per function set:
//! 1. functions the caller passed in `odbpack_options` (the only way to reach a static copy
//!    whose symbols are not exported);
//! 2. the global symbol scope (`dlsym(RTLD_DEFAULT)`): a system libgit2, or an executable
//!    linked with `-rdynamic`;
//! 3. every loaded shared object, via `dl_iterate_phdr` + `dlopen(RTLD_NOLOAD)` (finds a private
//!    copy such as pygit2's `libgit2-<hash>.so.1.9`);
//! 4. fallbacks: `malloc`/`free` (libgit2's default allocator is the C allocator, so buffers
//!    stay freeable by libgit2 unless the host installed a custom allocator) and no error
//!    reporting to libgit2 (messages are still kept for `odbpack_error_last`).
//!
//! All functions of one set are taken from the same object, so allocation and free never come
//! from two different libgit2 copies.

use std::ffi::{CStr, c_int, c_void};
use std::sync::OnceLock;

use super::sys::{
    git_odb_backend, odbpack_data_alloc_fn as DataAllocFn, odbpack_data_free_fn as DataFreeFn,
    odbpack_error_set_str_fn as ErrorSetStrFn,
};
use super::sys::{
    odbpack_odb_object_data_fn, odbpack_odb_object_free_fn, odbpack_odb_object_size_fn,
    odbpack_odb_object_type_fn, odbpack_odb_read_fn,
};

/// The libgit2 functions that read an object from a `git_odb` (thin-pack bases for
/// `writepack`). All five come from the same libgit2 copy, or none is used.
#[derive(Clone, Copy, Debug)]
pub struct OdbReader {
    /// `git_odb_read`.
    pub read: odbpack_odb_read_fn,
    /// `git_odb_object_data`.
    pub data: odbpack_odb_object_data_fn,
    /// `git_odb_object_size`.
    pub size: odbpack_odb_object_size_fn,
    /// `git_odb_object_type`.
    pub kind: odbpack_odb_object_type_fn,
    /// `git_odb_object_free`.
    pub free: odbpack_odb_object_free_fn,
}

/// Host functions a backend uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostApi {
    /// `git_odb_backend_data_alloc` (or the caller's replacement).
    pub data_alloc: Option<DataAllocFn>,
    /// `git_odb_backend_data_free`.
    pub data_free: Option<DataFreeFn>,
    /// `git_error_set_str`.
    pub error_set_str: Option<ErrorSetStrFn>,
    /// Object reading from a `git_odb` (optional set).
    pub odb_reader: Option<OdbReader>,
}

impl HostApi {
    /// The functions found in the process (resolved once).
    pub fn discovered() -> &'static HostApi {
        static DISCOVERED: OnceLock<HostApi> = OnceLock::new();
        DISCOVERED.get_or_init(discover)
    }

    /// Fills what `self` lacks from `other`, keeping the allocator pair together.
    pub fn or(self, other: HostApi) -> HostApi {
        let (data_alloc, data_free) = if self.data_alloc.is_some() {
            (self.data_alloc, self.data_free)
        } else {
            (other.data_alloc, other.data_free)
        };
        HostApi {
            data_alloc,
            data_free,
            error_set_str: self.error_set_str.or(other.error_set_str),
            odb_reader: self.odb_reader.or(other.odb_reader),
        }
    }

    /// Allocates `len` bytes libgit2 can free; NULL on failure.
    pub(crate) fn alloc(&self, backend: *mut git_odb_backend, len: usize) -> *mut c_void {
        match self.data_alloc {
            // SAFETY: a function with libgit2's `git_odb_backend_data_alloc` signature (found
            // under that name or passed by the caller as such); `backend` is ours.
            Some(alloc) => unsafe { alloc(backend, len) },
            // SAFETY: plain C allocation; libgit2's default allocator frees with `free`.
            None => unsafe { libc::malloc(len.max(1)) },
        }
    }

    /// Frees a buffer from [`HostApi::alloc`] that was not handed to libgit2.
    pub(crate) fn free(&self, backend: *mut git_odb_backend, data: *mut c_void) {
        match (self.data_alloc, self.data_free) {
            // SAFETY: `data` came from the matching `data_alloc` of the same set.
            (Some(_), Some(free)) => unsafe { free(backend, data) },
            // An allocator without its free (pre-1.1 hosts): leak rather than free with the
            // wrong allocator.
            (Some(_), None) => {}
            // SAFETY: `data` came from `libc::malloc` above.
            (None, _) => unsafe { libc::free(data) },
        }
    }

    /// Reports a message to libgit2 (`git_error_last`), if reachable.
    pub fn set_error(&self, class: c_int, message: &CStr) {
        if let Some(set) = self.error_set_str {
            // SAFETY: `git_error_set_str(int, const char *)` copies the string.
            unsafe { set(class, message.as_ptr()) };
        }
    }
}

const ALLOC: &CStr = c"git_odb_backend_data_alloc";
const ALLOC_OLD: &CStr = c"git_odb_backend_malloc";
const FREE: &CStr = c"git_odb_backend_data_free";
const SET_ERROR: &CStr = c"git_error_set_str";
const ODB_READ: &CStr = c"git_odb_read";
const ODB_OBJECT_DATA: &CStr = c"git_odb_object_data";
const ODB_OBJECT_SIZE: &CStr = c"git_odb_object_size";
const ODB_OBJECT_TYPE: &CStr = c"git_odb_object_type";
const ODB_OBJECT_FREE: &CStr = c"git_odb_object_free";

/// Looks the functions up in one dlopen handle (or `RTLD_DEFAULT`).
fn from_handle(handle: *mut c_void) -> Option<HostApi> {
    let symbol = |name: &CStr| {
        // SAFETY: dlsym with a valid handle and a NUL-terminated name.
        let found = unsafe { libc::dlsym(handle, name.as_ptr()) };
        (!found.is_null()).then_some(found)
    };
    let alloc = symbol(ALLOC).or_else(|| symbol(ALLOC_OLD))?;
    // SAFETY: the symbols are libgit2's functions with exactly these C signatures
    // (libgit2-contract.md §1.1); a data pointer and a function pointer have the same
    // representation on every platform with dlsym.
    unsafe {
        Some(HostApi {
            data_alloc: Some(std::mem::transmute::<*mut c_void, DataAllocFn>(alloc)),
            data_free: symbol(FREE).map(|f| std::mem::transmute::<*mut c_void, DataFreeFn>(f)),
            error_set_str: symbol(SET_ERROR)
                .map(|f| std::mem::transmute::<*mut c_void, ErrorSetStrFn>(f)),
            odb_reader: match (
                symbol(ODB_READ),
                symbol(ODB_OBJECT_DATA),
                symbol(ODB_OBJECT_SIZE),
                symbol(ODB_OBJECT_TYPE),
                symbol(ODB_OBJECT_FREE),
            ) {
                (Some(read), Some(data), Some(size), Some(kind), Some(free)) => Some(OdbReader {
                    read: std::mem::transmute::<*mut c_void, odbpack_odb_read_fn>(read),
                    data: std::mem::transmute::<*mut c_void, odbpack_odb_object_data_fn>(data),
                    size: std::mem::transmute::<*mut c_void, odbpack_odb_object_size_fn>(size),
                    kind: std::mem::transmute::<*mut c_void, odbpack_odb_object_type_fn>(kind),
                    free: std::mem::transmute::<*mut c_void, odbpack_odb_object_free_fn>(free),
                }),
                _ => None,
            },
        })
    }
}

fn discover() -> HostApi {
    if let Some(api) = from_handle(libc::RTLD_DEFAULT) {
        return api;
    }
    let mut found: Option<HostApi> = None;
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the `&mut Option<HostApi>` passed below; `info` is valid for the
        // duration of the callback (dl_iterate_phdr's contract).
        let (found, info) = unsafe { (&mut *(data as *mut Option<HostApi>), &*info) };
        if info.dlpi_name.is_null() {
            return 0;
        }
        // SAFETY: dlpi_name is a NUL-terminated path owned by the dynamic linker.
        let name = unsafe { CStr::from_ptr(info.dlpi_name) };
        if name.is_empty() || !name.to_bytes().windows(6).any(|w| w == b"libgit") {
            return 0;
        }
        // SAFETY: RTLD_NOLOAD only returns a handle for an object that is already loaded, which
        // is then reference-counted; we keep it for the life of the process on success.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
        if handle.is_null() {
            return 0;
        }
        match from_handle(handle) {
            Some(api) => {
                *found = Some(api);
                1
            }
            None => {
                // SAFETY: balances the successful dlopen above.
                unsafe { libc::dlclose(handle) };
                0
            }
        }
    }
    // SAFETY: `visit` only touches `found` through the pointer we pass, during this call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(visit),
            &mut found as *mut Option<HostApi> as *mut c_void,
        )
    };
    found.unwrap_or_default()
}
