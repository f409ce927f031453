//! `enroll`, `device`, `posture`, `logs` and `gateway`.

use anyhow::Result;
use ward_api::{CreateEnrollCode, PostureRequirements};

use super::Ctx;
use crate::args::{DeviceCommand, EnrollCommand, GatewayCommand, LogsCommand, OutputFormat, PostureCommand};
use crate::output;

pub(super) async fn enroll(ctx: &mut Ctx<'_>, cmd: EnrollCommand) -> Result<()> {
    let client = ctx.client()?;
    let EnrollCommand::Create { user, ttl } = cmd;
    let code = client
        .create_enroll_code(&CreateEnrollCode {
            user,
            ttl_secs: ttl.map(|d| d.as_secs().max(1)),
        })
        .await?;
    match ctx.output {
        OutputFormat::Json => output::json(ctx.out, &code),
        OutputFormat::Table => {
            output::line(
                ctx.out,
                &format!(
                    "One-time enrolment code for {} (until {}); on the device run\n  ward agent enroll --server URL --code CODE\nCode:\n{}",
                    code.user,
                    output::time(&code.expires_at),
                    code.code
                ),
            )
        }
    }
}

pub(super) async fn device(ctx: &mut Ctx<'_>, cmd: DeviceCommand) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        DeviceCommand::List => {
            let items = client.list_all(|p| client.list_devices(p)).await?;
            output::list(ctx.out, ctx.output, &items)
        }
        DeviceCommand::Show { id } => {
            let v = client.get_device(&id).await?;
            output::show(ctx.out, ctx.output, &v)
        }
        DeviceCommand::Revoke { id } => {
            let v = client.revoke_device(&id).await?;
            output::show(ctx.out, ctx.output, &v)
        }
    }
}

pub(super) async fn posture(ctx: &mut Ctx<'_>, cmd: PostureCommand) -> Result<()> {
    let client = ctx.client()?;
    let req = match cmd {
        PostureCommand::Show => client.posture_requirements().await?,
        PostureCommand::Set {
            disk_encryption,
            firewall,
            screen_lock,
            os,
            min_agent_version,
        } => {
            let req = PostureRequirements {
                disk_encryption,
                firewall,
                screen_lock,
                os,
                min_agent_version,
            };
            client.set_posture_requirements(&req).await?
        }
    };
    output::show(ctx.out, ctx.output, &req)
}

pub(super) async fn logs(ctx: &mut Ctx<'_>, cmd: LogsCommand) -> Result<()> {
    let client = ctx.client()?;
    let LogsCommand::Access {
        since,
        user,
        device,
        action,
        limit,
    } = cmd
    else {
        anyhow::bail!("web and DNS records are read by their own command");
    };
    let since = since.map(|d| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let ms = now.saturating_sub(d).as_millis();
        ward_core::time::rfc3339(i64::try_from(ms).unwrap_or(i64::MAX))
    });
    let query = ward_api::AccessQuery {
        user,
        device,
        action,
        since,
        cursor: None,
        limit: None,
    };
    let max = Some(limit.map_or(100, |n| n as usize));
    let items = client
        .list_up_to(max, |p| {
            client.list_access_records(ward_api::AccessQuery {
                cursor: p.cursor,
                limit: p.limit,
                ..query.clone()
            })
        })
        .await?;
    output::list(ctx.out, ctx.output, &items)
}

pub(super) async fn gateway(ctx: &mut Ctx<'_>, cmd: GatewayCommand) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        GatewayCommand::List => {
            let items = client.list_all(|p| client.list_gateways(p)).await?;
            output::list(ctx.out, ctx.output, &items)
        }
        GatewayCommand::JoinCode { name, ttl } => {
            let req = ward_api::CreateGatewayJoinCode {
                name,
                ttl_secs: ttl.map(|d| d.as_secs().max(1)),
            };
            let code = client.create_gateway_join_code(&req).await?;
            match ctx.output {
                OutputFormat::Json => output::json(ctx.out, &code),
                OutputFormat::Table => output::line(
                    ctx.out,
                    &format!(
                        "One-time join code for gateway {} (until {}); on the gateway's host run\n  ward gateway --server URL --join-code CODE --listen ADDR\nCode:\n{}",
                        code.name,
                        output::time(&code.expires_at),
                        code.code
                    ),
                ),
            }
        }
    }
}
