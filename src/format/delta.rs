//! git's delta format: header varints and instruction application (git-formats.md §1.3).
//!
//! [`apply`] performs every check git's `patch-delta.c` does, so a delta git refuses is refused
//! here too, and never reads or writes out of bounds whatever the delta says.

/// git's `DELTA_SIZE_MIN`: two one-byte sizes plus one two-byte instruction.
pub const DELTA_SIZE_MIN: usize = 4;

/// Why a delta was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The delta is shorter than [`DELTA_SIZE_MIN`] bytes.
    #[error("delta is {len} bytes, shorter than the minimum 4")]
    TooShort {
        /// Length of the delta.
        len: usize,
    },
    /// A header size varint runs past the end of the data.
    #[error("delta header truncated")]
    HeaderTruncated,
    /// A header size varint does not fit in 64 bits.
    #[error("delta header size overflows 64 bits")]
    HeaderOverflow,
    /// The base's size differs from the size the delta was made against.
    #[error("delta expects a base of {expected} bytes, base has {actual}")]
    BaseSizeMismatch {
        /// Base size recorded in the delta.
        expected: u64,
        /// Actual base size.
        actual: u64,
    },
    /// The result would be larger than the caller allows.
    #[error("delta result of {size} bytes exceeds the limit of {max}")]
    ResultTooLarge {
        /// Result size recorded in the delta.
        size: u64,
        /// The caller's limit.
        max: u64,
    },
    /// Memory for the result could not be allocated.
    #[error("out of memory allocating a {0}-byte delta result")]
    OutOfMemory(u64),
    /// Instruction byte 0, which git reserves.
    #[error("unexpected delta opcode 0 at byte {at}")]
    ZeroOpcode {
        /// Position of the opcode in the delta.
        at: usize,
    },
    /// A copy instruction's parameter bytes run past the end of the delta.
    #[error("copy instruction at byte {at} truncated")]
    CopyTruncated {
        /// Position of the opcode in the delta.
        at: usize,
    },
    /// A copy reads outside the base (or its offset + size overflows).
    #[error(
        "copy at byte {at} of {size} bytes from offset {offset} is outside the {base_size}-byte base"
    )]
    CopyOutOfBounds {
        /// Position of the opcode in the delta.
        at: usize,
        /// Copy offset in the base.
        offset: u64,
        /// Copy size.
        size: u64,
        /// Size of the base.
        base_size: u64,
    },
    /// An instruction would write past the result size.
    #[error("instruction at byte {at} writes past the {result_size}-byte result")]
    WritePastResult {
        /// Position of the opcode in the delta.
        at: usize,
        /// Result size recorded in the delta.
        result_size: u64,
    },
    /// An insert instruction's literal bytes run past the end of the delta.
    #[error("insert at byte {at} runs past the end of the delta")]
    InsertPastEnd {
        /// Position of the opcode in the delta.
        at: usize,
    },
    /// The instructions ended before producing the result size.
    #[error("delta produced {actual} bytes, expected {expected}")]
    ResultSizeMismatch {
        /// Result size recorded in the delta.
        expected: u64,
        /// Bytes produced.
        actual: u64,
    },
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

/// Reads one little-endian base-128 varint at `pos`; returns it and the position after it.
fn read_size(delta: &[u8], mut pos: usize) -> Result<(u64, usize), Error> {
    let mut value = 0u64;
    let mut shift = 0u32;
    loop {
        let byte = *delta.get(pos).ok_or(Error::HeaderTruncated)?;
        pos += 1;
        let bits = u64::from(byte & 0x7f);
        // Reject any group that would lose bits, as git's `st_left_shift` dies on them.
        if bits != 0 && (shift >= 64 || bits.leading_zeros() < shift) {
            return Err(Error::HeaderOverflow);
        }
        if bits != 0 {
            value |= bits << shift;
        }
        if byte & 0x80 == 0 {
            return Ok((value, pos));
        }
        shift += 7;
        // Zero continuation groups could otherwise be repeated without bound.
        if shift >= 64 + 7 {
            return Err(Error::HeaderOverflow);
        }
    }
}

/// Reads the base and result sizes; works on a truncated delta as long as the varints are there.
pub fn parse_header(delta: &[u8]) -> Result<DeltaHeader, Error> {
    let (base_size, pos) = read_size(delta, 0)?;
    let (result_size, header_len) = read_size(delta, pos)?;
    Ok(DeltaHeader {
        base_size,
        result_size,
        header_len,
    })
}

/// Checks a delta's header against its base and the size limit: what must hold before any
/// buffer for the result is allocated.
pub fn check(base: &[u8], delta: &[u8], max_result_size: u64) -> Result<DeltaHeader, Error> {
    if delta.len() < DELTA_SIZE_MIN {
        return Err(Error::TooShort { len: delta.len() });
    }
    let header = parse_header(delta)?;
    let base_size = base.len() as u64;
    if header.base_size != base_size {
        return Err(Error::BaseSizeMismatch {
            expected: header.base_size,
            actual: base_size,
        });
    }
    if header.result_size > max_result_size {
        return Err(Error::ResultTooLarge {
            size: header.result_size,
            max: max_result_size,
        });
    }
    Ok(header)
}

/// Applies `delta` to `base`, replacing `out`'s contents with the result. Rejects a result larger
/// than `max_result_size` before allocating, and every malformed instruction.
pub fn apply(
    base: &[u8],
    delta: &[u8],
    max_result_size: u64,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    out.clear();
    let header = check(base, delta, max_result_size)?;
    let len =
        usize::try_from(header.result_size).map_err(|_| Error::OutOfMemory(header.result_size))?;
    out.try_reserve_exact(len)
        .map_err(|_| Error::OutOfMemory(header.result_size))?;
    out.resize(len, 0);
    apply_into(base, delta, &header, out).inspect_err(|_| out.clear())
}

/// Applies a delta whose header [`check`] accepted into `out`, which must be exactly
/// `header.result_size` bytes: the caller's final buffer, so the result is never copied.
pub fn apply_into(
    base: &[u8],
    delta: &[u8],
    header: &DeltaHeader,
    out: &mut [u8],
) -> Result<(), Error> {
    let result_size = header.result_size;
    if out.len() as u64 != result_size {
        return Err(Error::ResultSizeMismatch {
            expected: result_size,
            actual: out.len() as u64,
        });
    }
    let base_size = base.len() as u64;
    // `written` only grows by amounts checked against what is left, so slicing `out` at it
    // never fails.
    let mut written = 0usize;
    let mut pos = header.header_len;
    while let Some(&cmd) = delta.get(pos) {
        let at = pos;
        pos += 1;
        let remaining = out.len() - written;
        if cmd & 0x80 != 0 {
            let mut offset = 0usize;
            let mut size = 0usize;
            // Bits 0-3 select offset bytes, bits 4-6 size bytes, least significant first.
            for bit in 0..7u32 {
                if cmd & (1 << bit) != 0 {
                    let byte = *delta.get(pos).ok_or(Error::CopyTruncated { at })?;
                    pos += 1;
                    if bit < 4 {
                        offset |= usize::from(byte) << (8 * bit);
                    } else {
                        size |= usize::from(byte) << (8 * (bit - 4));
                    }
                }
            }
            if size == 0 {
                size = 0x10000;
            }
            let src = offset
                .checked_add(size)
                .and_then(|end| base.get(offset..end))
                .ok_or(Error::CopyOutOfBounds {
                    at,
                    offset: offset as u64,
                    size: size as u64,
                    base_size,
                })?;
            if size > remaining {
                return Err(Error::WritePastResult { at, result_size });
            }
            out[written..written + size].copy_from_slice(src);
            written += size;
        } else if cmd != 0 {
            let len = usize::from(cmd);
            if len > remaining {
                return Err(Error::WritePastResult { at, result_size });
            }
            let literal = pos
                .checked_add(len)
                .and_then(|end| delta.get(pos..end))
                .ok_or(Error::InsertPastEnd { at })?;
            out[written..written + len].copy_from_slice(literal);
            pos += len;
            written += len;
        } else {
            return Err(Error::ZeroOpcode { at });
        }
    }
    if written != out.len() {
        return Err(Error::ResultSizeMismatch {
            expected: result_size,
            actual: written as u64,
        });
    }
    Ok(())
}

/// Encodes a delta header size as git writes it (little-endian base-128); for building deltas.
pub fn encode_size(mut size: u64, out: &mut Vec<u8>) {
    while size >= 0x80 {
        out.push((size as u8 & 0x7f) | 0x80);
        size >>= 7;
    }
    out.push(size as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(base: u64, result: u64) -> Vec<u8> {
        let mut d = Vec::new();
        encode_size(base, &mut d);
        encode_size(result, &mut d);
        d
    }

    fn run(base: &[u8], delta: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = b"stale".to_vec();
        apply(base, delta, u64::MAX, &mut out).map(|()| out)
    }

    #[test]
    fn header_round_trip_and_errors() {
        let d = header(300, 1 << 40);
        assert_eq!(
            parse_header(&d),
            Ok(DeltaHeader {
                base_size: 300,
                result_size: 1 << 40,
                header_len: d.len()
            })
        );
        assert_eq!(parse_header(&d[..1]), Err(Error::HeaderTruncated));
        assert_eq!(parse_header(&[0x80]), Err(Error::HeaderTruncated));
        let mut max = Vec::new();
        encode_size(u64::MAX, &mut max);
        assert_eq!(max.len(), 10);
        max.push(0);
        assert_eq!(parse_header(&max).map(|h| h.base_size), Ok(u64::MAX));
        // 2^64 needs bit 64: rejected rather than truncated.
        let over = [
            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02, 0x00,
        ];
        assert_eq!(parse_header(&over), Err(Error::HeaderOverflow));
        assert_eq!(parse_header(&[0xff; 12]), Err(Error::HeaderOverflow));
    }

    #[test]
    fn applies_copies_and_inserts() {
        let base = b"0123456789abcdef";
        let mut d = header(16, 11);
        d.extend_from_slice(&[0x91, 0x0a, 0x06]); // copy offset 10, size 6: "abcdef"
        d.extend_from_slice(&[0x02, b'-', b'-']); // insert "--"
        d.extend_from_slice(&[0x90, 0x03]); // copy offset 0, size 3
        assert_eq!(run(base, &d), Ok(b"abcdef--012".to_vec()));
    }

    #[test]
    fn copy_size_zero_means_64k() {
        let base = vec![7u8; 0x10000];
        let mut d = header(0x10000, 0x10000);
        d.push(0x80);
        assert_eq!(run(&base, &d), Ok(base.clone()));
    }

    #[test]
    fn rejects_malformed() {
        let base = b"0123456789";
        assert_eq!(run(base, &[10, 1, 1]), Err(Error::TooShort { len: 3 }));
        let mut d = header(9, 1);
        d.extend_from_slice(&[0x01, b'x']);
        assert_eq!(
            run(base, &d),
            Err(Error::BaseSizeMismatch {
                expected: 9,
                actual: 10
            })
        );
        let mut d = header(10, 2);
        d.extend_from_slice(&[0x00, 0x00]);
        assert_eq!(run(base, &d), Err(Error::ZeroOpcode { at: 2 }));
        let mut d = header(10, 2);
        d.extend_from_slice(&[0x91, 0x09, 0x02]);
        assert_eq!(
            run(base, &d),
            Err(Error::CopyOutOfBounds {
                at: 2,
                offset: 9,
                size: 2,
                base_size: 10
            })
        );
        let mut d = header(10, 2);
        d.extend_from_slice(&[0x9f, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(matches!(
            run(base, &d),
            Err(Error::CopyOutOfBounds {
                offset: 0xffff_ffff,
                ..
            })
        ));
        let mut d = header(10, 2);
        d.extend_from_slice(&[0x91, 0x00]);
        assert_eq!(run(base, &d), Err(Error::CopyTruncated { at: 2 }));
        let mut d = header(10, 2);
        d.extend_from_slice(&[0x90, 0x03]);
        assert_eq!(
            run(base, &d),
            Err(Error::WritePastResult {
                at: 2,
                result_size: 2
            })
        );
        let mut d = header(10, 2);
        d.extend_from_slice(&[0x03, b'a', b'b', b'c']);
        assert_eq!(
            run(base, &d),
            Err(Error::WritePastResult {
                at: 2,
                result_size: 2
            })
        );
        let mut d = header(10, 5);
        d.extend_from_slice(&[0x03, b'a', b'b']);
        assert_eq!(run(base, &d), Err(Error::InsertPastEnd { at: 2 }));
        let mut d = header(10, 5);
        d.extend_from_slice(&[0x90, 0x03]);
        assert_eq!(
            run(base, &d),
            Err(Error::ResultSizeMismatch {
                expected: 5,
                actual: 3
            })
        );
    }

    #[test]
    fn limits_before_allocating() {
        let mut d = header(0, u64::MAX);
        d.extend_from_slice(&[0x01, b'x']);
        let mut out = Vec::new();
        assert_eq!(
            apply(b"", &d, 1 << 20, &mut out),
            Err(Error::ResultTooLarge {
                size: u64::MAX,
                max: 1 << 20
            })
        );
        assert!(matches!(
            apply(b"", &d, u64::MAX, &mut out),
            Err(Error::OutOfMemory(_))
        ));
        assert_eq!(out.capacity(), 0);
    }

    #[test]
    fn random_deltas_never_panic() {
        let base: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut out = Vec::new();
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            let mut delta = vec![0xac, 0x02]; // base size 300
            delta.extend((0..len).map(|i| (state >> (i % 8 * 8)) as u8 ^ i as u8));
            if apply(&base, &delta, 1 << 16, &mut out).is_ok() {
                assert_eq!(
                    Ok(out.len() as u64),
                    parse_header(&delta).map(|h| h.result_size)
                );
            }
        }
    }
}
