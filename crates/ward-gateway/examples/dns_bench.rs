//! The DNS path for `bench/dns.sh`: a gateway (the test harness's
//! certificates and snapshot) whose tenant blocks a list of `LIST_SIZE`
//! domains (`blocked-N.example`, 1,000,000 by default), forwarding to
//! `UPSTREAM`, and an agent's DNS listener on `LISTEN` with its own tunnel
//! to it. Prints `ready` once queries can flow, then serves until killed.
//!
//! ```text
//! UPSTREAM=127.0.0.1:26301 LISTEN=127.0.0.1:26302 cargo run --release -p ward-gateway --example dns_bench
//! ```

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use common::*;
use ward_agent::dns::DnsListener;
use ward_agent::tunnel::{Tunnel, TunnelConfig};
use ward_api::{DnsSettings, InternetSnapshot};
use ward_inet::{InternetAction, InternetPolicyInput, InternetRule, NamedDomainList};
use ward_pki::Identity;

fn env_addr(name: &str) -> SocketAddr {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("set {name}=IP:PORT"))
        .parse()
        .unwrap()
}

#[tokio::main]
async fn main() {
    let upstream = env_addr("UPSTREAM");
    let listen = env_addr("LISTEN");
    let size: usize = std::env::var("LIST_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);

    let started = Instant::now();
    let mut text = String::with_capacity(size * 24);
    for i in 0..size {
        text.push_str(&format!("blocked-{i}.example\n"));
    }
    let list = ward_inet::parse_list(text.as_bytes(), None).list;
    eprintln!("list of {size} domains parsed in {:?}", started.elapsed());

    let pki = Arc::new(Pki::new());
    let dir = tempfile::tempdir().unwrap();
    // Records are kept in memory by the harness's sink: fine for a bench run.
    let server = Server::default();
    let (snapshots, source) = channel_source();
    let mut config = config(&pki, &dir);
    config.dns_upstreams = vec![upstream];
    let gateway = ward_gateway::start(config, source, server.clone()).await.unwrap();
    let mut snapshot = snapshot(1, &pki);
    acme(&mut snapshot).internet = InternetSnapshot {
        enabled: true,
        policy: InternetPolicyInput {
            default_action: InternetAction::Allow,
            rules: vec![InternetRule {
                id: "block-list".into(),
                priority: 10,
                action: InternetAction::Block,
                global_allow: false,
                users: vec![],
                groups: vec![],
                lists: vec!["big".into()],
                inspect: false,
                valid_from: None,
                valid_until: None,
                enabled: true,
            }],
            lists: vec![NamedDomainList {
                id: "big".into(),
                domains: list,
            }],
        },
        dns: DnsSettings {
            block_mode: "nxdomain".into(),
            ..Default::default()
        },
        warn_minutes: 60,
        ..Default::default()
    };
    let started = Instant::now();
    snapshots.send(snapshot).unwrap();
    while gateway.snapshot_version() != Some(1) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    eprintln!("snapshot compiled and applied in {:?}", started.elapsed());

    let agent_dir = tempfile::tempdir().unwrap();
    let (key_pem, csr_pem) = ward_pki::generate_key_and_csr("laptop").unwrap();
    let leaf = pki
        .tenant_ca
        .sign_csr(&csr_pem, &Identity::device(TENANT, "laptop").unwrap(), DAY)
        .unwrap();
    let tunnel_config = TunnelConfig::new(gateway.local_addr().to_string(), agent_dir.path());
    std::fs::write(&tunnel_config.cert_path, &leaf.cert_pem).unwrap();
    std::fs::write(&tunnel_config.key_path, key_pem).unwrap();
    std::fs::write(&tunnel_config.gateway_ca_path, pki.service_ca.cert_pem()).unwrap();
    let tunnel = Tunnel::new(tunnel_config);
    tunnel.connect().await.unwrap();
    let listener = DnsListener::bind(listen).await.unwrap();
    println!("ready");
    listener.serve(tunnel).await;
    drop(gateway);
}
