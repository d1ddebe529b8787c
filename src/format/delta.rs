//! git's delta format: header varints and instruction application (git-formats.md §1.3).
//!
//! STUB: contract only; bodies land with the parser work.

/// Why a delta was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Placeholder until the parser lands.
    #[error("not implemented")]
    Unimplemented,
}

/// The two sizes at the start of a delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaHeader {
    /// Size the base must have.
    pub base_size: u64,
    /// Size of the result.
    pub result_size: u64,
    /// Bytes the two varints take.
    pub header_len: usize,
}

/// Reads the base and result sizes; works on a truncated delta as long as the varints are there.
pub fn parse_header(_delta: &[u8]) -> Result<DeltaHeader, Error> {
    Err(Error::Unimplemented)
}

/// Applies `delta` to `base`, replacing `out`'s contents with the result. Rejects a result larger
/// than `max_result_size` before allocating, and every malformed instruction.
pub fn apply(
    _base: &[u8],
    _delta: &[u8],
    _max_result_size: u64,
    _out: &mut Vec<u8>,
) -> Result<(), Error> {
    Err(Error::Unimplemented)
}
