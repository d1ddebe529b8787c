//! SHA-1 with collision detection (git's sha1dc method), the one hasher of the crate: object ids,
//! pack/idx/MIDX trailers.

use std::io::{self, Write};

use crate::format::pack::ObjectKind;
use crate::oid::ObjectId;

/// A SHA-1 collision attack was detected in the hashed data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("SHA-1 collision attack detected (digest {0})")]
pub struct CollisionDetected(pub ObjectId);

/// Incremental SHA-1 that refuses collision-attack blocks.
#[derive(Clone)]
pub struct Sha1(sha1dc::Hasher);

impl Default for Sha1 {
    fn default() -> Self {
        Sha1(sha1dc::Hasher::new())
    }
}

impl Sha1 {
    /// A fresh hasher.
    pub fn new() -> Sha1 {
        Sha1::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest, or the collision that was detected.
    pub fn finalize(self) -> Result<ObjectId, CollisionDetected> {
        match self.0.finalize() {
            Ok(digest) => Ok(ObjectId(digest.into())),
            Err(collision) => Err(CollisionDetected(ObjectId(collision.digest().into()))),
        }
    }
}

/// The id git gives an object: SHA-1 of `"<type> <len>\0"` followed by the body.
pub fn object_id(kind: ObjectKind, body: &[u8]) -> Result<ObjectId, CollisionDetected> {
    let mut hasher = Sha1::new();
    hasher.update(format!("{} {}\0", kind.name(), body.len()).as_bytes());
    hasher.update(body);
    hasher.finalize()
}

/// A writer that hashes everything written through it; [`HashingWriter::finish`] appends the
/// digest as the file's trailer, as git's `hashfile` does for idx, rev and MIDX files.
///
/// It buffers, like git's `hashfile`: the format writers write an id or a 4-byte field at a
/// time, and SHA-1 fed in such pieces (and a file written in them) costs far more than in
/// blocks. So `inner` needs no buffer of its own.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha1,
    /// Bytes written but neither hashed nor passed on yet; at most [`HASHING_BLOCK`].
    pending: Vec<u8>,
}

/// Bytes a [`HashingWriter`] gathers before hashing them and passing them on.
const HASHING_BLOCK: usize = 128 << 10;

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Sha1::new(),
            pending: Vec::new(),
        }
    }

    /// Hashes and passes on what is pending.
    fn write_pending(&mut self) -> io::Result<()> {
        self.hasher.update(&self.pending);
        let result = self.inner.write_all(&self.pending);
        self.pending.clear();
        result
    }

    /// Writes the trailer (the SHA-1 of everything before it) and returns it with the writer.
    pub fn finish(mut self) -> io::Result<(ObjectId, W)> {
        self.write_pending()?;
        let digest = self
            .hasher
            .finalize()
            .map_err(|collision| io::Error::new(io::ErrorKind::InvalidData, collision))?;
        self.inner.write_all(&digest.0)?;
        self.inner.flush()?;
        Ok((digest, self.inner))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pending.len() + buf.len() > HASHING_BLOCK {
            self.write_pending()?;
        }
        if buf.len() >= HASHING_BLOCK {
            self.hasher.update(buf);
            self.inner.write_all(buf)?;
        } else {
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(HASHING_BLOCK);
            }
            self.pending.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_pending()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_blob_and_tree_ids() {
        let blob = object_id(ObjectKind::Blob, b"").expect("no collision");
        assert_eq!(blob.to_hex(), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
        let tree = object_id(ObjectKind::Tree, b"").expect("no collision");
        assert_eq!(tree.to_hex(), "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
    }

    #[test]
    fn hashing_writer_appends_digest() {
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(b"abc").expect("vec write");
        let (digest, bytes) = writer.finish().expect("finish");
        assert_eq!(digest.to_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(&bytes[3..], &digest.0);
    }

    /// Pieces of every size (tiny ones, one larger than a block, ones that cross a block's
    /// end) come out in order, hashed once each, whatever the buffering.
    #[test]
    fn hashing_writer_buffers_pieces_of_any_size() {
        let data: Vec<u8> = (0..3 * HASHING_BLOCK as u32 + 77)
            .map(|n| (n * 7 + n / 251) as u8)
            .collect();
        let mut writer = HashingWriter::new(Vec::new());
        let mut rest = &data[..];
        for size in [1, 20, 4, HASHING_BLOCK + 5, 3, HASHING_BLOCK - 10, 20, 9000]
            .into_iter()
            .cycle()
        {
            if rest.is_empty() {
                break;
            }
            let (piece, after) = rest.split_at(size.min(rest.len()));
            writer.write_all(piece).expect("vec write");
            rest = after;
        }
        let (digest, bytes) = writer.finish().expect("finish");
        let mut expected = Sha1::new();
        expected.update(&data);
        assert_eq!(digest, expected.finalize().expect("no collision"));
        assert_eq!(&bytes[..data.len()], &data[..]);
        assert_eq!(&bytes[data.len()..], &digest.0);
    }
}
