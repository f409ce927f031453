//! `ward ctl`: the command-line client of Ward's REST API.
//!
//! A library: the `ward` binary parses `ward ctl ...` into [`CtlArgs`] (a
//! `clap::Args`, so it nests as a subcommand) and awaits [`run`], which prints
//! results on standard output (aligned tables, or JSON with `-o json`) and,
//! on failure, exactly one line `error: <message>` on standard error, and
//! returns exit code 1. Usage errors are clap's own (exit code 2).
//!
//! Sessions live in profiles of `$WARD_CONFIG_DIR/config.toml` (default
//! `~/.config/ward/config.toml`), see [`profile`]. The server is `--server`
//! (`WARD_SERVER`) or the profile's; the token `--token` (`WARD_TOKEN`) or the
//! profile's, which is only ever sent to the server of its profile.
//!
//! Modules: [`args`] (the command line), [`profile`] (the config file),
//! [`output`] (tables and JSON), `input` (secrets from standard input) and
//! `commands` (one module per noun).
//!
//! **Architecture invariant:** `ward ctl` talks to the server only through
//! `ward-client`, whose typed methods are the API's; it never builds HTTP
//! requests itself. What it adds is presentation: the command line, profiles
//! and output.

pub mod args;
mod commands;
mod input;
pub mod output;
pub mod profile;

use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

pub use args::{CtlArgs, CtlCommand, OutputFormat};
use ward_client::ClientError;

/// Runs `ward ctl` with parsed arguments; prints results and errors.
///
/// Returns [`ExitCode::SUCCESS`], or `1` after printing one line
/// `error: <message>` on standard error.
pub async fn run(args: CtlArgs) -> ExitCode {
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let mut stdin = BufReader::new(std::io::stdin());
    let mut stdout = std::io::stdout();
    let result = commands::execute(args, profile::config_path(), &mut stdin, &mut stdout, interactive).await;
    exit_code(result)
}

/// [`run`] with the config file at `config_path` and the given streams; the
/// error, if any, is returned rather than printed. Standard input is not
/// taken for a terminal: nothing is asked for.
pub async fn run_with(
    args: CtlArgs,
    config_path: PathBuf,
    stdin: &mut (dyn std::io::BufRead + Send),
    stdout: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    commands::execute(args, Ok(config_path), stdin, stdout, false).await
}

fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `ward ctl ... | head`: the reader left; not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_message(&e));
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// The error as one line, without `error: `.
///
/// API errors read `<message> (<code>, HTTP <status>)`.
pub fn error_message(e: &anyhow::Error) -> String {
    let text = match e.downcast_ref::<ClientError>() {
        Some(ce @ ClientError::Connect { .. }) => {
            let msg = ce.to_string();
            if msg.contains("certificate") {
                format!("{msg} (use --ca-cert FILE with the PEM of the server's CA)")
            } else {
                msg
            }
        }
        Some(ce) => ce.to_string(),
        None => format!("{e:#}"),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
