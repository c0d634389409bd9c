//! What colony answers a client: the RESP2 reply types and their bytes on the wire.
//!
//! Simple strings and errors are one line on the wire, so any CR or LF in their text is
//! written as a space (as Redis does for error texts); a reply can never inject a second
//! reply into the stream.

use crate::core::blob::Blob;
use bytes::{BufMut, BytesMut};
use std::borrow::Cow;

/// One RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RespValue {
    /// `+OK` (borrowed when the text is fixed, as most are: no allocation per reply)
    Simple(Cow<'static, str>),
    /// `-ERR unknown command ...`: the text after the `-`, starting with the error code.
    Error(String),
    /// `:42`
    Int(i64),
    /// `$3\r\nfoo`
    Bulk(Blob),
    /// The null bulk string, `$-1`.
    Nil,
    /// `*2\r\n...`
    Array(Vec<RespValue>),
    /// The null array, `*-1`.
    NilArray,
}

impl RespValue {
    /// `+OK`
    pub fn ok() -> RespValue {
        RespValue::Simple(Cow::Borrowed("OK"))
    }

    /// An error reply; `text` starts with the error code (`ERR`, `WRONGTYPE`, ...).
    pub fn error(text: impl Into<String>) -> RespValue {
        RespValue::Error(text.into())
    }

    /// Append this reply's wire bytes to `out`.
    pub fn encode_into(&self, out: &mut BytesMut) {
        match self {
            RespValue::Simple(text) => put_line(out, b'+', text),
            RespValue::Error(text) => put_line(out, b'-', text),
            RespValue::Int(n) => {
                out.put_u8(b':');
                put_decimal(out, *n);
                out.put_slice(b"\r\n");
            }
            RespValue::Bulk(data) => {
                out.reserve(data.len() + 16);
                out.put_u8(b'$');
                put_unsigned(out, data.len() as u64);
                out.put_slice(b"\r\n");
                out.put_slice(data);
                out.put_slice(b"\r\n");
            }
            RespValue::Nil => out.put_slice(b"$-1\r\n"),
            RespValue::Array(items) => {
                out.put_u8(b'*');
                put_unsigned(out, items.len() as u64);
                out.put_slice(b"\r\n");
                for item in items {
                    item.encode_into(out);
                }
            }
            RespValue::NilArray => out.put_slice(b"*-1\r\n"),
        }
    }

    /// This reply's wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = BytesMut::new();
        self.encode_into(&mut out);
        out.to_vec()
    }
}

/// `prefix`, `text` with CR and LF turned into spaces, CRLF.
fn put_line(out: &mut BytesMut, prefix: u8, text: &str) {
    out.reserve(text.len() + 3);
    out.put_u8(prefix);
    for &byte in text.as_bytes() {
        out.put_u8(if byte == b'\r' || byte == b'\n' {
            b' '
        } else {
            byte
        });
    }
    out.put_slice(b"\r\n");
}

fn put_decimal(out: &mut BytesMut, n: i64) {
    if n < 0 {
        out.put_u8(b'-');
    }
    put_unsigned(out, n.unsigned_abs());
}

fn put_unsigned(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[start..]);
}

/// A test-only reader of replies, to check that what we write reads back the same.
#[cfg(test)]
pub(crate) mod read_back {
    use super::RespValue;

    /// The reply at the start of `input` and the bytes it took, or `None` if malformed
    /// or incomplete.
    pub fn read(input: &[u8]) -> Option<(RespValue, usize)> {
        let (&kind, _) = input.split_first()?;
        let line_end = input.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&input[1..line_end]).ok()?;
        let after_line = line_end + 2;
        match kind {
            b'+' => Some((RespValue::Simple(line.to_string().into()), after_line)),
            b'-' => Some((RespValue::Error(line.to_string()), after_line)),
            b':' => Some((RespValue::Int(line.parse().ok()?), after_line)),
            b'$' if line == "-1" => Some((RespValue::Nil, after_line)),
            b'$' => {
                let len: usize = line.parse().ok()?;
                let data = input.get(after_line..after_line + len)?;
                if input.get(after_line + len..after_line + len + 2)? != b"\r\n" {
                    return None;
                }
                Some((RespValue::Bulk(data.into()), after_line + len + 2))
            }
            b'*' if line == "-1" => Some((RespValue::NilArray, after_line)),
            b'*' => {
                let count: usize = line.parse().ok()?;
                let mut items = Vec::new();
                let mut at = after_line;
                for _ in 0..count {
                    let (item, used) = read(&input[at..])?;
                    items.push(item);
                    at += used;
                }
                Some((RespValue::Array(items), at))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_back::read;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_kind_has_the_redis_bytes() {
        let cases: Vec<(RespValue, &[u8])> = vec![
            (RespValue::ok(), b"+OK\r\n"),
            (
                RespValue::error("ERR unknown command"),
                b"-ERR unknown command\r\n",
            ),
            (RespValue::Int(0), b":0\r\n"),
            (RespValue::Int(-42), b":-42\r\n"),
            (RespValue::Int(i64::MIN), b":-9223372036854775808\r\n"),
            (RespValue::Int(i64::MAX), b":9223372036854775807\r\n"),
            (RespValue::Bulk(b"foo".into()), b"$3\r\nfoo\r\n"),
            (RespValue::Bulk(Vec::new().into()), b"$0\r\n\r\n"),
            (RespValue::Bulk(b"a\r\nb".into()), b"$4\r\na\r\nb\r\n"),
            (RespValue::Nil, b"$-1\r\n"),
            (RespValue::NilArray, b"*-1\r\n"),
            (RespValue::Array(vec![]), b"*0\r\n"),
            (
                RespValue::Array(vec![
                    RespValue::Bulk(b"a".into()),
                    RespValue::Nil,
                    RespValue::Int(1),
                    RespValue::Array(vec![RespValue::ok()]),
                ]),
                b"*4\r\n$1\r\na\r\n$-1\r\n:1\r\n*1\r\n+OK\r\n",
            ),
        ];
        for (value, bytes) in cases {
            assert_eq!(value.to_bytes(), bytes, "{value:?}");
        }
    }

    #[test]
    fn line_breaks_in_one_line_replies_become_spaces() {
        assert_eq!(
            RespValue::error("ERR a\r\n+OK").to_bytes(),
            b"-ERR a  +OK\r\n"
        );
        assert_eq!(RespValue::Simple("x\ny".into()).to_bytes(), b"+x y\r\n");
    }

    #[test]
    fn redis_rs_reads_our_replies() {
        use redis::Value;
        let parse = |v: &RespValue| redis::parse_redis_value(&v.to_bytes());
        assert!(matches!(parse(&RespValue::ok()), Ok(Value::Okay)));
        assert!(matches!(parse(&RespValue::Int(-3)), Ok(Value::Int(-3))));
        assert!(matches!(parse(&RespValue::Nil), Ok(Value::Nil)));
        assert!(matches!(parse(&RespValue::NilArray), Ok(Value::Nil)));
        assert!(
            matches!(parse(&RespValue::Bulk(b"v".into())), Ok(Value::BulkString(b)) if b == b"v")
        );
        assert!(matches!(
            parse(&RespValue::Array(vec![RespValue::Nil, RespValue::Int(1)])),
            Ok(Value::Array(items)) if items == vec![Value::Nil, Value::Int(1)]
        ));
        let error = parse(&RespValue::error(
            "TRYAGAIN colony 3 has no primary right now",
        ));
        assert!(matches!(error, Ok(Value::ServerError(_)) | Err(_)));
    }

    fn line_text() -> impl Strategy<Value = String> {
        "[ -~]{0,40}"
    }

    fn any_value() -> impl Strategy<Value = RespValue> {
        let leaf = prop_oneof![
            line_text().prop_map(|t| RespValue::Simple(t.into())),
            line_text().prop_map(RespValue::Error),
            any::<i64>().prop_map(RespValue::Int),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(|v| RespValue::Bulk(v.into())),
            Just(RespValue::Nil),
            Just(RespValue::NilArray),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            proptest::collection::vec(inner, 0..8).prop_map(RespValue::Array)
        })
    }

    proptest! {
        #[test]
        fn encoding_reads_back_the_same(value in any_value()) {
            let bytes = value.to_bytes();
            let (read_value, used) = read(&bytes).expect("our own bytes parse");
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(read_value, value);
        }
    }
}
