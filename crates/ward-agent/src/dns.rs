//! `ward agent up --dns-listen ADDR`: a local DNS server (UDP, and TCP with
//! 2-byte length framing) that sends each query to the gateway's DNS filter
//! on the tunnel ([`Tunnel::dns_query`]) and returns its answer.
//!
//! - Garbage it can tell cheaply is answered here: a message too short for a
//!   header (or that does not decode) gets `FORMERR` when its id can be read;
//!   a response (QR set) is dropped, never answered.
//! - When the gateway cannot be reached, or does not answer in time, the
//!   query is answered `SERVFAIL` with its id and question.
//! - At most [`MAX_INFLIGHT`] queries are in flight; over UDP more are
//!   answered `SERVFAIL` at once, over TCP a connection waits its turn.
//! - A UDP answer longer than the client can take (512 bytes, or its EDNS
//!   size) goes out truncated (TC), and the client asks again over TCP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use crate::tunnel::{Tunnel, DNS_MESSAGE_MAX};

/// Queries in flight at once, UDP and TCP together.
pub const MAX_INFLIGHT: usize = 256;
/// A TCP client may stay idle this long between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// The fixed header of every DNS message.
const HEADER_LEN: usize = 12;
/// What a UDP client takes without EDNS (RFC 1035).
const UDP_DEFAULT: usize = 512;

/// The local DNS server's sockets, bound on one address.
pub struct DnsListener {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl DnsListener {
    /// Binds UDP and TCP on `addr` (port 0: one free port for both).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<DnsListener> {
        let mut last = None;
        // With port 0, the UDP port picked may be taken on TCP: try again.
        for _ in 0..10 {
            let udp = UdpSocket::bind(addr).await?;
            let local = udp.local_addr()?;
            match TcpListener::bind(local).await {
                Ok(tcp) => return Ok(DnsListener { udp, tcp }),
                Err(e) if addr.port() == 0 => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// Serves until the task is dropped.
    pub async fn serve(self, tunnel: Tunnel) {
        let slots = Arc::new(Semaphore::new(MAX_INFLIGHT));
        let udp = Arc::new(self.udp);
        let tcp = self.tcp;
        tokio::join!(
            serve_udp(udp, tunnel.clone(), slots.clone()),
            serve_tcp(tcp, tunnel, slots)
        );
    }
}

async fn serve_udp(socket: Arc<UdpSocket>, tunnel: Tunnel, slots: Arc<Semaphore>) {
    let mut buf = vec![0u8; DNS_MESSAGE_MAX];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                // An ICMP error from an earlier answer's client and the like.
                tracing::debug!(error = %e, "DNS receive failed");
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let query = Bytes::copy_from_slice(&buf[..n]);
        let socket = socket.clone();
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let tunnel = tunnel.clone();
                tokio::spawn(async move {
                    if let Some(answer) = resolve(&tunnel, query.clone()).await {
                        let answer = fit_udp(&query, answer);
                        let _ = socket.send_to(&answer, from).await;
                    }
                    drop(permit);
                });
            }
            Err(_) => {
                if let Some(answer) = local_answer(&query, ResponseCode::ServFail) {
                    let _ = socket.send_to(&answer, from).await;
                }
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, tunnel: Tunnel, slots: Arc<Semaphore>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "DNS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (tunnel, slots) = (tunnel.clone(), slots.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            serve_tcp_client(stream, &tunnel, &slots).await;
        });
    }
}

/// Queries one after the other on one TCP connection, until it closes or
/// stays idle.
async fn serve_tcp_client(mut stream: TcpStream, tunnel: &Tunnel, slots: &Semaphore) {
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            _ => return,
        };
        let mut query = vec![0u8; len];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let Ok(permit) = slots.acquire().await else { return };
        let answer = resolve(tunnel, Bytes::from(query)).await;
        drop(permit);
        let Some(answer) = answer else { continue };
        let Ok(len) = u16::try_from(answer.len()) else { return };
        let mut framed = Vec::with_capacity(answer.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&answer);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

/// The answer to one message from a local client; `None`: not answered.
pub async fn resolve(tunnel: &Tunnel, query: Bytes) -> Option<Bytes> {
    if query.len() < 2 || query.len() > DNS_MESSAGE_MAX {
        return None;
    }
    if query.len() >= 3 && query[2] & 0x80 != 0 {
        return None; // a response: never answered, so no loops
    }
    if query.len() < HEADER_LEN || Message::from_vec(&query).is_err() {
        return local_answer(&query, ResponseCode::FormErr);
    }
    match tunnel.dns_query(query.clone()).await {
        Ok(answer) if answer.len() >= 2 && answer[..2] == query[..2] => Some(answer),
        Ok(_) => {
            tracing::debug!("the gateway's DNS answer does not carry the query's id");
            local_answer(&query, ResponseCode::ServFail)
        }
        Err(e) => {
            tracing::debug!(error = %e, "DNS query through the gateway failed");
            local_answer(&query, ResponseCode::ServFail)
        }
    }
}

/// An answer made here: `rcode`, the query's id, opcode and (when it
/// decodes) question. `None` when not even the id can be read.
pub fn local_answer(query: &[u8], rcode: ResponseCode) -> Option<Bytes> {
    if query.len() < 2 {
        return None;
    }
    let id = u16::from_be_bytes([query[0], query[1]]);
    let mut answer = Message::new();
    answer
        .set_id(id)
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_available(true)
        .set_response_code(rcode);
    if let Ok(parsed) = Message::from_vec(query) {
        answer
            .set_op_code(parsed.op_code())
            .set_recursion_desired(parsed.recursion_desired());
        if let [q] = parsed.queries() {
            answer.add_query(q.clone());
        }
    }
    answer.to_vec().ok().map(Bytes::from)
}

/// `answer` as a UDP client of `query` can take it: whole, or truncated
/// (TC set, records left out) when longer than its limit.
fn fit_udp(query: &[u8], answer: Bytes) -> Bytes {
    let limit = Message::from_vec(query)
        .ok()
        .and_then(|q| q.extensions().as_ref().map(|e| usize::from(e.max_payload())))
        .unwrap_or(UDP_DEFAULT)
        .max(UDP_DEFAULT);
    if answer.len() <= limit {
        return answer;
    }
    match Message::from_vec(&answer).ok().and_then(|m| m.truncate().to_vec().ok()) {
        Some(truncated) if truncated.len() <= limit => Bytes::from(truncated),
        _ => answer.slice(..HEADER_LEN.min(answer.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::{Name, RecordType};

    #[test]
    fn local_answers_carry_the_id_and_question() {
        let mut m = Message::new();
        m.set_id(0x5150).set_recursion_desired(true);
        m.add_query(Query::query(Name::from_ascii("site-a.test.").unwrap(), RecordType::A));
        let query = m.to_vec().unwrap();
        let answer = Message::from_vec(&local_answer(&query, ResponseCode::ServFail).unwrap()).unwrap();
        assert_eq!((answer.id(), answer.response_code()), (0x5150, ResponseCode::ServFail));
        assert_eq!(answer.queries(), m.queries());
        let answer = Message::from_vec(&local_answer(&[1, 2, 3], ResponseCode::FormErr).unwrap()).unwrap();
        assert_eq!((answer.id(), answer.response_code()), (0x0102, ResponseCode::FormErr));
        assert!(local_answer(&[1], ResponseCode::FormErr).is_none());
    }

    #[test]
    fn long_udp_answers_are_truncated() {
        let mut m = Message::new();
        m.set_id(7);
        m.add_query(Query::query(Name::from_ascii("big.test.").unwrap(), RecordType::TXT));
        let query = m.to_vec().unwrap();
        let mut answer = m.clone();
        answer.set_message_type(MessageType::Response);
        for i in 0..40 {
            answer.add_answer(hickory_proto::rr::Record::from_rdata(
                Name::from_ascii("big.test.").unwrap(),
                60,
                hickory_proto::rr::RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![format!(
                    "record {i:02} of a long answer"
                )])),
            ));
        }
        let bytes = Bytes::from(answer.to_vec().unwrap());
        assert!(bytes.len() > 512);
        let fitted = Message::from_vec(&fit_udp(&query, bytes.clone())).unwrap();
        assert!(fitted.truncated());
        assert_eq!(fitted.id(), 7);
        let short = Bytes::from(m.to_vec().unwrap());
        assert_eq!(fit_udp(&query, short.clone()), short);
    }
}
