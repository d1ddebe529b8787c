//! Object ids (SHA-1) and the hex prefixes libgit2 hands to `read_prefix`/`exists_prefix`.

use std::cmp::Ordering;
use std::fmt;

/// Length in bytes of a SHA-1 object id, the only object format odbpack serves today.
pub const HASH_LEN: usize = 20;
/// Length in hex digits of a full SHA-1 object id.
pub const HEX_LEN: usize = 40;
/// Shortest prefix libgit2 accepts (`GIT_OID_MINPREFIXLEN`).
pub const MIN_PREFIX_HEX_LEN: usize = 4;

/// A SHA-1 object id.
///
/// ```
/// use odbpack::ObjectId;
///
/// let id = ObjectId::from_hex("5001298e0c09ad9c34e4249bc5801c75e9754fa5").expect("40 hex digits");
/// assert_eq!(id.as_bytes()[0], 0x50);
/// assert_eq!(id.to_string(), "5001298e0c09ad9c34e4249bc5801c75e9754fa5");
/// assert!(ObjectId::from_hex("5001298e").is_none(), "a prefix is not an id");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ObjectId(pub [u8; HASH_LEN]);

impl ObjectId {
    /// The all-zero id, which libgit2 never looks up.
    pub const ZERO: ObjectId = ObjectId([0; HASH_LEN]);

    /// Builds an id from exactly [`HASH_LEN`] raw bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<ObjectId> {
        bytes.try_into().ok().map(ObjectId)
    }

    /// Parses 40 hex digits (either case).
    pub fn from_hex(hex: &str) -> Option<ObjectId> {
        if hex.len() != HEX_LEN {
            return None;
        }
        let prefix = Prefix::from_hex(hex)?;
        Some(prefix.id)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Lowercase hex, as git prints it.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

/// The first `hex_len` hex digits of an object id; every bit after them is zero.
///
/// libgit2 zeroes the bits past the prefix before calling a backend, but [`Prefix::new`]
/// masks again so a careless caller cannot make a prefix match too little.
///
/// ```
/// use odbpack::{ObjectId, Prefix};
///
/// let id = ObjectId::from_hex("5001298e0c09ad9c34e4249bc5801c75e9754fa5").expect("hex");
/// let prefix = Prefix::from_hex("50012").expect("4 to 40 hex digits");
/// assert!(prefix.matches(id.as_bytes()));
/// assert_eq!(prefix, Prefix::new(id, 5).expect("valid length"));
/// assert!(Prefix::from_hex("500").is_none(), "libgit2's minimum is 4 digits");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Prefix {
    id: ObjectId,
    hex_len: usize,
}

impl Prefix {
    /// A prefix of `hex_len` digits of `id`; `None` unless `4 <= hex_len <= 40`.
    pub fn new(id: ObjectId, hex_len: usize) -> Option<Prefix> {
        if !(MIN_PREFIX_HEX_LEN..=HEX_LEN).contains(&hex_len) {
            return None;
        }
        let mut masked = id;
        let full_bytes = hex_len / 2;
        if hex_len % 2 == 1 {
            masked.0[full_bytes] &= 0xf0;
            masked.0[full_bytes + 1..].fill(0);
        } else {
            masked.0[full_bytes..].fill(0);
        }
        Some(Prefix {
            id: masked,
            hex_len,
        })
    }

    /// Parses 4..=40 hex digits.
    pub fn from_hex(hex: &str) -> Option<Prefix> {
        if !(MIN_PREFIX_HEX_LEN..=HEX_LEN).contains(&hex.len()) {
            return None;
        }
        let mut id = ObjectId::ZERO;
        for (i, c) in hex.bytes().enumerate() {
            let nibble = (c as char).to_digit(16)? as u8;
            id.0[i / 2] |= if i % 2 == 0 { nibble << 4 } else { nibble };
        }
        Some(Prefix {
            id,
            hex_len: hex.len(),
        })
    }

    /// The prefix bits, zero-padded to a full id; also the smallest id the prefix matches.
    pub fn id(&self) -> &ObjectId {
        &self.id
    }

    /// Number of significant hex digits.
    pub fn hex_len(&self) -> usize {
        self.hex_len
    }

    /// Whether all 40 digits are significant (a full-length lookup).
    pub fn is_full(&self) -> bool {
        self.hex_len == HEX_LEN
    }

    /// Orders `candidate` against the prefix: `Equal` when the candidate starts with it.
    pub fn cmp_candidate(&self, candidate: &[u8]) -> Ordering {
        let full_bytes = self.hex_len / 2;
        match candidate[..full_bytes].cmp(&self.id.0[..full_bytes]) {
            Ordering::Equal if self.hex_len % 2 == 1 => {
                (candidate[full_bytes] & 0xf0).cmp(&self.id.0[full_bytes])
            }
            other => other,
        }
    }

    /// Whether `candidate` (a raw id) starts with this prefix.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.cmp_candidate(candidate) == Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let hex = "5001298e0c09ad9c34e4249bc5801c75e9754fa5";
        let id = ObjectId::from_hex(hex).expect("valid hex");
        assert_eq!(id.to_hex(), hex);
        assert_eq!(ObjectId::from_hex(&hex.to_uppercase()), Some(id));
        assert_eq!(ObjectId::from_hex(&hex[..39]), None);
        assert_eq!(
            ObjectId::from_hex("g001298e0c09ad9c34e4249bc5801c75e9754fa5"),
            None
        );
    }

    #[test]
    fn odd_prefix_masks_and_matches() {
        let id = ObjectId::from_hex("5001298e0c09ad9c34e4249bc5801c75e9754fa5").expect("hex");
        let prefix = Prefix::new(id, 5).expect("valid length");
        assert_eq!(prefix.id().0[..3], [0x50, 0x01, 0x20]);
        assert!(prefix.matches(&id.0));
        let mut other = id;
        other.0[2] = 0x30;
        assert!(!prefix.matches(&other.0));
        assert_eq!(prefix.cmp_candidate(&other.0), Ordering::Greater);
        other.0[2] = 0x2f;
        assert!(prefix.matches(&other.0));
        assert!(Prefix::new(id, 3).is_none());
        assert!(Prefix::new(id, 41).is_none());
        assert_eq!(
            Prefix::from_hex("5001298"),
            Some(Prefix::new(id, 7).expect("len 7"))
        );
    }
}
