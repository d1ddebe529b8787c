//! `odbpack_backend_new[_ext]` and the `git_odb_backend` slots (libgit2-contract.md §2).

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use crate::error::{Error, Result};
use crate::format::pack::ObjectKind;
use crate::oid::{HEX_LEN, MIN_PREFIX_HEX_LEN, ObjectId, Prefix};
use crate::store::{ObjectSink, Options, Store};

use super::boundary::{call, guard};
use super::error::last_message;
use super::host::{HostApi, OdbReader};
use super::sys::{
    GIT_ODB_BACKEND_VERSION, code, git_object_t, git_odb, git_odb_backend, git_odb_foreach_cb,
    git_odb_object, git_oid,
};

/// Version of [`odbpack_options`] this library writes. Each version appends fields; a struct
/// of an earlier version (1: everything before `change_events`) is still accepted, and the fields
/// it lacks keep their defaults.
pub const ODBPACK_OPTIONS_VERSION: c_uint = 2;

/// Options for [`odbpack_backend_new_ext`]. Initialise with [`odbpack_options_init`], then change
/// fields; a zero field is *not* "default" (e.g. `delta_cache_bytes = 0` disables the cache).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct odbpack_options {
    /// Must be `ODBPACK_OPTIONS_VERSION`.
    pub version: c_uint,
    /// Non-zero: read `multi-pack-index` files and chains (git's `core.multiPackIndex`, default 1).
    pub use_midx: c_int,
    /// Bytes of decoded delta bases shared by all backends on the directory, each entry's
    /// bookkeeping included, a 16th of it for remembered object types and sizes (default
    /// 256 MiB; libgit2 keeps up to 16 MiB per pack, without a total bound).
    pub delta_cache_bytes: usize,
    /// Soft limit on mapped pack data (default 8 GiB on 64-bit hosts).
    pub max_mapped_bytes: u64,
    /// Limit on pack files open at once (default 4096). Mapped files hold no descriptor; a
    /// young pack is read through one until it has served a few hundred entries (at most 64).
    pub max_mapped_packs: u64,
    /// Largest object odbpack will inflate (default 1 TiB - 1 on 64-bit hosts).
    pub max_object_size: u64,
    /// Allocator for read buffers; NULL: `git_odb_backend_data_alloc` found in the process, else
    /// `malloc`. Pass it when libgit2 is linked statically into the host (its symbols are then
    /// invisible to `dlsym`).
    pub data_alloc:
        Option<unsafe extern "C" fn(backend: *mut git_odb_backend, len: usize) -> *mut c_void>,
    /// The free matching `data_alloc`.
    pub data_free: Option<unsafe extern "C" fn(backend: *mut git_odb_backend, data: *mut c_void)>,
    /// Error reporting; NULL: `git_error_set_str` found in the process, else none (messages stay
    /// available from `odbpack_error_last`).
    pub error_set_str: Option<unsafe extern "C" fn(class: c_int, message: *const c_char) -> c_int>,
    /// `git_odb_read`, used by `writepack` to fetch thin-pack bases from the odb libgit2 passes.
    /// The five `odb_*` functions are used only if all are set (else found in the process like
    /// the allocator); without them thin packs cannot be fixed.
    pub odb_read: Option<
        unsafe extern "C" fn(
            out: *mut *mut git_odb_object,
            db: *mut git_odb,
            id: *const git_oid,
        ) -> c_int,
    >,
    /// `git_odb_object_data`.
    pub odb_object_data: Option<unsafe extern "C" fn(object: *mut git_odb_object) -> *const c_void>,
    /// `git_odb_object_size`.
    pub odb_object_size: Option<unsafe extern "C" fn(object: *mut git_odb_object) -> usize>,
    /// `git_odb_object_type`.
    pub odb_object_type: Option<unsafe extern "C" fn(object: *mut git_odb_object) -> git_object_t>,
    /// `git_odb_object_free`.
    pub odb_object_free: Option<unsafe extern "C" fn(object: *mut git_odb_object)>,
    /// Most objects a pack given to `writepack` may declare (libgit2's
    /// `GIT_OPT_SET_PACK_MAX_OBJECTS`; default `UINT32_MAX`).
    pub writepack_max_objects: c_uint,
    /// Threads resolving deltas in `writepack` commit; 0 (default) = available cores.
    pub writepack_threads: c_uint,
    /// Non-zero (default): on Linux, on local file systems, learn that packs were added or
    /// removed from inotify events, so a refresh that finds nothing changed is one `epoll_wait`.
    /// Zero, and elsewhere: from the directories' timestamps, one `fstat` a refresh. Each store
    /// watching with events holds one inotify instance, of the user's
    /// `fs.inotify.max_user_instances` (128 by default) and at most 16 per process: set 0 where
    /// instances are scarce. Since version 2.
    pub change_events: c_int,
}

/// Size of an [`odbpack_options`] of `version`: fields are only ever appended, so a version's
/// struct is the current one cut where the next version's first field starts. (Version 1 ends
/// with two `c_uint`s after pointers, so it has no trailing padding to account for.)
fn options_len(version: c_uint) -> Result<usize> {
    match version {
        1 => Ok(std::mem::offset_of!(odbpack_options, change_events)),
        ODBPACK_OPTIONS_VERSION => Ok(std::mem::size_of::<odbpack_options>()),
        _ => Err(Error::InvalidArgument(format!(
            "odbpack_options version {version} is not supported (this library has 1 to \
             {ODBPACK_OPTIONS_VERSION})"
        ))),
    }
}

impl Default for odbpack_options {
    fn default() -> Self {
        let defaults = Options::default();
        odbpack_options {
            version: ODBPACK_OPTIONS_VERSION,
            use_midx: 1,
            delta_cache_bytes: defaults.delta_cache_bytes,
            max_mapped_bytes: defaults.max_mapped_bytes,
            max_mapped_packs: defaults.max_mapped_packs,
            max_object_size: defaults.max_object_size,
            data_alloc: None,
            data_free: None,
            error_set_str: None,
            odb_read: None,
            odb_object_data: None,
            odb_object_size: None,
            odb_object_type: None,
            odb_object_free: None,
            writepack_max_objects: c_uint::MAX,
            writepack_threads: 0,
            change_events: 1,
        }
    }
}

impl odbpack_options {
    fn store_options(&self) -> Options {
        Options {
            use_midx: self.use_midx != 0,
            delta_cache_bytes: self.delta_cache_bytes,
            max_mapped_bytes: self.max_mapped_bytes,
            max_mapped_packs: self.max_mapped_packs,
            max_object_size: self.max_object_size,
            // Events are used only where they see every change (`watch.rs`), whatever this says.
            change_events: self.change_events != 0,
        }
    }

    fn host(&self) -> HostApi {
        let odb_reader = match (
            self.odb_read,
            self.odb_object_data,
            self.odb_object_size,
            self.odb_object_type,
            self.odb_object_free,
        ) {
            (Some(read), Some(data), Some(size), Some(kind), Some(free)) => Some(OdbReader {
                read,
                data,
                size,
                kind,
                free,
            }),
            _ => None,
        };
        HostApi {
            data_alloc: self.data_alloc,
            data_free: self.data_free,
            error_set_str: self.error_set_str,
            odb_reader,
        }
        .or(*HostApi::discovered())
    }

    fn writepack_options(&self) -> crate::writepack::Options {
        crate::writepack::Options {
            max_object_size: self.max_object_size,
            max_objects: self.writepack_max_objects,
            threads: self.writepack_threads as usize,
            ..crate::writepack::Options::default()
        }
    }
}

/// The backend libgit2 holds: its vtable first, then our state.
#[repr(C)]
pub struct Backend {
    parent: git_odb_backend,
    store: Arc<Store>,
    host: HostApi,
    /// Position of the last uncovered pack that had a hit (one odb calls one backend serially,
    /// but `foreach` runs outside the odb lock, hence atomic).
    hint: AtomicUsize,
    /// Limits of packs received through `writepack`.
    writepack_options: crate::writepack::Options,
}

impl Backend {
    /// The store behind a backend made by this library.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The host's libgit2 functions.
    pub fn host(&self) -> &HostApi {
        &self.host
    }

    /// Options for packs received through `writepack`.
    pub fn writepack_options(&self) -> &crate::writepack::Options {
        &self.writepack_options
    }
}

/// The one audited cast from libgit2's pointer to our backend.
///
/// # Safety
/// `backend` must be NULL or a pointer returned by `odbpack_backend_new[_ext]` and not yet freed.
pub(crate) unsafe fn backend_ref<'a>(backend: *mut git_odb_backend) -> Option<&'a Backend> {
    // SAFETY: `Backend` is `repr(C)` with `git_odb_backend` first, and every backend pointer
    // libgit2 passes to our slots is one we created (caller contract).
    unsafe { backend.cast::<Backend>().as_ref() }
}

/// The backend's host functions, borrowed: every slot call starts here.
fn host_of(backend: Option<&Backend>) -> &HostApi {
    match backend {
        Some(backend) => &backend.host,
        None => HostApi::discovered(),
    }
}

/// Reads a `git_oid` argument.
///
/// # Safety
/// `oid` must be NULL or point to 20 readable bytes.
unsafe fn oid_arg(oid: *const git_oid) -> Result<ObjectId> {
    // SAFETY: caller contract.
    unsafe { oid.as_ref() }
        .map(|oid| ObjectId(oid.id))
        .ok_or_else(|| Error::InvalidArgument("NULL object id".into()))
}

/// A prefix argument; lengths over 40 are clamped like libgit2 does, under 4 are ambiguous.
fn prefix_arg(oid: ObjectId, len: usize) -> Result<Prefix> {
    if len < MIN_PREFIX_HEX_LEN {
        return Err(Error::Ambiguous(format!(
            "prefix of {len} hex digits is too short"
        )));
    }
    Prefix::new(oid, len.min(HEX_LEN))
        .ok_or_else(|| Error::InvalidArgument(format!("bad prefix length {len}")))
}

/// Decodes into a buffer from the host allocator: `len + 1` bytes, NUL-terminated, as libgit2's
/// own backends return (libgit2 scans commit buffers with `strchr`).
struct HostSink<'a> {
    host: &'a HostApi,
    backend: *mut git_odb_backend,
    data: *mut c_void,
    len: usize,
}

impl<'a> HostSink<'a> {
    /// A sink that has not allocated yet.
    fn new(host: &'a HostApi, backend: *mut git_odb_backend) -> HostSink<'a> {
        HostSink {
            host,
            backend,
            data: ptr::null_mut(),
            len: 0,
        }
    }
}

impl ObjectSink for HostSink<'_> {
    fn buffer(&mut self, _kind: ObjectKind, len: usize) -> Result<&mut [u8]> {
        let data = self.allocate(len)?;
        // SAFETY: `data` is a fresh allocation of `len + 1` bytes that nothing else references.
        // A slice may only cover initialized bytes, and malloc's are not: zero them first (a
        // memset of bytes the decoder then writes again while they are still in the CPU cache).
        let bytes = unsafe {
            ptr::write_bytes(data, 0, len + 1);
            std::slice::from_raw_parts_mut(data, len)
        };
        Ok(bytes)
    }

    fn copy(&mut self, _kind: ObjectKind, bytes: &[u8]) -> Result<()> {
        let data = self.allocate(bytes.len())?;
        // SAFETY: `data` is a fresh allocation of `bytes.len() + 1` bytes, disjoint from `bytes`
        // (which the store owns); raw writes need no initialized slice, so no memset first.
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
            data.add(bytes.len()).write(0);
        }
        Ok(())
    }
}

impl HostSink<'_> {
    /// Allocates the host buffer for an object of `len` bytes plus the NUL that libgit2 expects
    /// after it (written by the callers), replacing any earlier one.
    fn allocate(&mut self, len: usize) -> Result<*mut u8> {
        self.release();
        let size = len.checked_add(1).ok_or(Error::OutOfMemory(len))?;
        let data = self.host.alloc(self.backend, size);
        if data.is_null() {
            return Err(Error::OutOfMemory(size));
        }
        self.data = data;
        self.len = len;
        Ok(data.cast::<u8>())
    }

    /// Frees the buffer (error paths: it was never handed to libgit2).
    fn release(&mut self) {
        if !self.data.is_null() {
            self.host.free(self.backend, self.data);
            self.data = ptr::null_mut();
        }
    }

    /// Hands the buffer to libgit2.
    ///
    /// # Safety
    /// The out-pointers must be valid for writes.
    unsafe fn hand_over(
        mut self,
        data_p: *mut *mut c_void,
        len_p: *mut usize,
        type_p: *mut git_object_t,
        kind: ObjectKind,
    ) {
        // SAFETY: caller contract; the buffer now belongs to libgit2.
        unsafe {
            *data_p = self.data;
            *len_p = self.len;
            *type_p = kind as git_object_t;
        }
        self.data = ptr::null_mut();
    }
}

impl Drop for HostSink<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

fn check_out<T>(pointer: *mut T, name: &str) -> Result<()> {
    if pointer.is_null() {
        Err(Error::InvalidArgument(format!("NULL {name}")))
    } else {
        Ok(())
    }
}

/// The shape of every `int`-returning slot after the audited cast: the panic boundary, the
/// NULL check and the one error mapping; `body` sees only the backend and its host functions.
fn slot(
    name: &'static str,
    backend: Option<&Backend>,
    body: impl FnOnce(&Backend, &HostApi) -> Result<c_int>,
) -> c_int {
    let host = host_of(backend);
    call(name, host, || match backend {
        Some(backend) => body(backend, host),
        None => Err(Error::InvalidArgument("NULL backend".into())),
    })
}

unsafe extern "C" fn slot_read(
    data_p: *mut *mut c_void,
    len_p: *mut usize,
    type_p: *mut git_object_t,
    backend_p: *mut git_odb_backend,
    oid: *const git_oid,
) -> c_int {
    // SAFETY: libgit2 passes the backend we created.
    let backend = unsafe { backend_ref(backend_p) };
    slot("read", backend, |backend, host| {
        check_out(data_p, "data")?;
        check_out(len_p, "len")?;
        check_out(type_p, "type")?;
        // SAFETY: libgit2 passes a valid id.
        let oid = unsafe { oid_arg(oid) }?;
        let mut sink = HostSink::new(host, backend_p);
        let kind = backend.store.read(&oid, &backend.hint, &mut sink)?;
        // SAFETY: the out-pointers were checked non-NULL above.
        unsafe { sink.hand_over(data_p, len_p, type_p, kind) };
        Ok(code::GIT_OK)
    })
}

unsafe extern "C" fn slot_read_prefix(
    full_p: *mut git_oid,
    data_p: *mut *mut c_void,
    len_p: *mut usize,
    type_p: *mut git_object_t,
    backend_p: *mut git_odb_backend,
    short_oid: *const git_oid,
    hex_len: usize,
) -> c_int {
    // SAFETY: libgit2 passes the backend we created.
    let backend = unsafe { backend_ref(backend_p) };
    slot("read_prefix", backend, |backend, host| {
        check_out(full_p, "full id")?;
        check_out(data_p, "data")?;
        check_out(len_p, "len")?;
        check_out(type_p, "type")?;
        // SAFETY: libgit2 passes a valid id.
        let prefix = prefix_arg(unsafe { oid_arg(short_oid) }?, hex_len)?;
        let mut sink = HostSink::new(host, backend_p);
        let (oid, kind) = backend
            .store
            .read_prefix(&prefix, &backend.hint, &mut sink)?;
        // SAFETY: the out-pointers were checked non-NULL above.
        unsafe {
            sink.hand_over(data_p, len_p, type_p, kind);
            (*full_p).id = oid.0;
        }
        Ok(code::GIT_OK)
    })
}

unsafe extern "C" fn slot_read_header(
    len_p: *mut usize,
    type_p: *mut git_object_t,
    backend_p: *mut git_odb_backend,
    oid: *const git_oid,
) -> c_int {
    // SAFETY: libgit2 passes the backend we created.
    let backend = unsafe { backend_ref(backend_p) };
    slot("read_header", backend, |backend, _| {
        check_out(len_p, "len")?;
        check_out(type_p, "type")?;
        // SAFETY: libgit2 passes a valid id.
        let oid = unsafe { oid_arg(oid) }?;
        let (kind, size) = backend.store.read_header(&oid, &backend.hint)?;
        let size = usize::try_from(size).map_err(|_| Error::OutOfMemory(usize::MAX))?;
        // SAFETY: checked non-NULL above.
        unsafe {
            *len_p = size;
            *type_p = kind as git_object_t;
        }
        Ok(code::GIT_OK)
    })
}

unsafe extern "C" fn slot_exists(backend_p: *mut git_odb_backend, oid: *const git_oid) -> c_int {
    // SAFETY: libgit2 passes the backend we created.
    let backend = unsafe { backend_ref(backend_p) };
    let host = host_of(backend);
    // libgit2 counts any non-zero as "exists", so errors must become 0, never -1.
    guard("exists", host, 0, || {
        let Some(backend) = backend else { return 0 };
        // SAFETY: libgit2 passes a valid id.
        let Ok(oid) = (unsafe { oid_arg(oid) }) else {
            return 0;
        };
        c_int::from(matches!(
            backend.store.exists(&oid, &backend.hint),
            Ok(true)
        ))
    })
}

unsafe extern "C" fn slot_exists_prefix(
    full_p: *mut git_oid,
    backend_p: *mut git_odb_backend,
    short_oid: *const git_oid,
    hex_len: usize,
) -> c_int {
    // SAFETY: libgit2 passes the backend we created.
    let backend = unsafe { backend_ref(backend_p) };
    slot("exists_prefix", backend, |backend, _| {
        check_out(full_p, "full id")?;
        // SAFETY: libgit2 passes a valid id.
        let prefix = prefix_arg(unsafe { oid_arg(short_oid) }?, hex_len)?;
        let oid = if prefix.is_full() {
            let oid = *prefix.id();
            if !backend.store.exists(&oid, &backend.hint)? {
                return Err(Error::NotFound);
            }
            oid
        } else {
            backend.store.resolve_prefix(&prefix)?
        };
        // SAFETY: checked non-NULL above.
        unsafe { (*full_p).id = oid.0 };
        Ok(code::GIT_OK)
    })
}

unsafe extern "C" fn slot_refresh(backend_p: *mut git_odb_backend) -> c_int {
    // SAFETY: libgit2 passes the backend we created.
    let backend = unsafe { backend_ref(backend_p) };
    slot("refresh", backend, |backend, _| {
        backend.store.refresh()?;
        Ok(code::GIT_OK)
    })
}

/// `git_odb_write_multi_pack_index`: refresh, then a fresh `multi-pack-index` over every pack
/// (see `store::midx::write`); the store switches to it at once.
unsafe extern "C" fn slot_writemidx(backend_p: *mut git_odb_backend) -> c_int {
    // SAFETY: libgit2 passes the backend we created.
    let backend = unsafe { backend_ref(backend_p) };
    slot("writemidx", backend, |backend, _| {
        crate::store::midx::write(&backend.store, Default::default())?;
        Ok(code::GIT_OK)
    })
}

unsafe extern "C" fn slot_foreach(
    backend_p: *mut git_odb_backend,
    callback: git_odb_foreach_cb,
    payload: *mut c_void,
) -> c_int {
    // SAFETY: libgit2 passes the backend we created.
    let backend = unsafe { backend_ref(backend_p) };
    slot("foreach", backend, |backend, _| {
        let callback =
            callback.ok_or_else(|| Error::InvalidArgument("NULL foreach callback".into()))?;
        // Like libgit2's pack backend: list what is on disk now.
        backend.store.refresh()?;
        let each = |id: &[u8; 20]| {
            // A `git_oid` is exactly 20 bytes with alignment 1: the mapped id itself is one.
            let raw = std::ptr::from_ref(id).cast::<git_oid>();
            // SAFETY: the caller's callback with its payload; `raw` points into the mapped
            // index, alive for the whole iteration.
            match unsafe { callback(raw, payload) } {
                0 => ControlFlow::Continue(()),
                stop => ControlFlow::Break(stop),
            }
        };
        Ok(backend.store.for_each(each)?.unwrap_or(code::GIT_OK))
    })
}

unsafe extern "C" fn slot_freshen(backend_p: *mut git_odb_backend, oid: *const git_oid) -> c_int {
    // SAFETY: libgit2 passes the backend we created.
    let backend = unsafe { backend_ref(backend_p) };
    slot("freshen", backend, |backend, _| {
        // SAFETY: libgit2 passes a valid id.
        let oid = unsafe { oid_arg(oid) }?;
        backend.store.freshen(&oid, &backend.hint)?;
        Ok(code::GIT_OK)
    })
}

unsafe extern "C" fn slot_free(backend_p: *mut git_odb_backend) {
    let host = HostApi::discovered();
    guard("free", host, (), || {
        if !backend_p.is_null() {
            // SAFETY: the pointer came from `Box::into_raw` in `new_backend` and libgit2 calls
            // `free` exactly once.
            drop(unsafe { Box::from_raw(backend_p.cast::<Backend>()) });
        }
    })
}

fn new_backend(
    objects_dir: *const c_char,
    options: &odbpack_options,
) -> Result<*mut git_odb_backend> {
    if objects_dir.is_null() {
        return Err(Error::InvalidArgument("NULL objects directory".into()));
    }
    // SAFETY: checked non-NULL; the caller passes a NUL-terminated path.
    let path = Path::new(std::ffi::OsStr::from_bytes(
        unsafe { CStr::from_ptr(objects_dir) }.to_bytes(),
    ));
    let store = Store::open(path, options.store_options())?;
    let backend = Box::new(Backend {
        parent: git_odb_backend {
            version: GIT_ODB_BACKEND_VERSION,
            odb: ptr::null_mut(),
            read: Some(slot_read),
            read_prefix: Some(slot_read_prefix),
            read_header: Some(slot_read_header),
            write: None,
            writestream: None,
            readstream: None,
            exists: Some(slot_exists),
            exists_prefix: Some(slot_exists_prefix),
            refresh: Some(slot_refresh),
            foreach: Some(slot_foreach),
            writepack: Some(super::writepack::slot_writepack),
            writemidx: Some(slot_writemidx),
            freshen: Some(slot_freshen),
            free: Some(slot_free),
        },
        store,
        host: options.host(),
        hint: AtomicUsize::new(0),
        writepack_options: options.writepack_options(),
    });
    Ok(Box::into_raw(backend).cast::<git_odb_backend>())
}

/// Creates a pack backend over `objects_dir` (e.g. `"repo.git/objects"`) with default options:
/// the same contract as libgit2's `git_odb_backend_pack`, plus multi-pack-index support.
///
/// Register it with `git_odb_add_backend(odb, backend, priority)` (libgit2's own pack backend uses
/// priority 2). libgit2 then owns it and frees it with the odb; free it yourself with
/// `backend->free(backend)` only if registration failed.
///
/// Returns 0 and sets `*out`, or a negative libgit2 error code with a message (`*out` untouched).
/// Backends on the same directory share one store: create one per thread (each with its own
/// `git_odb`) for parallel reads.
///
/// # Safety
/// `out` must be valid for a pointer write; `objects_dir` a NUL-terminated path.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn odbpack_backend_new(
    out: *mut *mut git_odb_backend,
    objects_dir: *const c_char,
) -> c_int {
    // SAFETY: same contract as the `_ext` variant, with default options.
    unsafe { odbpack_backend_new_ext(out, objects_dir, ptr::null()) }
}

/// The caller's options, read only as far as the struct of its `version` goes; fields of later
/// versions keep their defaults. NULL gives the defaults.
///
/// # Safety
/// `options` must be NULL or point to an initialised `odbpack_options` of the version it names.
unsafe fn read_options(options: *const odbpack_options) -> Result<odbpack_options> {
    let mut read = odbpack_options::default();
    if options.is_null() {
        return Ok(read);
    }
    // SAFETY: non-NULL, and every version starts with `version`.
    let version = unsafe { (&raw const (*options).version).read() };
    let len = options_len(version)?;
    // SAFETY: the caller's struct holds `len` bytes (the size of its version), laid out like the
    // start of ours (fields are only appended); `read` is at least `len` bytes; they are
    // distinct objects. Every field is plain data or a nullable function pointer, so any bytes
    // the caller initialised are valid values.
    unsafe { ptr::copy_nonoverlapping(options.cast::<u8>(), (&raw mut read).cast::<u8>(), len) };
    Ok(read)
}

/// Like [`odbpack_backend_new`] with options (`NULL` = defaults). Initialise the struct with
/// [`odbpack_options_init`]; `options->version` may be any version up to
/// `ODBPACK_OPTIONS_VERSION` (fields added later keep their defaults).
///
/// # Safety
/// `out` must be valid for a pointer write; `objects_dir` a NUL-terminated path; `options` NULL
/// or a valid `odbpack_options` of the version it names.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn odbpack_backend_new_ext(
    out: *mut *mut git_odb_backend,
    objects_dir: *const c_char,
    options: *const odbpack_options,
) -> c_int {
    // SAFETY: `options` is NULL or a valid struct of its version (caller contract).
    let options = unsafe { read_options(options) };
    let host = options
        .as_ref()
        .map_or_else(|_| *HostApi::discovered(), odbpack_options::host);
    call("odbpack_backend_new", &host, || {
        check_out(out, "out pointer")?;
        let backend = new_backend(objects_dir, &options?)?;
        // SAFETY: checked non-NULL.
        unsafe { *out = backend };
        Ok(code::GIT_OK)
    })
}

/// Fills `options` with the defaults for `version` (pass `ODBPACK_OPTIONS_VERSION`), writing
/// only the fields that version has. Returns 0, or -1 if `options` is NULL or `version` is
/// unknown.
///
/// # Safety
/// `options` must be NULL or valid for writing one `odbpack_options` of `version`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn odbpack_options_init(
    options: *mut odbpack_options,
    version: c_uint,
) -> c_int {
    let host = HostApi::discovered();
    call("odbpack_options_init", host, || {
        check_out(options, "options")?;
        let len = options_len(version)?;
        let defaults = odbpack_options {
            version,
            ..odbpack_options::default()
        };
        // SAFETY: checked non-NULL; the caller's struct holds the `len` bytes of its version;
        // `defaults` is a distinct local at least that large.
        unsafe {
            ptr::copy_nonoverlapping(
                (&raw const defaults).cast::<u8>(),
                options.cast::<u8>(),
                len,
            )
        };
        Ok(code::GIT_OK)
    })
}

/// The last error message odbpack recorded on this thread, or NULL. Valid until the next odbpack
/// error on the same thread. Useful when libgit2 is linked statically and unreachable for
/// `git_error_set_str`.
#[unsafe(no_mangle)]
pub extern "C" fn odbpack_error_last() -> *const c_char {
    last_message()
}

/// The library version, e.g. `"0.1.0"` (static string).
#[unsafe(no_mangle)]
pub extern "C" fn odbpack_version() -> *const c_char {
    static VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(version) => version,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}

/// The store behind a backend created by this library (for Rust callers: tests, tools).
///
/// # Safety
/// `backend` must come from `odbpack_backend_new[_ext]` and not be freed.
pub unsafe fn backend_store(backend: *mut git_odb_backend) -> Option<Arc<Store>> {
    // SAFETY: caller contract.
    unsafe { backend_ref(backend) }.map(|backend| backend.store.clone())
}
