//! The texts of the error replies, worded as Redis words them, so that clients and
//! tests written against Redis see what they expect. Anything quoted from the client is
//! cut to 128 bytes, as Redis's `%.128s` does.

use crate::core::blob::Blob;
pub(super) const SYNTAX_ERROR: &str = "ERR syntax error";
pub(super) const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
pub(super) const NOPROTO: &str = "NOPROTO sorry, this protocol version is not supported.";
pub(super) const BAD_CLIENT_NAME: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";
/// How much of a command name or its arguments an error quotes (Redis's `%.128s`).
const QUOTED_MAX: usize = 128;

pub(super) fn wrong_arity(command: &str) -> String {
    format!("ERR wrong number of arguments for '{command}' command")
}

pub(super) fn invalid_expire(command: &str) -> String {
    format!("ERR invalid expire time in '{command}' command")
}

pub(super) fn not_supported(what: &str) -> String {
    format!("ERR {what} is not supported by colony")
}

pub(super) fn unknown_subcommand(sub: &[u8], command: &str) -> String {
    format!(
        "ERR unknown subcommand '{}'. Try {command} HELP.",
        quoted_text(sub)
    )
}

/// Redis's text: the name as sent, then each argument quoted while the list is under
/// 128 bytes, each followed by a space.
pub(super) fn unknown_command(args: &[Blob]) -> String {
    let name = args.first().map(|a| a.as_slice()).unwrap_or_default();
    let mut listed = String::new();
    for arg in args.iter().skip(1) {
        if listed.len() >= QUOTED_MAX {
            break;
        }
        let room = QUOTED_MAX - listed.len();
        let shown = arg.get(..room.min(arg.len())).unwrap_or_default();
        listed.push('\'');
        listed.push_str(&String::from_utf8_lossy(shown));
        listed.push_str("' ");
    }
    format!(
        "ERR unknown command '{}', with args beginning with: {listed}",
        quoted_text(name)
    )
}

/// At most 128 bytes of a client-sent word, for quoting in an error.
pub(super) fn quoted_text(text: &[u8]) -> String {
    String::from_utf8_lossy(text.get(..QUOTED_MAX.min(text.len())).unwrap_or_default()).into_owned()
}

pub(super) fn upper_text(text: &[u8]) -> String {
    quoted_text(text).to_ascii_uppercase()
}

pub(super) fn lower_text(text: &[u8]) -> String {
    quoted_text(text).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_quotes_at_most_128_bytes_of_arguments() {
        let args: Vec<Blob> = vec![
            b"nope".into(),
            vec![b'a'; 100].into(),
            vec![b'b'; 100].into(),
            b"c".into(),
        ];
        assert_eq!(
            unknown_command(&args),
            format!(
                "ERR unknown command 'nope', with args beginning with: '{}' '{}' ",
                "a".repeat(100),
                "b".repeat(25)
            )
        );
    }

    #[test]
    fn quoting_survives_bytes_that_are_not_utf8() {
        assert_eq!(quoted_text(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(quoted_text(&[b'x'; 300]).len(), 128);
        assert_eq!(
            unknown_subcommand(b"\xc3", "CLIENT"),
            "ERR unknown subcommand '\u{fffd}'. Try CLIENT HELP."
        );
    }
}
