//! The DNS filter end to end over 127.0.0.1: queries posted on a real
//! tunnel (TLS, HTTP/2), decided with the tenant's internet rules, and
//! forwarded to a real DNS server on loopback (tests/common/zone.rs).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;
#[path = "common/zone.rs"]
mod zone;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use h2::client::SendRequest;
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use http::{Method, Request};
use ward_api::{AccessRecord, DnsSettings, GatewaySnapshot, InternetSnapshot, PATH_DNS_QUERY};
use ward_inet::{InternetAction, InternetPolicyInput, InternetRule, NamedDomainList};
use zone::Zone;

/// A gateway forwarding to `upstreams`, enforcing `snapshot`.
async fn gateway(upstreams: Vec<SocketAddr>, snapshot: impl FnOnce(&Pki) -> GatewaySnapshot) -> Harness {
    let pki = Arc::new(Pki::new());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = Server::default();
    let (snapshots, source) = channel_source();
    let mut config = config(&pki, &dir);
    config.dns_upstreams = upstreams;
    let gateway = ward_gateway::start(config, source, server.clone()).await.unwrap();
    let h = Harness {
        pki: pki.clone(),
        dir,
        server,
        snapshots,
        gateway: Some(gateway),
        echo: echo_server().await,
    };
    h.push(snapshot(&pki)).await;
    h
}

/// `ads` (`ads.test`, `*.tracker.test`) blocked for everyone, `watch`
/// (`www.site-b.test`) monitored, `warned` (`warn.test`) with a warning.
fn internet(dns: DnsSettings) -> InternetSnapshot {
    let list = |id: &str, text: &[u8]| NamedDomainList {
        id: id.into(),
        domains: ward_inet::parse_list(text, None).list,
    };
    let rule = |id: &str, priority, action, list: &str| InternetRule {
        id: id.into(),
        priority,
        action,
        global_allow: false,
        users: vec![],
        groups: vec![],
        lists: vec![list.into()],
        inspect: false,
        valid_from: None,
        valid_until: None,
        enabled: true,
    };
    InternetSnapshot {
        enabled: true,
        policy: InternetPolicyInput {
            default_action: InternetAction::Allow,
            rules: vec![
                rule("block-ads", 10, InternetAction::Block, "ads"),
                rule("warn-some", 20, InternetAction::Warn, "warned"),
                rule("watch-b", 30, InternetAction::Monitor, "watch"),
            ],
            lists: vec![
                list("ads", b"ads.test\n*.tracker.test\n"),
                list("warned", b"warn.test\n"),
                list("watch", b"www.site-b.test\n"),
            ],
        },
        dns,
        warn_minutes: 60,
        ..Default::default()
    }
}

fn with_internet(dns: DnsSettings) -> impl FnOnce(&Pki) -> GatewaySnapshot {
    move |pki| {
        let mut s = snapshot(1, pki);
        acme(&mut s).internet = internet(dns);
        s
    }
}

fn nxdomain() -> DnsSettings {
    DnsSettings {
        block_mode: "nxdomain".into(),
        ..Default::default()
    }
}

fn encode(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id).set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

/// Posts `body` to `/dns-query`: the HTTP status and the answer's bytes.
async fn post(tunnel: &SendRequest<Bytes>, body: Vec<u8>) -> (u16, Vec<u8>) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("https://gateway{PATH_DNS_QUERY}"))
        .header("content-type", "application/dns-message")
        .body(())
        .unwrap();
    let mut ready = tunnel.clone().ready().await.unwrap();
    let (response, mut stream) = ready.send_request(request, false).unwrap();
    send_all(&mut stream, Bytes::from(body), true).await.unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .unwrap()
        .unwrap();
    let status = response.status().as_u16();
    let mut body = response.into_body();
    (status, read_body(&mut body, None).await.unwrap())
}

/// A query answered `200`, decoded.
async fn ask(tunnel: &SendRequest<Bytes>, id: u16, name: &str, qtype: RecordType) -> Message {
    let (status, body) = post(tunnel, encode(id, name, qtype)).await;
    assert_eq!(status, 200, "{name}");
    let answer = Message::from_vec(&body).unwrap();
    assert_eq!(answer.id(), id, "the answer carries the client's id");
    assert_eq!(answer.message_type(), MessageType::Response);
    answer
}

fn addresses(m: &Message) -> Vec<String> {
    m.answers().iter().map(|r| r.data().to_string()).collect()
}

async fn dns_record(h: &Harness, name: &str, qtype: &str) -> AccessRecord {
    h.server
        .record(&format!("dns record of {name} {qtype}"), |r| {
            r.kind == "dns" && r.dest_host == name && r.qtype.as_deref() == Some(qtype)
        })
        .await
}

#[tokio::test]
async fn allowed_names_are_forwarded_and_recorded() {
    let zone = Zone::start().await;
    let h = gateway(vec![zone.addr], with_internet(nxdomain())).await;
    let tunnel = h.laptop().await;

    let answer = ask(&tunnel, 0x4242, "Site-A.test.", RecordType::A).await;
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    assert_eq!(addresses(&answer), ["127.0.0.1"]);
    let answer = ask(&tunnel, 7, "site-a.test.", RecordType::AAAA).await;
    assert_eq!(addresses(&answer), ["::1"]);
    let answer = ask(&tunnel, 8, "nowhere.test.", RecordType::A).await;
    assert_eq!(answer.response_code(), ResponseCode::NXDomain);

    let r = dns_record(&h, "site-a.test", "A").await;
    assert_eq!(
        (r.action.as_str(), r.reason.as_str(), r.protocol.as_str(), r.port),
        ("allow", "no_rule_matched", "dns", 53)
    );
    assert_eq!((r.user_id.as_str(), r.device_id.as_str()), ("alice", "laptop"));
    assert_eq!((r.tenant_id.as_str(), r.source.as_str()), (TENANT, "127.0.0.1"));
    assert_eq!(r.answer.as_deref(), Some("A 127.0.0.1"));
    assert_eq!(r.end, "closed");
    let r = dns_record(&h, "nowhere.test", "A").await;
    assert_eq!(r.answer.as_deref(), Some("NXDOMAIN"));

    // Monitored: forwarded, and marked so.
    let answer = ask(&tunnel, 9, "www.site-b.test.", RecordType::A).await;
    assert_eq!(addresses(&answer), ["127.0.0.2"]);
    let r = dns_record(&h, "www.site-b.test", "A").await;
    assert_eq!((r.action.as_str(), r.rule_id.as_deref()), ("monitor", Some("watch-b")));
}

#[tokio::test]
async fn blocked_names_get_nxdomain_and_never_reach_the_upstream() {
    let zone = Zone::start().await;
    let h = gateway(vec![zone.addr], with_internet(nxdomain())).await;
    let tunnel = h.laptop().await;

    for name in [
        "ads.test.",
        "ADS.test.",
        "x.tracker.test.",
        "deep.x.tracker.test.",
        "warn.test.",
    ] {
        let answer = ask(&tunnel, 1, name, RecordType::A).await;
        assert_eq!(answer.response_code(), ResponseCode::NXDomain, "{name}");
        assert!(answer.answers().is_empty());
    }
    assert_eq!(zone.queries(), 0, "a blocked name is not forwarded");
    // A wildcard is strictly below: the name itself is allowed.
    let answer = ask(&tunnel, 2, "tracker.test.", RecordType::A).await;
    assert_eq!(addresses(&answer), ["127.0.0.6"]);
    assert_eq!(zone.queries(), 1);

    let r = dns_record(&h, "x.tracker.test", "A").await;
    assert_eq!(
        (r.action.as_str(), r.rule_id.as_deref(), r.reason.as_str()),
        ("block", Some("block-ads"), "rule_matched")
    );
    assert_eq!((r.answer.as_deref(), r.end.as_str()), (Some("NXDOMAIN"), "denied"));
    let r = dns_record(&h, "warn.test", "A").await;
    assert_eq!((r.action.as_str(), r.rule_id.as_deref()), ("warn", Some("warn-some")));
    assert_eq!(r.answer.as_deref(), Some("NXDOMAIN"));

    // Once alice clicks the warning through (here: a warned CONNECT and its
    // token, as the agent's page does), the name resolves for her.
    let (response, _) = connect(&tunnel, "warn.test:443").await.unwrap();
    let token = header(&response, "ward-proceed").unwrap().to_owned();
    let request = Request::builder()
        .method(Method::POST)
        .uri("https://gateway/.ward/proceed")
        .header("ward-proceed", token)
        .body(())
        .unwrap();
    let mut ready = tunnel.clone().ready().await.unwrap();
    let (response, _) = ready.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 204);
    let before = zone.queries();
    let answer = ask(&tunnel, 3, "warn.test.", RecordType::A).await;
    assert_eq!(
        answer.response_code(),
        ResponseCode::NXDomain,
        "the zone does not know it"
    );
    assert_eq!(zone.queries(), before + 1, "forwarded now");
    h.server
        .record("the granted warn.test", |r| {
            r.kind == "dns" && r.dest_host == "warn.test" && r.action == "allow"
        })
        .await;
}

#[tokio::test]
async fn blocked_names_get_the_block_address_in_address_mode() {
    let zone = Zone::start().await;
    let settings = DnsSettings {
        block_mode: "address".into(),
        block_ipv4: Some("192.0.2.7".into()),
        block_ipv6: Some("2001:db8::7".into()),
    };
    let h = gateway(vec![zone.addr], with_internet(settings)).await;
    let tunnel = h.laptop().await;

    let answer = ask(&tunnel, 3, "ads.test.", RecordType::A).await;
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    assert_eq!(addresses(&answer), ["192.0.2.7"]);
    assert_eq!(answer.answers()[0].ttl(), 60);
    assert!(matches!(answer.answers()[0].data(), RData::A(_)));
    let answer = ask(&tunnel, 4, "x.tracker.test.", RecordType::AAAA).await;
    assert_eq!(addresses(&answer), ["2001:db8::7"]);
    let answer = ask(&tunnel, 5, "ads.test.", RecordType::MX).await;
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    assert!(answer.answers().is_empty());
    assert_eq!(zone.queries(), 0);
    let r = dns_record(&h, "ads.test", "A").await;
    assert_eq!((r.action.as_str(), r.answer.as_deref()), ("block", Some("A 192.0.2.7")));
}

#[tokio::test]
async fn internet_off_or_device_refused_gets_refused() {
    let zone = Zone::start().await;
    // The harness's snapshot has internet access control off.
    let h = gateway(vec![zone.addr], |pki| snapshot(1, pki)).await;
    let tunnel = h.laptop().await;
    let answer = ask(&tunnel, 11, "site-a.test.", RecordType::A).await;
    assert_eq!(answer.response_code(), ResponseCode::Refused);
    let r = dns_record(&h, "site-a.test", "A").await;
    assert_eq!((r.action.as_str(), r.reason.as_str()), ("block", "internet_off"));

    // On, but the device is revoked.
    let mut s = snapshot(2, &h.pki);
    acme(&mut s).internet = internet(nxdomain());
    acme(&mut s).devices[0].revoked = true;
    h.push(s).await;
    let answer = ask(&tunnel, 12, "www.site-b.test.", RecordType::A).await;
    assert_eq!(answer.response_code(), ResponseCode::Refused);
    let r = dns_record(&h, "www.site-b.test", "A").await;
    assert_eq!(r.reason, "device_revoked");
    assert_eq!(zone.queries(), 0);
}

#[tokio::test]
async fn no_upstream_answering_gives_servfail_and_the_next_one_is_tried() {
    // A UDP port nobody listens on.
    let dead = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let h = gateway(vec![dead], with_internet(nxdomain())).await;
    let tunnel = h.laptop().await;
    let started = Instant::now();
    let answer = ask(&tunnel, 21, "site-a.test.", RecordType::A).await;
    assert_eq!(answer.response_code(), ResponseCode::ServFail);
    assert!(started.elapsed() < Duration::from_secs(5));
    let r = dns_record(&h, "site-a.test", "A").await;
    assert_eq!((r.answer.as_deref(), r.end.as_str()), (Some("SERVFAIL"), "dial_failed"));

    // None configured.
    let h = gateway(vec![], with_internet(nxdomain())).await;
    let answer = ask(&h.laptop().await, 22, "site-a.test.", RecordType::A).await;
    assert_eq!(answer.response_code(), ResponseCode::ServFail);

    // The first is down, the second answers.
    let zone = Zone::start().await;
    let h = gateway(vec![dead, zone.addr], with_internet(nxdomain())).await;
    let answer = ask(&h.laptop().await, 23, "site-a.test.", RecordType::A).await;
    assert_eq!(addresses(&answer), ["127.0.0.1"]);
}

#[tokio::test]
async fn truncated_answers_are_fetched_over_tcp_and_spoofs_are_ignored() {
    let zone = Zone::start().await;
    let h = gateway(vec![zone.addr], with_internet(nxdomain())).await;
    let tunnel = h.laptop().await;
    let answer = ask(&tunnel, 31, "big.test.", RecordType::TXT).await;
    assert_eq!(answer.answers().len(), 40);
    assert!(!answer.truncated());
    assert_eq!(zone.tcp_queries.load(std::sync::atomic::Ordering::SeqCst), 1);

    // The zone sends a forged answer and one to another question first.
    let answer = ask(&tunnel, 32, "spoof.test.", RecordType::A).await;
    assert_eq!(addresses(&answer), ["127.0.0.5"]);
    assert_eq!(answer.queries()[0].name(), &Name::from_ascii("spoof.test.").unwrap());
}

#[tokio::test]
async fn malformed_queries_are_refused_and_the_tunnel_goes_on() {
    let zone = Zone::start().await;
    let h = gateway(vec![zone.addr], with_internet(nxdomain())).await;
    let tunnel = h.laptop().await;

    // No id at all: HTTP 400.
    assert_eq!(post(&tunnel, vec![]).await.0, 400);
    assert_eq!(post(&tunnel, vec![7]).await.0, 400);
    // Longer than any DNS message.
    assert_eq!(post(&tunnel, vec![0; 70_000]).await.0, 400);

    let formerr = |body: Vec<u8>| {
        let tunnel = tunnel.clone();
        async move {
            let (status, answer) = post(&tunnel, body).await;
            assert_eq!(status, 200);
            Message::from_vec(&answer).unwrap()
        }
    };
    // A header cut short.
    let m = formerr(vec![0xab, 0xcd, 1]).await;
    assert_eq!((m.id(), m.response_code()), (0xabcd, ResponseCode::FormErr));
    // A question cut short.
    let full = encode(0x0102, "site-a.test.", RecordType::A);
    let m = formerr(full[..full.len() - 5].to_vec()).await;
    assert_eq!((m.id(), m.response_code()), (0x0102, ResponseCode::FormErr));
    // Two questions.
    let mut two = Message::new();
    two.set_id(5);
    two.add_query(Query::query(Name::from_ascii("a.test.").unwrap(), RecordType::A));
    two.add_query(Query::query(Name::from_ascii("b.test.").unwrap(), RecordType::A));
    let m = formerr(two.to_vec().unwrap()).await;
    assert_eq!(m.response_code(), ResponseCode::FormErr);
    // A NOTIFY (opcode 4).
    let mut notify = full.clone();
    notify[2] = 4 << 3;
    let m = formerr(notify).await;
    assert_eq!(m.response_code(), ResponseCode::NotImp);
    // Garbage after a valid header.
    let mut garbage = full[..12].to_vec();
    garbage.extend_from_slice(&[0xff; 40]);
    let m = formerr(garbage).await;
    assert_eq!(m.response_code(), ResponseCode::FormErr);

    assert_eq!(zone.queries(), 0);
    // The same tunnel still works, and so do CONNECT streams on it.
    let answer = ask(&tunnel, 41, "site-a.test.", RecordType::A).await;
    assert_eq!(addresses(&answer), ["127.0.0.1"]);
    let (response, _up) = connect(&tunnel, &h.echo_authority()).await.unwrap();
    assert_eq!(response.status(), 200);
    let bad = h
        .server
        .record("a record of a malformed query", |r| {
            r.kind == "dns" && r.reason == "bad_request" && r.answer.as_deref() == Some("NOTIMP")
        })
        .await;
    assert_eq!(bad.action, "block");
}

#[tokio::test]
async fn many_queries_at_once_on_one_tunnel() {
    let zone = Zone::start().await;
    let h = gateway(vec![zone.addr], with_internet(nxdomain())).await;
    let tunnel = h.laptop().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100u16 {
        let tunnel = tunnel.clone();
        tasks.spawn(async move {
            let name = if i % 2 == 0 { "site-a.test." } else { "ads.test." };
            let answer = ask(&tunnel, i, name, RecordType::A).await;
            (i, answer.response_code())
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (i, rcode) = done.unwrap();
        let expected = if i % 2 == 0 {
            ResponseCode::NoError
        } else {
            ResponseCode::NXDomain
        };
        assert_eq!(rcode, expected);
    }
    h.server.wait_stored(100).await;
}
