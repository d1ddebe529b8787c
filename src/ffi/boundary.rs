//! The one way into Rust from C: a panic boundary, and the audited pointer conversions.
//!
//! Since Rust 1.81 an unwind out of an `extern "C"` function aborts the process; for a library
//! loaded into someone's Python interpreter or server that is unacceptable. Every exported
//! function runs its body through [`guard`], which turns a panic into libgit2's generic error
//! (with a message) or the slot's documented default.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use std::ffi::{c_int, c_uint};

use crate::error::{Error, Result};

use super::error::{report, set_message};
use super::host::HostApi;
use super::sys::{class, code};

/// Runs `body`; on panic records "internal error in `slot`" and returns `on_panic`.
pub fn guard<R>(slot: &'static str, host: &HostApi, on_panic: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            let message = format!(
                "odbpack: internal error in {slot}: {}",
                panic_text(&*payload)
            );
            set_message(host, class::GIT_ERROR_ODB, &message);
            on_panic
        }
    }
}

/// The shape of every `int`-returning entry point: [`guard`] plus the one error mapping
/// (`Ok(code)` is returned as is; an error is reported and becomes its libgit2 code).
pub fn call(slot: &'static str, host: &HostApi, body: impl FnOnce() -> Result<c_int>) -> c_int {
    guard(slot, host, code::GIT_ERROR, || {
        body().unwrap_or_else(|error| report(host, &error))
    })
}

/// Rejects an options struct of a version this library does not know.
pub fn check_version(what: &str, version: c_uint, supported: c_uint) -> Result<()> {
    if version == supported {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{what} version {version} is not supported (this library has {supported})"
        )))
    }
}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "panic"
    }
}
