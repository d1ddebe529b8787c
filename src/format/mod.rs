//! Zero-copy parsers and writers of git's on-disk formats.
//!
//! Every reader here is a view over bytes (`D: Deref<Target = [u8]>`: an mmap in production,
//! `Vec<u8>`/`&[u8]` in tests and fuzzers). Readers validate structure when they are built and
//! bounds-check at access, so no count or offset read from a file is trusted. Nothing in this
//! module does I/O or uses `unsafe`; callers attach file names to the errors.

pub mod chunk;
pub mod delta;
pub mod fanout;
pub mod idx;
pub mod merge;
pub mod midx;
#[cfg(test)]
mod midx_tests;
pub mod midx_write;
pub mod pack;
pub mod rev;

/// Reads a big-endian `u32` at `pos`; `None` when it would run past the end of `bytes`.
#[inline]
pub fn be_u32(bytes: &[u8], pos: usize) -> Option<u32> {
    let field = bytes.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_be_bytes(field.try_into().ok()?))
}

/// Reads a big-endian `u64` at `pos`; `None` when it would run past the end of `bytes`.
#[inline]
pub fn be_u64(bytes: &[u8], pos: usize) -> Option<u64> {
    let field = bytes.get(pos..pos.checked_add(8)?)?;
    Some(u64::from_be_bytes(field.try_into().ok()?))
}

/// What a prefix lookup in one sorted id table found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixMatch {
    /// No id starts with the prefix.
    None,
    /// Exactly one id does, at this position.
    One(usize),
    /// Two or more distinct ids do.
    Ambiguous,
}
