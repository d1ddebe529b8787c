//! zlib for pack entries: inflate (whole-buffer and streaming, reusable decoders), deflate for
//! the few objects odbpack writes itself (thin-pack bases), and the CRC32 of pack entries.
//! The one place the crate touches a zlib implementation.
//!
//! Every pack entry is its own zlib stream, and a lookup inflates many small ones, so the
//! decompressor state (tens of KiB) is kept per thread and reset between streams instead of
//! being allocated for each call.

use std::cell::RefCell;

use sirocco::{Format, inflate, inflate::Decoder};

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
    /// One decoder per thread: its Huffman tables are costly to set up, reuse is free.
    static DECODER: RefCell<Decoder> = const { RefCell::new(Decoder::new(Format::Zlib)) };
}

/// Runs `f` with this thread's decoder, reset for a new stream. Re-entrant use (not expected)
/// gets a fresh decoder instead of a borrow panic.
fn with_decoder<T>(f: impl FnOnce(&mut Decoder) -> T) -> T {
    DECODER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut decoder) => {
            decoder.reset();
            f(&mut decoder)
        }
        Err(_) => f(&mut Decoder::new(Format::Zlib)),
    })
}

fn corrupt(error: inflate::Error) -> Error {
    match error {
        inflate::Error::Truncated => Error::Truncated,
        other => Error::Corrupt(other.to_string()),
    }
}

/// Inflates the zlib stream at the start of `input` into `out`, which must end up exactly full
/// with the stream finished (adler32 checked). Returns the number of input bytes the stream
/// used; bytes after the stream (the next pack entry) are left alone.
///
/// Pack headers give the exact inflated size, so the whole stream is decoded in one call into
/// the caller's buffer (sirocco's whole-buffer path, libdeflate-style).
pub fn inflate_exact(input: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let expected = out.len();
    with_decoder(|decoder| match decoder.decompress(input, out, true) {
        Ok(progress) if progress.done => {
            let actual = progress.output.len();
            if actual != expected {
                return Err(Error::SizeMismatch { expected, actual });
            }
            Ok(progress.consumed)
        }
        // Buffer full before the stream ended: it inflates to more than declared.
        Ok(_) | Err(inflate::Error::BufferFull) => Err(Error::TooLong { expected }),
        Err(error) => Err(corrupt(error)),
    })
}

/// Inflates at most `out.len()` bytes from the start of the stream (for headers: delta sizes);
/// returns how many bytes were produced. The stream need not end within `out`.
pub fn inflate_prefix(input: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let room = out.len();
    with_decoder(|decoder| match decoder.decompress(input, out, true) {
        Ok(progress) => Ok(progress.output.len()),
        Err(inflate::Error::BufferFull) => Ok(room),
        Err(error) => Err(corrupt(error)),
    })
}

/// The zlib CRC32 of `bytes` continuing from `crc` (0 to start), as `.idx` v2 records per entry.
pub fn crc32(crc: u32, bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(crc);
    hasher.update(bytes);
    hasher.finalize()
}

/// Compresses `bytes` as one zlib stream at git's default level (6).
pub fn compress(bytes: &[u8]) -> Vec<u8> {
    sirocco::compress(Format::Zlib, sirocco::deflate::Level::DEFAULT, bytes)
}

/// Inflates one zlib stream that arrives in pieces (pack data streaming in from a fetch),
/// handing each piece of output to the caller as it is produced. Reusable across streams.
pub struct StreamInflater {
    decoder: Decoder,
    /// Output window: the decoder needs the last 32 KiB of output as history; when the window
    /// fills, that tail is moved to the front (`make_room`), so memory stays constant.
    window: Vec<u8>,
    total_in: u64,
    total_out: u64,
}

impl std::fmt::Debug for StreamInflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamInflater")
            .field("total_in", &self.total_in)
            .field("total_out", &self.total_out)
            .finish()
    }
}

impl Default for StreamInflater {
    fn default() -> Self {
        StreamInflater {
            decoder: Decoder::new(Format::Zlib),
            window: vec![0; 128 << 10],
            total_in: 0,
            total_out: 0,
        }
    }
}

impl StreamInflater {
    /// A fresh inflater.
    pub fn new() -> StreamInflater {
        StreamInflater::default()
    }

    /// Starts a new stream.
    pub fn reset(&mut self) {
        self.decoder.reset();
        self.total_in = 0;
        self.total_out = 0;
    }

    /// Input bytes the current stream has used.
    pub fn total_in(&self) -> u64 {
        self.total_in
    }

    /// Bytes the current stream has produced.
    pub fn total_out(&self) -> u64 {
        self.total_out
    }

    /// Feeds `input`; `output` receives every new piece of output. Returns the input bytes used
    /// and whether the stream ended (adler32 checked). Not ended with input left over cannot
    /// happen: all input is used unless the stream ends.
    pub fn feed(
        &mut self,
        input: &[u8],
        output: &mut dyn FnMut(&[u8]),
    ) -> Result<(usize, bool), Error> {
        let mut used = 0;
        loop {
            let (done, full) =
                match self
                    .decoder
                    .decompress(&input[used..], &mut self.window, false)
                {
                    Ok(progress) => {
                        used += progress.consumed;
                        self.total_in += progress.consumed as u64;
                        self.total_out += progress.output.len() as u64;
                        output(progress.output);
                        (progress.done, progress.full)
                    }
                    Err(inflate::Error::BufferFull) => (false, true),
                    Err(error) => return Err(corrupt(error)),
                };
            if done {
                return Ok((used, true));
            }
            if !full {
                return Ok((used, false));
            }
            // Window full: keep the 32 KiB of history and go on; no room to make means the
            // decoder cannot progress at all.
            if self.decoder.make_room(&mut self.window) == 0 {
                return Err(Error::Corrupt("inflate window full".into()));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::ZlibEncoder;
    use std::io::Write;

    /// `data` as a zlib stream made by an independent encoder (flate2), for tests of our
    /// inflating code.
    pub(crate) fn deflate(data: &[u8]) -> Vec<u8> {
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

    #[test]
    fn streaming_in_pieces_matches_whole() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut stream = deflate(&data);
        let stream_len = stream.len();
        stream.extend_from_slice(b"trailing");
        for piece in [1usize, 7, 4096, stream.len()] {
            let mut inflater = StreamInflater::new();
            let mut out = Vec::new();
            let mut fed = 0;
            let mut done = false;
            while !done {
                let end = (fed + piece).min(stream.len());
                let (used, finished) = inflater
                    .feed(&stream[fed..end], &mut |bytes| out.extend_from_slice(bytes))
                    .expect("valid stream");
                fed += used;
                done = finished;
                assert!(
                    done || used == end - (fed - used),
                    "all input used unless the stream ended"
                );
            }
            assert_eq!(fed, stream_len, "stops at the stream's end (piece {piece})");
            assert_eq!(inflater.total_in(), stream_len as u64);
            assert_eq!(out, data);
        }
        let mut inflater = StreamInflater::new();
        let mut corrupt_stream = deflate(&data);
        corrupt_stream[10] ^= 0xff;
        let result = (|| {
            let mut fed = 0;
            loop {
                let (used, done) = inflater.feed(&corrupt_stream[fed..], &mut |_| {})?;
                fed += used;
                if done || fed == corrupt_stream.len() {
                    return Ok(done);
                }
            }
        })();
        assert!(matches!(result, Err(Error::Corrupt(_))), "{result:?}");
    }
}
