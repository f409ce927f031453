//! What the agent's HTTP proxy answers to requests meant for itself
//! (origin-form: `GET /proxy.pac`, not `GET http://site/`):
//!
//! - `GET /proxy.pac` and `GET /wpad.dat`: the proxy auto-config file
//!   ([`crate::routing::Routing::pac`]) pointing browsers at this proxy;
//! - `GET /`: the agent's page: the gateway it uses, and the sites a rule
//!   warned about lately, each with a **Continue** button;
//! - `POST /proceed` (form `host`, `token`): clicks a warning through. The
//!   token is the page's own, random per run, so another site cannot post
//!   the form for the user (it cannot read the page).
//!
//! Only under a loopback address or `localhost`: another `Host` gets `421`,
//! so a site that makes its own name resolve to 127.0.0.1 (DNS rebinding)
//! cannot read the page and its token.
//!
//! A browser cannot show a proxy's answer to a refused `CONNECT`, so for an
//! HTTPS site this page is where a user learns why it did not open, and how
//! to continue when the rule only warns.

use std::net::SocketAddr;

use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ward_core::html::escape;

use crate::up::Agent;

/// Largest form accepted by `POST /proceed`.
const MAX_FORM: u64 = 4096;

pub(crate) fn new_page_token() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Answers one request for the agent itself, then the connection closes.
pub(crate) async fn serve<S>(agent: &Agent, client: &mut S, method: &str, path: &str, content_length: u64, host: &str)
where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin,
{
    let path_only = path.split('?').next().unwrap_or(path);
    // A page reached under another name is a site that resolved its name to
    // this address (DNS rebinding) to read the page and post its form.
    if !is_local_host(host) {
        let answer = Answer::text(
            421,
            "this is Ward's agent: open it as http://127.0.0.1:PORT/ or http://localhost:PORT/",
        );
        let _ = answer.write(client, method == "HEAD").await;
        return;
    }
    let answer = match (method, path_only) {
        ("GET" | "HEAD", "/proxy.pac" | "/wpad.dat") => {
            let proxy = agent
                .http_addr()
                .map(loopback_if_unspecified)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3128)));
            Answer::ok("application/x-ns-proxy-autoconfig", agent.routing().pac(proxy))
        }
        ("GET" | "HEAD", "/") => Answer::ok("text/html; charset=utf-8", page(agent, path)),
        ("POST", "/proceed") => {
            if content_length > MAX_FORM {
                Answer::text(413, "form too large")
            } else {
                let mut body = vec![0u8; content_length as usize];
                match client.read_exact(&mut body).await {
                    Ok(_) => proceed(agent, &body).await,
                    Err(_) => return,
                }
            }
        }
        (_, "/" | "/proxy.pac" | "/wpad.dat" | "/proceed") => Answer::text(405, "method not allowed"),
        _ => Answer::text(
            404,
            "this is Ward's agent: use it as a proxy (http://host/ or CONNECT), or open / for its page",
        ),
    };
    let _ = answer.write(client, method == "HEAD").await;
}

/// `Host` names a loopback address or `localhost` (with any port), or is
/// absent (HTTP/1.0).
fn is_local_host(host: &str) -> bool {
    if host.is_empty() {
        return true;
    }
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(
            host,
            |(h, p)| if p.chars().all(|c| c.is_ascii_digit()) { h } else { host },
        ),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

async fn proceed(agent: &Agent, form: &[u8]) -> Answer {
    let mut host = None;
    let mut token = None;
    for (k, v) in form_pairs(form) {
        match k.as_str() {
            "host" => host = Some(v),
            "token" => token = Some(v),
            _ => {}
        }
    }
    if token.as_deref() != Some(agent.page_token()) {
        return Answer::text(
            403,
            "this form did not come from the agent's page; open / and try again",
        );
    }
    let Some(host) = host else {
        return Answer::text(400, "which site? (host is missing)");
    };
    match agent.proceed(&host).await {
        Ok(()) => Answer::redirect(&format!("/?continued={}", percent_encode(&host))),
        Err(e) => Answer::text(502, &format!("cannot continue to {host}: {e}")),
    }
}

fn page(agent: &Agent, path: &str) -> String {
    let continued = path
        .split_once('?')
        .and_then(|(_, q)| form_pairs(q.as_bytes()).find(|(k, _)| k == "continued").map(|(_, v)| v));
    let status = agent.tunnel().status();
    let mut rows = String::new();
    for w in agent.warnings().iter().rev() {
        rows.push_str(&format!(
            "<tr><td>{host}</td><td>{rule}</td><td>{at}</td><td><form method=\"post\" action=\"/proceed\">\
             <input type=\"hidden\" name=\"host\" value=\"{host}\"><input type=\"hidden\" name=\"token\" \
             value=\"{token}\"><button type=\"submit\">Continue to {host}</button></form></td></tr>",
            host = escape(&w.host),
            rule = escape(w.rule.as_deref().unwrap_or("")),
            at = escape(&w.at),
            token = agent.page_token(),
        ));
    }
    let warnings = if rows.is_empty() {
        "<p>No warnings lately.</p>".to_owned()
    } else {
        format!(
            "<p>A rule of your organisation warns about these sites. You may continue; your choice is \
             recorded.</p><table><tr><th>Site</th><th>Rule</th><th>When</th><th></th></tr>{rows}</table>"
        )
    };
    let note = match continued {
        Some(host) => format!(
            "<p class=\"ok\">You can open {} now. Reload the page that did not open.</p>",
            escape(&host)
        ),
        None => String::new(),
    };
    let mut blocked = String::new();
    for d in agent
        .decisions()
        .iter()
        .rev()
        .filter(|d| d.reason.as_deref() == Some(ward_api::REASON_INTERNET_BLOCKED))
        .take(10)
    {
        blocked.push_str(&format!(
            "<li>{} (rule {})</li>",
            escape(&d.target),
            escape(d.rule.as_deref().unwrap_or("-"))
        ));
    }
    let blocked = if blocked.is_empty() {
        String::new()
    } else {
        format!("<h2>Blocked lately</h2><ul>{blocked}</ul>")
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Ward agent</title>\
         <style>body{{font:15px system-ui,sans-serif;margin:2rem auto;max-width:52rem;color:#1b2430}}\
         h1{{font-size:1.4rem}}table{{border-collapse:collapse;width:100%}}td,th{{text-align:left;\
         padding:.4rem;border-bottom:1px solid #dde3ea}}button{{padding:.3rem .8rem}}.ok{{color:#0a6b2d}}\
         .muted{{color:#5b6776}}</style></head><body><h1>Ward agent</h1>\
         <p class=\"muted\">Gateway {gateway}: {state}.</p>{note}<h2>Warnings</h2>{warnings}{blocked}\
         </body></html>",
        gateway = escape(&agent.tunnel().config().gateway),
        state = escape(&format!("{:?}", status.state).to_lowercase()),
    )
}

struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
    location: Option<String>,
}

impl Answer {
    fn ok(content_type: &'static str, body: String) -> Answer {
        Answer {
            status: 200,
            content_type,
            body,
            location: None,
        }
    }

    fn text(status: u16, body: &str) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n"),
            location: None,
        }
    }

    fn redirect(to: &str) -> Answer {
        Answer {
            status: 303,
            content_type: "text/plain; charset=utf-8",
            body: String::new(),
            location: Some(to.to_owned()),
        }
    }

    async fn write<S: AsyncWrite + Unpin>(&self, out: &mut S, head_only: bool) -> std::io::Result<()> {
        let reason = match self.status {
            303 => "See Other",
            421 => "Misdirected Request",
            413 => "Content Too Large",
            _ => crate::proxy::http::reason_phrase(self.status),
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
             X-Content-Type-Options: nosniff\r\nContent-Security-Policy: default-src 'none'; style-src \
             'unsafe-inline'; form-action 'self'\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if let Some(location) = &self.location {
            head.push_str(&format!("Location: {location}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes()).await?;
        if !head_only {
            out.write_all(self.body.as_bytes()).await?;
        }
        out.flush().await
    }
}

/// `application/x-www-form-urlencoded` pairs.
fn form_pairs(form: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    form.split(|&b| b == b'&').filter(|p| !p.is_empty()).map(|pair| {
        let mut it = pair.splitn(2, |&b| b == b'=');
        let k = percent_decode(it.next().unwrap_or_default());
        let v = percent_decode(it.next().unwrap_or_default());
        (k, v)
    })
}

fn percent_decode(s: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_names_reach_the_page() {
        for ok in [
            "127.0.0.1:3128",
            "localhost:3128",
            "localhost",
            "[::1]:3128",
            "127.0.0.2",
            "",
        ] {
            assert!(is_local_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:3128",
            "evil.example",
            "10.0.0.1:3128",
            "[2001:db8::1]:80",
            "localhost.evil.example",
        ] {
            assert!(!is_local_host(bad), "{bad}");
        }
    }

    #[test]
    fn forms_decode() {
        let pairs: Vec<_> = form_pairs(b"host=news.example&token=ab%2Fc+d&x=%zz&y=%4").collect();
        assert_eq!(
            pairs,
            vec![
                ("host".to_owned(), "news.example".to_owned()),
                ("token".to_owned(), "ab/c d".to_owned()),
                ("x".to_owned(), "%zz".to_owned()),
                ("y".to_owned(), "%4".to_owned()),
            ]
        );
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
