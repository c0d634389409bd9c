//! RESP2, the Redis client protocol, on colony's client port: redis-cli,
//! redis-benchmark and Redis client libraries work against a node unchanged.
//!
//! The layer is pure (no sockets, no actors); the session actor drives it:
//! - [`RespCodec`] (`codec`) cuts the byte stream into commands (multibulk or inline,
//!   pipelined, split across reads) and writes [`RespValue`] replies (`value`).
//! - [`parse`] (`command`) turns an argument list into a [`ClientCommand`]: a core
//!   [`Command`](crate::core::cell::Command) on one key with a [`ReplyAdapt`], a
//!   multi-key command to split per key (MGET, DEL, EXISTS, MSET; not atomic across
//!   colonies), or a node-level command (`connect_commands` reads HELLO, CLIENT,
//!   COMMAND and CONFIG; `cluster` reads CLUSTER and answers it from the node's
//!   `/status` report, so cluster-aware clients route keys to primaries). Its errors
//!   are Redis's texts (`errors`).
//! - [`adapt_reply`] / [`reply_to_resp`] (`reply`) present a core reply as the client's
//!   command expects; [`local_reply`] (`local`) answers the node-level commands that
//!   need no cluster state (CONFIG GET's answers are in `config`).
//!
//! Only RESP2 is spoken. `HELLO 3` is refused with `NOPROTO`, which is how a Redis
//! server without RESP3 answers, and every client library then stays on RESP2; RESP3's
//! extra types (maps, sets, doubles, push) would buy colony nothing, since its replies
//! are all strings, integers and flat arrays.

mod cluster;
mod codec;
mod command;
mod config;
mod connect_commands;
mod errors;
mod inline;
mod integer;
mod local;
mod reply;
mod value;

pub use cluster::{cluster_reply, ClusterSub};
pub use codec::{
    RespCodec, RespError, RespLimits, DEFAULT_MAX_ARGS, DEFAULT_MAX_BULK_LEN,
    DEFAULT_MAX_INLINE_LEN, DEFAULT_MAX_REQUEST_LEN,
};
pub use command::{key_of, parse, ClientCommand, ClientSub, SUPPORTED};
pub use local::local_reply;
pub use reply::{adapt_reply, reply_to_resp, ReplyAdapt};
pub use value::RespValue;
