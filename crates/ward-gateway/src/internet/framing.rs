//! Request smuggling guard for the HTTP/1.1 front ends: follows the
//! requests a client sends (heads, then bodies by Content-Length or chunked
//! framing) as the server reads them, and stops the connection at a head
//! with both `Transfer-Encoding` and `Content-Length`. The server never sees
//! that head (it reads an end of stream there, so nothing is forwarded), and
//! the client gets `400` as the connection closes.
//!
//! Everything else (sizes, counts, timeouts, different Content-Length
//! values) the HTTP server enforces itself; where the head is beyond what
//! it accepts, the guard stops following and lets the server refuse it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::http::{MAX_HEADERS, MAX_HEAD_BYTES};

const REFUSAL: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 47\r\nconnection: close\r\n\r\nboth Transfer-Encoding and Content-Length sent\n";

/// Where the client is in its stream of requests.
#[derive(Debug)]
enum State {
    /// Reading a head (bytes so far).
    Head(Vec<u8>),
    /// This many body bytes left.
    Fixed(u64),
    /// A chunk-size line (bytes so far).
    ChunkSize(Vec<u8>),
    ChunkData(u64),
    /// The CRLF after a chunk's data: this many bytes left.
    ChunkEnd(u8),
    /// Trailer lines after the last chunk (bytes of the current line).
    Trailers(Vec<u8>),
    /// No longer followed (an upgrade, CONNECT, or something the server refuses).
    Off,
}

/// What [`Framing::feed`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fed {
    Fine,
    /// A smuggling head starts at this offset of the fed bytes (0 when it
    /// started in an earlier read).
    Smuggle(usize),
}

#[derive(Debug)]
pub(crate) struct Framing {
    state: State,
}

impl Default for Framing {
    fn default() -> Framing {
        Framing {
            state: State::Head(Vec::new()),
        }
    }
}

impl Framing {
    /// Follows `data`; never panics, whatever the input.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> Fed {
        let total = data.len();
        while !data.is_empty() {
            let offset = total - data.len();
            match &mut self.state {
                State::Off => return Fed::Fine,
                State::Head(head) => {
                    let started_here = head.is_empty();
                    let before = head.len();
                    head.extend_from_slice(data);
                    let search_from = before.saturating_sub(3);
                    let Some(end) = find(&head[search_from..], b"\r\n\r\n").map(|i| search_from + i + 4) else {
                        if head.len() > MAX_HEAD_BYTES + 1024 {
                            self.state = State::Off;
                        }
                        return Fed::Fine;
                    };
                    let used = end - before;
                    let next = match inspect_head(&head[..end]) {
                        Head::Smuggle => return Fed::Smuggle(if started_here { offset } else { 0 }),
                        Head::Next(state) => state,
                    };
                    self.state = next;
                    data = &data[used..];
                }
                State::Fixed(left) => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::ChunkSize(line) => {
                    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                        line.extend_from_slice(data);
                        if line.len() > 1024 {
                            self.state = State::Off;
                        }
                        return Fed::Fine;
                    };
                    line.extend_from_slice(&data[..nl]);
                    data = &data[nl + 1..];
                    let text = String::from_utf8_lossy(line);
                    let size = text.split(';').next().unwrap_or("").trim();
                    self.state = match u64::from_str_radix(size, 16) {
                        Ok(0) => State::Trailers(Vec::new()),
                        Ok(n) => State::ChunkData(n),
                        Err(_) => State::Off,
                    };
                }
                State::ChunkData(left) => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        self.state = State::ChunkEnd(2);
                    }
                }
                State::ChunkEnd(left) => {
                    let n = usize::from(*left).min(data.len());
                    *left -= n as u8;
                    data = &data[n..];
                    if *left == 0 {
                        self.state = State::ChunkSize(Vec::new());
                    }
                }
                State::Trailers(line) => {
                    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                        line.extend_from_slice(data);
                        if line.len() > MAX_HEAD_BYTES {
                            self.state = State::Off;
                        }
                        return Fed::Fine;
                    };
                    line.extend_from_slice(&data[..nl]);
                    data = &data[nl + 1..];
                    if line.iter().all(|&b| b == b'\r') {
                        self.state = State::Head(Vec::new());
                    } else {
                        line.clear();
                    }
                }
            }
        }
        Fed::Fine
    }
}

enum Head {
    Smuggle,
    Next(State),
}

fn inspect_head(head: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
        // The server refuses it (or it is more than we follow).
        return Head::Next(State::Off);
    }
    if request.method == Some("CONNECT") {
        return Head::Next(State::Off);
    }
    let mut chunked = false;
    let mut te = false;
    let mut length: Option<u64> = None;
    let mut upgrade = false;
    for h in request.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te = true;
            chunked = String::from_utf8_lossy(h.value)
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok()) {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => return Head::Next(State::Off),
            }
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            // Only a WebSocket is ever upgraded (upgrade.rs); any other
            // Upgrade is stripped and the request forwarded as it is, so the
            // requests after it are followed as before.
            upgrade |= String::from_utf8_lossy(h.value)
                .split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"));
        }
    }
    if te && length.is_some() {
        return Head::Smuggle;
    }
    if upgrade {
        return Head::Next(State::Off);
    }
    Head::Next(match (te, chunked, length) {
        (true, true, _) => State::ChunkSize(Vec::new()),
        (true, false, _) => State::Off,
        (false, _, Some(n)) if n > 0 => State::Fixed(n),
        _ => State::Head(Vec::new()),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A client connection with the guard on its read side.
pub(crate) struct Guarded<T> {
    inner: T,
    framing: Framing,
    /// Set once a smuggling head was seen: reads end, and the refusal is
    /// written (from this offset) before the connection shuts down.
    refusal: Option<usize>,
}

impl<T> Guarded<T> {
    pub(crate) fn new(inner: T) -> Guarded<T> {
        Guarded {
            inner,
            framing: Framing::default(),
            refusal: None,
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.refusal.is_some() {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            if let Fed::Smuggle(at) = this.framing.feed(&buf.filled()[before..]) {
                buf.set_filled(before + at);
                this.refusal = Some(0);
            }
        }
        polled
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while let Some(sent) = this.refusal.filter(|&s| s < REFUSAL.len()) {
            match Pin::new(&mut this.inner).poll_write(cx, &REFUSAL[sent..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    this.refusal = Some(REFUSAL.len());
                }
                Poll::Ready(Ok(n)) => this.refusal = Some(sent + n),
                Poll::Pending => return Poll::Pending,
            }
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn follows_requests_and_stops_at_smuggling() {
        let mut f = Framing::default();
        let fine = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
GET /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(f.feed(fine), Fed::Fine);
        // A body that looks like a smuggling head is only a body.
        let mut f = Framing::default();
        let body = b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        let req = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len());
        assert_eq!(f.feed(req.as_bytes()), Fed::Fine);
        assert_eq!(f.feed(body), Fed::Fine);
        // Both headers: caught where the head starts, byte by byte too.
        let bad = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(Framing::default().feed(bad), Fed::Smuggle(27));
        let mut f = Framing::default();
        let mut found = None;
        for (i, b) in bad.iter().enumerate() {
            if let Fed::Smuggle(_) = f.feed(&[*b]) {
                found = Some(i);
                break;
            }
        }
        assert!(found.is_some());
        // An Upgrade other than a WebSocket (never upgraded) does not stop
        // the following; a WebSocket's does (its bytes are no requests).
        let h2c = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n\
POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(matches!(Framing::default().feed(h2c), Fed::Smuggle(_)));
        let ws = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\
POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(Framing::default().feed(ws), Fed::Fine);
    }

    proptest! {
        #[test]
        fn random_input_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let mut f = Framing::default();
            for chunk in chunks {
                let _ = f.feed(&chunk);
            }
        }

        #[test]
        fn random_chunked_bodies_never_panic(sizes in proptest::collection::vec("[0-9a-fA-F;x ]{0,10}", 0..10)) {
            let mut f = Framing::default();
            let mut text = String::from("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
            for s in sizes {
                text.push_str(&s);
                text.push_str("\r\nabc\r\n");
            }
            let _ = f.feed(text.as_bytes());
        }
    }
}
