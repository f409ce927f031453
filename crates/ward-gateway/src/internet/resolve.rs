//! Name resolution for the internet proxy: the system's resolver, or, when
//! the gateway is given DNS upstreams (`GatewayConfig::dns_upstreams`),
//! those servers only: one A and one AAAA query over UDP to each in turn
//! until one answers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

/// How long one upstream may take to answer.
const PER_UPSTREAM: Duration = Duration::from_secs(2);

/// Resolves names for the proxy.
#[derive(Clone, Default)]
pub(crate) struct Resolver {
    upstreams: Arc<[SocketAddr]>,
}

impl Resolver {
    pub(crate) fn new(upstreams: &[SocketAddr]) -> Resolver {
        Resolver {
            upstreams: upstreams.into(),
        }
    }

    /// Every address of `name` (IPv4 first), or why there is none.
    pub(crate) async fn lookup(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if self.upstreams.is_empty() {
            return match tokio::net::lookup_host((name, port)).await {
                Ok(addrs) => Ok(addrs.collect()),
                Err(e) => Err(format!("resolve {name}: {e}")),
            };
        }
        let mut last = format!("resolve {name}: no upstream answered");
        for upstream in self.upstreams.iter() {
            match tokio::time::timeout(PER_UPSTREAM, query(*upstream, name)).await {
                Ok(Ok(ips)) => return Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect()),
                Ok(Err(e)) => last = format!("resolve {name} at {upstream}: {e}"),
                Err(_) => last = format!("resolve {name} at {upstream}: timed out"),
            }
        }
        Err(last)
    }
}

/// A and AAAA of `name` from one server.
async fn query(upstream: SocketAddr, name: &str) -> Result<Vec<IpAddr>, String> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    socket.connect(upstream).await.map_err(|e| e.to_string())?;
    let mut id_bytes = [0u8; 4];
    aws_lc_rs::rand::fill(&mut id_bytes).map_err(|_| "no randomness".to_owned())?;
    let ids = [
        u16::from_be_bytes([id_bytes[0], id_bytes[1]]),
        u16::from_be_bytes([id_bytes[2], id_bytes[3]]),
    ];
    for (id, qtype) in ids.iter().zip([1u16, 28]) {
        let message = encode_query(*id, name, qtype).ok_or("not a name DNS can carry")?;
        socket.send(&message).await.map_err(|e| e.to_string())?;
    }
    let mut answered = [false; 2];
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    let mut failure = None;
    let mut buf = vec![0u8; 4096];
    while !answered.iter().all(|a| *a) {
        let n = socket.recv(&mut buf).await.map_err(|e| e.to_string())?;
        let Some(answer) = parse_answer(&buf[..n]) else {
            continue;
        };
        let Some(which) = ids.iter().position(|id| *id == answer.id) else {
            continue;
        };
        if answered[which] {
            continue;
        }
        answered[which] = true;
        match answer.rcode {
            0 => {
                for ip in answer.addresses {
                    match ip {
                        IpAddr::V4(_) => v4.push(ip),
                        IpAddr::V6(_) => v6.push(ip),
                    }
                }
            }
            3 => failure = Some("no such name".to_owned()),
            code => failure = Some(format!("DNS error {code}")),
        }
    }
    v4.extend(v6);
    match (v4.is_empty(), failure) {
        (false, _) => Ok(v4),
        (true, Some(why)) => Err(why),
        (true, None) => Err("no address".to_owned()),
    }
}

/// A recursive query for `name`, type `qtype`, class IN.
pub(crate) fn encode_query(id: u16, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(18 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&[0, 1]);
    Some(out)
}

/// What a DNS answer says, as far as the proxy cares.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) id: u16,
    pub(crate) rcode: u8,
    pub(crate) addresses: Vec<IpAddr>,
}

/// Parses a response; `None` for anything that is not one (never panics).
pub(crate) fn parse_answer(msg: &[u8]) -> Option<Answer> {
    let header = msg.get(..12)?;
    let id = u16::from_be_bytes([header[0], header[1]]);
    if header[2] & 0x80 == 0 {
        return None; // not a response
    }
    let rcode = header[3] & 0x0f;
    let questions = u16::from_be_bytes([header[4], header[5]]);
    let answers = u16::from_be_bytes([header[6], header[7]]);
    let mut pos = 12;
    for _ in 0..questions {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..answers {
        pos = skip_name(msg, pos)?;
        let fixed = msg.get(pos..pos + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        pos += 10;
        let data = msg.get(pos..pos + len)?;
        pos += len;
        match (rtype, len) {
            (1, 4) => addresses.push(IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3]))),
            (28, 16) => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(data);
                addresses.push(IpAddr::V6(Ipv6Addr::from(octets)));
            }
            _ => {}
        }
    }
    Some(Answer { id, rcode, addresses })
}

fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        if len == 0 {
            return Some(pos + 1);
        }
        if len & 0xc0 == 0xc0 {
            msg.get(pos + 1)?;
            return Some(pos + 2);
        }
        if len & 0xc0 != 0 {
            return None;
        }
        pos += 1 + usize::from(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A response to `query` with one A record (name by pointer).
    fn response(query: &[u8], ip: [u8; 4]) -> Vec<u8> {
        let mut out = query.to_vec();
        out[2] |= 0x80;
        out[7] = 1;
        out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        out.extend_from_slice(&ip);
        out
    }

    #[test]
    fn queries_and_answers() {
        let q = encode_query(7, "site.example", 1).unwrap();
        assert_eq!(&q[12..], b"\x04site\x07example\x00\x00\x01\x00\x01");
        let a = parse_answer(&response(&q, [127, 0, 0, 1])).unwrap();
        assert_eq!((a.id, a.rcode), (7, 0));
        assert_eq!(a.addresses, vec![IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(parse_answer(&q), None, "a query is no answer");
        assert_eq!(encode_query(1, "a..b", 1), None);
    }

    #[tokio::test]
    async fn resolves_through_the_given_upstream_only() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let upstream = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            while let Ok((n, from)) = server.recv_from(&mut buf).await {
                let q = buf[..n].to_vec();
                let qtype = q[n - 3];
                let answer = if qtype == 1 {
                    response(&q, [127, 0, 0, 9])
                } else {
                    let mut empty = q.clone();
                    empty[2] |= 0x80;
                    empty
                };
                let _ = server.send_to(&answer, from).await;
            }
        });
        let resolver = Resolver::new(&[upstream]);
        let addrs = resolver.lookup("anything.example", 80).await.unwrap();
        assert_eq!(addrs, vec!["127.0.0.9:80".parse().unwrap()]);
    }

    proptest! {
        #[test]
        fn random_messages_never_panic(msg in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_answer(&msg);
        }
    }
}
