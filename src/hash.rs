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
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha1,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Sha1::new(),
        }
    }

    /// Writes the trailer (the SHA-1 of everything before it) and returns it with the writer.
    pub fn finish(mut self) -> io::Result<(ObjectId, W)> {
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
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
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
}
