//! Packfile (`pack-*.pack`) parsing: the 12-byte header and object entry headers.
//!
//! The checks follow git's `packfile.c` (`unpack_object_header_buffer`, `get_delta_base`), and
//! the encoders reproduce what `pack-objects` writes (git-formats.md §1).

use super::be_u32;
use crate::oid::{HASH_LEN, ObjectId};

/// Size of the pack header (`PACK`, version, object count).
pub const HEADER_LEN: usize = 12;
/// Size of the pack trailer (SHA-1 of everything before it).
pub const TRAILER_LEN: usize = HASH_LEN;
/// Most bytes git writes for an entry header (`MAX_PACK_OBJECT_HEADER`).
pub const MAX_ENTRY_HEADER_LEN: usize = 10;
/// Type bits of an OFS_DELTA entry.
pub const OFS_DELTA: u8 = 6;
/// Type bits of a REF_DELTA entry.
pub const REF_DELTA: u8 = 7;

/// Why pack bytes were rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The pack cannot hold a header and a trailer.
    #[error("pack is {len} bytes, too small for header and trailer")]
    TooSmall {
        /// Length of the pack.
        len: usize,
    },
    /// The first four bytes are not `PACK`.
    #[error("bad pack signature {0:02x?}")]
    BadMagic([u8; 4]),
    /// A version other than 2 or 3.
    #[error("unsupported pack version {0}")]
    UnsupportedVersion(u32),
    /// The entry offset is inside the header or at/after the trailer.
    #[error("entry offset {offset} outside the pack body")]
    OffsetOutOfRange {
        /// The offending offset.
        offset: u64,
    },
    /// The entry header runs into the trailer.
    #[error("entry header truncated")]
    Truncated,
    /// The size varint does not fit in 64 bits.
    #[error("entry size overflows")]
    SizeOverflow,
    /// Type bits 0 or 5, which git never writes.
    #[error("invalid object type {0}")]
    InvalidType(u8),
    /// The OFS_DELTA distance varint overflows.
    #[error("delta base offset overflows")]
    BaseOffsetOverflow,
    /// The OFS_DELTA base would not lie strictly between the pack start and the delta.
    #[error("delta base distance {distance} out of bounds")]
    BaseOffsetOutOfRange {
        /// Distance back from the delta entry.
        distance: u64,
    },
}

/// The four object types a pack entry can resolve to, with libgit2's `git_object_t` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ObjectKind {
    /// A commit (1).
    Commit = 1,
    /// A tree (2).
    Tree = 2,
    /// A blob (3).
    Blob = 3,
    /// An annotated tag (4).
    Tag = 4,
}

impl ObjectKind {
    /// The kind for pack type bits 1..=4.
    pub fn from_type_bits(bits: u8) -> Option<ObjectKind> {
        match bits {
            1 => Some(ObjectKind::Commit),
            2 => Some(ObjectKind::Tree),
            3 => Some(ObjectKind::Blob),
            4 => Some(ObjectKind::Tag),
            _ => None,
        }
    }

    /// git's name for the type, as in the `"<type> <len>\0"` hash header.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Commit => "commit",
            ObjectKind::Tree => "tree",
            ObjectKind::Blob => "blob",
            ObjectKind::Tag => "tag",
        }
    }
}

/// The pack file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackHeader {
    /// 2 or 3.
    pub version: u32,
    /// Number of entries the pack claims.
    pub num_objects: u32,
}

/// Validates magic, version (2 or 3) and that the pack can hold header + trailer.
pub fn parse_header(pack: &[u8]) -> Result<PackHeader, Error> {
    if pack.len() < HEADER_LEN + TRAILER_LEN {
        return Err(Error::TooSmall { len: pack.len() });
    }
    let magic: [u8; 4] = pack
        .get(..4)
        .and_then(|m| m.try_into().ok())
        .ok_or(Error::TooSmall { len: pack.len() })?;
    if &magic != b"PACK" {
        return Err(Error::BadMagic(magic));
    }
    let version = be_u32(pack, 4).ok_or(Error::TooSmall { len: pack.len() })?;
    if version != 2 && version != 3 {
        return Err(Error::UnsupportedVersion(version));
    }
    let num_objects = be_u32(pack, 8).ok_or(Error::TooSmall { len: pack.len() })?;
    Ok(PackHeader {
        version,
        num_objects,
    })
}

/// What an entry stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A whole object of this kind.
    Base(ObjectKind),
    /// A delta against the entry at this absolute pack offset (always before the delta).
    OfsDelta {
        /// Absolute offset of the base entry.
        base_offset: u64,
    },
    /// A delta against the object with this id.
    RefDelta {
        /// Id of the base object.
        base: ObjectId,
    },
}

/// A parsed entry header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// What the entry stores.
    pub kind: EntryKind,
    /// Inflated size of the entry's zlib stream (object body, or delta data).
    pub size: u64,
    /// Absolute offset where the zlib stream starts.
    pub data_offset: u64,
}

/// Parses the entry header at `offset`, which must lie inside the pack body (after the header,
/// before the trailer); never reads past `pack`.
pub fn parse_entry(pack: &[u8], offset: u64) -> Result<Entry, Error> {
    let body_end = pack.len().saturating_sub(TRAILER_LEN);
    let start = usize::try_from(offset)
        .ok()
        .filter(|&start| start >= HEADER_LEN && start < body_end)
        .ok_or(Error::OffsetOutOfRange { offset })?;
    // Everything the header may read: the pack body from `start`, never the trailer.
    let bytes = pack
        .get(start..body_end)
        .ok_or(Error::OffsetOutOfRange { offset })?;
    parse_entry_header(bytes, offset)
}

/// Parses an entry header from `bytes`, which start at the entry's first header byte; `offset`
/// is the entry's absolute pack offset (for the OFS_DELTA bounds check and `data_offset`).
/// [`Error::Truncated`] means `bytes` ends inside the header: a streaming caller waits for more.
pub fn parse_entry_header(bytes: &[u8], offset: u64) -> Result<Entry, Error> {
    let mut used = 0usize;
    let mut next = || -> Result<u8, Error> {
        let byte = *bytes.get(used).ok_or(Error::Truncated)?;
        used += 1;
        Ok(byte)
    };
    let mut c = next()?;
    let type_bits = (c >> 4) & 7;
    let mut size = u64::from(c & 0x0f);
    let mut shift = 4u32;
    while c & 0x80 != 0 {
        // git: `bitsizeof(long) - 7 < shift` is a bad header. Below that bound a 7-bit group
        // always fits, so no size bits can be lost (at most 9 header bytes).
        if shift > 64 - 7 {
            return Err(Error::SizeOverflow);
        }
        c = next()?;
        size |= u64::from(c & 0x7f) << shift;
        shift += 7;
    }

    let kind = match type_bits {
        OFS_DELTA => {
            c = next()?;
            let mut distance = u64::from(c & 0x7f);
            while c & 0x80 != 0 {
                // git's `+1` encoding: each continuation adds one before shifting.
                distance = distance
                    .checked_add(1)
                    .filter(|d| d >> (64 - 7) == 0)
                    .ok_or(Error::BaseOffsetOverflow)?;
                c = next()?;
                distance = (distance << 7) | u64::from(c & 0x7f);
            }
            if distance == 0 || distance >= offset {
                return Err(Error::BaseOffsetOutOfRange { distance });
            }
            EntryKind::OfsDelta {
                base_offset: offset - distance,
            }
        }
        REF_DELTA => {
            let id = used
                .checked_add(HASH_LEN)
                .and_then(|end| bytes.get(used..end))
                .and_then(ObjectId::from_slice)
                .ok_or(Error::Truncated)?;
            used += HASH_LEN;
            EntryKind::RefDelta { base: id }
        }
        bits => EntryKind::Base(ObjectKind::from_type_bits(bits).ok_or(Error::InvalidType(bits))?),
    };
    Ok(Entry {
        kind,
        size,
        data_offset: offset + used as u64,
    })
}

/// Appends an entry header (type bits and inflated size) exactly as git's
/// `encode_in_pack_object_header` writes it. `type_bits` is masked to its 3 bits.
pub fn encode_entry_header(type_bits: u8, size: u64, out: &mut Vec<u8>) {
    let mut c = ((type_bits & 7) << 4) | (size & 0x0f) as u8;
    let mut rest = size >> 4;
    while rest != 0 {
        out.push(c | 0x80);
        c = (rest & 0x7f) as u8;
        rest >>= 7;
    }
    out.push(c);
}

/// Appends an OFS_DELTA base distance (delta offset minus base offset) exactly as
/// `pack-objects` writes it: most significant group first, with git's `+1` bias.
pub fn encode_ofs_delta_offset(distance: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 10];
    let mut pos = buf.len() - 1;
    let mut ofs = distance;
    buf[pos] = (ofs & 0x7f) as u8;
    // A u64 needs at most 10 groups, so `pos` never underflows.
    loop {
        ofs >>= 7;
        if ofs == 0 {
            break;
        }
        ofs -= 1;
        pos -= 1;
        buf[pos] = 0x80 | (ofs & 0x7f) as u8;
    }
    out.extend_from_slice(&buf[pos..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pack of `body` between a valid header and a zero trailer.
    fn pack_with(body: &[u8]) -> Vec<u8> {
        let mut pack = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
        pack.extend_from_slice(body);
        pack.extend_from_slice(&[0; TRAILER_LEN]);
        pack
    }

    #[test]
    fn header_checks() {
        let pack = pack_with(b"");
        assert_eq!(
            parse_header(&pack),
            Ok(PackHeader {
                version: 2,
                num_objects: 1
            })
        );
        assert_eq!(parse_header(&pack[..31]), Err(Error::TooSmall { len: 31 }));
        let mut v3 = pack.clone();
        v3[7] = 3;
        assert_eq!(parse_header(&v3).map(|h| h.version), Ok(3));
        let mut v4 = pack.clone();
        v4[7] = 4;
        assert_eq!(parse_header(&v4), Err(Error::UnsupportedVersion(4)));
        let mut magic = pack.clone();
        magic[0] = b'X';
        assert_eq!(parse_header(&magic), Err(Error::BadMagic(*b"XACK")));
    }

    #[test]
    fn entry_header_round_trips() {
        for (type_bits, size) in [
            (1u8, 0u64),
            (3, 15),
            (3, 16),
            (2, 1 << 20),
            (4, (1 << 60) - 1),
        ] {
            let mut body = Vec::new();
            encode_entry_header(type_bits, size, &mut body);
            let len = body.len() as u64;
            body.extend_from_slice(b"zlib");
            let entry = parse_entry(&pack_with(&body), 12).expect("valid entry");
            let kind = ObjectKind::from_type_bits(type_bits).expect("base type");
            assert_eq!(
                entry,
                Entry {
                    kind: EntryKind::Base(kind),
                    size,
                    data_offset: 12 + len
                }
            );
        }
        let mut one = Vec::new();
        encode_entry_header(3, 15, &mut one);
        assert_eq!(one, [0x3f]);
        let mut two = Vec::new();
        encode_entry_header(3, 16, &mut two);
        assert_eq!(two, [0xb0, 0x01]);
    }

    #[test]
    fn ofs_delta_encoding_matches_git() {
        let enc = |d: u64| {
            let mut out = Vec::new();
            encode_ofs_delta_offset(d, &mut out);
            out
        };
        assert_eq!(enc(1), [0x01]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x00]);
        assert_eq!(enc(16511), [0xff, 0x7f]);
        assert_eq!(enc(16512), [0x80, 0x80, 0x00]);
        assert_eq!(enc(u64::MAX).len(), 10);
        let delta_entry = |distance: u64| {
            let mut entry = Vec::new();
            encode_entry_header(OFS_DELTA, 5, &mut entry);
            encode_ofs_delta_offset(distance, &mut entry);
            entry
        };
        for distance in [1u64, 127, 128, 300, 11882, 16511, 16512, 70000] {
            // Pad so the delta sits `distance` bytes after the first entry at 12.
            let offset = 12 + distance;
            let mut pack = pack_with(&[]);
            pack.truncate(HEADER_LEN);
            pack.resize(offset as usize, 0);
            let entry = delta_entry(distance);
            let data_offset = offset + entry.len() as u64;
            pack.extend_from_slice(&entry);
            pack.extend_from_slice(&[0; 4 + TRAILER_LEN]);
            let kind = EntryKind::OfsDelta { base_offset: 12 };
            assert_eq!(
                parse_entry(&pack, offset),
                Ok(Entry {
                    kind,
                    size: 5,
                    data_offset
                })
            );
        }
        // A distance reaching back past the pack start decodes, then fails the bounds check.
        let far = pack_with(&delta_entry(1 << 33));
        assert_eq!(
            parse_entry(&far, 12),
            Err(Error::BaseOffsetOutOfRange { distance: 1 << 33 })
        );
    }

    #[test]
    fn ref_delta_entry() {
        let mut body = Vec::new();
        encode_entry_header(REF_DELTA, 9, &mut body);
        body.extend_from_slice(&[0xab; HASH_LEN]);
        body.push(0x78);
        let pack = pack_with(&body);
        assert_eq!(
            parse_entry(&pack, 12),
            Ok(Entry {
                kind: EntryKind::RefDelta {
                    base: ObjectId([0xab; HASH_LEN])
                },
                size: 9,
                data_offset: 12 + 1 + 20,
            })
        );
        // The id running into the trailer is a truncated header.
        let short = pack_with(&body[..10]);
        assert_eq!(parse_entry(&short, 12), Err(Error::Truncated));
    }

    #[test]
    fn entry_errors() {
        let pack = pack_with(&[0x30, 0x78, 0x9c]);
        assert_eq!(
            parse_entry(&pack, 11),
            Err(Error::OffsetOutOfRange { offset: 11 })
        );
        assert_eq!(
            parse_entry(&pack, 15),
            Err(Error::OffsetOutOfRange { offset: 15 })
        );
        assert_eq!(
            parse_entry(&pack, u64::MAX),
            Err(Error::OffsetOutOfRange { offset: u64::MAX })
        );
        assert_eq!(
            parse_entry(&pack_with(&[0x00, 0]), 12),
            Err(Error::InvalidType(0))
        );
        assert_eq!(
            parse_entry(&pack_with(&[0x50, 0]), 12),
            Err(Error::InvalidType(5))
        );
        // Continuation bit on the last body byte: the header would read the trailer.
        assert_eq!(parse_entry(&pack_with(&[0xb0]), 12), Err(Error::Truncated));
        // Nine continuation bytes: shift past 57 bits.
        let long = [
            0xb0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0,
        ];
        assert_eq!(parse_entry(&pack_with(&long), 12), Err(Error::SizeOverflow));
        // Nine bytes (last at shift 53) is the longest header git reads.
        let longest = [0xb0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f, 0];
        assert_eq!(
            parse_entry(&pack_with(&longest), 12).map(|e| e.size),
            Ok(0x7f << 53)
        );
        // OFS_DELTA: distance 0 and distance reaching the pack start.
        assert_eq!(
            parse_entry(&pack_with(&[0x65, 0x00, 0]), 12),
            Err(Error::BaseOffsetOutOfRange { distance: 0 })
        );
        assert_eq!(
            parse_entry(&pack_with(&[0x65, 0x0c, 0]), 12),
            Err(Error::BaseOffsetOutOfRange { distance: 12 })
        );
        assert_eq!(
            parse_entry(&pack_with(&[0x65, 0x80]), 12),
            Err(Error::Truncated)
        );
        let mut overflow = vec![0x65];
        overflow.extend_from_slice(&[0xff; 10]);
        overflow.push(0x7f);
        assert_eq!(
            parse_entry(&pack_with(&overflow), 12),
            Err(Error::BaseOffsetOverflow)
        );
    }

    #[test]
    fn every_offset_of_random_bytes_is_safe() {
        let body = crate::test_git::incompressible_bytes(0x2545_f491_4f6c_dd1d, 4096);
        let pack = pack_with(&body);
        for offset in 0..pack.len() as u64 + 2 {
            if let Ok(entry) = parse_entry(&pack, offset) {
                assert!(entry.data_offset <= (pack.len() - TRAILER_LEN) as u64);
                if let EntryKind::OfsDelta { base_offset } = entry.kind {
                    assert!(base_offset > 0 && base_offset < offset);
                }
            }
        }
    }
}
