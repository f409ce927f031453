//! Secrets read from standard input, one a line.

use std::io::BufRead;

use anyhow::{anyhow, bail, Result};

/// Reads one line per name in `what` (e.g. `["current password", "new
/// password"]`), strips the line ending (`\n` or `\r\n`) and refuses empty
/// values. Nothing else is trimmed: spaces may be part of a password.
pub fn read_secret_lines(input: &mut dyn BufRead, what: &[&str]) -> Result<Vec<String>> {
    let mut values = Vec::with_capacity(what.len());
    for name in what {
        let mut line = String::new();
        let n = input
            .read_line(&mut line)
            .map_err(|e| anyhow!("cannot read the {name} from standard input: {e}"))?;
        if n == 0 {
            bail!("expected the {name} on standard input, found the end of it");
        }
        if let Some(rest) = line.strip_suffix('\n') {
            line.truncate(rest.len());
            if let Some(rest) = line.strip_suffix('\r') {
                line.truncate(rest.len());
            }
        }
        if line.is_empty() {
            bail!("the {name} read from standard input is empty");
        }
        values.push(line);
    }
    Ok(values)
}

/// Reads one secret line.
pub fn read_secret(input: &mut dyn BufRead, what: &str) -> Result<String> {
    let mut values = read_secret_lines(input, &[what])?;
    values
        .pop()
        .ok_or_else(|| anyhow!("expected the {what} on standard input"))
}

/// Asks for one line on a terminal: `question` on standard error, the
/// answer from standard input.
pub fn prompt(input: &mut dyn BufRead, question: &str) -> Result<String> {
    use std::io::Write;
    let mut err = std::io::stderr();
    write!(err, "{question}: ")?;
    err.flush()?;
    Ok(read_secret(input, question)?.trim().to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn strips_line_endings_only() {
        let mut input: &[u8] = b" pass word \r\nsecond\n";
        assert_eq!(read_secret(&mut input, "password").unwrap(), " pass word ");
        assert_eq!(read_secret(&mut input, "password").unwrap(), "second");
        let mut input: &[u8] = b"no newline";
        assert_eq!(read_secret(&mut input, "password").unwrap(), "no newline");
    }

    #[test]
    fn reads_two_lines() {
        let mut input: &[u8] = b"old\nnew\n";
        assert_eq!(
            read_secret_lines(&mut input, &["current password", "new password"]).unwrap(),
            ["old", "new"]
        );
        let mut input: &[u8] = b"old\n";
        let err = read_secret_lines(&mut input, &["current password", "new password"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected the new password on standard input, found the end of it"
        );
    }

    #[test]
    fn refuses_empty_values() {
        for input in [&b"\n"[..], b"\r\n", b""] {
            let mut input = input;
            assert!(read_secret(&mut input, "password").is_err());
        }
    }
}
