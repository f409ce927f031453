//! LDAP / Active Directory as an identity source: the directory's
//! settings, the bind check of a sign-in, and reading every user and group
//! for a sync. Through `ldap3`, with TLS from `ward_pki::ldap_client_config`
//! (TLS 1.3 only): `ldaps://` or `ldap://` upgraded with StartTLS. Plain,
//! unencrypted LDAP is never spoken: a password never crosses the network
//! in clear.
//!
//! A user name is checked (1 to 256 characters, no control characters) and
//! escaped per RFC 4515 ([`escape_filter_value`]) before it goes into the
//! search filter, so `*`, parentheses, backslashes and NUL cannot widen the
//! search to another user. An empty password is refused before any bind:
//! a simple bind with a DN and no password is an anonymous bind, which
//! many directories accept.
//!
//! Nothing of the store here: `portal::ldap` and `api::ldap_sync` map what
//! is read to users and groups.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, ResultEntry, Scope, SearchEntry};
use serde::{Deserialize, Serialize};
use ward_core::attrs::{self, Attributes};
use ward_core::Name;

/// How long connecting (TCP and TLS) and each operation may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Page size of the sync's searches.
const PAGE: i32 = 500;
/// The longest user name accepted at sign-in.
pub const MAX_USERNAME: usize = 256;

/// An LDAP source's settings, kept as JSON in `identity_sources.config`.
/// The bind password is not here: it is sealed in its own column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    pub bind_dn: String,
    pub user_base: String,
    pub user_filter: String,
    pub username_attribute: String,
    pub email_attribute: String,
    pub display_attribute: String,
    pub id_attribute: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_base: Option<String>,
    pub group_membership: String,
    pub group_name_attribute: String,
    #[serde(default)]
    pub sync_attributes: Vec<String>,
    pub sync_interval_secs: u64,
}

/// What went wrong talking to the directory.
#[derive(Debug, thiserror::Error)]
pub enum LdapFailure {
    /// The credentials were refused, or the user is not in the directory
    /// (or several entries match): a refused sign-in.
    #[error("{0}")]
    Refused(String),
    /// The directory cannot be reached, TLS failed, the service bind was
    /// refused, or the directory answered something unexpected.
    #[error("{0}")]
    Directory(String),
}

/// A user as the directory has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub dn: String,
    /// What links the user to its Ward user for good: the id attribute's
    /// value (hex for a binary one such as `objectGUID`), or the DN.
    pub subject: String,
    /// The Ward user name: the username attribute, lower-cased.
    pub username: String,
    pub attributes: Attributes,
    /// Ward group names.
    pub groups: Vec<String>,
}

/// Escapes a value for an LDAP search filter (RFC 4515): `*`, `(`, `)`,
/// `\` and NUL become `\2a`, `\28`, `\29`, `\5c` and `\00`. Everything
/// else, UTF-8 included, passes as it is.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Whether a user name may be looked up at all: 1 to 256 bytes, no
/// control characters (NUL, newlines, ...).
pub fn username_acceptable(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_USERNAME && !name.chars().any(char::is_control)
}

/// The user filter for one user name: the template with `{username}`
/// replaced by the escaped name.
pub fn user_filter(template: &str, username: &str) -> String {
    template.replace("{username}", &escape_filter_value(username))
}

/// A Ward name from a directory value: lower-cased, spaces as dashes.
pub fn ward_name(value: &str) -> Option<String> {
    let v = value.trim().to_lowercase().replace(' ', "-");
    Name::parse(&v).ok().map(|n| n.as_str().to_owned())
}

/// Checks a URL: `ldaps://` or `ldap://` (StartTLS), a host, an optional
/// port, nothing else.
pub fn check_url(url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("url: {e}"))?;
    if !matches!(u.scheme(), "ldaps" | "ldap") {
        return Err("url: ldaps://host[:port], or ldap://host[:port] (upgraded with StartTLS)".into());
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("url: a host is needed".into());
    }
    if !(u.path().is_empty() || u.path() == "/")
        || u.query().is_some()
        || u.fragment().is_some()
        || !u.username().is_empty()
    {
        return Err("url: only ldaps://host[:port] or ldap://host[:port]".into());
    }
    Ok(())
}

/// Checks a filter template: it parses as an LDAP filter and has exactly
/// one `{username}`.
pub fn check_user_filter(template: &str) -> Result<(), String> {
    if template.matches("{username}").count() != 1 {
        return Err("user_filter: must contain {username} exactly once".into());
    }
    if template.len() > 1024 || ldap3::parse_filter(user_filter(template, "x")).is_err() {
        return Err("user_filter: not a valid LDAP filter, like (uid={username})".into());
    }
    Ok(())
}

/// A synced attribute, `attribute` or `key=attribute`: the Ward key (the
/// attribute's name lower-cased when not given) and the directory attribute.
pub fn sync_attribute(spec: &str) -> (String, &str) {
    match spec.split_once('=') {
        Some((key, attr)) => (key.trim().to_owned(), attr.trim()),
        None => (spec.trim().to_lowercase(), spec.trim()),
    }
}

/// An open, TLS-protected connection.
async fn connect(cfg: &LdapConfig) -> Result<Ldap, LdapFailure> {
    let dir = |e: String| LdapFailure::Directory(e);
    check_url(&cfg.url).map_err(dir)?;
    let tls = ward_pki::ldap_client_config(cfg.ca_pem.as_deref()).map_err(|e| dir(format!("TLS: {e}")))?;
    let settings = LdapConnSettings::new()
        .set_conn_timeout(TIMEOUT)
        .set_config(tls)
        .set_starttls(cfg.url.starts_with("ldap://"));
    let (conn, mut ldap) = tokio::time::timeout(TIMEOUT, LdapConnAsync::with_settings(settings, &cfg.url))
        .await
        .map_err(|_| dir(format!("{}: timed out", cfg.url)))?
        .map_err(|e| dir(format!("{}: {e}", cfg.url)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!(error = %e, "LDAP connection ended");
        }
    });
    ldap.with_timeout(TIMEOUT);
    Ok(ldap)
}

/// Binds as the service account.
async fn service_bind(ldap: &mut Ldap, cfg: &LdapConfig, password: &str) -> Result<(), LdapFailure> {
    let r = ldap
        .with_timeout(TIMEOUT)
        .simple_bind(&cfg.bind_dn, password)
        .await
        .map_err(|e| LdapFailure::Directory(format!("service bind: {e}")))?;
    if r.rc != 0 {
        return Err(LdapFailure::Directory(format!(
            "service bind as {} refused (LDAP result {}: {})",
            cfg.bind_dn, r.rc, r.text
        )));
    }
    Ok(())
}

/// `SearchEntry::construct` panics on malformed BER; a directory must not
/// be able to panic the server.
fn entry(re: ResultEntry) -> Option<SearchEntry> {
    std::panic::catch_unwind(AssertUnwindSafe(|| SearchEntry::construct(re))).ok()
}

/// Every entry under `base` matching `filter`, page by page.
async fn search_all(
    ldap: &mut Ldap,
    base: &str,
    filter: &str,
    wanted: &[String],
) -> Result<Vec<SearchEntry>, LdapFailure> {
    let dir = |e: ldap3::LdapError| LdapFailure::Directory(format!("search under {base}: {e}"));
    let adapters: Vec<Box<dyn ldap3::adapters::Adapter<_, _>>> = vec![
        Box::new(ldap3::adapters::EntriesOnly::new()),
        Box::new(ldap3::adapters::PagedResults::new(PAGE)),
    ];
    let mut stream = ldap
        .with_timeout(TIMEOUT)
        .streaming_search_with(adapters, base, Scope::Subtree, filter, wanted.to_vec())
        .await
        .map_err(dir)?;
    let mut out = Vec::new();
    while let Some(re) = stream.next().await.map_err(dir)? {
        if let Some(e) = entry(re) {
            out.push(e);
        }
    }
    let r = stream.finish().await;
    if r.rc != 0 {
        return Err(LdapFailure::Directory(format!(
            "search under {base}: LDAP result {}: {}",
            r.rc, r.text
        )));
    }
    Ok(out)
}

/// The first value of `name` (compared without regard to case).
fn first<'a>(e: &'a SearchEntry, name: &str) -> Option<&'a str> {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

fn all<'a>(e: &'a SearchEntry, name: &str) -> Vec<&'a str> {
    e.attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.iter().map(String::as_str))
        .collect()
}

/// A DN compared without regard to case or spaces after separators.
fn dn_key(dn: &str) -> String {
    dn.split(',')
        .map(|p| p.trim().to_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

/// The value of a DN's first RDN (`cn=Engineering,ou=groups` gives `Engineering`).
fn first_rdn_value(dn: &str) -> Option<&str> {
    let rdn = dn.split(',').next()?;
    rdn.split_once('=').map(|(_, v)| v.trim())
}

impl LdapConfig {
    /// The attributes to ask for on user entries.
    fn user_attributes(&self) -> Vec<String> {
        let mut a = vec![
            self.username_attribute.clone(),
            self.email_attribute.clone(),
            self.display_attribute.clone(),
        ];
        if !self.id_attribute.eq_ignore_ascii_case("dn") {
            a.push(self.id_attribute.clone());
        }
        if self.group_membership == "memberOf" {
            a.push("memberOf".into());
        }
        a.extend(self.sync_attributes.iter().map(|s| sync_attribute(s).1.to_owned()));
        a
    }

    /// A user entry as a [`DirectoryUser`] (its groups not yet filled in
    /// unless they come from `memberOf`). None when it has no usable user
    /// name or id.
    fn to_user(&self, e: &SearchEntry) -> Option<DirectoryUser> {
        let username = ward_name(first(e, &self.username_attribute)?)?;
        let subject = if self.id_attribute.eq_ignore_ascii_case("dn") {
            e.dn.clone()
        } else if let Some(v) = first(e, &self.id_attribute) {
            v.to_owned()
        } else {
            let bin = e
                .bin_attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&self.id_attribute))
                .and_then(|(_, v)| v.first())?;
            hex::encode(bin)
        };
        let mut attributes = BTreeMap::new();
        let mut put = |key: &str, value: Option<&str>| {
            if let Some(v) = value.map(str::trim) {
                if attrs::check_key(key).is_ok() && attrs::check_value(key, v).is_ok() {
                    attributes.insert(key.to_owned(), v.to_owned());
                }
            }
        };
        for s in &self.sync_attributes {
            let (key, attr) = sync_attribute(s);
            put(&key, first(e, attr));
        }
        put(attrs::EMAIL, first(e, &self.email_attribute));
        put("display_name", first(e, &self.display_attribute));
        let groups = if self.group_membership == "memberOf" {
            let base = self.group_base.as_deref().map(dn_key);
            all(e, "memberOf")
                .into_iter()
                .filter(|dn| base.as_ref().is_none_or(|b| dn_key(dn).ends_with(b.as_str())))
                .filter_map(first_rdn_value)
                .filter_map(ward_name)
                .collect()
        } else {
            Vec::new()
        };
        Some(DirectoryUser {
            dn: e.dn.clone(),
            subject,
            username,
            attributes,
            groups,
        })
    }

    fn member_attribute(&self) -> &str {
        if self.group_membership == "uniqueMember" {
            "uniqueMember"
        } else {
            "member"
        }
    }
}

/// Signs a user in: service bind, find exactly one entry for the (checked,
/// escaped) user name, read its groups, then bind as that entry with the
/// password. Every refusal of the credentials is [`LdapFailure::Refused`].
pub async fn authenticate(
    cfg: &LdapConfig,
    bind_password: &str,
    username: &str,
    password: &str,
) -> Result<DirectoryUser, LdapFailure> {
    if !username_acceptable(username) {
        return Err(LdapFailure::Refused("user name refused".into()));
    }
    if password.is_empty() {
        // A simple bind with an empty password is an anonymous bind.
        return Err(LdapFailure::Refused("empty password".into()));
    }
    let mut ldap = connect(cfg).await?;
    let result = async {
        service_bind(&mut ldap, cfg, bind_password).await?;
        let filter = user_filter(&cfg.user_filter, username);
        let found = search_all(&mut ldap, &cfg.user_base, &filter, &cfg.user_attributes()).await?;
        let [e] = found.as_slice() else {
            return Err(LdapFailure::Refused(format!("{} entries match", found.len())));
        };
        let mut user = cfg
            .to_user(e)
            .ok_or_else(|| LdapFailure::Refused("the entry has no usable user name or id".into()))?;
        if cfg.group_membership != "memberOf" {
            if let Some(base) = &cfg.group_base {
                let filter = format!("({}={})", cfg.member_attribute(), escape_filter_value(&user.dn));
                let groups = search_all(
                    &mut ldap,
                    base,
                    &filter,
                    std::slice::from_ref(&cfg.group_name_attribute),
                )
                .await?;
                user.groups = groups
                    .iter()
                    .filter_map(|g| first(g, &cfg.group_name_attribute))
                    .filter_map(ward_name)
                    .collect();
            }
        }
        let r = ldap
            .with_timeout(TIMEOUT)
            .simple_bind(&user.dn, password)
            .await
            .map_err(|e| LdapFailure::Directory(format!("bind: {e}")))?;
        if r.rc != 0 {
            return Err(LdapFailure::Refused(format!("bind refused (LDAP result {})", r.rc)));
        }
        user.groups.sort();
        user.groups.dedup();
        Ok(user)
    }
    .await;
    let _ = ldap.unbind().await;
    result
}

/// Everything a sync needs: every user the filter template admits (with
/// `{username}` as `*`) and their groups, and how many groups were seen.
pub async fn read_directory(cfg: &LdapConfig, bind_password: &str) -> Result<(Vec<DirectoryUser>, u64), LdapFailure> {
    let mut ldap = connect(cfg).await?;
    let result = async {
        service_bind(&mut ldap, cfg, bind_password).await?;
        let filter = cfg.user_filter.replace("{username}", "*");
        let entries = search_all(&mut ldap, &cfg.user_base, &filter, &cfg.user_attributes()).await?;
        let mut users: Vec<DirectoryUser> = entries.iter().filter_map(|e| cfg.to_user(e)).collect();
        let mut groups_seen = 0u64;
        if cfg.group_membership == "memberOf" {
            let mut names: Vec<&String> = users.iter().flat_map(|u| &u.groups).collect();
            names.sort();
            names.dedup();
            groups_seen = names.len() as u64;
        } else if let Some(base) = &cfg.group_base {
            let member = cfg.member_attribute().to_owned();
            let filter = format!("({member}=*)");
            let groups = search_all(
                &mut ldap,
                base,
                &filter,
                &[cfg.group_name_attribute.clone(), member.clone()],
            )
            .await?;
            let mut by_member: HashMap<String, Vec<String>> = HashMap::new();
            for g in &groups {
                let Some(name) = first(g, &cfg.group_name_attribute).and_then(ward_name) else {
                    continue;
                };
                groups_seen += 1;
                for m in all(g, &member) {
                    by_member.entry(dn_key(m)).or_default().push(name.clone());
                }
            }
            for u in &mut users {
                u.groups = by_member.get(&dn_key(&u.dn)).cloned().unwrap_or_default();
            }
        }
        for u in &mut users {
            u.groups.sort();
            u.groups.dedup();
        }
        Ok((users, groups_seen))
    }
    .await;
    let _ = ldap.unbind().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_the_specials() {
        assert_eq!(escape_filter_value("*"), "\\2a");
        assert_eq!(escape_filter_value("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
        assert_eq!(escape_filter_value("admin)(|(uid=*"), "admin\\29\\28|\\28uid=\\2a");
        assert_eq!(escape_filter_value("a\\b\0c"), "a\\5cb\\00c");
        assert_eq!(escape_filter_value("jörg"), "jörg");
        assert_eq!(user_filter("(uid={username})", "*"), "(uid=\\2a)");
    }

    #[test]
    fn names_with_control_characters_refused() {
        assert!(!username_acceptable(""));
        assert!(!username_acceptable("a\0b"));
        assert!(!username_acceptable("a\nb"));
        assert!(!username_acceptable(&"a".repeat(257)));
        assert!(username_acceptable("alice"));
    }

    #[test]
    fn urls_and_filters_checked() {
        assert!(check_url("ldaps://dir.corp.example:636").is_ok());
        assert!(check_url("ldap://127.0.0.1:389").is_ok());
        for bad in [
            "http://x",
            "ldapi:///x",
            "ldaps://",
            "ldaps://h/dc=x",
            "ldaps://u@h",
            "nonsense",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_user_filter("(uid={username})").is_ok());
        assert!(check_user_filter("(&(objectClass=user)(sAMAccountName={username}))").is_ok());
        assert!(check_user_filter("(uid=x)").is_err());
        assert!(check_user_filter("uid={username}))").is_err());
    }

    #[test]
    fn dns_and_names() {
        assert_eq!(dn_key("CN=Eng, OU=Groups,DC=corp"), "cn=eng,ou=groups,dc=corp");
        assert_eq!(first_rdn_value("cn=Engineering,ou=groups"), Some("Engineering"));
        assert_eq!(ward_name("Domain Admins").as_deref(), Some("domain-admins"));
        assert_eq!(ward_name("x)(y"), None);
    }

    proptest! {
        /// The escaped value has no special character left bare, and
        /// unescaping it gives the value back: it can only ever match the
        /// literal name.
        #[test]
        fn escaped_values_are_literal(s in "\\PC{0,40}|[*()\\\\\0a-z]{0,40}") {
            let e = escape_filter_value(&s);
            prop_assert!(!e.contains(['*', '(', ')', '\0']));
            // Every backslash starts one of the five escapes.
            let mut rest = e.as_str();
            while let Some(i) = rest.find('\\') {
                let esc = rest.get(i..i + 3).unwrap_or("");
                prop_assert!(["\\2a", "\\28", "\\29", "\\5c", "\\00"].contains(&esc), "{esc}");
                rest = &rest[i + 3..];
            }
            let back = ldap3::ldap_unescape(e.as_str()).map(|c| c.into_owned()).ok();
            prop_assert_eq!(back.as_deref(), Some(s.as_str()));
            // The filter it makes parses, as one equality test.
            let template = "(uid={username})";
            prop_assert!(ldap3::parse_filter(user_filter(template, &s)).is_ok() || s.is_empty());
        }
    }
}
