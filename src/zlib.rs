//! zlib inflate for pack entries, with a reusable per-thread decompressor.
//!
//! STUB: contract only; the body lands with the parser work.

/// Why a zlib stream was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Placeholder until the implementation lands.
    #[error("not implemented")]
    Unimplemented,
}

/// Inflates the zlib stream at the start of `input` into `out`, which must end up exactly full
/// with the stream finished. Returns the number of input bytes the stream used.
pub fn inflate_exact(_input: &[u8], _out: &mut [u8]) -> Result<usize, Error> {
    Err(Error::Unimplemented)
}

/// Inflates at most `out.len()` bytes from the start of the stream (for headers: delta sizes);
/// returns how many bytes were produced. The stream need not end.
pub fn inflate_prefix(_input: &[u8], _out: &mut [u8]) -> Result<usize, Error> {
    Err(Error::Unimplemented)
}
