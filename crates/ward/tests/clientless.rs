//! Clientless web access end to end, with the real binary and real clients:
//! `ward server` with its embedded gateway's HTTPS listener on loopback, an
//! upstream on loopback that echoes what it receives, and curl as the
//! browser (`--resolve app.example:PORT:127.0.0.1`, the service CA as its
//! only trust): sign-in through the portal, the identity assertion checked
//! against the published JWKS, denials, callback codes refused, HTTP/2, a
//! WebSocket through the gateway, a disabled user cut off, and the records.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use common::browser::{page_text, screenshot, wait_for_text, Driver};
use common::{free_port, Ctl, Db, ServerSpec, PASSWORD};
use serde_json::Value;

const HOST: &str = "app.example";
const USER_PASSWORD: &str = "user-pass-word-1";

/// An HTTP/1.1 upstream that answers every request with its request head
/// (so the test sees what the gateway forwarded), one request a connection.
fn echo_upstream() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = format!("upstream saw:\n{}", String::from_utf8_lossy(&head));
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// A WebSocket echo server (tokio-tungstenite) on its own runtime thread.
fn websocket_upstream() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            use futures::{SinkExt as _, StreamExt as _};
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            loop {
                let Ok((tcp, _)) = l.accept().await else { continue };
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    });
    port
}

struct Curl {
    status: u16,
    body: String,
    headers: String,
    http_version: String,
}

/// curl as the browser: the published host resolved to loopback, only the
/// service CA trusted, cookies in `jar`.
fn curl(web_port: u16, ca: &Path, jar: Option<&Path>, extra: &[&str], url: &str) -> Curl {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "30", "--proto", "=http,https"])
        .arg("--resolve")
        .arg(format!("{HOST}:{web_port}:127.0.0.1"))
        .arg("--cacert")
        .arg(ca)
        .arg("-D")
        .arg(&headers)
        .args(["-w", "\n%{http_code} %{http_version}"]);
    if let Some(jar) = jar {
        cmd.arg("-b").arg(jar).arg("-c").arg(jar);
    }
    cmd.args(extra).arg(url);
    let out = cmd.output().expect("curl is installed");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let mut tail = tail.split(' ');
    let status = tail.next().unwrap_or("0").parse().unwrap_or(0);
    Curl {
        status,
        http_version: tail.next().unwrap_or("").to_owned(),
        body: body.to_owned(),
        headers: std::fs::read_to_string(&headers).unwrap_or_default(),
    }
}

impl Curl {
    /// The last response's header (after redirects).
    fn header(&self, name: &str) -> Option<String> {
        let last = self.headers.split("\r\n\r\n").filter(|b| !b.trim().is_empty()).last()?;
        last.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Signs `user` in through the portal with a password, the way a browser
/// does, starting from `path` on the published host. Returns the last
/// answer (after every redirect).
fn sign_in(web_port: u16, ca: &Path, jar: &Path, user: &str, path: &str) -> Curl {
    let start = curl(
        web_port,
        ca,
        Some(jar),
        &[],
        &format!("https://{HOST}:{web_port}{path}"),
    );
    assert_eq!(start.status, 302, "unauthenticated: {}", start.headers);
    let portal = start.header("location").unwrap();
    // The portal sends the browser to its sign-in page, with the form's token.
    let login = curl(web_port, ca, Some(jar), &["-L"], &portal);
    assert_eq!(login.status, 200, "{}", login.body);
    let csrf = login
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let next = login
        .body
        .split("name=\"next\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let base = portal.split("/portal/").next().unwrap();
    let form = serde_urlencoded_pairs(&[
        ("csrf", &csrf),
        ("next", &next),
        ("tenant", "default"),
        ("username", user),
        ("password", USER_PASSWORD),
    ]);
    let handoff = curl(
        web_port,
        ca,
        Some(jar),
        &["-L", "--data", &form],
        &format!("{base}/portal/login"),
    );
    // Signed in: a page that sends the browser on to the host's callback.
    assert_eq!(handoff.status, 200, "{}", handoff.body);
    let callback = handoff
        .body
        .split("id=\"continue\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no link to the callback: {}", handoff.body))
        .replace("&amp;", "&");
    assert!(handoff
        .body
        .contains(&format!("content=\"0;url={}", callback.replace('&', "&amp;"))));
    assert!(
        callback.starts_with(&format!("https://{HOST}:{web_port}/.ward/callback?code=wwc_")),
        "{callback}"
    );
    curl(web_port, ca, Some(jar), &["-L"], &callback)
}

fn serde_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The Ward cookie's value in a curl cookie jar.
fn ward_cookie(jar: &Path) -> Option<String> {
    std::fs::read_to_string(jar).unwrap_or_default().lines().find_map(|l| {
        let f: Vec<&str> = l.split('\t').collect();
        (f.len() == 7 && f[5] == "__Host-ward_web").then(|| f[6].to_owned())
    })
}

/// Checks an ES256 JWT against a JWKS; returns its claims.
fn verify_jwt(jwt: &str, jwks: &Value) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS");
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the JWKS has the assertion's key");
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    let mut point = vec![4u8];
    point.extend(B64.decode(key["x"].as_str().unwrap()).unwrap());
    point.extend(B64.decode(key["y"].as_str().unwrap()).unwrap());
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &B64.decode(parts[2]).unwrap(),
        )
        .expect("the assertion's signature verifies against the published JWKS");
    // A tampered payload does not.
    let mut forged: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    forged["sub"] = "usr_someone_else".into();
    let forged = B64.encode(serde_json::to_vec(&forged).unwrap());
    assert!(UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(
            format!("{}.{forged}", parts[0]).as_bytes(),
            &B64.decode(parts[2]).unwrap()
        )
        .is_err());
    serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap()
}

fn have_curl() -> bool {
    Command::new("curl").arg("--version").output().is_ok()
}

struct Setup {
    _server: common::Server,
    ctl: Ctl,
    web_port: u16,
    ca: PathBuf,
    ws_port: u16,
    work: tempfile::TempDir,
}

fn set_up() -> Setup {
    let db = Db::sqlite();
    let web_port = free_port();
    let mut spec = ServerSpec::new(&db)
        .arg("--web-listen")
        .arg(format!("127.0.0.1:{web_port}"));
    let server = spec.start();
    let ctl = Ctl::new();
    ctl.login(server.url(), "default", "default", "admin", PASSWORD).ok();
    for user in ["alice", "bob"] {
        ctl.run(&["user", "create", user], None).ok();
        ctl.run(
            &["user", "passwd", user, "--password-stdin"],
            Some(&format!("{USER_PASSWORD}\n")),
        )
        .ok();
    }
    let upstream = echo_upstream();
    ctl.run(
        &[
            "app",
            "create",
            "wiki",
            "--address",
            "127.0.0.1",
            "--port",
            &upstream.to_string(),
            "--public-host",
            "App.Example",
        ],
        None,
    )
    .ok();
    let ws_port = websocket_upstream();
    ctl.run(
        &[
            "app",
            "create",
            "chat",
            "--address",
            "localhost",
            "--port",
            &ws_port.to_string(),
            "--public-host",
            "chat.example",
        ],
        None,
    )
    .ok();
    // alice from a browser; bob only with the agent.
    ctl.run(
        &[
            "rule",
            "create",
            "--priority",
            "10",
            "--action",
            "allow",
            "--app",
            "wiki",
            "--app",
            "chat",
            "--user",
            "alice",
            "--agentless",
        ],
        None,
    )
    .ok();
    ctl.run(
        &[
            "rule",
            "create",
            "--priority",
            "20",
            "--action",
            "allow",
            "--app",
            "wiki",
            "--user",
            "bob",
        ],
        None,
    )
    .ok();
    let ca = server.data_dir().join("service-ca.pem");
    wait_until("the web listener's certificate", Duration::from_secs(30), || {
        ca.exists() && curl(web_port, &ca, None, &[], &format!("https://{HOST}:{web_port}/")).status == 302
    });
    Setup {
        _server: server,
        ctl,
        web_port,
        ca,
        ws_port,
        work: tempfile::tempdir().unwrap(),
    }
}

#[test]
fn clientless_web_access_end_to_end() {
    if !have_curl() {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let s = set_up();
    let (port, ca) = (s.web_port, s.ca.as_path());
    let base = format!("https://{HOST}:{port}");

    // An unauthenticated browser is sent to the portal, with where it was going.
    let first = curl(port, ca, None, &[], &format!("{base}/hello?x=1"));
    assert_eq!(first.status, 302);
    let location = first.header("location").unwrap();
    assert!(
        location.contains("/portal/web/start?host=app.example&return=%2Fhello%3Fx%3D1"),
        "{location}"
    );
    // An unknown host gets the gateway's 404 page; the JWKS is public.
    let unknown = curl(
        port,
        ca,
        None,
        &["--resolve", &format!("nothing.example:{port}:127.0.0.1"), "-k"],
        &format!("https://nothing.example:{port}/"),
    );
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("Unknown application"));
    let jwks: Value =
        serde_json::from_str(&curl(port, ca, None, &[], &format!("{base}/.well-known/ward/jwks.json")).body).unwrap();

    // alice signs in and reaches the application, with an assertion and
    // without the Ward cookie.
    let alice_jar = s.work.path().join("alice.jar");
    let page = sign_in(port, ca, &alice_jar, "alice", "/hello?x=1");
    assert_eq!(page.status, 200, "{}\n{}", page.headers, page.body);
    assert!(
        page.body.starts_with("upstream saw:\nGET /hello?x=1 HTTP/1.1"),
        "{}",
        page.body
    );
    let cookie = ward_cookie(&alice_jar).expect("the gateway set its cookie");
    assert!(page.headers.contains("__Host-ward_web="));
    assert!(page.headers.to_ascii_lowercase().contains("httponly"));
    assert!(
        !page.body.contains(&cookie),
        "the upstream must not see the Ward cookie"
    );
    assert!(!page.body.contains("__Host-ward_web"));
    let lower = page.body.to_ascii_lowercase();
    assert!(lower.contains("x-forwarded-proto: https"));
    assert!(lower.contains("x-forwarded-host: app.example"));
    assert!(lower.contains("x-forwarded-for: 127.0.0.1"));
    let jwt = page
        .body
        .lines()
        .find_map(|l| l.strip_prefix("x-ward-assertion: "))
        .expect("the upstream received an assertion")
        .trim()
        .to_owned();
    let claims = verify_jwt(&jwt, &jwks);
    assert_eq!(claims["aud"], "https://app.example");
    assert_eq!(claims["name"], "alice");
    assert!(claims["sub"].as_str().unwrap().starts_with("usr_"));
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

    // A client cannot smuggle its own assertion or forwarding headers.
    let smuggle = curl(
        port,
        ca,
        Some(&alice_jar),
        &["-H", "X-Ward-Assertion: forged", "-H", "X-Forwarded-For: 6.6.6.6"],
        &format!("{base}/smuggle"),
    );
    assert_eq!(smuggle.status, 200);
    assert!(
        !smuggle.body.contains("forged") && !smuggle.body.contains("6.6.6.6"),
        "{}",
        smuggle.body
    );

    // HTTP/2 from the browser side.
    let h2 = curl(port, ca, Some(&alice_jar), &["--http2"], &format!("{base}/over-h2"));
    assert_eq!((h2.status, h2.http_version.as_str()), (200, "2"), "{}", h2.body);
    assert!(h2.body.contains("GET /over-h2 HTTP/1.1"));

    // bob is allowed only with the agent: a rule without --agentless does
    // not admit a browser. He sees the denial page.
    let bob_jar = s.work.path().join("bob.jar");
    let denied = sign_in(port, ca, &bob_jar, "bob", "/");
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(denied.body.contains("Access denied") && denied.body.contains("bob"));
    assert!(denied.body.contains("app.example"));
    assert!(denied
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));

    // Callback codes: a forged one is refused; a real one works once.
    let forged = curl(
        port,
        ca,
        None,
        &[],
        &format!("{base}/.ward/callback?code=wwc_forged&return=/"),
    );
    assert_eq!(forged.status, 403);
    assert!(forged.header("set-cookie").is_none());
    // A second browser of alice's with her portal session but no session
    // on the host: the gateway sends it to the portal with a state cookie.
    let second = s.work.path().join("second.jar");
    let jar_text: String = std::fs::read_to_string(&alice_jar)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("__Host-ward_web"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&second, jar_text).unwrap();
    let to_portal = curl(port, ca, Some(&second), &[], &format!("{base}/once"));
    assert_eq!(to_portal.status, 302);
    let start = to_portal.header("location").unwrap();
    assert!(start.contains("&state="), "{start}");
    assert!(to_portal
        .header("set-cookie")
        .unwrap()
        .starts_with("__Host-ward_web_state="));
    let minted = curl(port, ca, Some(&second), &[], &start);
    assert_eq!(minted.status, 303, "{}", minted.headers);
    let callback = minted.header("location").unwrap();
    assert!(
        callback.starts_with(&format!("{base}/.ward/callback?code=wwc_")),
        "{callback}"
    );
    assert!(callback.ends_with("&return=%2Fonce"), "{callback}");
    // Another browser (no state cookie) cannot use the code: no login CSRF.
    let elsewhere = curl(port, ca, None, &[], &callback);
    assert_eq!(elsewhere.status, 403);
    assert!(elsewhere.body.contains("did not start in this browser"));
    assert!(elsewhere.header("set-cookie").is_none());
    let used = curl(port, ca, Some(&second), &[], &callback);
    assert_eq!(used.status, 302, "{}", used.body);
    assert_eq!(used.header("location").as_deref(), Some("/once"));
    assert!(
        used.headers.contains("set-cookie: __Host-ward_web=") || used.headers.contains("Set-Cookie: __Host-ward_web=")
    );
    assert!(ward_cookie(&second).is_some());
    // The same code again, from the browser it was made for: used up.
    let replay_jar = s.work.path().join("replay.jar");
    let replay_text: String = std::fs::read_to_string(&alice_jar)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("__Host-ward_web"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&replay_jar, replay_text).unwrap();
    let state = callback.split("state=").nth(1).unwrap().split('&').next().unwrap();
    let mut with_state = std::fs::read_to_string(&replay_jar).unwrap();
    with_state.push_str(&format!("{HOST}\tFALSE\t/\tTRUE\t0\t__Host-ward_web_state\t{state}\n"));
    std::fs::write(&replay_jar, with_state).unwrap();
    let replayed = curl(port, ca, Some(&replay_jar), &[], &callback);
    assert_eq!(replayed.status, 403, "a code works once");
    assert!(replayed.body.contains("not valid"), "{}", replayed.body);
    // A code for one host does not open another.
    let other_host = callback.replace("app.example", "chat.example");
    let other = curl(
        port,
        ca,
        None,
        &["--resolve", &format!("chat.example:{port}:127.0.0.1")],
        &other_host,
    );
    assert_eq!(other.status, 403);
    // An open redirect through the return target is not possible.
    let minted = curl(
        port,
        ca,
        Some(&alice_jar),
        &[],
        &start.replace("return=%2Fonce", "return=https%3A%2F%2Fevil.example%2F"),
    );
    let callback = minted.header("location").unwrap();
    assert!(callback.starts_with(&format!("{base}/.ward/callback?")), "{callback}");
    assert!(callback.ends_with("&return=%2F"), "{callback}");

    // A WebSocket round-trips through the gateway.
    let chat_jar = s.work.path().join("chat.jar");
    let chat = {
        // alice's portal session is in her jar: this browser has it too.
        std::fs::copy(&alice_jar, &chat_jar).unwrap();
        let start = curl(
            port,
            ca,
            Some(&chat_jar),
            &["--resolve", &format!("chat.example:{port}:127.0.0.1")],
            &format!("https://chat.example:{port}/"),
        );
        assert_eq!(start.status, 302);
        let done = curl(
            port,
            ca,
            Some(&chat_jar),
            &["-L", "--resolve", &format!("chat.example:{port}:127.0.0.1")],
            &start.header("location").unwrap(),
        );
        // The upstream is a WebSocket server: a plain GET is refused by it,
        // but the gateway set its cookie on the way.
        assert_ne!(done.status, 403, "{}", done.body);
        std::fs::read_to_string(&chat_jar)
            .unwrap()
            .lines()
            .filter(|l| l.contains("chat.example"))
            .find_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() == 7 && f[5] == "__Host-ward_web").then(|| f[6].to_owned())
            })
            .expect("a session on chat.example")
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ca_pem = std::fs::read_to_string(ca).unwrap();
    let mut ws = rt.block_on(websocket(port, &ca_pem, &chat));
    let echoed = rt.block_on(async {
        use futures::{SinkExt as _, StreamExt as _};
        ws.send(tokio_tungstenite::tungstenite::Message::text("hello through ward"))
            .await
            .unwrap();
        ws.next().await.unwrap().unwrap()
    });
    assert_eq!(echoed.into_text().unwrap().as_str(), "hello through ward");
    let _ = s.ws_port;

    // alice is disabled: her next request is refused, and her live
    // WebSocket is closed.
    s.ctl.run(&["user", "disable", "alice"], None).ok();
    wait_until("alice refused", Duration::from_secs(30), || {
        curl(port, ca, Some(&alice_jar), &[], &format!("{base}/after")).status == 403
    });
    let closed = rt.block_on(async {
        use futures::StreamExt as _;
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match ws.next().await {
                    None | Some(Err(_)) => return true,
                    Some(Ok(m)) if m.is_close() => return true,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .unwrap_or(false)
    });
    assert!(closed, "the live WebSocket is closed when the user is disabled");

    // The access records: method, host, path and status per request.
    let mut records = Vec::new();
    wait_until("the records", Duration::from_secs(30), || {
        let out = s.ctl.run(&["logs", "access", "-o", "json", "--limit", "500"], None);
        out.ok();
        records = out.json().as_array().unwrap().clone();
        records.iter().any(|r| r["path"] == "/after" && r["status"] == 403)
            && records.iter().any(|r| r["status"] == 101 && r["end"] != "")
    });
    let find = |path: &str| {
        records
            .iter()
            .find(|r| r["path"] == path)
            .unwrap_or_else(|| panic!("no record of {path}: {records:#?}"))
    };
    let hello = find("/hello");
    assert_eq!(hello["method"], "GET");
    assert_eq!(hello["dest_host"], "app.example");
    assert_eq!(hello["status"], 200);
    assert_eq!(hello["action"], "allow");
    assert_eq!(hello["user"], "alice");
    assert!(hello["bytes_down"].as_u64().unwrap() > 0);
    let bob = records.iter().find(|r| r["user"] == "bob").unwrap();
    assert_eq!(
        (bob["action"].as_str(), bob["status"].as_u64()),
        (Some("deny"), Some(403))
    );
    assert_eq!(bob["reason"], "no_rule_matched");
    let after = records
        .iter()
        .find(|r| r["path"] == "/after" && r["status"] == 403)
        .unwrap();
    assert_eq!(
        (after["status"].as_u64(), after["reason"].as_str()),
        (Some(403), Some("user_disabled"))
    );
    let socket = records.iter().find(|r| r["status"] == 101).unwrap();
    assert_eq!(socket["dest_host"], "chat.example");
    assert_eq!(socket["end"], "policy_changed");
    // It carried one message each way before it was cut.
    assert!(
        socket["bytes_up"].as_u64().unwrap() > 0 && socket["bytes_down"].as_u64().unwrap() > 0,
        "{socket}"
    );
    // The command-line table shows them too.
    let table = s.ctl.run(&["logs", "access"], None);
    table.ok();
    assert!(
        table.stdout.contains("GET https://app.example/hello 200"),
        "{}",
        table.stdout
    );
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn websocket(port: u16, ca_pem: &str, cookie: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let config = ward_pki::client_config_from_pem(ca_pem, &[b"http/1.1"]).unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("chat.example").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let mut req = format!("wss://chat.example:{port}/socket")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("cookie", format!("__Host-ward_web={cookie}").parse().unwrap());
    let (ws, response) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(response.status(), 101);
    ws
}

// ---- in a real browser ------------------------------------------------------------

/// An upstream page that greets the user the assertion names (decoded, not
/// verified: the end-to-end test above verifies it).
fn greeting_upstream() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let claims: Value = head
                    .lines()
                    .find_map(|l| l.strip_prefix("x-ward-assertion: "))
                    .and_then(|jwt| jwt.trim().split('.').nth(1).map(str::to_owned))
                    .and_then(|p| B64.decode(p).ok())
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or(Value::Null);
                let name = claims["name"].as_str().unwrap_or("stranger");
                let groups = claims["groups"]
                    .as_array()
                    .map(|g| g.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                let body = format!(
                    "<!DOCTYPE html><html><head><title>Team wiki</title></head>\
                     <body style=\"font-family:sans-serif;margin:3rem;background:#fbfaf7\">\
                     <h1>Team wiki</h1><p id=\"who\">Welcome, {name}.</p>\
                     <p>Groups: {groups}</p><p>Reached from a browser through Ward, without an agent. \
                     This page trusts who you are because the gateway signed it (X-Ward-Assertion).</p>\
                     </body></html>"
                );
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// The base64 SHA-256 of the web listener's certificate's public key, as
/// served for `host` (checked against the service CA on the way).
async fn leaf_spki(port: u16, ca_pem: &str, host: &str) -> String {
    use sha2::Digest as _;
    let config = ward_pki::client_config_from_pem(ca_pem, &[b"http/1.1"]).unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(host.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(cert.tbs_certificate.subject_pki.raw))
}

/// Chromium through chromedriver; the published names map to loopback,
/// everything else resolves to nothing. The web listener's certificate is
/// from the test's service CA, which this throwaway profile does not have:
/// it trusts exactly that certificate's key (`spki`).
async fn chromium(hosts: &[&str], spki: &str) -> (Driver, fantoccini::Client) {
    let mut rules: Vec<String> = hosts.iter().map(|h| format!("MAP {h} 127.0.0.1")).collect();
    rules.push("MAP * ~NOTFOUND".into());
    rules.push("EXCLUDE 127.0.0.1".into());
    common::browser::chromium(&[
        format!("--host-resolver-rules={}", rules.join(" , ")),
        format!("--ignore-certificate-errors-spki-list={spki}"),
    ])
    .await
}

/// Opens `url` on a published host and signs in through the portal's form.
async fn browser_sign_in(c: &fantoccini::Client, url: &str, user: &str) {
    use fantoccini::Locator;
    c.goto(url).await.unwrap();
    wait_for_text(c, "Sign in").await;
    for (name, value) in [("username", user), ("password", USER_PASSWORD)] {
        let field = c
            .find(Locator::Css(&format!("form[method=post] [name=\"{name}\"]")))
            .await
            .unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }
    // The organisation is filled in from the published host.
    let tenant = c
        .find(Locator::Css("form[method=post] [name=\"tenant\"]"))
        .await
        .unwrap();
    assert_eq!(tenant.prop("value").await.unwrap().as_deref(), Some("default"));
    c.find(Locator::XPath("//button[normalize-space()='Sign in']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// An allowed user signs in from a browser and sees the application; another
/// user sees the denial page. Runs with `WARD_TEST_BROWSER` (Debian's
/// chromium and chromium-driver); `WARD_SCREENSHOTS=DIR` saves
/// `clientless-app.png` and `clientless-denied.png`.
#[test]
fn clientless_in_a_browser() {
    if std::env::var_os("WARD_TEST_BROWSER").is_none() {
        eprintln!("skipped: set WARD_TEST_BROWSER to run the browser tests (needs chromium and chromium-driver)");
        return;
    }
    let s = set_up();
    let port = s.web_port;
    let upstream = greeting_upstream();
    s.ctl.run(&["group", "create", "staff"], None).ok();
    s.ctl.run(&["group", "add-member", "staff", "alice"], None).ok();
    s.ctl
        .run(
            &[
                "app",
                "create",
                "intranet",
                "--address",
                "127.0.0.1",
                "--port",
                &upstream.to_string(),
                "--public-host",
                "wiki.example",
            ],
            None,
        )
        .ok();
    s.ctl
        .run(
            &[
                "rule",
                "create",
                "--priority",
                "5",
                "--action",
                "allow",
                "--app",
                "intranet",
                "--group",
                "staff",
                "--agentless",
            ],
            None,
        )
        .ok();
    // The certificate is reissued for the new host.
    wait_until("wiki.example served", Duration::from_secs(30), || {
        curl(
            port,
            &s.ca,
            None,
            &["--resolve", &format!("wiki.example:{port}:127.0.0.1")],
            &format!("https://wiki.example:{port}/"),
        )
        .status
            == 302
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("https://wiki.example:{port}/");
        let spki = leaf_spki(port, &std::fs::read_to_string(&s.ca).unwrap(), "wiki.example").await;
        let (_driver, alice) = chromium(&["wiki.example"], &spki).await;
        browser_sign_in(&alice, &url, "alice").await;
        wait_for_text(&alice, "Welcome, alice.").await;
        assert!(page_text(&alice).await.contains("Groups: staff"));
        assert_eq!(alice.current_url().await.unwrap().host_str(), Some("wiki.example"));
        screenshot(&alice, "clientless-app").await;
        alice.close().await.unwrap();

        let (_driver, bob) = chromium(&["wiki.example"], &spki).await;
        browser_sign_in(&bob, &url, "bob").await;
        wait_for_text(&bob, "Access denied").await;
        let text = page_text(&bob).await;
        assert!(text.contains("bob") && text.contains("wiki.example"), "{text}");
        assert!(text.contains("No access rule admits you"), "{text}");
        screenshot(&bob, "clientless-denied").await;
        bob.close().await.unwrap();
    });
}
