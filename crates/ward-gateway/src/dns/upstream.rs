//! Forwarding an allowed query to the configured resolvers: UDP from a fresh
//! socket (a new source port) with a random id, the answer checked against
//! the query, TCP when the answer is truncated; each resolver in turn.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::wire::{self, Question, MAX_MESSAGE};

/// How long one resolver may take to answer (UDP, and TCP after a
/// truncated answer, each).
pub(crate) const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends `question` to each resolver in turn until one answers with
/// something other than `SERVFAIL` or `REFUSED` (the last such answer is
/// kept in case none does better). The answer carries the client's id.
/// `None`: no resolver answered (or none is configured).
pub(crate) async fn forward(upstreams: &[SocketAddr], question: &Question) -> Option<Vec<u8>> {
    let mut fallback = None;
    for &upstream in upstreams {
        match exchange(upstream, question).await {
            Ok((bytes, rcode)) => {
                let bytes = wire::with_id(bytes, question.id);
                if matches!(rcode, ResponseCode::ServFail | ResponseCode::Refused) {
                    fallback = Some(bytes);
                    continue;
                }
                return Some(bytes);
            }
            Err(e) => tracing::debug!(%upstream, error = %e, "DNS upstream failed"),
        }
    }
    fallback
}

/// One resolver: UDP, then TCP if the answer came truncated.
async fn exchange(upstream: SocketAddr, question: &Question) -> std::io::Result<(Vec<u8>, ResponseCode)> {
    let id: u16 = rand::random();
    let query = wire::with_id(question.raw.clone(), id);
    let (bytes, rcode, truncated) = tokio::time::timeout(UPSTREAM_TIMEOUT, udp(upstream, &query, id, question))
        .await
        .map_err(|_| timed_out("UDP"))??;
    if !truncated {
        return Ok((bytes, rcode));
    }
    let id: u16 = rand::random();
    let query = wire::with_id(question.raw.clone(), id);
    tokio::time::timeout(UPSTREAM_TIMEOUT, tcp(upstream, &query, id, question))
        .await
        .map_err(|_| timed_out("TCP"))?
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no {what} answer in time"))
}

/// Waits for the answer from `upstream` with our id and question; anything
/// else that arrives on the socket is dropped.
async fn udp(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    question: &Question,
) -> std::io::Result<(Vec<u8>, ResponseCode, bool)> {
    let local: IpAddr = match upstream {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind(SocketAddr::new(local, 0)).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        // A connected socket only receives from `upstream`.
        let n = match socket.recv(&mut buf).await {
            Ok(n) => n,
            // An ICMP "port unreachable" shows up here: nobody is there.
            Err(e) => return Err(e),
        };
        let Some(message) = wire::matches(&buf[..n], id, &question.query) else {
            tracing::debug!(%upstream, "ignoring a DNS answer that does not match the query");
            continue;
        };
        return Ok((buf[..n].to_vec(), message.response_code(), message.truncated()));
    }
}

/// The query over TCP (2-byte length framing).
async fn tcp(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    question: &Question,
) -> std::io::Result<(Vec<u8>, ResponseCode)> {
    let mut stream = TcpStream::connect(upstream).await?;
    let len = u16::try_from(query.len()).map_err(|_| std::io::Error::other("query too long"))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let len = usize::from(stream.read_u16().await?);
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    match wire::matches(&buf, id, &question.query) {
        Some(message) => Ok((buf, message.response_code())),
        None => Err(std::io::Error::other("the TCP answer does not match the query")),
    }
}
