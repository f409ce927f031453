//! `mfa enable|disable`: multi-factor authentication of one's own account.

use anyhow::{anyhow, Result};
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;
use ward_api::MfaCode;
use ward_client::Client;

use super::Ctx;
use crate::args::{MfaCommand, OutputFormat};
use crate::input::prompt;
use crate::output;

pub(super) async fn run(ctx: &mut Ctx<'_>, cmd: MfaCommand) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        MfaCommand::Enable { code: Some(code) } => confirm(ctx, &client, code).await,
        MfaCommand::Enable { code: None } => {
            let enrolment = client.start_totp().await?;
            match ctx.output {
                OutputFormat::Table => {
                    let qr = terminal_qr(&enrolment.otpauth_uri)?;
                    output::line(
                        ctx.out,
                        &format!(
                            "Add this account to an authenticator app: scan the QR code, or type the secret.\n\n\
                             {qr}\nSecret: {}\nURI:    {}\n",
                            enrolment.secret, enrolment.otpauth_uri
                        ),
                    )?;
                }
                OutputFormat::Json => output::json(ctx.out, &enrolment)?,
            }
            if !ctx.interactive {
                if ctx.output == OutputFormat::Table {
                    output::line(ctx.out, "Then confirm with: ward ctl mfa enable --code CODE")?;
                }
                return Ok(());
            }
            let code = prompt(ctx.stdin, "Code the app shows")?;
            confirm(ctx, &client, code).await
        }
        MfaCommand::Disable { code } => {
            client.disable_totp(&MfaCode { code }).await?;
            if ctx.output == OutputFormat::Table {
                output::line(ctx.out, "MFA is off for this account.")?;
            }
            Ok(())
        }
    }
}

async fn confirm(ctx: &mut Ctx<'_>, client: &Client, code: String) -> Result<()> {
    let codes = client.confirm_totp(&MfaCode { code }).await?;
    match ctx.output {
        OutputFormat::Table => {
            let mut text = String::from(
                "MFA is on for this account. Recovery codes (each signs in once in place of a code; \
                 keep them safe, they are not shown again):\n",
            );
            for c in &codes.recovery_codes {
                text.push_str(&format!("  {c}\n"));
            }
            output::line(ctx.out, text.trim_end())
        }
        OutputFormat::Json => output::json(ctx.out, &codes),
    }
}

/// The QR code of `text`, drawn with Unicode half blocks (two rows of
/// modules a line), light on dark as terminals usually are.
fn terminal_qr(text: &str) -> Result<String> {
    let code = QrCode::new(text.as_bytes()).map_err(|e| anyhow!("cannot draw the QR code: {e}"))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}
