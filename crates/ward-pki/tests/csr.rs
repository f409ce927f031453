//! Signing CSRs: what is verified, what is ignored, what the leaf contains.

mod common;

use std::time::Duration;

use common::{DAY, LOCALHOST};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    PublicKeyData, SanType,
};
use ward_pki::{generate_key_and_csr, CertificateAuthority, Identity, IssuedLeaf, PkiError};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

fn device() -> Identity {
    Identity::device("acme", "laptop-1").expect("identity")
}

fn with_cert<T>(leaf: &IssuedLeaf, f: impl FnOnce(&X509Certificate<'_>) -> T) -> T {
    let der = leaf.cert_der().expect("leaf der");
    let (rest, cert) = x509_parser::parse_x509_certificate(&der).expect("parse leaf");
    assert!(rest.is_empty());
    f(&cert)
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject_alternative_name()
        .expect("san")
        .expect("san present")
        .value
        .general_names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect()
}

fn rcgen_csr(params: &CertificateParams, key: &KeyPair) -> String {
    params.serialize_request(key).expect("csr").pem().expect("csr pem")
}

/// Re-encodes DER as a CSR PEM block.
fn csr_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        lines.join("\n")
    )
}

fn csr_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
        .expect("csr der")
        .as_ref()
        .to_vec()
}

#[test]
fn device_leaf_properties() {
    let ca = CertificateAuthority::generate("Ward tenant acme").expect("ca");
    let (_key, csr) = generate_key_and_csr("laptop-1").expect("csr");
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let leaf = ca.sign_csr(&csr, &device(), DAY).expect("sign");

    with_cert(&leaf, |cert| {
        assert_eq!(cert.subject().to_string(), "CN=laptop-1");
        let ca_der = ca.cert_der();
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).expect("ca");
        assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
        assert!(!cert.is_ca());
        let bc = cert.basic_constraints().expect("bc").expect("bc present");
        assert!(!bc.value.ca);
        let eku = cert.extended_key_usage().expect("eku").expect("eku").value;
        assert!(eku.client_auth && !eku.server_auth && !eku.any && !eku.code_signing);
        let ku = cert.key_usage().expect("ku").expect("ku").value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        assert_eq!(sans(cert), vec![r#"URI("ward://tenant/acme/device/laptop-1")"#]);

        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        assert!(
            (before - 301..=before - 299).contains(&not_before),
            "back-dated 5 min: {not_before} vs {before}"
        );
        assert!(
            (before + 86_400 - 1..=before + 86_400 + 5).contains(&not_after),
            "{not_after}"
        );
        assert_eq!(leaf.not_after_unix, not_after);
        assert_eq!(leaf.serial_hex, hex::encode(cert.raw_serial()));
        assert_eq!(leaf.serial_hex.len(), 32);
        assert!(leaf
            .serial_hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    });
    assert_eq!(
        Identity::from_cert_der(&leaf.cert_der().expect("der")).expect("identity"),
        device()
    );
    // Two signings of the same CSR give different serials.
    let again = ca.sign_csr(&csr, &device(), DAY).expect("sign again");
    assert_ne!(again.serial_hex, leaf.serial_hex);
}

#[test]
fn gateway_leaf_properties() {
    let ca = CertificateAuthority::generate("Ward service CA").expect("ca");
    let (_key, csr) = generate_key_and_csr("gw-1").expect("csr");
    let gateway = Identity::gateway("gw-1").expect("identity");
    let leaf = ca
        .sign_csr_with_names(&csr, &gateway, &["gw1.example".to_owned()], &[LOCALHOST], DAY)
        .expect("sign");
    with_cert(&leaf, |cert| {
        assert_eq!(cert.subject().to_string(), "CN=gw-1");
        let eku = cert.extended_key_usage().expect("eku").expect("eku").value;
        assert!(eku.client_auth && eku.server_auth);
        let names = &cert
            .subject_alternative_name()
            .expect("san")
            .expect("san")
            .value
            .general_names;
        assert_eq!(names.len(), 3);
        assert!(names.contains(&GeneralName::URI("ward://gateway/gw-1")));
        assert!(names.contains(&GeneralName::DNSName("gw1.example")));
        assert!(names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
    });
    // Without names: URI only.
    let leaf = ca.sign_csr(&csr, &gateway, DAY).expect("sign");
    with_cert(&leaf, |cert| {
        assert_eq!(sans(cert), vec![r#"URI("ward://gateway/gw-1")"#])
    });

    // Devices get no DNS names or IPs, and names are validated.
    let err = ca
        .sign_csr_with_names(&csr, &device(), &["laptop.example".to_owned()], &[], DAY)
        .expect_err("device with DNS name");
    assert!(matches!(err, PkiError::InvalidInput(_)), "{err:?}");
    let err = ca
        .sign_csr_with_names(&csr, &gateway, &["not a name".to_owned()], &[], DAY)
        .expect_err("bad DNS name");
    assert!(matches!(err, PkiError::InvalidInput(_)), "{err:?}");
}

#[test]
fn everything_the_csr_asks_for_is_ignored() {
    let ca = CertificateAuthority::generate("Ward tenant acme").expect("ca");
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params =
        CertificateParams::new(vec!["evil.example".to_owned(), "*.acme.example".to_owned()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, "admin");
    params.distinguished_name.push(DnType::OrganizationName, "Ward");
    params.subject_alt_names.push(SanType::URI(
        "ward://tenant/other/device/victim".try_into().expect("uri"),
    ));
    params.subject_alt_names.push(SanType::IpAddress(LOCALHOST));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::CodeSigning,
    ];
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    params.custom_extensions = vec![CustomExtension::from_oid_content(&[1, 2, 3, 4, 5], vec![0x05, 0x00])];
    let csr = rcgen_csr(&params, &key);

    let leaf = ca.sign_csr(&csr, &device(), DAY).expect("sign");
    with_cert(&leaf, |cert| {
        assert_eq!(cert.subject().to_string(), "CN=laptop-1");
        assert_eq!(sans(cert), vec![r#"URI("ward://tenant/acme/device/laptop-1")"#]);
        assert!(!cert.is_ca());
        let eku = cert.extended_key_usage().expect("eku").expect("eku").value;
        assert!(eku.client_auth && !eku.server_auth && !eku.code_signing);
        let ku = cert.key_usage().expect("ku").expect("ku").value;
        assert!(!ku.key_cert_sign());
        assert!(cert
            .extensions()
            .iter()
            .all(|ext| ext.oid.to_id_string() != "1.2.3.4.5"));
        // The key is the CSR's.
        assert_eq!(cert.public_key().raw, key.subject_public_key_info().as_slice());
    });
}

#[test]
fn tampered_csr_is_refused() {
    let ca = CertificateAuthority::generate("Ward tenant acme").expect("ca");
    let (_key, csr) = generate_key_and_csr("laptop-1").expect("csr");
    let der = csr_der(&csr);

    // Change the requested common name: the self-signature no longer matches.
    let pos = der.windows(8).position(|w| w == b"laptop-1").expect("CN in the DER");
    let mut tampered = der.clone();
    tampered[pos] = b'L';
    let err = ca
        .sign_csr(&csr_pem(&tampered), &device(), DAY)
        .expect_err("tampered CN");
    assert!(matches!(err, PkiError::Csr(_)), "{err:?}");
    assert!(err.to_string().contains("signature verification failed"), "{err}");

    // Change a byte inside the signature value.
    let mut tampered = der.clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 0x01;
    let err = ca
        .sign_csr(&csr_pem(&tampered), &device(), DAY)
        .expect_err("tampered signature");
    assert!(matches!(err, PkiError::Csr(_)), "{err:?}");

    // Swap in another key: a CSR signed by key A carrying key B.
    let other_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let spki_a = {
        let (_, req) =
            <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<_>>::from_der(
                &der,
            )
            .expect("parse");
        req.certification_request_info.subject_pki.raw.to_vec()
    };
    let spki_b = other_key.subject_public_key_info();
    assert_eq!(spki_a.len(), spki_b.len());
    let pos = der.windows(spki_a.len()).position(|w| w == spki_a).expect("spki");
    let mut swapped = der.clone();
    swapped[pos..pos + spki_b.len()].copy_from_slice(&spki_b);
    let err = ca
        .sign_csr(&csr_pem(&swapped), &device(), DAY)
        .expect_err("swapped key");
    assert!(matches!(err, PkiError::Csr(_)), "{err:?}");

    // The untouched CSR still works.
    ca.sign_csr(&csr, &device(), DAY).expect("original");
}

#[test]
fn only_p256_and_ed25519_keys_are_accepted() {
    let ca = CertificateAuthority::generate("Ward tenant acme").expect("ca");
    let params = CertificateParams::new(Vec::<String>::new()).expect("params");

    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519");
    let leaf = ca
        .sign_csr(&rcgen_csr(&params, &ed), &device(), DAY)
        .expect("ed25519 accepted");
    with_cert(&leaf, |cert| {
        assert_eq!(cert.public_key().raw, ed.subject_public_key_info().as_slice());
    });

    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("p384");
    let err = ca
        .sign_csr(&rcgen_csr(&params, &p384), &device(), DAY)
        .expect_err("P-384 refused");
    assert!(matches!(err, PkiError::Csr(_)), "{err:?}");
    assert!(err.to_string().contains("P-384"), "{err}");

    let rsa = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("rsa");
    let err = ca
        .sign_csr(&rcgen_csr(&params, &rsa), &device(), DAY)
        .expect_err("RSA refused");
    assert!(matches!(err, PkiError::Csr(_)), "{err:?}");
    assert!(err.to_string().contains("RSA"), "{err}");
}

#[test]
fn malformed_requests_and_identities_are_refused() {
    let ca = CertificateAuthority::generate("Ward tenant acme").expect("ca");
    let (_key, csr) = generate_key_and_csr("laptop-1").expect("csr");
    for garbage in [
        String::new(),
        "hello".to_owned(),
        ca.cert_pem(),
        "-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8=\n-----END CERTIFICATE REQUEST-----\n".to_owned(),
        format!("{}{}", csr, "A".repeat(20_000)),
    ] {
        let err = ca.sign_csr(&garbage, &device(), DAY).expect_err("garbage");
        assert!(matches!(err, PkiError::Csr(_)), "{err:?}");
    }
    // Trailing data after the DER.
    let mut der = csr_der(&csr);
    der.push(0);
    let err = ca.sign_csr(&csr_pem(&der), &device(), DAY).expect_err("trailing");
    assert!(matches!(err, PkiError::Csr(_)), "{err:?}");

    let bad_identity = Identity::Device {
        tenant_id: "Acme".to_owned(),
        device_id: "laptop-1".to_owned(),
    };
    let err = ca.sign_csr(&csr, &bad_identity, DAY).expect_err("bad identity");
    assert!(matches!(err, PkiError::Identity(_)), "{err:?}");

    let err = ca.sign_csr(&csr, &device(), Duration::ZERO).expect_err("zero validity");
    assert!(matches!(err, PkiError::InvalidInput(_)), "{err:?}");
    assert!(generate_key_and_csr("  ").is_err());
}

#[test]
fn csr_leaf_validity_is_capped_at_ca_expiry() {
    let ca = CertificateAuthority::generate("Ward tenant acme").expect("ca");
    let (_key, csr) = generate_key_and_csr("laptop-1").expect("csr");
    let leaf = ca.sign_csr(&csr, &device(), Duration::MAX).expect("sign");
    assert_eq!(leaf.not_after_unix, ca.not_after().unix_timestamp());
}

#[test]
fn generated_key_matches_csr() {
    let (key_pem, csr) = generate_key_and_csr("laptop-1").expect("csr");
    let key = KeyPair::from_pem(&key_pem).expect("key");
    assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
    let der = csr_der(&csr);
    let (_, req) =
        <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<_>>::from_der(
            &der,
        )
        .expect("parse");
    assert_eq!(
        req.certification_request_info.subject_pki.raw,
        key.subject_public_key_info().as_slice()
    );
    assert_eq!(req.certification_request_info.subject.to_string(), "CN=laptop-1");
}
