//! A client's argument list turned into what colony will do: a core command on one key,
//! a multi-key command to split per key, or a node-level command answered locally.
//!
//! Errors are the full text of the RESP error reply, worded as Redis words them
//! (`ERR wrong number of arguments for 'get' command`; see `errors`). Command and option
//! names are case-insensitive. The connection-level commands (HELLO, CLIENT, COMMAND,
//! CONFIG) are read in `connect_commands`.
//!
//! Multi-key commands are not atomic: each key may live in another colony, so `MSET`
//! writes its keys one by one and a failure can leave some of them written (the reply
//! is then the first error). `DEL` and `EXISTS` likewise count key by key.

use super::cluster::{parse_cluster, ClusterSub};
pub use super::connect_commands::ClientSub;
use super::connect_commands::{
    parse_client, parse_command_introspection, parse_config, parse_hello,
};
use super::errors::{
    invalid_expire, not_supported, quoted_text, unknown_command, wrong_arity, NOT_AN_INTEGER,
    SYNTAX_ERROR,
};
use super::integer::parse_i64;
use super::reply::ReplyAdapt;
use crate::core::blob::Blob;
use crate::core::cell::{Command, Key, SetCond};

/// What a client command asks of colony.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCommand {
    /// One core command on one key; its reply goes through the adapter.
    Core(Command, ReplyAdapt),
    /// `MGET k...`: one `Get` per key; an array of values, nil for missing or non-string.
    MGet(Vec<Key>),
    /// `DEL k...` / `UNLINK k...`: one `Del` per key; the sum of the integers.
    Del(Vec<Key>),
    /// `EXISTS k...`: one `Exists` per key; the sum (a key named twice counts twice).
    Exists(Vec<Key>),
    /// `MSET k v ...`: one `Set` per key; `+OK` when all are OK. Not atomic.
    MSet(Vec<(Key, Blob)>),
    /// `PING [message]`: `+PONG`, or the message as a bulk string.
    Ping(Option<Blob>),
    /// `ECHO message`
    Echo(Blob),
    /// `INFO [section]`: the section's name in lower case (only the first is kept).
    Info(Option<String>),
    /// `COLONY key`: where the key lives.
    Colony(Key),
    /// `QUIT`: answer `+OK`, then close.
    Quit,
    /// `SELECT 0`, the only database there is (any other index is refused by `parse`).
    Select(i64),
    /// `CONFIG GET pattern...`
    ConfigGet(Vec<Blob>),
    /// `CLIENT SETNAME / SETINFO / GETNAME / NO-EVICT / NO-TOUCH / REPLY ON`.
    ClientCmd(ClientSub),
    /// `COMMAND` and `COMMAND DOCS ...` (redis-cli sends the latter on start): no docs.
    CommandDocs,
    /// `COMMAND INFO name...`: how many names were asked about.
    CommandInfo(usize),
    /// `COMMAND COUNT`
    CommandCount,
    /// `COMMAND LIST`
    CommandList,
    /// `HELLO [2 ...]`: only protocol 2 (or none given) gets here; `parse` refuses 3.
    Hello(Option<i64>),
    /// `CLUSTER SLOTS / SHARDS / NODES / INFO / MYID / KEYSLOT`, `READONLY`, `READWRITE`,
    /// `ASKING`: what cluster-aware clients ask (see `cluster`).
    Cluster(ClusterSub),
}

/// Every command `parse` accepts, lower case, with Redis's arity: `n` exactly `n`
/// arguments (name included), `-n` at least `n`.
pub const SUPPORTED: &[(&str, i32)] = &[
    ("get", 2),
    ("set", -3),
    ("setex", 4),
    ("psetex", 4),
    ("setnx", 3),
    ("strlen", 2),
    ("incr", 2),
    ("decr", 2),
    ("incrby", 3),
    ("decrby", 3),
    ("mget", -2),
    ("mset", -3),
    ("del", -2),
    ("unlink", -2),
    ("exists", -2),
    ("expire", -3),
    ("pexpire", -3),
    ("ttl", 2),
    ("pttl", 2),
    ("hset", -4),
    ("hmset", -4),
    ("hget", 3),
    ("hmget", -3),
    ("hgetall", 2),
    ("hdel", -3),
    ("hexists", 3),
    ("hlen", 2),
    ("hkeys", 2),
    ("hvals", 2),
    ("hstrlen", 3),
    ("ping", -1),
    ("echo", 2),
    ("info", -1),
    ("colony", 2),
    ("quit", -1),
    ("select", 2),
    ("config", -2),
    ("client", -2),
    ("command", -1),
    ("hello", -1),
    ("auth", -2),
    ("cluster", -2),
    ("readonly", 1),
    ("readwrite", 1),
    ("asking", 1),
];

/// Redis commands colony knowingly does not offer; they get a clear refusal instead of
/// "unknown command".
const REFUSED: &[&str] = &[
    "flushall",
    "flushdb",
    "keys",
    "scan",
    "randomkey",
    "dbsize",
    "multi",
    "exec",
    "discard",
    "watch",
    "unwatch",
    "subscribe",
    "psubscribe",
    "unsubscribe",
    "punsubscribe",
    "publish",
    "eval",
    "evalsha",
    "script",
    "function",
    "save",
    "bgsave",
    "rename",
    "persist",
    "type",
    "getset",
    "getdel",
    "append",
    "incrbyfloat",
    "hincrby",
    "hincrbyfloat",
    "hsetnx",
    "msetnx",
    "wait",
    "object",
    "monitor",
    "replicaof",
    "slaveof",
];

/// The key a single-key command routes by (`Core` and `Colony`); `None` for the rest.
pub fn key_of(command: &ClientCommand) -> Option<&[u8]> {
    match command {
        ClientCommand::Core(core, _) => Some(core.key()),
        ClientCommand::Colony(key) => Some(key),
        _ => None,
    }
}

/// Reads one client command. `Err` is the whole text of the error reply. The arguments
/// are moved into the command, not copied.
pub fn parse(mut args: Vec<Blob>) -> Result<ClientCommand, String> {
    let Some((name, _)) = args.split_first() else {
        return Err(unknown_command(&args));
    };
    let Some(&(command, arity)) = SUPPORTED
        .iter()
        .find(|(known, _)| name.eq_ignore_ascii_case(known.as_bytes()))
    else {
        return match REFUSED
            .iter()
            .find(|refused| name.eq_ignore_ascii_case(refused.as_bytes()))
        {
            Some(refused) => Err(not_supported(&refused.to_ascii_uppercase())),
            None => Err(unknown_command(&args)),
        };
    };
    check_arity(&args, command, arity)?;
    parse_known(command, &mut args)
}

/// Moves argument `i` out (an empty one if there is none).
fn take(args: &mut [Blob], i: usize) -> Blob {
    args.get_mut(i).map(std::mem::take).unwrap_or_default()
}

/// Moves the arguments from `from` on out.
fn take_rest(args: &mut [Blob], from: usize) -> Vec<Blob> {
    args.get_mut(from..)
        .unwrap_or_default()
        .iter_mut()
        .map(std::mem::take)
        .collect()
}

/// `args` has the right number of arguments for `command` (lower case).
fn parse_known(command: &str, args: &mut [Blob]) -> Result<ClientCommand, String> {
    let core = |core: Command| Ok(ClientCommand::Core(core, ReplyAdapt::AsIs));
    let adapted = |core: Command, adapt| Ok(ClientCommand::Core(core, adapt));
    match command {
        "get" => core(Command::Get { key: take(args, 1) }),
        "set" => parse_set(args),
        "setex" | "psetex" => {
            let unit = if command == "setex" {
                TimeUnit::Seconds
            } else {
                TimeUnit::Millis
            };
            let ttl_ms = positive_expire_ms(&take(args, 2), unit, command)?;
            core(Command::Set {
                key: take(args, 1),
                value: take(args, 3),
                ttl_ms: Some(ttl_ms),
                cond: SetCond::Always,
            })
        }
        "setnx" => adapted(
            Command::Set {
                key: take(args, 1),
                value: take(args, 2),
                ttl_ms: None,
                cond: SetCond::IfAbsent,
            },
            ReplyAdapt::SetnxInt,
        ),
        "strlen" => adapted(Command::Get { key: take(args, 1) }, ReplyAdapt::StrLen),
        "incr" => core(Command::IncrBy {
            key: take(args, 1),
            delta: 1,
        }),
        "decr" => core(Command::IncrBy {
            key: take(args, 1),
            delta: -1,
        }),
        "incrby" => core(Command::IncrBy {
            key: take(args, 1),
            delta: integer(&take(args, 2))?,
        }),
        "decrby" => {
            let decrement = integer(&take(args, 2))?;
            let delta = decrement
                .checked_neg()
                .ok_or_else(|| "ERR decrement would overflow".to_string())?;
            core(Command::IncrBy {
                key: take(args, 1),
                delta,
            })
        }
        "mget" => Ok(ClientCommand::MGet(take_rest(args, 1))),
        "mset" => {
            if args.len().is_multiple_of(2) {
                return Err(wrong_arity(command));
            }
            Ok(ClientCommand::MSet(pairs(take_rest(args, 1))))
        }
        "del" | "unlink" => Ok(ClientCommand::Del(take_rest(args, 1))),
        "exists" => Ok(ClientCommand::Exists(take_rest(args, 1))),
        "expire" | "pexpire" => parse_expire(command, args),
        "ttl" => adapted(Command::Ttl { key: take(args, 1) }, ReplyAdapt::TtlSeconds),
        "pttl" => core(Command::Ttl { key: take(args, 1) }),
        "hset" | "hmset" => {
            if !args.len().is_multiple_of(2) {
                return Err(wrong_arity(command));
            }
            let adapt = if command == "hmset" {
                ReplyAdapt::OkForHmset
            } else {
                ReplyAdapt::AsIs
            };
            adapted(
                Command::HSet {
                    key: take(args, 1),
                    fields: pairs(take_rest(args, 2)),
                },
                adapt,
            )
        }
        "hget" => core(Command::HGet {
            key: take(args, 1),
            field: take(args, 2),
        }),
        "hmget" => core(Command::HMGet {
            key: take(args, 1),
            fields: take_rest(args, 2),
        }),
        "hgetall" => core(Command::HGetAll { key: take(args, 1) }),
        "hdel" => core(Command::HDel {
            key: take(args, 1),
            fields: take_rest(args, 2),
        }),
        "hexists" => core(Command::HExists {
            key: take(args, 1),
            field: take(args, 2),
        }),
        "hlen" => core(Command::HLen { key: take(args, 1) }),
        "hkeys" => adapted(
            Command::HGetAll { key: take(args, 1) },
            ReplyAdapt::HashKeys,
        ),
        "hvals" => adapted(
            Command::HGetAll { key: take(args, 1) },
            ReplyAdapt::HashValues,
        ),
        "hstrlen" => adapted(
            Command::HGet {
                key: take(args, 1),
                field: take(args, 2),
            },
            ReplyAdapt::StrLen,
        ),
        "ping" => match args.len() {
            1 => Ok(ClientCommand::Ping(None)),
            2 => Ok(ClientCommand::Ping(Some(take(args, 1)))),
            _ => Err(wrong_arity(command)),
        },
        "echo" => Ok(ClientCommand::Echo(take(args, 1))),
        "info" => Ok(ClientCommand::Info(args.get(1).map(|section| {
            String::from_utf8_lossy(section).to_ascii_lowercase()
        }))),
        "colony" => Ok(ClientCommand::Colony(take(args, 1))),
        "quit" => Ok(ClientCommand::Quit),
        "select" => match integer(&take(args, 1))? {
            0 => Ok(ClientCommand::Select(0)),
            _ => Err("ERR DB index is out of range".to_string()),
        },
        "config" => parse_config(args),
        "client" => parse_client(args),
        "command" => parse_command_introspection(args),
        "hello" => parse_hello(args),
        "cluster" => parse_cluster(args),
        "readonly" | "readwrite" | "asking" => Ok(ClientCommand::Cluster(ClusterSub::Accepted)),
        "auth" => Err(
            "ERR AUTH <password> called without any password configured for the \
                       default user. Are you sure your configuration is correct?"
                .to_string(),
        ),
        _ => Err(unknown_command(args)),
    }
}

#[derive(Clone, Copy)]
enum TimeUnit {
    Seconds,
    Millis,
}

/// `SET key value [NX|XX] [EX seconds|PX milliseconds]`, options in any order.
fn parse_set(args: &mut [Blob]) -> Result<ClientCommand, String> {
    let mut cond = SetCond::Always;
    let mut expire: Option<(&[u8], TimeUnit)> = None;
    let mut at = 3;
    while let Some(option) = args.get(at) {
        let value = args.get(at + 1);
        let is = |name: &str| option.eq_ignore_ascii_case(name.as_bytes());
        if is("NX") && cond != SetCond::IfPresent {
            cond = SetCond::IfAbsent;
        } else if is("XX") && cond != SetCond::IfAbsent {
            cond = SetCond::IfPresent;
        } else if let (true, true, Some(value)) = (is("EX"), expire.is_none(), value) {
            expire = Some((value, TimeUnit::Seconds));
            at += 1;
        } else if let (true, true, Some(value)) = (is("PX"), expire.is_none(), value) {
            expire = Some((value, TimeUnit::Millis));
            at += 1;
        } else {
            return Err(SYNTAX_ERROR.to_string());
        }
        at += 1;
    }
    let ttl_ms = match expire {
        Some((text, unit)) => Some(positive_expire_ms(text, unit, "set")?),
        None => None,
    };
    Ok(ClientCommand::Core(
        Command::Set {
            key: take(args, 1),
            value: take(args, 2),
            ttl_ms,
            cond,
        },
        ReplyAdapt::AsIs,
    ))
}

/// A time to live that must be positive (SET EX/PX, SETEX, PSETEX), in milliseconds.
fn positive_expire_ms(text: &[u8], unit: TimeUnit, command: &str) -> Result<u64, String> {
    let amount = integer(text)?;
    let ms = match unit {
        TimeUnit::Seconds => amount.checked_mul(1000),
        TimeUnit::Millis => Some(amount),
    };
    ms.filter(|ms| *ms > 0)
        .and_then(|ms| u64::try_from(ms).ok())
        .ok_or_else(|| invalid_expire(command))
}

/// `EXPIRE key seconds` / `PEXPIRE key ms`. A time in the past deletes the key (a ttl
/// of 0 expires it at once), as in Redis. The NX/XX/GT/LT conditions are not offered.
fn parse_expire(command: &str, args: &mut [Blob]) -> Result<ClientCommand, String> {
    if let Some(option) = args.get(3) {
        let known = ["NX", "XX", "GT", "LT"]
            .iter()
            .find(|known| option.eq_ignore_ascii_case(known.as_bytes()));
        return Err(match known {
            Some(known) => not_supported(&format!("{} {known}", command.to_ascii_uppercase())),
            None => format!("ERR Unsupported option {}", quoted_text(option)),
        });
    }
    let amount = integer(args.get(2).map(|a| a.as_slice()).unwrap_or_default())?;
    let ms = if command == "expire" {
        amount
            .checked_mul(1000)
            .ok_or_else(|| invalid_expire(command))?
    } else {
        amount
    };
    Ok(ClientCommand::Core(
        Command::Expire {
            key: take(args, 1),
            ttl_ms: u64::try_from(ms).unwrap_or(0),
        },
        ReplyAdapt::AsIs,
    ))
}

fn check_arity(args: &[Blob], command: &str, arity: i32) -> Result<(), String> {
    let count = args.len() as i64;
    let ok = if arity >= 0 {
        count == i64::from(arity)
    } else {
        count >= -i64::from(arity)
    };
    if ok {
        Ok(())
    } else {
        Err(wrong_arity(command))
    }
}

/// An integer argument, or Redis's "not an integer" error.
fn integer(text: &[u8]) -> Result<i64, String> {
    parse_i64(text).ok_or_else(|| NOT_AN_INTEGER.to_string())
}

/// `[k1, v1, k2, v2]` → `[(k1, v1), (k2, v2)]`; an odd last item is dropped (callers
/// check the count first).
fn pairs(items: Vec<Blob>) -> Vec<(Blob, Blob)> {
    let mut items = items.into_iter();
    let mut out = Vec::with_capacity(items.len() / 2);
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        out.push((k, v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cmd(line: &str) -> Result<ClientCommand, String> {
        let args: Vec<Blob> = line
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(Blob::from)
            .collect();
        parse(args)
    }

    fn core(line: &str) -> (Command, ReplyAdapt) {
        match cmd(line) {
            Ok(ClientCommand::Core(command, adapt)) => (command, adapt),
            other => panic!("{line}: {other:?}"),
        }
    }

    fn err(line: &str) -> String {
        cmd(line).expect_err(line)
    }

    fn b(text: &str) -> Blob {
        text.into()
    }

    fn set(key: &str, value: &str, ttl_ms: Option<u64>, cond: SetCond) -> Command {
        Command::Set {
            key: b(key),
            value: b(value),
            ttl_ms,
            cond,
        }
    }

    fn arity_error(name: &str) -> String {
        format!("ERR wrong number of arguments for '{name}' command")
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(core("get k"), core("GET k"));
        assert_eq!(core("gEt k").0, Command::Get { key: b("k") });
        assert_eq!(core("set k v ex 5 nx"), core("SET k v EX 5 NX"));
    }

    #[test]
    fn get_and_arity() {
        assert_eq!(
            core("GET k"),
            (Command::Get { key: b("k") }, ReplyAdapt::AsIs)
        );
        assert_eq!(err("GET"), arity_error("get"));
        assert_eq!(err("GET a b"), arity_error("get"));
    }

    #[test]
    fn set_with_options_in_any_order() {
        let always = SetCond::Always;
        assert_eq!(core("SET k v").0, set("k", "v", None, always));
        assert_eq!(core("SET k v EX 10").0, set("k", "v", Some(10_000), always));
        assert_eq!(core("SET k v PX 1500").0, set("k", "v", Some(1500), always));
        assert_eq!(
            core("SET k v NX PX 5").0,
            set("k", "v", Some(5), SetCond::IfAbsent)
        );
        assert_eq!(
            core("SET k v EX 1 XX").0,
            set("k", "v", Some(1000), SetCond::IfPresent)
        );
        assert_eq!(
            core("SET k v NX NX").0,
            set("k", "v", None, SetCond::IfAbsent)
        );
        assert_eq!(core("SET k v").1, ReplyAdapt::AsIs);
    }

    #[test]
    fn set_errors() {
        for line in [
            "SET k v NX XX",
            "SET k v XX NX",
            "SET k v EX 1 PX 1",
            "SET k v EX 1 EX 2",
            "SET k v EX",
            "SET k v PX",
            "SET k v KEEPTTL",
            "SET k v GET",
            "SET k v EXAT 100",
            "SET k v PXAT 100",
            "SET k v FOO",
            "SET k v EX abc NX XX",
        ] {
            assert_eq!(err(line), SYNTAX_ERROR, "{line}");
        }
        assert_eq!(err("SET k v EX abc"), NOT_AN_INTEGER);
        assert_eq!(err("SET k v EX 1.5"), NOT_AN_INTEGER);
        let invalid = "ERR invalid expire time in 'set' command";
        assert_eq!(err("SET k v EX 0"), invalid);
        assert_eq!(err("SET k v EX -1"), invalid);
        assert_eq!(err("SET k v PX 0"), invalid);
        assert_eq!(err("SET k v EX 9223372036854775807"), invalid);
        assert_eq!(
            core("SET k v PX 9223372036854775807").0,
            set("k", "v", Some(i64::MAX as u64), SetCond::Always)
        );
        assert_eq!(err("SET k"), arity_error("set"));
    }

    #[test]
    fn setex_psetex_setnx() {
        assert_eq!(
            core("SETEX k 10 v").0,
            set("k", "v", Some(10_000), SetCond::Always)
        );
        assert_eq!(
            core("PSETEX k 10 v").0,
            set("k", "v", Some(10), SetCond::Always)
        );
        assert_eq!(
            err("SETEX k 0 v"),
            "ERR invalid expire time in 'setex' command"
        );
        assert_eq!(
            err("PSETEX k -5 v"),
            "ERR invalid expire time in 'psetex' command"
        );
        assert_eq!(err("SETEX k x v"), NOT_AN_INTEGER);
        assert_eq!(err("SETEX k 10"), arity_error("setex"));
        assert_eq!(
            core("SETNX k v"),
            (set("k", "v", None, SetCond::IfAbsent), ReplyAdapt::SetnxInt)
        );
        assert_eq!(err("SETNX k"), arity_error("setnx"));
    }

    #[test]
    fn expire_and_ttl() {
        let expire = |ttl_ms| Command::Expire {
            key: b("k"),
            ttl_ms,
        };
        assert_eq!(core("EXPIRE k 10").0, expire(10_000));
        assert_eq!(core("PEXPIRE k 10").0, expire(10));
        assert_eq!(core("EXPIRE k 0").0, expire(0), "deletes, as in Redis");
        assert_eq!(core("EXPIRE k -5").0, expire(0));
        assert_eq!(core("PEXPIRE k -5").0, expire(0));
        assert_eq!(err("EXPIRE k x"), NOT_AN_INTEGER);
        assert_eq!(
            err("EXPIRE k 9223372036854775807"),
            "ERR invalid expire time in 'expire' command"
        );
        assert_eq!(
            err("EXPIRE k 10 NX"),
            "ERR EXPIRE NX is not supported by colony"
        );
        assert_eq!(
            err("PEXPIRE k 10 gt"),
            "ERR PEXPIRE GT is not supported by colony"
        );
        assert_eq!(err("EXPIRE k 10 FOO"), "ERR Unsupported option FOO");
        assert_eq!(err("EXPIRE k"), arity_error("expire"));
        assert_eq!(
            core("TTL k"),
            (Command::Ttl { key: b("k") }, ReplyAdapt::TtlSeconds)
        );
        assert_eq!(
            core("PTTL k"),
            (Command::Ttl { key: b("k") }, ReplyAdapt::AsIs)
        );
        assert_eq!(err("TTL"), arity_error("ttl"));
    }

    #[test]
    fn counters() {
        let incr = |delta| Command::IncrBy { key: b("n"), delta };
        assert_eq!(core("INCR n").0, incr(1));
        assert_eq!(core("DECR n").0, incr(-1));
        assert_eq!(core("INCRBY n -5").0, incr(-5));
        assert_eq!(core("DECRBY n 5").0, incr(-5));
        assert_eq!(core("DECRBY n -9223372036854775807").0, incr(i64::MAX));
        assert_eq!(core("INCRBY n -9223372036854775808").0, incr(i64::MIN));
        assert_eq!(
            err("DECRBY n -9223372036854775808"),
            "ERR decrement would overflow"
        );
        assert_eq!(err("INCRBY n 9223372036854775808"), NOT_AN_INTEGER);
        assert_eq!(err("INCRBY n 1.0"), NOT_AN_INTEGER);
        assert_eq!(err("INCRBY n +1"), NOT_AN_INTEGER);
        assert_eq!(err("INCR"), arity_error("incr"));
        assert_eq!(err("INCRBY n"), arity_error("incrby"));
    }

    #[test]
    fn strings_by_adapter() {
        assert_eq!(
            core("STRLEN k"),
            (Command::Get { key: b("k") }, ReplyAdapt::StrLen)
        );
    }

    #[test]
    fn hashes() {
        let fields = vec![(b("f1"), b("v1")), (b("f2"), b("v2"))];
        assert_eq!(
            core("HSET h f1 v1 f2 v2"),
            (
                Command::HSet {
                    key: b("h"),
                    fields: fields.clone()
                },
                ReplyAdapt::AsIs
            )
        );
        assert_eq!(
            core("HMSET h f1 v1 f2 v2"),
            (
                Command::HSet {
                    key: b("h"),
                    fields
                },
                ReplyAdapt::OkForHmset
            )
        );
        assert_eq!(err("HSET h"), arity_error("hset"));
        assert_eq!(err("HSET h f"), arity_error("hset"));
        assert_eq!(err("HSET h f v g"), arity_error("hset"));
        assert_eq!(err("HMSET h f v g"), arity_error("hmset"));
        assert_eq!(
            core("HGET h f").0,
            Command::HGet {
                key: b("h"),
                field: b("f")
            }
        );
        assert_eq!(
            core("HMGET h a b").0,
            Command::HMGet {
                key: b("h"),
                fields: vec![b("a"), b("b")]
            }
        );
        assert_eq!(core("HGETALL h").0, Command::HGetAll { key: b("h") });
        assert_eq!(
            core("HDEL h a b").0,
            Command::HDel {
                key: b("h"),
                fields: vec![b("a"), b("b")]
            }
        );
        assert_eq!(
            core("HEXISTS h a").0,
            Command::HExists {
                key: b("h"),
                field: b("a")
            }
        );
        assert_eq!(core("HLEN h").0, Command::HLen { key: b("h") });
        assert_eq!(
            core("HKEYS h"),
            (Command::HGetAll { key: b("h") }, ReplyAdapt::HashKeys)
        );
        assert_eq!(
            core("HVALS h"),
            (Command::HGetAll { key: b("h") }, ReplyAdapt::HashValues)
        );
        assert_eq!(
            core("HSTRLEN h f"),
            (
                Command::HGet {
                    key: b("h"),
                    field: b("f")
                },
                ReplyAdapt::StrLen
            )
        );
        assert_eq!(err("HGET h"), arity_error("hget"));
        assert_eq!(err("HMGET h"), arity_error("hmget"));
        assert_eq!(err("HDEL h"), arity_error("hdel"));
        assert_eq!(err("HEXISTS h"), arity_error("hexists"));
        assert_eq!(err("HLEN"), arity_error("hlen"));
        assert_eq!(err("HGETALL"), arity_error("hgetall"));
    }

    #[test]
    fn multi_key_commands() {
        assert_eq!(
            cmd("MGET a b a"),
            Ok(ClientCommand::MGet(vec![b("a"), b("b"), b("a")]))
        );
        assert_eq!(cmd("DEL a b"), Ok(ClientCommand::Del(vec![b("a"), b("b")])));
        assert_eq!(cmd("UNLINK a"), Ok(ClientCommand::Del(vec![b("a")])));
        assert_eq!(
            cmd("EXISTS a a"),
            Ok(ClientCommand::Exists(vec![b("a"), b("a")]))
        );
        assert_eq!(
            cmd("MSET a 1 b 2"),
            Ok(ClientCommand::MSet(vec![
                (b("a"), b("1")),
                (b("b"), b("2"))
            ]))
        );
        assert_eq!(err("MSET a 1 b"), arity_error("mset"));
        assert_eq!(err("MSET a"), arity_error("mset"));
        assert_eq!(err("MGET"), arity_error("mget"));
        assert_eq!(err("DEL"), arity_error("del"));
        assert_eq!(err("EXISTS"), arity_error("exists"));
    }

    #[test]
    fn node_level_commands() {
        assert_eq!(cmd("PING"), Ok(ClientCommand::Ping(None)));
        assert_eq!(cmd("PING hi"), Ok(ClientCommand::Ping(Some(b("hi")))));
        assert_eq!(err("PING a b"), arity_error("ping"));
        assert_eq!(cmd("ECHO hi"), Ok(ClientCommand::Echo(b("hi"))));
        assert_eq!(err("ECHO"), arity_error("echo"));
        assert_eq!(cmd("INFO"), Ok(ClientCommand::Info(None)));
        assert_eq!(
            cmd("INFO Server"),
            Ok(ClientCommand::Info(Some("server".into())))
        );
        assert_eq!(cmd("COLONY k"), Ok(ClientCommand::Colony(b("k"))));
        assert_eq!(err("COLONY"), arity_error("colony"));
        assert_eq!(cmd("QUIT"), Ok(ClientCommand::Quit));
        assert_eq!(cmd("SELECT 0"), Ok(ClientCommand::Select(0)));
        assert_eq!(err("SELECT 1"), "ERR DB index is out of range");
        assert_eq!(err("SELECT -1"), "ERR DB index is out of range");
        assert_eq!(err("SELECT x"), NOT_AN_INTEGER);
        assert_eq!(err("SELECT"), arity_error("select"));
    }

    #[test]
    fn unknown_and_refused_commands() {
        assert_eq!(
            err("FOO a"),
            "ERR unknown command 'FOO', with args beginning with: 'a' "
        );
        assert_eq!(
            err("foo"),
            "ERR unknown command 'foo', with args beginning with: "
        );
        assert_eq!(
            err("foo a b"),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        let long = "x".repeat(300);
        let text = err(&format!("foo {long} more"));
        assert_eq!(
            text,
            format!(
                "ERR unknown command 'foo', with args beginning with: '{}' ",
                "x".repeat(128)
            )
        );
        assert_eq!(
            parse(vec![]),
            Err("ERR unknown command '', with args beginning with: ".into())
        );
        assert_eq!(err("FLUSHALL"), "ERR FLUSHALL is not supported by colony");
        assert_eq!(err("flushdb"), "ERR FLUSHDB is not supported by colony");
        assert_eq!(err("KEYS *"), "ERR KEYS is not supported by colony");
        assert_eq!(err("SCAN 0"), "ERR SCAN is not supported by colony");
        assert_eq!(err("DBSIZE"), "ERR DBSIZE is not supported by colony");
        assert!(err("AUTH pw").starts_with("ERR AUTH <password> called without any password"));
    }

    #[test]
    fn key_of_routes_single_key_commands() {
        assert_eq!(key_of(&cmd("GET k").unwrap()), Some(&b"k"[..]));
        assert_eq!(key_of(&cmd("HSET h f v").unwrap()), Some(&b"h"[..]));
        assert_eq!(key_of(&cmd("COLONY c").unwrap()), Some(&b"c"[..]));
        assert_eq!(key_of(&cmd("MGET a b").unwrap()), None);
        assert_eq!(key_of(&cmd("PING").unwrap()), None);
    }

    #[test]
    fn every_supported_command_parses_with_plausible_arguments() {
        for (name, arity) in SUPPORTED {
            let count = arity.unsigned_abs() as usize;
            let mut args = vec![b(name)];
            args.extend((1..count).map(|i| b(&i.to_string())));
            let result = parse(args);
            if let Err(text) = &result {
                assert!(
                    !text.contains("unknown command") && !text.contains("wrong number"),
                    "{name}: {text}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_arguments_never_panic(
            name in prop::sample::select(SUPPORTED.iter().map(|(n, _)| *n).collect::<Vec<_>>()),
            args in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..12).prop_map(Blob::from),
                    prop::sample::select(vec![
                        b("EX"), b("PX"), b("NX"), b("XX"), b("GET"), b("SETNAME"), b("AUTH"),
                        b("2"), b("3"), b("0"), b("-1"), b("9223372036854775807"),
                        b("-9223372036854775808"), b("DOCS"), b("INFO"), b("SETINFO"),
                        b("LIB-NAME"), b("ON"),
                    ]),
                ],
                0..8,
            ),
        ) {
            let mut all = vec![b(name)];
            all.extend(args);
            let _ = parse(all);
        }
    }
}
