//! Fuzz-style property tests of the proxy front ends: arbitrary bytes never
//! panic nor pass the size limits, and valid inputs round-trip.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use tokio::io::{AsyncReadExt, BufReader};
use ward_agent::proxy::http::{self, HttpProxyError, ProxyRequest, MAX_HEAD_LEN};
use ward_agent::proxy::socks5::{self, Command, Request, MAX_GREETING_LEN, MAX_REQUEST_LEN};
use ward_agent::proxy::Target;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Reads a request from `input` through a BufReader of `capacity` bytes;
/// returns the result and how many bytes it consumed.
fn read_http(input: &[u8], capacity: usize) -> (Result<ProxyRequest, HttpProxyError>, usize) {
    block_on(async {
        let mut reader = BufReader::with_capacity(capacity, input);
        let result = http::read_request(&mut reader).await;
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
        assert!(input.ends_with(&rest));
        (result, input.len() - rest.len())
    })
}

/// Domain names that stay names: the last label starts with a letter.
fn name() -> impl Strategy<Value = String> {
    (
        prop::collection::vec("[a-zA-Z0-9_-]{1,20}", 0..5),
        "[a-zA-Z][a-zA-Z0-9_-]{0,15}",
        any::<bool>(),
    )
        .prop_map(|(mut labels, last, root)| {
            labels.push(last);
            labels.join(".") + if root { "." } else { "" }
        })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        (any::<[u8; 4]>(), 1..=u16::MAX)
            .prop_map(|(ip, port)| Target::Ip(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))),
        (any::<[u8; 16]>(), 1..=u16::MAX)
            .prop_map(|(ip, port)| Target::Ip(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))),
        (name(), 1..=u16::MAX).prop_map(|(host, port)| Target::Domain { host, port }),
    ]
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

fn header() -> impl Strategy<Value = (String, String)> {
    let value = "[!-~]([ -~]{0,20}[!-~])?";
    prop_oneof![
        ("X-[A-Za-z]{1,3}", value).prop_map(|(n, v)| (n, v)),
        (
            prop::sample::select(vec!["Connection", "connection"]),
            prop::collection::vec("keep-alive|close|X-[a-c]|upgrade", 1..4)
        )
            .prop_map(|(n, tokens)| (n.to_string(), tokens.join(", "))),
        (
            prop::sample::select(vec![
                "Proxy-Connection",
                "Keep-Alive",
                "Proxy-Authorization",
                "TE",
                "Trailer",
                "Upgrade",
                "Host",
                "HOST",
                "User-Agent",
                "Accept"
            ]),
            value
        )
            .prop_map(|(n, v)| (n.to_string(), v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn socks_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(Some((g, n))) = socks5::parse_greeting(&bytes) {
            prop_assert!(n <= MAX_GREETING_LEN && n <= bytes.len());
            prop_assert_eq!(g.methods.len() + 2, n);
        }
        if let Ok(Some((_, n))) = socks5::parse_request(&bytes) {
            prop_assert!(n <= MAX_REQUEST_LEN && n <= bytes.len());
        }
    }

    #[test]
    fn socks_request_parser_on_near_valid_input(
        cmd in 0u8..5, atyp in prop::sample::select(vec![1u8, 3, 4, 5]), rest in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let bytes = [&[5, cmd, 0, atyp][..], &rest].concat();
        if let Ok(Some((req, n))) = socks5::parse_request(&bytes) {
            prop_assert!(n <= MAX_REQUEST_LEN);
            // What parses re-encodes to the bytes it came from, up to case.
            let mut want = bytes[..n].to_vec();
            if atyp == 3 {
                want[5..n - 2].make_ascii_lowercase();
            }
            prop_assert_eq!(req.to_bytes(), want);
        }
        // Every prefix of a request is "need more" or the same error.
        for cut in 0..bytes.len().min(MAX_REQUEST_LEN + 1) {
            if let Ok(Some((_, n))) = socks5::parse_request(&bytes[..cut]) {
                prop_assert!(n <= cut);
            }
        }
    }

    #[test]
    fn socks_request_round_trip(target in target(), trailing in prop::collection::vec(any::<u8>(), 0..16)) {
        let bytes = Request { command: Command::Connect, target: target.clone() }.to_bytes();
        let mut with_payload = bytes.clone();
        with_payload.extend_from_slice(&trailing);
        let (req, n) = socks5::parse_request(&with_payload).unwrap().unwrap();
        let want = match target {
            Target::Domain { host, port } => Target::Domain { host: host.to_ascii_lowercase(), port },
            ip => ip,
        };
        prop_assert_eq!(&req.target, &want);
        prop_assert_eq!(req.command, Command::Connect);
        prop_assert_eq!(n, bytes.len());
        // The authority form round-trips too.
        prop_assert_eq!(want.authority().parse::<Target>().unwrap(), want.clone());
        // And `accept` over a one-byte pipe gets the same target, payload unread.
        // A client that sends everything at once without waiting (as
        // optimistic clients do), reading answers concurrently.
        let got = block_on(async {
            use tokio::io::AsyncWriteExt;
            let (client, mut server) = tokio::io::duplex(1);
            let (mut client_read, mut client_write) = tokio::io::split(client);
            let input = [&[5, 1, 0][..], &with_payload].concat();
            let writer = tokio::spawn(async move {
                client_write.write_all(&input).await.unwrap();
                client_write
            });
            let reader = tokio::spawn(async move {
                let mut method = [0u8; 2];
                client_read.read_exact(&mut method).await.unwrap();
                (client_read, method)
            });
            let target = socks5::accept(&mut server).await.unwrap();
            let (client_read, method) = reader.await.unwrap();
            let mut payload = vec![0u8; trailing.len()];
            server.read_exact(&mut payload).await.unwrap();
            drop((client_read, writer.await.unwrap()));
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
            (target, method, payload)
        });
        prop_assert_eq!(got, (want, [5, 0], trailing));
    }

    #[test]
    fn http_reader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048), cap in 1usize..64) {
        let (result, consumed) = read_http(&bytes, cap);
        if result.is_ok() {
            prop_assert!(consumed <= MAX_HEAD_LEN);
        }
    }

    #[test]
    fn http_reader_on_near_valid_input(
        method in "CONNECT|GET|POST|[A-Z]{1,5}",
        uri in "(http|https|HTTP|ftp)://[ -~]{0,30}|[ -~]{0,30}",
        // Non-empty: an empty line ends the head, so the rest would be body.
        lines in prop::collection::vec("[ -~]{1,30}", 0..6),
        eol in prop::sample::select(vec!["\r\n", "\n"]),
        body in prop::collection::vec(any::<u8>(), 0..32),
        cap in 1usize..64,
    ) {
        let mut input = format!("{method} {uri} HTTP/1.1{eol}");
        for line in &lines {
            input.push_str(line);
            input.push_str(eol);
        }
        input.push_str(eol);
        let head_len = input.len();
        let mut bytes = input.into_bytes();
        bytes.extend_from_slice(&body);
        let (result, consumed) = read_http(&bytes, cap);
        if let Ok(request) = result {
            prop_assert_eq!(consumed, head_len);
            if let ProxyRequest::Forward { head, .. } = request {
                check_rewritten(&head);
            }
        }
    }

    #[test]
    fn http_reader_refuses_oversized_heads(extra in 0usize..4096, filler in "[a-z]{1,8}", cap in 1usize..9000) {
        let start = "GET http://h/ HTTP/1.1\r\n";
        let mut input = String::from(start);
        let mut i = 0;
        while input.len() <= MAX_HEAD_LEN + extra {
            input.push_str(&format!("X-{i}-{filler}: {filler}\r\n"));
            i += 1;
        }
        input.push_str("\r\n");
        let (result, consumed) = read_http(input.as_bytes(), cap);
        let err = result.unwrap_err();
        prop_assert!(matches!(err.status(), 431), "{err}");
        prop_assert!(consumed <= MAX_HEAD_LEN);
    }

    #[test]
    fn forward_rewrite_is_clean(
        method in "GET|POST|PUT|DELETE|HEAD|OPTIONS|PATCH|[A-Z]{1,8}",
        scheme in "http|HTTP|Http",
        target in target(),
        explicit_port in any::<bool>(),
        path in "(/[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,10}){0,4}",
        query in prop::option::of("[a-zA-Z0-9=&%/?:@-]{0,20}"),
        fragment in prop::option::of("[a-z]{0,5}"),
        headers in prop::collection::vec(header(), 0..12),
        http10 in any::<bool>(),
    ) {
        prop_assume!(method != "CONNECT");
        let authority = if explicit_port { target.authority() } else { target.host() };
        let port = if explicit_port { target.port() } else { 80 };
        let mut uri = format!("{scheme}://{authority}{path}");
        if let Some(q) = &query {
            uri.push('?');
            uri.push_str(q);
        }
        if let Some(f) = &fragment {
            uri.push('#');
            uri.push_str(f);
        }
        let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        let mut input = format!("{method} {uri} {version}\r\n");
        for (n, v) in &headers {
            input.push_str(&format!("{n}: {v}\r\n"));
        }
        input.push_str("\r\n");

        let (result, consumed) = read_http(input.as_bytes(), 8192);
        prop_assert_eq!(consumed, input.len());
        let Ok(ProxyRequest::Forward { target: got, head }) = result else {
            return Err(TestCaseError::fail(format!("{input:?}: {result:?}")));
        };
        let want_target = match &target {
            Target::Domain { host, .. } => Target::Domain { host: host.to_ascii_lowercase(), port },
            Target::Ip(a) => Target::Ip(SocketAddr::new(a.ip(), port)),
        };
        prop_assert_eq!(&got, &want_target);

        let parsed = check_rewritten(&head);
        prop_assert_eq!(&parsed.method, &method);
        let mut want_path = if path.is_empty() { "/".to_string() } else { path.clone() };
        if let Some(q) = &query {
            want_path.push('?');
            want_path.push_str(q);
        }
        prop_assert_eq!(&parsed.path, &want_path);
        prop_assert_eq!(parsed.version, u8::from(!http10));
        let want_host = if port == 80 { want_target.host() } else { want_target.authority() };
        prop_assert_eq!(&parsed.host, &want_host);
        // Headers named in Connection are gone; other end-to-end ones remain.
        let named: Vec<String> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()).collect::<Vec<_>>())
            .collect();
        for (n, _) in &headers {
            let lower = n.to_ascii_lowercase();
            let kept = parsed.names.contains(&lower);
            if lower.starts_with("x-") || lower == "user-agent" || lower == "accept" {
                prop_assert_eq!(kept, !named.contains(&lower), "{}", n);
            }
        }
    }
}

struct Rewritten {
    method: String,
    path: String,
    version: u8,
    host: String,
    names: Vec<String>,
}

/// Checks the invariants of a rewritten head: it parses completely, is in
/// origin form, has one Host, no hop-by-hop header but one Connection.
fn check_rewritten(head: &[u8]) -> Rewritten {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let status = req.parse(head).expect("rewritten head parses");
    assert_eq!(status, httparse::Status::Complete(head.len()));
    let path = req.path.unwrap().to_string();
    assert!(path.starts_with('/'), "{path}");
    let hosts: Vec<_> = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .collect();
    assert_eq!(hosts.len(), 1, "{}", String::from_utf8_lossy(head));
    let connection: Vec<_> = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .collect();
    assert_eq!(connection.len(), 1);
    let upgrade = connection[0].value == b"upgrade";
    assert!(upgrade || connection[0].value == b"close");
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if name == "connection" || (upgrade && name == "upgrade") {
            continue;
        }
        assert!(
            !HOP_BY_HOP.contains(&name.as_str()),
            "{name} in {}",
            String::from_utf8_lossy(head)
        );
    }
    Rewritten {
        method: req.method.unwrap().to_string(),
        path,
        version: req.version.unwrap(),
        host: String::from_utf8(hosts[0].value.to_vec()).unwrap(),
        names: req.headers.iter().map(|h| h.name.to_ascii_lowercase()).collect(),
    }
}
