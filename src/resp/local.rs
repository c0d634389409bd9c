//! The answers a session gives by itself, without asking the cluster: PING, ECHO,
//! SELECT, CONFIG GET, CLIENT, COMMAND, HELLO, CLUSTER KEYSLOT, READONLY.
//!
//! The session keeps no per-connection settings, so `CLIENT SETNAME` is acknowledged
//! but not remembered and `CLIENT GETNAME` answers nil.

use super::command::{ClientCommand, SUPPORTED};
use super::config::config_get;
use super::connect_commands::ClientSub;
use super::value::RespValue;
use crate::core::blob::Blob;

/// What the server calls itself in `HELLO`; `version` is the Redis version whose client
/// protocol colony speaks (as `INFO` reports in `redis_version`).
const SERVER_NAME: &str = "colony";
const REDIS_VERSION: &str = "7.2.0";

/// The reply to a command the session answers itself. For a command that needs the
/// cluster or the node (`Core`, `MGet`, `Del`, `Exists`, `MSet`, `Info`, `Colony`,
/// `Quit`), an error saying so: the session is expected to handle those itself.
pub fn local_reply(command: &ClientCommand) -> RespValue {
    match command {
        ClientCommand::Ping(None) => RespValue::Simple("PONG".into()),
        ClientCommand::Ping(Some(message)) => RespValue::Bulk(message.clone()),
        ClientCommand::Echo(message) => RespValue::Bulk(message.clone()),
        ClientCommand::Select(0) => RespValue::ok(),
        ClientCommand::Select(_) => RespValue::error("ERR DB index is out of range"),
        ClientCommand::ConfigGet(patterns) => config_get(patterns),
        ClientCommand::ClientCmd(ClientSub::GetName) => RespValue::Nil,
        ClientCommand::ClientCmd(
            ClientSub::SetName(_) | ClientSub::SetInfo | ClientSub::Accepted,
        ) => RespValue::ok(),
        ClientCommand::CommandDocs => RespValue::Array(Vec::new()),
        ClientCommand::CommandInfo(count) => RespValue::Array(vec![RespValue::Nil; *count]),
        ClientCommand::CommandCount => {
            RespValue::Int(i64::try_from(SUPPORTED.len()).unwrap_or(i64::MAX))
        }
        ClientCommand::CommandList => RespValue::Array(
            SUPPORTED
                .iter()
                .map(|(name, _)| RespValue::Bulk(Blob::from(*name)))
                .collect(),
        ),
        ClientCommand::Hello(None | Some(2)) => hello(),
        ClientCommand::Hello(Some(_)) => {
            RespValue::error("NOPROTO sorry, this protocol version is not supported.")
        }
        ClientCommand::Quit => RespValue::ok(),
        ClientCommand::Cluster(sub) => sub.reply_without_status().unwrap_or_else(not_local),
        ClientCommand::Core(..)
        | ClientCommand::MGet(_)
        | ClientCommand::Del(_)
        | ClientCommand::Exists(_)
        | ClientCommand::MSet(_)
        | ClientCommand::Info(_)
        | ClientCommand::Colony(_) => not_local(),
    }
}

/// For a command the session must answer with the node's help, not here.
fn not_local() -> RespValue {
    RespValue::error("ERR internal error: this command is not answered locally")
}

/// `HELLO`'s server description, as the flat key/value array RESP2 uses for maps.
fn hello() -> RespValue {
    let text = |s: &str| RespValue::Bulk(Blob::from(s));
    RespValue::Array(vec![
        text("server"),
        text(SERVER_NAME),
        text("version"),
        text(REDIS_VERSION),
        text("proto"),
        RespValue::Int(2),
        text("mode"),
        text("cluster"),
        text("role"),
        text("master"),
        text("modules"),
        RespValue::Array(Vec::new()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::command::parse;

    fn answer(line: &str) -> RespValue {
        let args: Vec<Blob> = line.split(' ').map(Blob::from).collect();
        local_reply(&parse(args).expect(line))
    }

    #[test]
    fn ping_echo_select() {
        assert_eq!(answer("PING").to_bytes(), b"+PONG\r\n");
        assert_eq!(answer("PING hi").to_bytes(), b"$2\r\nhi\r\n");
        assert_eq!(answer("ECHO hi").to_bytes(), b"$2\r\nhi\r\n");
        assert_eq!(answer("SELECT 0"), RespValue::ok());
        assert_eq!(
            local_reply(&ClientCommand::Select(3)),
            RespValue::error("ERR DB index is out of range")
        );
    }

    #[test]
    fn what_clients_send_on_connect() {
        assert_eq!(answer("CLIENT SETINFO LIB-NAME redis-rs"), RespValue::ok());
        assert_eq!(answer("CLIENT SETINFO LIB-VER 1.8.1"), RespValue::ok());
        assert_eq!(answer("CLIENT SETNAME app"), RespValue::ok());
        assert_eq!(answer("CLIENT GETNAME"), RespValue::Nil);
        assert_eq!(answer("COMMAND DOCS"), RespValue::Array(vec![]));
        assert_eq!(answer("COMMAND"), RespValue::Array(vec![]));
        assert_eq!(
            answer("COMMAND INFO get set"),
            RespValue::Array(vec![RespValue::Nil, RespValue::Nil])
        );
        assert_eq!(
            answer("COMMAND COUNT"),
            RespValue::Int(SUPPORTED.len() as i64)
        );
        match answer("COMMAND LIST") {
            RespValue::Array(names) => {
                assert!(names.contains(&RespValue::Bulk(b"get".into())))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            answer("CONFIG GET save"),
            RespValue::Array(vec![
                RespValue::Bulk(b"save".into()),
                RespValue::Bulk(vec![].into())
            ])
        );
    }

    #[test]
    fn hello_two_describes_the_server() {
        let reply = answer("HELLO 2");
        assert_eq!(reply, answer("HELLO"));
        match reply {
            RespValue::Array(items) => {
                assert_eq!(items.len(), 12);
                assert_eq!(items[4], RespValue::Bulk(b"proto".into()));
                assert_eq!(items[5], RespValue::Int(2));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            local_reply(&ClientCommand::Hello(Some(3))),
            RespValue::Error(text) if text.starts_with("NOPROTO")
        ));
    }

    #[test]
    fn cluster_commands_are_not_answered_here() {
        assert!(matches!(answer("GET k"), RespValue::Error(_)));
        assert!(matches!(answer("MGET a b"), RespValue::Error(_)));
        assert!(matches!(answer("INFO"), RespValue::Error(_)));
    }
}
