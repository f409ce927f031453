//! The frame every console page shares: head, navigation, style, and the
//! answers for errors and redirects. maud escapes every value it renders,
//! so a name an administrator or a user chose can never become markup.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// Only this server's own style sheet, no scripts at all, no framing, and
/// forms that post only back to this origin.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

pub const STYLE: &str = include_str!("ward.css");

/// The console's sections, in the order of the navigation bar.
pub const SECTIONS: &[(&str, &str)] = &[
    ("/", "Dashboard"),
    ("/users", "Users"),
    ("/devices", "Devices"),
    ("/apps", "Applications"),
    ("/rules", "Rules"),
    ("/records", "Access records"),
    ("/internet", "Internet"),
    ("/audit", "Audit trail"),
    ("/identity-sources", "Identity sources"),
    ("/accounts", "Accounts"),
    ("/apikeys", "API keys"),
];

/// What the frame shows of who is signed in.
pub struct Who<'a> {
    pub tenant: &'a str,
    pub account: &'a str,
    pub role: &'a str,
    pub csrf: &'a str,
}

/// The document every console and portal page shares: head, style sheet,
/// the top bar (the brand linking to `home`, then `header`), and `main`.
pub fn document(title: &str, home: &str, header: Markup, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Ward" }
                link rel="stylesheet" href="/static/ward.css";
            }
            body {
                header.top { a.brand href=(home) { "Ward" } (header) }
                main { (main) }
            }
        }
    }
}

/// A whole page: `current` is the section's path, for the navigation.
pub fn page(title: &str, current: &str, who: Option<&Who<'_>>, body: Markup) -> Response {
    let header = html! {
        @if let Some(who) = who {
            nav {
                @for (path, name) in SECTIONS {
                    @if *path == current {
                        a.current href=(path) aria-current="page" { (name) }
                    } @else {
                        a href=(path) { (name) }
                    }
                }
            }
            div.who {
                a href="/account" { (who.account) " · " (who.tenant) " · " (who.role) }
                form method="post" action="/logout" {
                    (csrf_field(who.csrf))
                    button.link type="submit" { "Sign out" }
                }
            }
        }
    };
    let main = html! { h1 { (title) } (body) };
    html_response(StatusCode::OK, document(title, "/", header, main))
}

pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// A page that says what went wrong, with the status the API would answer.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let main = html! {
        h1 { (reason) }
        p.error role="alert" { (message) }
        p { a href="/" { "Dashboard" } }
    };
    html_response(status, document(reason, "/", html! {}, main))
}

/// Where a sign-in may send the browser afterwards: only a path of this
/// console, never another site (`//evil.example`, `/\evil.example`,
/// `https://...`), never the API.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.starts_with("/api/")
                && n.len() <= 512
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n
        }
        _ => "/",
    }
}

pub fn redirect_to_login(from: &str) -> Response {
    let next = safe_next(Some(from));
    if next == "/" {
        return Redirect::to("/login").into_response();
    }
    let q = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
    Redirect::to(&format!("/login?{q}")).into_response()
}

/// A notice above a page's content (after a form was handled).
pub fn notice(text: Option<&str>, error: bool) -> Markup {
    html! {
        @if let Some(t) = text {
            @if error { p.error role="alert" { (t) } } @else { p.ok role="status" { (t) } }
        }
    }
}

/// `<input type=hidden name=csrf>`.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// An inline SVG bar chart of allowed (green) and denied (red) attempts
/// per bucket, stacked; `labels` under the first, middle and last bars.
pub fn stacked_bars(bars: &[(u64, u64)], labels: [&str; 3]) -> Markup {
    const W: f64 = 720.0;
    const H: f64 = 180.0;
    let max = bars.iter().map(|(a, d)| a + d).max().unwrap_or(0).max(1) as f64;
    let n = bars.len().max(1) as f64;
    let slot = W / n;
    let bar_w = (slot * 0.8).max(1.0);
    let mut svg = String::new();
    for (i, (allowed, denied)) in bars.iter().enumerate() {
        let x = i as f64 * slot + (slot - bar_w) / 2.0;
        let ha = *allowed as f64 / max * H;
        let hd = *denied as f64 / max * H;
        svg.push_str(&format!(
            "<rect class=\"allow\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{ha:.1}\"><title>{allowed} allowed</title></rect>",
            H - ha
        ));
        svg.push_str(&format!(
            "<rect class=\"deny\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{hd:.1}\"><title>{denied} denied</title></rect>",
            H - ha - hd
        ));
    }
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {W} {}", H + 20.0)) role="img" aria-label="Allowed and denied connections" {
                (PreEscaped(svg))
                text x="0" y=(H + 16.0) { (labels[0]) }
                text x=(W / 2.0) y=(H + 16.0) text-anchor="middle" { (labels[1]) }
                text x=(W) y=(H + 16.0) text-anchor="end" { (labels[2]) }
            }
            figcaption {
                span.key.allow { "allowed" } " " span.key.deny { "denied" }
                " · highest bar: " (max as u64)
            }
        }
    }
}

/// An inline SVG chart of labelled horizontal bars (largest first, as
/// given), each bar with its count; `class` colours them (`allow`, `deny`);
/// `empty` is said when there is nothing to draw.
pub fn horizontal_bars(bars: &[(String, u64)], class: &str, empty: &str) -> Markup {
    if bars.is_empty() {
        return html! { p.muted { (empty) } };
    }
    const W: f64 = 520.0;
    const LABEL: f64 = 200.0;
    const ROW: f64 = 22.0;
    let max = bars.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let h = ROW * bars.len() as f64;
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {W} {h}")) role="img" aria-label="Counts by name" {
                @for (i, (label, n)) in bars.iter().enumerate() {
                    @let y = i as f64 * ROW;
                    @let w = (*n as f64 / max * (W - LABEL - 60.0)).max(1.0);
                    @let shown: String = if label.chars().count() > 30 {
                        label.chars().take(29).collect::<String>() + "…"
                    } else {
                        label.clone()
                    };
                    text x="0" y=(format!("{:.1}", y + 15.0)) { title { (label) } (shown) }
                    rect class=(class) x=(LABEL) y=(format!("{:.1}", y + 4.0)) width=(format!("{w:.1}")) height="14" {
                        title { (label) ": " (n) }
                    }
                    text x=(format!("{:.1}", LABEL + w + 6.0)) y=(format!("{:.1}", y + 15.0)) { (n) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/rules")), "/rules");
        assert_eq!(safe_next(Some("/records?user=alice")), "/records?user=alice");
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "evil",
            "/api/v1/users",
            "/a b",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn names_are_escaped() {
        let who = Who {
            tenant: "t",
            account: "<script>alert(1)</script>",
            role: "owner",
            csrf: "x",
        };
        let r = page(
            "<b>",
            "/",
            Some(&who),
            html! { p { ("\"><img src=x onerror=alert(1)>") } },
        );
        let body = futures::executor::block_on(axum::body::to_bytes(r.into_body(), 1 << 20)).unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(!body.contains("<script>alert"));
        assert!(!body.contains("<img src=x"));
        assert!(body.contains("&lt;script&gt;"));
    }
}
