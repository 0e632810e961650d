//! The runner's input: two lines on stdin, the limit line (see `limits`) and a command
//! line, parsed into a [`Request`].
//!
//! JoyOI's runner gave the command line to a shell; this one splits it itself, so pipes,
//! redirections and `$VAR` mean nothing unless the command is `sh -c '...'`. It is split on
//! whitespace. Double quotes group words and understand
//! `\"` and `\\`; single quotes group words literally; a quote may sit inside a word
//! (`a"b c"` is the one argument `ab c`). Backslashes outside quotes are kept as they are.

use std::fmt;
use std::io::{self, BufRead};

use crate::limits::{self, LimitError, Limits};

/// What the caller asked the runner to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub limits: Limits,
    /// The command line as it was given (without the line ending), for the report.
    pub command_line: String,
    /// The command line split into program and arguments; never empty.
    pub argv: Vec<String>,
}

#[derive(Debug)]
pub enum RequestError {
    Read(io::Error),
    MissingLine(&'static str),
    BadLimits { line: String, err: LimitError },
    EmptyCommand,
    UnterminatedQuote(char),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(err) => write!(f, "cannot read the request from stdin: {err}"),
            Self::MissingLine(what) => write!(f, "stdin ended before the {what} line"),
            Self::BadLimits { line, err } => write!(
                f,
                "bad time limit line {line:?}: {err} (expected \"user_ms [total_ms [vm_mb]]\", e.g. \"1000 2000\")"
            ),
            Self::EmptyCommand => write!(f, "the command line is empty"),
            Self::UnterminatedQuote(quote) => {
                write!(f, "the command line has an unterminated {quote} quote")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// Reads the two request lines from `input` and parses them.
pub fn read_request(mut input: impl BufRead) -> Result<Request, RequestError> {
    let limit_line = read_line(&mut input, "time limit")?;
    let command_line = read_line(&mut input, "command")?;
    let limits =
        limits::parse_limit_line(&limit_line).map_err(|err| RequestError::BadLimits { line: limit_line, err })?;
    let argv = split_command_line(&command_line)?;
    Ok(Request { limits, command_line: command_line.trim().to_string(), argv })
}

/// Reads the next line of `input` without its line ending; `what` names the line in errors.
fn read_line(input: &mut impl BufRead, what: &'static str) -> Result<String, RequestError> {
    let mut line = String::new();
    let read = input.read_line(&mut line).map_err(RequestError::Read)?;
    if read == 0 {
        return Err(RequestError::MissingLine(what));
    }
    // JoyOI clients may send CRLF line endings.
    let trimmed = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(trimmed);
    Ok(line)
}

/// Splits a command line into words, honouring simple single and double quotes.
pub fn split_command_line(line: &str) -> Result<Vec<String>, RequestError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word exists once any character or a pair of quotes was seen, so `""` is an
    // (empty) argument while plain whitespace is not.
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(RequestError::UnterminatedQuote('"')),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped @ ('"' | '\\')) => word.push(escaped),
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err(RequestError::UnterminatedQuote('"')),
                        },
                        Some(other) => word.push(other),
                    }
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(RequestError::UnterminatedQuote('\'')),
                        Some('\'') => break,
                        Some(other) => word.push(other),
                    }
                }
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err(RequestError::EmptyCommand);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn check(line: &str, expected: &[&str]) {
        let words = split_command_line(line).unwrap_or_else(|err| panic!("{line:?} should split, got error: {err}"));
        assert_eq!(words, expected, "splitting {line:?}");
    }

    #[test]
    fn splits_on_whitespace() {
        check("./Main.out", &["./Main.out"]);
        check("  python3   Main.py\t-O  ", &["python3", "Main.py", "-O"]);
    }

    #[test]
    fn double_quotes_group_words_and_unescape() {
        check(r#"sh -c "exit 3""#, &["sh", "-c", "exit 3"]);
        check(r#"echo "say \"hi\"" "a\\b" "c\d""#, &["echo", r#"say "hi""#, r"a\b", r"c\d"]);
        check(r#"echo "" x"#, &["echo", "", "x"]);
        check(r#"a"b c"d"#, &["ab cd"]);
    }

    #[test]
    fn single_quotes_are_literal() {
        check(r#"sh -c 'exit 3'"#, &["sh", "-c", "exit 3"]);
        check(r#"echo 'a "b" \c'"#, &["echo", r#"a "b" \c"#]);
    }

    #[test]
    fn backslash_outside_quotes_is_kept() {
        check(r"C:\judge\Main.exe", &[r"C:\judge\Main.exe"]);
    }

    #[test]
    fn rejects_bad_command_lines() {
        assert!(matches!(split_command_line(""), Err(RequestError::EmptyCommand)));
        assert!(matches!(split_command_line(" \t "), Err(RequestError::EmptyCommand)));
        assert!(matches!(split_command_line(r#"echo "hi"#), Err(RequestError::UnterminatedQuote('"'))));
        assert!(matches!(split_command_line("echo 'hi"), Err(RequestError::UnterminatedQuote('\''))));
    }

    #[test]
    fn reads_two_lines_with_either_line_ending() {
        let request = read_request("1000 3000\r\n./Main.out arg\r\n".as_bytes())
            .unwrap_or_else(|err| panic!("request should parse: {err}"));
        assert_eq!(request.limits.user_time, Duration::from_millis(1000));
        assert_eq!(request.limits.total_time, Duration::from_millis(3000));
        assert_eq!(request.command_line, "./Main.out arg");
        assert_eq!(request.argv, ["./Main.out", "arg"]);

        // The last line needs no line ending.
        let request = read_request("5\necho hi".as_bytes()).unwrap_or_else(|err| panic!("request should parse: {err}"));
        assert_eq!(request.argv, ["echo", "hi"]);
    }

    #[test]
    fn bad_limit_lines_name_the_line_and_the_form() {
        let err = read_request("1000 2000 0 5\necho hi\n".as_bytes()).err().map(|err| err.to_string());
        let expected = "bad time limit line \"1000 2000 0 5\": it has 4 numbers, at most 3 are understood \
                        (expected \"user_ms [total_ms [vm_mb]]\", e.g. \"1000 2000\")";
        assert_eq!(err.as_deref(), Some(expected));
    }

    #[test]
    fn reports_missing_lines() {
        assert!(matches!(read_request("".as_bytes()), Err(RequestError::MissingLine("time limit"))));
        assert!(matches!(read_request("1000\n".as_bytes()), Err(RequestError::MissingLine("command"))));
    }
}
