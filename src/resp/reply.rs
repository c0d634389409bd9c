//! Core replies turned into RESP replies, with the per-command adjustments that make a
//! core reply look like the Redis command the client sent (TTL in seconds, SETNX as 1/0,
//! HMSET as OK, ...).

use super::value::RespValue;
use crate::core::blob::Blob;
use crate::core::cell::Reply;

/// How to present the core reply of a [`super::ClientCommand::Core`] command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplyAdapt {
    /// The core reply as it is.
    AsIs,
    /// TTL: the core's milliseconds rounded to seconds as Redis does, `(ms + 500) / 1000`;
    /// -1 and -2 unchanged.
    TtlSeconds,
    /// HMSET: `+OK` where HSET would count the new fields.
    OkForHmset,
    /// SETNX: `:1` if set, `:0` if the key existed (the core's `SET NX` says OK / nil).
    SetnxInt,
    /// STRLEN / HSTRLEN: the length of the value, 0 if absent.
    StrLen,
    /// HKEYS: the field names of HGETALL's pairs.
    HashKeys,
    /// HVALS: the values of HGETALL's pairs.
    HashValues,
}

/// A core reply as RESP: Ok → `+OK`, Nil → `$-1`, Array → bulk strings and nils,
/// Error → its text (already Redis-style: `WRONGTYPE ...`, `ERR ...`, `TRYAGAIN ...`).
pub fn reply_to_resp(reply: &Reply) -> RespValue {
    match reply {
        Reply::Ok => RespValue::ok(),
        Reply::Nil => RespValue::Nil,
        Reply::Int(n) => RespValue::Int(*n),
        Reply::Bulk(data) => RespValue::Bulk(data.clone()),
        Reply::Array(items) => RespValue::Array(items.iter().map(optional_bulk).collect()),
        Reply::Error(error) => RespValue::Error(error.to_string()),
    }
}

/// A core reply presented as the client's command expects. Errors always pass through.
pub fn adapt_reply(adapt: ReplyAdapt, reply: &Reply) -> RespValue {
    match (adapt, reply) {
        (_, Reply::Error(_)) | (ReplyAdapt::AsIs, _) => reply_to_resp(reply),
        (ReplyAdapt::TtlSeconds, Reply::Int(ms)) if *ms >= 0 => {
            RespValue::Int(ms.saturating_add(500) / 1000)
        }
        (ReplyAdapt::OkForHmset, Reply::Int(_)) => RespValue::ok(),
        (ReplyAdapt::SetnxInt, Reply::Ok) => RespValue::Int(1),
        (ReplyAdapt::SetnxInt, Reply::Nil) => RespValue::Int(0),
        (ReplyAdapt::StrLen, Reply::Bulk(data)) => RespValue::Int(length(data)),
        (ReplyAdapt::StrLen, Reply::Nil) => RespValue::Int(0),
        (ReplyAdapt::HashKeys, Reply::Array(pairs)) => {
            RespValue::Array(pairs.iter().step_by(2).map(optional_bulk).collect())
        }
        (ReplyAdapt::HashValues, Reply::Array(pairs)) => {
            RespValue::Array(pairs.iter().skip(1).step_by(2).map(optional_bulk).collect())
        }
        _ => reply_to_resp(reply),
    }
}

fn optional_bulk(item: &Option<Blob>) -> RespValue {
    item.as_ref()
        .map_or(RespValue::Nil, |data| RespValue::Bulk(data.clone()))
}

fn length(data: &[u8]) -> i64 {
    i64::try_from(data.len()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cell::CommandError;

    fn bulk(text: &str) -> RespValue {
        RespValue::Bulk(Blob::from(text))
    }

    #[test]
    fn core_replies_as_resp() {
        assert_eq!(reply_to_resp(&Reply::Ok).to_bytes(), b"+OK\r\n");
        assert_eq!(reply_to_resp(&Reply::Nil).to_bytes(), b"$-1\r\n");
        assert_eq!(reply_to_resp(&Reply::Int(-2)).to_bytes(), b":-2\r\n");
        assert_eq!(reply_to_resp(&Reply::Bulk(b"v".into())), bulk("v"));
        assert_eq!(
            reply_to_resp(&Reply::Array(vec![Some(b"a".into()), None])).to_bytes(),
            b"*2\r\n$1\r\na\r\n$-1\r\n"
        );
        assert_eq!(
            reply_to_resp(&Reply::Error(CommandError::WrongType)).to_bytes(),
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        );
        assert_eq!(
            reply_to_resp(&Reply::Error(CommandError::NoPrimary(7))),
            RespValue::Error("TRYAGAIN colony 7 has no primary right now".into())
        );
    }

    #[test]
    fn ttl_rounds_like_redis() {
        let ttl = |ms| adapt_reply(ReplyAdapt::TtlSeconds, &Reply::Int(ms));
        assert_eq!(ttl(-2), RespValue::Int(-2));
        assert_eq!(ttl(-1), RespValue::Int(-1));
        assert_eq!(ttl(0), RespValue::Int(0));
        assert_eq!(ttl(499), RespValue::Int(0));
        assert_eq!(ttl(500), RespValue::Int(1));
        assert_eq!(ttl(1499), RespValue::Int(1));
        assert_eq!(ttl(1500), RespValue::Int(2));
        assert_eq!(ttl(10_000), RespValue::Int(10));
        assert_eq!(ttl(i64::MAX), RespValue::Int(i64::MAX / 1000));
        assert_eq!(
            adapt_reply(ReplyAdapt::AsIs, &Reply::Int(1500)),
            RespValue::Int(1500),
            "PTTL"
        );
    }

    #[test]
    fn setnx_hmset_strlen_hkeys_hvals() {
        assert_eq!(
            adapt_reply(ReplyAdapt::SetnxInt, &Reply::Ok),
            RespValue::Int(1)
        );
        assert_eq!(
            adapt_reply(ReplyAdapt::SetnxInt, &Reply::Nil),
            RespValue::Int(0)
        );
        assert_eq!(
            adapt_reply(ReplyAdapt::OkForHmset, &Reply::Int(2)),
            RespValue::ok()
        );
        assert_eq!(
            adapt_reply(ReplyAdapt::StrLen, &Reply::Bulk(b"abc".into())),
            RespValue::Int(3)
        );
        assert_eq!(
            adapt_reply(ReplyAdapt::StrLen, &Reply::Nil),
            RespValue::Int(0)
        );
        let pairs = Reply::Array(vec![
            Some(b"f1".into()),
            Some(b"v1".into()),
            Some(b"f2".into()),
            Some(b"v2".into()),
        ]);
        assert_eq!(
            adapt_reply(ReplyAdapt::HashKeys, &pairs),
            RespValue::Array(vec![bulk("f1"), bulk("f2")])
        );
        assert_eq!(
            adapt_reply(ReplyAdapt::HashValues, &pairs),
            RespValue::Array(vec![bulk("v1"), bulk("v2")])
        );
        assert_eq!(
            adapt_reply(ReplyAdapt::HashKeys, &Reply::Array(vec![])),
            RespValue::Array(vec![])
        );
    }

    #[test]
    fn errors_pass_through_every_adapter() {
        let error = Reply::Error(CommandError::WrongType);
        for adapt in [
            ReplyAdapt::AsIs,
            ReplyAdapt::TtlSeconds,
            ReplyAdapt::OkForHmset,
            ReplyAdapt::SetnxInt,
            ReplyAdapt::StrLen,
            ReplyAdapt::HashKeys,
            ReplyAdapt::HashValues,
        ] {
            assert_eq!(
                adapt_reply(adapt, &error),
                reply_to_resp(&error),
                "{adapt:?}"
            );
        }
    }
}
