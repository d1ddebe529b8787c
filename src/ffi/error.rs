//! Mapping [`Error`] to libgit2's return codes and error classes: the only place that decides
//! what a failure looks like to the host.
//!
//! "Not found" is returned silently (`GIT_ENOTFOUND`): libgit2 asks the next backend, and a
//! message would be noise on every loose-object read (the pack backend is consulted first).
//! Everything else sets a message naming the file and what was wrong, both in the host's
//! `git_error_last()` (when reachable, see `host`) and in `odbpack_error_last()`.

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int};

use crate::error::Error;
use crate::writepack::Error as IndexerError;

use super::host::HostApi;
use super::sys::{class, code};

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Records `message` for `odbpack_error_last()` and reports it to libgit2.
pub fn set_message(host: &HostApi, class: c_int, message: &str) {
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    host.set_error(class, &message);
    LAST_ERROR.with(|last| *last.borrow_mut() = Some(message));
}

/// The last message recorded on this thread (NULL if none); valid until the next error on this
/// thread.
pub fn last_message() -> *const c_char {
    LAST_ERROR.with(|last| {
        last.borrow()
            .as_ref()
            .map_or(std::ptr::null(), |message| message.as_ptr())
    })
}

/// The libgit2 return code for `error`, after reporting its message.
pub fn report(host: &HostApi, error: &Error) -> c_int {
    let (code, class) = match error {
        Error::NotFound => return code::GIT_ENOTFOUND,
        Error::Ambiguous(_) => (code::GIT_EAMBIGUOUS, class::GIT_ERROR_ODB),
        Error::Io { .. } => (code::GIT_ERROR, class::GIT_ERROR_OS),
        Error::Zlib { .. } => (code::GIT_ERROR, class::GIT_ERROR_ZLIB),
        Error::Locked { .. } => (code::GIT_ELOCKED, class::GIT_ERROR_ODB),
        Error::OutOfMemory(_) => (code::GIT_ERROR, class::GIT_ERROR_NOMEMORY),
        Error::InvalidArgument(_) => (code::GIT_ERROR, class::GIT_ERROR_INVALID),
        // As libgit2's indexer: the callback's value comes back verbatim.
        Error::Indexer(IndexerError::Cancelled(value)) => (*value, class::GIT_ERROR_CALLBACK),
        Error::Indexer(IndexerError::OutOfMemory(_)) => {
            (code::GIT_ERROR, class::GIT_ERROR_NOMEMORY)
        }
        Error::Indexer(IndexerError::Io { .. }) => (code::GIT_ERROR, class::GIT_ERROR_OS),
        Error::Indexer(error) if error.is_zlib() => (code::GIT_ERROR, class::GIT_ERROR_ZLIB),
        Error::Indexer(_) => (code::GIT_ERROR, class::GIT_ERROR_INDEXER),
        _ => (code::GIT_ERROR, class::GIT_ERROR_ODB),
    };
    set_message(host, class, &format!("odbpack: {error}"));
    code
}
