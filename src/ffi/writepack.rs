//! The `writepack` slot: libgit2's `git_odb_write_pack` (fetch, clone) streams a pack through
//! `append`, then calls `commit` and `free` (libgit2-contract.md §2.9). The work is done by
//! [`crate::writepack::Indexer`]; this file only converts arguments, progress and errors.
//!
//! The constructor runs under the odb lock, so it never calls back into libgit2; `append` and
//! `commit` run outside it and may read thin-pack bases from the odb with the host's
//! `git_odb_read` (found like the allocator, see `host`). After a commit the store rescans, so
//! the new objects are readable at once.

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::Arc;

use crate::error::Error;
use crate::format::pack::ObjectKind;
use crate::oid::ObjectId;
use crate::store::Store;
use crate::writepack::{Indexer, Progress};

use super::backend::backend_ref;
use super::boundary::{call, guard};
use super::host::HostApi;
use super::sys::{
    code, git_indexer_progress, git_indexer_progress_cb, git_odb, git_odb_backend, git_odb_object,
    git_odb_writepack, git_oid,
};

/// What libgit2 holds: the `git_odb_writepack` vtable first, then our state.
#[repr(C)]
struct Writepack {
    parent: git_odb_writepack,
    indexer: Indexer,
    store: Arc<Store>,
    host: HostApi,
    odb: *mut git_odb,
    callback: git_indexer_progress_cb,
    payload: *mut c_void,
}

/// The one cast from libgit2's writepack pointer to ours.
///
/// # Safety
/// `writepack` must be NULL or a pointer made by [`slot_writepack`] and not yet freed, used by
/// one thread at a time (libgit2 drives a writepack from one thread).
unsafe fn writepack_mut<'a>(writepack: *mut git_odb_writepack) -> Option<&'a mut Writepack> {
    // SAFETY: `Writepack` is `repr(C)` with `git_odb_writepack` first; caller contract.
    unsafe { writepack.cast::<Writepack>().as_mut() }
}

/// The shape of the `int`-returning writepack entry points, as `slot` is for the backend's: the
/// writepack's host functions (or the discovered ones), the panic boundary, the NULL check and
/// the one error mapping.
fn writepack_call(
    name: &'static str,
    writepack: Option<&mut Writepack>,
    body: impl FnOnce(&mut Writepack) -> crate::Result<c_int>,
) -> c_int {
    let host = writepack
        .as_ref()
        .map_or_else(|| *HostApi::discovered(), |w| w.host);
    call(name, &host, || match writepack {
        Some(writepack) => body(writepack),
        None => Err(Error::InvalidArgument("NULL writepack".into())),
    })
}

/// Copies our counters into the caller's struct (never `received_bytes`, which the transport
/// owns) and runs the caller's callback.
fn report_progress(
    counters: &Progress,
    stats: *mut git_indexer_progress,
    callback: git_indexer_progress_cb,
    payload: *mut c_void,
) -> i32 {
    let mut local = git_indexer_progress::default();
    let target = if stats.is_null() {
        &mut local as *mut git_indexer_progress
    } else {
        stats
    };
    // SAFETY: `target` is the caller's live struct (libgit2 passes one to every call) or ours.
    unsafe {
        (*target).total_objects = counters.total_objects;
        (*target).indexed_objects = counters.indexed_objects;
        (*target).received_objects = counters.received_objects;
        (*target).local_objects = counters.local_objects;
        (*target).total_deltas = counters.total_deltas;
        (*target).indexed_deltas = counters.indexed_deltas;
    }
    match callback {
        // SAFETY: the caller's callback with its own payload and a valid stats pointer.
        Some(callback) => unsafe { callback(target, payload) },
        None => 0,
    }
}

/// Reads a thin-pack base from the odb libgit2 handed to the constructor.
fn read_base(host: &HostApi, odb: *mut git_odb, id: &ObjectId) -> Option<(ObjectKind, Vec<u8>)> {
    let reader = host.odb_reader?;
    if odb.is_null() {
        return None;
    }
    let raw = git_oid { id: id.0 };
    let mut object: *mut git_odb_object = ptr::null_mut();
    // SAFETY: libgit2's `git_odb_read` on the odb libgit2 gave us, called outside the odb lock
    // (we are in append/commit); `object` receives a new reference on success.
    if unsafe { (reader.read)(&mut object, odb, &raw) } != 0 || object.is_null() {
        return None;
    }
    // SAFETY: `object` is a live odb object until the free below; its data is `size` bytes.
    let result = unsafe {
        let kind = ObjectKind::from_type_bits(u8::try_from((reader.kind)(object)).unwrap_or(0));
        let size = (reader.size)(object);
        let data = (reader.data)(object).cast::<u8>();
        let bytes = if size == 0 {
            Vec::new()
        } else if data.is_null() {
            (reader.free)(object);
            return None;
        } else {
            std::slice::from_raw_parts(data, size).to_vec()
        };
        kind.map(|kind| (kind, bytes))
    };
    // SAFETY: releases the reference taken by `git_odb_read`.
    unsafe { (reader.free)(object) };
    result
}

unsafe extern "C" fn wp_append(
    writepack_p: *mut git_odb_writepack,
    data: *const c_void,
    size: usize,
    stats: *mut git_indexer_progress,
) -> c_int {
    // SAFETY: libgit2 passes the writepack we created.
    let writepack = unsafe { writepack_mut(writepack_p) };
    writepack_call("writepack append", writepack, |writepack| {
        let bytes: &[u8] = if size == 0 {
            &[]
        } else if data.is_null() {
            return Err(Error::InvalidArgument("NULL data".into()));
        } else {
            // SAFETY: libgit2 passes `size` readable bytes at `data`.
            unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size) }
        };
        let (callback, payload) = (writepack.callback, writepack.payload);
        let mut progress =
            |counters: &Progress| report_progress(counters, stats, callback, payload);
        writepack.indexer.append(bytes, &mut progress)?;
        Ok(code::GIT_OK)
    })
}

unsafe extern "C" fn wp_commit(
    writepack_p: *mut git_odb_writepack,
    stats: *mut git_indexer_progress,
) -> c_int {
    // SAFETY: libgit2 passes the writepack we created.
    let writepack = unsafe { writepack_mut(writepack_p) };
    writepack_call("writepack commit", writepack, |writepack| {
        let (callback, payload, odb, host) = (
            writepack.callback,
            writepack.payload,
            writepack.odb,
            writepack.host,
        );
        let mut progress =
            |counters: &Progress| report_progress(counters, stats, callback, payload);
        let mut bases = |id: &ObjectId| read_base(&host, odb, id);
        writepack.indexer.commit(&mut bases, &mut progress)?;
        // Make the new pack visible to this backend's readers at once.
        writepack.store.rescan()?;
        Ok(code::GIT_OK)
    })
}

unsafe extern "C" fn wp_free(writepack_p: *mut git_odb_writepack) {
    let host = HostApi::discovered();
    guard("writepack free", host, (), || {
        if !writepack_p.is_null() {
            // SAFETY: made by `Box::into_raw` in `slot_writepack`; libgit2 frees it once.
            // Dropping an uncommitted indexer removes its temporary files.
            drop(unsafe { Box::from_raw(writepack_p.cast::<Writepack>()) });
        }
    })
}

/// The `writepack` slot of the backend vtable.
///
/// # Safety
/// Called by libgit2 with a backend made by this library (under the odb lock).
pub(crate) unsafe extern "C" fn slot_writepack(
    out: *mut *mut git_odb_writepack,
    backend_p: *mut git_odb_backend,
    odb: *mut git_odb,
    callback: git_indexer_progress_cb,
    payload: *mut c_void,
) -> c_int {
    // SAFETY: libgit2 passes the backend we created.
    let backend = unsafe { backend_ref(backend_p) };
    let host = backend.map_or_else(|| *HostApi::discovered(), |backend| *backend.host());
    call("writepack", &host, || {
        let backend = backend.ok_or_else(|| Error::InvalidArgument("NULL backend".into()))?;
        if out.is_null() {
            return Err(Error::InvalidArgument("NULL out pointer".into()));
        }
        let store = Arc::clone(backend.store());
        let indexer = Indexer::new(store.pack_dir(), backend.writepack_options().clone())?;
        let writepack = Box::new(Writepack {
            parent: git_odb_writepack {
                backend: backend_p,
                append: Some(wp_append),
                commit: Some(wp_commit),
                free: Some(wp_free),
            },
            indexer,
            store,
            host,
            odb,
            callback,
            payload,
        });
        // SAFETY: checked non-NULL above.
        unsafe { *out = Box::into_raw(writepack).cast::<git_odb_writepack>() };
        Ok(code::GIT_OK)
    })
}
