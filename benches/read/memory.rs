//! The read bench's ceiling: an odb backend that serves every object of a corpus from memory.
//!
//! A read here is what any backend must at least do: find the id (a 16-bit fanout into the
//! sorted ids, then a few compares) and copy the object into a buffer from the host's allocator.
//! No pack, no inflate, no delta. Its rate through libgit2's `git_odb_*` calls is about the
//! most a pack backend can reach there, with the odb layer (its object cache, its mutex, the
//! hash check when strict) and the host's allocations left as they are. (Only about: one copy
//! from memory far larger than the CPU caches is not free either, and a backend that inflates
//! reads fewer bytes than it writes; but inflating is much slower than copying.)

use std::ffi::{c_int, c_void};
use std::path::Path;

use libgit2_sys as raw;

use crate::common::{Backend, Odb, kind_name, libgit2_init};

/// Every object of a corpus, by id.
pub struct Objects {
    /// Sorted.
    ids: Vec<[u8; 20]>,
    /// `fanout[p]` is the position of the first id whose first two bytes are at least `p`.
    fanout: Vec<u32>,
    /// Type and bytes of `ids[i]`.
    objects: Vec<(raw::git_object_t, Box<[u8]>)>,
}

impl Objects {
    /// Reads every object of `ids` through odbpack (whose results the bench checks against
    /// libgit2's before it times anything).
    pub fn load(objects_dir: &Path, ids: &[raw::git_oid]) -> Objects {
        let odb = Odb::open(objects_dir, Backend::Odbpack);
        let mut sorted: Vec<[u8; 20]> = ids.iter().map(|id| id.id).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let objects = sorted
            .iter()
            .map(|id| {
                let object = odb
                    .read_raw(&raw::git_oid { id: *id })
                    .unwrap_or_else(|rc| panic!("load {}: {rc}", odbpack::ObjectId(*id)));
                // Back from the name the tests' `kind_name` gave the type.
                let kind = [
                    raw::GIT_OBJECT_COMMIT,
                    raw::GIT_OBJECT_TREE,
                    raw::GIT_OBJECT_BLOB,
                    raw::GIT_OBJECT_TAG,
                ]
                .into_iter()
                .find(|&kind| kind_name(kind) == object.kind)
                .unwrap_or_else(|| panic!("load {}: type {}", object.id, object.kind));
                (kind, object.data.into_boxed_slice())
            })
            .collect();
        let mut fanout = vec![0u32; 1 << 16 | 1];
        for id in &sorted {
            fanout[usize::from(u16::from_be_bytes([id[0], id[1]])) + 1] += 1;
        }
        for p in 1..fanout.len() {
            fanout[p] += fanout[p - 1];
        }
        Objects {
            ids: sorted,
            fanout,
            objects,
        }
    }

    /// The positions of the ids that start with the first `hex_len` hex digits of `key` (at
    /// least 4, as libgit2 asks; the rest of `key` is zero, as libgit2 masks it).
    fn matching(&self, key: &[u8; 20], hex_len: usize) -> impl Iterator<Item = usize> + '_ {
        let bucket = usize::from(u16::from_be_bytes([key[0], key[1]]));
        let range = self.fanout[bucket] as usize..self.fanout[bucket + 1] as usize;
        let (bytes, odd) = (hex_len.min(40) / 2, hex_len.min(40) % 2 == 1);
        let key = *key;
        range.filter(move |&i| {
            let id = &self.ids[i];
            id[..bytes] == key[..bytes] && (!odd || id[bytes] & 0xf0 == key[bytes])
        })
    }

    /// The one id starting with the prefix, or libgit2's error code.
    fn find(&self, key: &[u8; 20], hex_len: usize) -> Result<usize, c_int> {
        let mut found = self.matching(key, hex_len);
        match (found.next(), found.next()) {
            (Some(i), None) => Ok(i),
            (None, _) => Err(raw::GIT_ENOTFOUND),
            (Some(_), Some(_)) => Err(raw::GIT_EAMBIGUOUS),
        }
    }
}

/// A `git_odb_backend` over [`Objects`]; libgit2 frees it through `free`.
#[repr(C)]
struct MemoryBackend {
    parent: raw::git_odb_backend,
    objects: &'static Objects,
}

/// A fresh odb whose only backend serves `objects`.
pub fn open(objects: &'static Objects) -> Odb {
    libgit2_init();
    // SAFETY: `git_odb_backend` is plain data (integers, pointers, optional function pointers),
    // for which all zeroes is valid; `git_odb_init_backend` then sets the version.
    let mut backend = Box::new(MemoryBackend {
        parent: unsafe { std::mem::zeroed() },
        objects,
    });
    // SAFETY: a valid backend struct, initialised for the version libgit2-sys declares.
    let rc =
        unsafe { raw::git_odb_init_backend(&mut backend.parent, raw::GIT_ODB_BACKEND_VERSION) };
    assert_eq!(rc, 0, "git_odb_init_backend");
    backend.parent.read = Some(read);
    backend.parent.read_prefix = Some(read_prefix);
    backend.parent.read_header = Some(read_header);
    backend.parent.exists = Some(exists);
    backend.parent.exists_prefix = Some(exists_prefix);
    backend.parent.free = Some(free);
    let backend = Box::into_raw(backend).cast::<raw::git_odb_backend>();
    let mut odb = std::ptr::null_mut();
    // SAFETY: out-pointers to live locals; the odb takes ownership of the backend (it calls
    // `free` when it is freed).
    unsafe {
        assert_eq!(raw::git_odb_new(&mut odb), 0);
        assert_eq!(raw::git_odb_add_backend(odb, backend, 2), 0);
    }
    Odb { raw: odb, backend }
}

fn objects_of(backend: *mut raw::git_odb_backend) -> &'static Objects {
    // SAFETY: libgit2 passes back the backend `open` made, whose first field is `parent`.
    unsafe { (*backend.cast::<MemoryBackend>()).objects }
}

/// Copies object `i` into a buffer from the host's allocator, NUL-terminated as libgit2's own
/// backends hand them over.
///
/// # Safety
/// The out-pointers must be valid for writes.
unsafe fn hand_over(
    backend: *mut raw::git_odb_backend,
    i: usize,
    data_p: *mut *mut c_void,
    len_p: *mut usize,
    type_p: *mut raw::git_object_t,
) -> c_int {
    let (kind, bytes) = &objects_of(backend).objects[i];
    // SAFETY: a buffer of `len + 1` bytes from libgit2, written within it; the out-pointers
    // are the caller's contract.
    unsafe {
        let data = raw::git_odb_backend_data_alloc(backend, bytes.len() + 1).cast::<u8>();
        if data.is_null() {
            return -1;
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
        data.add(bytes.len()).write(0);
        *data_p = data.cast();
        *len_p = bytes.len();
        *type_p = *kind;
    }
    0
}

extern "C" fn read(
    data_p: *mut *mut c_void,
    len_p: *mut usize,
    type_p: *mut raw::git_object_t,
    backend: *mut raw::git_odb_backend,
    oid: *const raw::git_oid,
) -> c_int {
    // SAFETY: libgit2 passes a valid id and valid out-pointers.
    unsafe {
        match objects_of(backend).find(&(*oid).id, 40) {
            Ok(i) => hand_over(backend, i, data_p, len_p, type_p),
            Err(rc) => rc,
        }
    }
}

/// Finds the one id starting with the prefix and writes it to `full_p`; its position, or
/// libgit2's error code.
///
/// # Safety
/// The pointers must be valid (libgit2's contract for the prefix calls).
unsafe fn resolve(
    backend: *mut raw::git_odb_backend,
    full_p: *mut raw::git_oid,
    short_oid: *const raw::git_oid,
    hex_len: usize,
) -> Result<usize, c_int> {
    let objects = objects_of(backend);
    // SAFETY: the caller's contract.
    let i = objects.find(unsafe { &(*short_oid).id }, hex_len)?;
    // SAFETY: the caller's contract.
    unsafe { (*full_p).id = objects.ids[i] };
    Ok(i)
}

extern "C" fn read_prefix(
    full_p: *mut raw::git_oid,
    data_p: *mut *mut c_void,
    len_p: *mut usize,
    type_p: *mut raw::git_object_t,
    backend: *mut raw::git_odb_backend,
    short_oid: *const raw::git_oid,
    hex_len: usize,
) -> c_int {
    // SAFETY: libgit2 passes a valid id and valid out-pointers.
    unsafe {
        match resolve(backend, full_p, short_oid, hex_len) {
            Ok(i) => hand_over(backend, i, data_p, len_p, type_p),
            Err(rc) => rc,
        }
    }
}

extern "C" fn read_header(
    len_p: *mut usize,
    type_p: *mut raw::git_object_t,
    backend: *mut raw::git_odb_backend,
    oid: *const raw::git_oid,
) -> c_int {
    let objects = objects_of(backend);
    // SAFETY: libgit2 passes a valid id and valid out-pointers.
    unsafe {
        match objects.find(&(*oid).id, 40) {
            Ok(i) => {
                let (kind, bytes) = &objects.objects[i];
                *len_p = bytes.len();
                *type_p = *kind;
                0
            }
            Err(rc) => rc,
        }
    }
}

extern "C" fn exists(backend: *mut raw::git_odb_backend, oid: *const raw::git_oid) -> c_int {
    // SAFETY: libgit2 passes a valid id.
    c_int::from(objects_of(backend).find(unsafe { &(*oid).id }, 40).is_ok())
}

extern "C" fn exists_prefix(
    full_p: *mut raw::git_oid,
    backend: *mut raw::git_odb_backend,
    short_oid: *const raw::git_oid,
    hex_len: usize,
) -> c_int {
    // SAFETY: libgit2 passes a valid id and a valid out-pointer.
    unsafe { resolve(backend, full_p, short_oid, hex_len) }.map_or_else(|rc| rc, |_| 0)
}

extern "C" fn free(backend: *mut raw::git_odb_backend) {
    // SAFETY: the pointer `open` made with `Box::into_raw`; libgit2 calls `free` once.
    drop(unsafe { Box::from_raw(backend.cast::<MemoryBackend>()) });
}
