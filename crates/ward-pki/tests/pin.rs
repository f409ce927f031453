//! Enrolment against a pinned CA fingerprint, over real TLS on loopback.

mod common;

use std::sync::Arc;

use common::{handshake, DAY, LOCALHOST};
use rustls::ProtocolVersion;
use ward_pki::{
    client_config, client_config_pinned, parse_pin, pinned_ca_from_chain, server_config, CertificateAuthority,
    CertificateDer, IssuedCert, PkiError,
};

fn server_cert(ca: &CertificateAuthority) -> IssuedCert {
    ca.issue_server(&["localhost".to_owned()], &[LOCALHOST], DAY)
        .expect("server cert")
}

fn server_with_chain(issued: &IssuedCert, chain: Vec<CertificateDer<'static>>) -> Arc<rustls::ServerConfig> {
    server_config(chain, issued.private_key_der().expect("key"), &[b"h2"]).expect("server config")
}

#[tokio::test]
async fn pinned_ca_in_chain_connects_and_can_be_saved() {
    let ca = CertificateAuthority::generate("Ward service CA").expect("ca");
    let issued = server_cert(&ca);
    let server = server_with_chain(&issued, issued.chain_der().expect("chain"));
    let client = client_config_pinned(&ca.fingerprint(), &[b"h2"]).expect("pinned config");

    for name in ["localhost", "127.0.0.1"] {
        let outcome = handshake(server.clone(), client.clone(), name).await;
        let view = outcome.client.expect("pinned handshake");
        assert_eq!(view.version, Some(ProtocolVersion::TLSv1_3));
        assert_eq!(view.alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(view.reply, b"pong:ping");
        outcome.server.expect("server side");

        // The agent saves the pinned CA and trusts it from then on.
        let pin = parse_pin(&ca.fingerprint()).expect("pin");
        let saved = pinned_ca_from_chain(&view.server_chain, &pin).expect("CA in chain");
        assert_eq!(saved, ca.cert_der());
        let other = parse_pin(&CertificateAuthority::generate("x").expect("ca").fingerprint()).expect("pin");
        assert!(pinned_ca_from_chain(&view.server_chain, &other).is_none());

        let later = client_config(&[saved], &[b"h2"]).expect("saved-CA config");
        let outcome = handshake(server.clone(), later, name).await;
        assert_eq!(outcome.client.expect("handshake with saved CA").reply, b"pong:ping");
    }
}

#[tokio::test]
async fn wrong_pin_is_refused() {
    let ca = CertificateAuthority::generate("Ward service CA").expect("ca");
    let impostor = CertificateAuthority::generate("Ward service CA").expect("impostor");
    let issued = server_cert(&impostor);
    let server = server_with_chain(&issued, issued.chain_der().expect("chain"));
    let client = client_config_pinned(&ca.fingerprint(), &[b"h2"]).expect("pinned config");

    let outcome = handshake(server, client, "localhost").await;
    let err = outcome.client.expect_err("impostor must be refused");
    assert!(err.contains("pinned CA"), "{err}");
    assert!(err.contains(&ca.fingerprint()), "{err}");
    assert!(outcome.server.is_err());
}

#[tokio::test]
async fn name_mismatch_is_refused_even_with_matching_pin() {
    let ca = CertificateAuthority::generate("Ward service CA").expect("ca");
    let issued = server_cert(&ca);
    let server = server_with_chain(&issued, issued.chain_der().expect("chain"));
    let client = client_config_pinned(&ca.fingerprint(), &[b"h2"]).expect("pinned config");

    let outcome = handshake(server, client, "ward.example").await;
    let err = outcome.client.expect_err("name mismatch");
    assert!(err.to_lowercase().contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn pinned_ca_missing_from_chain_is_refused() {
    let ca = CertificateAuthority::generate("Ward service CA").expect("ca");
    let issued = server_cert(&ca);
    // The server sends only its leaf.
    let server = server_with_chain(&issued, vec![issued.cert_der().expect("leaf")]);
    let client = client_config_pinned(&ca.fingerprint(), &[b"h2"]).expect("pinned config");
    let outcome = handshake(server, client, "localhost").await;
    let err = outcome.client.expect_err("CA not presented");
    assert!(err.contains("pinned CA"), "{err}");
}

#[tokio::test]
async fn pinning_the_leaf_itself_is_not_enough() {
    let ca = CertificateAuthority::generate("Ward service CA").expect("ca");
    let issued = server_cert(&ca);
    let server = server_with_chain(&issued, issued.chain_der().expect("chain"));
    let client = client_config_pinned(&issued.fingerprint().expect("leaf fp"), &[b"h2"]).expect("pinned config");
    let outcome = handshake(server, client, "localhost").await;
    assert!(outcome.client.is_err(), "a CA-issued leaf is not its own trust anchor");
}

#[tokio::test]
async fn ca_substituted_into_chain_does_not_help_an_impostor() {
    // An attacker can present the real CA certificate (it is public) next to
    // its own leaf; the leaf must still verify up to it.
    let ca = CertificateAuthority::generate("Ward service CA").expect("ca");
    let impostor = CertificateAuthority::generate("Ward service CA").expect("impostor");
    let issued = server_cert(&impostor);
    let server = server_with_chain(&issued, vec![issued.cert_der().expect("leaf"), ca.cert_der()]);
    let client = client_config_pinned(&ca.fingerprint(), &[b"h2"]).expect("pinned config");
    let outcome = handshake(server, client, "localhost").await;
    let err = outcome.client.expect_err("impostor leaf with the real CA attached");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[test]
fn invalid_pins_are_rejected() {
    for bad in [
        "",
        "sha256:abcd",
        "md5:00",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ] {
        let err = client_config_pinned(bad, &[b"h2"]).expect_err(bad);
        assert!(matches!(err, PkiError::InvalidInput(_)), "{bad:?}: {err:?}");
        assert!(parse_pin(bad).is_err());
    }
}
