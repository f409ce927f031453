//! End-to-end tests of ward-pki: CA generation and loading, issuance, PEM
//! helpers, and real TLS 1.3 handshakes over loopback TCP.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ProtocolVersion;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use ward_pki::{
    certs_from_pem, client_config, client_config_from_pem, fingerprint_der, load_certs, load_or_create_ca,
    load_private_key, server_config, CertificateAuthority, IssuedCert, PkiError, CA_CERT_FILE, CA_KEY_FILE,
};
use x509_parser::extensions::GeneralName;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const DAY: Duration = Duration::from_secs(24 * 3600);
const STEP: Duration = Duration::from_secs(10);

fn localhost_cert(ca: &CertificateAuthority) -> IssuedCert {
    ca.issue_server(&["localhost".to_owned()], &[LOCALHOST], DAY)
        .expect("issue server cert")
}

fn server_cfg(issued: &IssuedCert) -> Arc<rustls::ServerConfig> {
    server_config(
        issued.chain_der().expect("chain"),
        issued.private_key_der().expect("key"),
        &[b"h2", b"http/1.1"],
    )
    .expect("server config")
}

/// What the client saw: negotiated version, negotiated ALPN, reply bytes.
type ClientView = (Option<ProtocolVersion>, Option<Vec<u8>>, Vec<u8>);

/// Outcome of one connection attempt, as seen by client and server.
struct Outcome {
    client: Result<ClientView, String>,
    server: Result<Vec<u8>, String>,
}

/// Runs a TLS server on 127.0.0.1:0 for one connection that echoes
/// "pong:" + the 4 bytes it reads, and a client that connects to it with
/// `server_name`, sends "ping" and reads the reply.
async fn handshake(server: Arc<rustls::ServerConfig>, client: Arc<rustls::ClientConfig>, server_name: &str) -> Outcome {
    let listener = TcpListener::bind(SocketAddr::from((LOCALHOST, 0)))
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let acceptor = TlsAcceptor::from(server);
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        let mut reply = b"pong:".to_vec();
        reply.extend_from_slice(&buf);
        tls.write_all(&reply).await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(buf.to_vec())
    });

    let name = ServerName::try_from(server_name.to_owned()).expect("server name");
    let client_result = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut tls = TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        let version = conn.protocol_version();
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        tls.read_to_end(&mut reply).await.map_err(|e| e.to_string())?;
        Ok((version, alpn, reply))
    };
    let client = tokio::time::timeout(STEP, client_result)
        .await
        .unwrap_or_else(|_| Err("client timed out".to_owned()));
    let server = match tokio::time::timeout(STEP, server_task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(format!("server task failed: {join}")),
        Err(_) => Err("server timed out".to_owned()),
    };
    Outcome { client, server }
}

#[tokio::test]
async fn tls13_handshake_with_alpn_h2() {
    let ca = CertificateAuthority::generate("Ward test CA").expect("ca");
    let issued = localhost_cert(&ca);
    let client = client_config(&[ca.cert_der()], &[b"h2"]).expect("client config");

    for name in ["localhost", "127.0.0.1"] {
        let outcome = handshake(server_cfg(&issued), client.clone(), name).await;
        let (version, alpn, reply) = outcome.client.expect("client handshake and exchange");
        assert_eq!(version, Some(ProtocolVersion::TLSv1_3), "{name}");
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "{name}");
        assert_eq!(reply, b"pong:ping", "{name}");
        assert_eq!(outcome.server.expect("server side"), b"ping");
    }
}

#[tokio::test]
async fn alpn_http11_and_client_from_pem() {
    let ca = CertificateAuthority::generate("Ward test CA").expect("ca");
    let issued = localhost_cert(&ca);
    let client = client_config_from_pem(&ca.cert_pem(), &[b"http/1.1"]).expect("client config");
    let outcome = handshake(server_cfg(&issued), client, "localhost").await;
    let (version, alpn, _) = outcome.client.expect("handshake");
    assert_eq!(version, Some(ProtocolVersion::TLSv1_3));
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn client_trusting_another_ca_is_rejected() {
    let ca = CertificateAuthority::generate("Ward test CA").expect("ca");
    let other = CertificateAuthority::generate("Ward test CA").expect("other ca");
    assert_ne!(ca.fingerprint(), other.fingerprint());
    let issued = localhost_cert(&ca);
    let client = client_config(&[other.cert_der()], &[b"h2"]).expect("client config");

    let outcome = handshake(server_cfg(&issued), client, "localhost").await;
    let err = outcome.client.expect_err("handshake must fail");
    assert!(
        err.to_lowercase().contains("certificate"),
        "unexpected client error: {err}"
    );
    assert!(outcome.server.is_err(), "server must not complete the exchange");
}

#[tokio::test]
async fn wrong_server_name_is_rejected() {
    let ca = CertificateAuthority::generate("Ward test CA").expect("ca");
    let issued = localhost_cert(&ca);
    let client = client_config(&[ca.cert_der()], &[b"h2"]).expect("client config");
    let outcome = handshake(server_cfg(&issued), client, "ward.example").await;
    let err = outcome.client.expect_err("name mismatch must fail");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn tls12_only_client_is_rejected() {
    let ca = CertificateAuthority::generate("Ward test CA").expect("ca");
    let issued = localhost_cert(&ca);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der()).expect("root");
    let tls12_client = rustls::ClientConfig::builder_with_provider(ward_pki::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("tls12 builder")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let outcome = handshake(server_cfg(&issued), Arc::new(tls12_client), "localhost").await;
    assert!(outcome.client.is_err(), "TLS 1.2 must not be negotiated");
    assert!(outcome.server.is_err());
}

#[tokio::test]
async fn ca_loaded_from_pem_issues_verifiable_certs() {
    let ca = CertificateAuthority::generate("Ward reload CA").expect("ca");
    let reloaded = CertificateAuthority::from_pem(&ca.cert_pem(), &ca.key_pem()).expect("reload");
    let issued = localhost_cert(&reloaded);
    let client = client_config(&[ca.cert_der()], &[b"h2"]).expect("client config");
    let outcome = handshake(server_cfg(&issued), client, "localhost").await;
    let (version, _, reply) = outcome.client.expect("handshake with reloaded CA's cert");
    assert_eq!(version, Some(ProtocolVersion::TLSv1_3));
    assert_eq!(reply, b"pong:ping");
}

#[test]
fn from_pem_round_trips() {
    let ca = CertificateAuthority::generate("Ward round trip").expect("ca");
    let fp = ca.fingerprint();
    assert!(fp.starts_with("sha256:"));
    let hex = &fp["sha256:".len()..];
    assert_eq!(hex.len(), 64);
    assert!(hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    assert_eq!(fp, fingerprint_der(&ca.cert_der()));

    let again = CertificateAuthority::from_pem(&ca.cert_pem(), &ca.key_pem()).expect("from_pem");
    assert_eq!(again.fingerprint(), fp);
    assert_eq!(again.cert_pem(), ca.cert_pem());
    assert_eq!(again.key_pem(), ca.key_pem());
    assert_eq!(again.cert_der(), ca.cert_der());
    assert_eq!(again.subject(), "CN=Ward round trip");
    assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));

    // Debug output never contains the key.
    let debug = format!("{ca:?}");
    assert!(debug.contains(&fp));
    assert!(!debug.contains("PRIVATE KEY"));
}

#[test]
fn ca_certificate_properties() {
    let ca = CertificateAuthority::generate("Ward props").expect("ca");
    let der = ca.cert_der();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parse");
    assert!(cert.is_ca());
    let bc = cert.basic_constraints().expect("bc").expect("bc present");
    assert!(bc.critical);
    let ku = cert.key_usage().expect("ku").expect("ku present").value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    assert_eq!(
        cert.public_key().algorithm.algorithm,
        x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
    );
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    let ten_years = 3650 * 24 * 3600;
    assert!(lifetime >= ten_years, "CA lifetime {lifetime}s");
    assert!(lifetime <= ten_years + 4 * 24 * 3600, "CA lifetime {lifetime}s");
    assert_eq!(cert.subject().to_string(), "CN=Ward props");
    assert_eq!(cert.subject(), cert.issuer());
}

#[test]
fn server_certificate_properties() {
    let ca = CertificateAuthority::generate("Ward props").expect("ca");
    let issued = ca
        .issue_server(
            &["localhost".to_owned(), "ward.example".to_owned()],
            &[LOCALHOST, IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)],
            DAY,
        )
        .expect("issue");
    let leaf = issued.cert_der().expect("leaf der");
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).expect("parse leaf");
    let ca_der = ca.cert_der();
    let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).expect("parse ca");

    assert!(!cert.is_ca());
    assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
    assert_eq!(cert.subject().to_string(), "CN=localhost");
    let eku = cert.extended_key_usage().expect("eku").expect("eku present").value;
    assert!(eku.server_auth);
    assert!(!eku.client_auth);
    let sans = &cert
        .subject_alternative_name()
        .expect("san")
        .expect("san present")
        .value
        .general_names;
    assert!(sans.contains(&GeneralName::DNSName("localhost")));
    assert!(sans.contains(&GeneralName::DNSName("ward.example")));
    assert!(sans.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
    assert_eq!(sans.len(), 4);
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert!((86_400..=86_400 + 600).contains(&lifetime), "leaf lifetime {lifetime}s");
    assert!(cert.validity().is_valid());

    // chain_pem is the leaf followed by the CA.
    let chain = issued.chain_der().expect("chain");
    assert_eq!(chain, vec![leaf, ca.cert_der()]);
    assert!(issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(!format!("{issued:?}").contains("BEGIN PRIVATE KEY"));
    assert_ne!(issued.fingerprint().expect("fp"), ca.fingerprint());
}

#[test]
fn leaf_validity_is_capped_at_ca_expiry() {
    let ca = CertificateAuthority::generate("Ward cap").expect("ca");
    let issued = ca
        .issue_server(&["localhost".to_owned()], &[], 100 * 365 * DAY)
        .expect("issue");
    let leaf = issued.cert_der().expect("leaf");
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).expect("parse");
    assert_eq!(cert.validity().not_after.timestamp(), ca.not_after().unix_timestamp());
    // Absurd durations do not overflow either.
    ca.issue_server(&["localhost".to_owned()], &[], Duration::MAX)
        .expect("issue with Duration::MAX");
}

#[test]
fn issue_server_rejects_bad_requests() {
    let ca = CertificateAuthority::generate("Ward bad").expect("ca");
    for (dns, ips, valid_for) in [
        (vec![], vec![], DAY),
        (vec!["localhost".to_owned()], vec![], Duration::ZERO),
        (vec!["not a hostname".to_owned()], vec![], DAY),
        (vec!["127.0.0.1".to_owned()], vec![], DAY),
    ] {
        let err = ca.issue_server(&dns, &ips, valid_for).expect_err("must fail");
        assert!(matches!(err, PkiError::InvalidInput(_)), "{err:?}");
    }
    // IP-only certificates are fine.
    ca.issue_server(&[], &[LOCALHOST], DAY).expect("ip only");
}

#[test]
fn from_pem_rejects_mismatched_key_and_non_ca() {
    let ca = CertificateAuthority::generate("Ward A").expect("ca");
    let other = CertificateAuthority::generate("Ward B").expect("other");
    let err = CertificateAuthority::from_pem(&ca.cert_pem(), &other.key_pem()).expect_err("mismatch");
    assert!(matches!(err, PkiError::KeyMismatch(_)), "{err:?}");

    let leaf = localhost_cert(&ca);
    let err = CertificateAuthority::from_pem(&leaf.cert_pem, &leaf.key_pem).expect_err("leaf");
    assert!(matches!(err, PkiError::NotACa(_)), "{err:?}");

    let err = CertificateAuthority::from_pem("garbage", &ca.key_pem()).expect_err("garbage cert");
    assert!(matches!(err, PkiError::Parse { .. }), "{err:?}");
    let err = CertificateAuthority::from_pem(&ca.cert_pem(), "garbage").expect_err("garbage key");
    assert!(matches!(err, PkiError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains("CA private key"), "{err}");
}

#[test]
fn load_or_create_ca_creates_once_then_loads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki").join("ca");

    let (created, was_created) = load_or_create_ca(&dir, "Ward Server CA").expect("create");
    assert!(was_created);
    assert!(dir.join(CA_CERT_FILE).is_file());
    assert!(dir.join(CA_KEY_FILE).is_file());
    assert_eq!(created.subject(), "CN=Ward Server CA");

    let (loaded, was_created) = load_or_create_ca(&dir, "ignored name").expect("load");
    assert!(!was_created);
    assert_eq!(loaded.fingerprint(), created.fingerprint());
    assert_eq!(loaded.key_pem(), created.key_pem());
    assert_eq!(loaded.subject(), "CN=Ward Server CA");

    // The files on disk are exactly what the CA reports.
    let on_disk = std::fs::read_to_string(dir.join(CA_CERT_FILE)).expect("read ca.pem");
    assert_eq!(on_disk, created.cert_pem());
    let certs = load_certs(&dir.join(CA_CERT_FILE)).expect("load_certs");
    assert_eq!(certs, vec![created.cert_der()]);
    load_private_key(&dir.join(CA_KEY_FILE)).expect("load key");
}

#[cfg(unix)]
#[test]
fn ca_key_file_mode_is_0600() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    load_or_create_ca(tmp.path(), "Ward mode").expect("create");
    let mode = std::fs::metadata(tmp.path().join(CA_KEY_FILE))
        .expect("stat key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "key mode {:o}", mode & 0o777);
    let new_dir = tmp.path().join("fresh");
    load_or_create_ca(&new_dir, "Ward mode").expect("create in new dir");
    let dir_mode = std::fs::metadata(&new_dir).expect("stat dir").permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700, "dir mode {:o}", dir_mode & 0o777);
}

#[test]
fn load_or_create_ca_refuses_incomplete_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ca, _) = load_or_create_ca(tmp.path(), "Ward partial").expect("create");
    let key_path = tmp.path().join(CA_KEY_FILE);
    std::fs::remove_file(&key_path).expect("remove key");

    let err = load_or_create_ca(tmp.path(), "Ward partial").expect_err("incomplete");
    assert!(matches!(err, PkiError::IncompleteCa { .. }), "{err:?}");
    assert!(err.to_string().contains(CA_KEY_FILE), "{err}");
    // The existing certificate was left untouched and no key was created.
    let on_disk = std::fs::read_to_string(tmp.path().join(CA_CERT_FILE)).expect("read");
    assert_eq!(on_disk, ca.cert_pem());
    assert!(!key_path.exists());
}

#[test]
fn load_or_create_ca_names_the_corrupt_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    load_or_create_ca(tmp.path(), "Ward corrupt").expect("create");
    let cert_path = tmp.path().join(CA_CERT_FILE);
    std::fs::write(&cert_path, "not a certificate\n").expect("corrupt");
    let err = load_or_create_ca(tmp.path(), "Ward corrupt").expect_err("corrupt");
    assert!(matches!(err, PkiError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains(&cert_path.display().to_string()), "{err}");
}

#[test]
fn load_certs_missing_file_names_path() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("does-not-exist.pem");
    let err = load_certs(&path).expect_err("missing");
    match &err {
        PkiError::Io(p, e) => {
            assert_eq!(p, &path);
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io error, got {other:?}"),
    }
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");

    let err = load_private_key(&path).expect_err("missing key");
    assert!(matches!(&err, PkiError::Io(p, _) if p == &path), "{err:?}");
}

#[test]
fn garbage_pem_is_a_parse_error() {
    for garbage in [
        "",
        "hello, world\n",
        "-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nAAAA\n",
        // Valid base64, but not a certificate.
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    ] {
        let err = certs_from_pem(garbage).expect_err("garbage");
        assert!(matches!(err, PkiError::Parse { .. }), "{garbage:?}: {err:?}");
    }

    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("garbage.pem");
    std::fs::write(&path, "-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n").expect("write");
    let err = load_certs(&path).expect_err("garbage file");
    assert!(matches!(err, PkiError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn load_private_key_without_key_and_with_two_keys() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = CertificateAuthority::generate("Ward keys").expect("ca");
    let only_cert = tmp.path().join("cert.pem");
    std::fs::write(&only_cert, ca.cert_pem()).expect("write");
    let err = load_private_key(&only_cert).expect_err("no key");
    assert!(matches!(&err, PkiError::NoPrivateKey(p) if p == &only_cert), "{err:?}");
    assert!(err.to_string().contains(&only_cert.display().to_string()));

    let two_keys = tmp.path().join("two.key");
    std::fs::write(&two_keys, format!("{}{}", ca.key_pem(), ca.key_pem())).expect("write");
    let err = load_private_key(&two_keys).expect_err("two keys");
    assert!(matches!(err, PkiError::Parse { .. }), "{err:?}");
}

#[test]
fn server_and_client_config_from_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = CertificateAuthority::generate("Ward files").expect("ca");
    let issued = localhost_cert(&ca);
    let chain_path = tmp.path().join("server.pem");
    let key_path = tmp.path().join("server.key");
    std::fs::write(&chain_path, &issued.chain_pem).expect("write chain");
    std::fs::write(&key_path, &issued.key_pem).expect("write key");

    let chain = load_certs(&chain_path).expect("chain");
    assert_eq!(chain.len(), 2);
    let key = load_private_key(&key_path).expect("key");
    let config = server_config(chain, key, &[b"h2"]).expect("server config");
    assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);

    // A key that does not belong to the leaf is rejected by rustls.
    let other = localhost_cert(&ca);
    let err = server_config(
        load_certs(&chain_path).expect("chain"),
        other.private_key_der().expect("other key"),
        &[],
    )
    .expect_err("mismatched key");
    assert!(matches!(err, PkiError::Tls(_)), "{err:?}");
}

#[test]
fn config_input_validation() {
    let ca = CertificateAuthority::generate("Ward cfg").expect("ca");
    let issued = localhost_cert(&ca);
    let err = client_config(&[], &[b"h2"]).expect_err("no roots");
    assert!(matches!(err, PkiError::InvalidInput(_)), "{err:?}");
    let err = client_config(&[ca.cert_der()], &[b""]).expect_err("empty alpn");
    assert!(matches!(err, PkiError::InvalidInput(_)), "{err:?}");
    let err = server_config(Vec::new(), issued.private_key_der().expect("key"), &[]).expect_err("empty chain");
    assert!(matches!(err, PkiError::InvalidInput(_)), "{err:?}");
}
