//! LDAP identity sources against a real `slapd` (Debian's `slapd` and
//! `ldap-utils`), started by the test on loopback with its own
//! configuration, an mdb database in a temporary directory and a TLS
//! certificate from a test CA made with `ward-pki`. Never the system's
//! slapd service.
//!
//! Gated by `WARD_TEST_LDAP`: skipped when unset; when set, a missing
//! slapd fails the tests.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const BASE: &str = "dc=corp,dc=example";
const ROOT_DN: &str = "cn=admin,dc=corp,dc=example";
const ROOT_PW: &str = "root-secret-of-the-test";
const BIND_DN: &str = "cn=ward,dc=corp,dc=example";
const BIND_PW: &str = "service-account-password-1";

fn seed() -> String {
    let mut s = format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: corp\ndc: corp\n\n\
         dn: {BIND_DN}\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: ward\nsn: ward\nuserPassword: {BIND_PW}\n\n\
         dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n"
    );
    for (uid, dept, mail) in [
        ("alice", "Engineering", "alice@corp.example"),
        ("bob", "Sales", "bob@other.example"),
        ("carol", "Engineering", "carol@CORP.example"),
        ("admin", "IT", "admin@corp.example"),
    ] {
        s.push_str(&format!(
            "dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid} Example\nsn: Example\n\
             mail: {mail}\ndepartmentNumber: {dept}\nuserPassword: {uid}-password-1\n\n"
        ));
    }
    s.push_str(&format!(
        "dn: cn=engineers,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: engineers\n\
         member: uid=alice,ou=people,{BASE}\nmember: uid=carol,ou=people,{BASE}\n\n\
         dn: cn=sales,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: sales\nmember: uid=bob,ou=people,{BASE}\n\n"
    ));
    s
}

/// A slapd of the test's own, killed on drop.
struct Slapd {
    child: Child,
    dir: tempfile::TempDir,
    ldaps_port: u16,
    ldap_port: u16,
    ca_pem: String,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn find_slapd() -> PathBuf {
    for p in ["/usr/sbin/slapd", "/usr/local/sbin/slapd", "/usr/libexec/slapd"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("WARD_TEST_LDAP is set but slapd is not installed (apt-get install slapd ldap-utils)");
}

impl Slapd {
    fn start() -> Option<Slapd> {
        if std::env::var_os("WARD_TEST_LDAP").is_none() {
            eprintln!(
                "skipped: set WARD_TEST_LDAP=1 (with slapd and ldap-utils installed) to run against a real LDAP server"
            );
            return None;
        }
        let slapd = find_slapd();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("db")).unwrap();
        let ca = ward_pki::CertificateAuthority::generate("Ward test LDAP CA").unwrap();
        let cert = ca
            .issue_server(
                &["localhost".to_owned()],
                &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
                Duration::from_secs(86_400),
            )
            .unwrap();
        std::fs::write(d.join("cert.pem"), &cert.cert_pem).unwrap();
        std::fs::write(d.join("key.pem"), &cert.key_pem).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             pidfile {d}/slapd.pid\n\
             TLSCertificateFile {d}/cert.pem\n\
             TLSCertificateKeyFile {d}/key.pem\n\
             database mdb\n\
             suffix \"{BASE}\"\n\
             rootdn \"{ROOT_DN}\"\n\
             rootpw {ROOT_PW}\n\
             directory {d}/db\n\
             access to attrs=userPassword by self read by anonymous auth by * none\n\
             access to * by users read by * none\n",
            d = d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).unwrap();
        std::fs::write(d.join("seed.ldif"), seed()).unwrap();
        let slapadd = slapd.with_file_name("slapadd");
        let out = Command::new(&slapadd)
            .args(["-f", &format!("{}/slapd.conf", d.display()), "-l"])
            .arg(d.join("seed.ldif"))
            .output()
            .expect("slapadd");
        assert!(
            out.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (ldaps_port, ldap_port) = (free_port(), free_port());
        let sock = d.join("ldapi");
        let urls = format!(
            "ldaps://127.0.0.1:{ldaps_port}/ ldap://127.0.0.1:{ldap_port}/ ldapi://{}/",
            sock.display().to_string().replace('/', "%2F")
        );
        let child = Command::new(&slapd)
            .args(["-f", &format!("{}/slapd.conf", d.display()), "-h", &urls, "-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd");
        let s = Slapd {
            child,
            dir,
            ldaps_port,
            ldap_port,
            ca_pem: ca.cert_pem(),
        };
        // Wait for both listeners (slapd opens them before serving).
        for port in [ldaps_port, ldap_port] {
            let mut up = false;
            for _ in 0..200 {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(up, "slapd did not open port {port}");
        }
        Some(s)
    }

    /// Runs an ldap-utils tool as the directory's root over the local socket.
    fn admin(&self, tool: &str, input: &str) {
        let sock = self.dir.path().join("ldapi").display().to_string().replace('/', "%2F");
        let mut child = Command::new(tool)
            .args(["-x", "-H", &format!("ldapi://{sock}"), "-D", ROOT_DN, "-w", ROOT_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldap-utils");
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn ldap_source(name: &str, url: &str, ca_pem: &str) -> Value {
    json!({
        "name": name,
        "kind": "ldap",
        "ldap": {
            "url": url,
            "ca_pem": ca_pem,
            "bind_dn": BIND_DN,
            "bind_password": BIND_PW,
            "user_base": format!("ou=people,{BASE}"),
            "group_base": format!("ou=groups,{BASE}"),
            "sync_attributes": ["department=departmentNumber"],
            "sync_interval": "15m"
        }
    })
}

async fn create_source(server: &Server, owner: &str, body: Value) -> Value {
    let (s, v) = server
        .api(Method::POST, "/api/v1/identity-sources", owner, Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

/// Signs in through the LDAP source's form of the portal's sign-in page.
async fn ldap_sign_in(b: &mut Browser, source_id: &str, user: &str, password: &str) -> Page {
    let form = b.get("/portal/login?tenant=default").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body.contains(&format!("/portal/ldap/{source_id}/login")),
        "{}",
        form.body
    );
    b.post(
        &format!("/portal/ldap/{source_id}/login"),
        &[
            ("csrf", &form.csrf()),
            ("username", user),
            ("password", password),
            ("next", "/portal"),
        ],
    )
    .await
}

async fn user(server: &Server, owner: &str, name: &str) -> (StatusCode, Value) {
    server
        .api(Method::GET, &format!("/api/v1/users/{name}"), owner, None)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_sign_in_through_ldaps_and_starttls() {
    let Some(dir) = Slapd::start() else { return };
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    let ldaps = create_source(
        &server,
        &owner,
        ldap_source("corp", &format!("ldaps://127.0.0.1:{}", dir.ldaps_port), &dir.ca_pem),
    )
    .await;
    // StartTLS on ldap://, to a certificate naming localhost.
    let starttls = create_source(
        &server,
        &owner,
        ldap_source(
            "corp-starttls",
            &format!("ldap://localhost:{}", dir.ldap_port),
            &dir.ca_pem,
        ),
    )
    .await;
    assert_eq!(ldaps["kind"], "ldap");
    let text = ldaps.to_string();
    assert!(!text.contains(BIND_PW), "the bind password is never returned: {text}");
    assert_eq!(ldaps["ldap"]["has_ca"], true);

    let mut b = Browser::new(&server);
    let page = ldap_sign_in(&mut b, ldaps["id"].as_str().unwrap(), "alice", "alice-password-1").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some("/portal"));
    let home = b.get("/portal").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("alice"), "{}", home.body);

    let (s, alice) = user(&server, &owner, "alice").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(alice["source"], ldaps["id"]);
    assert_eq!(alice["attributes"]["email"], "alice@corp.example");
    assert_eq!(alice["attributes"]["department"], "Engineering");
    assert_eq!(alice["groups"], json!(["engineers"]), "{alice}");

    let mut b2 = Browser::new(&server);
    let page = ldap_sign_in(&mut b2, starttls["id"].as_str().unwrap(), "bob", "bob-password-1").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let (_, bob) = user(&server, &owner, "bob").await;
    assert_eq!(bob["groups"], json!(["sales"]), "{bob}");

    // The trust is the configured CA only: a source with another CA fails the handshake.
    let other_ca = ward_pki::CertificateAuthority::generate("Another CA").unwrap();
    let wrong = create_source(
        &server,
        &owner,
        ldap_source(
            "corp-wrong-ca",
            &format!("ldaps://127.0.0.1:{}", dir.ldaps_port),
            &other_ca.cert_pem(),
        ),
    )
    .await;
    let mut b3 = Browser::new(&server);
    let page = ldap_sign_in(&mut b3, wrong["id"].as_str().unwrap(), "carol", "carol-password-1").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{}", page.body);
    assert!(!b3
        .cookies
        .keys()
        .any(|k| k.contains("ward_portal") && !k.contains("signin")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_empty_and_injected_credentials_are_refused() {
    let Some(dir) = Slapd::start() else { return };
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    let src = create_source(
        &server,
        &owner,
        ldap_source("corp", &format!("ldaps://127.0.0.1:{}", dir.ldaps_port), &dir.ca_pem),
    )
    .await;
    let id = src["id"].as_str().unwrap().to_owned();
    let mut b = Browser::new(&server);
    let refused = |p: &Page| {
        assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{}", p.body);
        assert!(p.body.contains("wrong user name or password"), "{}", p.body);
    };
    refused(&ldap_sign_in(&mut b, &id, "alice", "not-her-password").await);
    // An empty password would be an anonymous bind: refused before any bind.
    refused(&ldap_sign_in(&mut b, &id, "alice", "").await);
    // Injection: each is escaped, so it can only name a user literally
    // called so, and there is none. With a password of any real user.
    for name in [
        "*",
        "*)(uid=*",
        "admin)(|(uid=*",
        "admin*",
        "a*",
        "alice)(userPassword=*",
        "\\2a",
        "ali\\63e",
        "(uid=alice)",
        "alice\0",
        "alice\u{7f}",
        "alice\n",
    ] {
        for pw in ["alice-password-1", "admin-password-1"] {
            refused(&ldap_sign_in(&mut b, &id, name, pw).await);
        }
    }
    // Nobody was created by any of it.
    let (_, users) = server.api(Method::GET, "/api/v1/users", &owner, None).await;
    assert_eq!(users["items"], json!([]), "{users}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_password_after_refusals_and_lockout() {
    let Some(dir) = Slapd::start() else { return };
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    let src = create_source(
        &server,
        &owner,
        ldap_source("corp", &format!("ldaps://127.0.0.1:{}", dir.ldaps_port), &dir.ca_pem),
    )
    .await;
    let id = src["id"].as_str().unwrap().to_owned();
    let mut b = Browser::new(&server);
    assert_eq!(
        ldap_sign_in(&mut b, &id, "carol", "carol-password-1").await.status,
        StatusCode::SEE_OTHER
    );
    // Carol, now a linked user, gets locked after repeated wrong passwords.
    let mut locked = false;
    for _ in 0..12 {
        let p = ldap_sign_in(&mut Browser::new(&server), &id, "carol", "wrong-password-x").await;
        if p.status == StatusCode::TOO_MANY_REQUESTS || p.body.contains("locked") {
            locked = true;
            break;
        }
        assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{}", p.body);
    }
    assert!(locked, "repeated failures lock the user or the address out");
    let p = ldap_sign_in(&mut Browser::new(&server), &id, "carol", "carol-password-1").await;
    assert_ne!(
        p.status,
        StatusCode::SEE_OTHER,
        "a locked-out sign-in is refused even with the right password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_groups_rules_dynamic_groups_and_vanished_users() {
    let Some(dir) = Slapd::start() else { return };
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    create_source(
        &server,
        &owner,
        ldap_source("corp", &format!("ldaps://127.0.0.1:{}", dir.ldaps_port), &dir.ca_pem),
    )
    .await;
    let (s, r) = server
        .api(Method::POST, "/api/v1/identity-sources/corp/sync", &owner, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        (
            &r["users_seen"],
            &r["users_created"],
            &r["users_disabled"],
            &r["groups_seen"]
        ),
        (&json!(4), &json!(4), &json!(0), &json!(2)),
        "{r}"
    );
    let (_, src) = server
        .api(Method::GET, "/api/v1/identity-sources/corp", &owner, None)
        .await;
    assert_eq!(src["ldap"]["last_sync_ok"], true, "{src}");
    assert!(src["ldap"]["last_sync_at"].is_string());
    assert!(!src.to_string().contains(BIND_PW));
    let (_, carol) = user(&server, &owner, "carol").await;
    assert_eq!(carol["groups"], json!(["engineers"]), "{carol}");

    // A rule naming a synced group allows its members.
    let (s, v) = server
        .api(
            Method::POST,
            "/api/v1/apps",
            &owner,
            Some(json!({"name": "db", "addresses": ["db.corp.example"], "ports": ["5432"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = server
        .api(
            Method::POST,
            "/api/v1/rules",
            &owner,
            Some(json!({"priority": 10, "action": "allow", "apps": ["db"], "groups": ["engineers"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let test = |u: &str| json!({"user": u, "to": "db.corp.example:5432"});
    let decide = |u: &'static str| {
        let server = &server;
        let owner = owner.clone();
        async move {
            let (s, v) = server
                .api(Method::POST, "/api/v1/rules/test", &owner, Some(test(u)))
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["decision"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(decide("carol").await, "allow");
    assert_eq!(decide("bob").await, "deny");

    // Dynamic groups: by department, and by email domain (any case).
    let (s, g) = server
        .api(
            Method::POST,
            "/api/v1/groups",
            &owner,
            Some(json!({"name": "sales-dyn", "conditions": ["department=Sales"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    assert_eq!(g["members"], json!(["bob"]), "{g}");
    let (s, g) = server
        .api(
            Method::POST,
            "/api/v1/groups",
            &owner,
            Some(json!({"name": "corp-mail", "conditions": ["email_domain=corp.example", "department=Engineering"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    assert_eq!(g["members"], json!(["alice", "carol"]), "{g}");
    assert_eq!(
        g["conditions"],
        json!(["department=Engineering", "email_domain=corp.example"])
    );
    let (s, v) = server
        .api(
            Method::POST,
            "/api/v1/rules",
            &owner,
            Some(json!({"priority": 5, "action": "allow", "apps": ["db"], "groups": ["sales-dyn"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        decide("bob").await,
        "allow",
        "a rule naming a dynamic group applies at once"
    );
    // Changing the group's conditions takes bob out again.
    let (s, g) = server
        .api(
            Method::PATCH,
            "/api/v1/groups/sales-dyn",
            &owner,
            Some(json!({"conditions": ["department=Marketing"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{g}");
    assert_eq!(g["members"], json!([]));
    assert_eq!(decide("bob").await, "deny");
    // A local user's attributes set by an administrator count too.
    let (s, _) = server
        .api(Method::POST, "/api/v1/users", &owner, Some(json!({"name": "dave"})))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, dave) = server
        .api(
            Method::PATCH,
            "/api/v1/users/dave",
            &owner,
            Some(json!({"attributes": {"department": "Marketing", "email": "dave@corp.example"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{dave}");
    assert_eq!(dave["groups"], json!(["sales-dyn"]), "{dave}");
    assert_eq!(decide("dave").await, "allow");
    let (s, v) = server
        .api(
            Method::PATCH,
            "/api/v1/users/dave",
            &owner,
            Some(json!({"attributes": {"email_domain": "x"}})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_field"))
    );
    let (s, v) = server
        .api(
            Method::POST,
            "/api/v1/groups",
            &owner,
            Some(json!({"name": "bad", "conditions": ["department"]})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_field"))
    );

    // Carol leaves the directory: the next sync disables her (not deletes),
    // and her rule no longer lets her through.
    dir.admin("ldapdelete", &format!("uid=carol,ou=people,{BASE}\n"));
    dir.admin(
        "ldapmodify",
        &format!("dn: uid=bob,ou=people,{BASE}\nchangetype: modify\nreplace: departmentNumber\ndepartmentNumber: Marketing\n"),
    );
    let (s, r) = server
        .api(Method::POST, "/api/v1/identity-sources/corp/sync", &owner, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!((&r["users_seen"], &r["users_disabled"]), (&json!(3), &json!(1)), "{r}");
    let (s, carol) = user(&server, &owner, "carol").await;
    assert_eq!(s, StatusCode::OK, "disabled, not deleted");
    assert_eq!(carol["disabled"], true);
    let (_, bob) = user(&server, &owner, "bob").await;
    assert_eq!(bob["attributes"]["department"], "Marketing");
    assert_eq!(bob["groups"], json!(["sales", "sales-dyn"]), "{bob}");
    assert_eq!(
        decide("bob").await,
        "allow",
        "bob's new department puts him in the dynamic group"
    );
    // And a disabled user cannot sign in through the portal either.
    let (_, src) = server
        .api(Method::GET, "/api/v1/identity-sources/corp", &owner, None)
        .await;
    let mut b = Browser::new(&server);
    let p = ldap_sign_in(&mut b, src["id"].as_str().unwrap(), "carol", "carol-password-1").await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{}", p.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_tenants_and_sub_accounts_cannot_reach_a_source() {
    let Some(dir) = Slapd::start() else { return };
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    create_source(
        &server,
        &owner,
        ldap_source("corp", &format!("ldaps://127.0.0.1:{}", dir.ldaps_port), &dir.ca_pem),
    )
    .await;
    // An auditor of the tenant reads but cannot sync.
    server
        .create_account(&owner, "auditor1", "auditor", "auditor-password-1")
        .await;
    let auditor = server.token("default", "auditor1", "auditor-password-1").await;
    let (s, v) = server
        .api(Method::GET, "/api/v1/identity-sources/corp", &auditor, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!v.to_string().contains(BIND_PW));
    let (s, _) = server
        .api(Method::POST, "/api/v1/identity-sources/corp/sync", &auditor, None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Another tenant's owner sees no such source.
    let op = server.token("system", "operator", PW).await;
    let (s, v) = server
        .api(
            Method::POST,
            "/api/v1/tenants",
            &op,
            Some(json!({"name": "other", "owner_password": "other-owner-pass-1"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let other = server.token("other", "admin", "other-owner-pass-1").await;
    for (m, path) in [
        (Method::GET, "/api/v1/identity-sources/corp"),
        (Method::POST, "/api/v1/identity-sources/corp/sync"),
        (Method::DELETE, "/api/v1/identity-sources/corp"),
    ] {
        let (s, v) = server.api(m, path, &other, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    let (_, list) = server.api(Method::GET, "/api/v1/identity-sources", &other, None).await;
    assert_eq!(list, json!([]));
    // The operator does not reach inside a tenant.
    let (s, _) = server
        .api(Method::POST, "/api/v1/identity-sources/corp/sync", &op, None)
        .await;
    assert!(s == StatusCode::NOT_FOUND || s == StatusCode::FORBIDDEN, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_refused() {
    // No directory needed: everything here is refused before connecting.
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    let base = ldap_source("x", "ldaps://127.0.0.1:636", "");
    for (field, value) in [
        ("url", json!("http://127.0.0.1")),
        ("url", json!("ldaps://")),
        ("url", json!("ldapi:///var/run/slapd")),
        ("user_filter", json!("(uid=fixed)")),
        ("user_filter", json!("uid={username}))(")),
        ("bind_password", json!("")),
        ("ca_pem", json!("not a certificate")),
        ("group_membership", json!("owner")),
        ("sync_interval", json!("10s")),
        ("sync_attributes", json!(["email_domain=mail"])),
        ("user_base", json!("no equals sign")),
    ] {
        let mut body = base.clone();
        body["ldap"][field] = value;
        if field != "ca_pem" {
            body["ldap"].as_object_mut().unwrap().remove("ca_pem");
        }
        let (s, v) = server
            .api(Method::POST, "/api/v1/identity-sources", &owner, Some(body))
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_field")),
            "{field}: {v}"
        );
    }
    let mut body = base.clone();
    body["ldap"]["surprise"] = json!(1);
    let (s, _) = server
        .api(Method::POST, "/api/v1/identity-sources", &owner, Some(body))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_groups_follow_attributes_without_a_directory() {
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    for name in ["erin", "frank"] {
        let (s, v) = server
            .api(Method::POST, "/api/v1/users", &owner, Some(json!({"name": name})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) = server
        .api(
            Method::PATCH,
            "/api/v1/users/erin",
            &owner,
            Some(json!({"attributes": {"department": "Engineering", "email": "erin@Corp.Example"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, g) = server
        .api(
            Method::POST,
            "/api/v1/groups",
            &owner,
            Some(json!({"name": "eng", "conditions": ["department=Engineering", "email_domain=corp.example"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    assert_eq!(g["members"], json!(["erin"]));
    server
        .api(
            Method::POST,
            "/api/v1/apps",
            &owner,
            Some(json!({"name": "wiki", "addresses": ["wiki.corp.example"], "ports": ["443"]})),
        )
        .await;
    let (s, v) = server
        .api(
            Method::POST,
            "/api/v1/rules",
            &owner,
            Some(json!({"priority": 1, "action": "allow", "apps": ["wiki"], "groups": ["eng"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let decide = |u: &'static str| {
        let (server, owner) = (&server, owner.clone());
        async move {
            let (_, v) = server
                .api(
                    Method::POST,
                    "/api/v1/rules/test",
                    &owner,
                    Some(json!({"user": u, "to": "wiki.corp.example:443"})),
                )
                .await;
            v["decision"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(decide("erin").await, "allow");
    assert_eq!(decide("frank").await, "deny");
    // frank gets the attributes: in at once; erin moves department: out.
    server
        .api(
            Method::PATCH,
            "/api/v1/users/frank",
            &owner,
            Some(json!({"attributes": {"department": "Engineering", "email": "frank@corp.example"}})),
        )
        .await;
    server
        .api(
            Method::PATCH,
            "/api/v1/users/erin",
            &owner,
            Some(json!({"attributes": {"department": "Sales", "email": "erin@corp.example"}})),
        )
        .await;
    assert_eq!(decide("frank").await, "allow");
    assert_eq!(decide("erin").await, "deny");
    let (_, frank) = user(&server, &owner, "frank").await;
    assert_eq!(frank["groups"], json!(["eng"]));
    // An auditor cannot change attributes or conditions.
    server
        .create_account(&owner, "auditor1", "auditor", "auditor-password-1")
        .await;
    let auditor = server.token("default", "auditor1", "auditor-password-1").await;
    let (s, _) = server
        .api(
            Method::PATCH,
            "/api/v1/users/frank",
            &auditor,
            Some(json!({"attributes": {}})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = server
        .api(
            Method::PATCH,
            "/api/v1/groups/eng",
            &auditor,
            Some(json!({"conditions": []})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The trail names the changes.
    let trail = server.audit(&owner, "action=group.update").await;
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(trail[0]["result"], "denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_adds_and_syncs_a_directory() {
    let Some(dir) = Slapd::start() else { return };
    let server = Server::start().await;
    let mut admin = Browser::new(&server);
    admin.sign_in("default", "admin", PW).await;
    let csrf = admin.csrf_of("/identity-sources").await;
    let url = format!("ldaps://127.0.0.1:{}", dir.ldaps_port);
    let user_base = format!("ou=people,{BASE}");
    let group_base = format!("ou=groups,{BASE}");
    let page = admin
        .post(
            "/identity-sources/ldap",
            &[
                ("csrf", &csrf),
                ("name", "corp"),
                ("url", &url),
                ("bind_dn", BIND_DN),
                ("bind_password", BIND_PW),
                ("user_base", &user_base),
                ("group_base", &group_base),
                ("group_membership", "member"),
                ("sync_attributes", "department=departmentNumber"),
                ("ca_pem", &dir.ca_pem),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let list = admin.get("/identity-sources").await;
    assert!(list.body.contains("never synced"), "{}", list.body);
    assert!(!list.body.contains(BIND_PW));
    // Without the CSRF token: refused.
    let page = admin.post("/identity-sources/corp/sync", &[]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = admin.post("/identity-sources/corp/sync", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let list = admin.get("/identity-sources?done=idp-synced").await;
    assert!(list.body.contains("4 users seen, 4 created"), "{}", list.body);
    let users = admin.get("/users").await;
    assert!(users.body.contains("department=Engineering"), "{}", users.body);
}

fn totp_now(secret: &str, offset: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let bytes = totp_rs::Secret::Encoded(secret.to_owned()).to_bytes().unwrap();
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes)
        .unwrap()
        .generate(now + offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_user_with_two_step_sign_in_gives_a_code_after_the_password() {
    let Some(dir) = Slapd::start() else { return };
    let server = Server::start().await;
    let owner = server.token("default", "admin", PW).await;
    let src = create_source(
        &server,
        &owner,
        ldap_source("corp", &format!("ldaps://127.0.0.1:{}", dir.ldaps_port), &dir.ca_pem),
    )
    .await;
    let id = src["id"].as_str().unwrap().to_owned();
    let mut b = Browser::new(&server);
    assert_eq!(
        ldap_sign_in(&mut b, &id, "carol", "carol-password-1").await.status,
        StatusCode::SEE_OTHER
    );
    // Carol sets up two-step sign-in.
    let csrf = b.csrf_of("/portal/account").await;
    let page = b.post("/portal/account/mfa", &[("csrf", &csrf)]).await;
    let at = page.body.find("Secret: <code>").unwrap() + "Secret: <code>".len();
    let secret = page.body[at..at + page.body[at..].find('<').unwrap()].to_owned();
    let page = b
        .post(
            "/portal/account/mfa/confirm",
            &[("csrf", &csrf), ("code", &totp_now(&secret, 0))],
        )
        .await;
    assert!(page.body.contains("Two-step sign-in is on"), "{}", page.body);

    // The directory's password alone starts no session.
    let mut c = Browser::new(&server);
    let form = ldap_sign_in(&mut c, &id, "carol", "carol-password-1").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(form.body.contains("action=\"/portal/login/mfa\""), "{}", form.body);
    assert!(!c.cookies.contains_key("ward_portal"));
    assert_eq!(c.get("/portal").await.status, StatusCode::SEE_OTHER);
    let at = form.body.find("name=\"pending\" value=\"").unwrap() + "name=\"pending\" value=\"".len();
    let pending = form.body[at..at + form.body[at..].find('"').unwrap()].to_owned();
    let page = c
        .post(
            "/portal/login/mfa",
            &[
                ("csrf", &form.csrf()),
                ("pending", &pending),
                ("code", &totp_now(&secret, 30)),
            ],
        )
        .await;
    assert_eq!(page.location(), Some("/portal"), "{}", page.body);
    assert_eq!(c.get("/portal").await.status, StatusCode::OK);
    let events = server.audit(&owner, "action=portal.login_code").await;
    assert!(
        events
            .iter()
            .any(|e| e["result"] == "ok" && e["detail"].as_str().is_some_and(|d| d.contains("through corp"))),
        "{events:?}"
    );
}
