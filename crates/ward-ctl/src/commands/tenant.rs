//! `tenant list|show|create|suspend|resume` (operators), and `tenant settings`
//! (one's own tenant).

use anyhow::{bail, Result};
use ward_api::{CreateTenant, TenantSettings, TenantState, UpdateTenant};

use super::Ctx;
use crate::args::TenantCommand;
use crate::input::read_secret;
use crate::output;

pub(super) async fn run(ctx: &mut Ctx<'_>, cmd: TenantCommand) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        TenantCommand::List => {
            let items = client.list_all(|p| client.list_tenants(p)).await?;
            output::list(ctx.out, ctx.output, &items)
        }
        TenantCommand::Show { name } => {
            let tenant = client.get_tenant(&name).await?;
            output::show(ctx.out, ctx.output, &tenant)
        }
        TenantCommand::Create {
            name,
            region,
            owner_password_stdin,
        } => {
            if !owner_password_stdin {
                bail!("pass the password of the new tenant's owner account `admin` on standard input with --owner-password-stdin");
            }
            let owner_password = read_secret(ctx.stdin, "owner password")?;
            let tenant = client
                .create_tenant(&CreateTenant {
                    name,
                    region,
                    owner_password,
                })
                .await?;
            output::show(ctx.out, ctx.output, &tenant)
        }
        TenantCommand::Suspend { name } => {
            let state = TenantState::Suspended;
            let tenant = client.update_tenant(&name, &UpdateTenant { state }).await?;
            output::show(ctx.out, ctx.output, &tenant)
        }
        TenantCommand::Resume { name } => {
            let state = TenantState::Active;
            let tenant = client.update_tenant(&name, &UpdateTenant { state }).await?;
            output::show(ctx.out, ctx.output, &tenant)
        }
        TenantCommand::Settings {
            require_admin_mfa,
            device_session_hours,
        } => {
            let settings = match (require_admin_mfa, device_session_hours) {
                (None, None) => client.tenant_settings().await?,
                (require_admin_mfa, device_session_hours) => {
                    // What is not given stays as it is.
                    let require_admin_mfa = match require_admin_mfa {
                        Some(on) => on,
                        None => client.tenant_settings().await?.require_admin_mfa,
                    };
                    client
                        .set_tenant_settings(&TenantSettings {
                            require_admin_mfa,
                            device_session_hours,
                        })
                        .await?
                }
            };
            output::show(ctx.out, ctx.output, &settings)
        }
    }
}
