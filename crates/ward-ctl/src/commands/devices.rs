//! `enroll`, `device` and `posture`.

use anyhow::Result;
use ward_api::{CreateEnrollCode, PostureRequirements};

use super::Ctx;
use crate::args::{DeviceCommand, EnrollCommand, OutputFormat, PostureCommand};
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
