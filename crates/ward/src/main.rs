//! `ward`: one binary, several roles. This file only wires them together;
//! each role lives in its own crate.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use ward_server::{LogFormat, ServerArgs, ServerConfig};

#[derive(Parser)]
#[command(
    name = "ward",
    version,
    about = "Ward: self-hosted secure access (zero-trust private access and internet access control)"
)]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Run the control plane: API, storage, sign-in, audit trail, background jobs.
    Server(ServerArgs),
    /// The API's command-line client.
    Ctl(ward_ctl::CtlArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.role {
        Role::Server(args) => server(args),
        Role::Ctl(args) => match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(ward_ctl::run(args)),
            Err(e) => fail(&format!("cannot start the runtime: {e}")),
        },
    }
}

fn server(args: ServerArgs) -> ExitCode {
    let config = match ServerConfig::load(&args) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    init_logging(config.log_format, &config.log_level);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match rt.block_on(ward_server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("{e:#}")),
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
