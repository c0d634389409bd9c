//! The commands clients and tools send around connecting rather than for data: HELLO
//! (protocol choice), CLIENT (names and library info), COMMAND (introspection, sent by
//! redis-cli on start) and CONFIG GET (sent by redis-benchmark on start). colony
//! answers what they need and refuses the rest clearly.

use super::command::ClientCommand;
use super::errors::{
    lower_text, not_supported, quoted_text, unknown_subcommand, upper_text, wrong_arity,
    BAD_CLIENT_NAME, NOPROTO, SYNTAX_ERROR,
};
use super::integer::parse_i64;
use crate::core::blob::Blob;

/// The `CLIENT` subcommands colony answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientSub {
    /// `CLIENT SETNAME name` (already checked for forbidden characters).
    SetName(Blob),
    /// `CLIENT SETINFO LIB-NAME|LIB-VER value`
    SetInfo,
    /// `CLIENT GETNAME`
    GetName,
    /// `CLIENT NO-EVICT on|off`, `CLIENT NO-TOUCH on|off`, `CLIENT REPLY ON`: `+OK`.
    Accepted,
}

/// `CONFIG GET pattern...`; the rest of CONFIG is refused.
pub(super) fn parse_config(args: &[Blob]) -> Result<ClientCommand, String> {
    let sub = args.get(1).map(|a| a.as_slice()).unwrap_or_default();
    if sub.eq_ignore_ascii_case(b"GET") {
        if args.len() < 3 {
            return Err(wrong_arity("config|get"));
        }
        return Ok(ClientCommand::ConfigGet(args[2..].to_vec()));
    }
    for refused in ["SET", "RESETSTAT", "REWRITE"] {
        if sub.eq_ignore_ascii_case(refused.as_bytes()) {
            return Err(not_supported(&format!("CONFIG {refused}")));
        }
    }
    Err(unknown_subcommand(sub, "CONFIG"))
}

/// `CLIENT ...`: what a client library sends on connect, answered simply.
pub(super) fn parse_client(args: &[Blob]) -> Result<ClientCommand, String> {
    let sub = args.get(1).map(|a| a.as_slice()).unwrap_or_default();
    let is = |name: &str| sub.eq_ignore_ascii_case(name.as_bytes());
    let exact = |full_name: &str, count: usize| {
        if args.len() == count {
            Ok(())
        } else {
            Err(wrong_arity(full_name))
        }
    };
    let last = args.last().map(|a| a.as_slice()).unwrap_or_default();
    if is("SETNAME") {
        exact("client|setname", 3)?;
        check_client_name(last)?;
        Ok(ClientCommand::ClientCmd(ClientSub::SetName(Blob::from(
            last,
        ))))
    } else if is("SETINFO") {
        exact("client|setinfo", 4)?;
        let attr = args.get(2).map(|a| a.as_slice()).unwrap_or_default();
        let attr_name = if attr.eq_ignore_ascii_case(b"LIB-NAME") {
            "lib-name"
        } else if attr.eq_ignore_ascii_case(b"LIB-VER") {
            "lib-ver"
        } else {
            return Err(format!("ERR Unrecognized option '{}'", quoted_text(attr)));
        };
        if !is_printable_name(last) {
            return Err(format!(
                "ERR {attr_name} cannot contain spaces, newlines or special characters."
            ));
        }
        Ok(ClientCommand::ClientCmd(ClientSub::SetInfo))
    } else if is("GETNAME") {
        exact("client|getname", 2)?;
        Ok(ClientCommand::ClientCmd(ClientSub::GetName))
    } else if is("NO-EVICT") || is("NO-TOUCH") {
        exact(&format!("client|{}", lower_text(sub)), 3)?;
        if last.eq_ignore_ascii_case(b"ON") || last.eq_ignore_ascii_case(b"OFF") {
            Ok(ClientCommand::ClientCmd(ClientSub::Accepted))
        } else {
            Err(SYNTAX_ERROR.to_string())
        }
    } else if is("REPLY") {
        exact("client|reply", 3)?;
        if last.eq_ignore_ascii_case(b"ON") {
            Ok(ClientCommand::ClientCmd(ClientSub::Accepted))
        } else if last.eq_ignore_ascii_case(b"OFF") || last.eq_ignore_ascii_case(b"SKIP") {
            Err(not_supported(&format!("CLIENT REPLY {}", upper_text(last))))
        } else {
            Err(SYNTAX_ERROR.to_string())
        }
    } else if let Some(refused) = [
        "ID",
        "INFO",
        "LIST",
        "KILL",
        "PAUSE",
        "UNPAUSE",
        "TRACKING",
        "TRACKINGINFO",
        "CACHING",
        "GETREDIR",
        "UNBLOCK",
    ]
    .iter()
    .find(|name| is(name))
    {
        Err(not_supported(&format!("CLIENT {refused}")))
    } else {
        Err(unknown_subcommand(sub, "CLIENT"))
    }
}

/// `COMMAND`, `COMMAND DOCS|INFO|COUNT|LIST`.
pub(super) fn parse_command_introspection(args: &[Blob]) -> Result<ClientCommand, String> {
    let Some(sub) = args.get(1) else {
        return Ok(ClientCommand::CommandDocs);
    };
    let is = |name: &str| sub.eq_ignore_ascii_case(name.as_bytes());
    if is("DOCS") {
        Ok(ClientCommand::CommandDocs)
    } else if is("INFO") {
        Ok(ClientCommand::CommandInfo(args.len() - 2))
    } else if is("COUNT") {
        if args.len() != 2 {
            return Err(wrong_arity("command|count"));
        }
        Ok(ClientCommand::CommandCount)
    } else if is("LIST") {
        Ok(ClientCommand::CommandList)
    } else if is("GETKEYS") || is("GETKEYSANDFLAGS") {
        Err(not_supported(&format!("COMMAND {}", upper_text(sub))))
    } else {
        Err(unknown_subcommand(sub, "COMMAND"))
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME name]]`. Colony speaks RESP2 only,
/// so `HELLO 3` gets NOPROTO and the client stays on RESP2. AUTH is accepted as Redis
/// does with no password set; SETNAME is checked, then ignored.
pub(super) fn parse_hello(args: &[Blob]) -> Result<ClientCommand, String> {
    let Some(version) = args.get(1) else {
        return Ok(ClientCommand::Hello(None));
    };
    let version = parse_i64(version)
        .ok_or_else(|| "ERR Protocol version is not an integer or out of range".to_string())?;
    let mut at = 2;
    while let Some(option) = args.get(at) {
        let more = args.len() - at - 1;
        if option.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
            at += 3;
        } else if option.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            check_client_name(args.get(at + 1).map(|a| a.as_slice()).unwrap_or_default())?;
            at += 2;
        } else {
            return Err(format!(
                "ERR Syntax error in HELLO option '{}'",
                quoted_text(option)
            ));
        }
    }
    if version != 2 {
        return Err(NOPROTO.to_string());
    }
    Ok(ClientCommand::Hello(Some(2)))
}

fn check_client_name(name: &[u8]) -> Result<(), String> {
    if is_printable_name(name) {
        Ok(())
    } else {
        Err(BAD_CLIENT_NAME.to_string())
    }
}

/// Redis allows only `!`..=`~` in client names and library attributes.
fn is_printable_name(text: &[u8]) -> bool {
    text.iter().all(|b| (b'!'..=b'~').contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::command::parse;

    fn cmd(line: &str) -> Result<ClientCommand, String> {
        let args: Vec<Blob> = line.split(' ').map(Blob::from).collect();
        parse(args)
    }

    fn err(line: &str) -> String {
        cmd(line).expect_err(line)
    }

    fn b(text: &str) -> Blob {
        text.into()
    }

    fn arity_error(name: &str) -> String {
        format!("ERR wrong number of arguments for '{name}' command")
    }

    #[test]
    fn config() {
        assert_eq!(
            cmd("CONFIG GET save"),
            Ok(ClientCommand::ConfigGet(vec![b("save")]))
        );
        assert_eq!(
            cmd("config get save appendonly"),
            Ok(ClientCommand::ConfigGet(vec![b("save"), b("appendonly")]))
        );
        assert_eq!(err("CONFIG GET"), arity_error("config|get"));
        assert_eq!(err("CONFIG"), arity_error("config"));
        assert_eq!(
            err("CONFIG SET save x"),
            "ERR CONFIG SET is not supported by colony"
        );
        assert_eq!(
            err("CONFIG FOO"),
            "ERR unknown subcommand 'FOO'. Try CONFIG HELP."
        );
    }

    #[test]
    fn client() {
        let client = |sub| Ok(ClientCommand::ClientCmd(sub));
        assert_eq!(
            cmd("CLIENT SETNAME app"),
            client(ClientSub::SetName(b("app")))
        );
        assert_eq!(
            parse(vec![b("CLIENT"), b("SETNAME"), b("a b")]),
            Err(BAD_CLIENT_NAME.to_string())
        );
        assert_eq!(
            cmd("CLIENT SETINFO LIB-NAME redis-rs"),
            client(ClientSub::SetInfo)
        );
        assert_eq!(
            cmd("client setinfo lib-ver 1.8.1"),
            client(ClientSub::SetInfo)
        );
        assert_eq!(err("CLIENT SETINFO FOO x"), "ERR Unrecognized option 'FOO'");
        assert_eq!(
            parse(vec![b("CLIENT"), b("SETINFO"), b("lib-name"), b("a\nb")]),
            Err("ERR lib-name cannot contain spaces, newlines or special characters.".into())
        );
        assert_eq!(cmd("CLIENT GETNAME"), client(ClientSub::GetName));
        assert_eq!(cmd("CLIENT NO-EVICT on"), client(ClientSub::Accepted));
        assert_eq!(cmd("CLIENT REPLY ON"), client(ClientSub::Accepted));
        assert_eq!(
            err("CLIENT REPLY OFF"),
            "ERR CLIENT REPLY OFF is not supported by colony"
        );
        assert_eq!(err("CLIENT NO-TOUCH maybe"), SYNTAX_ERROR);
        assert_eq!(err("CLIENT ID"), "ERR CLIENT ID is not supported by colony");
        assert_eq!(err("CLIENT SETNAME"), arity_error("client|setname"));
        assert_eq!(
            err("CLIENT SETINFO lib-name"),
            arity_error("client|setinfo")
        );
        assert_eq!(err("CLIENT NO-EVICT"), arity_error("client|no-evict"));
        assert_eq!(err("CLIENT"), arity_error("client"));
        assert_eq!(
            err("CLIENT BOGUS"),
            "ERR unknown subcommand 'BOGUS'. Try CLIENT HELP."
        );
    }

    #[test]
    fn command_introspection() {
        assert_eq!(cmd("COMMAND"), Ok(ClientCommand::CommandDocs));
        assert_eq!(cmd("COMMAND DOCS"), Ok(ClientCommand::CommandDocs));
        assert_eq!(cmd("COMMAND DOCS get set"), Ok(ClientCommand::CommandDocs));
        assert_eq!(
            cmd("COMMAND INFO get set"),
            Ok(ClientCommand::CommandInfo(2))
        );
        assert_eq!(cmd("COMMAND COUNT"), Ok(ClientCommand::CommandCount));
        assert_eq!(err("COMMAND COUNT x"), arity_error("command|count"));
        assert_eq!(cmd("COMMAND LIST"), Ok(ClientCommand::CommandList));
        assert_eq!(
            err("COMMAND FOO"),
            "ERR unknown subcommand 'FOO'. Try COMMAND HELP."
        );
    }

    #[test]
    fn hello_refuses_resp3() {
        assert_eq!(cmd("HELLO"), Ok(ClientCommand::Hello(None)));
        assert_eq!(cmd("HELLO 2"), Ok(ClientCommand::Hello(Some(2))));
        assert_eq!(
            cmd("HELLO 2 AUTH default secret SETNAME app"),
            Ok(ClientCommand::Hello(Some(2)))
        );
        let noproto = "NOPROTO sorry, this protocol version is not supported.";
        assert_eq!(err("HELLO 3"), noproto);
        assert_eq!(err("HELLO 3 SETNAME app"), noproto);
        assert_eq!(err("HELLO 1"), noproto);
        assert_eq!(
            err("HELLO x"),
            "ERR Protocol version is not an integer or out of range"
        );
        assert_eq!(
            err("HELLO 3 AUTH u"),
            "ERR Syntax error in HELLO option 'AUTH'"
        );
        assert_eq!(err("HELLO 2 FOO"), "ERR Syntax error in HELLO option 'FOO'");
    }
}
