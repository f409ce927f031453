//! `ward`: one binary, several roles. This file only wires them together;
//! each role lives in its own crate.

mod embedded;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use ward_server::{LogFormat, ServerArgs, ServerConfig};

/// The relays allocate and free buffers of tens to hundreds of KiB at a
/// high rate (TLS records, HTTP/2 frames). The system allocator hands the
/// freed top of its heap back to the kernel and faults the pages in again
/// on the next allocation, which cost a quarter of bulk throughput
/// (bench/RESULTS.md); jemalloc keeps freed pages for a few seconds.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Run the control plane (API, storage, sign-in, audit trail) with an embedded gateway.
    Server(ServerArgs),
    /// Run a gateway alone, next to the resources it protects.
    Gateway(ward_gateway::remote::GatewayArgs),
    /// The endpoint agent: enrol this device, run its local proxies, forward ports.
    Agent(ward_agent::cli::AgentArgs),
    /// The API's command-line client.
    Ctl(ward_ctl::CtlArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.role {
        Role::Server(args) => server(args),
        Role::Gateway(args) => {
            init_logging(
                if args.log_json() {
                    LogFormat::Json
                } else {
                    LogFormat::Human
                },
                &args.log_level.clone(),
            );
            run_multi(async move { ward_gateway::remote::run(args, shutdown_signal()).await })
        }
        Role::Agent(args) => {
            init_logging(
                LogFormat::Human,
                &std::env::var("WARD_LOG_LEVEL").unwrap_or_else(|_| "info".into()),
            );
            // One thread: an agent carries one person's traffic, and a
            // single event loop opens a connection through the tunnel with
            // no hand-offs between threads (bench/RESULTS.md).
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(ward_agent::cli::run(args)),
                Err(e) => fail(&format!("cannot start the runtime: {e}")),
            }
        }
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
    run_multi(async move {
        let running = ward_server::start(config).await?;
        let link = running.gateway_link.clone();
        let (chain, key) = link.embedded_certificate().await?;
        let mut gateway_config = ward_gateway::GatewayConfig::new(
            ward_server::gateway_link::EMBEDDED_GATEWAY_ID,
            link.config().gateway_listen,
            chain,
            key,
            link.config().data_dir.join("gateway"),
        );
        gateway_config.threads = link.config().gateway_threads;
        gateway_config.dns_upstreams = link.config().dns_upstreams.clone();
        gateway_config.proxy_listen = link.config().proxy_listen;
        gateway_config.internet_allow_private = link.config().internet_allow_private;
        gateway_config.inspection_roots_pem = link.config().inspection_roots_pem.clone();
        if let Some(listen) = link.config().web_listen {
            gateway_config.web = Some(embedded::web_config(&link, listen, running.url.clone()).await?);
        }
        let gateway = ward_gateway::start(
            gateway_config,
            embedded::LocalSnapshots(link.clone()),
            embedded::LocalRecords(link),
        )
        .await?;
        ward_server::print_banner(&running, Some(gateway.local_addr()));
        shutdown_signal().await;
        tracing::info!("shutting down");
        gateway.shutdown().await;
        running.stop().await;
        Ok(())
    })
}

fn run_multi(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match rt.block_on(fut) {
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

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
