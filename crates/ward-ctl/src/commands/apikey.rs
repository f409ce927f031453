//! `apikey create|list|revoke`: the caller's own API keys.

use anyhow::Result;
use ward_api::CreateApiKey;

use super::account::message;
use super::Ctx;
use crate::args::{ApikeyCommand, OutputFormat};
use crate::output;

pub(super) async fn run(ctx: &mut Ctx<'_>, cmd: ApikeyCommand) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        ApikeyCommand::Create { name, role, expires_in } => {
            let created = client
                .create_api_key(&CreateApiKey {
                    name,
                    role_cap: role,
                    expires_in_secs: expires_in.map(|d| d.as_secs().max(1)),
                })
                .await?;
            match ctx.output {
                OutputFormat::Json => output::json(ctx.out, &created),
                OutputFormat::Table => {
                    let key = &created.key;
                    let expiry = match &key.expires_at {
                        Some(at) => format!(", expires {}", output::time(at)),
                        None => String::new(),
                    };
                    output::line(
                        ctx.out,
                        &format!("API key {} created (id {}{expiry}).", key.name, key.id),
                    )?;
                    output::line(ctx.out, &format!("Token: {}", created.token))?;
                    output::line(ctx.out, "Store the token now: it will not be shown again.")
                }
            }
        }
        ApikeyCommand::List => {
            let items = client.list_all(|p| client.list_api_keys(p)).await?;
            output::list(ctx.out, ctx.output, &items)
        }
        ApikeyCommand::Revoke { id } => {
            client.revoke_api_key(&id).await?;
            message(ctx, &format!("API key {id} revoked."))
        }
    }
}
