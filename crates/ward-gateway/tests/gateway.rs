//! The gateway end to end over 127.0.0.1: real TLS with certificates from
//! ward-pki, real HTTP/2, real TCP destinations.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ward_api::{HEADER_ERROR, HEADER_REASON, HEADER_RULE};

#[tokio::test]
async fn allowed_connect_relays_a_mebibyte_both_ways_and_records_it() {
    let h = Harness::start().await;
    let tunnel = h.laptop().await;
    let (response, mut up) = connect(&tunnel, &h.echo_authority()).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut down = response.into_body();

    let data = pattern(MIB);
    let reader = tokio::spawn(async move { read_body(&mut down, None).await });
    send_all(&mut up, data.clone(), true).await.unwrap();
    let echoed = reader.await.unwrap().unwrap();
    assert_eq!(echoed.len(), MIB);
    assert!(echoed == data, "the echo is what was sent");

    let record = h.server.record("the allowed record", |r| r.action == "allow").await;
    assert!(record.id.starts_with("acr_"), "{}", record.id);
    assert_eq!(record.tenant_id, TENANT);
    assert_eq!(record.user_id, "alice");
    assert_eq!(record.device_id, "laptop");
    assert_eq!(record.gateway_id, "gw-1");
    assert_eq!(record.source, "127.0.0.1");
    assert_eq!(record.dest_host, "127.0.0.1");
    assert_eq!(record.dest_addr.as_deref(), Some("127.0.0.1"));
    assert_eq!(record.port, h.echo.port());
    assert_eq!(record.protocol, "tcp");
    assert_eq!(record.rule_id.as_deref(), Some("allow-eng"));
    assert_eq!(record.reason, "rule_matched");
    assert_eq!(record.bytes_up, MIB as u64);
    assert_eq!(record.bytes_down, MIB as u64);
    assert_eq!(record.end, "closed");
    assert_eq!(h.gateway().live_connections(), 0);
}

/// The agent sends what its client sent first right after the CONNECT,
/// before the answer: it must reach an allowed destination, first and once.
#[tokio::test]
async fn data_sent_before_the_answer_is_relayed_after_an_allow() {
    let h = Harness::start().await;
    let tunnel = h.laptop().await;
    let (response, mut up) = connect_early(&tunnel, &h.echo_authority(), Bytes::from_static(b"early "), false)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut down = response.into_body();
    send_all(&mut up, Bytes::from_static(b"and later"), true).await.unwrap();
    assert_eq!(read_body(&mut down, None).await.unwrap(), b"early and later");
    let record = h.server.record("the allowed record", |r| r.action == "allow").await;
    assert_eq!((record.bytes_up, record.bytes_down), (15, 15));
}

/// ...and must never reach a destination the policy denies.
#[tokio::test]
async fn data_sent_before_the_answer_never_reaches_a_denied_destination() {
    let h = Harness::start().await;
    // A real listener, and a device whose user no rule allows.
    let tunnel = h.tunnel_as(&h.pki.device("phone")).await.unwrap();
    let denied = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = format!("127.0.0.1:{}", denied.local_addr().unwrap().port());
    let (response, _up) = connect_early(&tunnel, &authority, pattern(10_000), true).await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(header(&response, HEADER_REASON), Some("no_rule_matched"));
    let accepted = tokio::time::timeout(Duration::from_millis(300), denied.accept()).await;
    assert!(accepted.is_err(), "the gateway connected to a denied destination");
    let record = h.server.record("the denied record", |r| r.action == "deny").await;
    assert_eq!(record.bytes_up, 0);
    // The tunnel carries on.
    let (response, _) = connect(&tunnel, &authority).await.unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn a_blocked_destination_gets_403_naming_the_rule_and_is_recorded_at_once() {
    let h = Harness::start().await;
    let tunnel = h.laptop().await;
    let (response, _stream) = connect(&tunnel, "SECRET.corp.example:443").await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(header(&response, HEADER_RULE), Some("block-secret"));
    assert_eq!(header(&response, HEADER_REASON), Some("rule_matched"));

    // The tunnel is still open: the record did not wait for it.
    let record = h.server.record("the denied record", |r| r.action == "deny").await;
    assert_eq!(record.dest_host, "secret.corp.example");
    assert_eq!(record.port, 443);
    assert_eq!(record.rule_id.as_deref(), Some("block-secret"));
    assert_eq!(record.reason, "rule_matched");
    assert_eq!(record.end, "denied");
    assert_eq!(record.dest_addr, None, "a denied name is not resolved");
    assert_eq!(record.user_id, "alice");
    drop(tunnel);
}

#[tokio::test]
async fn an_unknown_application_gets_403_no_application() {
    let h = Harness::start().await;
    let tunnel = h.laptop().await;
    let (response, _) = connect(&tunnel, "nothing.example:80").await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(header(&response, HEADER_REASON), Some("no_application"));
    assert_eq!(header(&response, HEADER_RULE), None, "a default deny names no rule");
    let record = h
        .server
        .record("the denied record", |r| r.dest_host == "nothing.example")
        .await;
    assert_eq!(
        (record.action.as_str(), record.reason.as_str()),
        ("deny", "no_application")
    );
    assert_eq!(record.rule_id, None);

    // A user the allow rule does not name: the application exists, no rule matched.
    let phone = h.tunnel_as(&h.pki.device("phone")).await.unwrap();
    let (response, _) = connect(&phone, &h.echo_authority()).await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(header(&response, HEADER_REASON), Some("no_rule_matched"));
}

#[tokio::test]
async fn a_destination_that_refuses_gets_502_and_dial_failed() {
    let h = Harness::start().await;
    let port = closed_port().await;
    let tunnel = h.laptop().await;
    let (response, _) = connect(&tunnel, &format!("127.0.0.1:{port}")).await.unwrap();
    assert_eq!(response.status(), 502);
    assert!(header(&response, HEADER_ERROR).is_some_and(|e| e.contains("connect")));
    let record = h.server.record("the dial record", |r| r.port == port).await;
    assert_eq!(record.action, "allow");
    assert_eq!(record.end, "dial_failed");
    assert_eq!(record.dest_addr.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn bad_requests_get_400() {
    let h = Harness::start().await;
    let tunnel = h.laptop().await;
    for authority in ["notaport", "127.0.0.1:0", "localhost:99999"] {
        let (response, _) = connect(&tunnel, authority).await.unwrap();
        assert_eq!(response.status(), 400, "{authority}");
        assert_eq!(header(&response, HEADER_REASON), Some("bad_request"));
    }
    // An empty host cannot even be written as a URI; send it as raw parts.
    let mut parts = http::uri::Parts::default();
    parts.authority = Some(http::uri::Authority::from_static(":0"));
    {
        let uri = http::Uri::from_parts(parts).unwrap();
        let request = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(uri)
            .body(())
            .unwrap();
        let mut ready = tunnel.clone().ready().await.unwrap();
        let (response, _) = ready.send_request(request, false).unwrap();
        assert_eq!(response.await.unwrap().status(), 400);
    }
    // Not CONNECT.
    let request = http::Request::builder()
        .method(http::Method::GET)
        .uri("https://127.0.0.1/")
        .body(())
        .unwrap();
    let mut ready = tunnel.clone().ready().await.unwrap();
    let (response, _) = ready.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 400);

    let stored = h.server.wait_stored(5).await;
    assert!(stored
        .iter()
        .all(|r| r.reason == "bad_request" && r.end == "denied" && r.action == "deny"));
    // The tunnel still works.
    let (response, _) = connect(&tunnel, &h.echo_authority()).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_live_connection_is_cut_when_its_device_certificate_expires() {
    let h = Harness::start().await;
    let (key_pem, csr_pem) = ward_pki::generate_key_and_csr("laptop").unwrap();
    let identity = ward_pki::Identity::device(TENANT, "laptop").unwrap();
    let leaf = h
        .pki
        .tenant_ca
        .sign_csr(&csr_pem, &identity, Duration::from_secs(3))
        .unwrap();
    let short_lived = DeviceCert {
        cert: leaf.cert_der().unwrap(),
        key_pem,
    };
    let tunnel = h.tunnel_as(&short_lived).await.unwrap();
    let (response, mut up) = connect(&tunnel, &h.echo_authority()).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut down = response.into_body();
    send_all(&mut up, Bytes::from_static(b"ping"), false).await.unwrap();
    assert_eq!(read_body(&mut down, Some(4)).await.unwrap(), b"ping");

    let record = h
        .server
        .record("the cut connection", |r| r.end == "certificate_expired")
        .await;
    assert_eq!(record.action, "allow");
    assert_eq!(h.gateway().live_connections(), 0);
    // The tunnel was told to go away: nothing new is relayed on it.
    let again = connect(&tunnel, &h.echo_authority()).await;
    assert!(again.map_or(true, |(r, _)| r.status() != 200));
}

/// Opens a relayed connection and proves bytes flow; returns its halves.
async fn live_echo(h: &Harness) -> (h2::SendStream<Bytes>, h2::RecvStream) {
    let tunnel = h.laptop().await;
    let (response, mut up) = connect(&tunnel, &h.echo_authority()).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut down = response.into_body();
    send_all(&mut up, Bytes::from_static(b"ping"), false).await.unwrap();
    assert_eq!(read_body(&mut down, Some(4)).await.unwrap(), b"ping");
    eventually("registered", Duration::from_secs(5), || {
        (h.gateway().live_connections() == 1).then_some(())
    })
    .await;
    (up, down)
}

/// Keeps sending on a live connection until it is cut; returns how long it took.
async fn time_until_cut(
    mut up: h2::SendStream<Bytes>,
    mut down: h2::RecvStream,
    change: impl std::future::Future,
) -> Duration {
    let reader = tokio::spawn(async move {
        // Ends (None or an error) when the gateway resets the stream.
        while let Some(Ok(chunk)) = down.data().await {
            let _ = down.flow_control().release_capacity(chunk.len());
        }
    });
    let writer = tokio::spawn(async move {
        while send_all(&mut up, Bytes::from_static(b"more"), false).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let started = Instant::now();
    change.await;
    tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap();
    let cut_after = started.elapsed();
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    cut_after
}

#[tokio::test]
async fn revoking_the_device_cuts_its_live_connection_within_two_seconds() {
    let h = Harness::start().await;
    let (up, down) = live_echo(&h).await;
    let mut next = snapshot(2, &h.pki);
    acme(&mut next).devices[0].revoked = true;
    let cut_after = time_until_cut(up, down, h.push(next)).await;
    assert!(cut_after < Duration::from_secs(2), "cut after {cut_after:?}");

    let record = h.server.record("the cut record", |r| r.action == "allow").await;
    assert_eq!(record.end, "policy_changed");
    assert!(record.bytes_up >= 4 && record.bytes_down >= 4);
    assert_eq!(h.gateway().live_connections(), 0);

    // New connections are refused with the reason.
    let tunnel = h.laptop().await;
    let (response, _) = connect(&tunnel, &h.echo_authority()).await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(header(&response, HEADER_REASON), Some("device_revoked"));
}

#[tokio::test]
async fn disabling_the_user_cuts_the_live_connection_within_two_seconds() {
    let h = Harness::start().await;
    let (up, down) = live_echo(&h).await;
    let mut next = snapshot(2, &h.pki);
    acme(&mut next).users[0].disabled = true;
    let cut_after = time_until_cut(up, down, h.push(next)).await;
    assert!(cut_after < Duration::from_secs(2), "cut after {cut_after:?}");
    let record = h.server.record("the cut record", |r| r.action == "allow").await;
    assert_eq!(record.end, "policy_changed");

    let tunnel = h.laptop().await;
    let (response, _) = connect(&tunnel, &h.echo_authority()).await.unwrap();
    assert_eq!(header(&response, HEADER_REASON), Some("user_disabled"));
}

#[tokio::test]
async fn signing_the_device_out_cuts_its_live_connection_and_refuses_new_ones() {
    let h = Harness::start().await;
    let mut first = snapshot(2, &h.pki);
    acme(&mut first).devices[0].session_expires_ms = Some(now_ms() + 3_600_000);
    h.push(first).await;
    let (up, down) = live_echo(&h).await;
    let mut next = snapshot(3, &h.pki);
    acme(&mut next).devices[0].session_expires_ms = Some(0);
    let cut_after = time_until_cut(up, down, h.push(next)).await;
    assert!(cut_after < Duration::from_secs(2), "cut after {cut_after:?}");
    let record = h.server.record("the cut record", |r| r.action == "allow").await;
    assert_eq!(record.end, "policy_changed");

    let tunnel = h.laptop().await;
    let (response, _) = connect(&tunnel, &h.echo_authority()).await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(header(&response, HEADER_REASON), Some("device_signed_out"));
    let refused = h
        .server
        .record("the refusal", |r| r.reason == "device_signed_out")
        .await;
    assert_eq!(refused.action, "deny");
}

#[tokio::test]
async fn a_device_session_that_expires_cuts_the_connection_without_a_new_snapshot() {
    let h = Harness::start().await;
    let mut next = snapshot(2, &h.pki);
    acme(&mut next).devices[0].session_expires_ms = Some(now_ms() + 1_500);
    h.push(next).await;
    let (up, down) = live_echo(&h).await;
    let cut_after = time_until_cut(up, down, async {}).await;
    assert!(cut_after < Duration::from_secs(3), "cut after {cut_after:?}");
    let record = h.server.record("the cut record", |r| r.action == "allow").await;
    assert_eq!(record.end, "policy_changed");
    let tunnel = h.laptop().await;
    let (response, _) = connect(&tunnel, &h.echo_authority()).await.unwrap();
    assert_eq!(header(&response, HEADER_REASON), Some("device_signed_out"));
}

#[tokio::test]
async fn a_rule_whose_validity_ends_cuts_the_connection_without_a_new_snapshot() {
    let h = Harness::start().await;
    let mut next = snapshot(2, &h.pki);
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 1_500;
    acme(&mut next).policy.rules[1].valid_until = Some(until);
    h.push(next).await;
    let (up, down) = live_echo(&h).await;
    let cut_after = time_until_cut(up, down, async {}).await;
    assert!(cut_after < Duration::from_secs(3), "cut after {cut_after:?}");
    let record = h.server.record("the cut record", |r| r.action == "allow").await;
    assert_eq!(record.end, "policy_changed");
}

#[tokio::test]
async fn a_suspended_tenant_connects_nothing() {
    let h = Harness::start().await;
    let mut next = snapshot(2, &h.pki);
    acme(&mut next).active = false;
    h.push(next).await;
    let tunnel = h.laptop().await;
    let (response, _) = connect(&tunnel, &h.echo_authority()).await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(header(&response, HEADER_REASON), Some("tenant_suspended"));
}

#[tokio::test]
async fn devices_outside_the_policy_are_refused_at_the_handshake() {
    let h = Harness::start().await;
    let addr = h.addr();

    // A CA the snapshot does not name.
    let stranger_ca = ward_pki::CertificateAuthority::generate("Ward tenant stranger").unwrap();
    let stranger = Pki::device_from(&stranger_ca, TENANT, "laptop");
    assert!(refused(addr, h.pki.client_config(&stranger)).await, "unknown CA");

    // Tenant acme's CA naming a device of tenant globex.
    let forged = Pki::device_from(&h.pki.tenant_ca, OTHER_TENANT, "intruder");
    assert!(
        refused(addr, h.pki.client_config(&forged)).await,
        "cross-tenant certificate"
    );

    // No certificate at all.
    assert!(
        refused(addr, h.pki.anonymous_client_config()).await,
        "no client certificate"
    );

    // Meanwhile the real device still gets in.
    assert!(
        !refused(addr, h.pki.client_config(&h.pki.device("laptop"))).await,
        "the real device still gets in"
    );
}

#[tokio::test]
async fn while_a_tenant_ca_is_replaced_devices_of_both_cas_connect() {
    let h = Harness::start().await;
    let new_ca = ward_pki::CertificateAuthority::generate("Ward tenant acme 2").unwrap();
    let renewed = Pki::device_from(&new_ca, TENANT, "laptop");
    assert!(refused(h.addr(), h.pki.client_config(&renewed)).await);

    let mut next = snapshot(2, &h.pki);
    acme(&mut next).ca_pem = format!("{}{}", h.pki.tenant_ca.cert_pem(), new_ca.cert_pem());
    h.push(next).await;
    assert!(!refused(h.addr(), h.pki.client_config(&renewed)).await, "new CA");
    assert!(
        !refused(h.addr(), h.pki.client_config(&h.pki.device("laptop"))).await,
        "old CA"
    );
}

#[tokio::test]
async fn before_any_snapshot_every_agent_is_refused() {
    let pki = Arc::new(Pki::new());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let h = Harness::start_on(pki.clone(), dir, Server::default()).await;
    assert_eq!(h.gateway().snapshot_version(), None);
    assert!(refused(h.addr(), pki.client_config(&pki.device("laptop"))).await);
    h.push(snapshot(1, &pki)).await;
    assert!(!refused(h.addr(), pki.client_config(&pki.device("laptop"))).await);
}

#[tokio::test]
async fn plaintext_garbage_is_dropped_and_the_gateway_keeps_serving() {
    let h = Harness::start().await;
    let mut tcp = TcpStream::connect(h.addr()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the gateway closes the connection");

    let tunnel = h.laptop().await;
    let (response, _) = connect(&tunnel, &h.echo_authority()).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn records_spooled_during_an_outage_ship_once_in_order_when_the_server_returns() {
    let h = Harness::start().await;
    h.server.set_down(true);
    let tunnel = h.laptop().await;
    let mut expected = 0;
    for i in 0..12 {
        if i % 3 == 0 {
            let (response, mut up) = connect(&tunnel, &h.echo_authority()).await.unwrap();
            assert_eq!(response.status(), 200);
            let mut down = response.into_body();
            send_all(&mut up, Bytes::from_static(b"hello"), true).await.unwrap();
            assert_eq!(read_body(&mut down, None).await.unwrap(), b"hello");
            // Wait for the record, so records are emitted in id order.
            eventually("relay finished", Duration::from_secs(5), || {
                (h.gateway().live_connections() == 0).then_some(())
            })
            .await;
        } else {
            let (response, _) = connect(&tunnel, &format!("blocked-{i}.example:80")).await.unwrap();
            assert_eq!(response.status(), 403);
        }
        expected += 1;
    }
    eventually("the shipper tried them all", Duration::from_secs(10), || {
        (h.server.received().iter().collect::<HashSet<_>>().len() >= expected).then_some(())
    })
    .await;
    assert!(h.server.stored().is_empty());

    h.server.set_down(false);
    let stored = h.server.wait_stored(expected).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored_after = h.server.stored();
    assert_eq!(stored_after.len(), expected, "nothing more arrives");
    assert_eq!(h.server.duplicates(), 0, "nothing shipped twice once acknowledged");
    let ids: Vec<&str> = stored.iter().map(|r| r.id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), expected);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "shipped in the order they were recorded");
    assert_eq!(stored.iter().filter(|r| r.action == "allow").count(), 4);
}

#[tokio::test]
async fn records_spooled_before_a_crash_ship_after_the_restart() {
    let pki = Arc::new(Pki::new());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = Server::default();
    server.set_down(true);
    let mut h = Harness::start_on(pki.clone(), dir.clone(), server.clone()).await;
    h.push(snapshot(1, &pki)).await;
    let tunnel = h.laptop().await;
    for i in 0..5 {
        let (response, _) = connect(&tunnel, &format!("blocked-{i}.example:80")).await.unwrap();
        assert_eq!(response.status(), 403);
    }
    // The shipper has read them from disk: they are durable.
    eventually("spooled", Duration::from_secs(10), || {
        (server.received().iter().collect::<HashSet<_>>().len() >= 5).then_some(())
    })
    .await;
    drop(h.gateway.take()); // crash: no shutdown, no flush
    drop(tunnel);
    tokio::time::sleep(Duration::from_millis(100)).await;

    server.set_down(false);
    let h2 = Harness::start_on(pki.clone(), dir.clone(), server.clone()).await;
    let stored = server.wait_stored(5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.stored().len(), 5);
    assert_eq!(server.duplicates(), 0);
    let mut hosts: Vec<String> = stored.iter().map(|r| r.dest_host.clone()).collect();
    hosts.sort();
    assert_eq!(
        hosts,
        (0..5).map(|i| format!("blocked-{i}.example")).collect::<Vec<_>>()
    );
    // The restarted gateway enforces the saved snapshot without the server.
    assert_eq!(h2.gateway().snapshot_version(), Some(1));
}

#[tokio::test]
async fn a_batch_stored_whose_answer_was_lost_ships_again_with_the_same_ids_after_a_crash() {
    let pki = Arc::new(Pki::new());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = Server::default();
    server.set_lose_answers(true);
    let mut h = Harness::start_on(pki.clone(), dir.clone(), server.clone()).await;
    h.push(snapshot(1, &pki)).await;
    let tunnel = h.laptop().await;
    for i in 0..3 {
        let (response, _) = connect(&tunnel, &format!("blocked-{i}.example:80")).await.unwrap();
        assert_eq!(response.status(), 403);
    }
    let first = server.wait_stored(3).await;
    let first_ids: HashSet<String> = first.iter().map(|r| r.id.clone()).collect();
    // Unacknowledged, the gateway retries: the server sees duplicates.
    eventually("a retry", Duration::from_secs(5), || {
        (server.duplicates() > 0).then_some(())
    })
    .await;
    drop(h.gateway.take()); // dies before ever advancing its cursor
    drop(tunnel);
    tokio::time::sleep(Duration::from_millis(100)).await;

    server.set_lose_answers(false);
    let received_before = server.received().len();
    let h2 = Harness::start_on(pki.clone(), dir.clone(), server.clone()).await;
    eventually("re-shipped after the restart", Duration::from_secs(10), || {
        (server.received().len() >= received_before + 3).then_some(())
    })
    .await;
    let reshipped: HashSet<String> = server.received()[received_before..].iter().cloned().collect();
    assert_eq!(reshipped, first_ids, "the same ids, which the server already has");
    assert_eq!(server.stored().len(), 3, "stored once");

    // And the spool moves on: a new record ships once.
    h2.push(snapshot(2, &pki)).await;
    let tunnel = h2.laptop().await;
    let (response, _) = connect(&tunnel, "after.example:80").await.unwrap();
    assert_eq!(response.status(), 403);
    server
        .record("the new record", |r| r.dest_host == "after.example")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.stored().len(), 4);
}

/// The journal files of open connections the gateway keeps in its spool
/// directory, oldest generation first.
fn journal_files(dir: &tempfile::TempDir) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("open"))
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    files.sort();
    files
}

/// The journal of open connections, all generations in order.
fn journal(dir: &tempfile::TempDir) -> String {
    journal_files(dir)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn a_connection_open_when_the_gateway_is_killed_is_recorded_once_at_the_restart() {
    let pki = Arc::new(Pki::new());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = Server::default();
    let mut h = Harness::start_on(pki.clone(), dir.clone(), server.clone()).await;
    h.push(snapshot(1, &pki)).await;
    let began = now_ms();
    let tunnel = h.laptop().await;
    let (response, mut up) = connect(&tunnel, &h.echo_authority()).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut down = response.into_body();
    send_all(&mut up, pattern(1000), false).await.unwrap();
    assert_eq!(read_body(&mut down, Some(1000)).await.unwrap().len(), 1000);
    // The heartbeat journals how far the connection got.
    eventually("the byte counts journaled", Duration::from_secs(10), || {
        journal(&dir).contains(r#""up":1000,"down":1000"#).then_some(())
    })
    .await;

    // SIGKILL mid-transfer: no shutdown, and the connection's task never
    // gets to write its record.
    drop(h.gateway.take());
    drop((up, down, tunnel));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        server.stored().iter().all(|r| r.action != "allow"),
        "no record for the connection before the restart"
    );

    let mut restarted = Harness::start_on(pki.clone(), dir.clone(), server.clone()).await;
    let record = server.record("the recovered record", |r| r.action == "allow").await;
    assert_eq!(record.end, "gateway_restart");
    assert_eq!((record.bytes_up, record.bytes_down), (1000, 1000));
    assert_eq!(record.tenant_id, TENANT);
    assert_eq!(record.user_id, "alice");
    assert_eq!(record.device_id, "laptop");
    assert_eq!(record.gateway_id, "gw-1");
    assert_eq!(record.source, "127.0.0.1");
    assert_eq!(record.dest_host, "127.0.0.1");
    assert_eq!(record.dest_addr.as_deref(), Some("127.0.0.1"));
    assert_eq!(record.port, h.echo.port());
    assert_eq!(record.rule_id.as_deref(), Some("allow-eng"));
    assert_eq!(record.reason, "rule_matched");
    assert!(record.started_ms >= began, "{} < {began}", record.started_ms);
    assert!(
        record.duration_ms <= u64::try_from(now_ms() - began).unwrap(),
        "duration {} ms",
        record.duration_ms
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.stored().len(), 1, "exactly one record: {:?}", server.stored());
    assert_eq!(server.duplicates(), 0);

    // Nothing is left open: another restart records nothing more.
    restarted.gateway.take().unwrap().shutdown().await;
    let _again = Harness::start_on(pki.clone(), dir.clone(), server.clone()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.stored().len(), 1);
    assert_eq!(server.received().iter().filter(|id| **id == record.id).count(), 1);
    assert_eq!(server.duplicates(), 0);
}

#[tokio::test]
async fn a_connection_closed_just_before_the_kill_keeps_its_one_record() {
    // With the journal as the gateway left it, and as if the kill had come
    // between the record's fsync in the spool and the journal's "closed".
    for lose_the_closed_entry in [false, true] {
        let pki = Arc::new(Pki::new());
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let server = Server::default();
        // The record stays in the spool, unshipped, across the kill.
        server.set_down(true);
        let mut h = Harness::start_on(pki.clone(), dir.clone(), server.clone()).await;
        h.push(snapshot(1, &pki)).await;
        let tunnel = h.laptop().await;
        let (response, mut up) = connect(&tunnel, &h.echo_authority()).await.unwrap();
        assert_eq!(response.status(), 200);
        let mut down = response.into_body();
        send_all(&mut up, pattern(1000), true).await.unwrap();
        assert_eq!(read_body(&mut down, None).await.unwrap().len(), 1000);
        // Durable: the shipper only reads what is.
        let id = eventually("the record spooled", Duration::from_secs(10), || {
            server.received().first().cloned()
        })
        .await;

        drop(h.gateway.take());
        drop((up, down, tunnel));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let journaled = journal(&dir);
        assert!(journaled.contains(&format!(r#""op":"open","record":{{"id":"{id}""#)));
        assert!(journaled.contains(&format!(r#"{{"op":"closed","id":"{id}"}}"#)));
        if lose_the_closed_entry {
            let kept: String = journaled
                .lines()
                .filter(|line| !line.contains(r#""op":"closed""#))
                .map(|line| format!("{line}\n"))
                .collect();
            let files = journal_files(&dir);
            let (newest, older) = files.split_last().unwrap();
            for path in older {
                std::fs::remove_file(path).unwrap();
            }
            std::fs::write(newest, kept).unwrap();
        }

        server.set_down(false);
        let _restarted = Harness::start_on(pki.clone(), dir.clone(), server.clone()).await;
        let stored = server.wait_stored(1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(server.stored().len(), 1, "exactly one record: {:?}", server.stored());
        assert_eq!(server.duplicates(), 0);
        assert_eq!(stored[0].id, id);
        assert_eq!(stored[0].end, "closed", "lost closed entry: {lose_the_closed_entry}");
        assert_eq!((stored[0].bytes_up, stored[0].bytes_down), (1000, 1000));
    }
}

#[tokio::test]
async fn a_restarted_gateway_enforces_the_saved_snapshot_when_the_server_is_silent() {
    let pki = Arc::new(Pki::new());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let h = Harness::start_on(pki.clone(), dir.clone(), Server::default()).await;
    let mut revoked_phone = snapshot(7, &pki);
    acme(&mut revoked_phone).devices[1].revoked = true;
    h.push(revoked_phone).await;
    h.gateway.unwrap().shutdown().await;

    // The new source never answers.
    let h = Harness::start_on(pki.clone(), dir, Server::default()).await;
    assert_eq!(h.gateway().snapshot_version(), Some(7));
    let tunnel = h.laptop().await;
    let (response, _) = connect(&tunnel, &h.echo_authority()).await.unwrap();
    assert_eq!(response.status(), 200);
    let phone = h.tunnel_as(&pki.device("phone")).await.unwrap();
    let (response, _) = connect(&phone, &h.echo_authority()).await.unwrap();
    assert_eq!(header(&response, HEADER_REASON), Some("device_revoked"));
}

#[tokio::test]
async fn shutdown_sends_goaway_and_lets_the_stream_in_flight_finish() {
    let mut h = Harness::start().await;
    let tunnel = h.laptop().await;
    let (response, mut up) = connect(&tunnel, &h.echo_authority()).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut down = response.into_body();
    send_all(&mut up, pattern(1000), false).await.unwrap();
    assert_eq!(read_body(&mut down, Some(1000)).await.unwrap().len(), 1000);

    let gateway = h.gateway.take().unwrap();
    let addr = gateway.local_addr();
    let shutdown = tokio::spawn(gateway.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // No new tunnels...
    assert!(
        TcpStream::connect(addr).await.is_err() || refused(addr, h.pki.client_config(&h.pki.device("laptop"))).await
    );
    // ...no new streams on this one (GOAWAY)...
    let refused_stream = connect(&tunnel, &h.echo_authority()).await;
    assert!(
        refused_stream.is_err() || refused_stream.as_ref().is_ok_and(|(r, _)| r.status() == 503),
        "a stream after GOAWAY is refused"
    );
    // ...but the stream in flight carries on to its end.
    send_all(&mut up, pattern(5000), true).await.unwrap();
    let rest = read_body(&mut down, None).await.unwrap();
    assert_eq!(rest.len(), 5000);
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .unwrap()
        .unwrap();

    let record = h.server.record("the drained record", |r| r.action == "allow").await;
    assert_eq!(record.end, "closed");
    assert_eq!(record.bytes_up, 6000);
    assert_eq!(record.bytes_down, 6000);
}

#[test]
fn random_bytes_never_take_the_gateway_down() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let h = runtime.block_on(Harness::start());
    let addr = h.addr();
    let device = h.pki.client_config(&h.pki.device("laptop"));

    // As the first bytes of a connection: where the ClientHello should be.
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let hello_like = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        // A TLS handshake record header with random contents.
        proptest::collection::vec(any::<u8>(), 0..600).prop_map(|mut body| {
            let mut v = vec![0x16, 0x03, 0x01, (body.len() >> 8) as u8, body.len() as u8, 0x01];
            v.append(&mut body);
            v
        }),
    ];
    runner
        .run(&hello_like, |bytes| {
            runtime.block_on(async {
                let mut tcp = TcpStream::connect(addr).await.unwrap();
                let _ = tcp.write_all(&bytes).await;
                let _ = tcp.shutdown().await;
                let mut sink = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut sink)).await;
            });
            Ok(())
        })
        .unwrap();

    // After a good handshake: where the HTTP/2 preface and frames should be.
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });
    let frames_like = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2000),
        proptest::collection::vec(any::<u8>(), 0..2000).prop_map(|mut frames| {
            let mut v = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            v.append(&mut frames);
            v
        }),
    ];
    let config = device.clone();
    runner
        .run(&frames_like, |bytes| {
            runtime.block_on(async {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let mut tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp)
                    .await
                    .unwrap();
                let _ = tls.write_all(&bytes).await;
                let _ = tls.flush().await;
                let mut sink = Vec::new();
                let _ = tokio::time::timeout(Duration::from_millis(300), tls.read_to_end(&mut sink)).await;
            });
            Ok(())
        })
        .unwrap();

    runtime.block_on(async {
        let tunnel = tunnel(addr, device).await.unwrap();
        let (response, _) = connect(&tunnel, &h.echo_authority()).await.unwrap();
        assert_eq!(response.status(), 200, "a good client is still served");
    });
    drop(h);
}
