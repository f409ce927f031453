//! Name resolution for the internet proxy: the system's resolver, or, when
//! the gateway is given DNS upstreams (`GatewayConfig::dns_upstreams`),
//! those servers only, through the DNS filter's own forwarder
//! ([`crate::dns::upstream::forward`]: random ids, answers checked against
//! the query, TCP when truncated, each resolver in turn): one A and one AAAA
//! query, at once.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::dns::{upstream, wire};

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
        let (Some(a), Some(aaaa)) = (
            wire::question_for(name, RecordType::A),
            wire::question_for(name, RecordType::AAAA),
        ) else {
            return Err(format!("resolve {name}: not a name DNS can carry"));
        };
        let (a, aaaa) = tokio::join!(
            upstream::forward(&self.upstreams, &a),
            upstream::forward(&self.upstreams, &aaaa)
        );
        let mut ips: Vec<IpAddr> = Vec::new();
        let mut failure = None;
        for answer in [a, aaaa] {
            match answer.as_deref().and_then(wire::addresses) {
                Some((ResponseCode::NoError, found)) => ips.extend(found),
                Some((ResponseCode::NXDomain, _)) => failure = Some("no such name".to_owned()),
                Some((code, _)) => failure = Some(format!("DNS error {code}")),
                None => failure = failure.or(Some("no upstream answered".to_owned())),
            }
        }
        ips.sort_by_key(|ip| ip.is_ipv6());
        match (ips.is_empty(), failure) {
            (false, _) => Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect()),
            (true, Some(why)) => Err(format!("resolve {name}: {why}")),
            (true, None) => Err(format!("resolve {name}: no address")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UdpSocket;

    /// A response to `query` with one A record (name by pointer).
    fn response(query: &[u8], ip: [u8; 4]) -> Vec<u8> {
        let mut out = query.to_vec();
        out[2] |= 0x80;
        out[7] = 1;
        out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        out.extend_from_slice(&ip);
        out
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
}
