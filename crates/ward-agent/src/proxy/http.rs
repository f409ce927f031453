//! HTTP/1.1 forward-proxy front end: `CONNECT` and absolute-form requests.
//!
//! [`read_request`] reads one request head from the client and returns:
//!
//! - [`ProxyRequest::Connect`] for `CONNECT host:port HTTP/1.1`: the caller
//!   reaches the target, answers with [`connect_established`] (or an error
//!   with [`respond`]), then carries bytes both ways;
//! - [`ProxyRequest::Forward`] for `GET http://host[:port]/path HTTP/1.1`: the
//!   caller reaches the target, writes the rewritten `head` to it, then
//!   carries bytes both ways (the request body, if any, is still unread in
//!   the client's stream). The head asks for `Connection: close`, so one
//!   client connection carries one request.
//!
//! Only the request head is consumed from the [`AsyncBufRead`]: it is taken
//! from [`fill_buf`](AsyncBufReadExt::fill_buf) and bytes are consumed only up
//! to the blank line ending it, so a body, or tunnel data a client sends
//! before the `200`, stays in the reader for the caller.
//!
//! Requests whose framing is ambiguous (several `Content-Length`s, or
//! `Transfer-Encoding` with `Content-Length`) are refused, so the proxy and the
//! origin cannot disagree on where a request ends (request smuggling).
//! `Upgrade` is kept (with `Connection: upgrade`) when the client asks for an
//! upgrade, since the caller relays raw bytes and an upgraded connection
//! (WebSocket) then just works.
//!
//! Applies no timeout: wrap [`read_request`] in [`tokio::time::timeout`].

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use super::target::{Target, TargetError};

/// Largest request head read, request line and headers included.
pub const MAX_HEAD_LEN: usize = 16 * 1024;
/// Most header fields in a request.
pub const MAX_HEADERS: usize = 100;

/// Headers that concern one hop only, never forwarded. `Upgrade` is kept for
/// an upgrade request.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
];

/// Headers a `Connection` header may name but that are never removed: they
/// frame the body, and dropping them would change where the request ends.
const FRAMING: &[&str] = &["content-length", "transfer-encoding"];

/// A request to the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyRequest {
    /// `CONNECT host:port`: open a tunnel to the target.
    Connect {
        /// Where to.
        target: Target,
    },
    /// An absolute-form request (`GET http://host/path`), to forward.
    Forward {
        /// The URI's authority; port 80 when it gives none.
        target: Target,
        /// The request head to send to the target, blank line included:
        /// origin-form request line, `Host` set to the URI's authority,
        /// hop-by-hop headers removed, `Connection: close` added.
        head: Vec<u8>,
    },
    /// An origin-form request (`GET /proxy.pac`): meant for the agent itself
    /// (its proxy auto-config file and its page), not for a destination.
    Local {
        method: String,
        /// The path and query as sent.
        path: String,
        /// The body's length (`Content-Length`; 0 when absent). A chunked
        /// body is not accepted here.
        content_length: u64,
        /// The `Host` header, lowercased (empty when absent).
        host: String,
    },
}

/// Why a request was refused. [`status`](HttpProxyError::status) is the HTTP
/// answer; the [`Display`](std::fmt::Display) text is a one-line message for
/// the user.
#[derive(Debug, thiserror::Error)]
pub enum HttpProxyError {
    /// The client closed the connection without sending anything.
    #[error("connection closed before a request was sent")]
    Closed,
    /// Reading from the client failed.
    #[error("reading the request failed: {0}")]
    Io(#[from] io::Error),
    /// The client closed the connection in the middle of the request head.
    #[error("connection closed in the middle of the request head")]
    Truncated,
    /// The request line alone is longer than [`MAX_HEAD_LEN`].
    #[error("request line longer than {MAX_HEAD_LEN} bytes")]
    UriTooLong,
    /// The request head is longer than [`MAX_HEAD_LEN`].
    #[error("request head larger than {MAX_HEAD_LEN} bytes")]
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] header fields.
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    /// An HTTP version other than 1.0 and 1.1, or a malformed version.
    #[error("unsupported HTTP version (HTTP/1.0 and HTTP/1.1 only)")]
    Version,
    /// A syntax error in the request head.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// `GET https://...`: TLS is the client's business, through CONNECT.
    #[error("use CONNECT for https")]
    HttpsAbsoluteForm,
    /// `OPTIONS *`: a request meant for an origin server.
    #[error("this is a proxy: send an absolute URI or CONNECT")]
    OriginForm,
    /// An absolute URI with a scheme other than `http`.
    #[error("unsupported URI scheme {0:?} (http:// or CONNECT only)")]
    UnsupportedScheme(String),
    /// A request target that is no URI.
    #[error("invalid request URI")]
    InvalidUri,
    /// A CONNECT whose target is not `host:port`.
    #[error("CONNECT needs a host:port target")]
    BadConnectTarget,
    /// User info (`user:pass@`) in the URI.
    #[error("credentials in the URI are not supported")]
    UserInfo,
    /// The destination is invalid (bad name, bad or missing port).
    #[error("invalid destination: {0}")]
    InvalidTarget(#[from] TargetError),
    /// More than one Content-Length value.
    #[error("several Content-Length headers (ambiguous request framing)")]
    DuplicateContentLength,
    /// A Content-Length that is not a decimal number.
    #[error("invalid Content-Length")]
    InvalidContentLength,
    /// Both Transfer-Encoding and Content-Length.
    #[error("both Transfer-Encoding and Content-Length (ambiguous request framing)")]
    TransferEncodingWithContentLength,
    /// Transfer-Encoding in an HTTP/1.0 request, where it has no meaning.
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingHttp10,
    /// A Transfer-Encoding other than `chunked`.
    #[error("unsupported Transfer-Encoding (chunked only)")]
    UnsupportedTransferEncoding,
}

impl HttpProxyError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HttpProxyError::UriTooLong => 414,
            HttpProxyError::HeadTooLarge | HttpProxyError::TooManyHeaders => 431,
            HttpProxyError::UnsupportedScheme(_) | HttpProxyError::UnsupportedTransferEncoding => 501,
            _ => 400,
        }
    }

    /// The reason phrase of [`status`](HttpProxyError::status).
    pub fn reason(&self) -> &'static str {
        reason_phrase(self.status())
    }

    /// Whether an answer can still be sent: not after the client closed the
    /// connection before sending anything or the stream failed.
    pub fn should_respond(&self) -> bool {
        !matches!(self, HttpProxyError::Closed | HttpProxyError::Io(_))
    }
}

/// The standard reason phrase of the statuses this proxy answers with;
/// `"Error"` for others.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// Reads one request head from `stream` and turns it into a [`ProxyRequest`].
///
/// Consumes the head and nothing after it. Refuses heads over
/// [`MAX_HEAD_LEN`] bytes (414 when the request line alone is that long,
/// else 431) and over [`MAX_HEADERS`] headers (431).
pub async fn read_request<S>(stream: &mut S) -> Result<ProxyRequest, HttpProxyError>
where
    S: AsyncBufRead + Unpin,
{
    let head = read_head(stream).await?;
    parse_head(&head)
}

/// Finds the end of a request head one byte at a time, so the work is linear
/// however the bytes arrive. Empty lines before the request line are skipped,
/// as httparse does.
#[derive(Default)]
struct HeadScanner {
    len: usize,
    line_len: usize,
    line_ends_cr: bool,
    seen_line: bool,
}

impl HeadScanner {
    /// Feeds the next bytes: `Some(n)` when the head ends after `chunk[..n]`.
    fn feed(&mut self, chunk: &[u8]) -> Result<Option<usize>, HttpProxyError> {
        for (i, &b) in chunk.iter().enumerate() {
            if self.len >= MAX_HEAD_LEN {
                // Still inside the request line: its URI is what is too long.
                let in_request_line = !self.seen_line && self.line_len > 0;
                return Err(if in_request_line {
                    HttpProxyError::UriTooLong
                } else {
                    HttpProxyError::HeadTooLarge
                });
            }
            self.len += 1;
            if b == b'\n' {
                let empty = self.line_len == 0 || (self.line_len == 1 && self.line_ends_cr);
                if !empty {
                    self.seen_line = true;
                } else if self.seen_line {
                    return Ok(Some(i + 1));
                }
                self.line_len = 0;
                self.line_ends_cr = false;
            } else {
                self.line_len += 1;
                self.line_ends_cr = b == b'\r';
            }
        }
        Ok(None)
    }
}

async fn read_head<S>(stream: &mut S) -> Result<Vec<u8>, HttpProxyError>
where
    S: AsyncBufRead + Unpin,
{
    let mut head = Vec::new();
    let mut scanner = HeadScanner::default();
    loop {
        let chunk = stream.fill_buf().await?;
        if chunk.is_empty() {
            return Err(if head.is_empty() {
                HttpProxyError::Closed
            } else {
                HttpProxyError::Truncated
            });
        }
        let (taken, done) = match scanner.feed(chunk)? {
            Some(n) => (n, true),
            None => (chunk.len(), false),
        };
        head.extend_from_slice(&chunk[..taken]);
        stream.consume(taken);
        if done {
            return Ok(head);
        }
    }
}

fn parse_head(head: &[u8]) -> Result<ProxyRequest, HttpProxyError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err(HttpProxyError::Malformed("incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpProxyError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(HttpProxyError::Version),
        Err(httparse::Error::HeaderName) => return Err(HttpProxyError::Malformed("invalid header name")),
        Err(httparse::Error::HeaderValue) => return Err(HttpProxyError::Malformed("invalid header value")),
        Err(httparse::Error::NewLine) => return Err(HttpProxyError::Malformed("invalid line ending")),
        Err(_) => return Err(HttpProxyError::Malformed("invalid request line")),
    }
    let (Some(method), Some(uri), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HttpProxyError::Malformed("incomplete request line"));
    };
    check_framing(req.headers, version)?;

    if method == "CONNECT" {
        if uri.starts_with('/') || uri.contains("://") {
            return Err(HttpProxyError::BadConnectTarget);
        }
        return Ok(ProxyRequest::Connect {
            target: Target::parse_authority(uri, None)?,
        });
    }

    if uri.starts_with('/') {
        let mut content_length = 0;
        let mut host = String::new();
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("host") {
                host = String::from_utf8_lossy(trim_ows(h.value)).to_ascii_lowercase();
            }
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(HttpProxyError::UnsupportedTransferEncoding);
            }
            if h.name.eq_ignore_ascii_case("content-length") {
                // check_framing made sure it is one decimal number.
                content_length = std::str::from_utf8(trim_ows(h.value))
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .ok_or(HttpProxyError::InvalidContentLength)?;
            }
        }
        return Ok(ProxyRequest::Local {
            method: method.to_owned(),
            path: uri.to_owned(),
            content_length,
            host,
        });
    }
    let (target, path) = split_absolute_uri(uri)?;
    Ok(ProxyRequest::Forward {
        head: rewrite_head(method, path, version, &target, req.headers),
        target,
    })
}

/// Refuses requests whose body framing is ambiguous.
fn check_framing(headers: &[httparse::Header<'_>], version: u8) -> Result<(), HttpProxyError> {
    let mut content_length = false;
    let mut codings: Vec<String> = Vec::new();
    let mut transfer_encoding = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            if content_length {
                return Err(HttpProxyError::DuplicateContentLength);
            }
            content_length = true;
            let value = trim_ows(h.value);
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(HttpProxyError::InvalidContentLength);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            codings.extend(list_tokens(h.value));
        }
    }
    if !transfer_encoding {
        return Ok(());
    }
    if content_length {
        return Err(HttpProxyError::TransferEncodingWithContentLength);
    }
    if version == 0 {
        return Err(HttpProxyError::TransferEncodingHttp10);
    }
    if codings != ["chunked"] {
        return Err(HttpProxyError::UnsupportedTransferEncoding);
    }
    Ok(())
}

/// Splits an absolute-form `http://authority/path?query` into the target and
/// the origin-form `/path?query` (fragment dropped).
fn split_absolute_uri(uri: &str) -> Result<(Target, String), HttpProxyError> {
    if uri == "*" {
        return Err(HttpProxyError::OriginForm);
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(HttpProxyError::InvalidUri);
    };
    let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid_scheme {
        return Err(HttpProxyError::InvalidUri);
    }
    if scheme.eq_ignore_ascii_case("https") {
        return Err(HttpProxyError::HttpsAbsoluteForm);
    }
    if !scheme.eq_ignore_ascii_case("http") {
        let shown: String = scheme.chars().take(32).collect();
        return Err(HttpProxyError::UnsupportedScheme(shown.to_ascii_lowercase()));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err(HttpProxyError::UserInfo);
    }
    let target = Target::parse_authority(authority, Some(80))?;
    let path = path.split('#').next().unwrap_or_default();
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Ok((target, path))
}

/// The head to send to the origin: origin-form request line, `Host` from the
/// target, hop-by-hop headers dropped, `Connection: close` (or `upgrade`).
fn rewrite_head(method: &str, path: String, version: u8, target: &Target, headers: &[httparse::Header<'_>]) -> Vec<u8> {
    let connection: Vec<String> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| list_tokens(h.value))
        .collect();
    // An upgrade needs HTTP/1.1, an Upgrade header, and `Connection: upgrade`.
    let upgrade = version == 1
        && connection.iter().any(|t| t == "upgrade")
        && headers.iter().any(|h| h.name.eq_ignore_ascii_case("upgrade"));
    let dropped = |name: &str| {
        let name = name.to_ascii_lowercase();
        if name == "host" {
            return true;
        }
        if upgrade && name == "upgrade" {
            return false;
        }
        HOP_BY_HOP.contains(&name.as_str()) || (connection.contains(&name) && !FRAMING.contains(&name.as_str()))
    };

    // The default port is left out of Host, as a client would write it.
    let host = if target.port() == 80 {
        target.host()
    } else {
        target.authority()
    };
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    // The client's version is kept: the response is relayed untouched, so
    // an HTTP/1.0 client must not be answered in chunked encoding.
    out.extend_from_slice(if version == 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    out.extend_from_slice(b"Host: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in headers.iter().filter(|h| !dropped(h.name)) {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(if upgrade {
        b"Connection: upgrade\r\n"
    } else {
        b"Connection: close\r\n"
    });
    out.extend_from_slice(b"\r\n");
    out
}

/// The lowercased, non-empty elements of a comma-separated header value.
fn list_tokens(value: &[u8]) -> impl Iterator<Item = String> + '_ {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
        .map(|t| {
            // Non-ASCII bytes never match a token compared against.
            String::from_utf8_lossy(t).to_ascii_lowercase()
        })
}

fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// Sends an error answer: `text/plain` `body`, with `Content-Length` and
/// `Connection: close`, and flushes. A status outside 100-599 is sent as 500;
/// control characters in `reason` become spaces.
pub async fn respond<S>(stream: &mut S, status: u16, reason: &str, body: &str) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let status = if (100..=599).contains(&status) { status } else { 500 };
    let reason: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    stream.write_all(&out).await?;
    stream.flush().await
}

/// Answers `err` with [`respond`]: its status, and its message as the body.
pub async fn respond_error<S>(stream: &mut S, err: &HttpProxyError) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    respond(stream, err.status(), err.reason(), &format!("{err}\n")).await
}

/// Answers a CONNECT: `HTTP/1.1 200 Connection Established`, and flushes.
pub async fn connect_established<S>(stream: &mut S) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    stream.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, BufReader};

    use super::*;

    fn domain(host: &str, port: u16) -> Target {
        Target::Domain {
            host: host.into(),
            port,
        }
    }

    /// Reads a request from `input` through a BufReader of `capacity` bytes,
    /// and returns it with the bytes left unread.
    async fn read_with(input: &[u8], capacity: usize) -> (Result<ProxyRequest, HttpProxyError>, Vec<u8>) {
        let mut reader = BufReader::with_capacity(capacity, input);
        let result = read_request(&mut reader).await;
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
        (result, rest)
    }

    async fn read(input: &[u8]) -> Result<ProxyRequest, HttpProxyError> {
        read_with(input, 8192).await.0
    }

    async fn forward(input: &str) -> (Target, String) {
        match read(input.as_bytes()).await {
            Ok(ProxyRequest::Forward { target, head }) => (target, String::from_utf8(head).unwrap()),
            other => panic!("{input:?}: {other:?}"),
        }
    }

    async fn status(input: &[u8]) -> u16 {
        match read(input).await {
            Err(e) => e.status(),
            Ok(r) => panic!("{:?} accepted: {r:?}", String::from_utf8_lossy(input)),
        }
    }

    #[tokio::test]
    async fn connect_parses_targets() {
        let cases = [
            (
                "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
                domain("example.com", 443),
            ),
            ("CONNECT DB.Internal:5432 HTTP/1.0\r\n\r\n", domain("db.internal", 5432)),
            (
                "CONNECT 192.0.2.7:22 HTTP/1.1\r\n\r\n",
                Target::Ip("192.0.2.7:22".parse().unwrap()),
            ),
            (
                "CONNECT [2001:db8::2]:443 HTTP/1.1\r\n\r\n",
                Target::Ip("[2001:db8::2]:443".parse().unwrap()),
            ),
        ];
        for (input, target) in cases {
            assert_eq!(
                read(input.as_bytes()).await.unwrap(),
                ProxyRequest::Connect { target },
                "{input:?}"
            );
        }
    }

    #[tokio::test]
    async fn connect_refusals() {
        for (input, want) in [
            (
                "CONNECT example.com HTTP/1.1\r\n\r\n",
                "invalid destination: missing port (expected host:port)",
            ),
            (
                "CONNECT example.com:0 HTTP/1.1\r\n\r\n",
                "invalid destination: port 0 is not a valid destination",
            ),
            ("CONNECT /x HTTP/1.1\r\n\r\n", "CONNECT needs a host:port target"),
            (
                "CONNECT http://example.com:80/ HTTP/1.1\r\n\r\n",
                "CONNECT needs a host:port target",
            ),
            (
                "CONNECT u@example.com:80 HTTP/1.1\r\n\r\n",
                "invalid destination: invalid character '@' in host name",
            ),
        ] {
            let err = read(input.as_bytes()).await.unwrap_err();
            assert_eq!((err.status(), err.to_string()), (400, want.to_string()), "{input:?}");
        }
    }

    #[tokio::test]
    async fn head_is_consumed_exactly() {
        let input = b"CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01TLS...";
        for capacity in [1, 2, 3, 7, 16, 8192] {
            let (result, rest) = read_with(input, capacity).await;
            assert_eq!(
                result.unwrap(),
                ProxyRequest::Connect {
                    target: domain("example.com", 443)
                }
            );
            assert_eq!(rest, b"\x16\x03\x01TLS...", "capacity {capacity}");
        }
        let input = b"POST http://h/p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        for capacity in [1, 5, 8192] {
            let (result, rest) = read_with(input, capacity).await;
            assert!(matches!(result.unwrap(), ProxyRequest::Forward { .. }));
            assert_eq!(rest, b"hello");
        }
    }

    #[tokio::test]
    async fn reads_over_one_byte_duplex() {
        let (mut client, server) = tokio::io::duplex(1);
        let writer = tokio::spawn(async move {
            let input = b"GET http://example.com:8080/a?b=c HTTP/1.1\r\nHost: wrong\r\nAccept: */*\r\n\r\nrest";
            for b in input {
                client.write_all(&[*b]).await.unwrap();
            }
            client
        });
        let mut reader = BufReader::new(server);
        let request = read_request(&mut reader).await.unwrap();
        let head = "GET /a?b=c HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n";
        assert_eq!(
            request,
            ProxyRequest::Forward {
                target: domain("example.com", 8080),
                head: head.into()
            }
        );
        let mut rest = [0u8; 4];
        reader.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"rest");
        drop(writer.await.unwrap());
        assert_eq!(reader.read(&mut rest).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn origin_form_is_for_the_agent_itself() {
        let mut input: &[u8] =
            b"POST /proceed?x=1 HTTP/1.1\r\nHost: 127.0.0.1:3128\r\nContent-Length: 12\r\n\r\nhost=a.b&t=1";
        let mut reader = tokio::io::BufReader::new(&mut input);
        let request = read_request(&mut reader).await.unwrap();
        assert_eq!(
            request,
            ProxyRequest::Local {
                method: "POST".into(),
                path: "/proceed?x=1".into(),
                content_length: 12,
                host: "127.0.0.1:3128".into(),
            }
        );
        let mut input: &[u8] = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut reader = tokio::io::BufReader::new(&mut input);
        assert_eq!(read_request(&mut reader).await.unwrap_err().status(), 501);
    }

    #[tokio::test]
    async fn forward_rewrites_to_origin_form() {
        let (target, head) = forward(
            "GET http://Example.COM/index.html?q=1#frag HTTP/1.1\r\n\
             Host: evil.example\r\n\
             User-Agent: test\r\n\
             Proxy-Connection: Keep-Alive\r\n\
             Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
             Connection: keep-alive, X-Hop, Content-Length\r\n\
             Keep-Alive: timeout=5\r\n\
             X-Hop: secret\r\n\
             TE: trailers\r\n\
             Trailer: X-Sum\r\n\
             Upgrade: h2c\r\n\
             HOST: second\r\n\
             Content-Length: 3\r\n\
             Accept: text/html\r\n\r\n",
        )
        .await;
        assert_eq!(target, domain("example.com", 80));
        assert_eq!(
            head,
            "GET /index.html?q=1 HTTP/1.1\r\n\
             Host: example.com\r\n\
             User-Agent: test\r\n\
             Content-Length: 3\r\n\
             Accept: text/html\r\n\
             Connection: close\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn forward_paths_ports_and_versions() {
        let cases = [
            (
                "GET http://h HTTP/1.1\r\n\r\n",
                domain("h", 80),
                "GET / HTTP/1.1\r\nHost: h\r\n",
            ),
            (
                "GET http://h?x=1 HTTP/1.1\r\n\r\n",
                domain("h", 80),
                "GET /?x=1 HTTP/1.1\r\nHost: h\r\n",
            ),
            (
                "GET http://h#f HTTP/1.1\r\n\r\n",
                domain("h", 80),
                "GET / HTTP/1.1\r\nHost: h\r\n",
            ),
            (
                "GET http://h:80/ HTTP/1.1\r\n\r\n",
                domain("h", 80),
                "GET / HTTP/1.1\r\nHost: h\r\n",
            ),
            (
                "GET HTTP://h:8080/x HTTP/1.0\r\n\r\n",
                domain("h", 8080),
                "GET /x HTTP/1.0\r\nHost: h:8080\r\n",
            ),
            (
                "DELETE http://[2001:db8::1]:81/r HTTP/1.1\r\n\r\n",
                Target::Ip("[2001:db8::1]:81".parse().unwrap()),
                "DELETE /r HTTP/1.1\r\nHost: [2001:db8::1]:81\r\n",
            ),
            (
                "PROPFIND http://192.0.2.1/d/ HTTP/1.1\r\n\r\n",
                Target::Ip("192.0.2.1:80".parse().unwrap()),
                "PROPFIND /d/ HTTP/1.1\r\nHost: 192.0.2.1\r\n",
            ),
            // Leading empty lines are tolerated (RFC 9112 section 2.2).
            (
                "\r\n\r\nGET http://h/ HTTP/1.1\r\n\r\n",
                domain("h", 80),
                "GET / HTTP/1.1\r\nHost: h\r\n",
            ),
            // Bare LF line endings are tolerated.
            (
                "GET http://h/ HTTP/1.1\nA: b\n\n",
                domain("h", 80),
                "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n",
            ),
        ];
        for (input, want_target, want_start) in cases {
            let (target, head) = forward(input).await;
            assert_eq!(target, want_target, "{input:?}");
            assert_eq!(head, format!("{want_start}Connection: close\r\n\r\n"), "{input:?}");
        }
    }

    #[tokio::test]
    async fn forward_keeps_upgrade_when_asked() {
        let (_, head) = forward(
            "GET http://h/ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n",
        )
        .await;
        assert_eq!(
            head,
            "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\nConnection: upgrade\r\n\r\n"
        );
        // Not on HTTP/1.0, nor without `Connection: upgrade`.
        let (_, head) = forward("GET http://h/ HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n").await;
        assert_eq!(head, "GET / HTTP/1.0\r\nHost: h\r\nConnection: close\r\n\r\n");
        let (_, head) = forward("GET http://h/ HTTP/1.1\r\nUpgrade: websocket\r\n\r\n").await;
        assert_eq!(head, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    }

    #[tokio::test]
    async fn forward_accepts_sound_framing() {
        let (_, head) = forward("POST http://h/ HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").await;
        assert!(head.contains("Transfer-Encoding: Chunked\r\n"));
        let (_, head) = forward("POST http://h/ HTTP/1.1\r\nContent-Length:  10 \r\n\r\n").await;
        assert!(head.contains("Content-Length: 10"));
    }

    #[tokio::test]
    async fn refusals_and_statuses() {
        let cases: &[(&[u8], u16, &str)] = &[
            (b"GET https://h/ HTTP/1.1\r\n\r\n", 400, "use CONNECT for https"),
            (
                b"OPTIONS * HTTP/1.1\r\n\r\n",
                400,
                "this is a proxy: send an absolute URI or CONNECT",
            ),
            (b"GET h:80 HTTP/1.1\r\n\r\n", 400, "invalid request URI"),
            (b"GET 1http://h/ HTTP/1.1\r\n\r\n", 400, "invalid request URI"),
            (
                b"GET ftp://h/ HTTP/1.1\r\n\r\n",
                501,
                "unsupported URI scheme \"ftp\" (http:// or CONNECT only)",
            ),
            (
                b"GET http://u:p@h/ HTTP/1.1\r\n\r\n",
                400,
                "credentials in the URI are not supported",
            ),
            (
                b"GET http:///x HTTP/1.1\r\n\r\n",
                400,
                "invalid destination: empty host name",
            ),
            (
                b"GET http://h:99999/ HTTP/1.1\r\n\r\n",
                400,
                "invalid destination: invalid port",
            ),
            (
                b"GET http://h/ HTTP/2.0\r\n\r\n",
                400,
                "unsupported HTTP version (HTTP/1.0 and HTTP/1.1 only)",
            ),
            (
                b"GET http://h/ HTTP/1.1x\r\n\r\n",
                400,
                "malformed request: invalid line ending",
            ),
            (
                b"GET http://h/ HTTP/1.2\r\n\r\n",
                400,
                "unsupported HTTP version (HTTP/1.0 and HTTP/1.1 only)",
            ),
            (
                b"G(T http://h/ HTTP/1.1\r\n\r\n",
                400,
                "malformed request: invalid request line",
            ),
            (
                b"GET  http://h/ HTTP/1.1\r\n\r\n",
                400,
                "malformed request: invalid request line",
            ),
            (
                b"GET http://h/ HTTP/1.1\r\nBad Name: x\r\n\r\n",
                400,
                "malformed request: invalid header name",
            ),
            (
                b"GET http://h/ HTTP/1.1\r\nA: x\r\n folded\r\n\r\n",
                400,
                "malformed request: invalid header name",
            ),
            (
                b"GET http://h/ HTTP/1.1\r\nA: x\ry\r\n\r\n",
                400,
                "malformed request: invalid header value",
            ),
            (
                b"POST http://h/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
                "several Content-Length headers (ambiguous request framing)",
            ),
            (
                b"POST http://h/ HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\n",
                400,
                "several Content-Length headers (ambiguous request framing)",
            ),
            (
                b"POST http://h/ HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
                400,
                "invalid Content-Length",
            ),
            (
                b"POST http://h/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                400,
                "invalid Content-Length",
            ),
            (
                b"POST http://h/ HTTP/1.1\r\nContent-Length: \r\n\r\n",
                400,
                "invalid Content-Length",
            ),
            (
                b"POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                400,
                "both Transfer-Encoding and Content-Length (ambiguous request framing)",
            ),
            (
                b"POST http://h/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
                "Transfer-Encoding in an HTTP/1.0 request",
            ),
            (
                b"POST http://h/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501,
                "unsupported Transfer-Encoding (chunked only)",
            ),
            (
                b"POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                501,
                "unsupported Transfer-Encoding (chunked only)",
            ),
            (
                b"GET http://h/",
                400,
                "connection closed in the middle of the request head",
            ),
            (
                b"GET http://h/ HTTP/1.1\r\n",
                400,
                "connection closed in the middle of the request head",
            ),
        ];
        for (input, want_status, want_message) in cases {
            let err = read(input).await.unwrap_err();
            let got = (err.status(), err.to_string());
            assert_eq!(
                got,
                (*want_status, want_message.to_string()),
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert!(err.should_respond());
        }
    }

    #[tokio::test]
    async fn closed_before_anything() {
        let err = read(b"").await.unwrap_err();
        assert!(matches!(err, HttpProxyError::Closed));
        assert!(!err.should_respond());
    }

    #[tokio::test]
    async fn size_limits() {
        // Exactly at the limit: accepted.
        let start = "GET http://h/ HTTP/1.1\r\nX: ";
        let pad = MAX_HEAD_LEN - start.len() - 4;
        let at_limit = format!("{start}{}\r\n\r\n", "a".repeat(pad));
        assert_eq!(at_limit.len(), MAX_HEAD_LEN);
        assert!(read(at_limit.as_bytes()).await.is_ok());
        // One byte over: 431.
        let over = format!("{start}{}\r\n\r\n", "a".repeat(pad + 1));
        assert_eq!(status(over.as_bytes()).await, 431);
        // A request line alone over the limit: 414.
        let long_uri = format!("GET http://h/{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD_LEN));
        assert_eq!(status(long_uri.as_bytes()).await, 414);
        // Nothing but empty lines: 431.
        assert_eq!(status("\r\n".repeat(MAX_HEAD_LEN).as_bytes()).await, 431);
        // An endless header line: 431, without waiting for its end.
        let endless = format!("GET http://h/ HTTP/1.1\r\nX: {}", "a".repeat(2 * MAX_HEAD_LEN));
        assert_eq!(status(endless.as_bytes()).await, 431);
        // 100 headers pass, 101 do not.
        let headers = |n: usize| {
            let mut s = String::from("GET http://h/ HTTP/1.1\r\n");
            for i in 0..n {
                s.push_str(&format!("X-{i}: v\r\n"));
            }
            s + "\r\n"
        };
        assert!(read(headers(MAX_HEADERS).as_bytes()).await.is_ok());
        let err = read(headers(MAX_HEADERS + 1).as_bytes()).await.unwrap_err();
        assert!(matches!(err, HttpProxyError::TooManyHeaders));
        assert_eq!(err.status(), 431);
    }

    #[tokio::test]
    async fn responses() {
        let mut out = Vec::new();
        respond(&mut out, 502, "Bad Gateway", "no route to db.internal\n")
            .await
            .unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 24\r\n\
              Connection: close\r\n\r\nno route to db.internal\n"
        );
        let mut out = Vec::new();
        respond(&mut out, 42, "Evil\r\nX-Injected: 1", "").await.unwrap();
        assert!(
            out.starts_with(b"HTTP/1.1 500 Evil  X-Injected: 1\r\n"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        let mut out = Vec::new();
        respond_error(&mut out, &HttpProxyError::HttpsAbsoluteForm)
            .await
            .unwrap();
        assert!(out.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(out.ends_with(b"\r\n\r\nuse CONNECT for https\n"));
        let mut out = Vec::new();
        connect_established(&mut out).await.unwrap();
        assert_eq!(out, b"HTTP/1.1 200 Connection Established\r\n\r\n");
    }

    #[test]
    fn statuses_and_reasons() {
        assert_eq!(HttpProxyError::UriTooLong.status(), 414);
        assert_eq!(HttpProxyError::UriTooLong.reason(), "URI Too Long");
        assert_eq!(HttpProxyError::HeadTooLarge.reason(), "Request Header Fields Too Large");
        assert_eq!(HttpProxyError::UnsupportedTransferEncoding.reason(), "Not Implemented");
        assert_eq!(reason_phrase(405), "Method Not Allowed");
        assert_eq!(reason_phrase(299), "Error");
    }
}
