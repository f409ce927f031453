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
            let req = UpdateUser {
                disabled: Some(true),
                attributes: None,
            };
            let v = client.update_user(&name, &req).await?;
            output::show(ctx.out, ctx.output, &v)
        }
        UserCommand::Enable { name } => {
            let req = UpdateUser {
                disabled: Some(false),
                attributes: None,
            };
            let v = client.update_user(&name, &req).await?;
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
        UserCommand::ProxyCredential(c) => super::internet::proxy_credential(ctx, c).await,
        UserCommand::MfaReset { name } => {
            let v = client.reset_user_mfa(&name).await?;
            output::show(ctx.out, ctx.output, &v)
        }
        UserCommand::Set {
            name,
            attrs,
            email,
            unset,
        } => {
            if attrs.is_empty() && email.is_none() && unset.is_empty() {
                bail!("nothing to set: give --attr KEY=VALUE, --email or --unset KEY");
            }
            let mut attributes = client.get_user(&name).await?.attributes;
            for key in &unset {
                attributes.remove(key);
            }
            for a in &attrs {
                let Some((k, v)) = a.split_once('=') else {
                    bail!("--attr {a:?}: expected KEY=VALUE");
                };
                attributes.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            if let Some(e) = email {
                attributes.insert("email".to_owned(), e);
            }
            let req = UpdateUser {
                disabled: None,
                attributes: Some(attributes),
            };
            let v = client.update_user(&name, &req).await?;
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
        GroupCommand::Create { name, when } => {
            let v = client.create_group(&CreateGroup { name, conditions: when }).await?;
            output::show(ctx.out, ctx.output, &v)
        }
        GroupCommand::Set {
            name,
            when,
            make_static,
        } => {
            let conditions = if make_static { Vec::new() } else { when };
            let req = ward_api::UpdateGroup {
                conditions: Some(conditions),
            };
            let v = client.update_group(&name, &req).await?;
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
        IdpCommand::Show { name } => {
            let v = client.get_identity_source(&name).await?;
            output::show(ctx.out, ctx.output, &v)
        }
        IdpCommand::Sync { name } => {
            let r = client.sync_identity_source(&name).await?;
            if ctx.output == crate::args::OutputFormat::Json {
                return output::json(ctx.out, &r);
            }
            message(
                ctx,
                &format!(
                    "Synced {name}: {} users seen, {} created, {} updated, {} disabled, {} skipped; {} groups.",
                    r.users_seen, r.users_created, r.users_updated, r.users_disabled, r.users_skipped, r.groups_seen
                ),
            )
        }
        IdpCommand::Create(create) => {
            let crate::args::IdpCreate {
                name,
                oidc_issuer,
                client_id,
                client_secret_stdin,
                attribute_claims,
                ldap_url,
                bind_dn,
                bind_password_stdin,
                user_base,
                user_filter,
                group_base,
                group_membership,
                username_attr,
                id_attr,
                sync_attrs,
                ca_file,
                sync_interval,
                groups_claim,
                username_claim,
                scopes,
            } = *create;
            let req = if let Some(url) = ldap_url {
                let (Some(bind_dn), Some(user_base)) = (bind_dn, user_base) else {
                    bail!("an LDAP source needs --bind-dn and --user-base");
                };
                if !bind_password_stdin {
                    bail!("pass the bind password on standard input with --bind-password-stdin");
                }
                let ca_pem = match ca_file {
                    Some(path) => Some(
                        std::fs::read_to_string(&path)
                            .map_err(|e| anyhow::anyhow!("--ca-file {}: {e}", path.display()))?,
                    ),
                    None => None,
                };
                let bind_password = read_secret(ctx.stdin, "bind password")?;
                ward_api::CreateIdentitySource {
                    name,
                    kind: Some("ldap".into()),
                    issuer: String::new(),
                    client_id: String::new(),
                    client_secret: String::new(),
                    attribute_claims: Vec::new(),
                    scopes: None,
                    username_claim: None,
                    groups_claim: None,
                    ldap: Some(ward_api::CreateLdapSource {
                        url,
                        ca_pem,
                        bind_dn,
                        bind_password,
                        user_base,
                        user_filter,
                        username_attribute: username_attr,
                        email_attribute: None,
                        display_attribute: None,
                        id_attribute: id_attr,
                        group_base,
                        group_membership,
                        group_name_attribute: None,
                        sync_attributes: sync_attrs,
                        sync_interval,
                    }),
                }
            } else {
                let (Some(issuer), Some(client_id)) = (oidc_issuer, client_id) else {
                    bail!("an OpenID Connect source needs --oidc-issuer and --client-id");
                };
                if !client_secret_stdin {
                    bail!("pass the client secret on standard input with --client-secret-stdin");
                }
                let client_secret = read_secret(ctx.stdin, "client secret")?;
                ward_api::CreateIdentitySource {
                    name,
                    kind: None,
                    issuer,
                    client_id,
                    client_secret,
                    attribute_claims,
                    scopes,
                    username_claim,
                    groups_claim,
                    ldap: None,
                }
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
        AppCommand::Update {
            name,
            addresses,
            ports,
            tags,
            public_host,
            upstream_scheme,
        } => {
            let req = ward_api::UpdateApplication {
                addresses,
                ports,
                protocol: None,
                tags: tags.map(|t| t.into_iter().filter(|t| !t.trim().is_empty()).collect()),
                public_host,
                upstream_scheme,
            };
            let v = client.update_app(&name, &req).await?;
            output::show(ctx.out, ctx.output, &v)
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
