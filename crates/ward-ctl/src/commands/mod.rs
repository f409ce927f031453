//! The commands, one module per noun, and what they share: which server,
//! which token, which CA.

mod access;
mod account;
mod apikey;
mod audit;
mod devices;
mod internet;
mod mfa;
mod session;
mod tenant;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use ward_client::{Client, ClientConfig};

use crate::args::{CtlArgs, CtlCommand, LockoutCommand, OutputFormat};
use crate::output;
use crate::profile::{ConfigFile, Profile};

/// The error when no server is known.
pub const NO_SERVER: &str = "no server: pass --server URL or run `ward ctl --server URL login ...`";
/// The error when no token is known.
pub const NOT_LOGGED_IN: &str = "not logged in: run `ward ctl login ...` or set WARD_TOKEN";

/// Everything a command needs: the global flags, the config file, the
/// terminal's streams.
pub(crate) struct Ctx<'a> {
    pub server: Option<String>,
    pub token: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub output: OutputFormat,
    pub config_path: Result<PathBuf>,
    pub config: ConfigFile,
    pub profile_name: String,
    pub stdin: &'a mut (dyn BufRead + Send),
    pub out: &'a mut (dyn Write + Send),
    /// Standard input is a terminal: a missing second factor may be asked for.
    pub interactive: bool,
}

/// Runs a parsed command line.
pub(crate) async fn execute(
    args: CtlArgs,
    config_path: Result<PathBuf>,
    stdin: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
    interactive: bool,
) -> Result<()> {
    let config = match &config_path {
        Ok(path) => ConfigFile::load(path)?,
        Err(_) => ConfigFile::default(),
    };
    let non_empty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let profile_name = config.selected_name(args.profile.as_deref());
    let mut ctx = Ctx {
        server: non_empty(args.server),
        token: non_empty(args.token),
        ca_cert: args.ca_cert.filter(|p| !p.as_os_str().is_empty()),
        output: args.output,
        config_path,
        config,
        profile_name,
        stdin,
        out,
        interactive,
    };
    match args.command {
        CtlCommand::Login(a) => session::login(&mut ctx, a).await,
        CtlCommand::Logout => session::logout(&mut ctx).await,
        CtlCommand::Whoami => session::whoami(&mut ctx).await,
        CtlCommand::Tenant(c) => tenant::run(&mut ctx, c).await,
        CtlCommand::Account(c) => account::run(&mut ctx, c).await,
        CtlCommand::Lockout(LockoutCommand::List) => {
            let client = ctx.client()?;
            let items = client.list_all(|p| client.list_lockouts(p)).await?;
            output::list(ctx.out, ctx.output, &items)
        }
        CtlCommand::Lockout(LockoutCommand::Clear { address }) => {
            ctx.client()?.clear_address_lockout(&address).await?;
            if ctx.output == OutputFormat::Table {
                writeln!(ctx.out, "Lock-out of address {address} lifted.")?;
            }
            Ok(())
        }
        CtlCommand::Apikey(c) => apikey::run(&mut ctx, c).await,
        CtlCommand::Audit(c) => audit::run(&mut ctx, c).await,
        CtlCommand::Group(c) => access::group(&mut ctx, c).await,
        CtlCommand::Idp(c) => access::idp(&mut ctx, c).await,
        CtlCommand::App(c) => access::app(&mut ctx, c).await,
        CtlCommand::Rule(c) => access::rule(&mut ctx, c).await,
        CtlCommand::Enroll(c) => devices::enroll(&mut ctx, c).await,
        CtlCommand::Device(c) => devices::device(&mut ctx, c).await,
        CtlCommand::Posture(c) => devices::posture(&mut ctx, c).await,
        CtlCommand::Logs(crate::args::LogsCommand::Web(a)) => internet::logs(&mut ctx, "web", a).await,
        CtlCommand::Logs(crate::args::LogsCommand::Dns(a)) => internet::logs(&mut ctx, "dns", a).await,
        CtlCommand::Logs(c) => devices::logs(&mut ctx, c).await,
        CtlCommand::DomainList(c) => internet::domain_list(&mut ctx, c).await,
        CtlCommand::Internet(c) => internet::internet(&mut ctx, c).await,
        CtlCommand::User(c) => access::user(&mut ctx, c).await,
        CtlCommand::Gateway(c) => devices::gateway(&mut ctx, c).await,
        CtlCommand::Mfa(c) => mfa::run(&mut ctx, c).await,
    }
}

/// Where to connect, as resolved from the flags and the profile.
pub(crate) struct Target {
    /// The normalised server URL.
    pub server: String,
    /// The token, if one is known for this server.
    pub token: Option<String>,
    /// The CA file to trust, if any (absolute).
    pub ca_cert: Option<PathBuf>,
    /// Whether the selected profile is for this same server.
    pub profile_matches: bool,
}

impl Ctx<'_> {
    /// The selected profile, if the config file has it.
    pub fn profile(&self) -> Option<&Profile> {
        self.config.profiles.get(&self.profile_name)
    }

    /// Server = `--server`, else the profile's. The profile's token and CA
    /// are only used for the profile's own server, so a token is never sent
    /// to a server it was not issued by.
    pub fn target(&self) -> Result<Target> {
        let profile = self.profile();
        let raw = match (&self.server, profile) {
            (Some(server), _) => server.clone(),
            (None, Some(p)) if !p.server.trim().is_empty() => p.server.clone(),
            _ => bail!(NO_SERVER),
        };
        let url = ward_client::parse_server_url(&raw)?;
        let profile_matches = profile.is_some_and(|p| ward_client::parse_server_url(&p.server).is_ok_and(|u| u == url));
        let from_profile = profile.filter(|_| profile_matches);
        let token = self
            .token
            .clone()
            .or_else(|| from_profile.and_then(|p| p.token.clone()))
            .filter(|t| !t.is_empty());
        let ca_cert = match &self.ca_cert {
            Some(path) => Some(absolute(path)?),
            None => from_profile.and_then(|p| p.ca_cert.clone()),
        };
        Ok(Target {
            server: url.as_str().trim_end_matches('/').to_owned(),
            token,
            ca_cert,
            profile_matches,
        })
    }

    /// A client with a token; fails when no token is known.
    pub fn client(&self) -> Result<Client> {
        let target = self.target()?;
        if target.token.is_none() {
            match self.profile() {
                Some(p) if !target.profile_matches && p.token.is_some() => bail!(
                    "{NOT_LOGGED_IN} (profile {} is for {}, not {})",
                    self.profile_name,
                    p.server,
                    target.server
                ),
                _ => bail!(NOT_LOGGED_IN),
            }
        }
        build_client(&target)
    }
}

/// Builds the client of a target; reads its CA file for an https server.
pub(crate) fn build_client(target: &Target) -> Result<Client> {
    let ca_cert_pem = match &target.ca_cert {
        Some(path) if target.server.starts_with("https:") => Some(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow!("cannot read the CA certificate {}: {e}", path.display()))?,
        ),
        _ => None,
    };
    Ok(Client::new(ClientConfig {
        server: target.server.clone(),
        token: target.token.clone(),
        ca_cert_pem,
        pin: None,
    })?)
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| anyhow!("bad path {}: {e}", path.display()))
}
