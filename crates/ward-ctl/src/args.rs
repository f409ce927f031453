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
    /// Manage end users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage groups of end users.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Manage identity sources (OpenID Connect providers end users sign in with).
    #[command(subcommand)]
    Idp(IdpCommand),
    /// Manage applications (what users reach).
    #[command(subcommand)]
    App(AppCommand),
    /// Manage access rules, and test what they decide.
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Make enrolment codes for users' devices.
    #[command(subcommand)]
    Enroll(EnrollCommand),
    /// See and revoke enrolled devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// What the tenant requires of devices to count them compliant.
    #[command(subcommand)]
    Posture(PostureCommand),
    /// Read access records, web and DNS records.
    #[command(subcommand)]
    Logs(LogsCommand),
    /// Manage domain lists (what internet rules match).
    #[command(subcommand)]
    DomainList(DomainListCommand),
    /// Internet access control: rules and settings.
    #[command(subcommand)]
    Internet(InternetCommand),
    /// Gateways (operators).
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Multi-factor authentication of your own account.
    #[command(subcommand)]
    Mfa(MfaCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum MfaCommand {
    /// Turn MFA on: add the account to an authenticator app (QR code or
    /// secret), then confirm with the code it shows; prints the recovery codes.
    ///
    /// On a terminal the code is asked for. Otherwise the enrolment is
    /// printed, and `mfa enable --code CODE` confirms it.
    Enable {
        /// Confirm the enrolment started last with this code (no new secret is made).
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
    },
    /// Turn MFA off (refused while the tenant requires it).
    Disable {
        /// A code of the authenticator app, or a recovery code.
        #[arg(long, value_name = "CODE")]
        code: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum LogsCommand {
    /// Private-access connection records, newest first.
    Access {
        /// Only records of this last while, such as 1h, 30m or 7d.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        since: Option<std::time::Duration>,
        /// Only this end user's.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Only this device's.
        #[arg(long, value_name = "DEVICE")]
        device: Option<String>,
        /// Only allowed or only denied attempts.
        #[arg(long, value_parser = ["allow", "deny"])]
        action: Option<String>,
        /// At most this many records [default: 100].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
    /// Web records (internet traffic through the gateways), newest first.
    Web(InternetLogArgs),
    /// DNS records (queries through the gateways' DNS filter), newest first.
    Dns(InternetLogArgs),
}

/// Filters of `logs web` and `logs dns`.
#[derive(Debug, Clone, Args)]
pub struct InternetLogArgs {
    /// Only records of this last while (1h, 30m, 7d) or since an RFC 3339 time.
    #[arg(long, value_name = "SINCE")]
    pub since: Option<String>,
    /// Only this end user's.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only this device's.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// Only records with this action (allow, block, warn, proceed, monitor).
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,
    /// Only this domain and the names below it.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// At most this many records (or top entries) [default: 100; 10 with --top].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// The most frequent domains or users instead of the records (web only).
    #[arg(long, value_name = "BY", value_parser = ["domain", "user"])]
    pub top: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum DomainListCommand {
    /// List the tenant's domain lists.
    List,
    /// Show a list and its entries (the first 100, or those containing --contains).
    Show {
        name: String,
        /// Only entries containing this text.
        #[arg(long, value_name = "TEXT")]
        contains: Option<String>,
        /// At most this many entries [default: 100].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
    /// Create a list from domains, or from a URL.
    Create {
        name: String,
        /// Exact names and *.wildcards (repeatable, or comma-separated).
        #[arg(long = "domain", value_name = "D[,D...]", value_delimiter = ',')]
        domains: Vec<String>,
        /// Import from this http(s) URL (hosts, adblock or plain); `refresh` imports it again.
        #[arg(long, value_name = "URL", conflicts_with = "domains")]
        url: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Replace a list's entries with a file or an http(s) URL (the list is made if missing).
    Import {
        name: String,
        /// A file, `-` for standard input, or an http(s) URL the server downloads.
        file: String,
        /// The file's format [default: detected].
        #[arg(long, value_parser = ["hosts", "adblock", "plain"])]
        format: Option<String>,
    },
    /// Add entries to a list.
    Add {
        name: String,
        #[arg(required = true)]
        domains: Vec<String>,
    },
    /// Remove entries from a list.
    Remove {
        name: String,
        #[arg(required = true)]
        domains: Vec<String>,
    },
    /// Delete a list no rule names.
    Delete { name: String },
    /// Import a list again from its URL.
    Refresh { name: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum InternetCommand {
    /// Manage internet rules.
    #[command(subcommand)]
    Rule(InternetRuleCommand),
    /// Show the tenant's internet settings; with flags, change them.
    Settings(InternetSettingsArgs),
    /// The tenant's TLS-inspection CA certificate (PEM), to install as a
    /// trusted root on endpoints. It exists once inspection has been turned on.
    InspectionCa {
        /// Write the certificate to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum InternetRuleCommand {
    /// List internet rules, by priority.
    List,
    /// Show one rule.
    Show { id: String },
    /// Create a rule.
    Create {
        /// 1 is evaluated first within its stage.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        priority: u32,
        #[arg(long, value_parser = ["allow", "block", "warn", "monitor"])]
        action: String,
        /// Domain lists (repeatable, or comma-separated); none: every destination.
        #[arg(long = "list", value_name = "NAME[,NAME...]", value_delimiter = ',')]
        lists: Vec<String>,
        /// End users (repeatable, or comma-separated); no users and no groups: everyone.
        #[arg(long = "user", value_name = "USER[,USER...]", value_delimiter = ',')]
        users: Vec<String>,
        /// Groups (repeatable, or comma-separated).
        #[arg(long = "group", value_name = "GROUP[,GROUP...]", value_delimiter = ',')]
        groups: Vec<String>,
        /// Put the rule in the global allow-list (evaluated before any block rule).
        #[arg(long)]
        global_allow: bool,
        /// Inspect the TLS of matching traffic (when the tenant has inspection on).
        #[arg(long)]
        inspect: bool,
        /// Create the rule disabled.
        #[arg(long)]
        disabled: bool,
        /// RFC 3339 time from which the rule applies.
        #[arg(long, value_name = "TIME")]
        valid_from: Option<String>,
        /// RFC 3339 time from which the rule no longer applies.
        #[arg(long, value_name = "TIME")]
        valid_until: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Change a rule: only what the flags name changes.
    Update(InternetRuleUpdateArgs),
    /// Delete a rule.
    Delete { id: String },
    /// Enable a rule.
    Enable { id: String },
    /// Disable a rule.
    Disable { id: String },
    /// What would happen to this user asking for this host now, and why.
    Test {
        #[arg(long)]
        user: String,
        host: String,
    },
}

#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)
    .args(["priority", "action", "lists", "users", "groups", "global_allow", "inspect", "enabled",
           "valid_from", "valid_until", "description"])))]
pub struct InternetRuleUpdateArgs {
    pub id: String,
    /// 1 is evaluated first within its stage.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub priority: Option<u32>,
    #[arg(long, value_parser = ["allow", "block", "warn", "monitor"])]
    pub action: Option<String>,
    /// Replace the rule's domain lists ("" for none: every destination).
    #[arg(long = "list", value_name = "NAME[,NAME...]", value_delimiter = ',')]
    pub lists: Option<Vec<String>>,
    /// Replace the rule's end users ("" for none).
    #[arg(long = "user", value_name = "USER[,USER...]", value_delimiter = ',')]
    pub users: Option<Vec<String>>,
    /// Replace the rule's groups ("" for none).
    #[arg(long = "group", value_name = "GROUP[,GROUP...]", value_delimiter = ',')]
    pub groups: Option<Vec<String>>,
    /// Put the rule in the global allow-list, or take it out.
    #[arg(long, value_name = "BOOL")]
    pub global_allow: Option<bool>,
    /// Inspect the TLS of matching traffic, or not.
    #[arg(long, value_name = "BOOL")]
    pub inspect: Option<bool>,
    /// Enable or disable the rule.
    #[arg(long, value_name = "BOOL")]
    pub enabled: Option<bool>,
    /// RFC 3339 time from which the rule applies ("" to remove the bound).
    #[arg(long, value_name = "TIME")]
    pub valid_from: Option<String>,
    /// RFC 3339 time from which the rule no longer applies ("" to remove the bound).
    #[arg(long, value_name = "TIME")]
    pub valid_until: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct InternetSettingsArgs {
    /// Send users' internet traffic through the gateways.
    #[arg(long, value_name = "BOOL")]
    pub enabled: Option<bool>,
    /// What happens when no rule matches.
    #[arg(long, value_parser = ["allow", "block"])]
    pub default_action: Option<String>,
    /// How the DNS filter answers a blocked name.
    #[arg(long, value_parser = ["nxdomain", "address"])]
    pub dns_block: Option<String>,
    /// The IPv4 address of blocked names (with --dns-block address).
    #[arg(long, value_name = "IP")]
    pub dns_block_ipv4: Option<String>,
    /// The IPv6 address of blocked names (with --dns-block address).
    #[arg(long, value_name = "IP")]
    pub dns_block_ipv6: Option<String>,
    /// TLS inspection.
    #[arg(long, value_parser = ["on", "off"])]
    pub inspection: Option<String>,
    /// Lists never inspected (replaces the current ones; "" for none).
    #[arg(long, value_name = "L[,L...]", value_delimiter = ',')]
    pub do_not_inspect: Option<Vec<String>>,
    /// Destinations agents send directly (domains, *.wildcards, CIDRs; replaces; "" for none).
    #[arg(long, value_name = "D[,D...]", value_delimiter = ',')]
    pub bypass: Option<Vec<String>>,
    /// How long a click-through of a warning lasts, in minutes (1 to 1440).
    #[arg(long, value_name = "N")]
    pub warn_minutes: Option<u32>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ProxyCredentialCommand {
    /// Make a credential of the explicit proxy port; the password is printed once.
    Create { name: String },
    /// List the user's credentials.
    List { name: String },
    /// Delete one of the user's credentials.
    Delete { name: String, id: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum GatewayCommand {
    /// List the gateways that joined.
    List,
    /// Make a one-time join code for `ward gateway --join-code`; the code is the last word printed.
    JoinCode {
        /// The gateway's name.
        name: String,
        /// How long the code can be used [default: 24h].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        ttl: Option<std::time::Duration>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum EnrollCommand {
    /// Make a one-time enrolment code for a user; the code is the last word printed.
    Create {
        #[arg(long, value_name = "USER")]
        user: String,
        /// How long the code can be used, such as 1h or 7d [default: 24h].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        ttl: Option<std::time::Duration>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum DeviceCommand {
    /// List enrolled devices.
    List,
    /// Show a device and its posture.
    Show { id: String },
    /// Revoke a device: it cannot connect, renew or report any more, at once.
    Revoke { id: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum PostureCommand {
    /// Show the tenant's posture requirements.
    Show,
    /// Replace the tenant's posture requirements (flags not given are not required).
    Set {
        #[arg(long)]
        disk_encryption: bool,
        #[arg(long)]
        firewall: bool,
        #[arg(long)]
        screen_lock: bool,
        /// Allowed operating systems, comma-separated (linux, macos, windows).
        #[arg(long, value_delimiter = ',', value_name = "OS[,OS...]")]
        os: Vec<String>,
        #[arg(long, value_name = "VERSION")]
        min_agent_version: Option<String>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// List end users.
    List,
    /// Show one end user.
    Show { name: String },
    /// Create an end user.
    Create {
        name: String,
        /// Add the user to this group (repeatable).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
    },
    /// Disable a user: its connections are refused.
    Disable { name: String },
    /// Enable a disabled user.
    Enable { name: String },
    /// Delete an end user.
    Delete { name: String },
    /// Set an end user's password, with which it signs in to the user portal,
    /// or remove it with --clear.
    ///
    /// With --password-stdin, standard input holds the new password on one line.
    Passwd {
        name: String,
        /// Read the new password as one line from standard input.
        #[arg(long, conflicts_with = "clear")]
        password_stdin: bool,
        /// Remove the user's password: it can no longer sign in to the portal.
        #[arg(long)]
        clear: bool,
    },
    /// Lift an end user's sign-in lock-out.
    Unlock { name: String },
    /// Credentials of the explicit proxy port (devices without the agent).
    #[command(subcommand)]
    ProxyCredential(ProxyCredentialCommand),
    /// Turn off an end user's two-step sign-in to the portal (for a lost
    /// phone); its portal sessions end.
    MfaReset { name: String },
    /// Set or remove an end user's attributes (dynamic groups match on them).
    Set {
        name: String,
        /// Set an attribute, `key=value` (repeatable), e.g. `department=Sales`.
        #[arg(long = "attr", value_name = "KEY=VALUE")]
        attrs: Vec<String>,
        /// Set the `email` attribute (its domain is `email_domain`).
        #[arg(long)]
        email: Option<String>,
        /// Remove an attribute (repeatable).
        #[arg(long = "unset", value_name = "KEY")]
        unset: Vec<String>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum GroupCommand {
    /// List groups and their members.
    List,
    /// Create a group: static (members added by hand), or dynamic with
    /// --when conditions (all must hold).
    Create {
        name: String,
        /// A condition on users' attributes, `key=value` (repeatable, AND),
        /// e.g. `department=Engineering` or `email_domain=corp.example`.
        #[arg(long = "when", value_name = "KEY=VALUE")]
        when: Vec<String>,
    },
    /// Replace a group's conditions, or make it static with --static.
    Set {
        name: String,
        #[arg(long = "when", value_name = "KEY=VALUE", required_unless_present = "make_static")]
        when: Vec<String>,
        /// Remove every condition: the group becomes static.
        #[arg(long = "static", conflicts_with = "when")]
        make_static: bool,
    },
    /// Delete a group (its users stay).
    Delete { name: String },
    /// Add a user to a group.
    AddMember { group: String, user: String },
    /// Remove a user from a group.
    RemoveMember { group: String, user: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum IdpCommand {
    /// List the tenant's identity sources (their secrets are never shown).
    List,
    /// Show one identity source, with an LDAP source's last sync.
    Show { name: String },
    /// Sync an LDAP source now: users, attributes and groups follow the
    /// directory; users gone from it are disabled.
    Sync { name: String },
    /// Add an OpenID Connect provider (--oidc-issuer) or an LDAP / Active
    /// Directory (--ldap-url) end users sign in to the portal with.
    ///
    /// OIDC: register the redirect URI it prints at the provider; standard
    /// input holds the client secret on one line. LDAP: standard input
    /// holds the service account's bind password on one line.
    Create(Box<IdpCreate>),
    /// Delete an identity source (its users and groups stay, unlinked).
    Delete { name: String },
}

/// `idp create`: an OpenID Connect provider (--oidc-issuer) or an LDAP /
/// Active Directory (--ldap-url).
#[derive(Debug, Clone, clap::Args)]
pub struct IdpCreate {
    pub name: String,
    /// The issuer URL, exactly as the provider's discovery document names it.
    #[arg(long, required_unless_present = "ldap_url", conflicts_with = "ldap_url")]
    pub oidc_issuer: Option<String>,
    #[arg(long, requires = "oidc_issuer")]
    pub client_id: Option<String>,
    /// Read the client secret as one line from standard input.
    #[arg(long)]
    pub client_secret_stdin: bool,
    /// OIDC: a claim copied to users' attributes (repeatable; `email` always is).
    #[arg(long = "attribute-claim", value_name = "CLAIM")]
    pub attribute_claims: Vec<String>,
    /// `ldaps://host[:port]`, or `ldap://host[:port]` (upgraded with StartTLS; plain LDAP is never used).
    #[arg(long)]
    pub ldap_url: Option<String>,
    /// The service account's DN, with which users and groups are searched.
    #[arg(long, requires = "ldap_url")]
    pub bind_dn: Option<String>,
    /// Read the service account's password as one line from standard input.
    #[arg(long)]
    pub bind_password_stdin: bool,
    /// Where users are searched, e.g. `ou=people,dc=corp,dc=example`.
    #[arg(long, requires = "ldap_url")]
    pub user_base: Option<String>,
    /// Default `(uid={username})`; Active Directory: `(sAMAccountName={username})`.
    #[arg(long)]
    pub user_filter: Option<String>,
    /// Where groups are searched; without it, no groups are read.
    #[arg(long)]
    pub group_base: Option<String>,
    /// `member` (default), `uniqueMember` or `memberOf`.
    #[arg(long)]
    pub group_membership: Option<String>,
    /// The attribute the user name is read from (default `uid`; AD `sAMAccountName`).
    #[arg(long)]
    pub username_attr: Option<String>,
    /// The attribute that identifies an entry for good (default `entryUUID`; AD `objectGUID`; `dn`).
    #[arg(long)]
    pub id_attr: Option<String>,
    /// A directory attribute copied to users' attributes, `attribute` or `key=attribute` (repeatable).
    #[arg(long = "sync-attr", value_name = "[KEY=]ATTRIBUTE")]
    pub sync_attrs: Vec<String>,
    /// A PEM file of the CA certificate(s) the directory's certificate comes from.
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
    /// How often the directory is synced (default 15m; 0: on demand only).
    #[arg(long)]
    pub sync_interval: Option<String>,
    /// The claim listing the user's groups (default `groups`).
    #[arg(long)]
    pub groups_claim: Option<String>,
    /// The claim the user name is taken from (default `preferred_username`).
    #[arg(long)]
    pub username_claim: Option<String>,
    /// Space-separated scopes (default `openid profile email`).
    #[arg(long)]
    pub scopes: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AppCommand {
    /// List applications.
    List,
    /// Create an application; it is denied to everyone until a rule allows it.
    Create {
        name: String,
        /// Addresses: IP, CIDR, domain or wildcard domain (`*.corp.example`), comma-separated.
        #[arg(long = "address", value_name = "A[,A...]", value_delimiter = ',', required = true)]
        addresses: Vec<String>,
        /// Ports and ranges, comma-separated: `22,443,8000-8100`.
        #[arg(
            long,
            alias = "port",
            value_name = "P[-Q][,...]",
            value_delimiter = ',',
            required = true
        )]
        ports: Vec<String>,
        /// A tag rules can name (repeatable).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Publish the application for clientless web access under this host name, through the
        /// gateways' HTTPS listeners (they proxy to the first address and the first port).
        #[arg(long, value_name = "HOST")]
        public_host: Option<String>,
        /// How the gateway speaks to a published application: `http` (default) or `https`.
        #[arg(long, value_parser = ["http", "https"], requires = "public_host")]
        upstream_scheme: Option<String>,
    },
    /// Change an application; only what the flags name changes. Gateways
    /// enforce it with the next snapshot.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)
        .args(["addresses", "ports", "tags", "public_host", "upstream_scheme"])))]
    Update {
        name: String,
        /// Replace the addresses, comma-separated.
        #[arg(long = "address", value_name = "A[,A...]", value_delimiter = ',')]
        addresses: Option<Vec<String>>,
        /// Replace the ports, comma-separated.
        #[arg(long, alias = "port", value_name = "P[-Q][,...]", value_delimiter = ',')]
        ports: Option<Vec<String>>,
        /// Replace the tags, comma-separated (`""` for none).
        #[arg(long = "tag", value_name = "TAG[,TAG...]", value_delimiter = ',')]
        tags: Option<Vec<String>>,
        /// Publish under this host name, move to it, or `""` to stop publishing.
        #[arg(long, value_name = "HOST")]
        public_host: Option<String>,
        /// `http` or `https`.
        #[arg(long, value_parser = ["http", "https"])]
        upstream_scheme: Option<String>,
    },
    /// Delete an application no rule names.
    Delete { name: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum RuleCommand {
    /// List rules, highest priority first.
    List,
    /// Create a rule. Priority 1 is the highest; the first matching rule decides; no match denies.
    Create(RuleCreateArgs),
    /// Delete a rule by id.
    Delete { id: String },
    /// Enable a disabled rule.
    Enable { id: String },
    /// Disable a rule without deleting it.
    Disable { id: String },
    /// Give a rule another priority (1 is the highest; one in use is refused).
    Priority { id: String, priority: u32 },
    /// Put all the rules in a new order: list every rule id, highest priority
    /// first. The priority numbers in use are given out again in that order.
    Reorder {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Would this user, on this device, reach HOST:PORT now? Sends no traffic.
    Test {
        #[arg(long, value_name = "USER")]
        user: String,
        #[arg(long, value_name = "DEVICE")]
        device: Option<String>,
        #[arg(long, value_name = "HOST:PORT")]
        to: String,
        /// The connection's source address.
        #[arg(long, value_name = "IP")]
        source: Option<String>,
        /// Test at this RFC 3339 time instead of now.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
}

#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("covers").required(true).args(["apps", "tags"])))]
pub struct RuleCreateArgs {
    #[arg(long)]
    pub priority: u32,
    /// `allow` or `block`.
    #[arg(long, value_parser = ["allow", "block"])]
    pub action: String,
    /// Application the rule covers (repeatable).
    #[arg(long = "app", value_name = "NAME", conflicts_with = "tags")]
    pub apps: Vec<String>,
    /// Application tag the rule covers (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// User the rule applies to (repeatable; with no --user and no --group, everyone).
    #[arg(long = "user", value_name = "USER")]
    pub users: Vec<String>,
    /// Group the rule applies to (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Only devices that meet the tenant's posture requirements match.
    #[arg(long)]
    pub require_compliant_device: bool,
    /// With --require-compliant-device: only record non-compliant devices instead of refusing them.
    #[arg(long)]
    pub observe_only: bool,
    /// RFC 3339 time from which the rule applies.
    #[arg(long, value_name = "TIME")]
    pub valid_from: Option<String>,
    /// RFC 3339 time from which the rule no longer applies.
    #[arg(long, value_name = "TIME")]
    pub valid_until: Option<String>,
    /// Source network (CIDR) the rule applies to (repeatable; default any).
    #[arg(long = "source", value_name = "CIDR")]
    pub sources: Vec<String>,
    /// Create the rule disabled.
    #[arg(long)]
    pub disabled: bool,
    /// Also admit clientless web access (a browser through a gateway, without the agent).
    /// A rule with --require-compliant-device never admits it.
    #[arg(long)]
    pub agentless: bool,
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
    /// The second factor of an account with MFA on: the code its
    /// authenticator app shows, or a recovery code. Without it, a terminal is
    /// asked for one when the account needs it.
    #[arg(long, value_name = "CODE")]
    pub otp: Option<String>,
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
    /// Show your own tenant's settings, or (the owner) change them.
    Settings {
        /// Require MFA of every administrator account of the tenant.
        #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
        require_admin_mfa: Option<bool>,
        /// How long a device's user session lasts from its enrolment or its
        /// `ward agent login`, in hours (1 to 8760).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=8760))]
        device_session_hours: Option<u32>,
    },
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
    /// Remove another account's MFA (for a lost device); its sessions end.
    MfaReset { name: String },
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
