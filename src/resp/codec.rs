//! A client connection's byte stream cut into commands, and replies turned into bytes:
//! the `tokio_util` codec of the RESP2 client port.
//!
//! Decoding yields one command at a time as its argument list (`[b"SET", b"k", b"v"]`).
//! It reads both forms Redis reads: multibulk requests (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`,
//! what every client library and redis-cli send) and inline lines (`GET k\r\n`, what a
//! person types into telnet). A frame that has not fully arrived is left in the buffer
//! and `Ok(None)` returned; many frames in one buffer (pipelining) come out one per call.
//! Empty commands (a blank line, `*0`, `*-1`) are skipped, as Redis does.
//!
//! A protocol violation is a [`RespError::Protocol`] whose text is Redis's
//! (`Protocol error: invalid bulk length`); the session answers it with
//! [`RespError::reply`] and closes the connection, as Redis does. Sizes are bounded by
//! [`RespLimits`] so that no client can make the decoder hold unbounded memory.
//!
//! A long multibulk request is not re-read from its start each time more bytes arrive:
//! the codec remembers how far it has parsed the frame still sitting at the front of the
//! buffer. This assumes it is always handed the same buffer, as `Framed` does.

use super::inline::split_inline;
use super::integer::parse_i64;
use super::value::RespValue;
use crate::core::blob::Blob;
use bytes::{Buf, BytesMut};
use std::ops::Range;
use tokio_util::codec::{Decoder, Encoder};

/// The longest bulk argument by default (Redis allows 512 MiB; colony keeps cells small).
pub const DEFAULT_MAX_BULK_LEN: usize = 64 << 20;
/// The most arguments one command may have by default.
pub const DEFAULT_MAX_ARGS: usize = 1 << 20;
/// The longest inline line by default (Redis's `PROTO_INLINE_MAX_SIZE`).
pub const DEFAULT_MAX_INLINE_LEN: usize = 64 << 10;
/// The largest whole request by default (Redis's `client-query-buffer-limit`).
pub const DEFAULT_MAX_REQUEST_LEN: usize = 1 << 30;

/// The longest `*N` or `$N` line read before giving up: a sign and 19 digits, with room.
const MAX_LENGTH_LINE: usize = 32;
/// Argument slots allocated up front for a multibulk request, whatever its `*N` claims.
const PREALLOCATED_ARGS: usize = 1024;

/// Bounds on what one client request may make the decoder hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RespLimits {
    /// The longest bulk argument (`$N`).
    pub max_bulk_len: usize,
    /// The most arguments in one command (`*N`, or words on an inline line).
    pub max_args: usize,
    /// The longest inline line.
    pub max_inline_len: usize,
    /// The largest multibulk request, all arguments together.
    pub max_request_len: usize,
}

impl Default for RespLimits {
    fn default() -> Self {
        RespLimits {
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_args: DEFAULT_MAX_ARGS,
            max_inline_len: DEFAULT_MAX_INLINE_LEN,
            max_request_len: DEFAULT_MAX_REQUEST_LEN,
        }
    }
}

/// Why a connection's stream cannot be read further.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// The client broke the protocol; the text is Redis's, e.g. `Protocol error: invalid
    /// bulk length`. Answer [`RespError::reply`] and close.
    #[error("{0}")]
    Protocol(String),
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl RespError {
    fn protocol(what: &str) -> RespError {
        RespError::Protocol(format!("Protocol error: {what}"))
    }

    /// What to send before closing: `-ERR Protocol error: ...`. `None` for an I/O error.
    pub fn reply(&self) -> Option<RespValue> {
        match self {
            RespError::Protocol(text) => Some(RespValue::Error(format!("ERR {text}"))),
            RespError::Io(_) => None,
        }
    }
}

/// The RESP2 codec of one client connection. See the module doc.
#[derive(Debug, Default)]
pub struct RespCodec {
    limits: RespLimits,
    partial: Partial,
}

/// How far the frame at the front of the buffer has been read.
#[derive(Debug, Default)]
enum Partial {
    #[default]
    Nothing,
    MultiBulk(MultiBulkProgress),
    /// An inline line: bytes already searched for its newline.
    Inline {
        searched: usize,
    },
}

#[derive(Debug)]
struct MultiBulkProgress {
    /// Arguments still to read.
    remaining: usize,
    /// Buffer offset just past the last complete argument.
    parsed_until: usize,
    /// Where each argument read so far lies in the buffer.
    args: Vec<Range<usize>>,
}

/// The outcome of reading at the front of the buffer.
enum Step {
    Incomplete,
    /// An empty command was consumed.
    Skipped,
    Command(Vec<Blob>),
}

/// A `*N` or `$N` line.
enum LengthLine {
    Incomplete,
    Invalid,
    TooLong,
    Complete { value: i64, next: usize },
}

impl RespCodec {
    /// A codec with the default [`RespLimits`].
    pub fn new() -> RespCodec {
        RespCodec::default()
    }

    pub fn with_limits(limits: RespLimits) -> RespCodec {
        RespCodec {
            limits,
            partial: Partial::Nothing,
        }
    }

    pub fn limits(&self) -> RespLimits {
        self.limits
    }

    fn decode_multibulk(&mut self, buf: &mut BytesMut) -> Result<Step, RespError> {
        let mut progress = match std::mem::take(&mut self.partial) {
            Partial::MultiBulk(progress) if progress.parsed_until <= buf.len() => progress,
            _ => match read_length_line(buf, 1) {
                LengthLine::Incomplete => return Ok(Step::Incomplete),
                LengthLine::Invalid => return Err(RespError::protocol("invalid multibulk length")),
                LengthLine::TooLong => {
                    return Err(RespError::protocol("too big mbulk count string"))
                }
                LengthLine::Complete { value, next } => {
                    if value <= 0 {
                        buf.advance(next);
                        return Ok(Step::Skipped);
                    }
                    let count = usize::try_from(value)
                        .ok()
                        .filter(|count| *count <= self.limits.max_args)
                        .ok_or_else(|| RespError::protocol("invalid multibulk length"))?;
                    MultiBulkProgress {
                        remaining: count,
                        parsed_until: next,
                        args: Vec::with_capacity(count.min(PREALLOCATED_ARGS)),
                    }
                }
            },
        };
        while progress.remaining > 0 {
            let at = progress.parsed_until;
            match buf.get(at) {
                None => {
                    self.partial = Partial::MultiBulk(progress);
                    return Ok(Step::Incomplete);
                }
                Some(b'$') => {}
                Some(&other) => {
                    return Err(RespError::protocol(&format!(
                        "expected '$', got '{}'",
                        shown(other)
                    )))
                }
            }
            let (len, data_start) = match read_length_line(buf, at + 1) {
                LengthLine::Incomplete => {
                    self.partial = Partial::MultiBulk(progress);
                    return Ok(Step::Incomplete);
                }
                LengthLine::Invalid => return Err(RespError::protocol("invalid bulk length")),
                LengthLine::TooLong => {
                    return Err(RespError::protocol("too big bulk count string"))
                }
                LengthLine::Complete { value, next } => {
                    let len = usize::try_from(value)
                        .ok()
                        .filter(|len| *len <= self.limits.max_bulk_len)
                        .ok_or_else(|| RespError::protocol("invalid bulk length"))?;
                    (len, next)
                }
            };
            let data_end = data_start
                .checked_add(len)
                .ok_or_else(|| RespError::protocol("too big request"))?;
            let frame_end = data_end
                .checked_add(2)
                .filter(|end| *end <= self.limits.max_request_len)
                .ok_or_else(|| RespError::protocol("too big request"))?;
            if buf.len() < frame_end {
                buf.reserve(frame_end - buf.len());
                self.partial = Partial::MultiBulk(progress);
                return Ok(Step::Incomplete);
            }
            if buf.get(data_end..frame_end) != Some(&b"\r\n"[..]) {
                return Err(RespError::protocol("expected CRLF after bulk data"));
            }
            progress.args.push(data_start..data_end);
            progress.parsed_until = frame_end;
            progress.remaining -= 1;
        }
        // Each argument is copied into a blob of its own: a value kept for hours must
        // not pin the read buffer it arrived in.
        let args = progress
            .args
            .into_iter()
            .map(|range| buf.get(range).map(Blob::from).unwrap_or_default())
            .collect();
        buf.advance(progress.parsed_until);
        Ok(Step::Command(args))
    }

    fn decode_inline(&mut self, buf: &mut BytesMut) -> Result<Step, RespError> {
        let searched = match std::mem::take(&mut self.partial) {
            Partial::Inline { searched } if searched <= buf.len() => searched,
            _ => 0,
        };
        let newline = buf
            .get(searched..)
            .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
            .map(|offset| searched + offset);
        let Some(newline) = newline else {
            if buf.len() > self.limits.max_inline_len {
                return Err(RespError::protocol("too big inline request"));
            }
            self.partial = Partial::Inline {
                searched: buf.len(),
            };
            return Ok(Step::Incomplete);
        };
        if newline > self.limits.max_inline_len {
            return Err(RespError::protocol("too big inline request"));
        }
        let line = buf.split_to(newline + 1);
        let text = line.get(..newline).unwrap_or_default();
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let args =
            split_inline(text).map_err(|_| RespError::protocol("unbalanced quotes in request"))?;
        if args.is_empty() {
            Ok(Step::Skipped)
        } else if args.len() > self.limits.max_args {
            Err(RespError::protocol("too many arguments in inline request"))
        } else {
            Ok(Step::Command(args))
        }
    }
}

/// Reads the decimal line starting at `start` (just after `*` or `$`). Gives up early on
/// a byte that cannot be part of a length, so garbage is refused at once.
fn read_length_line(buf: &[u8], start: usize) -> LengthLine {
    let mut at = start;
    loop {
        if at - start > MAX_LENGTH_LINE {
            return LengthLine::TooLong;
        }
        match buf.get(at) {
            None => return LengthLine::Incomplete,
            Some(b'\r') => {
                return match buf.get(at + 1) {
                    None => LengthLine::Incomplete,
                    Some(b'\n') => match buf.get(start..at).and_then(parse_i64) {
                        Some(value) => LengthLine::Complete {
                            value,
                            next: at + 2,
                        },
                        None => LengthLine::Invalid,
                    },
                    Some(_) => LengthLine::Invalid,
                }
            }
            Some(b'0'..=b'9' | b'-') => at += 1,
            Some(_) => return LengthLine::Invalid,
        }
    }
}

/// A byte as Redis's `%c` would show it, escaped if not printable.
fn shown(byte: u8) -> String {
    if byte.is_ascii_graphic() || byte == b' ' {
        char::from(byte).to_string()
    } else {
        format!("\\x{byte:02x}")
    }
}

impl Decoder for RespCodec {
    type Item = Vec<Blob>;
    type Error = RespError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Blob>>, RespError> {
        loop {
            let step = match buf.first() {
                None => {
                    self.partial = Partial::Nothing;
                    return Ok(None);
                }
                Some(b'*') => self.decode_multibulk(buf)?,
                Some(_) => self.decode_inline(buf)?,
            };
            match step {
                Step::Incomplete => return Ok(None),
                // Every skip consumed bytes, so this loop ends.
                Step::Skipped => continue,
                Step::Command(args) => return Ok(Some(args)),
            }
        }
    }

    /// The client hung up: a request cut short is dropped without complaint (Redis does
    /// the same), rather than reported as an error.
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Blob>>, RespError> {
        let decoded = self.decode(buf)?;
        if decoded.is_none() {
            buf.clear();
            self.partial = Partial::Nothing;
        }
        Ok(decoded)
    }
}

impl Encoder<RespValue> for RespCodec {
    type Error = RespError;

    fn encode(&mut self, reply: RespValue, out: &mut BytesMut) -> Result<(), RespError> {
        reply.encode_into(out);
        Ok(())
    }
}

impl Encoder<&RespValue> for RespCodec {
    type Error = RespError;

    fn encode(&mut self, reply: &RespValue, out: &mut BytesMut) -> Result<(), RespError> {
        reply.encode_into(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn args(words: &[&str]) -> Vec<Blob> {
        words.iter().map(|w| Blob::from(*w)).collect()
    }

    fn pack(args: &[Blob]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// Every command in `input`, decoded from one buffer; then what is left over.
    fn decode_all(codec: &mut RespCodec, input: &[u8]) -> (Vec<Vec<Blob>>, Result<(), String>) {
        let mut buf = BytesMut::from(input);
        let mut commands = Vec::new();
        for _ in 0..=input.len() {
            match codec.decode(&mut buf) {
                Ok(Some(command)) => commands.push(command),
                Ok(None) => return (commands, Ok(())),
                Err(e) => return (commands, Err(e.to_string())),
            }
        }
        panic!("the decoder did not stop");
    }

    fn decode_error(input: &[u8]) -> String {
        decode_error_with(RespLimits::default(), input)
    }

    fn decode_error_with(limits: RespLimits, input: &[u8]) -> String {
        let (_, result) = decode_all(&mut RespCodec::with_limits(limits), input);
        result.expect_err("a protocol error")
    }

    /// Feeds `input` one byte at a time and collects what comes out.
    fn decode_bytewise(input: &[u8]) -> (Vec<Vec<Blob>>, Result<(), String>) {
        let mut codec = RespCodec::new();
        let mut buf = BytesMut::new();
        let mut commands = Vec::new();
        for byte in input {
            buf.extend_from_slice(&[*byte]);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(command)) => commands.push(command),
                    Ok(None) => break,
                    Err(e) => return (commands, Err(e.to_string())),
                }
            }
        }
        (commands, Ok(()))
    }

    #[test]
    fn multibulk_request() {
        let mut codec = RespCodec::new();
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\r\nb\0\r\n"[..]);
        let command = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(
            command,
            vec![b"SET".to_vec(), b"k".to_vec(), b"a\r\nb\0".to_vec()]
        );
        assert!(buf.is_empty());
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn empty_bulk_argument() {
        let (commands, result) =
            decode_all(&mut RespCodec::new(), b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n");
        assert_eq!(commands, vec![vec![b"ECHO".to_vec(), Vec::new()]]);
        assert!(result.is_ok());
    }

    #[test]
    fn inline_commands() {
        let (commands, result) = decode_all(
            &mut RespCodec::new(),
            b"PING\r\nping\nset k \"a b\"\r\n  get   k  \r\n",
        );
        assert!(result.is_ok());
        assert_eq!(
            commands,
            vec![
                args(&["PING"]),
                args(&["ping"]),
                args(&["set", "k", "a b"]),
                args(&["get", "k"])
            ]
        );
    }

    #[test]
    fn empty_commands_are_skipped() {
        let (commands, result) =
            decode_all(&mut RespCodec::new(), b"\r\n\n   \r\n*0\r\n*-1\r\nPING\r\n");
        assert!(result.is_ok());
        assert_eq!(commands, vec![args(&["PING"])]);
    }

    #[test]
    fn pipelined_commands_come_out_in_order() {
        let mut input = Vec::new();
        for i in 0..100 {
            input.extend(pack(&args(&["SET", &format!("k{i}"), "v"])));
            input.extend(format!("GET k{i}\r\n").as_bytes());
        }
        let (commands, result) = decode_all(&mut RespCodec::new(), &input);
        assert!(result.is_ok());
        assert_eq!(commands.len(), 200);
        assert_eq!(commands[198], args(&["SET", "k99", "v"]));
        assert_eq!(commands[199], args(&["GET", "k99"]));
    }

    #[test]
    fn a_partial_frame_stays_in_the_buffer() {
        let frame = pack(&args(&["SET", "key", "value"]));
        for cut in 0..frame.len() {
            let mut codec = RespCodec::new();
            let mut buf = BytesMut::from(&frame[..cut]);
            assert_eq!(codec.decode(&mut buf).unwrap(), None, "cut at {cut}");
            assert_eq!(&buf[..], &frame[..cut], "nothing consumed at {cut}");
            buf.extend_from_slice(&frame[cut..]);
            assert_eq!(
                codec.decode(&mut buf).unwrap(),
                Some(args(&["SET", "key", "value"]))
            );
        }
        let mut codec = RespCodec::new();
        let mut buf = BytesMut::from(&b"GET k"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(&buf[..], b"GET k");
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_commands() {
        let mut input = Vec::new();
        input.extend(pack(&args(&["SET", "k", "v\r\n*1\r\n"])));
        input.extend(b"PING\r\n\r\nECHO 'a b' \"\\x41\"\n");
        input.extend(b"*0\r\n");
        input.extend(pack(&args(&["MSET", "a", "1", "b", "", "c", "3"])));
        input.extend(pack(&[vec![0u8; 300].into(), b"x".into()]));
        let whole = decode_all(&mut RespCodec::new(), &input);
        let bytewise = decode_bytewise(&input);
        assert!(whole.1.is_ok());
        assert_eq!(whole.0.len(), 5);
        assert_eq!(whole, bytewise);
    }

    #[test]
    fn redis_rs_packed_commands_decode() {
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg("k").arg(b"\x00\xff").arg("EX").arg(10);
        pipe.cmd("CLIENT")
            .arg("SETINFO")
            .arg("LIB-NAME")
            .arg("redis-rs");
        pipe.cmd("MGET").arg(&["a", "b", "c"]);
        let (commands, result) = decode_all(&mut RespCodec::new(), &pipe.get_packed_pipeline());
        assert!(result.is_ok());
        assert_eq!(
            commands,
            vec![
                vec![
                    b"SET".into(),
                    b"k".into(),
                    b"\x00\xff".into(),
                    b"EX".into(),
                    b"10".into()
                ],
                args(&["CLIENT", "SETINFO", "LIB-NAME", "redis-rs"]),
                args(&["MGET", "a", "b", "c"]),
            ]
        );
    }

    #[test]
    fn protocol_errors_have_redis_texts() {
        let cases: &[(&[u8], &str)] = &[
            (b"*abc\r\n", "Protocol error: invalid multibulk length"),
            (b"*1x\r\n", "Protocol error: invalid multibulk length"),
            (b"*+1\r\n", "Protocol error: invalid multibulk length"),
            (b"*01\r\n", "Protocol error: invalid multibulk length"),
            (b"*\r\n", "Protocol error: invalid multibulk length"),
            (b"*1\rx", "Protocol error: invalid multibulk length"),
            (b"*1\n", "Protocol error: invalid multibulk length"),
            (b"*-\r\n", "Protocol error: invalid multibulk length"),
            (
                b"*123456789012345678901234567890123456\r\n",
                "Protocol error: too big mbulk count string",
            ),
            (b"*1\r\n:5\r\n", "Protocol error: expected '$', got ':'"),
            (b"*1\r\n\x01", "Protocol error: expected '$', got '\\x01'"),
            (b"*1\r\n$abc\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\n$ 3\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\n$3\rfoo", "Protocol error: invalid bulk length"),
            (
                b"*1\r\n$9223372036854775808\r\n",
                "Protocol error: invalid bulk length",
            ),
            (
                b"*1\r\n$1111111111111111111111111111111111111\r\n",
                "Protocol error: too big bulk count string",
            ),
            (
                b"*1\r\n$3\r\nfooXY",
                "Protocol error: expected CRLF after bulk data",
            ),
            (
                b"*1\r\n$3\r\nfoo\n\r",
                "Protocol error: expected CRLF after bulk data",
            ),
            (
                b"*2\r\n$3\r\nfoo\r\n$3\r\nbar\r\r",
                "Protocol error: expected CRLF after bulk data",
            ),
            (
                b"SET k \"abc\r\n",
                "Protocol error: unbalanced quotes in request",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                decode_error(input),
                *expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn the_error_reply_is_err_protocol_error() {
        let error = RespError::Protocol("Protocol error: invalid bulk length".into());
        assert_eq!(
            error.reply(),
            Some(RespValue::Error(
                "ERR Protocol error: invalid bulk length".into()
            ))
        );
        assert_eq!(RespError::Io(std::io::Error::other("x")).reply(), None);
    }

    #[test]
    fn a_bulk_over_the_limit_is_refused_before_it_arrives() {
        let limits = RespLimits {
            max_bulk_len: 10,
            ..RespLimits::default()
        };
        assert_eq!(
            decode_error_with(limits, b"*1\r\n$11\r\n"),
            "Protocol error: invalid bulk length"
        );
        let (commands, result) = decode_all(
            &mut RespCodec::with_limits(limits),
            &pack(&[vec![b'x'; 10].into()]),
        );
        assert!(result.is_ok());
        assert_eq!(commands, vec![vec![vec![b'x'; 10]]]);
        let default = RespCodec::new().limits();
        let header = format!("*1\r\n${}\r\n", DEFAULT_MAX_BULK_LEN + 1);
        assert_eq!(default.max_bulk_len, 64 << 20);
        assert_eq!(
            decode_error(header.as_bytes()),
            "Protocol error: invalid bulk length"
        );
    }

    #[test]
    fn too_many_arguments_are_refused() {
        let limits = RespLimits {
            max_args: 3,
            ..RespLimits::default()
        };
        assert_eq!(
            decode_error_with(limits, b"*4\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            decode_error_with(limits, b"a b c d\r\n"),
            "Protocol error: too many arguments in inline request"
        );
        let header = format!("*{}\r\n", DEFAULT_MAX_ARGS + 1);
        assert_eq!(
            decode_error(header.as_bytes()),
            "Protocol error: invalid multibulk length"
        );
        let header = format!("*{DEFAULT_MAX_ARGS}\r\n");
        let (commands, result) = decode_all(&mut RespCodec::new(), header.as_bytes());
        assert!(
            commands.is_empty() && result.is_ok(),
            "the maximum itself is allowed"
        );
    }

    #[test]
    fn a_too_long_inline_line_is_refused() {
        let mut line = vec![b'a'; DEFAULT_MAX_INLINE_LEN + 1];
        assert_eq!(
            decode_error(&line),
            "Protocol error: too big inline request"
        );
        line.extend_from_slice(b"\r\n");
        assert_eq!(
            decode_error(&line),
            "Protocol error: too big inline request"
        );
        let mut fits = vec![b'a'; DEFAULT_MAX_INLINE_LEN - 1];
        fits.extend_from_slice(b"\r\n");
        let (commands, result) = decode_all(&mut RespCodec::new(), &fits);
        assert!(result.is_ok());
        assert_eq!(commands.len(), 1);
    }

    #[test]
    fn a_request_over_the_total_limit_is_refused() {
        let limits = RespLimits {
            max_request_len: 30,
            ..RespLimits::default()
        };
        assert_eq!(
            decode_error_with(limits, b"*2\r\n$10\r\n0123456789\r\n$10\r\n"),
            "Protocol error: too big request"
        );
    }

    #[test]
    fn eof_mid_request_is_quiet() {
        let mut codec = RespCodec::new();
        let mut buf = BytesMut::from(&b"PING\r\n*2\r\n$3\r\nGET"[..]);
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), Some(args(&["PING"])));
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
    }

    #[test]
    fn encodes_replies_by_value_and_by_reference() {
        let mut codec = RespCodec::new();
        let mut out = BytesMut::new();
        codec.encode(RespValue::ok(), &mut out).unwrap();
        codec.encode(&RespValue::Int(3), &mut out).unwrap();
        assert_eq!(&out[..], b"+OK\r\n:3\r\n");
    }

    fn any_args() -> impl Strategy<Value = Vec<Blob>> {
        proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Blob::from),
            1..6,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic_or_spin(
            input in proptest::collection::vec(any::<u8>(), 0..256),
            chunk in 1usize..32,
        ) {
            let limits = RespLimits { max_bulk_len: 64, max_args: 8, max_inline_len: 64, max_request_len: 256 };
            let mut codec = RespCodec::with_limits(limits);
            let mut buf = BytesMut::new();
            let mut calls = 0;
            'feed: for piece in input.chunks(chunk) {
                buf.extend_from_slice(piece);
                loop {
                    calls += 1;
                    prop_assert!(calls <= input.len() + input.len() / chunk + 2);
                    match codec.decode(&mut buf) {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }

        #[test]
        fn arbitrary_resp_like_bytes_never_panic(
            pieces in proptest::collection::vec(prop_oneof![
                Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"\r\n".to_vec()),
                Just(b"-1".to_vec()), Just(b"0".to_vec()), Just(b"3".to_vec()),
                Just(b"abc".to_vec()), Just(b"\"".to_vec()), Just(b" ".to_vec()),
            ], 0..64),
        ) {
            let input = pieces.concat();
            let _ = decode_all(&mut RespCodec::new(), &input);
            let _ = decode_bytewise(&input);
        }

        #[test]
        fn packed_commands_split_anywhere_decode_the_same(
            commands in proptest::collection::vec(any_args(), 1..5),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let input: Vec<u8> = commands.iter().flat_map(|c| pack(c)).collect();
            let mut cut_points: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
            cut_points.push(input.len());
            cut_points.sort_unstable();
            let mut codec = RespCodec::new();
            let mut buf = BytesMut::new();
            let mut decoded = Vec::new();
            let mut from = 0;
            for to in cut_points {
                buf.extend_from_slice(&input[from..to]);
                from = to;
                while let Some(command) = codec.decode(&mut buf).unwrap() {
                    decoded.push(command);
                }
            }
            prop_assert_eq!(decoded, commands);
            prop_assert!(buf.is_empty());
        }
    }
}
