//! The one way into Rust from C: a panic boundary, and the audited pointer conversions.
//!
//! Since Rust 1.81 an unwind out of an `extern "C"` function aborts the process; for a library
//! loaded into someone's Python interpreter or server that is unacceptable. Every exported
//! function runs its body through [`guard`], which turns a panic into libgit2's generic error
//! (with a message) or the slot's documented default.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::error::set_message;
use super::host::HostApi;
use super::sys::class;

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

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "panic"
    }
}
