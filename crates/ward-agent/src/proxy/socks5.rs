//! SOCKS5 (RFC 1928) front end: no authentication, CONNECT only.
//!
//! A connection goes:
//!
//! 1. [`accept`] reads the greeting, answers "no authentication" (or refuses
//!    with `0xFF` when the client does not offer it), reads the request and
//!    returns its [`Target`]. Protocol errors are answered before it returns
//!    (`0x07` for BIND and UDP ASSOCIATE, `0x08` for an unknown address type).
//! 2. The caller reaches the target (through the tunnel) and sends the outcome
//!    with [`reply`]: [`Reply::Succeeded`], then carries bytes both ways.
//!
//! Domain names are not resolved here: they are passed on in the
//! [`Target::Domain`] to be resolved at the gateway side.
//!
//! [`accept`] reads exactly the bytes of the greeting and of the request, with
//! reads of known lengths, so whatever the client sends after its request
//! (clients may send data before the reply) stays unread in the stream.
//! [`parse_greeting`] and [`parse_request`] are the same parsers as pure
//! functions over a buffer, for callers that buffer themselves.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::target::{Target, TargetError};

/// The protocol version byte.
pub const VERSION: u8 = 0x05;
/// The "no authentication required" method.
pub const METHOD_NO_AUTH: u8 = 0x00;
/// The method-selection answer refusing every offered method.
pub const METHOD_NONE_ACCEPTABLE: u8 = 0xFF;
/// Longest possible greeting: version, count, 255 methods.
pub const MAX_GREETING_LEN: usize = 2 + 255;
/// Longest possible request: header, length byte, 255-byte name, port.
pub const MAX_REQUEST_LEN: usize = 4 + 1 + 255 + 2;

const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;

/// The client's greeting: the authentication methods it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// Offered method codes, in the client's order (never empty).
    pub methods: Vec<u8>,
}

impl Greeting {
    /// Whether the client offers "no authentication", the one method served.
    pub fn offers_no_auth(&self) -> bool {
        self.methods.contains(&METHOD_NO_AUTH)
    }
}

/// A SOCKS5 command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `0x01`: open a TCP connection. The only one served.
    Connect,
    /// `0x02`: accept an inbound TCP connection. Refused with `0x07`.
    Bind,
    /// `0x03`: relay UDP. Refused with `0x07`.
    UdpAssociate,
}

impl Command {
    /// The command's code on the wire.
    pub fn code(self) -> u8 {
        match self {
            Command::Connect => 0x01,
            Command::Bind => 0x02,
            Command::UdpAssociate => 0x03,
        }
    }

    /// The command with this code, if it is one of RFC 1928's.
    pub fn from_code(code: u8) -> Option<Command> {
        match code {
            0x01 => Some(Command::Connect),
            0x02 => Some(Command::Bind),
            0x03 => Some(Command::UdpAssociate),
            _ => None,
        }
    }
}

/// A client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What the client asks for.
    pub command: Command,
    /// The destination.
    pub target: Target,
}

impl Request {
    /// The request's bytes on the wire, as a client sends them. An IP target
    /// uses its address type; a name uses the domain address type.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![VERSION, self.command.code(), 0x00];
        match &self.target {
            Target::Ip(addr) => push_addr(&mut out, *addr),
            Target::Domain { host, port } => {
                out.push(ATYP_DOMAIN);
                // A validated name is at most 254 bytes (253 and a root dot).
                out.push(u8::try_from(host.len()).unwrap_or(u8::MAX));
                out.extend_from_slice(host.as_bytes());
                out.extend_from_slice(&port.to_be_bytes());
            }
        }
        out
    }
}

/// The reply codes of RFC 1928 section 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reply {
    /// `0x00`: succeeded.
    Succeeded,
    /// `0x01`: general SOCKS server failure.
    GeneralFailure,
    /// `0x02`: connection not allowed by ruleset.
    NotAllowed,
    /// `0x03`: network unreachable.
    NetworkUnreachable,
    /// `0x04`: host unreachable.
    HostUnreachable,
    /// `0x05`: connection refused.
    ConnectionRefused,
    /// `0x06`: TTL expired.
    TtlExpired,
    /// `0x07`: command not supported.
    CommandNotSupported,
    /// `0x08`: address type not supported.
    AddressTypeNotSupported,
}

impl Reply {
    /// The reply's code on the wire.
    pub fn code(self) -> u8 {
        match self {
            Reply::Succeeded => 0x00,
            Reply::GeneralFailure => 0x01,
            Reply::NotAllowed => 0x02,
            Reply::NetworkUnreachable => 0x03,
            Reply::HostUnreachable => 0x04,
            Reply::ConnectionRefused => 0x05,
            Reply::TtlExpired => 0x06,
            Reply::CommandNotSupported => 0x07,
            Reply::AddressTypeNotSupported => 0x08,
        }
    }

    /// The reply's bytes on the wire. The bound address is always
    /// `0.0.0.0:0`: the real one is at the gateway and means nothing locally.
    pub fn to_bytes(self) -> [u8; 10] {
        [VERSION, self.code(), 0x00, ATYP_IPV4, 0, 0, 0, 0, 0, 0]
    }

    /// The reply for a failure to reach the target, by I/O error kind (for
    /// callers whose tunnel reports failures as [`io::Error`]s).
    pub fn for_io_error(err: &io::Error) -> Reply {
        match err.kind() {
            io::ErrorKind::ConnectionRefused => Reply::ConnectionRefused,
            io::ErrorKind::HostUnreachable => Reply::HostUnreachable,
            io::ErrorKind::NetworkUnreachable => Reply::NetworkUnreachable,
            io::ErrorKind::TimedOut => Reply::TtlExpired,
            io::ErrorKind::PermissionDenied => Reply::NotAllowed,
            _ => Reply::GeneralFailure,
        }
    }
}

/// Why a SOCKS5 handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum Socks5Error {
    /// Reading or writing the client's stream failed (or it closed early).
    #[error("SOCKS5 connection failed: {0}")]
    Io(#[from] io::Error),
    /// The greeting's version byte is not 5: not a SOCKS5 client.
    #[error("not a SOCKS5 client (version byte {0:#04x})")]
    BadVersion(u8),
    /// The client does not offer "no authentication", the one method served.
    #[error("client offers no acceptable authentication method (only no-auth is served)")]
    NoAcceptableMethod,
    /// The request's version byte is not 5.
    #[error("SOCKS5 request with version byte {0:#04x}")]
    BadRequestVersion(u8),
    /// A command other than CONNECT.
    #[error("unsupported SOCKS5 command {0:#04x} (only CONNECT is served)")]
    CommandNotSupported(u8),
    /// The reserved byte of the request is not 0.
    #[error("SOCKS5 request with reserved byte {0:#04x}")]
    BadReserved(u8),
    /// An address type other than IPv4, domain name or IPv6.
    #[error("unsupported SOCKS5 address type {0:#04x}")]
    AddressTypeNotSupported(u8),
    /// The destination is invalid (bad name, port 0).
    #[error("invalid destination: {0}")]
    InvalidTarget(#[from] TargetError),
}

impl Socks5Error {
    /// The request reply this error calls for, or `None` where no reply
    /// applies: I/O failures, and greeting errors (answered, if at all, by
    /// the method selection `0xFF`).
    ///
    /// [`accept`] has already sent it when it returns the error.
    pub fn reply(&self) -> Option<Reply> {
        match self {
            Socks5Error::Io(_) | Socks5Error::BadVersion(_) | Socks5Error::NoAcceptableMethod => None,
            Socks5Error::BadRequestVersion(_) | Socks5Error::BadReserved(_) => Some(Reply::GeneralFailure),
            Socks5Error::CommandNotSupported(_) => Some(Reply::CommandNotSupported),
            Socks5Error::AddressTypeNotSupported(_) => Some(Reply::AddressTypeNotSupported),
            Socks5Error::InvalidTarget(_) => Some(Reply::HostUnreachable),
        }
    }
}

/// Outcome of a parser over a partial buffer.
enum Parsed<T> {
    /// Parsed, from this many bytes.
    Done(T, usize),
    /// At least this many bytes in all are needed (more than the buffer has).
    Need(usize),
}

/// Parses a greeting from the start of `buf`: `Ok(None)` when more bytes are
/// needed, else the greeting and the number of bytes it took.
pub fn parse_greeting(buf: &[u8]) -> Result<Option<(Greeting, usize)>, Socks5Error> {
    Ok(match greeting(buf)? {
        Parsed::Done(g, n) => Some((g, n)),
        Parsed::Need(_) => None,
    })
}

/// Parses a request from the start of `buf`: `Ok(None)` when more bytes are
/// needed, else the request and the number of bytes it took.
///
/// BIND and UDP ASSOCIATE parse (the caller refuses them); an unknown command
/// or address type is an error as soon as its byte is seen.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, Socks5Error> {
    Ok(match request(buf)? {
        Parsed::Done(r, n) => Some((r, n)),
        Parsed::Need(_) => None,
    })
}

fn greeting(buf: &[u8]) -> Result<Parsed<Greeting>, Socks5Error> {
    let Some(&version) = buf.first() else {
        return Ok(Parsed::Need(2));
    };
    if version != VERSION {
        return Err(Socks5Error::BadVersion(version));
    }
    let Some(&count) = buf.get(1) else {
        return Ok(Parsed::Need(2));
    };
    if count == 0 {
        return Err(Socks5Error::NoAcceptableMethod);
    }
    let len = 2 + usize::from(count);
    Ok(match buf.get(2..len) {
        Some(methods) => Parsed::Done(
            Greeting {
                methods: methods.to_vec(),
            },
            len,
        ),
        None => Parsed::Need(len),
    })
}

fn request(buf: &[u8]) -> Result<Parsed<Request>, Socks5Error> {
    const HEADER: usize = 4;
    if let Some(&version) = buf.first() {
        if version != VERSION {
            return Err(Socks5Error::BadRequestVersion(version));
        }
    }
    if let Some(&code) = buf.get(1) {
        if Command::from_code(code).is_none() {
            return Err(Socks5Error::CommandNotSupported(code));
        }
    }
    if let Some(&reserved) = buf.get(2) {
        if reserved != 0 {
            return Err(Socks5Error::BadReserved(reserved));
        }
    }
    let (Some(&code), Some(&atyp)) = (buf.get(1), buf.get(3)) else {
        return Ok(Parsed::Need(HEADER));
    };
    let command = Command::from_code(code).ok_or(Socks5Error::CommandNotSupported(code))?;
    let (addr_len, len) = match atyp {
        ATYP_IPV4 => (4, HEADER + 4 + 2),
        ATYP_IPV6 => (16, HEADER + 16 + 2),
        ATYP_DOMAIN => match buf.get(HEADER) {
            Some(&n) => (1 + usize::from(n), HEADER + 1 + usize::from(n) + 2),
            None => return Ok(Parsed::Need(HEADER + 1)),
        },
        other => return Err(Socks5Error::AddressTypeNotSupported(other)),
    };
    let Some(bytes) = buf.get(..len) else {
        return Ok(Parsed::Need(len));
    };
    let addr = &bytes[HEADER..HEADER + addr_len];
    let port = u16::from_be_bytes([bytes[len - 2], bytes[len - 1]]);
    let target = match atyp {
        ATYP_IPV4 => {
            let octets: [u8; 4] = addr.try_into().map_err(|_| TargetError::InvalidIpv6)?;
            Target::ip(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(octets)), port))?
        }
        ATYP_IPV6 => {
            let octets: [u8; 16] = addr.try_into().map_err(|_| TargetError::InvalidIpv6)?;
            Target::ip(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))?
        }
        _ => {
            let name = std::str::from_utf8(&addr[1..]).map_err(|_| TargetError::NonAscii)?;
            Target::domain(name, port)?
        }
    };
    Ok(Parsed::Done(Request { command, target }, len))
}

fn push_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(ATYP_IPV4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(ATYP_IPV6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Reads one frame with `parse`, by exact reads of the lengths it asks for:
/// never a byte past the frame.
async fn read_frame<S, T>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    parse: fn(&[u8]) -> Result<Parsed<T>, Socks5Error>,
) -> Result<T, Socks5Error>
where
    S: AsyncRead + Unpin,
{
    buf.clear();
    loop {
        match parse(buf)? {
            Parsed::Done(frame, _) => return Ok(frame),
            Parsed::Need(total) => {
                let have = buf.len();
                if total <= have {
                    // A parser asking for no more bytes would loop forever.
                    return Err(io::Error::other("SOCKS5 parser made no progress").into());
                }
                buf.resize(total, 0);
                stream.read_exact(&mut buf[have..]).await?;
            }
        }
    }
}

/// Runs the server side of the SOCKS5 handshake up to the request, and
/// returns the requested target.
///
/// The caller then sends the outcome with [`reply`]. On error, the answer
/// the protocol calls for has already been sent (best effort): `0x05 0xFF`
/// when "no authentication" is not offered, `0x07` for BIND / UDP ASSOCIATE
/// or an unknown command, `0x08` for an unknown address type, and
/// [`Socks5Error::reply`] for the rest; the caller just closes the stream.
///
/// Applies no timeout: wrap it in [`tokio::time::timeout`].
pub async fn accept<S>(stream: &mut S) -> Result<Target, Socks5Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(MAX_REQUEST_LEN);
    let offered = match read_frame(stream, &mut buf, greeting).await {
        Ok(g) => g.offers_no_auth(),
        Err(Socks5Error::NoAcceptableMethod) => false,
        Err(e) => return Err(e),
    };
    if !offered {
        // Best effort: the client may be gone already.
        let _ = write_flush(stream, &[VERSION, METHOD_NONE_ACCEPTABLE]).await;
        return Err(Socks5Error::NoAcceptableMethod);
    }
    write_flush(stream, &[VERSION, METHOD_NO_AUTH]).await?;

    let err = match read_frame(stream, &mut buf, request).await {
        Ok(Request {
            command: Command::Connect,
            target,
        }) => return Ok(target),
        Ok(Request { command, .. }) => Socks5Error::CommandNotSupported(command.code()),
        Err(e) => e,
    };
    if let Some(code) = err.reply() {
        let _ = reply(stream, code).await;
    }
    Err(err)
}

/// Sends the request's reply, with bound address `0.0.0.0:0`, and flushes.
pub async fn reply<S>(stream: &mut S, reply: Reply) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    write_flush(stream, &reply.to_bytes()).await
}

async fn write_flush<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};

    use super::*;

    fn domain(host: &str, port: u16) -> Target {
        Target::Domain {
            host: host.into(),
            port,
        }
    }

    /// A client stream replaying scripted chunks, one chunk per read, and
    /// recording what the server writes.
    struct Script {
        chunks: VecDeque<Vec<u8>>,
        written: Vec<u8>,
    }

    impl Script {
        fn new(chunks: Vec<Vec<u8>>) -> Script {
            Script {
                chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
                written: Vec::new(),
            }
        }

        fn split(bytes: &[u8], at: usize) -> Script {
            Script::new(vec![bytes[..at].to_vec(), bytes[at..].to_vec()])
        }

        fn unread(&self) -> Vec<u8> {
            self.chunks.iter().flatten().copied().collect()
        }
    }

    impl AsyncRead for Script {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            if let Some(mut chunk) = self.chunks.pop_front() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                chunk.drain(..n);
                if !chunk.is_empty() {
                    self.chunks.push_front(chunk);
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Script {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.written.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    const GREETING: &[u8] = &[5, 1, 0];
    const METHOD_OK: &[u8] = &[5, 0];
    const REQ_V4: &[u8] = &[5, 1, 0, 1, 192, 0, 2, 1, 0x01, 0xBB];
    const REQ_V6: &[u8] = &[
        5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80,
    ];
    const REQ_NAME: &[u8] = &[
        5, 1, 0, 3, 11, b'E', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'o', b'r', b'g', 0x1F, 0x90,
    ];

    fn cases() -> Vec<(&'static [u8], Target)> {
        vec![
            (REQ_V4, Target::Ip("192.0.2.1:443".parse().unwrap())),
            (REQ_V6, Target::Ip("[2001:db8::1]:80".parse().unwrap())),
            (REQ_NAME, domain("example.org", 8080)),
        ]
    }

    #[test]
    fn greeting_parses_incrementally() {
        let bytes = [5, 3, 2, 1, 0];
        for n in 0..bytes.len() {
            assert!(parse_greeting(&bytes[..n]).unwrap().is_none(), "prefix {n}");
        }
        let (g, used) = parse_greeting(&[5, 3, 2, 1, 0, 0xAA]).unwrap().unwrap();
        assert_eq!((g.methods.as_slice(), used), (&[2, 1, 0][..], 5));
        assert!(g.offers_no_auth());
        let (g, _) = parse_greeting(&[5, 1, 2]).unwrap().unwrap();
        assert!(!g.offers_no_auth());
        let max: Vec<u8> = [5, 255].into_iter().chain(0..=254).collect();
        assert_eq!(parse_greeting(&max).unwrap().unwrap().1, MAX_GREETING_LEN);
    }

    #[test]
    fn greeting_errors() {
        assert!(matches!(parse_greeting(&[4]), Err(Socks5Error::BadVersion(4))));
        assert!(matches!(
            parse_greeting(b"GET / HTTP/1.1"),
            Err(Socks5Error::BadVersion(b'G'))
        ));
        assert!(matches!(parse_greeting(&[5, 0]), Err(Socks5Error::NoAcceptableMethod)));
    }

    #[test]
    fn request_parses_each_address_type_incrementally() {
        for (bytes, target) in cases() {
            for n in 0..bytes.len() {
                assert!(parse_request(&bytes[..n]).unwrap().is_none(), "{bytes:?} prefix {n}");
            }
            let mut more = bytes.to_vec();
            more.extend_from_slice(b"payload");
            let (req, used) = parse_request(&more).unwrap().unwrap();
            assert_eq!(
                req,
                Request {
                    command: Command::Connect,
                    target: target.clone()
                }
            );
            assert_eq!(used, bytes.len());
            // Encoding gives the same bytes, the name lowercased.
            let mut want = bytes.to_vec();
            if bytes[3] == ATYP_DOMAIN {
                want[5..used - 2].make_ascii_lowercase();
            }
            assert_eq!(req.to_bytes(), want);
        }
    }

    #[test]
    fn request_parses_bind_and_udp() {
        let mut bind = REQ_V4.to_vec();
        bind[1] = 2;
        assert_eq!(parse_request(&bind).unwrap().unwrap().0.command, Command::Bind);
        bind[1] = 3;
        assert_eq!(parse_request(&bind).unwrap().unwrap().0.command, Command::UdpAssociate);
    }

    #[test]
    fn request_errors_as_soon_as_seen() {
        let err = |b: &[u8]| parse_request(b).unwrap_err();
        assert!(matches!(err(&[4]), Socks5Error::BadRequestVersion(4)));
        assert!(matches!(err(&[5, 0]), Socks5Error::CommandNotSupported(0)));
        assert!(matches!(err(&[5, 9]), Socks5Error::CommandNotSupported(9)));
        assert!(matches!(err(&[5, 1, 1]), Socks5Error::BadReserved(1)));
        assert!(matches!(err(&[5, 1, 0, 2]), Socks5Error::AddressTypeNotSupported(2)));
        assert!(matches!(err(&[5, 1, 0, 0]), Socks5Error::AddressTypeNotSupported(0)));
        assert!(matches!(
            err(&[5, 1, 0, 1, 127, 0, 0, 1, 0, 0]),
            Socks5Error::InvalidTarget(TargetError::PortZero)
        ));
        assert!(matches!(
            err(&[5, 1, 0, 3, 0, 0, 80]),
            Socks5Error::InvalidTarget(TargetError::EmptyHost)
        ));
        assert!(matches!(
            err(&[5, 1, 0, 3, 3, b'a', b' ', b'b', 0, 80]),
            Socks5Error::InvalidTarget(TargetError::InvalidChar(' '))
        ));
        assert!(matches!(
            err(&[5, 1, 0, 3, 2, 0xC3, 0x28, 0, 80]),
            Socks5Error::InvalidTarget(TargetError::NonAscii)
        ));
        assert!(matches!(
            err(&[5, 1, 0, 3, 5, b'1', b'2', b'7', b'.', b'1', 0, 80]),
            Socks5Error::InvalidTarget(TargetError::AmbiguousNumeric)
        ));
    }

    #[test]
    fn domain_with_ip_literal_becomes_ip() {
        let req = [
            5, 1, 0, 3, 9, b'1', b'2', b'7', b'.', b'0', b'.', b'0', b'.', b'1', 0, 80,
        ];
        let (r, _) = parse_request(&req).unwrap().unwrap();
        assert_eq!(r.target, Target::Ip("127.0.0.1:80".parse().unwrap()));
    }

    #[test]
    fn error_replies() {
        assert_eq!(
            Socks5Error::CommandNotSupported(2).reply(),
            Some(Reply::CommandNotSupported)
        );
        assert_eq!(
            Socks5Error::AddressTypeNotSupported(2).reply(),
            Some(Reply::AddressTypeNotSupported)
        );
        assert_eq!(Socks5Error::BadReserved(2).reply(), Some(Reply::GeneralFailure));
        assert_eq!(Socks5Error::BadRequestVersion(4).reply(), Some(Reply::GeneralFailure));
        assert_eq!(
            Socks5Error::InvalidTarget(TargetError::PortZero).reply(),
            Some(Reply::HostUnreachable)
        );
        assert_eq!(Socks5Error::NoAcceptableMethod.reply(), None);
        assert_eq!(Socks5Error::BadVersion(4).reply(), None);
        assert_eq!(Socks5Error::Io(io::ErrorKind::UnexpectedEof.into()).reply(), None);
    }

    #[test]
    fn reply_codes_and_bytes() {
        let all = [
            (Reply::Succeeded, 0),
            (Reply::GeneralFailure, 1),
            (Reply::NotAllowed, 2),
            (Reply::NetworkUnreachable, 3),
            (Reply::HostUnreachable, 4),
            (Reply::ConnectionRefused, 5),
            (Reply::TtlExpired, 6),
            (Reply::CommandNotSupported, 7),
            (Reply::AddressTypeNotSupported, 8),
        ];
        for (reply, code) in all {
            assert_eq!(reply.to_bytes(), [5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
        }
        assert_eq!(
            Reply::for_io_error(&io::ErrorKind::ConnectionRefused.into()),
            Reply::ConnectionRefused
        );
        assert_eq!(Reply::for_io_error(&io::ErrorKind::TimedOut.into()), Reply::TtlExpired);
        assert_eq!(Reply::for_io_error(&io::ErrorKind::Other.into()), Reply::GeneralFailure);
    }

    #[tokio::test]
    async fn accept_split_at_every_byte_leaves_payload_unread() {
        for (req, target) in cases() {
            let input: Vec<u8> = [GREETING, req, b"PAYLOAD"].concat();
            for at in 0..=input.len() {
                let mut s = Script::split(&input, at);
                assert_eq!(accept(&mut s).await.unwrap(), target, "split at {at}");
                assert_eq!(s.written, METHOD_OK, "split at {at}");
                assert_eq!(s.unread(), b"PAYLOAD", "split at {at}");
                reply(&mut s, Reply::Succeeded).await.unwrap();
                assert_eq!(s.written, [METHOD_OK, &[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]].concat());
            }
        }
    }

    #[tokio::test]
    async fn accept_over_one_byte_duplex() {
        for (req, target) in cases() {
            // A one-byte pipe: every read and write moves a single byte.
            let (mut client, mut server) = tokio::io::duplex(1);
            let req = req.to_vec();
            // The client waits for each answer, so the one-byte pipe never
            // has both sides writing at once.
            let client_task = tokio::spawn(async move {
                for b in [5, 2, 0x02, 0x00] {
                    client.write_all(&[b]).await.unwrap();
                }
                let mut method = [0u8; 2];
                client.read_exact(&mut method).await.unwrap();
                assert_eq!(method, [5, 0]);
                for b in req {
                    client.write_all(&[b]).await.unwrap();
                }
                let mut rep = [0u8; 10];
                client.read_exact(&mut rep).await.unwrap();
                assert_eq!(rep, [5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
                client.write_all(b"ping").await.unwrap();
                let mut pong = [0u8; 4];
                client.read_exact(&mut pong).await.unwrap();
                assert_eq!(&pong, b"pong");
            });
            assert_eq!(accept(&mut server).await.unwrap(), target);
            reply(&mut server, Reply::Succeeded).await.unwrap();
            let mut ping = [0u8; 4];
            server.read_exact(&mut ping).await.unwrap();
            assert_eq!(&ping, b"ping");
            server.write_all(b"pong").await.unwrap();
            client_task.await.unwrap();
        }
    }

    async fn refused(input: &[u8]) -> (Socks5Error, Vec<u8>) {
        let mut s = Script::new(vec![input.to_vec()]);
        let err = accept(&mut s).await.unwrap_err();
        (err, s.written)
    }

    #[tokio::test]
    async fn accept_refuses_without_no_auth() {
        let (err, written) = refused(&[5, 2, 1, 2]).await;
        assert!(matches!(err, Socks5Error::NoAcceptableMethod));
        assert_eq!(written, [5, 0xFF]);
        let (err, written) = refused(&[5, 0]).await;
        assert!(matches!(err, Socks5Error::NoAcceptableMethod));
        assert_eq!(written, [5, 0xFF]);
    }

    #[tokio::test]
    async fn accept_refuses_other_versions_silently() {
        let (err, written) = refused(&[4, 1, 0, 80, 127, 0, 0, 1, 0]).await;
        assert!(matches!(err, Socks5Error::BadVersion(4)));
        assert!(written.is_empty());
    }

    #[tokio::test]
    async fn accept_refuses_bind_and_udp_with_07() {
        for cmd in [2u8, 3, 9] {
            let mut req = REQ_V4.to_vec();
            req[1] = cmd;
            let (err, written) = refused(&[GREETING, &req].concat()).await;
            assert!(matches!(err, Socks5Error::CommandNotSupported(c) if c == cmd), "{err}");
            assert_eq!(written, [METHOD_OK, &[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]].concat());
        }
    }

    #[tokio::test]
    async fn accept_refuses_bad_address_type_with_08() {
        let (err, written) = refused(&[GREETING, &[5, 1, 0, 2, 1, 2, 3, 4, 0, 80]].concat()).await;
        assert!(matches!(err, Socks5Error::AddressTypeNotSupported(2)));
        assert_eq!(written, [METHOD_OK, &[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]].concat());
    }

    #[tokio::test]
    async fn accept_refuses_invalid_targets() {
        let (err, written) = refused(&[GREETING, &[5, 1, 0, 1, 10, 0, 0, 1, 0, 0]].concat()).await;
        assert!(matches!(err, Socks5Error::InvalidTarget(TargetError::PortZero)));
        assert_eq!(written, [METHOD_OK, &[5, 4, 0, 1, 0, 0, 0, 0, 0, 0]].concat());
        let (err, written) = refused(&[GREETING, &[5, 1, 7, 1, 10, 0, 0, 1, 0, 80]].concat()).await;
        assert!(matches!(err, Socks5Error::BadReserved(7)));
        assert_eq!(written, [METHOD_OK, &[5, 1, 0, 1, 0, 0, 0, 0, 0, 0]].concat());
    }

    #[tokio::test]
    async fn accept_reports_early_close() {
        let truncated = [GREETING, &REQ_V4[..7]].concat();
        let inputs: [&[u8]; 5] = [&[], &[5], &[5, 2, 0], GREETING, &truncated];
        for input in inputs {
            let (err, _) = refused(input).await;
            assert!(
                matches!(&err, Socks5Error::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof),
                "{err}"
            );
        }
    }
}
