//! Certificate signing requests: the agent and the gateway create one with
//! [`generate_key_and_csr`] (the private key never leaves them), and a CA
//! turns a verified request into a certificate for a server-chosen
//! [`Identity`] with [`CertificateAuthority::sign_csr`].

use std::net::IpAddr;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer};
use x509_parser::asn1_rs::BitString;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_RSASSAPSS, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519, OID_SIG_ED448,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

use crate::ca::{checked_dns_name, pem_encode, CertificateAuthority};
use crate::error::{PkiError, Result};
use crate::identity::Identity;

/// Largest CSR PEM accepted; real ones are well under 1 KiB.
const MAX_CSR_PEM_LEN: usize = 16 * 1024;

/// A certificate a CA issued for a key it never saw (from a CSR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedLeaf {
    /// The certificate, PEM (leaf only; the verifier holds the CA).
    pub cert_pem: String,
    /// End of validity, seconds since the Unix epoch.
    pub not_after_unix: i64,
    /// Serial number, lowercase hex (as stored for revocation and audit).
    pub serial_hex: String,
}

impl IssuedLeaf {
    /// The certificate as DER.
    pub fn cert_der(&self) -> Result<CertificateDer<'static>> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(|e| PkiError::Parse {
            what: "issued certificate".to_owned(),
            reason: e.to_string(),
        })
    }
}

/// Generates an ECDSA P-256 key and a CSR for it with subject
/// `CN=<common_name>` and nothing else (the CA decides the identity anyway).
///
/// Returns `(private key as PKCS#8 PEM, CSR PEM)`. The key is for the caller
/// to store (mode 0600) and must never be sent anywhere; only the CSR is.
pub fn generate_key_and_csr(common_name: &str) -> Result<(String, String)> {
    if common_name.trim().is_empty() {
        return Err(PkiError::InvalidInput("CSR common name must not be empty".to_owned()));
    }
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(PkiError::Generate)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key).map_err(PkiError::Generate)?;
    Ok((key.serialize_pem(), pem_encode("CERTIFICATE REQUEST", csr.der())))
}

impl CertificateAuthority {
    /// Issues a certificate for the key in a CSR, to `identity`.
    ///
    /// The CSR (PEM, `BEGIN CERTIFICATE REQUEST`) is parsed and its
    /// self-signature verified, proving the requester holds the key. Its key
    /// must be ECDSA P-256 or Ed25519; anything else is refused with
    /// [`PkiError::Csr`] naming the key type. **Everything else the CSR asks
    /// for (subject, SANs, extensions, CA flag) is ignored**: the
    /// certificate has `CN=<device or gateway id>`, exactly one SAN, the URI
    /// [`identity.to_uri()`](Identity::to_uri), basicConstraints `CA:FALSE`,
    /// key usage digitalSignature, extended key usage clientAuth (devices) or
    /// serverAuth + clientAuth (gateways), a random serial and an authority
    /// key identifier. It is valid from five minutes ago for `valid_for`,
    /// capped at the CA's expiry.
    pub fn sign_csr(&self, csr_pem: &str, identity: &Identity, valid_for: std::time::Duration) -> Result<IssuedLeaf> {
        self.sign_csr_with_names(csr_pem, identity, &[], &[], valid_for)
    }

    /// [`sign_csr`](Self::sign_csr) for a gateway that also serves TLS: adds
    /// the given DNS names and IP addresses (chosen by the server, never
    /// taken from the CSR) as SANs next to the identity URI, so clients can
    /// verify the gateway's address. Only gateways may have them.
    pub fn sign_csr_with_names(
        &self,
        csr_pem: &str,
        identity: &Identity,
        dns_names: &[String],
        ips: &[IpAddr],
        valid_for: std::time::Duration,
    ) -> Result<IssuedLeaf> {
        identity.validate()?;
        let uri = identity.to_uri();
        let mut sans = vec![SanType::URI(
            rcgen::string::Ia5String::try_from(uri.as_str())
                .map_err(|e| PkiError::Identity(format!("{uri:?} is not a valid URI SAN: {e}")))?,
        )];
        let extended_key_usages = match identity {
            Identity::Device { .. } => {
                if !dns_names.is_empty() || !ips.is_empty() {
                    return Err(PkiError::InvalidInput(
                        "device certificates carry no DNS names or IP addresses".to_owned(),
                    ));
                }
                vec![ExtendedKeyUsagePurpose::ClientAuth]
            }
            Identity::Gateway { .. } => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        };
        for name in dns_names {
            sans.push(SanType::DnsName(checked_dns_name(name)?));
        }
        sans.extend(ips.iter().copied().map(SanType::IpAddress));

        let public_key = verified_csr_key(csr_pem)?;

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, identity.common_name());
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = extended_key_usages;
        let cert = self.sign_leaf(params, &public_key, valid_for)?;

        let (_, x509) = x509_parser::parse_x509_certificate(&cert).map_err(|e| PkiError::Parse {
            what: "certificate just issued".to_owned(),
            reason: e.to_string(),
        })?;
        let leaf = IssuedLeaf {
            cert_pem: pem_encode("CERTIFICATE", &cert),
            not_after_unix: x509.validity().not_after.timestamp(),
            serial_hex: hex::encode(x509.raw_serial()),
        };
        tracing::debug!(
            identity = %uri,
            ca = %self.subject(),
            serial = %leaf.serial_hex,
            not_after = leaf.not_after_unix,
            key = public_key.kind.name(),
            "issued certificate from CSR"
        );
        Ok(leaf)
    }
}

/// The key types Ward accepts in CSRs (and from CAs, for
/// [`verify_issued_by`](crate::verify_issued_by)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    EcdsaP256,
    Ed25519,
}

impl KeyKind {
    fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ECDSA P-256",
            Self::Ed25519 => "Ed25519",
        }
    }

    fn rcgen_alg(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// A public key from a CSR whose self-signature verified, in the form rcgen
/// embeds in a certificate.
struct RequestedKey {
    raw: Vec<u8>,
    kind: KeyKind,
}

impl rcgen::PublicKeyData for RequestedKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.kind.rcgen_alg()
    }
}

/// Parses a CSR, verifies its self-signature and returns its public key.
fn verified_csr_key(csr_pem: &str) -> Result<RequestedKey> {
    if csr_pem.len() > MAX_CSR_PEM_LEN {
        return Err(PkiError::Csr(format!(
            "CSR is {} bytes long; at most {MAX_CSR_PEM_LEN} are accepted",
            csr_pem.len()
        )));
    }
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .map_err(|e| PkiError::Csr(format!("no PEM CERTIFICATE REQUEST block: {e}")))?;
    let csr = match X509CertificationRequest::from_der(der.as_ref()) {
        Ok(([], csr)) => csr,
        Ok(_) => return Err(PkiError::Csr("trailing data after the DER request".to_owned())),
        Err(e) => return Err(PkiError::Csr(format!("not a valid PKCS#10 request: {e}"))),
    };
    let info = &csr.certification_request_info;
    let kind = verify_signature(
        &info.subject_pki,
        &csr.signature_algorithm,
        info.raw,
        &csr.signature_value,
    )
    .map_err(PkiError::Csr)?;
    Ok(RequestedKey {
        raw: info.subject_pki.subject_public_key.data.to_vec(),
        kind,
    })
}

/// Verifies `signature` over `message` with the key in `spki`, using the
/// signature algorithm `sig_alg`. Only ECDSA P-256 (with SHA-256 or
/// SHA-384) and Ed25519 keys are accepted; for others the error names the
/// key type. Returns the key's type.
pub(crate) fn verify_signature(
    spki: &SubjectPublicKeyInfo<'_>,
    sig_alg: &AlgorithmIdentifier<'_>,
    message: &[u8],
    signature: &BitString<'_>,
) -> std::result::Result<KeyKind, String> {
    use aws_lc_rs::signature;

    let kind = key_kind(spki)?;
    let key = &spki.subject_public_key;
    if key.unused_bits != 0 || signature.unused_bits != 0 {
        return Err("public key or signature BIT STRING has unused bits".to_owned());
    }
    let alg: &'static dyn signature::VerificationAlgorithm = match kind {
        KeyKind::EcdsaP256 => {
            // Uncompressed point only: that is what every TLS peer can parse.
            if key.data.len() != 65 || key.data.first() != Some(&0x04) {
                return Err("ECDSA P-256 public key is not an uncompressed point".to_owned());
            }
            if sig_alg.algorithm == OID_SIG_ECDSA_WITH_SHA256 {
                &signature::ECDSA_P256_SHA256_ASN1
            } else if sig_alg.algorithm == OID_SIG_ECDSA_WITH_SHA384 {
                &signature::ECDSA_P256_SHA384_ASN1
            } else {
                return Err(format!(
                    "signature algorithm {} does not fit an ECDSA P-256 key (expected ecdsa-with-SHA256)",
                    sig_alg.algorithm
                ));
            }
        }
        KeyKind::Ed25519 => {
            if key.data.len() != 32 {
                return Err("Ed25519 public key is not 32 bytes long".to_owned());
            }
            if sig_alg.algorithm != OID_SIG_ED25519 || sig_alg.parameters.is_some() {
                return Err(format!(
                    "signature algorithm {} does not fit an Ed25519 key",
                    sig_alg.algorithm
                ));
            }
            &signature::ED25519
        }
    };
    signature::UnparsedPublicKey::new(alg, key.data.as_ref())
        .verify(message, signature.data.as_ref())
        .map_err(|_| "signature verification failed".to_owned())?;
    Ok(kind)
}

/// The type of the key in `spki`, or why it is not accepted.
fn key_kind(spki: &SubjectPublicKeyInfo<'_>) -> std::result::Result<KeyKind, String> {
    const ACCEPTED: &str = "only ECDSA P-256 and Ed25519 keys are accepted";
    let alg = &spki.algorithm;
    if alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = alg.parameters.as_ref().and_then(|p| p.as_oid().ok());
        return match curve {
            Some(curve) if curve == OID_EC_P256 => Ok(KeyKind::EcdsaP256),
            Some(curve) if curve == OID_NIST_EC_P384 => Err(format!("ECDSA P-384 key refused; {ACCEPTED}")),
            Some(curve) if curve == OID_NIST_EC_P521 => Err(format!("ECDSA P-521 key refused; {ACCEPTED}")),
            Some(curve) => Err(format!("ECDSA key on curve {curve} refused; {ACCEPTED}")),
            None => Err(format!("ECDSA key without a named curve refused; {ACCEPTED}")),
        };
    }
    if alg.algorithm == OID_SIG_ED25519 {
        if alg.parameters.is_some() {
            return Err("Ed25519 key algorithm must not have parameters".to_owned());
        }
        return Ok(KeyKind::Ed25519);
    }
    if alg.algorithm == OID_PKCS1_RSAENCRYPTION || alg.algorithm == OID_PKCS1_RSASSAPSS {
        return Err(format!("RSA key refused; {ACCEPTED}"));
    }
    if alg.algorithm == OID_SIG_ED448 {
        return Err(format!("Ed448 key refused; {ACCEPTED}"));
    }
    Err(format!("key of algorithm {} refused; {ACCEPTED}", alg.algorithm))
}
