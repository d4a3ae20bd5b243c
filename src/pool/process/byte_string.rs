//! serde helpers that move a byte vector as one byte string.
//!
//! serde's own `Vec<u8>` goes byte by byte (a sequence of `u8`: one call
//! per byte each way). postcard writes a byte string exactly as such a
//! sequence (a varint length, then the bytes), so these helpers change no
//! byte on the wire: they only let postcard copy the bytes in one go.
//! Used with `#[serde(with = "...")]` on the wire's already-encoded
//! arguments and results (`wire.rs`) and a chunk's outcomes (`chunk.rs`).

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Serializer;

/// Writes `bytes` as one byte string.
pub(crate) fn serialize<S: Serializer, B: AsRef<[u8]>>(
    bytes: &B,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes.as_ref())
}

/// Reads a byte string (or, from a format that writes one as a sequence
/// of `u8`, that sequence) into a `Vec<u8>`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_byte_buf(ByteVecVisitor)
}

struct ByteVecVisitor;

impl<'de> Visitor<'de> for ByteVecVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(bytes)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Vec<u8>, A::Error> {
        // Grows as bytes arrive, not by what the sequence claims.
        let mut bytes = Vec::new();
        while let Some(byte) = sequence.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

/// The same for a task's outcome, `Result<Vec<u8>, Failure>`.
pub(crate) mod outcome {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::super::wire::Failure;

    /// `Result`'s own shape (variant 0 `Ok`, 1 `Err`), with the bytes as
    /// one byte string.
    #[derive(Serialize)]
    #[serde(rename = "Result")]
    enum OutcomeRef<'a> {
        Ok(#[serde(with = "super")] &'a [u8]),
        Err(&'a Failure),
    }

    #[derive(Deserialize)]
    #[serde(rename = "Result")]
    enum Outcome {
        Ok(#[serde(deserialize_with = "super::deserialize")] Vec<u8>),
        Err(Failure),
    }

    pub(crate) fn serialize<S: Serializer>(
        outcome: &Result<Vec<u8>, Failure>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match outcome {
            Ok(bytes) => OutcomeRef::Ok(bytes),
            Err(failure) => OutcomeRef::Err(failure),
        }
        .serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Result<Vec<u8>, Failure>, D::Error> {
        Ok(match Outcome::deserialize(deserializer)? {
            Outcome::Ok(bytes) => Ok(bytes),
            Outcome::Err(failure) => Err(failure),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::super::wire::Failure;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Plain {
        bytes: Vec<u8>,
        outcome: Result<Vec<u8>, Failure>,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct AsStrings {
        #[serde(with = "super")]
        bytes: Vec<u8>,
        #[serde(with = "super::outcome")]
        outcome: Result<Vec<u8>, Failure>,
    }

    /// The same bytes on the wire as serde's own `Vec<u8>`, both ways.
    #[test]
    fn the_encoding_is_serdes_own() {
        let lengths = [0usize, 1, 127, 128, 300];
        for length in lengths {
            let bytes: Vec<u8> = (0..length).map(|index| index as u8).collect();
            for outcome in [Ok(bytes.clone()), Err(Failure::Panicked("boom".into()))] {
                let plain = Plain {
                    bytes: bytes.clone(),
                    outcome: outcome.clone(),
                };
                let strings = AsStrings {
                    bytes: bytes.clone(),
                    outcome,
                };
                let encoded = postcard::to_allocvec(&plain).unwrap();
                assert_eq!(postcard::to_allocvec(&strings).unwrap(), encoded);
                let decoded: AsStrings = postcard::from_bytes(&encoded).unwrap();
                assert_eq!(decoded, strings);
            }
        }
    }

    #[test]
    fn a_cut_byte_string_is_an_error() {
        let encoded = postcard::to_allocvec(&AsStrings {
            bytes: vec![1, 2, 3],
            outcome: Ok(vec![4]),
        })
        .unwrap();
        for cut in 0..encoded.len() {
            assert!(postcard::from_bytes::<AsStrings>(&encoded[..cut]).is_err());
        }
    }
}
