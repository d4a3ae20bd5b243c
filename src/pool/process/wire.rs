//! The wire protocol between the parent and a worker process.
//!
//! Each message is a frame: the 2-byte mark `FRAME_MARK`, a little-endian
//! `u32` length, then that many bytes of the message in postcard's compact
//! binary encoding. The mark lets a reader reject garbage at once instead
//! of waiting for the bytes a garbled length promises. Arguments
//! and results travel inside as already-encoded bytes, so the framing never
//! needs to know their types.
//!
//! ```text
//!  parent ──▶ worker:  Board { name }                (pool workers: once, first)
//!                      Task { id, function, argument }
//!  worker ──▶ parent:  Ready { init_error }          (once, first)
//!                      Done { id, outcome }          (once per task, in task order)
//!                      or Skipped { id }             (a task cancelled on the board)
//! ```
//!
//! Which task starts, which is cancelled, and which one a timeout kills is
//! agreed on the task board (`board.rs`), not by messages.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// The largest frame body either side accepts unless the pool says
/// otherwise (`ProcessPoolBuilder::max_frame_size`): a header announcing
/// more is refused before a byte of the body is read, so a misbehaving
/// worker cannot make the parent allocate more than about this much.
pub(crate) const DEFAULT_MAX_FRAME: u32 = 64 << 20;

/// Bytes a `Task` or `Done` message adds around its argument or result
/// (the variant tag and the varint id, identity and length), rounded up.
pub(crate) const MESSAGE_OVERHEAD: usize = 32;

/// The first two bytes of every frame.
const FRAME_MARK: [u8; 2] = *b"vs";

/// What a worker writes before its first frame. Anything before it on the
/// pipe was printed by the program before `init()` took over stdout (in a
/// test binary, the harness's "running 1 test" line): the parent skips it.
pub(crate) const PREAMBLE: &[u8] = b"\0verisync-worker\0";

/// How much stray output the parent skips looking for [`PREAMBLE`].
const MAX_STRAY_OUTPUT: usize = 1 << 20;

/// Skips everything up to and including [`PREAMBLE`]; returns the skipped
/// bytes (to show them), or `Closed`/`Garbled` if the preamble never comes.
pub(crate) fn skip_to_preamble(reader: &mut impl Read) -> Result<Vec<u8>, ReadError> {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(PREAMBLE) {
        if seen.len() > MAX_STRAY_OUTPUT {
            return Err(ReadError::Garbled(
                "no worker preamble in the first MiB of output".into(),
            ));
        }
        match reader.read(&mut byte) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(_) => seen.push(byte[0]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(ReadError::Garbled(format!("reading failed: {error}"))),
        }
    }
    seen.truncate(seen.len() - PREAMBLE.len());
    Ok(seen)
}

/// From the parent to a worker.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum ToWorker {
    /// Map the task board with this name; tasks after it are on the board.
    Board { name: String },
    /// Run `function` (an identity from `function.rs`) on `argument`.
    Task {
        id: u64,
        function: i64,
        #[serde(with = "serde_bytes")]
        argument: Vec<u8>,
    },
}

/// [`ToWorker`] borrowing a task's argument, so the writer sends it
/// without copying it first: the same bytes on the wire.
#[derive(Serialize)]
#[serde(rename = "ToWorker")]
enum ToWorkerRef<'a> {
    /// Never written through here; it holds `Board`'s place (variant 0).
    #[allow(dead_code)]
    Board { name: &'a str },
    Task {
        id: u64,
        function: i64,
        #[serde(with = "serde_bytes")]
        argument: &'a [u8],
    },
}

/// Writes the frame of [`ToWorker::Task`] (not flushed).
pub(crate) fn write_task_frame(
    writer: &mut impl Write,
    id: u64,
    function: i64,
    argument: &[u8],
) -> io::Result<()> {
    write_frame(
        writer,
        &ToWorkerRef::Task {
            id,
            function,
            argument,
        },
    )
}

/// Why a task produced no result bytes, as reported by the worker.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The task panicked; the message.
    Panicked(String),
    /// The argument could not be decoded or the result encoded; the reason.
    Serialization(String),
}

impl From<Failure> for crate::pool::task::TaskError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Panicked(message) => Self::Panicked(message),
            Failure::Serialization(reason) => Self::Serialization(reason),
        }
    }
}

/// From a worker to the parent.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum FromWorker {
    /// The worker started; `init_error` says why its initializer failed.
    Ready { init_error: Option<String> },
    /// Task `id` finished with the encoded result, or a failure.
    Done {
        id: u64,
        #[serde(with = "outcome_bytes")]
        outcome: Result<Vec<u8>, Failure>,
    },
    /// Task `id` was cancelled on the board before it started; it never ran.
    Skipped { id: u64 },
}

/// A task's outcome with its result bytes as one serde byte string
/// (`serde_bytes` has no `Result`): serde's own `Result` (variant 0 `Ok`,
/// 1 `Err`) around them, so the same bytes as a plain `Result<Vec<u8>, _>`
/// in postcard, copied in one go instead of one `u8` at a time.
mod outcome_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    use super::Failure;

    pub(super) fn serialize<S: Serializer>(
        outcome: &Result<Vec<u8>, Failure>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        outcome
            .as_ref()
            .map(|bytes| Bytes::new(bytes))
            .serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Result<Vec<u8>, Failure>, D::Error> {
        Ok(Result::<ByteBuf, Failure>::deserialize(deserializer)?.map(ByteBuf::into_vec))
    }
}

/// Writes one frame (not flushed).
pub(crate) fn write_frame(writer: &mut impl Write, message: &impl Serialize) -> io::Result<()> {
    let body = encode_message(message)?;
    write_encoded_frame(writer, &body)
}

/// A message's frame body, to check its length before writing it with
/// [`write_encoded_frame`].
pub(crate) fn encode_message(message: &impl Serialize) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(message)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

/// Writes one frame whose body is already encoded (not flushed).
pub(crate) fn write_encoded_frame(writer: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let length = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "frame too large"))?;
    let mut header = [0u8; 6];
    header[..2].copy_from_slice(&FRAME_MARK);
    header[2..].copy_from_slice(&length.to_le_bytes());
    writer.write_all(&header)?;
    writer.write_all(body)
}

/// What reading a frame can end in, besides a message.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The other side closed the pipe between frames, or in the middle of
    /// a frame's header (it died while writing one: the header says
    /// nothing yet, so this is reported as the end it is, and the parent
    /// learns from the exit status what happened).
    Closed,
    /// The bytes are not a valid frame: truncated, too long, or undecodable.
    Garbled(String),
}

/// Reads one frame of at most `max_frame` bytes and decodes it.
pub(crate) fn read_frame<M: for<'de> Deserialize<'de>>(
    reader: &mut impl Read,
    max_frame: u32,
) -> Result<M, ReadError> {
    let length = read_header(reader, max_frame)?;
    read_body(reader, length, || {})
}

/// Reads a frame's header; returns the body's length, which is at most
/// `max_frame` (a larger one is refused before the body is read).
pub(crate) fn read_header(reader: &mut impl Read, max_frame: u32) -> Result<u32, ReadError> {
    let mut header = [0u8; 6];
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(ReadError::Closed)
        }
        Err(error) => {
            return Err(ReadError::Garbled(format!(
                "reading a frame header failed: {error}"
            )))
        }
    }
    if header[..2] != FRAME_MARK {
        return Err(ReadError::Garbled(format!(
            "a frame starts with {:?} instead of the frame mark",
            &header[..2]
        )));
    }
    let length = u32::from_le_bytes([header[2], header[3], header[4], header[5]]);
    if length > max_frame {
        return Err(ReadError::Garbled(format!(
            "a frame claims {length} bytes, more than the {max_frame} allowed \
             (ProcessPoolBuilder::max_frame_size)"
        )));
    }
    Ok(length)
}

/// Reads and decodes a body of `length` bytes, calling `progress` each
/// time bytes arrive. The buffer grows as bytes arrive, not by what the
/// length claims.
pub(crate) fn read_body<M: for<'de> Deserialize<'de>>(
    reader: &mut impl Read,
    length: u32,
    mut progress: impl FnMut(),
) -> Result<M, ReadError> {
    /// The most the buffer grows by before bytes arrive to fill it.
    const STEP: usize = 64 * 1024;
    let length = length as usize;
    let mut body = Vec::new();
    while body.len() < length {
        // Read straight into the body, zeroing only the part a read may
        // fill (not a whole step for a small frame).
        let filled = body.len();
        body.resize(filled + (length - filled).min(STEP), 0);
        let read = reader.read(&mut body[filled..]);
        body.truncate(filled + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => {
                return Err(ReadError::Garbled(format!(
                    "a frame of {length} bytes was cut short after {filled} bytes"
                )))
            }
            Ok(_) => progress(),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                return Err(ReadError::Garbled(format!(
                    "reading a frame failed: {error}"
                )))
            }
        }
    }
    postcard::from_bytes(&body)
        .map_err(|error| ReadError::Garbled(format!("a frame could not be decoded: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips() {
        let mut bytes = Vec::new();
        let message = FromWorker::Done {
            id: 7,
            outcome: Ok(vec![1, 2, 3]),
        };
        write_frame(&mut bytes, &message).unwrap();
        let read: FromWorker = read_frame(&mut bytes.as_slice(), DEFAULT_MAX_FRAME).unwrap();
        assert!(
            matches!(read, FromWorker::Done { id: 7, outcome: Ok(bytes) } if bytes == [1, 2, 3])
        );
    }

    #[test]
    fn a_task_frame_written_from_a_borrowed_argument_is_a_task_frame() {
        let mut borrowed = Vec::new();
        write_task_frame(&mut borrowed, 300, -5, &[9; 200]).unwrap();
        let mut owned = Vec::new();
        let task = ToWorker::Task {
            id: 300,
            function: -5,
            argument: vec![9; 200],
        };
        write_frame(&mut owned, &task).unwrap();
        assert_eq!(borrowed, owned);
        let read: ToWorker = read_frame(&mut borrowed.as_slice(), DEFAULT_MAX_FRAME).unwrap();
        assert!(matches!(
            read,
            ToWorker::Task { id: 300, function: -5, argument } if argument == [9; 200]
        ));
    }

    /// A body that arrives in pieces (and one read interrupted) is read
    /// whole; one that ends early is garbled.
    #[test]
    fn a_body_read_in_pieces_is_whole() {
        struct Trickle<'a> {
            bytes: &'a [u8],
            calls: usize,
        }
        impl Read for Trickle<'_> {
            fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
                self.calls += 1;
                if self.calls.is_multiple_of(3) {
                    return Err(io::Error::from(io::ErrorKind::Interrupted));
                }
                let count = buffer.len().min(self.bytes.len()).min(7);
                buffer[..count].copy_from_slice(&self.bytes[..count]);
                self.bytes = &self.bytes[count..];
                Ok(count)
            }
        }
        let message = FromWorker::Done {
            id: 1,
            outcome: Ok((0..=255).collect()),
        };
        let body = encode_message(&message).unwrap();
        let mut progress = 0;
        let mut reader = Trickle {
            bytes: &body,
            calls: 0,
        };
        let read: FromWorker =
            read_body(&mut reader, body.len() as u32, || progress += 1).expect("the whole body");
        assert!(
            matches!(read, FromWorker::Done { id: 1, outcome: Ok(bytes) } if bytes.len() == 256)
        );
        assert_eq!(progress, body.len().div_ceil(7));
        let mut short = Trickle {
            bytes: &body[..body.len() - 1],
            calls: 0,
        };
        assert!(matches!(
            read_body::<FromWorker>(&mut short, body.len() as u32, || {}),
            Err(ReadError::Garbled(_))
        ));
    }

    #[test]
    fn truncated_and_oversized_frames_are_garbled_not_panics() {
        let mut bytes = Vec::new();
        write_frame(&mut bytes, &FromWorker::Ready { init_error: None }).unwrap();
        bytes.pop();
        assert!(matches!(
            read_frame::<FromWorker>(&mut bytes.as_slice(), DEFAULT_MAX_FRAME),
            Err(ReadError::Garbled(_))
        ));
        let mut huge = FRAME_MARK.to_vec();
        huge.extend(u32::MAX.to_le_bytes());
        assert!(matches!(
            read_frame::<FromWorker>(&mut huge.as_slice(), DEFAULT_MAX_FRAME),
            Err(ReadError::Garbled(_))
        ));
        let unmarked = [0u8, 0, 0, 0, 0, 0];
        assert!(matches!(
            read_frame::<FromWorker>(&mut unmarked.as_slice(), DEFAULT_MAX_FRAME),
            Err(ReadError::Garbled(_))
        ));
        assert!(matches!(
            read_frame::<FromWorker>(&mut [].as_slice(), DEFAULT_MAX_FRAME),
            Err(ReadError::Closed)
        ));
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_by_its_header() {
        let mut bytes = Vec::new();
        let message = FromWorker::Done {
            id: 1,
            outcome: Ok(vec![7; 100]),
        };
        write_frame(&mut bytes, &message).unwrap();
        // The header alone decides: no body follows it here.
        let header = &bytes[..6];
        match read_frame::<FromWorker>(&mut &header[..], 50) {
            Err(ReadError::Garbled(reason)) => {
                assert!(reason.contains("max_frame_size"), "{reason}")
            }
            other => panic!("expected Garbled, got {other:?}"),
        }
        let read: FromWorker = read_frame(&mut bytes.as_slice(), 200).unwrap();
        assert!(matches!(read, FromWorker::Done { id: 1, .. }));
    }

    /// Concatenates the parts of an expected encoding.
    fn concat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// Byte strings of 0, 1 and 300 bytes (300 needs a two-byte varint
    /// length: `0xAC 0x02`), with their postcard encodings.
    fn byte_strings() -> Vec<(Vec<u8>, Vec<u8>)> {
        let long: Vec<u8> = (0..300).map(|index| index as u8).collect();
        vec![
            (vec![], vec![0x00]),
            (vec![0xFE], vec![0x01, 0xFE]),
            (long.clone(), concat(&[&[0xAC, 0x02], &long])),
        ]
    }

    /// Encodes `message`, checks the bytes, decodes them and checks that
    /// what was decoded encodes to the same bytes again; every cut of the
    /// bytes fails to decode.
    fn assert_wire<M: Serialize + for<'de> Deserialize<'de>>(message: &M, expected: &[u8]) {
        let encoded = encode_message(message).unwrap();
        assert_eq!(encoded, expected);
        let decoded: M = postcard::from_bytes(&encoded).unwrap();
        assert_eq!(encode_message(&decoded).unwrap(), expected);
        for cut in 0..expected.len() {
            assert!(
                postcard::from_bytes::<M>(&expected[..cut]).is_err(),
                "{cut} of {} bytes decoded",
                expected.len()
            );
        }
    }

    /// The exact bytes of each message on the wire (postcard: enum
    /// variants and lengths as varints, `i64` zigzagged, a byte string as
    /// a varint length and the bytes), so that a change of how the bytes
    /// are serialized cannot change the protocol unnoticed.
    #[test]
    fn the_wire_bytes_are_pinned() {
        // Board { name: "b" }: variant 0, the name.
        assert_wire(&ToWorker::Board { name: "b".into() }, &[0x00, 0x01, b'b']);
        for (argument, encoded_argument) in byte_strings() {
            // Task: variant 1, id 300, function -5 (zigzag 9), argument.
            let expected = concat(&[&[0x01, 0xAC, 0x02, 0x09], &encoded_argument]);
            assert_wire(
                &ToWorker::Task {
                    id: 300,
                    function: -5,
                    argument: argument.clone(),
                },
                &expected,
            );
            // The borrowed writer's frame: the mark, the length, the same body.
            let mut frame = Vec::new();
            write_task_frame(&mut frame, 300, -5, &argument).unwrap();
            let length = (expected.len() as u32).to_le_bytes();
            assert_eq!(frame, concat(&[b"vs", &length, &expected]));

            // Done { id: 7, outcome: Ok(bytes) }: variant 1, id, Ok (0), bytes.
            assert_wire(
                &FromWorker::Done {
                    id: 7,
                    outcome: Ok(argument),
                },
                &concat(&[&[0x01, 0x07, 0x00], &encoded_argument]),
            );
        }
        // Done with a failure: Err (1), then Failure's variant and message.
        assert_wire(
            &FromWorker::Done {
                id: 7,
                outcome: Err(Failure::Panicked("boom".into())),
            },
            &concat(&[&[0x01, 0x07, 0x01, 0x00, 0x04], b"boom"]),
        );
        assert_wire(
            &FromWorker::Done {
                id: 128,
                outcome: Err(Failure::Serialization("x".into())),
            },
            &[0x01, 0x80, 0x01, 0x01, 0x01, 0x01, b'x'],
        );
        assert_wire(&FromWorker::Ready { init_error: None }, &[0x00, 0x00]);
        assert_wire(
            &FromWorker::Ready {
                init_error: Some("no".into()),
            },
            &[0x00, 0x01, 0x02, b'n', b'o'],
        );
        assert_wire(&FromWorker::Skipped { id: 5 }, &[0x02, 0x05]);
    }

    /// A chunk's answer: `nanos`, then its outcomes as one byte string.
    #[test]
    fn a_chunk_outcomes_wire_bytes_are_pinned() {
        use super::super::chunk::ChunkOutcome;
        // A result of 1 byte, a panic, an empty result, a serialization
        // failure (kind, varint length, payload each: see `chunk.rs`).
        let several = concat(&[&[0, 1, 42, 1, 4], b"boom", &[0, 0, 2, 1], b"x"]);
        let mut cases = byte_strings();
        cases.push((several.clone(), concat(&[&[several.len() as u8], &several])));
        for (outcomes, encoded_outcomes) in cases {
            // nanos 1000 is the varint 0xE8 0x07.
            let expected = concat(&[&[0xE8, 0x07], &encoded_outcomes]);
            assert_wire(
                &ChunkOutcome {
                    nanos: 1000,
                    outcomes: outcomes.clone(),
                },
                &expected,
            );
            // And inside the Done that carries it.
            let answer = encode_message(&ChunkOutcome {
                nanos: 1000,
                outcomes,
            })
            .unwrap();
            let mut done = vec![0x01, 0x03, 0x00];
            done.extend(postcard::to_allocvec(&answer.len()).unwrap());
            done.extend(&expected);
            assert_wire(
                &FromWorker::Done {
                    id: 3,
                    outcome: Ok(answer),
                },
                &done,
            );
        }
        let decoded: ChunkOutcome =
            postcard::from_bytes(&concat(&[&[0xE8, 0x07, several.len() as u8], &several])).unwrap();
        let items: Vec<_> = decoded
            .items()
            .unwrap()
            .map(|item| item.map(<[u8]>::to_vec))
            .collect();
        assert_eq!(
            items,
            [
                Ok(vec![42]),
                Err(Failure::Panicked("boom".into())),
                Ok(vec![]),
                Err(Failure::Serialization("x".into())),
            ]
        );
    }

    #[test]
    fn a_header_cut_short_is_closed() {
        for cut in 1..6 {
            let mut bytes = Vec::new();
            write_frame(&mut bytes, &FromWorker::Ready { init_error: None }).unwrap();
            bytes.truncate(cut);
            assert!(
                matches!(
                    read_frame::<FromWorker>(&mut bytes.as_slice(), DEFAULT_MAX_FRAME),
                    Err(ReadError::Closed)
                ),
                "a header cut after {cut} bytes"
            );
        }
    }
}
