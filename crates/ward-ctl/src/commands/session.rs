//! `login`, `logout`, `whoami`.

use anyhow::{anyhow, bail, Result};
use serde::Serialize;
use ward_api::{LoginRequest, WhoAmI};
use ward_client::ClientError;

use super::{build_client, Ctx, Target};
use crate::args::{LoginArgs, OutputFormat};
use crate::input::{prompt, read_secret};
use crate::output;
use crate::profile::Profile;

/// What `-o json login` prints (the token stays in the profile).
#[derive(Serialize)]
struct LoggedIn<'a> {
    server: &'a str,
    profile: &'a str,
    expires_at: &'a str,
    whoami: &'a WhoAmI,
}

pub(super) async fn login(ctx: &mut Ctx<'_>, args: LoginArgs) -> Result<()> {
    if !args.password_stdin {
        bail!("pass the password on standard input with --password-stdin (e.g. `printf '%s\\n' \"$PW\" | ward ctl login ... --password-stdin`)");
    }
    let config_path = match &ctx.config_path {
        Ok(path) => path.clone(),
        Err(e) => bail!("{e}"),
    };
    let target = ctx.target()?;
    let ca_cert = target.ca_cert.clone();
    let password = read_secret(ctx.stdin, "password")?;
    let anonymous = build_client(&Target { token: None, ..target })?;
    let mut req = LoginRequest {
        tenant: args.tenant.clone(),
        username: args.user.clone(),
        password,
        otp: args.otp.clone(),
    };
    let resp = match anonymous.login(&req).await {
        Err(e) if e.code() == Some("mfa_required") && req.otp.is_none() => {
            if !ctx.interactive {
                bail!(
                    "this account signs in with a second factor (mfa_required): \
                     pass --otp CODE with the code of its authenticator app or a recovery code"
                );
            }
            req.otp = Some(prompt(ctx.stdin, "One-time code (authenticator app or recovery code)")?);
            anonymous.login(&req).await?
        }
        other => other?,
    };

    let server = anonymous.server().to_owned();
    ctx.config.profiles.insert(
        ctx.profile_name.clone(),
        Profile {
            server: server.clone(),
            tenant: Some(resp.whoami.tenant.clone()),
            user: Some(resp.whoami.account.clone()),
            token: Some(resp.token.clone()),
            ca_cert,
        },
    );
    ctx.config.current = Some(ctx.profile_name.clone());
    ctx.config.save(&config_path)?;

    match ctx.output {
        OutputFormat::Table => output::line(
            ctx.out,
            &format!(
                "Logged in to {server} as {} (tenant {}, role {}). Profile {} saved.",
                resp.whoami.account, resp.whoami.tenant, resp.whoami.role, ctx.profile_name
            ),
        ),
        OutputFormat::Json => output::json(
            ctx.out,
            &LoggedIn {
                server: &server,
                profile: &ctx.profile_name,
                expires_at: &resp.expires_at,
                whoami: &resp.whoami,
            },
        ),
    }
}

pub(super) async fn logout(ctx: &mut Ctx<'_>) -> Result<()> {
    let client = ctx.client()?;
    let target = ctx.target()?;
    let already_ended = match client.logout().await {
        Ok(()) => false,
        Err(ClientError::Api { status: 401, .. }) => true,
        Err(e) => return Err(e.into()),
    };
    let name = ctx.profile_name.clone();
    let forget = target.profile_matches
        && ctx
            .config
            .profiles
            .get(&name)
            .is_some_and(|p| p.token.is_some() && p.token == target.token);
    if forget {
        if let Some(p) = ctx.config.profiles.get_mut(&name) {
            p.token = None;
        }
        let path = ctx.config_path.as_ref().map_err(|e| anyhow!("{e}"))?.clone();
        ctx.config.save(&path)?;
    }
    if ctx.output == OutputFormat::Table {
        let note = if already_ended {
            " (the session had already ended)"
        } else {
            ""
        };
        output::line(ctx.out, &format!("Logged out of {}{note}.", client.server()))?;
    }
    Ok(())
}

pub(super) async fn whoami(ctx: &mut Ctx<'_>) -> Result<()> {
    let client = ctx.client()?;
    let me = client.whoami().await?;
    output::show(ctx.out, ctx.output, &me)
}
