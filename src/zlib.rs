//! zlib inflate for pack entries, with a reusable per-thread decompressor.
//!
//! Every pack entry is its own zlib stream, and a lookup inflates many small ones, so the
//! decompressor state (tens of KiB) is kept per thread and reset between streams instead of
//! being allocated for each call.

use std::cell::RefCell;

use flate2::{Decompress, FlushDecompress, Status};

/// Why a zlib stream was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The stream is not valid zlib data (bad header, bad block, bad checksum, ...).
    #[error("corrupt zlib data: {0}")]
    Corrupt(String),
    /// The input ran out before the stream ended.
    #[error("zlib stream truncated")]
    Truncated,
    /// The stream ended before producing the expected number of bytes.
    #[error("zlib stream inflated to {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// Bytes the caller expected.
        expected: usize,
        /// Bytes the stream produced.
        actual: usize,
    },
    /// The stream would produce more bytes than expected.
    #[error("zlib stream inflates to more than the expected {expected} bytes")]
    TooLong {
        /// Bytes the caller expected.
        expected: usize,
    },
}

thread_local! {
    // `true`: pack entries are zlib-wrapped (header + adler32), not raw deflate.
    static DECOMPRESS: RefCell<Decompress> = RefCell::new(Decompress::new(true));
}

/// Runs `f` with this thread's decompressor, reset for a new stream.
fn with_decompress<T>(f: impl FnOnce(&mut Decompress) -> T) -> T {
    DECOMPRESS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut state) => {
            state.reset(true);
            f(&mut state)
        }
        // Only reachable if `f` re-entered this module; a private state keeps that correct.
        Err(_) => f(&mut Decompress::new(true)),
    })
}

/// Converts a running total to an index; totals never exceed the slices they count.
fn pos(total: u64) -> usize {
    usize::try_from(total).unwrap_or(usize::MAX)
}

/// One `decompress` step from the current totals; returns the status and whether it progressed.
fn step(d: &mut Decompress, input: &[u8], out: &mut [u8]) -> Result<(Status, bool), Error> {
    let (in_before, out_before) = (d.total_in(), d.total_out());
    let input = input.get(pos(in_before)..).unwrap_or(&[]);
    let output = out.get_mut(pos(out_before)..).unwrap_or(&mut []);
    let status = d
        .decompress(input, output, FlushDecompress::None)
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    let progressed = d.total_in() != in_before || d.total_out() != out_before;
    Ok((status, progressed))
}

/// Inflates the zlib stream at the start of `input` into `out`, which must end up exactly full
/// with the stream finished. Returns the number of input bytes the stream used.
pub fn inflate_exact(input: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    with_decompress(|d| {
        loop {
            let (status, progressed) = step(d, input, out)?;
            if status == Status::StreamEnd {
                let actual = pos(d.total_out());
                if actual != out.len() {
                    return Err(Error::SizeMismatch {
                        expected: out.len(),
                        actual,
                    });
                }
                return Ok(pos(d.total_in()));
            }
            if pos(d.total_out()) >= out.len() {
                // `out` is full but the stream has not said it ended: it may still only have
                // the end-of-block code and adler32 left. Probe with one spare byte, as git
                // does with its `size + 1` buffer, to tell "ends here" from "too long".
                return finish_full(d, input, out.len());
            }
            if !progressed {
                return Err(Error::Truncated);
            }
        }
    })
}

/// Drives a stream whose expected output is already complete to its end, failing if it
/// produces anything more.
fn finish_full(d: &mut Decompress, input: &[u8], expected: usize) -> Result<usize, Error> {
    let mut spare = [0u8; 1];
    loop {
        let in_before = d.total_in();
        let rest = input.get(pos(in_before)..).unwrap_or(&[]);
        let status = d
            .decompress(rest, &mut spare, FlushDecompress::None)
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        if pos(d.total_out()) > expected {
            return Err(Error::TooLong { expected });
        }
        if status == Status::StreamEnd {
            return Ok(pos(d.total_in()));
        }
        if d.total_in() == in_before {
            return Err(Error::Truncated);
        }
    }
}

/// Inflates at most `out.len()` bytes from the start of the stream (for headers: delta sizes);
/// returns how many bytes were produced. The stream need not end.
pub fn inflate_prefix(input: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    with_decompress(|d| {
        loop {
            let (status, progressed) = step(d, input, out)?;
            let produced = pos(d.total_out());
            if status == Status::StreamEnd || produced >= out.len() {
                return Ok(produced);
            }
            if !progressed {
                return Err(Error::Truncated);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::ZlibEncoder;
    use std::io::Write;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut enc = ZlibEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).expect("vec write");
        enc.finish().expect("vec finish")
    }

    fn sample() -> Vec<u8> {
        (0..5000u32).flat_map(|i| (i % 251).to_le_bytes()).collect()
    }

    #[test]
    fn exact_round_trip_with_trailing_bytes() {
        let data = sample();
        let mut stream = deflate(&data);
        let used = stream.len();
        stream.extend_from_slice(b"next entry");
        let mut out = vec![0u8; data.len()];
        assert_eq!(inflate_exact(&stream, &mut out), Ok(used));
        assert_eq!(out, data);
        // Reuse of the thread's state across streams.
        let mut out2 = vec![0u8; data.len()];
        assert_eq!(inflate_exact(&stream, &mut out2), Ok(used));
    }

    #[test]
    fn empty_stream() {
        let stream = deflate(b"");
        assert_eq!(inflate_exact(&stream, &mut []), Ok(stream.len()));
        assert_eq!(inflate_prefix(&stream, &mut [0u8; 4]), Ok(0));
    }

    #[test]
    fn exact_rejects_wrong_sizes() {
        let data = sample();
        let stream = deflate(&data);
        let mut short = vec![0u8; data.len() - 1];
        assert_eq!(
            inflate_exact(&stream, &mut short),
            Err(Error::TooLong {
                expected: data.len() - 1
            })
        );
        let mut long = vec![0u8; data.len() + 1];
        assert_eq!(
            inflate_exact(&stream, &mut long),
            Err(Error::SizeMismatch {
                expected: data.len() + 1,
                actual: data.len()
            })
        );
        assert_eq!(
            inflate_exact(&deflate(b"x"), &mut []),
            Err(Error::TooLong { expected: 0 })
        );
    }

    #[test]
    fn exact_rejects_truncated_and_corrupt() {
        let data = sample();
        let stream = deflate(&data);
        let mut out = vec![0u8; data.len()];
        for cut in [
            0,
            1,
            2,
            stream.len() / 2,
            stream.len() - 4,
            stream.len() - 1,
        ] {
            assert_eq!(
                inflate_exact(&stream[..cut], &mut out),
                Err(Error::Truncated),
                "cut {cut}"
            );
        }
        let mut bad_header = stream.clone();
        bad_header[0] = 0x00;
        assert!(matches!(
            inflate_exact(&bad_header, &mut out),
            Err(Error::Corrupt(_))
        ));
        let mut bad_adler = stream.clone();
        let last = bad_adler.len() - 1;
        bad_adler[last] ^= 0xff;
        assert!(matches!(
            inflate_exact(&bad_adler, &mut out),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn prefix_reads_start_only() {
        let data = sample();
        let stream = deflate(&data);
        let mut head = [0u8; 16];
        assert_eq!(inflate_prefix(&stream, &mut head), Ok(16));
        assert_eq!(&head[..], &data[..16]);
        let small = deflate(b"abc");
        assert_eq!(inflate_prefix(&small, &mut head), Ok(3));
        assert_eq!(&head[..3], b"abc");
        assert_eq!(
            inflate_prefix(&stream[..2], &mut head),
            Err(Error::Truncated)
        );
        assert!(matches!(
            inflate_prefix(b"\x00\x00\x00", &mut head),
            Err(Error::Corrupt(_))
        ));
    }
}
