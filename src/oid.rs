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
    /// `id` as [`leading_u64`] and [`trailing`] words, and the masks that keep the first
    /// `hex_len` digits of such words: computed once here, not in every comparison.
    words: (u64, (u64, u32)),
    masks: (u64, (u64, u32)),
}

impl Prefix {
    /// A prefix of `hex_len` digits of `id`; `None` unless `4 <= hex_len <= 40`.
    pub fn new(id: ObjectId, hex_len: usize) -> Option<Prefix> {
        if !(MIN_PREFIX_HEX_LEN..=HEX_LEN).contains(&hex_len) {
            return None;
        }
        let masks = masks(hex_len);
        let (leading, (middle, last)) = (leading_u64(&id.0), trailing(&id.0));
        let words = (leading & masks.0, (middle & masks.1.0, last & masks.1.1));
        let mut masked = ObjectId::ZERO;
        // Whole-word stores, not a byte loop: the id is copied on as words right after, and a
        // wide load of bytes just stored one by one stalls the CPU.
        masked.0[..8].copy_from_slice(&words.0.to_be_bytes());
        masked.0[8..16].copy_from_slice(&words.1.0.to_be_bytes());
        masked.0[16..].copy_from_slice(&words.1.1.to_be_bytes());
        Some(Prefix {
            id: masked,
            hex_len,
            words,
            masks,
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
        Prefix::new(id, hex.len())
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

    /// [`Prefix::id`] as [`leading_u64`] and [`trailing`] words, the form id tables compare.
    #[inline]
    pub(crate) fn words(&self) -> (u64, (u64, u32)) {
        self.words
    }

    /// Orders `candidate` (a raw id) against the prefix: `Equal` when the candidate starts
    /// with it.
    pub fn cmp_candidate(&self, candidate: &[u8; HASH_LEN]) -> Ordering {
        self.masked_words(candidate).cmp(&self.words)
    }

    /// Whether `candidate` (a raw id) starts with this prefix.
    #[inline]
    pub fn matches(&self, candidate: &[u8; HASH_LEN]) -> bool {
        self.masked_words(candidate) == self.words
    }

    /// `candidate`'s words with every digit past the prefix cleared (they order like the bytes).
    #[inline]
    fn masked_words(&self, candidate: &[u8; HASH_LEN]) -> (u64, (u64, u32)) {
        let (leading_mask, (middle_mask, last_mask)) = self.masks;
        let (middle, last) = trailing(candidate);
        (
            leading_u64(candidate) & leading_mask,
            (middle & middle_mask, last & last_mask),
        )
    }
}

/// The first eight bytes of an id as a big-endian integer (orders like the bytes).
#[inline]
pub(crate) fn leading_u64(id: &[u8; HASH_LEN]) -> u64 {
    let (leading, _) = id.split_first_chunk::<8>().expect("20 bytes hold 8");
    u64::from_be_bytes(*leading)
}

/// The last twelve bytes of an id as big-endian integers (ordered like the bytes): two loads
/// and compares where a slice compare calls `memcmp`. Id tables compare ids as [`leading_u64`]
/// then these: the first eight bytes decide almost every comparison, and a `u128` compare loads
/// and subtracts both halves every time.
#[inline]
pub(crate) fn trailing(id: &[u8; HASH_LEN]) -> (u64, u32) {
    let (_, rest) = id.split_first_chunk::<8>().expect("20 bytes hold 8");
    let (middle, last) = rest.split_first_chunk::<8>().expect("and 12 more");
    let last: [u8; 4] = *last.first_chunk().expect("of which 4 are last");
    (u64::from_be_bytes(*middle), u32::from_be_bytes(last))
}

/// Masks over [`leading_u64`] and [`trailing`]'s words keeping the first `hex_len` (4..=40)
/// hex digits.
fn masks(hex_len: usize) -> (u64, (u64, u32)) {
    let bits = (hex_len * 4) as u32;
    // The first 128 bits' mask as one word, split after: no branch per word.
    let head = u128::MAX
        .checked_shl(128u32.saturating_sub(bits))
        .unwrap_or(0);
    let last = u32::MAX
        .checked_shl(160u32.saturating_sub(bits))
        .unwrap_or(0);
    ((head >> 64) as u64, (head as u64, last))
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

    /// Every length from 4 to 40 digits, against the hex strings themselves: the mask keeps
    /// exactly the prefix's digits, and the order is the order of the digits.
    #[test]
    fn every_prefix_length_masks_and_orders_like_hex_digits() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut random_id = || {
            let mut id = ObjectId::ZERO;
            for byte in &mut id.0 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            id
        };
        for _ in 0..200 {
            let (id, candidate) = (random_id(), random_id());
            for hex_len in MIN_PREFIX_HEX_LEN..=HEX_LEN {
                let prefix = Prefix::new(id, hex_len).expect("valid length");
                let digits = &id.to_hex()[..hex_len];
                let padded = format!("{digits:0<40}");
                assert_eq!(prefix.id().to_hex(), padded, "mask of {hex_len} digits");
                assert!(prefix.matches(&id.0));
                // A candidate sharing the first digits and differing after them.
                let mut near = candidate.to_hex();
                near.replace_range(..hex_len - 1, &digits[..hex_len - 1]);
                for candidate_hex in [candidate.to_hex(), near] {
                    let candidate = ObjectId::from_hex(&candidate_hex).expect("hex");
                    assert_eq!(
                        prefix.cmp_candidate(&candidate.0),
                        candidate_hex[..hex_len].cmp(digits),
                        "{candidate_hex} against prefix {digits}"
                    );
                }
            }
        }
    }
}
