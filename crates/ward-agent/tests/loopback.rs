//! The proxy front ends over real loopback sockets, driven by a minimal SOCKS5
//! client written here and, where `curl` is installed, by curl. Every
//! connection goes to 127.0.0.1: the handlers play the gateway and the origin
//! themselves and never connect anywhere.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::future::Future;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use ward_agent::proxy::http::{self, ProxyRequest};
use ward_agent::proxy::socks5::{self, Command as SocksCommand, Reply, Request, Socks5Error};
use ward_agent::proxy::Target;

const LIMIT: Duration = Duration::from_secs(20);

/// Serves exactly one connection on a fresh 127.0.0.1 port with `handler`.
async fn serve_once<F, Fut, T>(handler: F) -> (SocketAddr, JoinHandle<T>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = timeout(LIMIT, listener.accept())
            .await
            .expect("no client came")
            .unwrap();
        timeout(LIMIT, handler(stream)).await.expect("handler timed out")
    });
    (addr, task)
}

/// Reads an origin-form request head line by line (as an origin would).
async fn read_origin_head<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return lines;
        }
        lines.push(line);
    }
}

fn domain(host: &str, port: u16) -> Target {
    Target::Domain {
        host: host.into(),
        port,
    }
}

// --- SOCKS5 with a client written here ---

/// Runs `socks5::accept`, replies Succeeded, then echoes.
async fn socks_echo(mut stream: TcpStream) -> Target {
    let target = socks5::accept(&mut stream).await.unwrap();
    socks5::reply(&mut stream, Reply::Succeeded).await.unwrap();
    let (mut r, mut w) = stream.split();
    tokio::io::copy(&mut r, &mut w).await.unwrap();
    target
}

#[tokio::test]
async fn socks5_client_echo_for_each_address_type() {
    for target in [
        Target::Ip("192.0.2.10:443".parse().unwrap()),
        Target::Ip("[2001:db8::10]:8443".parse().unwrap()),
        domain("db.example.internal", 5432),
    ] {
        let (addr, server) = serve_once(socks_echo).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        // An optimistic client: greeting, request and first data in one write.
        let request = Request {
            command: SocksCommand::Connect,
            target: target.clone(),
        }
        .to_bytes();
        client
            .write_all(&[&[5, 1, 0][..], &request, b"hello through socks"].concat())
            .await
            .unwrap();
        let mut answers = [0u8; 12];
        client.read_exact(&mut answers).await.unwrap();
        assert_eq!(answers, [5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        let mut echo = [0u8; 19];
        client.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"hello through socks");
        client.shutdown().await.unwrap();
        assert_eq!(server.await.unwrap(), target);
    }
}

#[tokio::test]
async fn socks5_client_refusals() {
    // No acceptable method.
    let (addr, server) = serve_once(|mut s: TcpStream| async move { socks5::accept(&mut s).await }).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(&[5, 1, 2]).await.unwrap();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, [5, 0xFF]);
    assert!(matches!(server.await.unwrap(), Err(Socks5Error::NoAcceptableMethod)));

    // BIND: 0x07.
    let (addr, server) = serve_once(|mut s: TcpStream| async move { socks5::accept(&mut s).await }).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(&[5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80])
        .await
        .unwrap();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, [5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert!(matches!(
        server.await.unwrap(),
        Err(Socks5Error::CommandNotSupported(2))
    ));

    // The gateway's refusal, sent by the caller.
    let (addr, server) = serve_once(|mut s: TcpStream| async move {
        let target = socks5::accept(&mut s).await.unwrap();
        socks5::reply(&mut s, Reply::NotAllowed).await.unwrap();
        target
    })
    .await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let request = Request {
        command: SocksCommand::Connect,
        target: domain("denied.internal", 22),
    }
    .to_bytes();
    client.write_all(&[&[5, 1, 0][..], &request].concat()).await.unwrap();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, [5, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(server.await.unwrap(), domain("denied.internal", 22));
}

// --- HTTP proxy with a raw client ---

#[tokio::test]
async fn http_raw_client_forward_and_refusal() {
    let (addr, server) = serve_once(|s: TcpStream| async move {
        let mut reader = BufReader::new(s);
        let request = http::read_request(&mut reader).await.unwrap();
        let mut body = [0u8; 4];
        reader.read_exact(&mut body).await.unwrap();
        (request, body)
    })
    .await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"PUT http://files.internal:8080/a/b?c=d HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nDATA")
        .await
        .unwrap();
    let (request, body) = server.await.unwrap();
    let head = "PUT /a/b?c=d HTTP/1.1\r\nHost: files.internal:8080\r\nContent-Length: 4\r\nConnection: close\r\n\r\n";
    assert_eq!(
        request,
        ProxyRequest::Forward {
            target: domain("files.internal", 8080),
            head: head.into()
        }
    );
    assert_eq!(&body, b"DATA");

    let (addr, server) = serve_once(|s: TcpStream| async move {
        let mut reader = BufReader::new(s);
        let err = http::read_request(&mut reader).await.unwrap_err();
        http::respond_error(reader.get_mut(), &err).await.unwrap();
        err.status()
    })
    .await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).await.unwrap();
    assert_eq!(server.await.unwrap(), 400);
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\nthis is a proxy: send an absolute URI or CONNECT\n"),
        "{answer}"
    );
}

// --- curl ---

fn have_curl() -> bool {
    let found = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipping: curl is not installed");
    }
    found
}

/// Runs curl with `args`, ignoring any curlrc and proxy environment.
async fn curl(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("curl");
        cmd.args(["-q", "-sS", "--max-time", "15"]).args(&args);
        for var in ["http_proxy", "https_proxy", "all_proxy", "no_proxy"] {
            cmd.env_remove(var).env_remove(var.to_ascii_uppercase());
        }
        cmd.output().unwrap()
    })
    .await
    .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const ORIGIN_ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nhello, ward\n";

/// A SOCKS5 handler that accepts, replies Succeeded, then plays the origin:
/// reads the request head and answers a fixed response.
async fn socks_then_origin(mut stream: TcpStream) -> (Target, Vec<String>) {
    let target = socks5::accept(&mut stream).await.unwrap();
    socks5::reply(&mut stream, Reply::Succeeded).await.unwrap();
    let mut reader = BufReader::new(stream);
    let head = read_origin_head(&mut reader).await;
    reader.get_mut().write_all(ORIGIN_ANSWER).await.unwrap();
    (target, head)
}

#[tokio::test]
async fn curl_through_socks5() {
    if !have_curl() {
        return;
    }
    // Name passed on unresolved (socks5h).
    let (addr, server) = serve_once(socks_then_origin).await;
    let out = curl(&[
        "--socks5-hostname",
        &addr.to_string(),
        "http://Example.Internal/hello?x=1",
    ])
    .await;
    assert_eq!(stdout(&out), "hello, ward\n");
    let (target, head) = server.await.unwrap();
    assert_eq!(target, domain("example.internal", 80));
    assert_eq!(head[0], "GET /hello?x=1 HTTP/1.1");
    assert!(
        head.iter().any(|h| h.eq_ignore_ascii_case("host: example.internal")),
        "{head:?}"
    );

    // An IPv4 literal (curl resolves nothing, it sends the address).
    let (addr, server) = serve_once(socks_then_origin).await;
    let out = curl(&["--socks5", &addr.to_string(), "http://127.0.0.1:9/ip"]).await;
    assert_eq!(stdout(&out), "hello, ward\n");
    assert_eq!(server.await.unwrap().0, Target::Ip("127.0.0.1:9".parse().unwrap()));

    // An IPv6 literal.
    let (addr, server) = serve_once(socks_then_origin).await;
    let out = curl(&["--socks5-hostname", &addr.to_string(), "http://[::1]:9/v6"]).await;
    assert_eq!(stdout(&out), "hello, ward\n");
    assert_eq!(server.await.unwrap().0, Target::Ip("[::1]:9".parse().unwrap()));

    // A refusal from the gateway reaches curl as a failure.
    let (addr, server) = serve_once(|mut s: TcpStream| async move {
        let target = socks5::accept(&mut s).await.unwrap();
        socks5::reply(&mut s, Reply::ConnectionRefused).await.unwrap();
        target
    })
    .await;
    let out = curl(&["--socks5-hostname", &addr.to_string(), "http://refused.internal/"]).await;
    assert!(!out.status.success());
    assert_eq!(server.await.unwrap(), domain("refused.internal", 80));
}

#[tokio::test]
async fn curl_through_http_proxy_forward() {
    if !have_curl() {
        return;
    }
    // Absolute-form GET: the handler checks the rewritten head and answers
    // as the origin.
    let (addr, server) = serve_once(|s: TcpStream| async move {
        let mut reader = BufReader::new(s);
        let request = http::read_request(&mut reader).await.unwrap();
        reader.get_mut().write_all(ORIGIN_ANSWER).await.unwrap();
        request
    })
    .await;
    let proxy = format!("http://{addr}");
    let out = curl(&["--proxy", &proxy, "http://example.internal/path?q=1"]).await;
    assert_eq!(stdout(&out), "hello, ward\n");
    let ProxyRequest::Forward { target, head } = server.await.unwrap() else {
        panic!("not a forward")
    };
    assert_eq!(target, domain("example.internal", 80));
    let head = String::from_utf8(head).unwrap();
    assert!(
        head.starts_with("GET /path?q=1 HTTP/1.1\r\nHost: example.internal\r\n"),
        "{head}"
    );
    assert!(head.ends_with("\r\nConnection: close\r\n\r\n"), "{head}");
    assert_eq!(head.matches("\r\nHost: ").count(), 1, "{head}");
    assert!(!head.to_ascii_lowercase().contains("proxy-connection"), "{head}");

    // POST with a body: the body stays in the reader after the head.
    let (addr, server) = serve_once(|s: TcpStream| async move {
        let mut reader = BufReader::new(s);
        let request = http::read_request(&mut reader).await.unwrap();
        let mut body = vec![0u8; 11];
        reader.read_exact(&mut body).await.unwrap();
        reader.get_mut().write_all(ORIGIN_ANSWER).await.unwrap();
        (request, body)
    })
    .await;
    let proxy = format!("http://{addr}");
    let out = curl(&[
        "--proxy",
        &proxy,
        "--data-binary",
        "hello=world",
        "http://api.internal:8080/submit",
    ])
    .await;
    assert_eq!(stdout(&out), "hello, ward\n");
    let (request, body) = server.await.unwrap();
    let ProxyRequest::Forward { target, head } = request else {
        panic!("not a forward")
    };
    assert_eq!(target, domain("api.internal", 8080));
    let head = String::from_utf8(head).unwrap();
    assert!(
        head.starts_with("POST /submit HTTP/1.1\r\nHost: api.internal:8080\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nContent-Length: 11\r\n"), "{head}");
    assert_eq!(body, b"hello=world");
}

#[tokio::test]
async fn curl_through_http_proxy_connect() {
    if !have_curl() {
        return;
    }
    // `curl -p`: CONNECT, then the request inside the tunnel.
    let (addr, server) = serve_once(|s: TcpStream| async move {
        let mut reader = BufReader::new(s);
        let request = http::read_request(&mut reader).await.unwrap();
        http::connect_established(reader.get_mut()).await.unwrap();
        let inner = read_origin_head(&mut reader).await;
        reader.get_mut().write_all(ORIGIN_ANSWER).await.unwrap();
        (request, inner)
    })
    .await;
    let proxy = format!("http://{addr}");
    let out = curl(&["-p", "--proxy", &proxy, "http://example.internal/path?q=1"]).await;
    assert_eq!(stdout(&out), "hello, ward\n");
    let (request, inner) = server.await.unwrap();
    assert_eq!(
        request,
        ProxyRequest::Connect {
            target: domain("example.internal", 80)
        }
    );
    assert_eq!(inner[0], "GET /path?q=1 HTTP/1.1");

    // A refused CONNECT: curl reports the proxy's status.
    let (addr, server) = serve_once(|s: TcpStream| async move {
        let mut reader = BufReader::new(s);
        let request = http::read_request(&mut reader).await.unwrap();
        http::respond(reader.get_mut(), 403, "Forbidden", "denied by policy\n")
            .await
            .unwrap();
        request
    })
    .await;
    let proxy = format!("http://{addr}");
    let out = curl(&["-p", "--proxy", &proxy, "http://secret.internal:8443/"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        server.await.unwrap(),
        ProxyRequest::Connect {
            target: domain("secret.internal", 8443)
        }
    );
}
