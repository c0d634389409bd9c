//! [`Blob`]: an immutable byte string that is shared, not copied, when cloned. Keys,
//! values and hash fields are blobs.
//!
//! One write's key and value are held at once by the client's request (kept for a
//! retry), the op, the mutation streamed to each secondary and to the logging nodes,
//! the replica's tail of recent mutations and the cell store. As `Vec<u8>` each of those
//! was an allocation and a copy. A blob of up to [`INLINE`] bytes (most keys, many
//! values) is kept inline, in the 24 bytes of the blob itself: no allocation at all,
//! and a cell store's hash table compares a key without a trip to another cache line.
//! A longer one is one allocation (the count sits in front of the bytes) that every
//! further holder shares for an increment. A profile of a node under
//! `redis-benchmark -t set -P 16` had a fifth of its time in `malloc` and `free`, and
//! another fifth comparing keys whose bytes lived elsewhere.
//!
//! Why not `bytes::Bytes`: it is built to slice network buffers, and a `Bytes` made from
//! a `Vec` allocates a second time (its shared header) the first time it is cloned, and
//! keeps nothing inline. A blob never borrows a larger buffer, so a small value kept for
//! hours never pins the read buffer it arrived in.
//!
//! On the wire and on disk a blob is msgpack `bin`, exactly as `serde_bytes` wrote the
//! `Vec<u8>` it replaces; it also reads an array of integers (how hash fields were
//! written before).

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// Bytes a blob keeps inline, without an allocation.
pub const INLINE: usize = 22;

/// An immutable, cheaply cloned byte string.
///
/// Equality, order and hash are those of the bytes (so a map keyed by blobs is searched
/// with a `&[u8]`); a given length always has the same representation.
#[derive(Clone)]
pub struct Blob(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, data: [u8; INLINE] },
    Shared(Arc<[u8]>),
}

impl Blob {
    /// The empty blob.
    pub const fn empty() -> Blob {
        Blob(Repr::Inline {
            len: 0,
            data: [0; INLINE],
        })
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, data } => &data[..usize::from(*len)],
            Repr::Shared(a) => a,
        }
    }

    /// A copy of the bytes as a `Vec`.
    pub fn to_vec(&self) -> Vec<u8> {
        self.as_slice().to_vec()
    }

    /// Whether the bytes live in a shared allocation (longer than [`INLINE`]).
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Repr::Shared(_))
    }
}

impl PartialEq for Blob {
    fn eq(&self, other: &Blob) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Blob {}

impl PartialOrd for Blob {
    fn partial_cmp(&self, other: &Blob) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Blob {
    fn cmp(&self, other: &Blob) -> std::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for Blob {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl Default for Blob {
    fn default() -> Self {
        Blob::empty()
    }
}

impl Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// Lets a `HashMap<Blob, _>` or `BTreeMap<Blob, _>` be searched with a `&[u8]`
/// (a blob hashes and orders exactly as its bytes do).
impl Borrow<[u8]> for Blob {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<&[u8]> for Blob {
    fn from(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut data = [0; INLINE];
            data[..b.len()].copy_from_slice(b);
            Blob(Repr::Inline {
                len: b.len() as u8,
                data,
            })
        } else {
            Blob(Repr::Shared(Arc::from(b)))
        }
    }
}

impl<const N: usize> From<&[u8; N]> for Blob {
    fn from(b: &[u8; N]) -> Self {
        Blob::from(&b[..])
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Self {
        if v.len() <= INLINE {
            Blob::from(&v[..])
        } else {
            Blob(Repr::Shared(Arc::from(v)))
        }
    }
}

impl From<&Vec<u8>> for Blob {
    fn from(v: &Vec<u8>) -> Self {
        Blob::from(&v[..])
    }
}

impl From<&str> for Blob {
    fn from(s: &str) -> Self {
        Blob::from(s.as_bytes())
    }
}

impl From<String> for Blob {
    fn from(s: String) -> Self {
        Blob::from(s.into_bytes())
    }
}

impl PartialEq<[u8]> for Blob {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<&[u8]> for Blob {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_slice() == *other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Blob {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.as_slice() == &other[..]
    }
}

impl PartialEq<Vec<u8>> for Blob {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_slice() == &other[..]
    }
}

/// Printable bytes as text, the rest escaped (`b"cart:\x01"`), as a key reads in a log.
impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.as_slice().escape_ascii())
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_slice())
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_byte_buf(BlobVisitor)
    }
}

struct BlobVisitor;

impl<'de> Visitor<'de> for BlobVisitor {
    type Value = Blob;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
        Ok(Blob::from(v))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
        Ok(Blob::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Blob, E> {
        Ok(Blob::from(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64 * 1024));
        while let Some(b) = seq.next_element::<u8>()? {
            v.push(b);
        }
        Ok(Blob::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    #[test]
    fn clones_of_a_long_blob_share_one_allocation() {
        let a = Blob::from(vec![7u8; INLINE + 1]);
        assert!(a.is_shared());
        let b = a.clone();
        assert!(std::ptr::eq(a.as_slice().as_ptr(), b.as_slice().as_ptr()));
        assert_eq!(a, b);
    }

    #[test]
    fn a_short_blob_is_inline_and_equal_to_its_bytes() {
        for len in [0, 1, INLINE] {
            let bytes: Vec<u8> = (0..len as u8).collect();
            let a = Blob::from(&bytes[..]);
            assert!(!a.is_shared(), "{len} bytes");
            assert_eq!(a.as_slice(), &bytes[..]);
            assert_eq!(a, Blob::from(bytes.clone()));
        }
        assert_eq!(Blob::empty(), Blob::from(&b""[..]));
        assert_eq!(std::mem::size_of::<Blob>(), 24);
    }

    #[test]
    fn order_and_hash_are_the_bytes_whatever_the_length() {
        use std::hash::BuildHasher;
        let long = Blob::from(vec![b'b'; INLINE + 5]);
        let short = Blob::from("a");
        assert!(short < long);
        let long_a = Blob::from(vec![b'a'; INLINE + 5]);
        assert!(long_a < Blob::from("b"));
        let h = std::collections::hash_map::RandomState::new();
        assert_eq!(h.hash_one(&long), h.hash_one(long.as_slice()));
        assert_eq!(h.hash_one(&short), h.hash_one(short.as_slice()));
    }

    #[test]
    fn maps_are_searched_with_slices() {
        let mut h = HashMap::new();
        h.insert(Blob::from("k1"), 1);
        assert_eq!(h.get(&b"k1"[..]), Some(&1));
        assert_eq!(h.get(&b"k2"[..]), None);
        let mut t = BTreeMap::new();
        t.insert(Blob::from("b"), 2);
        t.insert(Blob::from("a"), 1);
        assert_eq!(t.get(&b"b"[..]), Some(&2));
        let order: Vec<&[u8]> = t.keys().map(|k| k.as_slice()).collect();
        assert_eq!(order, vec![&b"a"[..], &b"b"[..]]);
    }

    #[test]
    fn msgpack_is_bin_as_serde_bytes_wrote_it() {
        let v = vec![0u8, 1, 200, 255];
        let ours = rmp_serde::to_vec(&Blob::from(&v)).unwrap();
        let theirs = rmp_serde::to_vec(&serde_bytes::Bytes::new(&v)).unwrap();
        assert_eq!(ours, theirs);
        let back: Blob = rmp_serde::from_slice(&theirs).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn reads_an_array_of_integers_too() {
        // How `Vec<u8>` without serde_bytes (hash fields before blobs) was written.
        let old = rmp_serde::to_vec(&vec![104u8, 200, 0]).unwrap();
        let back: Blob = rmp_serde::from_slice(&old).unwrap();
        assert_eq!(back, vec![104u8, 200, 0]);
        let json: Blob = serde_json::from_str("[1,2,3]").unwrap();
        assert_eq!(json, vec![1u8, 2, 3]);
    }

    #[test]
    fn refuses_what_is_not_bytes() {
        assert!(rmp_serde::from_slice::<Blob>(&rmp_serde::to_vec(&7u32).unwrap()).is_err());
        assert!(serde_json::from_str::<Blob>("[1,300]").is_err());
    }

    #[test]
    fn debug_escapes_what_is_not_printable() {
        assert_eq!(
            format!("{:?}", Blob::from(&b"cart:\x01"[..])),
            "b\"cart:\\x01\""
        );
    }
}
