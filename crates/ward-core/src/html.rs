//! Text put into HTML written by hand (the gateway's pages, the agent's
//! page): the one escaping both use.

/// `s` with `&`, `<`, `>`, `"` and `'` escaped: safe as element text and as
/// a quoted attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
