//! Inline commands: the plain-text form a person types into telnet (`SET k "a b"`).
//!
//! The line is split into arguments the way Redis's `sdssplitargs` does: blanks separate
//! arguments; `"..."` takes the escapes `\n \r \t \b \a \\ \"` and `\xHH`; `'...'` takes
//! `\'`; a closing quote must be followed by a blank or the end of the line.

use crate::core::blob::Blob;
/// The line's quotes do not balance (or a closing quote is followed by a non-blank).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnbalancedQuotes;

/// The arguments of one inline line (without its line ending). No arguments for a blank
/// line.
pub fn split_inline(line: &[u8]) -> Result<Vec<Blob>, UnbalancedQuotes> {
    let mut args = Vec::new();
    let mut at = 0;
    loop {
        while line.get(at).is_some_and(|b| is_blank(*b)) {
            at += 1;
        }
        if at >= line.len() {
            return Ok(args);
        }
        let (arg, next) = split_one(line, at)?;
        args.push(Blob::from(arg));
        at = next;
    }
}

/// `isspace` in the C locale.
fn is_blank(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

enum Quoting {
    None,
    Double,
    Single,
}

/// One argument starting at `start` (not a blank), and where the next search starts.
fn split_one(line: &[u8], start: usize) -> Result<(Vec<u8>, usize), UnbalancedQuotes> {
    let mut arg = Vec::new();
    let mut quoting = Quoting::None;
    let mut at = start;
    loop {
        let byte = line.get(at).copied();
        let next = line.get(at + 1).copied();
        match quoting {
            Quoting::Double => match byte {
                None => return Err(UnbalancedQuotes),
                Some(b'\\') if next == Some(b'x') => {
                    let high = line.get(at + 2).and_then(|b| hex_value(*b));
                    let low = line.get(at + 3).and_then(|b| hex_value(*b));
                    match (high, low) {
                        (Some(high), Some(low)) => {
                            arg.push(high * 16 + low);
                            at += 3;
                        }
                        _ => {
                            arg.push(b'x');
                            at += 1;
                        }
                    }
                }
                Some(b'\\') if next.is_some() => {
                    arg.push(match next.unwrap_or(b'\\') {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    at += 1;
                }
                Some(b'"') => return closed(arg, next, at + 1),
                Some(other) => arg.push(other),
            },
            Quoting::Single => match byte {
                None => return Err(UnbalancedQuotes),
                Some(b'\\') if next == Some(b'\'') => {
                    arg.push(b'\'');
                    at += 1;
                }
                Some(b'\'') => return closed(arg, next, at + 1),
                Some(other) => arg.push(other),
            },
            Quoting::None => match byte {
                None | Some(b' ' | b'\n' | b'\r' | b'\t') => return Ok((arg, at)),
                Some(b'"') => quoting = Quoting::Double,
                Some(b'\'') => quoting = Quoting::Single,
                Some(other) => arg.push(other),
            },
        }
        at += 1;
    }
}

/// A closing quote: it must be followed by a blank or the end of the line.
fn closed(
    arg: Vec<u8>,
    after_quote: Option<u8>,
    next: usize,
) -> Result<(Vec<u8>, usize), UnbalancedQuotes> {
    match after_quote {
        Some(byte) if !is_blank(byte) => Err(UnbalancedQuotes),
        _ => Ok((arg, next)),
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(line: &str) -> Result<Vec<String>, UnbalancedQuotes> {
        split_inline(line.as_bytes()).map(|args| {
            args.into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect()
        })
    }

    #[test]
    fn blanks_separate_arguments() {
        assert_eq!(split("PING").unwrap(), ["PING"]);
        assert_eq!(split("  set  k\tv  ").unwrap(), ["set", "k", "v"]);
        assert!(split("").unwrap().is_empty());
        assert!(split(" \t ").unwrap().is_empty());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(split(r#"SET k "a b""#).unwrap(), ["SET", "k", "a b"]);
        assert_eq!(split(r#""a\nb\t\"\\""#).unwrap(), ["a\nb\t\"\\"]);
        assert_eq!(split(r#""\x41\x6a\xZZ""#).unwrap(), ["AjxZZ"]);
        assert_eq!(split(r"'it\'s' 'a\nb'").unwrap(), ["it's", "a\\nb"]);
        assert_eq!(split(r#"a"b c"d"#), Err(UnbalancedQuotes));
        assert_eq!(split(r#"a"b c" d"#).unwrap(), ["ab c", "d"]);
        assert_eq!(split(r#""""#).unwrap(), [""]);
    }

    #[test]
    fn unbalanced_quotes() {
        assert_eq!(split(r#"SET k "abc"#), Err(UnbalancedQuotes));
        assert_eq!(split("SET k 'abc"), Err(UnbalancedQuotes));
        assert_eq!(split(r#""abc"x"#), Err(UnbalancedQuotes));
        assert_eq!(split(r#""abc\"#), Err(UnbalancedQuotes));
    }

    proptest! {
        #[test]
        fn never_panics(line in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = split_inline(&line);
        }

        #[test]
        fn plain_words_split_like_split_whitespace(words in proptest::collection::vec("[a-zA-Z0-9]{1,8}", 0..8)) {
            let line = words.join(" ");
            prop_assert_eq!(split(&line).unwrap(), words);
        }
    }
}
