//! `odbpack_midx_*`: write, verify and expire the multi-pack-index of an objects directory
//! (git-formats.md §7; the work is in `store::midx`, this file only converts arguments).
//!
//! Every function works on a path, so it needs no odb; backends of this library open on the
//! same directory in the process switch to a newly written MIDX at once, other processes (git,
//! libgit2's own backend) see it on their next refresh.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use crate::error::{Error, Result};
use crate::format::midx_write::WriteOptions;
use crate::store::midx;

use super::boundary::{call, check_version};
use super::host::HostApi;
use super::sys::code;

/// Version of [`odbpack_midx_write_options`] this library understands.
pub const ODBPACK_MIDX_WRITE_OPTIONS_VERSION: c_uint = 1;

/// Options of [`odbpack_midx_write`] and [`odbpack_midx_expire`]. Initialise with
/// [`odbpack_midx_write_options_init`] (all off, no callback), then change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct odbpack_midx_write_options {
    /// Must be `ODBPACK_MIDX_WRITE_OPTIONS_VERSION`.
    pub version: c_uint,
    /// git's `--preferred-pack`: a `pack-<hash>.idx` or `.pack` basename whose copies of
    /// duplicated objects win; NULL for none. An unknown name is ignored, as git warns and goes
    /// on; a pack with no objects is an error. Ignored by expire.
    pub preferred_pack: *const c_char,
    /// Non-zero: also write the RIDX and BTMP chunks and the `multi-pack-index-<checksum>.rev`
    /// sidecar, as git's `--bitmap` does (minus the bitmap); the default preferred pack is then
    /// the oldest non-empty one, as in git. Ignored by expire (git's expire drops them).
    pub write_reverse_index: c_int,
    /// Called from the writing thread with (pack entries visited, total entries) while objects
    /// are selected, at least once at the end; NULL for none.
    pub progress: Option<unsafe extern "C" fn(done: u64, total: u64, payload: *mut c_void)>,
    /// Passed to `progress`.
    pub payload: *mut c_void,
}

impl Default for odbpack_midx_write_options {
    fn default() -> Self {
        odbpack_midx_write_options {
            version: ODBPACK_MIDX_WRITE_OPTIONS_VERSION,
            preferred_pack: ptr::null(),
            write_reverse_index: 0,
            progress: None,
            payload: ptr::null_mut(),
        }
    }
}

/// Reads a NUL-terminated path argument.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string that outlives the returned reference.
unsafe fn path_arg<'a>(path: *const c_char, what: &str) -> Result<&'a Path> {
    if path.is_null() {
        return Err(Error::InvalidArgument(format!("NULL {what}")));
    }
    // SAFETY: checked non-NULL; caller contract for the rest.
    let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
    Ok(Path::new(std::ffi::OsStr::from_bytes(bytes)))
}

/// The options, checked (defaults for NULL).
///
/// # Safety
/// `options` must be NULL or point to an initialised struct.
unsafe fn options_arg(
    options: *const odbpack_midx_write_options,
) -> Result<odbpack_midx_write_options> {
    // SAFETY: caller contract.
    let options = unsafe { options.as_ref() }.copied().unwrap_or_default();
    check_version(
        "odbpack_midx_write_options",
        options.version,
        ODBPACK_MIDX_WRITE_OPTIONS_VERSION,
    )?;
    Ok(options)
}

/// Fills `options` with the defaults for `version`. Returns 0, or -1 if `options` is NULL or
/// `version` is not `ODBPACK_MIDX_WRITE_OPTIONS_VERSION`.
///
/// # Safety
/// `options` must be NULL or point to writable memory for one struct.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn odbpack_midx_write_options_init(
    options: *mut odbpack_midx_write_options,
    version: c_uint,
) -> c_int {
    let host = HostApi::discovered();
    call("odbpack_midx_write_options_init", host, || {
        if options.is_null() {
            return Err(Error::InvalidArgument("NULL options".into()));
        }
        check_version(
            "odbpack_midx_write_options",
            version,
            ODBPACK_MIDX_WRITE_OPTIONS_VERSION,
        )?;
        // SAFETY: checked non-NULL; the caller owns the struct.
        unsafe { options.write(odbpack_midx_write_options::default()) };
        Ok(code::GIT_OK)
    })
}

/// Writes `<objects_dir>/pack/multi-pack-index` covering every pack in the directory
/// (`.keep` packs included), byte-identical to a fresh `git multi-pack-index write` (git 2.47;
/// with `write_reverse_index`, to `git multi-pack-index write --bitmap` minus the bitmap).
/// `options` may be NULL for defaults (the same write as `git_odb_write_multi_pack_index`).
///
/// The file is written to `multi-pack-index.lock` (created exclusively), fsync'd and renamed into
/// place; readers never see a partial file, and on failure nothing is left behind and the old
/// MIDX still serves. Afterwards stale `multi-pack-index-*.{bitmap,rev}` files and an
/// incremental chain are deleted, as git does.
///
/// Returns 0; `GIT_ELOCKED` (-14) if `multi-pack-index.lock` exists (someone else is writing; the
/// message names the lock); or another negative libgit2 code with a message (e.g. no packs).
///
/// # Safety
/// `objects_dir` must be NULL or a NUL-terminated path; `options` NULL or an initialised struct
/// whose `preferred_pack` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn odbpack_midx_write(
    objects_dir: *const c_char,
    options: *const odbpack_midx_write_options,
) -> c_int {
    let host = HostApi::discovered();
    call("odbpack_midx_write", host, || {
        // SAFETY: caller contract: NULL or a NUL-terminated path.
        let dir = unsafe { path_arg(objects_dir, "objects directory") }?;
        // SAFETY: caller contract: NULL or an initialised struct.
        let options = unsafe { options_arg(options) }?;
        let preferred =
            if options.preferred_pack.is_null() {
                None
            } else {
                // SAFETY: checked non-NULL; the caller passes a NUL-terminated string.
                let name = unsafe { CStr::from_ptr(options.preferred_pack) };
                Some(name.to_str().map_err(|_| {
                    Error::InvalidArgument("preferred pack name is not UTF-8".into())
                })?)
            };
        let mut progress = options.progress.map(|callback| {
            move |done: u64, total: u64| {
                // SAFETY: the caller's callback with its payload.
                unsafe { callback(done, total, options.payload) }
            }
        });
        let write_options = WriteOptions {
            preferred_pack: preferred,
            write_reverse_index: options.write_reverse_index != 0,
            progress: progress
                .as_mut()
                .map(|progress| progress as &mut dyn FnMut(u64, u64)),
        };
        midx::write_dir(dir, write_options)?;
        Ok(code::GIT_OK)
    })
}

/// Checks `<objects_dir>/pack/multi-pack-index` like `git multi-pack-index verify`: the file
/// parses (signature, version, hash version, chunk table, required chunks, fanout, pack-name
/// order), the checksum, that every pack loads, that there is at least one object, that object
/// ids are strictly increasing, and that every object's pack id is valid and its offset equals
/// the one in its pack's `.idx`.
///
/// `on_problem` (may be NULL) is called once per problem with git's wording of it (the message
/// is valid during the call only). Returns the number of problems (0: the MIDX verifies, or
/// there is none), or a negative libgit2 code with a message if verification could not run.
/// Without a `multi-pack-index` file, every layer of an incremental chain is verified (messages
/// then start with the layer's file name).
///
/// # Safety
/// `objects_dir` must be NULL or a NUL-terminated path; `on_problem` must be safe to call with
/// `payload`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn odbpack_midx_verify(
    objects_dir: *const c_char,
    on_problem: Option<unsafe extern "C" fn(message: *const c_char, payload: *mut c_void)>,
    payload: *mut c_void,
) -> c_int {
    let host = HostApi::discovered();
    call("odbpack_midx_verify", host, || {
        // SAFETY: caller contract: NULL or a NUL-terminated path.
        let dir = unsafe { path_arg(objects_dir, "objects directory") }?;
        let problems = midx::verify_dir(dir)?;
        if let Some(callback) = on_problem {
            for problem in &problems {
                let message = CString::new(problem.replace('\0', " ")).unwrap_or_default();
                // SAFETY: the caller's callback; `message` outlives the call.
                unsafe { callback(message.as_ptr(), payload) };
            }
        }
        Ok(c_int::try_from(problems.len()).unwrap_or(c_int::MAX))
    })
}

/// Like `git multi-pack-index expire`: deletes every pack listed in
/// `<objects_dir>/pack/multi-pack-index` from which it selects no object (never `.keep` or cruft
/// packs), and rewrites the MIDX without them (and without RIDX/BTMP, as git does). The new MIDX
/// is committed before any pack is deleted. Only `progress`/`payload` of `options` (may be NULL)
/// are used.
///
/// Returns 0 and sets `*expired` (may be NULL) to the number of packs deleted; a negative
/// libgit2 code with a message on failure (`GIT_ELOCKED` if the MIDX is being written).
///
/// # Safety
/// `objects_dir` must be NULL or a NUL-terminated path; `options` NULL or an initialised struct;
/// `expired` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn odbpack_midx_expire(
    objects_dir: *const c_char,
    options: *const odbpack_midx_write_options,
    expired: *mut usize,
) -> c_int {
    let host = HostApi::discovered();
    call("odbpack_midx_expire", host, || {
        // SAFETY: caller contract: NULL or a NUL-terminated path.
        let dir = unsafe { path_arg(objects_dir, "objects directory") }?;
        // SAFETY: caller contract: NULL or an initialised struct.
        let options = unsafe { options_arg(options) }?;
        let mut progress = options.progress.map(|callback| {
            move |done: u64, total: u64| {
                // SAFETY: the caller's callback with its payload.
                unsafe { callback(done, total, options.payload) }
            }
        });
        let result = midx::expire_dir(
            dir,
            progress
                .as_mut()
                .map(|progress| progress as &mut dyn FnMut(u64, u64)),
        )?;
        if !expired.is_null() {
            // SAFETY: checked non-NULL; the caller passes a writable size_t.
            unsafe { *expired = result.dropped.len() };
        }
        Ok(code::GIT_OK)
    })
}
