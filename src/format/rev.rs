//! Reverse index (`pack-*.rev`) writing (git-formats.md §3.1), byte-identical to what
//! `git index-pack` writes with `pack.writeReverseIndex` (the default since git 2.41).

use std::io::{self, Write};

use crate::hash::HashingWriter;
use crate::oid::ObjectId;

/// The signature `RIDX`.
pub const MAGIC: [u8; 4] = *b"RIDX";
/// The only version git writes.
pub const VERSION: u32 = 1;
/// Hash id of SHA-1 in the header.
pub const HASH_ID_SHA1: u32 = 1;

/// Writes a `.rev` for a pack whose objects, in index (object id) order, lie at `offsets`.
/// Entry `i` of the file is the index position of the object with the `i`-th smallest offset.
/// Returns the file's checksum (also its trailer).
pub fn write<W: Write>(offsets: &[u64], pack_checksum: &ObjectId, out: W) -> io::Result<ObjectId> {
    let count = u32::try_from(offsets.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "more than 2^32-1 objects"))?;
    let mut order: Vec<u32> = (0..count).collect();
    // Offsets in one pack are distinct; ties (invalid input) keep index order, as git's sort.
    order.sort_by_key(|&position| offsets[position as usize]);
    let mut file = HashingWriter::new(out);
    file.write_all(&MAGIC)?;
    file.write_all(&VERSION.to_be_bytes())?;
    file.write_all(&HASH_ID_SHA1.to_be_bytes())?;
    for position in order {
        file.write_all(&position.to_be_bytes())?;
    }
    file.write_all(&pack_checksum.0)?;
    let (checksum, _out) = file.finish()?;
    Ok(checksum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let pack = ObjectId([7; 20]);
        let mut out = Vec::new();
        let checksum = write(&[300, 12, 40], &pack, &mut out).expect("vec write");
        assert_eq!(out.len(), 12 + 3 * 4 + 40);
        assert_eq!(&out[..12], b"RIDX\0\0\0\x01\0\0\0\x01");
        // Offsets 12 (position 1), 40 (2), 300 (0).
        assert_eq!(&out[12..24], &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0]);
        assert_eq!(&out[24..44], &pack.0);
        assert_eq!(&out[44..], &checksum.0);
    }
}
