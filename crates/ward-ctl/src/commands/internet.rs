//! Internet access control: domain lists, internet rules and settings,
//! proxy credentials, and the web and DNS logs.

use std::io::Read;

use anyhow::{Context as _, Result};
use ward_api::{
    AccessLogEntry, CreateDomainList, CreateInternetRule, DnsSettings, DomainListImport, DomainListInfo,
    InternetRuleInfo, InternetSettings, TopEntry, UpdateDomainList, UpdateInternetRule, UpdateInternetSettings,
};

use super::Ctx;
use crate::args::{
    DomainListCommand, InternetCommand, InternetLogArgs, InternetRuleCommand, InternetSettingsArgs, OutputFormat,
    ProxyCredentialCommand,
};
use crate::output::{self, time};

/// The largest file `domain-list import` sends (what the server accepts).
const MAX_FILE: u64 = 64 * 1024 * 1024;

fn action_of(s: &str) -> Result<ward_inet::InternetAction> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).with_context(|| format!("unknown action {s:?}"))
}

fn lists_table(items: &[DomainListInfo]) -> String {
    output::table(
        &["NAME", "ENTRIES", "SOURCE", "UPDATED", "DESCRIPTION"],
        items.iter().map(|l| {
            vec![
                l.name.clone(),
                l.entries.to_string(),
                l.source_url.clone().unwrap_or_else(|| "-".into()),
                time(&l.updated_at),
                if l.description.is_empty() {
                    "-".into()
                } else {
                    l.description.clone()
                },
            ]
        }),
    )
}

fn print_import(ctx: &mut Ctx<'_>, import: &DomainListImport) -> Result<()> {
    if ctx.output == OutputFormat::Json {
        return output::json(ctx.out, import);
    }
    let r = &import.report;
    writeln!(
        ctx.out,
        "Domain list {}: {} entries ({} format).",
        import.list.name, import.list.entries, r.format
    )?;
    writeln!(
        ctx.out,
        "Lines: {} read, {} accepted, {} ignored, {} invalid, {} comments or blank.",
        r.lines, r.accepted, r.ignored, r.invalid, r.comments
    )?;
    for issue in &r.first_invalid {
        writeln!(ctx.out, "  invalid line {}: {}", issue.line, issue.reason)?;
    }
    for issue in &r.first_ignored {
        writeln!(ctx.out, "  ignored line {}: {}", issue.line, issue.reason)?;
    }
    Ok(())
}

pub(super) async fn domain_list(ctx: &mut Ctx<'_>, cmd: DomainListCommand) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        DomainListCommand::List => {
            let items = client.list_domain_lists().await?.items;
            match ctx.output {
                OutputFormat::Json => output::json(ctx.out, &items),
                OutputFormat::Table => output::line(ctx.out, lists_table(&items).trim_end()),
            }
        }
        DomainListCommand::Show { name, contains, limit } => {
            let list = client.get_domain_list(&name).await?;
            let entries = client
                .domain_list_entries(&name, contains.as_deref(), Some(limit.unwrap_or(100)))
                .await?;
            match ctx.output {
                OutputFormat::Json => output::json(
                    ctx.out,
                    &serde_json::json!({"list": list, "entries": entries.entries, "total": entries.total}),
                ),
                OutputFormat::Table => {
                    output::line(ctx.out, lists_table(std::slice::from_ref(&list)).trim_end())?;
                    writeln!(ctx.out)?;
                    for e in &entries.entries {
                        writeln!(ctx.out, "{e}")?;
                    }
                    if entries.total > entries.entries.len() as u64 {
                        writeln!(
                            ctx.out,
                            "... {} of {} entries shown",
                            entries.entries.len(),
                            entries.total
                        )?;
                    }
                    Ok(())
                }
            }
        }
        DomainListCommand::Create {
            name,
            domains,
            url,
            description,
        } => {
            let import = client
                .create_domain_list(&CreateDomainList {
                    name,
                    description,
                    domains,
                    url,
                })
                .await?;
            print_import(ctx, &import)
        }
        DomainListCommand::Import { name, file, format } => {
            let import = if file.starts_with("http://") || file.starts_with("https://") {
                // The server downloads it, and remembers the URL for `refresh`.
                client.import_domain_list_url(&name, format.as_deref(), &file).await?
            } else {
                let body = read_file(ctx, &file)?;
                client.import_domain_list(&name, format.as_deref(), body).await?
            };
            print_import(ctx, &import)
        }
        DomainListCommand::Add { name, domains } => {
            let list = client
                .update_domain_list(
                    &name,
                    &UpdateDomainList {
                        add: domains,
                        ..Default::default()
                    },
                )
                .await?;
            done(ctx, &list, &format!("Domain list {name}: {} entries.", list.entries))
        }
        DomainListCommand::Remove { name, domains } => {
            let list = client
                .update_domain_list(
                    &name,
                    &UpdateDomainList {
                        remove: domains,
                        ..Default::default()
                    },
                )
                .await?;
            done(ctx, &list, &format!("Domain list {name}: {} entries.", list.entries))
        }
        DomainListCommand::Delete { name } => {
            client.delete_domain_list(&name).await?;
            if ctx.output == OutputFormat::Table {
                writeln!(ctx.out, "Domain list {name} deleted.")?;
            }
            Ok(())
        }
        DomainListCommand::Refresh { name } => {
            let import = client.refresh_domain_list(&name).await?;
            print_import(ctx, &import)
        }
    }
}

fn done<T: serde::Serialize>(ctx: &mut Ctx<'_>, value: &T, text: &str) -> Result<()> {
    match ctx.output {
        OutputFormat::Json => output::json(ctx.out, value),
        OutputFormat::Table => output::line(ctx.out, text),
    }
}

fn read_file(ctx: &mut Ctx<'_>, file: &str) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    if file == "-" {
        ctx.stdin.take(MAX_FILE + 1).read_to_end(&mut body)?;
    } else {
        std::fs::File::open(file)
            .with_context(|| format!("cannot open {file}"))?
            .take(MAX_FILE + 1)
            .read_to_end(&mut body)
            .with_context(|| format!("cannot read {file}"))?;
    }
    if body.len() as u64 > MAX_FILE {
        anyhow::bail!("{file} is larger than 64 MiB");
    }
    Ok(body)
}

fn rules_table(items: &[InternetRuleInfo]) -> String {
    let names = |v: &[String]| if v.is_empty() { "*".to_owned() } else { v.join(",") };
    output::table(
        &["PRIORITY", "ACTION", "LISTS", "USERS", "GROUPS", "FLAGS", "ID"],
        items.iter().map(|r| {
            let mut flags = Vec::new();
            if r.global_allow {
                flags.push("global-allow");
            }
            if r.inspect {
                flags.push("inspect");
            }
            if !r.enabled {
                flags.push("disabled");
            }
            vec![
                r.priority.to_string(),
                serde_json::to_value(r.action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                names(&r.lists),
                names(&r.users),
                names(&r.groups),
                if flags.is_empty() { "-".into() } else { flags.join(",") },
                r.id.clone(),
            ]
        }),
    )
}

fn show_rule(ctx: &mut Ctx<'_>, rule: &InternetRuleInfo) -> Result<()> {
    match ctx.output {
        OutputFormat::Json => output::json(ctx.out, rule),
        OutputFormat::Table => output::line(ctx.out, rules_table(std::slice::from_ref(rule)).trim_end()),
    }
}

pub(super) async fn internet(ctx: &mut Ctx<'_>, cmd: InternetCommand) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        InternetCommand::Rule(InternetRuleCommand::List) => {
            let items = client.list_internet_rules().await?.items;
            match ctx.output {
                OutputFormat::Json => output::json(ctx.out, &items),
                OutputFormat::Table => output::line(ctx.out, rules_table(&items).trim_end()),
            }
        }
        InternetCommand::Rule(InternetRuleCommand::Show { id }) => {
            let r = client.get_internet_rule(&id).await?;
            show_rule(ctx, &r)
        }
        InternetCommand::Rule(InternetRuleCommand::Create {
            priority,
            action,
            lists,
            users,
            groups,
            global_allow,
            inspect,
            disabled,
            valid_from,
            valid_until,
            description,
        }) => {
            let r = client
                .create_internet_rule(&CreateInternetRule {
                    priority,
                    action: action_of(&action)?,
                    global_allow,
                    users,
                    groups,
                    lists,
                    inspect,
                    enabled: Some(!disabled),
                    valid_from,
                    valid_until,
                    description,
                })
                .await?;
            show_rule(ctx, &r)
        }
        InternetCommand::Rule(InternetRuleCommand::Update(a)) => {
            let r = client
                .update_internet_rule(
                    &a.id,
                    &UpdateInternetRule {
                        enabled: a.enabled,
                        priority: a.priority,
                        action: a.action.as_deref().map(action_of).transpose()?,
                        global_allow: a.global_allow,
                        users: clean(a.users),
                        groups: clean(a.groups),
                        lists: clean(a.lists),
                        inspect: a.inspect,
                        description: a.description,
                        valid_from: a.valid_from.map(|t| t.trim().to_owned()),
                        valid_until: a.valid_until.map(|t| t.trim().to_owned()),
                    },
                )
                .await?;
            show_rule(ctx, &r)
        }
        InternetCommand::Rule(InternetRuleCommand::Delete { id }) => {
            client.delete_internet_rule(&id).await?;
            if ctx.output == OutputFormat::Table {
                writeln!(ctx.out, "Internet rule {id} deleted.")?;
            }
            Ok(())
        }
        InternetCommand::Rule(InternetRuleCommand::Enable { id }) => {
            let r = set_enabled(&client, &id, true).await?;
            show_rule(ctx, &r)
        }
        InternetCommand::Rule(InternetRuleCommand::Disable { id }) => {
            let r = set_enabled(&client, &id, false).await?;
            show_rule(ctx, &r)
        }
        InternetCommand::Rule(InternetRuleCommand::Test { user, host }) => {
            let r = client
                .test_internet_rules(&ward_api::InternetRuleTest { user, host, port: None })
                .await?;
            match ctx.output {
                OutputFormat::Json => output::json(ctx.out, &r),
                OutputFormat::Table => {
                    let action = serde_json::to_value(r.action).unwrap_or_default();
                    writeln!(
                        ctx.out,
                        "{}: {} (stage {}, rule {}, list {})",
                        r.host,
                        action.as_str().unwrap_or("-"),
                        r.stage,
                        r.rule_id.as_deref().unwrap_or("-"),
                        r.list.as_deref().unwrap_or("-")
                    )?;
                    Ok(())
                }
            }
        }
        InternetCommand::Settings(args) => settings(ctx, &client, args).await,
        InternetCommand::InspectionCa { out } => {
            let pem = match client.inspection_ca().await {
                Err(e) if e.code() == Some("inspection_ca_missing") => anyhow::bail!(
                    "this tenant has no inspection CA yet: it is made when TLS inspection is first turned on \
                     (ward ctl internet settings --inspection on)"
                ),
                other => other?,
            };
            match out {
                Some(path) => {
                    std::fs::write(&path, &pem).with_context(|| format!("cannot write {}", path.display()))?;
                    match ctx.output {
                        OutputFormat::Json => {
                            output::json(ctx.out, &serde_json::json!({"file": path.display().to_string()}))
                        }
                        OutputFormat::Table => output::line(
                            ctx.out,
                            &format!("Wrote the inspection CA certificate to {}.", path.display()),
                        ),
                    }
                }
                None => match ctx.output {
                    OutputFormat::Json => output::json(ctx.out, &serde_json::json!({"certificate_pem": pem})),
                    OutputFormat::Table => Ok(ctx.out.write_all(pem.as_bytes())?),
                },
            }
        }
    }
}

/// Repeated or comma-separated names, blanks dropped: `--user ""` is none.
fn clean(v: Option<Vec<String>>) -> Option<Vec<String>> {
    v.map(|items| {
        items
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

async fn set_enabled(client: &ward_client::Client, id: &str, enabled: bool) -> Result<InternetRuleInfo> {
    Ok(client
        .update_internet_rule(
            id,
            &UpdateInternetRule {
                enabled: Some(enabled),
                ..Default::default()
            },
        )
        .await?)
}

async fn settings(ctx: &mut Ctx<'_>, client: &ward_client::Client, a: InternetSettingsArgs) -> Result<()> {
    let dns_change = a.dns_block.is_some() || a.dns_block_ipv4.is_some() || a.dns_block_ipv6.is_some();
    let mut update = UpdateInternetSettings {
        enabled: a.enabled,
        default_action: a.default_action.as_deref().map(action_of).transpose()?,
        dns: None,
        inspection: a.inspection.map(|i| i == "on"),
        do_not_inspect: clean(a.do_not_inspect),
        bypass: clean(a.bypass),
        warn_minutes: a.warn_minutes,
    };
    let changes = update.enabled.is_some()
        || update.default_action.is_some()
        || dns_change
        || update.inspection.is_some()
        || update.do_not_inspect.is_some()
        || update.bypass.is_some()
        || update.warn_minutes.is_some();
    let s = if changes {
        if dns_change {
            let current = client.internet_settings().await?.dns;
            update.dns = Some(DnsSettings {
                block_mode: a.dns_block.unwrap_or(current.block_mode),
                block_ipv4: a.dns_block_ipv4.or(current.block_ipv4),
                block_ipv6: a.dns_block_ipv6.or(current.block_ipv6),
            });
        }
        client.set_internet_settings(&update).await?
    } else {
        client.internet_settings().await?
    };
    print_settings(ctx, &s)
}

fn print_settings(ctx: &mut Ctx<'_>, s: &InternetSettings) -> Result<()> {
    if ctx.output == OutputFormat::Json {
        return output::json(ctx.out, s);
    }
    let or_none = |v: &[String]| if v.is_empty() { "-".to_owned() } else { v.join(",") };
    let dns = match s.dns.block_mode.as_str() {
        "address" => format!(
            "address ({}, {})",
            s.dns.block_ipv4.as_deref().unwrap_or("-"),
            s.dns.block_ipv6.as_deref().unwrap_or("-")
        ),
        m => m.to_owned(),
    };
    let action = serde_json::to_value(s.default_action).unwrap_or_default();
    let rows = [
        ("enabled", s.enabled.to_string()),
        ("default action", action.as_str().unwrap_or("-").to_owned()),
        ("dns block", dns),
        ("inspection", if s.inspection { "on" } else { "off" }.to_owned()),
        ("do not inspect", or_none(&s.do_not_inspect)),
        ("bypass", or_none(&s.bypass)),
        ("warn minutes", s.warn_minutes.to_string()),
    ];
    output::line(
        ctx.out,
        output::table(
            &["SETTING", "VALUE"],
            rows.iter().map(|(k, v)| vec![(*k).to_owned(), v.clone()]),
        )
        .trim_end(),
    )
}

pub(super) async fn proxy_credential(ctx: &mut Ctx<'_>, cmd: ProxyCredentialCommand) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        ProxyCredentialCommand::Create { name } => {
            let c = client.create_proxy_credential(&name).await?;
            match ctx.output {
                OutputFormat::Json => output::json(ctx.out, &c),
                OutputFormat::Table => {
                    writeln!(
                        ctx.out,
                        "Proxy credential {} for {} (the password is shown only now):",
                        c.id, c.username
                    )?;
                    writeln!(ctx.out, "username: {}", c.username)?;
                    writeln!(ctx.out, "password: {}", c.password)?;
                    Ok(())
                }
            }
        }
        ProxyCredentialCommand::List { name } => {
            let items = client.list_proxy_credentials(&name).await?;
            match ctx.output {
                OutputFormat::Json => output::json(ctx.out, &items),
                OutputFormat::Table => output::line(
                    ctx.out,
                    output::table(
                        &["ID", "USER", "CREATED"],
                        items
                            .iter()
                            .map(|c| vec![c.id.clone(), c.user.clone(), time(&c.created_at)]),
                    )
                    .trim_end(),
                ),
            }
        }
        ProxyCredentialCommand::Delete { name, id } => {
            client.delete_proxy_credential(&name, &id).await?;
            if ctx.output == OutputFormat::Table {
                writeln!(ctx.out, "Proxy credential {id} of {name} deleted.")?;
            }
            Ok(())
        }
    }
}

/// `logs web` and `logs dns`.
pub(super) async fn logs(ctx: &mut Ctx<'_>, kind: &str, a: InternetLogArgs) -> Result<()> {
    let client = ctx.client()?;
    if let Some(by) = a.top {
        if kind != "web" {
            anyhow::bail!("--top is only for logs web");
        }
        let top = client
            .web_top(&ward_api::TopQuery {
                by: by.clone(),
                action: a.action,
                since: a.since,
                limit: a.limit,
            })
            .await?;
        return match ctx.output {
            OutputFormat::Json => output::json(ctx.out, &top),
            OutputFormat::Table => output::line(ctx.out, top_chart(&by, &top).trim_end()),
        };
    }
    let query = ward_api::WebLogQuery {
        user: a.user,
        device: a.device,
        action: a.action,
        domain: a.domain,
        since: a.since,
        cursor: None,
        limit: None,
    };
    let max = Some(a.limit.map_or(100, |n| n as usize));
    let items = client
        .list_up_to(max, |p| {
            client.list_internet_logs(
                kind,
                ward_api::WebLogQuery {
                    cursor: p.cursor,
                    limit: p.limit,
                    ..query.clone()
                },
            )
        })
        .await?;
    match ctx.output {
        OutputFormat::Json => output::json(ctx.out, &items),
        OutputFormat::Table => output::line(ctx.out, log_table(kind, &items).trim_end()),
    }
}

fn log_table(kind: &str, items: &[AccessLogEntry]) -> String {
    if kind == "dns" {
        return output::table(
            &["TIME", "USER", "NAME", "TYPE", "ACTION", "ANSWER", "DEVICE"],
            items.iter().map(|r| {
                vec![
                    time(&r.time),
                    r.user.clone(),
                    r.dest_host.clone(),
                    r.qtype.clone().unwrap_or_else(|| "-".into()),
                    r.action.clone(),
                    r.answer.clone().unwrap_or_else(|| "-".into()),
                    r.device_id.clone(),
                ]
            }),
        );
    }
    output::table(
        &[
            "TIME",
            "USER",
            "HOST",
            "PORT",
            "ACTION",
            "URL",
            "UPLOAD",
            "BYTES UP/DOWN",
            "DEVICE",
        ],
        items.iter().map(|r| {
            vec![
                time(&r.time),
                r.user.clone(),
                r.dest_host.clone(),
                r.port.to_string(),
                r.action.clone(),
                r.url.clone().unwrap_or_else(|| "-".into()),
                r.upload
                    .as_ref()
                    .map(|u| {
                        format!("{} B {}", u.size, u.file_name.as_deref().unwrap_or(""))
                            .trim_end()
                            .to_owned()
                    })
                    .unwrap_or_else(|| "-".into()),
                format!("{}/{}", r.bytes_up, r.bytes_down),
                r.device_id.clone(),
            ]
        }),
    )
}

/// A table of the top entries with a horizontal bar each, scaled to the largest.
fn top_chart(by: &str, top: &[TopEntry]) -> String {
    const WIDTH: u64 = 40;
    let max = top.iter().map(|t| t.count).max().unwrap_or(0).max(1);
    output::table(
        &[&by.to_ascii_uppercase(), "COUNT", ""],
        top.iter().map(|t| {
            let n = (t.count * WIDTH).div_ceil(max) as usize;
            vec![t.key.clone(), t.count.to_string(), "█".repeat(n)]
        }),
    )
}
