//! The agent's DNS listener (`ward agent up --dns-listen`) against a real
//! gateway: the agent's own tunnel (TLS with a device certificate from
//! files, HTTP/2), the gateway's DNS filter, and a real DNS server on
//! loopback as the upstream. `dig` asks the listener over UDP and TCP when
//! it is installed (`WARD_TEST_DIG=1` makes a missing `dig` a failure).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;
#[path = "common/zone.rs"]
mod zone;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;
use ward_agent::dns::DnsListener;
use ward_agent::tunnel::{Tunnel, TunnelConfig};
use ward_api::{DnsSettings, InternetSnapshot};
use ward_inet::{InternetAction, InternetPolicyInput, InternetRule, NamedDomainList};
use ward_pki::Identity;
use zone::Zone;

/// The agent's credential files for alice's laptop, and a tunnel config.
fn agent_files(pki: &Pki, dir: &Path, gateway: SocketAddr) -> TunnelConfig {
    let (key_pem, csr_pem) = ward_pki::generate_key_and_csr("laptop").unwrap();
    let leaf = pki
        .tenant_ca
        .sign_csr(&csr_pem, &Identity::device(TENANT, "laptop").unwrap(), DAY)
        .unwrap();
    let mut config = TunnelConfig::new(gateway.to_string(), dir);
    std::fs::write(&config.cert_path, &leaf.cert_pem).unwrap();
    std::fs::write(&config.key_path, key_pem).unwrap();
    std::fs::write(&config.gateway_ca_path, pki.service_ca.cert_pem()).unwrap();
    config.connect_timeout = Duration::from_secs(3);
    config.backoff_min = Duration::from_millis(100);
    config.max_retry_wait = Duration::from_millis(10);
    config
}

fn block_ads() -> InternetSnapshot {
    InternetSnapshot {
        enabled: true,
        policy: InternetPolicyInput {
            default_action: InternetAction::Allow,
            rules: vec![InternetRule {
                id: "block-ads".into(),
                priority: 10,
                action: InternetAction::Block,
                global_allow: false,
                users: vec![],
                groups: vec![],
                lists: vec!["ads".into()],
                inspect: false,
                valid_from: None,
                valid_until: None,
                enabled: true,
            }],
            lists: vec![NamedDomainList {
                id: "ads".into(),
                domains: ward_inet::parse_list(b"ads.test\n*.tracker.test\n", None).list,
            }],
        },
        dns: DnsSettings {
            block_mode: "nxdomain".into(),
            ..Default::default()
        },
        warn_minutes: 60,
        ..Default::default()
    }
}

/// A gateway forwarding to `zone`, and an agent's DNS listener on it.
async fn start(zone: &Zone) -> (Harness, SocketAddr, tempfile::TempDir) {
    let pki = Arc::new(Pki::new());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = Server::default();
    let (snapshots, source) = channel_source();
    let mut config = config(&pki, &dir);
    config.dns_upstreams = vec![zone.addr];
    let gateway = ward_gateway::start(config, source, server.clone()).await.unwrap();
    let h = Harness {
        pki: pki.clone(),
        dir,
        server,
        snapshots,
        gateway: Some(gateway),
        echo: echo_server().await,
    };
    let mut s = snapshot(1, &pki);
    acme(&mut s).internet = block_ads();
    h.push(s).await;
    let agent_dir = tempfile::tempdir().unwrap();
    let tunnel = Tunnel::new(agent_files(&pki, agent_dir.path(), h.addr()));
    let listener = DnsListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(listener.serve(tunnel));
    (h, addr, agent_dir)
}

async fn udp_ask(addr: SocketAddr, id: u16, name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(id).set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    udp_raw(addr, &m.to_vec().unwrap()).await.unwrap()
}

async fn udp_raw(addr: SocketAddr, bytes: &[u8]) -> Option<Message> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(bytes, addr).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
        .await
        .ok()?
        .unwrap();
    Some(Message::from_vec(&buf[..n]).unwrap())
}

#[tokio::test]
async fn the_agent_listener_answers_through_the_gateway() {
    let zone = Zone::start().await;
    let (h, addr, _dir) = start(&zone).await;

    let answer = udp_ask(addr, 0x7001, "site-a.test.", RecordType::A).await;
    assert_eq!(answer.id(), 0x7001);
    assert_eq!(answer.answers()[0].data().to_string(), "127.0.0.1");
    let answer = udp_ask(addr, 0x7002, "x.tracker.test.", RecordType::A).await;
    assert_eq!(answer.response_code(), ResponseCode::NXDomain);
    // Too long for UDP: truncated, so a client asks again over TCP.
    let answer = udp_ask(addr, 0x7003, "big.test.", RecordType::TXT).await;
    assert!(answer.truncated());
    // Garbage with an id: FORMERR from the agent, never sent on.
    let before = zone.queries();
    let answer = udp_raw(addr, &[0x12, 0x34, 0x01]).await.unwrap();
    assert_eq!((answer.id(), answer.response_code()), (0x1234, ResponseCode::FormErr));
    assert_eq!(zone.queries(), before);
    let r = h
        .server
        .record("the agent's query recorded", |r| {
            r.kind == "dns" && r.dest_host == "x.tracker.test"
        })
        .await;
    assert_eq!((r.action.as_str(), r.device_id.as_str()), ("block", "laptop"));
}

#[tokio::test]
async fn the_agent_answers_servfail_when_the_gateway_is_unreachable() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let nobody: SocketAddr = format!("127.0.0.1:{}", closed_port().await).parse().unwrap();
    let tunnel = Tunnel::new(agent_files(&pki, dir.path(), nobody));
    let listener = DnsListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(listener.serve(tunnel));
    let started = Instant::now();
    let answer = udp_ask(addr, 0x0bad, "site-a.test.", RecordType::A).await;
    assert_eq!((answer.id(), answer.response_code()), (0x0bad, ResponseCode::ServFail));
    assert_eq!(answer.queries()[0].name(), &Name::from_ascii("site-a.test.").unwrap());
    assert!(started.elapsed() < Duration::from_secs(8));
}

fn have_dig() -> bool {
    let found = Command::new("dig").arg("-v").output().is_ok();
    if !found {
        assert!(
            std::env::var("WARD_TEST_DIG").as_deref() != Ok("1"),
            "WARD_TEST_DIG=1 but dig is not installed"
        );
        eprintln!("dig is not installed: skipping (WARD_TEST_DIG=1 makes this a failure)");
    }
    found
}

/// `dig @127.0.0.1 -p PORT ARGS...`: its output.
async fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let mut cmd = Command::new("dig");
    cmd.arg(format!("@{}", addr.ip()))
        .arg("-p")
        .arg(addr.port().to_string())
        .args(["+time=5", "+tries=1"])
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn dig_through_the_agent() {
    if !have_dig() {
        return;
    }
    let zone = Zone::start().await;
    let (h, addr, _dir) = start(&zone).await;

    let out = dig(addr, &["+short", "site-a.test"]).await;
    assert_eq!(out.trim(), "127.0.0.1", "{out}");
    let out = dig(addr, &["+short", "site-a.test", "AAAA"]).await;
    assert_eq!(out.trim(), "::1", "{out}");
    let out = dig(addr, &["ads.test"]).await;
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    let out = dig(addr, &["+tcp", "+short", "www.site-b.test"]).await;
    assert_eq!(out.trim(), "127.0.0.2", "{out}");
    // dig follows the truncated UDP answer over TCP.
    let out = dig(addr, &["big.test", "TXT"]).await;
    assert!(out.contains("status: NOERROR") && out.contains("ANSWER: 40"), "{out}");
    h.server
        .record("dig's query recorded", |r| {
            r.kind == "dns" && r.dest_host == "ads.test" && r.answer.as_deref() == Some("NXDOMAIN")
        })
        .await;
}
