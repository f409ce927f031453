//! `user`, `group`, `app` and `rule`: what end users may reach.

use anyhow::{bail, Result};
use ward_api::{CreateApplication, CreateGroup, CreateRule, CreateUser, RuleTest, SetUserPassword, UpdateUser};

use super::account::message;
use super::Ctx;
use crate::args::{AppCommand, GroupCommand, IdpCommand, RuleCommand, UserCommand};
use crate::input::read_secret;
use crate::output;

pub(super) async fn user(ctx: &mut Ctx<'_>, cmd: UserCommand) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        UserCommand::List => {
            let items = client.list_all(|p| client.list_users(p)).await?;
            output::list(ctx.out, ctx.output, &items)
        }
        UserCommand::Show { name } => {
            let v = client.get_user(&name).await?;
            output::show(ctx.out, ctx.output, &v)
        }
        UserCommand::Create { name, groups } => {
            let user = client.create_user(&CreateUser { name, groups }).await?;
            output::show(ctx.out, ctx.output, &user)
        }
        UserCommand::Disable { name } => {
            let v = client.update_user(&name, &UpdateUser { disabled: true }).await?;
            output::show(ctx.out, ctx.output, &v)
        }
        UserCommand::Enable { name } => {
            let v = client.update_user(&name, &UpdateUser { disabled: false }).await?;
            output::show(ctx.out, ctx.output, &v)
        }
        UserCommand::Delete { name } => {
            client.delete_user(&name).await?;
            message(ctx, &format!("User {name} deleted."))
        }
        UserCommand::Passwd {
            name,
            password_stdin,
            clear,
        } => {
            if clear {
                client.clear_user_password(&name).await?;
                return message(
                    ctx,
                    &format!("Password of user {name} removed; it can no longer sign in to the user portal."),
                );
            }
            if !password_stdin {
                bail!(
                    "pass the user's new password on standard input with --password-stdin, or remove it with --clear"
                );
            }
            let password = read_secret(ctx.stdin, "new password")?;
            client.set_user_password(&name, &SetUserPassword { password }).await?;
            message(ctx, &format!("Password of user {name} set."))
        }
        UserCommand::Unlock { name } => {
            let v = client.unlock_user(&name).await?;
            output::show(ctx.out, ctx.output, &v)
        }
    }
}

pub(super) async fn group(ctx: &mut Ctx<'_>, cmd: GroupCommand) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        GroupCommand::List => {
            let items = client.list_all(|p| client.list_groups(p)).await?;
            output::list(ctx.out, ctx.output, &items)
        }
        GroupCommand::Create { name } => {
            let v = client.create_group(&CreateGroup { name }).await?;
            output::show(ctx.out, ctx.output, &v)
        }
        GroupCommand::Delete { name } => {
            client.delete_group(&name).await?;
            message(ctx, &format!("Group {name} deleted."))
        }
        GroupCommand::AddMember { group, user } => {
            let v = client.add_group_member(&group, &user).await?;
            output::show(ctx.out, ctx.output, &v)
        }
        GroupCommand::RemoveMember { group, user } => {
            client.remove_group_member(&group, &user).await?;
            message(ctx, &format!("User {user} removed from group {group}."))
        }
    }
}

pub(super) async fn idp(ctx: &mut Ctx<'_>, cmd: IdpCommand) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        IdpCommand::List => {
            let items = client.list_identity_sources().await?;
            output::list(ctx.out, ctx.output, &items)
        }
        IdpCommand::Create {
            name,
            oidc_issuer,
            client_id,
            client_secret_stdin,
            groups_claim,
            username_claim,
            scopes,
        } => {
            if !client_secret_stdin {
                bail!("pass the client secret on standard input with --client-secret-stdin");
            }
            let client_secret = read_secret(ctx.stdin, "client secret")?;
            let req = ward_api::CreateIdentitySource {
                name,
                issuer: oidc_issuer,
                client_id,
                client_secret,
                scopes,
                username_claim,
                groups_claim,
            };
            let v = client.create_identity_source(&req).await?;
            output::show(ctx.out, ctx.output, &v)
        }
        IdpCommand::Delete { name } => {
            client.delete_identity_source(&name).await?;
            message(ctx, &format!("Identity source {name} deleted."))
        }
    }
}

pub(super) async fn app(ctx: &mut Ctx<'_>, cmd: AppCommand) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        AppCommand::List => {
            let items = client.list_all(|p| client.list_apps(p)).await?;
            output::list(ctx.out, ctx.output, &items)
        }
        AppCommand::Create {
            name,
            addresses,
            ports,
            tags,
            public_host,
            upstream_scheme,
        } => {
            let req = CreateApplication {
                name,
                addresses,
                ports,
                protocol: None,
                tags,
                public_host,
                upstream_scheme,
            };
            {
                let v = client.create_app(&req).await?;
                output::show(ctx.out, ctx.output, &v)
            }
        }
        AppCommand::Delete { name } => {
            client.delete_app(&name).await?;
            message(ctx, &format!("Application {name} deleted."))
        }
    }
}

pub(super) async fn rule(ctx: &mut Ctx<'_>, cmd: RuleCommand) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        RuleCommand::List => {
            let items = client.list_all(|p| client.list_rules(p)).await?;
            output::list(ctx.out, ctx.output, &items)
        }
        RuleCommand::Create(a) => {
            let req = CreateRule {
                priority: a.priority,
                action: a.action,
                apps: a.apps,
                tags: a.tags,
                users: a.users,
                groups: a.groups,
                require_compliant_device: a.require_compliant_device,
                posture: Some(if a.observe_only { "observe" } else { "enforce" }.to_owned()),
                valid_from: a.valid_from,
                valid_until: a.valid_until,
                sources: a.sources,
                enabled: Some(!a.disabled),
                agentless: a.agentless,
            };
            {
                let v = client.create_rule(&req).await?;
                output::show(ctx.out, ctx.output, &v)
            }
        }
        RuleCommand::Enable { id } => {
            let req = ward_api::UpdateRule {
                enabled: Some(true),
                priority: None,
            };
            let v = client.update_rule(&id, &req).await?;
            output::show(ctx.out, ctx.output, &v)
        }
        RuleCommand::Disable { id } => {
            let req = ward_api::UpdateRule {
                enabled: Some(false),
                priority: None,
            };
            let v = client.update_rule(&id, &req).await?;
            output::show(ctx.out, ctx.output, &v)
        }
        RuleCommand::Priority { id, priority } => {
            let req = ward_api::UpdateRule {
                enabled: None,
                priority: Some(priority),
            };
            let v = client.update_rule(&id, &req).await?;
            output::show(ctx.out, ctx.output, &v)
        }
        RuleCommand::Reorder { ids } => {
            let page = client.reorder_rules(&ward_api::ReorderRules { ids }).await?;
            output::list(ctx.out, ctx.output, &page.items)
        }
        RuleCommand::Delete { id } => {
            client.delete_rule(&id).await?;
            message(ctx, &format!("Rule {id} deleted."))
        }
        RuleCommand::Test {
            user,
            device,
            to,
            source,
            at,
        } => {
            let result = client
                .test_rules(&RuleTest {
                    user,
                    device,
                    to,
                    source,
                    at,
                })
                .await?;
            output::show(ctx.out, ctx.output, &result)
        }
    }
}
