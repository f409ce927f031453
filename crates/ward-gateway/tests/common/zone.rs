//! A small authoritative DNS server on 127.0.0.1 (UDP and TCP, one port)
//! standing in for the upstream resolvers: written with hickory-proto, it
//! answers a fixed zone. Only tokio and hickory-proto, so the binary's tests
//! include it too (`#[path]`).
//!
//! - `site-a.test A 127.0.0.1`, `www.site-b.test A 127.0.0.2`,
//!   `shop.test`, `bank.test` and `news.test A 127.0.0.1`,
//!   `ads.test A 127.0.0.3`, `x.tracker.test A 127.0.0.4`, `tracker.test A 127.0.0.6`, `site-a.test AAAA ::1`;
//! - `big.test`: 40 TXT records, too many for UDP: the UDP answer is
//!   truncated (TC) and the full one comes over TCP;
//! - `spoof.test A 127.0.0.5`, preceded by a forged answer (wrong id) and an
//!   answer to another question, which the filter must ignore;
//! - anything else: NXDOMAIN.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// A running zone server.
pub struct Zone {
    pub addr: SocketAddr,
    /// Queries received (UDP and TCP).
    pub queries: Arc<AtomicUsize>,
    /// Queries received over TCP.
    pub tcp_queries: Arc<AtomicUsize>,
}

impl Zone {
    pub async fn start() -> Zone {
        // UDP and TCP on one port: the port UDP got may be taken for TCP
        // (by another test's connection); then try another.
        let mut attempt = 0;
        let (udp, addr, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            match TcpListener::bind(addr).await {
                Ok(tcp) => break (udp, addr, tcp),
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    let _ = e;
                }
                Err(e) => panic!("no port free for both UDP and TCP: {e}"),
            }
        };
        let queries = Arc::new(AtomicUsize::new(0));
        let tcp_queries = Arc::new(AtomicUsize::new(0));
        let count = queries.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            loop {
                let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                if is(&query, "spoof.test.") {
                    // A forged answer first (wrong id), then one to another question.
                    let mut forged = respond(&query);
                    forged.set_id(query.id().wrapping_add(1));
                    let _ = udp.send_to(&forged.to_vec().unwrap(), from).await;
                    let mut other = respond(&query);
                    other.queries_mut()[0] = Query::query(Name::from_ascii("site-a.test.").unwrap(), RecordType::A);
                    let _ = udp.send_to(&other.to_vec().unwrap(), from).await;
                }
                let mut answer = respond(&query);
                if answer.to_vec().unwrap().len() > 512 {
                    answer = answer.truncate();
                }
                let _ = udp.send_to(&answer.to_vec().unwrap(), from).await;
            }
        });
        let count = queries.clone();
        let tcp_count = tcp_queries.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = tcp.accept().await else {
                    continue;
                };
                let count = count.clone();
                let tcp_count = tcp_count.clone();
                tokio::spawn(async move {
                    while let Ok(len) = stream.read_u16().await {
                        let mut buf = vec![0u8; usize::from(len)];
                        if stream.read_exact(&mut buf).await.is_err() {
                            return;
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                        tcp_count.fetch_add(1, Ordering::SeqCst);
                        let Ok(query) = Message::from_vec(&buf) else { return };
                        let answer = respond(&query).to_vec().unwrap();
                        let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&answer);
                        if stream.write_all(&framed).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Zone {
            addr,
            queries,
            tcp_queries,
        }
    }

    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

fn is(query: &Message, name: &str) -> bool {
    query
        .queries()
        .first()
        .is_some_and(|q| q.name() == &Name::from_ascii(name).unwrap())
}

/// The zone's answer to `query` (its first question).
fn respond(query: &Message) -> Message {
    let mut answer = Message::new();
    answer
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    let Some(q) = query.queries().first() else {
        answer.set_response_code(ResponseCode::FormErr);
        return answer;
    };
    answer.add_query(q.clone());
    let name = q.name().clone();
    let lower = name.to_ascii().to_ascii_lowercase();
    let a = |last: u8| Record::from_rdata(name.clone(), 300, RData::A(A::new(127, 0, 0, last)));
    let records: Option<Vec<Record>> = match (lower.as_str(), q.query_type()) {
        ("site-a.test.", RecordType::A) => Some(vec![a(1)]),
        ("site-a.test.", RecordType::AAAA) => Some(vec![Record::from_rdata(
            name.clone(),
            300,
            RData::AAAA(AAAA::new(0, 0, 0, 0, 0, 0, 0, 1)),
        )]),
        ("www.site-b.test.", RecordType::A) => Some(vec![a(2)]),
        ("ads.test.", RecordType::A) => Some(vec![a(3)]),
        ("x.tracker.test.", RecordType::A) => Some(vec![a(4)]),
        ("tracker.test.", RecordType::A) => Some(vec![a(6)]),
        ("spoof.test.", RecordType::A) => Some(vec![a(5)]),
        ("shop.test." | "bank.test." | "news.test.", RecordType::A) => Some(vec![a(1)]),
        ("big.test.", RecordType::TXT) => Some(
            (0..40)
                .map(|i| {
                    Record::from_rdata(
                        name.clone(),
                        300,
                        RData::TXT(TXT::new(vec![format!("record {i:02} of a long answer")])),
                    )
                })
                .collect(),
        ),
        (
            "site-a.test." | "www.site-b.test." | "ads.test." | "x.tracker.test." | "tracker.test." | "spoof.test."
            | "big.test." | "shop.test." | "bank.test." | "news.test.",
            _,
        ) => Some(Vec::new()),
        _ => None,
    };
    match records {
        Some(records) => {
            answer.add_answers(records);
        }
        None => {
            answer.set_response_code(ResponseCode::NXDomain);
        }
    }
    answer
}
