//! Domain lists and their import formats.
//!
//! A [`DomainList`] holds two kinds of entries:
//!
//! - an exact name, `ads.example`, which matches that name only;
//! - a wildcard, `*.ads.example`, which matches every name strictly below
//!   `ads.example`, at any depth (`x.ads.example`, `a.b.ads.example`), but
//!   not `ads.example` itself (as for private applications' wildcards).
//!
//! An adblock rule `||ads.example^` matches the name and everything below
//! it, so it becomes both entries. Names are normalised as a browser
//! resolves them ([`crate::name`]): a list written in Unicode matches the
//! punycode a client sends.
//!
//! [`parse_list`] reads the usual formats ([`ListFormat`]), detecting the
//! format unless told, and reports what it accepted, ignored and refused,
//! with line numbers ([`ImportReport`]). The list is kept as one string in
//! its canonical text form (one entry a line, `name` or `*.name`), which is
//! also how it is serialised: about the size of the names themselves, and one
//! allocation for a million domains.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::name::{normalize_into, NameError, Normalized};

/// How many invalid (and ignored) lines an [`ImportReport`] quotes.
pub const REPORTED_LINES: usize = 10;
/// Longer lines are refused without looking at them.
pub const MAX_LINE_LEN: usize = 4096;

/// The text formats [`parse_list`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListFormat {
    /// `0.0.0.0 ads.example tracker.example # comment`: an address, then one
    /// or more names, each an exact entry. Localhost entries are ignored.
    Hosts,
    /// `||ads.example^`: the name and all its subdomains. Lines with
    /// `$options` (other than `$important`), cosmetic rules (`##`), exception
    /// rules (`@@`) and URL or regular-expression rules are ignored; `!`
    /// starts a comment.
    Adblock,
    /// One entry a line: `ads.example` (exact) or `*.ads.example`
    /// (subdomains only); `#` starts a comment.
    Plain,
}

impl fmt::Display for ListFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListFormat::Hosts => "hosts",
            ListFormat::Adblock => "adblock",
            ListFormat::Plain => "plain",
        })
    }
}

impl std::str::FromStr for ListFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hosts" => Ok(ListFormat::Hosts),
            "adblock" => Ok(ListFormat::Adblock),
            "plain" => Ok(ListFormat::Plain),
            other => Err(format!("unknown list format {other:?} (hosts, adblock or plain)")),
        }
    }
}

/// What an entry matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Exactly the name.
    Exact,
    /// Every name strictly below the name.
    Subdomains,
}

/// One entry of a [`DomainList`]; `name` is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub kind: EntryKind,
}

/// A list of exact and wildcard domain entries, normalised, in its canonical
/// text form. Serialises as that text (one entry a line); deserialising
/// checks every line again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainList {
    /// `name\n` or `*.name\n` per entry, every name normalised.
    text: String,
    len: usize,
}

impl DomainList {
    pub fn new() -> DomainList {
        DomainList::default()
    }

    /// Build a list from entries in the plain format (`name` or `*.name`),
    /// such as names an administrator typed. The first invalid one is an
    /// error.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<DomainList, ListError> {
        let mut list = DomainList::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let (name, kind) = match entry.trim().strip_prefix("*.") {
                Some(rest) => (rest, EntryKind::Subdomains),
                None => (entry.trim(), EntryKind::Exact),
            };
            list.push(name, kind)
                .map_err(|error| ListError { line: i + 1, error })?;
        }
        Ok(list)
    }

    /// Parse a list in its canonical form (what [`DomainList::as_text`]
    /// gives); every line must be a valid entry.
    pub fn from_text(text: &str) -> Result<DomainList, ListError> {
        let mut list = DomainList {
            text: String::with_capacity(text.len()),
            len: 0,
        };
        for (i, line) in text.lines().enumerate() {
            let (name, kind) = match line.strip_prefix("*.") {
                Some(rest) => (rest, EntryKind::Subdomains),
                None => (line, EntryKind::Exact),
            };
            list.push(name, kind)
                .map_err(|error| ListError { line: i + 1, error })?;
        }
        Ok(list)
    }

    /// Normalise `name` and add it. An IP address is refused.
    pub fn push(&mut self, name: &str, kind: EntryKind) -> Result<(), NameError> {
        let start = self.text.len();
        if kind == EntryKind::Subdomains {
            self.text.push_str("*.");
        }
        match normalize_into(name, &mut self.text) {
            Ok(Normalized::Name) => {
                self.text.push('\n');
                self.len += 1;
                Ok(())
            }
            Ok(Normalized::Ip(_)) => {
                self.text.truncate(start);
                Err(NameError::IpLiteral)
            }
            Err(e) => {
                self.text.truncate(start);
                Err(e)
            }
        }
    }

    /// Add the name and everything below it (an exact and a wildcard entry),
    /// normalising the name once.
    pub fn push_subtree(&mut self, name: &str) -> Result<(), NameError> {
        let start = self.text.len();
        self.push(name, EntryKind::Exact)?;
        let end = self.text.len() - 1;
        // A normalised name is at most 253 bytes: copy it through the stack.
        let mut copy = [0u8; 256];
        let len = end - start;
        copy[..len].copy_from_slice(&self.text.as_bytes()[start..end]);
        self.text.push_str("*.");
        self.text
            .push_str(std::str::from_utf8(&copy[..len]).unwrap_or_default());
        self.text.push('\n');
        self.len += 1;
        Ok(())
    }

    /// Add every entry of `other`.
    pub fn append(&mut self, other: &DomainList) {
        self.text.push_str(&other.text);
        self.len += other.len;
    }

    /// The number of entries (an adblock rule counts as two).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The canonical text: one entry a line.
    pub fn as_text(&self) -> &str {
        &self.text
    }

    /// Bytes of heap this list holds.
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity()
    }

    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
    }

    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> {
        self.text.lines().map(|line| match line.strip_prefix("*.") {
            Some(name) => Entry {
                name,
                kind: EntryKind::Subdomains,
            },
            None => Entry {
                name: line,
                kind: EntryKind::Exact,
            },
        })
    }
}

/// A bad line of a list given in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {line}: {error}")]
pub struct ListError {
    pub line: usize,
    pub error: NameError,
}

impl Serialize for DomainList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for DomainList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DomainList::from_text(&text).map_err(serde::de::Error::custom)
    }
}

/// A line [`parse_list`] did not accept, for the import report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineIssue {
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

/// What an import read. Every line is counted once: blank or comment,
/// accepted, ignored (valid in its format but not something a domain list can
/// express, such as a cosmetic or exception rule) or invalid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// The format read: as given, or detected.
    pub format: ListFormat,
    pub lines: usize,
    pub comments: usize,
    pub accepted: usize,
    pub ignored: usize,
    pub invalid: usize,
    /// Entries added (an adblock rule adds two, a hosts line one per name).
    pub entries: usize,
    /// The first [`REPORTED_LINES`] invalid lines.
    pub first_invalid: Vec<LineIssue>,
    /// The first [`REPORTED_LINES`] ignored lines.
    pub first_ignored: Vec<LineIssue>,
}

/// The result of [`parse_list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedList {
    pub list: DomainList,
    pub report: ImportReport,
}

/// How one line was classified.
enum Outcome {
    Comment,
    Accepted,
    Ignored(&'static str),
    Invalid(String),
}

/// Parse a list file in `format`, or in the format [`detect_format`] finds.
/// Never fails and never panics: whatever the bytes, the answer is a list
/// and a report of what was refused.
pub fn parse_list(input: &[u8], format: Option<ListFormat>) -> ParsedList {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let format = format.unwrap_or_else(|| detect_format(input));
    let mut list = DomainList {
        // Most of a list's bytes are names; the canonical form is about as
        // long, twice for adblock (two entries a rule). Trimmed at the end.
        text: String::with_capacity(match format {
            ListFormat::Adblock => input.len().saturating_mul(2).min(1 << 30),
            _ => input.len().min(1 << 30),
        }),
        len: 0,
    };
    let mut report = ImportReport {
        format,
        lines: 0,
        comments: 0,
        accepted: 0,
        ignored: 0,
        invalid: 0,
        entries: 0,
        first_invalid: Vec::new(),
        first_ignored: Vec::new(),
    };
    for (i, raw) in lines(input).enumerate() {
        let number = i + 1;
        report.lines = number;
        let outcome = if raw.len() > MAX_LINE_LEN {
            Outcome::Invalid(format!("the line is longer than {MAX_LINE_LEN} bytes"))
        } else {
            match std::str::from_utf8(raw) {
                Err(_) => Outcome::Invalid("the line is not UTF-8".into()),
                Ok(line) => {
                    let line = line.trim();
                    match format {
                        ListFormat::Hosts => hosts_line(line, &mut list),
                        ListFormat::Adblock => adblock_line(line, &mut list),
                        ListFormat::Plain => plain_line(line, &mut list),
                    }
                }
            }
        };
        match outcome {
            Outcome::Comment => report.comments += 1,
            Outcome::Accepted => report.accepted += 1,
            Outcome::Ignored(reason) => {
                report.ignored += 1;
                if report.first_ignored.len() < REPORTED_LINES {
                    report.first_ignored.push(LineIssue {
                        line: number,
                        reason: reason.into(),
                    });
                }
            }
            Outcome::Invalid(reason) => {
                report.invalid += 1;
                if report.first_invalid.len() < REPORTED_LINES {
                    report.first_invalid.push(LineIssue { line: number, reason });
                }
            }
        }
    }
    report.entries = list.len;
    list.shrink_to_fit();
    ParsedList { list, report }
}

/// Lines without their `\n` or `\r\n`; no empty last line after a final newline.
fn lines(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = input.strip_suffix(b"\n").unwrap_or(input);
    let mut parts = (!input.is_empty()).then(|| body.split(|&b| b == b'\n'));
    std::iter::from_fn(move || {
        let line = parts.as_mut()?.next()?;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    })
}

/// Guess the format from the first lines that are not blank: adblock if
/// they have adblock syntax (`||`, `@@`, `##`, `!` comments, the
/// `[Adblock ...]` header), hosts if most start with an IP address followed
/// by a name, plain otherwise.
pub fn detect_format(input: &[u8]) -> ListFormat {
    let (mut adblock, mut hosts, mut plain) = (0usize, 0usize, 0usize);
    for raw in lines(input).filter(|l| !l.trim_ascii().is_empty()).take(500) {
        let line = String::from_utf8_lossy(raw);
        let line = line.trim();
        if line.starts_with("||")
            || line.starts_with("@@")
            || line.starts_with('!')
            || line.starts_with("[Adblock")
            || line.contains("##")
        {
            adblock += 1;
        } else if line.starts_with('#') {
            continue;
        } else {
            let mut tokens = line.split_whitespace();
            let first_is_ip = tokens.next().is_some_and(|t| host_address(t).is_some());
            if first_is_ip && tokens.next().is_some() {
                hosts += 1;
            } else {
                plain += 1;
            }
        }
    }
    if adblock > 0 && adblock >= hosts && adblock >= plain / 4 {
        ListFormat::Adblock
    } else if hosts > 0 && hosts >= plain {
        ListFormat::Hosts
    } else {
        ListFormat::Plain
    }
}

/// The address at the start of a hosts line (a zone index is allowed).
fn host_address(token: &str) -> Option<std::net::IpAddr> {
    let token = token.split('%').next().unwrap_or(token);
    token.parse().ok()
}

/// Names a hosts file maps to the machine itself: never list entries.
const LOCAL_NAMES: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
];

fn strip_comment(line: &str) -> &str {
    match line.find('#') {
        Some(i) => line[..i].trim_end(),
        None => line,
    }
}

fn hosts_line(line: &str, list: &mut DomainList) -> Outcome {
    let line = strip_comment(line);
    if line.is_empty() {
        return Outcome::Comment;
    }
    let mut tokens = line.split_whitespace();
    let Some(first) = tokens.next() else {
        return Outcome::Comment;
    };
    if host_address(first).is_none() {
        return Outcome::Invalid(format!(
            "{:?} is not an IP address (hosts format: ADDRESS NAME...)",
            clip(first)
        ));
    }
    let (mut accepted, mut invalid) = (false, None);
    let mut any = false;
    for name in tokens {
        any = true;
        if LOCAL_NAMES.iter().any(|l| name.eq_ignore_ascii_case(l)) {
            continue;
        }
        match list.push(name, EntryKind::Exact) {
            Ok(()) => accepted = true,
            Err(NameError::IpLiteral) => {}
            Err(e) => {
                invalid.get_or_insert_with(|| format!("{:?}: {e}", clip(name)));
            }
        }
    }
    if !any {
        return Outcome::Invalid("an address without a name".into());
    }
    match (invalid, accepted) {
        (Some(reason), _) => Outcome::Invalid(reason),
        (None, true) => Outcome::Accepted,
        (None, false) => Outcome::Ignored("only localhost names or addresses"),
    }
}

fn adblock_line(line: &str, list: &mut DomainList) -> Outcome {
    if line.is_empty() || line.starts_with('!') || line.starts_with('[') {
        return Outcome::Comment;
    }
    if line.contains('#') && ["##", "#@#", "#?#", "#$#", "#%#"].iter().any(|m| line.contains(m)) {
        return Outcome::Ignored("cosmetic rule");
    }
    if line.starts_with('#') {
        return Outcome::Comment;
    }
    if line.starts_with("@@") {
        return Outcome::Ignored("exception rule (@@) not supported");
    }
    let Some(rule) = line.strip_prefix("||") else {
        return Outcome::Ignored("not a domain rule (only ||name^ rules are imported)");
    };
    let (pattern, options) = match rule.split_once('$') {
        Some((p, o)) => (p, Some(o)),
        None => (rule, None),
    };
    if options.is_some_and(|o| !o.eq_ignore_ascii_case("important")) {
        return Outcome::Ignored("rule with $options");
    }
    let pattern = pattern
        .strip_suffix("^|")
        .or_else(|| pattern.strip_suffix('^'))
        .unwrap_or(pattern);
    let (name, subtree) = match pattern.strip_prefix("*.") {
        Some(rest) => (rest, false),
        None => (pattern, true),
    };
    if name.is_empty()
        || name
            .bytes()
            .any(|b| matches!(b, b'/' | b'*' | b'^' | b'|' | b'?' | b'=' | b'&'))
    {
        return Outcome::Ignored("not a whole-domain rule (path, wildcard or separator inside)");
    }
    let result = if subtree {
        list.push_subtree(name)
    } else {
        list.push(name, EntryKind::Subdomains)
    };
    match result {
        Ok(()) => Outcome::Accepted,
        Err(NameError::IpLiteral) => Outcome::Ignored("address rule, not a domain"),
        Err(e) => Outcome::Invalid(format!("{:?}: {e}", clip(name))),
    }
}

fn plain_line(line: &str, list: &mut DomainList) -> Outcome {
    let line = strip_comment(line);
    if line.is_empty() {
        return Outcome::Comment;
    }
    if line.contains(char::is_whitespace) {
        return Outcome::Invalid("one domain per line (is this a hosts file?)".into());
    }
    let (name, kind) = match line.strip_prefix("*.") {
        Some(rest) => (rest, EntryKind::Subdomains),
        None => (line, EntryKind::Exact),
    };
    match list.push(name, kind) {
        Ok(()) => Outcome::Accepted,
        Err(e) => Outcome::Invalid(format!("{:?}: {e}", clip(line))),
    }
}

/// At most 80 characters of user text in a report.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn text(p: &ParsedList) -> Vec<&str> {
        p.list.as_text().lines().collect()
    }

    #[test]
    fn hosts_file() {
        let input = b"# a hosts file\r\n127.0.0.1 localhost\n::1 localhost ip6-localhost\n0.0.0.0 Ads.Example tracker.example # inline\n\n0.0.0.0 0.0.0.0\nnot-an-ip x.example\n0.0.0.0 bad..name\n";
        let p = parse_list(input, None);
        assert_eq!(p.report.format, ListFormat::Hosts);
        assert_eq!(text(&p), ["ads.example", "tracker.example"]);
        assert_eq!((p.report.lines, p.report.comments, p.report.accepted), (8, 2, 1));
        assert_eq!((p.report.ignored, p.report.invalid, p.report.entries), (3, 2, 2));
        assert_eq!(
            p.report.first_invalid.iter().map(|i| i.line).collect::<Vec<_>>(),
            [7, 8]
        );
    }

    #[test]
    fn adblock_list() {
        let input = "[Adblock Plus 2.0]\n! Title: test\n||ads.example^\n||Tracker.Example^$important\n||x.example^$third-party\n@@||good.example^\nexample.com##.banner\n||*.wild.example^\n||a.example/path^\n/regex/\n||10.0.0.1^\n||bad..example^\n||bücher.example^\n";
        let p = parse_list(input.as_bytes(), None);
        assert_eq!(p.report.format, ListFormat::Adblock);
        assert_eq!(
            text(&p),
            [
                "ads.example",
                "*.ads.example",
                "tracker.example",
                "*.tracker.example",
                "*.wild.example",
                "xn--bcher-kva.example",
                "*.xn--bcher-kva.example"
            ]
        );
        assert_eq!(
            (p.report.comments, p.report.accepted, p.report.ignored, p.report.invalid),
            (2, 4, 6, 1)
        );
        assert_eq!(p.report.first_invalid[0].line, 12);
        assert_eq!(p.report.first_ignored[0].line, 5);
    }

    #[test]
    fn plain_list() {
        let input = "# plain\nads.example\n*.Wild.Example.\nbad name\n*.10.0.0.1\nbücher.example # inline\n*\n";
        let p = parse_list(input.as_bytes(), None);
        assert_eq!(p.report.format, ListFormat::Plain);
        assert_eq!(text(&p), ["ads.example", "*.wild.example", "xn--bcher-kva.example"]);
        assert_eq!((p.report.accepted, p.report.invalid), (3, 3));
        assert_eq!(
            p.report.first_invalid.iter().map(|i| i.line).collect::<Vec<_>>(),
            [4, 5, 7]
        );
    }

    #[test]
    fn explicit_format_and_round_trip() {
        let p = parse_list(b"0.0.0.0 a.example\n", Some(ListFormat::Plain));
        assert_eq!(p.report.invalid, 1);
        let p = parse_list(b"a.example\n*.b.example\n", Some(ListFormat::Plain));
        let json = serde_json::to_string(&p.list).unwrap();
        assert_eq!(json, r#""a.example\n*.b.example\n""#);
        let back: DomainList = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p.list);
        assert!(serde_json::from_str::<DomainList>(r#""a..b\n""#).is_err());
        let built = DomainList::from_entries(["A.example", "*.b.example"]).unwrap();
        assert_eq!(built, p.list);
        assert_eq!(DomainList::from_entries(["ok.example", "1.2.3.4"]).unwrap_err().line, 2);
    }

    #[test]
    fn empty_and_binary_input() {
        let p = parse_list(b"", None);
        assert_eq!((p.report.lines, p.list.len()), (0, 0));
        let p = parse_list(b"\xff\xfe\n\x00\n", Some(ListFormat::Plain));
        assert_eq!(p.report.invalid, 2);
    }
}
