//! Encoding a task's argument or result, with serde's own message when it
//! fails.
//!
//! postcard drops the message a `Serialize` impl gives
//! `serde::ser::Error::custom` (its error says only "Serde Serialization
//! Error"). So when postcard fails, the value is serialized once more into
//! [`Probe`], a serializer that accepts every shape of data and keeps that
//! message: if the value's own code fails there too, its message is the
//! reason; otherwise the failure was postcard's (e.g. a sequence of unknown
//! length), and postcard's message says so precisely.

use std::any::type_name;
use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::ser::{self, Serialize};

/// `value` in postcard's encoding into `buffer` (cleared first), reusing
/// its memory, or why not: "`T`: reason". (The process queue's puts encode
/// into one buffer per thread; a map encodes each item into one buffer.)
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    buffer: &mut Vec<u8>,
) -> Result<(), String> {
    buffer.clear();
    postcard::serialize_with_flavor(value, Appending(buffer))
        .map_err(|error| encode_failed(value, &error))
}

/// A postcard output that appends to a borrowed `Vec` (postcard's own
/// `AllocVec` owns a fresh one).
struct Appending<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Appending<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cold]
fn encode_failed<T: Serialize + ?Sized>(value: &T, error: &postcard::Error) -> String {
    let own_message = catch_unwind(AssertUnwindSafe(|| value.serialize(Probe))).ok();
    match own_message {
        Some(Err(ProbeError(message))) => format!("`{}`: {message}", type_name::<T>()),
        _ => format!("`{}`: {error}", type_name::<T>()),
    }
}

/// The message a `Serialize` impl failed with.
#[derive(Debug)]
struct ProbeError(String);

impl Display for ProbeError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for ProbeError {}

impl ser::Error for ProbeError {
    fn custom<M: Display>(message: M) -> Self {
        ProbeError(message.to_string())
    }
}

/// A serializer that accepts anything and produces nothing.
struct Probe;

type Probed = Result<(), ProbeError>;

macro_rules! accept {
    ($($method:ident($type:ty);)*) => {
        $(fn $method(self, _: $type) -> Probed { Ok(()) })*
    };
}

impl ser::Serializer for Probe {
    type Ok = ();
    type Error = ProbeError;
    type SerializeSeq = Probe;
    type SerializeTuple = Probe;
    type SerializeTupleStruct = Probe;
    type SerializeTupleVariant = Probe;
    type SerializeMap = Probe;
    type SerializeStruct = Probe;
    type SerializeStructVariant = Probe;

    accept! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_i128(i128); serialize_u8(u8); serialize_u16(u16);
        serialize_u32(u32); serialize_u64(u64); serialize_u128(u128); serialize_f32(f32);
        serialize_f64(f64); serialize_char(char); serialize_str(&str); serialize_bytes(&[u8]);
        serialize_unit_struct(&'static str);
    }

    fn serialize_none(self) -> Probed {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Probed {
        value.serialize(Probe)
    }

    fn serialize_unit(self) -> Probed {
        Ok(())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Probed {
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Probed {
        value.serialize(Probe)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Probed {
        value.serialize(Probe)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Probe, ProbeError> {
        Ok(Probe)
    }

    fn serialize_tuple(self, _: usize) -> Result<Probe, ProbeError> {
        Ok(Probe)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Probe, ProbeError> {
        Ok(Probe)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Probe, ProbeError> {
        Ok(Probe)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Probe, ProbeError> {
        Ok(Probe)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Probe, ProbeError> {
        Ok(Probe)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Probe, ProbeError> {
        Ok(Probe)
    }
}

macro_rules! compound {
    ($($trait:ident::$method:ident;)*) => {
        $(impl ser::$trait for Probe {
            type Ok = ();
            type Error = ProbeError;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Probed {
                value.serialize(Probe)
            }

            fn end(self) -> Probed {
                Ok(())
            }
        })*
    };
}

compound! {
    SerializeSeq::serialize_element;
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
}

impl ser::SerializeMap for Probe {
    type Ok = ();
    type Error = ProbeError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Probed {
        key.serialize(Probe)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Probed {
        value.serialize(Probe)
    }

    fn end(self) -> Probed {
        Ok(())
    }
}

impl ser::SerializeStruct for Probe {
    type Ok = ();
    type Error = ProbeError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, value: &T) -> Probed {
        value.serialize(Probe)
    }

    fn end(self) -> Probed {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Probe {
    type Ok = ();
    type Error = ProbeError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, value: &T) -> Probed {
        value.serialize(Probe)
    }

    fn end(self) -> Probed {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
        let mut buffer = vec![7; 3];
        encode_into(value, &mut buffer).map(|()| buffer)
    }

    struct Refuses;

    impl Serialize for Refuses {
        fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(ser::Error::custom("no, thank you"))
        }
    }

    /// A sequence whose length postcard cannot know up front.
    struct Unsized;

    impl Serialize for Unsized {
        fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq((0..3u8).filter(|x| x % 2 == 0))
        }
    }

    #[test]
    fn a_failure_carries_the_values_own_message_and_type() {
        let message = encode(&vec![(1u8, Refuses)]).unwrap_err();
        assert!(message.contains("no, thank you"), "{message}");
        assert!(message.contains("Refuses"), "{message}");
    }

    #[test]
    fn a_failure_of_postcards_own_keeps_postcards_message() {
        let message = encode(&Unsized).unwrap_err();
        assert!(message.contains("length"), "{message}");
    }

    #[test]
    fn a_value_that_encodes_is_postcards_encoding() {
        assert_eq!(
            encode(&(1u8, "a")),
            Ok(postcard::to_allocvec(&(1u8, "a")).unwrap())
        );
    }
}
