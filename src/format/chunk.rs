//! git's chunk-file table of contents (gitformat-chunk), shared by MIDX reading and writing.
//!
//! A chunk file has a header, then `C + 1` rows of 12 bytes (u32 chunk id, u64 absolute
//! offset), the last row having id 0 and marking where the data ends (the trailer hash starts
//! there). Chunk `i` spans `offset[i]..offset[i + 1]`.
//!
//! Reading validates the table once, as git's `read_table_of_contents` does, so that afterwards
//! a chunk is just a byte range that is known to lie inside the file. Writing follows git's
//! `write_chunkfile`: the sizes are planned up front, the table is emitted from the plan, and each
//! chunk's written size is compared with its planned size. git calls `BUG()` on a mismatch; we
//! return [`WriteError::SizeMismatch`] because a library must not abort its host.

use std::fmt;
use std::io::{self, Write};
use std::ops::Range;

use super::{be_u32, be_u64};

/// Size of one table-of-contents row: u32 id + u64 offset.
pub const TOC_ENTRY_LEN: usize = 12;

/// Every chunk offset must be a multiple of this (git's `MIDX_CHUNK_ALIGNMENT`).
pub const ALIGNMENT: u64 = 4;

/// A chunk id as the four ASCII bytes git uses (`*b"OIDF"`); shown as text or hex in messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkId(pub [u8; 4]);

impl ChunkId {
    /// The id as the big-endian `u32` stored in the table.
    pub fn as_u32(self) -> u32 {
        u32::from_be_bytes(self.0)
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // git prints ids in hex; keep that, it is what users grep for.
        write!(f, "{:08x}", self.as_u32())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.iter().all(|b| b.is_ascii_graphic()) {
            write!(f, "ChunkId({})", String::from_utf8_lossy(&self.0))
        } else {
            write!(f, "ChunkId({:08x})", self.as_u32())
        }
    }
}

/// Why a chunk table was rejected. Messages follow git's `chunk-format.c` where it has one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The table does not fit in the file before the trailer hash.
    #[error("chunk table of contents runs past the end of the file")]
    TableTruncated,
    /// A row before the last one has id 0.
    #[error("terminating chunk id appears earlier than expected")]
    EarlyTerminator,
    /// A chunk offset is not a multiple of 4.
    #[error("chunk id {id} not 4-byte aligned")]
    Misaligned {
        /// The chunk whose offset is misaligned.
        id: ChunkId,
    },
    /// A chunk ends before it starts, past the trailer, or does not start right after the table.
    #[error("improper chunk offset(s) {start:x} and {end:x}")]
    ImproperOffsets {
        /// Start offset read from the table.
        start: u64,
        /// End offset (the next row's offset).
        end: u64,
    },
    /// The same id appears twice.
    #[error("duplicate chunk ID {0} found")]
    Duplicate(ChunkId),
    /// The row after the last chunk does not have id 0.
    #[error("final chunk has non-zero id {0}")]
    NonZeroTerminator(ChunkId),
}

/// One validated chunk: its id and the byte range it spans in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The chunk id.
    pub id: ChunkId,
    /// Absolute byte range; always inside the file and before the trailer.
    pub range: Range<usize>,
}

/// A validated table of contents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    chunks: Vec<Chunk>,
}

impl Table {
    /// Reads and validates `count` rows plus the terminator starting at `toc_offset` in `file`,
    /// whose last `trailer_len` bytes are the checksum.
    ///
    /// Checks, in git's order per row: non-zero id, 4-byte aligned offset, the next offset not
    /// smaller and not past `file.len() - trailer_len`, no duplicate id; then a zero id in the
    /// last row. Stricter than git: the first chunk must start right after the table (git's
    /// writer always does this; anything else would leave unchecked bytes in the middle).
    pub fn read(
        file: &[u8],
        toc_offset: usize,
        count: usize,
        trailer_len: usize,
    ) -> Result<Table, Error> {
        let data_end = file
            .len()
            .checked_sub(trailer_len)
            .ok_or(Error::TableTruncated)?;
        let table_end = count
            .checked_add(1)
            .and_then(|rows| rows.checked_mul(TOC_ENTRY_LEN))
            .and_then(|len| len.checked_add(toc_offset))
            .filter(|&end| end <= data_end)
            .ok_or(Error::TableTruncated)?;
        let row = |i: usize| -> (u32, u64) {
            let at = toc_offset + i * TOC_ENTRY_LEN;
            // In bounds: `table_end <= file.len()` was checked above.
            (
                be_u32(file, at).unwrap_or(0),
                be_u64(file, at + 4).unwrap_or(0),
            )
        };
        let mut chunks: Vec<Chunk> = Vec::with_capacity(count);
        for i in 0..count {
            let (raw_id, start) = row(i);
            if raw_id == 0 {
                return Err(Error::EarlyTerminator);
            }
            let id = ChunkId(raw_id.to_be_bytes());
            if start % ALIGNMENT != 0 {
                return Err(Error::Misaligned { id });
            }
            let (_, end) = row(i + 1);
            if end < start || end > data_end as u64 {
                return Err(Error::ImproperOffsets { start, end });
            }
            if chunks.iter().any(|c| c.id == id) {
                return Err(Error::Duplicate(id));
            }
            // Both fit in usize: end <= data_end, a usize.
            chunks.push(Chunk {
                id,
                range: start as usize..end as usize,
            });
        }
        let (last_id, last_offset) = row(count);
        if last_id != 0 {
            return Err(Error::NonZeroTerminator(ChunkId(last_id.to_be_bytes())));
        }
        let first_start = chunks.first().map_or(last_offset, |c| c.range.start as u64);
        if first_start != table_end as u64 {
            return Err(Error::ImproperOffsets {
                start: table_end as u64,
                end: first_start,
            });
        }
        Ok(Table { chunks })
    }

    /// The byte range of chunk `id`, if present.
    pub fn get(&self, id: ChunkId) -> Option<Range<usize>> {
        self.chunks
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.range.clone())
    }

    /// All chunks in table order.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }
}

/// Why writing a planned chunk file failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The underlying writer failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A chunk callback wrote a different number of bytes than planned (git: `BUG()`).
    #[error("expected to write {planned} bytes to chunk {id}, but wrote {written} instead")]
    SizeMismatch {
        /// The chunk.
        id: ChunkId,
        /// Size announced in the table.
        planned: u64,
        /// Size actually written.
        written: u64,
    },
    /// Chunks were written in a different order than planned, or more chunks than planned.
    #[error("chunk {got} written where the plan has {expected:?}")]
    OutOfPlan {
        /// The planned chunk at this position (`None` when the plan is exhausted).
        expected: Option<ChunkId>,
        /// The chunk the caller wrote.
        got: ChunkId,
    },
    /// [`ChunkWriter::finish`] was called before every planned chunk was written.
    #[error("{0} planned chunk(s) were never written")]
    Incomplete(usize),
}

/// The list of chunks (id, exact size) a writer is about to emit.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    chunks: Vec<(ChunkId, u64)>,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Plan {
        Plan::default()
    }

    /// Appends a chunk of exactly `size` bytes.
    pub fn add(&mut self, id: ChunkId, size: u64) {
        self.chunks.push((id, size));
    }

    /// Number of chunks (the header's chunk count; the terminator row is not counted).
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Whether no chunk was planned.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Size of the table of contents, terminator row included.
    pub fn table_len(&self) -> u64 {
        (self.chunks.len() as u64 + 1) * TOC_ENTRY_LEN as u64
    }

    /// Writes the table, given the absolute offset at which it starts (the header length), and
    /// returns a writer that checks each chunk against the plan.
    pub fn write_table<W: Write>(
        self,
        mut out: W,
        table_offset: u64,
    ) -> Result<ChunkWriter<W>, WriteError> {
        let mut offset = table_offset + self.table_len();
        for &(id, size) in &self.chunks {
            out.write_all(&id.0)?;
            out.write_all(&offset.to_be_bytes())?;
            offset += size;
        }
        out.write_all(&0u32.to_be_bytes())?;
        out.write_all(&offset.to_be_bytes())?;
        Ok(ChunkWriter {
            out: Counting {
                inner: out,
                written: 0,
            },
            plan: self,
            next: 0,
        })
    }
}

/// Writes the chunks of a [`Plan`] in order, checking each one's size.
pub struct ChunkWriter<W: Write> {
    out: Counting<W>,
    plan: Plan,
    next: usize,
}

impl<W: Write> ChunkWriter<W> {
    /// Writes the next planned chunk, which must be `id`, with `write`; errors if `write` emits
    /// a different number of bytes than planned.
    pub fn chunk(
        &mut self,
        id: ChunkId,
        write: impl FnOnce(&mut Counting<W>) -> io::Result<()>,
    ) -> Result<(), WriteError> {
        let Some(&(expected, planned)) = self.plan.chunks.get(self.next) else {
            return Err(WriteError::OutOfPlan {
                expected: None,
                got: id,
            });
        };
        if expected != id {
            return Err(WriteError::OutOfPlan {
                expected: Some(expected),
                got: id,
            });
        }
        let start = self.out.written;
        write(&mut self.out)?;
        let written = self.out.written - start;
        if written != planned {
            return Err(WriteError::SizeMismatch {
                id,
                planned,
                written,
            });
        }
        self.next += 1;
        Ok(())
    }

    /// Checks that every planned chunk was written and returns the inner writer.
    pub fn finish(self) -> Result<W, WriteError> {
        let remaining = self.plan.chunks.len() - self.next;
        if remaining != 0 {
            return Err(WriteError::Incomplete(remaining));
        }
        Ok(self.out.inner)
    }
}

/// A writer that counts bytes, handed to chunk callbacks.
pub struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ChunkId = ChunkId(*b"AAAA");
    const B: ChunkId = ChunkId(*b"BBBB");

    /// Header of 12 bytes, the planned chunks filled with `fill`, then a fake 20-byte trailer.
    fn build(chunks: &[(ChunkId, usize)]) -> Vec<u8> {
        let mut plan = Plan::new();
        for &(id, size) in chunks {
            plan.add(id, size as u64);
        }
        let mut out = vec![0u8; 12];
        let mut writer = plan.write_table(&mut out, 12).expect("vec write");
        for &(id, size) in chunks {
            writer
                .chunk(id, |w| w.write_all(&vec![7u8; size]))
                .expect("planned size");
        }
        writer.finish().expect("complete");
        out.extend_from_slice(&[0u8; 20]);
        out
    }

    #[test]
    fn round_trip() {
        let file = build(&[(A, 8), (B, 0)]);
        let table = Table::read(&file, 12, 2, 20).expect("valid");
        assert_eq!(table.get(A), Some(48..56));
        assert_eq!(table.get(B), Some(56..56));
        assert_eq!(table.get(ChunkId(*b"CCCC")), None);
    }

    #[test]
    fn rejects_bad_tables() {
        let file = build(&[(A, 8), (B, 4)]);
        assert_eq!(
            Table::read(&file, 12, 1, 20),
            Err(Error::NonZeroTerminator(B))
        );
        assert_eq!(Table::read(&file, 12, 3, 20), Err(Error::EarlyTerminator));
        assert_eq!(Table::read(&file, 12, 200, 20), Err(Error::TableTruncated));
        let mut dup = file.clone();
        dup[24..28].copy_from_slice(b"AAAA");
        assert_eq!(Table::read(&dup, 12, 2, 20), Err(Error::Duplicate(A)));
        let mut misaligned = file.clone();
        misaligned[12 + 12 + 11] += 1;
        assert_eq!(
            Table::read(&misaligned, 12, 2, 20),
            Err(Error::Misaligned { id: B })
        );
        let mut past = file.clone();
        past[12 + 24 + 11] += 4;
        assert!(matches!(
            Table::read(&past, 12, 2, 20),
            Err(Error::ImproperOffsets { .. })
        ));
        let mut late_start = file;
        late_start[12 + 11] += 4;
        assert!(matches!(
            Table::read(&late_start, 12, 2, 20),
            Err(Error::ImproperOffsets { .. })
        ));
    }

    #[test]
    fn writer_checks_plan() {
        let mut plan = Plan::new();
        plan.add(A, 4);
        plan.add(B, 4);
        let mut writer = plan.write_table(Vec::new(), 12).expect("vec");
        assert!(matches!(
            writer.chunk(B, |_| Ok(())),
            Err(WriteError::OutOfPlan {
                expected: Some(A),
                got: B
            })
        ));
        assert!(matches!(
            writer.chunk(A, |w| w.write_all(&[0; 3])),
            Err(WriteError::SizeMismatch {
                planned: 4,
                written: 3,
                ..
            })
        ));
        let mut plan = Plan::new();
        plan.add(A, 0);
        let writer = plan.write_table(Vec::new(), 12).expect("vec");
        assert!(matches!(writer.finish(), Err(WriteError::Incomplete(1))));
    }
}
