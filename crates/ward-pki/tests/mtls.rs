//! Device and gateway enrolment from CSRs, and real mutual-TLS handshakes
//! between an agent and a gateway over loopback TCP.

mod common;

use std::sync::Arc;

use common::{handshake, key_der, DAY, LOCALHOST};
use rustls::ProtocolVersion;
use ward_pki::{
    client_config, client_config_mtls, generate_key_and_csr, server_config_mtls, verify_issued_by,
    CertificateAuthority, CertificateDer, Identity, PkiError,
};

/// A gateway enrolled with the service CA: its chain (leaf, service CA) and
/// key.
struct Gateway {
    chain: Vec<CertificateDer<'static>>,
    key_pem: String,
}

fn enrol_gateway(service_ca: &CertificateAuthority, id: &str) -> Gateway {
    let (key_pem, csr_pem) = generate_key_and_csr(id).expect("gateway key and CSR");
    let leaf = service_ca
        .sign_csr_with_names(
            &csr_pem,
            &Identity::gateway(id).expect("gateway identity"),
            &["localhost".to_owned()],
            &[LOCALHOST],
            DAY,
        )
        .expect("sign gateway CSR");
    Gateway {
        chain: vec![leaf.cert_der().expect("gateway leaf"), service_ca.cert_der()],
        key_pem,
    }
}

/// A device enrolled with a tenant CA the way the agent does it: key
/// generated locally, only the CSR goes to the CA.
struct Device {
    cert: CertificateDer<'static>,
    key_pem: String,
}

fn enrol_device(tenant_ca: &CertificateAuthority, tenant: &str, device: &str) -> Device {
    let (key_pem, csr_pem) = generate_key_and_csr(device).expect("device key and CSR");
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(csr_pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    let identity = Identity::device(tenant, device).expect("device identity");
    let leaf = tenant_ca.sign_csr(&csr_pem, &identity, DAY).expect("sign device CSR");
    Device {
        cert: leaf.cert_der().expect("device leaf"),
        key_pem,
    }
}

fn gateway_server(gateway: &Gateway, client_roots: &[CertificateDer<'static>]) -> Arc<rustls::ServerConfig> {
    server_config_mtls(gateway.chain.clone(), key_der(&gateway.key_pem), client_roots, &[b"h2"])
        .expect("gateway mTLS server config")
}

fn agent_client(service_ca: &CertificateAuthority, device: &Device) -> Arc<rustls::ClientConfig> {
    client_config_mtls(
        &[service_ca.cert_der()],
        vec![device.cert.clone()],
        key_der(&device.key_pem),
        &[b"h2"],
    )
    .expect("agent mTLS client config")
}

#[tokio::test]
async fn agent_and_gateway_mutual_tls() {
    let service_ca = CertificateAuthority::generate("Ward service CA").expect("service CA");
    let tenant_a = CertificateAuthority::generate("Ward tenant acme").expect("tenant A CA");
    let tenant_b = CertificateAuthority::generate("Ward tenant globex").expect("tenant B CA");
    let gateway = enrol_gateway(&service_ca, "gw-1");
    let server = gateway_server(&gateway, &[tenant_a.cert_der(), tenant_b.cert_der()]);

    for (ca, tenant, device_id) in [(&tenant_a, "acme", "laptop-1"), (&tenant_b, "globex", "phone_7")] {
        let device = enrol_device(ca, tenant, device_id);
        let outcome = handshake(server.clone(), agent_client(&service_ca, &device), "localhost").await;
        let client = outcome.client.expect("agent handshake and exchange");
        assert_eq!(client.version, Some(ProtocolVersion::TLSv1_3));
        assert_eq!(client.alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(client.reply, b"pong:ping");

        // The gateway's certificate names the gateway.
        let gateway_identity = Identity::from_cert_der(&client.server_chain[0]).expect("gateway identity");
        assert_eq!(gateway_identity, Identity::gateway("gw-1").expect("id"));

        // The gateway reads the device identity from the verified peer
        // certificate, and pins it to the tenant's CA.
        let server_view = outcome.server.expect("gateway side");
        assert_eq!(server_view.received, b"ping");
        assert_eq!(server_view.client_chain, vec![device.cert.clone()]);
        let identity = Identity::from_cert_der(&server_view.client_chain[0]).expect("device identity");
        assert_eq!(
            identity,
            Identity::Device {
                tenant_id: tenant.to_owned(),
                device_id: device_id.to_owned()
            }
        );
        assert_eq!(identity.to_uri(), format!("ward://tenant/{tenant}/device/{device_id}"));
        verify_issued_by(&server_view.client_chain[0], &ca.cert_der()).expect("issued by own tenant CA");
        let other = if std::ptr::eq(ca, &tenant_a) {
            &tenant_b
        } else {
            &tenant_a
        };
        let err = verify_issued_by(&server_view.client_chain[0], &other.cert_der()).expect_err("other tenant");
        assert!(matches!(err, PkiError::WrongIssuer(_)), "{err:?}");
    }
}

#[tokio::test]
async fn ed25519_device_key_works_end_to_end() {
    let service_ca = CertificateAuthority::generate("Ward service CA").expect("service CA");
    let tenant = CertificateAuthority::generate("Ward tenant acme").expect("tenant CA");
    let gateway = enrol_gateway(&service_ca, "gw-1");

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519 key");
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("params")
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("csr pem");
    let identity = Identity::device("acme", "ed-device").expect("identity");
    let leaf = tenant.sign_csr(&csr, &identity, DAY).expect("sign ed25519 CSR");
    let device = Device {
        cert: leaf.cert_der().expect("leaf"),
        key_pem: key.serialize_pem(),
    };

    let outcome = handshake(
        gateway_server(&gateway, &[tenant.cert_der()]),
        agent_client(&service_ca, &device),
        "localhost",
    )
    .await;
    assert_eq!(outcome.client.expect("handshake").reply, b"pong:ping");
    let server_view = outcome.server.expect("gateway side");
    assert_eq!(
        Identity::from_cert_der(&server_view.client_chain[0]).expect("identity"),
        identity
    );
}

#[tokio::test]
async fn client_certificate_from_a_third_ca_is_refused() {
    let service_ca = CertificateAuthority::generate("Ward service CA").expect("service CA");
    let tenant_a = CertificateAuthority::generate("Ward tenant acme").expect("tenant A CA");
    let tenant_b = CertificateAuthority::generate("Ward tenant globex").expect("tenant B CA");
    let rogue = CertificateAuthority::generate("Ward tenant acme").expect("rogue CA");
    let gateway = enrol_gateway(&service_ca, "gw-1");
    let server = gateway_server(&gateway, &[tenant_a.cert_der(), tenant_b.cert_der()]);

    // Same subject name as tenant A's CA, but a different key.
    let device = enrol_device(&rogue, "acme", "laptop-1");
    let outcome = handshake(server.clone(), agent_client(&service_ca, &device), "localhost").await;
    let err = outcome.server.expect_err("gateway must refuse the rogue certificate");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(
        outcome.client.as_ref().map_or(true, |c| c.reply != b"pong:ping"),
        "client must not get a reply"
    );

    // A gateway certificate (service CA) is not a device certificate either.
    let as_device = Device {
        cert: gateway.chain[0].clone(),
        key_pem: gateway.key_pem.clone(),
    };
    let outcome = handshake(server, agent_client(&service_ca, &as_device), "localhost").await;
    assert!(
        outcome.server.is_err(),
        "service-CA certificate must be refused as a client"
    );
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let service_ca = CertificateAuthority::generate("Ward service CA").expect("service CA");
    let tenant = CertificateAuthority::generate("Ward tenant acme").expect("tenant CA");
    let gateway = enrol_gateway(&service_ca, "gw-1");
    let server = gateway_server(&gateway, &[tenant.cert_der()]);
    let no_cert = client_config(&[service_ca.cert_der()], &[b"h2"]).expect("plain client");

    let outcome = handshake(server, no_cert, "localhost").await;
    let err = outcome.server.expect_err("gateway must require a client certificate");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(outcome.client.is_err(), "client must not complete the exchange");
}

#[tokio::test]
async fn agent_refuses_gateway_from_another_service_ca() {
    let service_ca = CertificateAuthority::generate("Ward service CA").expect("service CA");
    let impostor_ca = CertificateAuthority::generate("Ward service CA").expect("impostor CA");
    let tenant = CertificateAuthority::generate("Ward tenant acme").expect("tenant CA");
    let impostor = enrol_gateway(&impostor_ca, "gw-1");
    let device = enrol_device(&tenant, "acme", "laptop-1");
    let outcome = handshake(
        gateway_server(&impostor, &[tenant.cert_der()]),
        agent_client(&service_ca, &device),
        "localhost",
    )
    .await;
    let err = outcome.client.expect_err("agent must refuse the impostor gateway");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[test]
fn mtls_config_validation() {
    let service_ca = CertificateAuthority::generate("Ward service CA").expect("service CA");
    let tenant = CertificateAuthority::generate("Ward tenant acme").expect("tenant CA");
    let gateway = enrol_gateway(&service_ca, "gw-1");
    let device = enrol_device(&tenant, "acme", "laptop-1");

    let err = server_config_mtls(gateway.chain.clone(), key_der(&gateway.key_pem), &[], &[b"h2"])
        .expect_err("no client roots");
    assert!(matches!(err, PkiError::InvalidInput(_)), "{err:?}");
    let err =
        server_config_mtls(Vec::new(), key_der(&gateway.key_pem), &[tenant.cert_der()], &[]).expect_err("no chain");
    assert!(matches!(err, PkiError::InvalidInput(_)), "{err:?}");

    let err =
        client_config_mtls(&[], vec![device.cert.clone()], key_der(&device.key_pem), &[]).expect_err("no server roots");
    assert!(matches!(err, PkiError::InvalidInput(_)), "{err:?}");
    let err = client_config_mtls(&[service_ca.cert_der()], Vec::new(), key_der(&device.key_pem), &[])
        .expect_err("no client chain");
    assert!(matches!(err, PkiError::InvalidInput(_)), "{err:?}");
    // A key that does not belong to the client certificate.
    let err = client_config_mtls(
        &[service_ca.cert_der()],
        vec![device.cert.clone()],
        key_der(&gateway.key_pem),
        &[],
    )
    .expect_err("mismatched client key");
    assert!(matches!(err, PkiError::Tls(_)), "{err:?}");
}
