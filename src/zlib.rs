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
///
/// Short prefixes go through [`peek`], which sets up in a few hundred operations what a table
/// decoder spends thousands on; anything it does not handle, or any error, is decided by the
/// full decoder, so results and errors are the decoder's own.
pub fn inflate_prefix(input: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    if out.len() <= PEEK_MAX
        && let Some(produced) = peek(input, out)
    {
        return Ok(produced);
    }
    let room = out.len();
    with_decoder(|decoder| match decoder.decompress(input, out, true) {
        Ok(progress) => Ok(progress.output.len()),
        Err(inflate::Error::BufferFull) => Ok(room),
        Err(error) => Err(corrupt(error)),
    })
}

/// Longest prefix [`peek`] is used for: it decodes bit by bit, which only pays off for a few bytes.
const PEEK_MAX: usize = 64;

/// Reads DEFLATE bits, least significant first, failing (not panicking) at the end of input.
struct BitReader<'a> {
    input: &'a [u8],
    pos: usize,
    bits: u64,
    count: u32,
}

impl BitReader<'_> {
    fn need(&mut self, n: u32) -> Option<u32> {
        while self.count < n {
            let byte = *self.input.get(self.pos)?;
            self.pos += 1;
            self.bits |= u64::from(byte) << self.count;
            self.count += 8;
        }
        let value = (self.bits & ((1u64 << n) - 1)) as u32;
        self.bits >>= n;
        self.count -= n;
        Some(value)
    }
}

/// A canonical Huffman code as counts per length and symbols in code order (RFC 1951 §3.2.2):
/// decoding walks lengths one bit at a time (zlib's `puff`), no lookup table is built.
struct Huffman {
    counts: [u16; 16],
    symbols: [u16; 288],
}

impl Huffman {
    /// Builds the code for `lengths`; `None` for an over-subscribed set of lengths.
    fn new(lengths: &[u8]) -> Option<Huffman> {
        let mut code = Huffman {
            counts: [0; 16],
            symbols: [0; 288],
        };
        for &length in lengths {
            code.counts[usize::from(length)] += 1;
        }
        let mut left: i32 = 1;
        for length in 1..16 {
            left = (left << 1) - i32::from(code.counts[length]);
            if left < 0 {
                return None;
            }
        }
        let mut offsets = [0u16; 16];
        for length in 1..15 {
            offsets[length + 1] = offsets[length] + code.counts[length];
        }
        for (symbol, &length) in lengths.iter().enumerate() {
            if length != 0 {
                let slot = &mut offsets[usize::from(length)];
                *code.symbols.get_mut(usize::from(*slot))? = symbol as u16;
                *slot += 1;
            }
        }
        Some(code)
    }

    fn decode(&self, bits: &mut BitReader<'_>) -> Option<u16> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for length in 1..16 {
            code |= bits.need(1)? as i32;
            let count = i32::from(self.counts[length]);
            if code - count < first {
                return self.symbols.get((index + code - first) as usize).copied();
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        None
    }
}

const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DISTANCE_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DISTANCE_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// Order in which a dynamic block sends the code-length code's lengths.
const CODE_LENGTH_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Decodes the first `out.len()` bytes of a zlib stream, or `None` when the input is not a
/// well-formed start of one (the caller then asks the full decoder, which names the error).
fn peek(input: &[u8], out: &mut [u8]) -> Option<usize> {
    let (&cmf, &flg) = (input.first()?, input.get(1)?);
    // zlib header: deflate, window <= 32K, no preset dictionary, check bits.
    if cmf & 0x0f != 8
        || cmf >> 4 > 7
        || flg & 0x20 != 0
        || (u16::from(cmf) << 8 | u16::from(flg)) % 31 != 0
    {
        return None;
    }
    let mut bits = BitReader {
        input: &input[2..],
        pos: 0,
        bits: 0,
        count: 0,
    };
    let mut written = 0;
    while written < out.len() {
        let last = bits.need(1)? == 1;
        match bits.need(2)? {
            0 => {
                // Stored block: byte-aligned LEN, NLEN, then raw bytes.
                bits.bits = 0;
                bits.count = 0;
                let header = bits.input.get(bits.pos..bits.pos + 4)?;
                let len = u16::from_le_bytes([header[0], header[1]]);
                if len != !u16::from_le_bytes([header[2], header[3]]) {
                    return None;
                }
                bits.pos += 4;
                let take = usize::from(len).min(out.len() - written);
                out[written..written + take]
                    .copy_from_slice(bits.input.get(bits.pos..bits.pos + take)?);
                written += take;
                bits.pos += usize::from(len);
            }
            kind @ (1 | 2) => {
                let (literals, distances) = if kind == 1 {
                    let mut lengths = [8u8; 288];
                    lengths[144..256].fill(9);
                    lengths[256..280].fill(7);
                    (Huffman::new(&lengths)?, Huffman::new(&[5u8; 30])?)
                } else {
                    dynamic_codes(&mut bits)?
                };
                loop {
                    let symbol = literals.decode(&mut bits)?;
                    if symbol < 256 {
                        out[written] = symbol as u8;
                        written += 1;
                        if written == out.len() {
                            return Some(written);
                        }
                    } else if symbol == 256 {
                        break;
                    } else {
                        let symbol = usize::from(symbol - 257);
                        let length = usize::from(*LENGTH_BASE.get(symbol)?)
                            + bits.need(u32::from(LENGTH_EXTRA[symbol]))? as usize;
                        let dsymbol = usize::from(distances.decode(&mut bits)?);
                        let distance = usize::from(*DISTANCE_BASE.get(dsymbol)?)
                            + bits.need(u32::from(DISTANCE_EXTRA[dsymbol]))? as usize;
                        if distance > written {
                            return None;
                        }
                        for _ in 0..length {
                            out[written] = out[written - distance];
                            written += 1;
                            if written == out.len() {
                                return Some(written);
                            }
                        }
                    }
                }
            }
            _ => return None,
        }
        if last {
            break;
        }
    }
    Some(written)
}

/// Reads a dynamic block's code definitions (RFC 1951 §3.2.7).
fn dynamic_codes(bits: &mut BitReader<'_>) -> Option<(Huffman, Huffman)> {
    let literal_count = bits.need(5)? as usize + 257;
    let distance_count = bits.need(5)? as usize + 1;
    let code_length_count = bits.need(4)? as usize + 4;
    if literal_count > 286 || distance_count > 30 {
        return None;
    }
    let mut code_lengths = [0u8; 19];
    for &symbol in &CODE_LENGTH_ORDER[..code_length_count] {
        code_lengths[symbol] = bits.need(3)? as u8;
    }
    let code_length_code = Huffman::new(&code_lengths)?;
    let mut lengths = [0u8; 286 + 30];
    let total = literal_count + distance_count;
    let mut index = 0;
    while index < total {
        let symbol = code_length_code.decode(bits)?;
        let (value, repeat) = match symbol {
            0..=15 => (symbol as u8, 1),
            16 => (
                *lengths.get(index.checked_sub(1)?)?,
                3 + bits.need(2)? as usize,
            ),
            17 => (0, 3 + bits.need(3)? as usize),
            18 => (0, 11 + bits.need(7)? as usize),
            _ => return None,
        };
        if index + repeat > total {
            return None;
        }
        lengths[index..index + repeat].fill(value);
        index += repeat;
    }
    // A block without an end-of-block code cannot be decoded.
    if lengths[256] == 0 {
        return None;
    }
    Some((
        Huffman::new(&lengths[..literal_count])?,
        Huffman::new(&lengths[literal_count..total])?,
    ))
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

    /// The table-free prefix decoder agrees with the full decoder on every prefix length, for
    /// stored, fixed and dynamic blocks from two encoders, and never panics on garbage.
    #[test]
    fn peek_matches_the_full_decoder() {
        let mut samples: Vec<Vec<u8>> =
            vec![Vec::new(), b"a".to_vec(), b"abcabcabcabcabcabc".to_vec()];
        samples.push(
            (0..3000u32)
                .flat_map(|i| format!("line {i} of text {}\n", i % 7).into_bytes())
                .collect(),
        );
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        samples.push(
            (0..500)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect(),
        );
        // A delta-like header: two varints, then instructions.
        samples.push(vec![
            0xb5, 0x1c, 0xc3, 0x1d, 0x90, 0x20, 0x05, b'h', b'e', b'l', b'l', b'o', 0x91, 0x10,
            0x40,
        ]);
        let mut streams = Vec::new();
        for sample in &samples {
            for level in [0, 1, 6, 9] {
                let mut encoder = ZlibEncoder::new(Vec::new(), Compression::new(level));
                encoder.write_all(sample).expect("vec write");
                streams.push((sample.clone(), encoder.finish().expect("vec finish")));
            }
            streams.push((sample.clone(), compress(sample)));
        }
        for (sample, stream) in &streams {
            for len in 0..=PEEK_MAX {
                let mut ours = vec![0u8; len];
                let mut full = vec![0u8; len];
                let peeked = peek(stream, &mut ours);
                let decoded =
                    with_decoder(
                        |decoder| match decoder.decompress(stream, &mut full, true) {
                            Ok(progress) => Some(progress.output.len()),
                            Err(inflate::Error::BufferFull) => Some(len),
                            Err(_) => None,
                        },
                    );
                assert_eq!(
                    peeked,
                    decoded,
                    "prefix of {len} of a {}-byte sample",
                    sample.len()
                );
                if let Some(n) = peeked {
                    assert_eq!(ours[..n], full[..n]);
                    assert_eq!(&ours[..n], &sample[..n]);
                }
            }
        }
        // Garbage and truncations: no panic, and never a result the full decoder disagrees with.
        for (_, stream) in streams.iter().take(12) {
            for cut in 0..stream.len() {
                let mut out = [0u8; 24];
                let _ = peek(&stream[..cut], &mut out);
                let mut flipped = stream.clone();
                flipped[cut] ^= 0x5a;
                let mut ours = [0u8; 24];
                if let Some(n) = peek(&flipped, &mut ours) {
                    let mut full = [0u8; 24];
                    if let Ok(m) = with_decoder(|d| {
                        d.decompress(&flipped, &mut full, true)
                            .map(|p| p.output.len())
                    }) {
                        assert_eq!(ours[..n.min(m)], full[..n.min(m)], "flipped byte {cut}");
                    }
                }
            }
        }
    }
}
