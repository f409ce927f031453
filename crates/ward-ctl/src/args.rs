//! The command line of `ward ctl`.
//!
//! Users' scripts rely on these names: add, never rename or remove.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand, ValueEnum};
use ward_core::Role;

/// Manage a Ward server through its REST API.
#[derive(Debug, Clone, Args)]
pub struct CtlArgs {
    /// Base URL of the Ward server (default: the profile's).
    #[arg(long, global = true, env = "WARD_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// API key or session token (default: the profile's).
    #[arg(
        long,
        global = true,
        env = "WARD_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Profile of the config file to use (default: its current profile, else "default").
    #[arg(long, global = true, env = "WARD_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,

    /// PEM file of the CA to trust for an https server (default: the profile's).
    #[arg(long = "ca-cert", global = true, env = "WARD_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Output format.
    #[arg(
        short = 'o',
        long,
        global = true,
        value_enum,
        default_value_t = OutputFormat::Table,
        value_name = "FORMAT"
    )]
    pub output: OutputFormat,

    #[command(subcommand)]
    pub command: CtlCommand,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// Pretty JSON (lists as one array of all items) for scripts.
    Json,
}

#[derive(Debug, Clone, Subcommand)]
pub enum CtlCommand {
    /// Sign in and save the session in a profile.
    Login(LoginArgs),
    /// End the session and forget its token.
    Logout,
    /// Show who the token belongs to and what it may do.
    Whoami,
    /// Manage tenants (operators).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage the tenant's administrator accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// See sign-in lock-outs.
    #[command(subcommand)]
    Lockout(LockoutCommand),
    /// Manage your own API keys.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Read the admin audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// The tenant's name (operators: `system`).
    #[arg(long)]
    pub tenant: String,
    /// The account's name.
    #[arg(long, value_name = "NAME")]
    pub user: String,
    /// Read the password as one line from standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TenantCommand {
    /// List the tenants.
    List,
    /// Show one tenant.
    Show { name: String },
    /// Create a tenant and its owner account `admin`.
    Create {
        name: String,
        /// Region to store the tenant's data in (default: the server's first).
        #[arg(long)]
        region: Option<String>,
        /// Read the password of the owner account `admin` from standard input.
        #[arg(long)]
        owner_password_stdin: bool,
    },
    /// Suspend a tenant: its accounts cannot sign in, its API keys are refused.
    Suspend { name: String },
    /// Put a suspended tenant back in service.
    Resume { name: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum AccountCommand {
    /// List the accounts.
    List,
    /// Show one account.
    Show { name: String },
    /// Create an account.
    Create {
        name: String,
        /// Its role.
        #[arg(long, value_parser = role_parser())]
        role: Role,
        /// Read its password as one line from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete an account.
    Delete { name: String },
    /// Change an account's role.
    SetRole {
        name: String,
        #[arg(value_parser = role_parser())]
        role: Role,
    },
    /// Lift an account's sign-in lock-out.
    Unlock { name: String },
    /// Change your own password, or with NAME another account's.
    ///
    /// For your own, standard input holds the current password, then the new
    /// one, one a line; for another account, the new password.
    Passwd {
        name: Option<String>,
        /// Read the password(s) from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum LockoutCommand {
    /// List the current lock-outs.
    List,
    /// Lift the lock-out of a source address (use `account unlock` for accounts).
    Clear { address: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum ApikeyCommand {
    /// Create an API key; its token is shown only once.
    Create {
        name: String,
        /// Limit the key to this role's permissions.
        #[arg(long, value_parser = role_parser())]
        role: Option<Role>,
        /// Lifetime, such as 30d or 12h (default: no expiry).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// List your API keys.
    List,
    /// Revoke one of your API keys.
    Revoke { id: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first.
    List(AuditListArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AuditListArgs {
    /// Only events by this account.
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
    /// Only events of this action, such as account.create.
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,
    /// Only events with this result: ok, denied, failed or error.
    #[arg(long, value_name = "RESULT")]
    pub result: Option<String>,
    /// Only events of this last while, such as 1h, 30m or 7d.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<std::time::Duration>,
    /// At most this many events, newest first [default: 100].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
}

/// `owner`, `admin`, `auditor` or `helpdesk`, listed in `--help`.
fn role_parser() -> impl TypedValueParser<Value = Role> {
    PossibleValuesParser::new(Role::ALL.map(Role::as_str)).try_map(|s| s.parse::<Role>())
}

/// A humantime duration: `90s`, `30m`, `1h`, `7d`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d =
        humantime::parse_duration(s.trim()).map_err(|e| format!("{e} (expected a duration such as 30m, 1h or 7d)"))?;
    if d.is_zero() {
        return Err("the duration must be more than zero".to_owned());
    }
    Ok(d)
}
