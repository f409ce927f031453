//! `account list|show|create|delete|set-role|unlock|passwd|mfa-reset`.

use anyhow::{bail, Result};
use ward_api::{CreateAccount, SetPassword, SetRole};

use super::Ctx;
use crate::args::{AccountCommand, OutputFormat};
use crate::input::{read_secret, read_secret_lines};
use crate::output;

pub(super) async fn run(ctx: &mut Ctx<'_>, cmd: AccountCommand) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        AccountCommand::List => {
            let items = client.list_all(|p| client.list_accounts(p)).await?;
            output::list(ctx.out, ctx.output, &items)
        }
        AccountCommand::Show { name } => {
            let account = client.get_account(&name).await?;
            output::show(ctx.out, ctx.output, &account)
        }
        AccountCommand::Create {
            name,
            role,
            password_stdin,
        } => {
            if !password_stdin {
                bail!("pass the new account's password on standard input with --password-stdin");
            }
            let password = read_secret(ctx.stdin, "password")?;
            let account = client.create_account(&CreateAccount { name, role, password }).await?;
            output::show(ctx.out, ctx.output, &account)
        }
        AccountCommand::Delete { name } => {
            client.delete_account(&name).await?;
            message(ctx, &format!("Account {name} deleted."))
        }
        AccountCommand::SetRole { name, role } => {
            let account = client.set_account_role(&name, &SetRole { role }).await?;
            output::show(ctx.out, ctx.output, &account)
        }
        AccountCommand::Unlock { name } => {
            let account = client.unlock_account(&name).await?;
            output::show(ctx.out, ctx.output, &account)
        }
        AccountCommand::MfaReset { name } => {
            let account = client.reset_account_mfa(&name).await?;
            output::show(ctx.out, ctx.output, &account)
        }
        AccountCommand::Passwd { name, password_stdin } => {
            if !password_stdin {
                bail!(
                    "pass the password(s) on standard input with --password-stdin: \
                     for your own account the current password, then the new one, one a line; \
                     for another account the new password"
                );
            }
            let (name, req) = match name {
                Some(name) => {
                    let new_password = read_secret(ctx.stdin, "new password")?;
                    let req = SetPassword {
                        current_password: None,
                        new_password,
                    };
                    (name, req)
                }
                None => {
                    let mut lines = read_secret_lines(ctx.stdin, &["current password", "new password"])?;
                    let new_password = lines.pop().unwrap_or_default();
                    let current_password = lines.pop();
                    let me = client.whoami().await?;
                    let req = SetPassword {
                        current_password,
                        new_password,
                    };
                    (me.account, req)
                }
            };
            let own = req.current_password.is_some();
            client.set_account_password(&name, &req).await?;
            if own {
                // The server ends every session of the account, this one included.
                message(
                    ctx,
                    &format!("Password of account {name} changed. Its sessions have ended: sign in again with `ward ctl login`."),
                )
            } else {
                message(
                    ctx,
                    &format!("Password of account {name} changed; its sessions have ended."),
                )
            }
        }
    }
}

/// A confirmation for people; nothing in JSON mode (the command has no result).
pub(super) fn message(ctx: &mut Ctx<'_>, text: &str) -> Result<()> {
    match ctx.output {
        OutputFormat::Table => output::line(ctx.out, text),
        OutputFormat::Json => Ok(()),
    }
}
