//! Ward identities: URI form, parsing, extraction from certificates.

mod common;

use common::DAY;
use proptest::prelude::*;
use rcgen::{CertificateParams, KeyPair, SanType};
use ward_pki::{is_valid_id, CertificateAuthority, CertificateDer, Identity, PkiError};

#[test]
fn uri_round_trip() {
    let device = Identity::device("acme", "laptop-1").expect("device");
    assert_eq!(device.to_uri(), "ward://tenant/acme/device/laptop-1");
    assert_eq!(device.to_string(), device.to_uri());
    assert_eq!(Identity::from_uri(&device.to_uri()).expect("parse"), device);
    assert_eq!(device.tenant_id(), Some("acme"));
    assert_eq!(device.common_name(), "laptop-1");

    let gateway = Identity::gateway("gw_eu-1").expect("gateway");
    assert_eq!(gateway.to_uri(), "ward://gateway/gw_eu-1");
    assert_eq!(Identity::from_uri("ward://gateway/gw_eu-1").expect("parse"), gateway);
    assert_eq!(gateway.tenant_id(), None);
    assert_eq!(gateway.common_name(), "gw_eu-1");

    let long = "a".repeat(64);
    Identity::device(long.clone(), long.clone()).expect("64 chars");
    assert!(Identity::device("a".repeat(65), "x").is_err());
}

#[test]
fn malformed_uris_are_rejected() {
    for bad in [
        "",
        "ward://",
        "ward:/gateway/g",
        "WARD://gateway/g",
        "https://gateway/g",
        "ward://gateway/",
        "ward://gateway/G1",
        "ward://gateway/g/",
        "ward://gateway/g/extra",
        "ward://gateway/g?x=1",
        "ward://gateway/g#f",
        "ward://gateway/g%2F",
        "ward://gateway//g",
        "ward://tenant/acme/device/",
        "ward://tenant//device/d",
        "ward://tenant/acme/gateway/d",
        "ward://tenant/acme/device/d/more",
        "ward://device/d",
        "ward://tenant/ac.me/device/d",
        " ward://gateway/g",
        "ward://gateway/g ",
    ] {
        let err = Identity::from_uri(bad).expect_err(bad);
        assert!(matches!(err, PkiError::Identity(_)), "{bad:?}: {err:?}");
    }
    let huge = format!("ward://gateway/{}", "x".repeat(10_000));
    let err = Identity::from_uri(&huge).expect_err("huge");
    assert!(err.to_string().len() < 400, "error must not echo huge input");
}

/// A certificate (self-signed, for parsing only) with the given SANs.
fn cert_with_sans(sans: Vec<SanType>) -> CertificateDer<'static> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.subject_alt_names = sans;
    params.self_signed(&key).expect("cert").der().clone()
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().expect("ia5"))
}

#[test]
fn from_cert_der_requires_exactly_one_ward_uri() {
    let ok = cert_with_sans(vec![
        SanType::DnsName("gw1.example".try_into().expect("dns")),
        uri("https://example.com/x"),
        uri("ward://gateway/gw-1"),
    ]);
    assert_eq!(
        Identity::from_cert_der(&ok).expect("identity"),
        Identity::gateway("gw-1").expect("id")
    );

    for sans in [
        vec![],
        vec![SanType::DnsName("gw1.example".try_into().expect("dns"))],
        vec![uri("ward://gateway/gw-1"), uri("ward://gateway/gw-2")],
        vec![uri("ward://gateway/gw-1"), uri("WARD://gateway/gw-1")],
        vec![uri("ward://gateway/GW")],
    ] {
        let cert = cert_with_sans(sans);
        let err = Identity::from_cert_der(&cert).expect_err("no single valid ward URI");
        assert!(matches!(err, PkiError::Identity(_)), "{err:?}");
    }

    // A CA certificate has no identity; garbage is a parse error.
    let ca = CertificateAuthority::generate("Ward CA").expect("ca");
    assert!(matches!(
        Identity::from_cert_der(&ca.cert_der()),
        Err(PkiError::Identity(_))
    ));
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01, 0xff]);
    assert!(matches!(Identity::from_cert_der(&garbage), Err(PkiError::Parse { .. })));
}

#[test]
fn issued_certificates_round_trip_their_identity() {
    let ca = CertificateAuthority::generate("Ward tenant acme").expect("ca");
    let (_key, csr) = ward_pki::generate_key_and_csr("d").expect("csr");
    for identity in [
        Identity::device("acme", "d").expect("id"),
        Identity::gateway("g").expect("id"),
    ] {
        let leaf = ca.sign_csr(&csr, &identity, DAY).expect("sign");
        assert_eq!(
            Identity::from_cert_der(&leaf.cert_der().expect("der")).expect("identity"),
            identity
        );
    }
}

proptest! {
    #[test]
    fn from_uri_never_panics(s in ".*") {
        let _ = Identity::from_uri(&s);
    }

    #[test]
    fn from_uri_never_panics_on_ward_like_input(
        kind in prop::sample::select(vec!["tenant", "gateway", "device", ""]),
        rest in "[a-zA-Z0-9_/.%é-]{0,80}",
    ) {
        let _ = Identity::from_uri(&format!("ward://{kind}/{rest}"));
    }

    #[test]
    fn valid_identities_round_trip(
        tenant in "[a-z0-9_-]{1,64}",
        device in "[a-z0-9_-]{1,64}",
    ) {
        prop_assert!(is_valid_id(&tenant) && is_valid_id(&device));
        let identity = Identity::device(tenant.clone(), device.clone()).expect("valid");
        prop_assert_eq!(Identity::from_uri(&identity.to_uri()).expect("round trip"), identity);
        let gateway = Identity::gateway(device).expect("valid");
        prop_assert_eq!(Identity::from_uri(&gateway.to_uri()).expect("round trip"), gateway);
    }
}
