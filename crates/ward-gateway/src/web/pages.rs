//! The gateway's own pages on published hosts: access denied, unknown host,
//! a refused sign-in link. Plain HTML with every value escaped, inline
//! styles only, and a Content-Security-Policy that allows nothing else.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

pub(crate) use ward_core::html::escape;

/// What a page says, and to whom.
pub(crate) struct Page<'a> {
    pub(crate) status: StatusCode,
    pub(crate) title: &'a str,
    pub(crate) message: &'a str,
    /// (label, value) lines: who, which host, why, the request id.
    pub(crate) facts: &'a [(&'a str, &'a str)],
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}\
main{max-width:34rem;margin:12vh auto;background:#fff;border-radius:10px;padding:2rem 2.2rem;\
box-shadow:0 2px 12px rgba(0,0,0,.08)}.brand{font-weight:700;letter-spacing:.04em;color:#3451b2}\
h1{font-size:1.5rem;margin:.6rem 0 1rem}dl{display:grid;grid-template-columns:auto 1fr;gap:.35rem 1rem}\
dt{color:#5b6375}dd{margin:0;word-break:break-all}p.muted{color:#5b6375;font-size:.9rem}";

/// Nothing but the page's one style element, by its hash.
fn csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        use base64::Engine as _;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, STYLE.as_bytes());
        format!(
            "default-src 'none'; style-src 'sha256-{}'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
        )
    })
}

/// The page as an HTTP response.
pub(crate) fn render(page: &Page<'_>) -> Response<Full<Bytes>> {
    render_with_link(page, None)
}

/// The page with one link under the message (`(label, href)`): the
/// "Continue" of an internet warning.
pub(crate) fn render_with_link(page: &Page<'_>, link: Option<(&str, &str)>) -> Response<Full<Bytes>> {
    let link = link
        .map(|(label, href)| format!("<p><a href=\"{}\">{}</a></p>", escape(href), escape(label)))
        .unwrap_or_default();
    let mut facts = String::new();
    for (label, value) in page.facts {
        facts.push_str(&format!("<dt>{}</dt><dd>{}</dd>", escape(label), escape(value)));
    }
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Ward</title><style>{STYLE}</style></head><body><main>\
         <div class=\"brand\">WARD</div><h1>{title}</h1><p>{message}</p>{link}<dl>{facts}</dl>\
         <p class=\"muted\">If you think you should have access, ask your administrator and give them the request id.</p>\
         </main></body></html>",
        title = escape(page.title),
        message = escape(page.message),
    );
    let mut response = Response::new(Full::new(Bytes::from(html)));
    *response.status_mut() = page.status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(csp) = HeaderValue::from_str(csp()) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_only_the_page_style() {
        let c = csp();
        assert!(c.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(!c.contains("unsafe"));
    }

    #[test]
    fn escapes_everything_user_controlled() {
        assert_eq!(escape("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
    }
}
