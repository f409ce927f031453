//! Certificate authorities and the certificates they issue.

use std::fmt;
use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer};
use time::OffsetDateTime;
use x509_parser::asn1_rs::Tag;
use x509_parser::certificate::X509Certificate;
use x509_parser::x509::X509Name;

use crate::error::{PkiError, Result};
use crate::fingerprint_der;
use crate::pem::{certs_from_pem_bytes, key_from_pem_bytes};

/// Signature algorithm (and key type) of every key Ward generates.
static KEY_ALG: &rcgen::SignatureAlgorithm = &rcgen::PKCS_ECDSA_P256_SHA256;

/// Validity of a newly generated CA: ten years (including leap days).
const CA_VALIDITY: time::Duration = time::Duration::days(3652);

/// How far `notBefore` is back-dated, to tolerate clock skew between the
/// issuing host and the verifying peer.
const CA_BACKDATE: time::Duration = time::Duration::hours(1);
const LEAF_BACKDATE: time::Duration = time::Duration::minutes(5);

/// A certificate authority: its certificate plus the private key that signs
/// with it.
///
/// Ward's server CA (for its HTTPS listener) is one; per-tenant device CAs
/// (for mTLS) are meant to be others. Whether created by
/// [`generate`](Self::generate) or loaded by [`from_pem`](Self::from_pem),
/// the CA is reconstructed from its certificate, so both behave identically.
///
/// `Debug` never prints the private key.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    subject: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    fingerprint: String,
}

/// A certificate issued by a [`CertificateAuthority`], with its new key.
///
/// `Debug` never prints the private key.
#[derive(Clone)]
pub struct IssuedCert {
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// The leaf's private key, PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub key_pem: String,
    /// The leaf followed by the issuing CA certificate, PEM: what a TLS
    /// server presents.
    pub chain_pem: String,
}

impl CertificateAuthority {
    /// Generates a new self-signed CA: ECDSA P-256 key, subject
    /// `CN=<common_name>`, valid for ten years (back-dated one hour for clock
    /// skew), basicConstraints `CA:TRUE` (critical), key usage keyCertSign and
    /// cRLSign, a subject key identifier and a random serial number.
    pub fn generate(common_name: &str) -> Result<Self> {
        if common_name.trim().is_empty() {
            return Err(PkiError::InvalidInput("CA common name must not be empty".to_owned()));
        }
        let key = KeyPair::generate_for(KEY_ALG).map_err(PkiError::Generate)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - CA_BACKDATE;
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(PkiError::Generate)?;
        Self::from_parts(cert.der().clone(), key, "generated CA certificate", "generated CA key")
    }

    /// Loads a CA from PEM text: the CA certificate (the first `CERTIFICATE`
    /// block is used) and its private key, which must be PKCS#8
    /// (`BEGIN PRIVATE KEY`).
    ///
    /// Checks that the certificate is a CA allowed to sign certificates and
    /// that the key belongs to it.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        Self::from_pem_named(
            cert_pem.as_bytes(),
            key_pem.as_bytes(),
            "CA certificate PEM",
            "CA private key PEM",
        )
    }

    /// [`from_pem`](Self::from_pem) with the names used in error messages
    /// (file paths when loading from disk).
    pub(crate) fn from_pem_named(cert_pem: &[u8], key_pem: &[u8], cert_what: &str, key_what: &str) -> Result<Self> {
        let cert = certs_from_pem_bytes(cert_pem, cert_what)?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::Parse {
                what: cert_what.to_owned(),
                reason: "no PEM CERTIFICATE block found".to_owned(),
            })?;
        let key = match key_from_pem_bytes(key_pem, key_what)? {
            Some(PrivateKeyDer::Pkcs8(key)) => key,
            Some(_) => {
                return Err(PkiError::Parse {
                    what: key_what.to_owned(),
                    reason: "CA private key must be PKCS#8 (BEGIN PRIVATE KEY), \
                             not PKCS#1 or SEC1"
                        .to_owned(),
                })
            }
            None => {
                return Err(PkiError::Parse {
                    what: key_what.to_owned(),
                    reason: "no PEM PRIVATE KEY block found".to_owned(),
                })
            }
        };
        let key = KeyPair::try_from(&key).map_err(|e| PkiError::Parse {
            what: key_what.to_owned(),
            reason: format!("unusable private key: {e}"),
        })?;
        Self::from_parts(cert, key, cert_what, key_what)
    }

    /// Builds the CA from its certificate DER and key, validating both.
    fn from_parts(cert_der: CertificateDer<'static>, key: KeyPair, cert_what: &str, key_what: &str) -> Result<Self> {
        let parse_err = |reason: String| PkiError::Parse {
            what: cert_what.to_owned(),
            reason,
        };
        let (_, x509) =
            x509_parser::parse_x509_certificate(&cert_der).map_err(|e| parse_err(format!("not valid X.509: {e}")))?;

        let is_ca = x509
            .basic_constraints()
            .map_err(|e| parse_err(format!("bad basicConstraints extension: {e}")))?
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(PkiError::NotACa(cert_what.to_owned()));
        }
        let key_usage = x509
            .key_usage()
            .map_err(|e| parse_err(format!("bad keyUsage extension: {e}")))?
            .map(|ku| *ku.value);
        if key_usage.is_some_and(|ku| !ku.key_cert_sign()) {
            return Err(PkiError::NotACa(format!(
                "{cert_what}: keyUsage does not include keyCertSign"
            )));
        }

        if x509.public_key().subject_public_key.data.as_ref() != rcgen::PublicKeyData::der_bytes(&key) {
            return Err(PkiError::KeyMismatch(format!(
                "{key_what} is not the key of {cert_what}"
            )));
        }

        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen_dn(x509.subject()).map_err(parse_err)?;
        params.key_identifier_method = subject_key_id(&x509)
            .map(KeyIdMethod::PreSpecified)
            .unwrap_or(KeyIdMethod::Sha256);
        params.key_usages = key_usage.map(rcgen_key_usages).unwrap_or_default();

        let subject = x509.subject().to_string();
        let not_before = x509.validity().not_before.to_datetime();
        let not_after = x509.validity().not_after.to_datetime();
        let fingerprint = fingerprint_der(&cert_der);
        let cert_pem = pem_encode("CERTIFICATE", &cert_der);

        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_der,
            cert_pem,
            subject,
            not_before,
            not_after,
            fingerprint,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA private key, PKCS#8 PEM. The caller is responsible for storing
    /// it securely (see [`load_or_create_ca`](crate::load_or_create_ca)).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// `"sha256:"` followed by 64 lowercase hex digits: SHA-256 over the DER
    /// of the CA certificate. This is what operators compare out of band.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// The CA's subject distinguished name, e.g. `CN=Ward CA`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Start of the CA certificate's validity.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of the CA certificate's validity; no certificate it issues is
    /// valid beyond it.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Issues a TLS server certificate with a fresh ECDSA P-256 key.
    ///
    /// The certificate has the given DNS names and IP addresses as subject
    /// alternative names (at least one is required; `*.example.com`
    /// wildcards are allowed), `CN` = the first of them, extended key usage
    /// serverAuth, key usage digitalSignature, basicConstraints `CA:FALSE`,
    /// an authority key identifier and a random serial number. It is valid
    /// from five minutes ago (clock skew) for `valid_for`, but never beyond
    /// the CA's own expiry (it is cut short there, with a warning).
    pub fn issue_server(
        &self,
        dns_names: &[String],
        ips: &[IpAddr],
        valid_for: std::time::Duration,
    ) -> Result<IssuedCert> {
        let mut sans = Vec::with_capacity(dns_names.len() + ips.len());
        for name in dns_names {
            sans.push(SanType::DnsName(checked_dns_name(name)?));
        }
        sans.extend(ips.iter().copied().map(SanType::IpAddress));
        let common_name = match (dns_names.first(), ips.first()) {
            (Some(name), _) => name.clone(),
            (None, Some(ip)) => ip.to_string(),
            (None, None) => {
                return Err(PkiError::InvalidInput(
                    "a server certificate needs at least one DNS name or IP address".to_owned(),
                ))
            }
        };

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue_leaf(params, valid_for)
    }

    /// Signs a leaf described by `params` (subject, SANs, usages) with a
    /// fresh key; fills in validity, serial and authority key identifier.
    fn issue_leaf(&self, params: CertificateParams, valid_for: std::time::Duration) -> Result<IssuedCert> {
        let key = KeyPair::generate_for(KEY_ALG).map_err(PkiError::Generate)?;
        let cert = self.sign_leaf(params, &key, valid_for)?;
        let cert_pem = pem_encode("CERTIFICATE", &cert);
        let chain_pem = format!("{cert_pem}{}", self.cert_pem);
        Ok(IssuedCert {
            cert_pem,
            key_pem: key.serialize_pem(),
            chain_pem,
        })
    }

    /// Signs a leaf described by `params` (subject, SANs, usages) for
    /// `public_key`: fills in validity (back-dated five minutes, capped at
    /// the CA's expiry), a random serial and the authority key identifier.
    pub(crate) fn sign_leaf(
        &self,
        mut params: CertificateParams,
        public_key: &impl rcgen::PublicKeyData,
        valid_for: std::time::Duration,
    ) -> Result<CertificateDer<'static>> {
        if valid_for.is_zero() {
            return Err(PkiError::InvalidInput(
                "certificate validity must be longer than zero".to_owned(),
            ));
        }
        let now = OffsetDateTime::now_utc();
        if self.not_after <= now {
            return Err(PkiError::InvalidInput(format!(
                "CA {} ({}) expired at {}; cannot issue certificates",
                self.subject, self.fingerprint, self.not_after
            )));
        }
        let requested_end = time::Duration::try_from(valid_for)
            .ok()
            .and_then(|d| now.checked_add(d));
        let not_after = match requested_end {
            Some(end) if end <= self.not_after => end,
            _ => {
                tracing::warn!(
                    ca = %self.subject,
                    ca_not_after = %self.not_after,
                    requested_secs = valid_for.as_secs(),
                    "requested certificate lifetime exceeds the CA's; capping at the CA's expiry"
                );
                self.not_after
            }
        };
        params.not_before = (now - LEAF_BACKDATE).max(self.not_before);
        params.not_after = not_after;
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;

        let cert = params.signed_by(public_key, &self.issuer).map_err(PkiError::Generate)?;
        Ok(cert.der().clone())
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("subject", &self.subject)
            .field("fingerprint", &self.fingerprint)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl IssuedCert {
    /// The chain (leaf, then CA) as DER, ready for
    /// [`server_config`](crate::server_config).
    pub fn chain_der(&self) -> Result<Vec<CertificateDer<'static>>> {
        certs_from_pem_bytes(self.chain_pem.as_bytes(), "issued certificate chain")
    }

    /// The leaf certificate as DER.
    pub fn cert_der(&self) -> Result<CertificateDer<'static>> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(|e| PkiError::Parse {
            what: "issued certificate".to_owned(),
            reason: e.to_string(),
        })
    }

    /// The private key as DER, ready for [`server_config`](crate::server_config).
    pub fn private_key_der(&self) -> Result<PrivateKeyDer<'static>> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| PkiError::Parse {
            what: "issued private key".to_owned(),
            reason: e.to_string(),
        })
    }

    /// `"sha256:<hex>"` of the leaf certificate.
    pub fn fingerprint(&self) -> Result<String> {
        Ok(fingerprint_der(&self.cert_der()?))
    }
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Validates a DNS SAN (optionally a `*.` wildcard) and converts it.
pub(crate) fn checked_dns_name(name: &str) -> Result<rcgen::string::Ia5String> {
    let base = name.strip_prefix("*.").unwrap_or(name);
    if DnsName::try_from(base).is_err() {
        let hint = if name.parse::<IpAddr>().is_ok() {
            " (pass IP addresses as IPs, not DNS names)"
        } else {
            ""
        };
        return Err(PkiError::InvalidInput(format!(
            "invalid DNS name {name:?} for a certificate{hint}"
        )));
    }
    rcgen::string::Ia5String::try_from(name)
        .map_err(|e| PkiError::InvalidInput(format!("invalid DNS name {name:?}: {e}")))
}

/// A random, positive 128-bit serial number (RFC 5280 allows up to 20 bytes).
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Keep it positive and exactly 16 significant bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// The subject key identifier extension's value, if present.
fn subject_key_id(x509: &X509Certificate<'_>) -> Option<Vec<u8>> {
    x509.iter_extensions().find_map(|ext| match ext.parsed_extension() {
        x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
        _ => None,
    })
}

/// Converts x509-parser key usage flags to rcgen's list.
fn rcgen_key_usages(ku: x509_parser::extensions::KeyUsage) -> Vec<KeyUsagePurpose> {
    [
        (ku.digital_signature(), KeyUsagePurpose::DigitalSignature),
        (ku.non_repudiation(), KeyUsagePurpose::ContentCommitment),
        (ku.key_encipherment(), KeyUsagePurpose::KeyEncipherment),
        (ku.data_encipherment(), KeyUsagePurpose::DataEncipherment),
        (ku.key_agreement(), KeyUsagePurpose::KeyAgreement),
        (ku.key_cert_sign(), KeyUsagePurpose::KeyCertSign),
        (ku.crl_sign(), KeyUsagePurpose::CrlSign),
        (ku.encipher_only(), KeyUsagePurpose::EncipherOnly),
        (ku.decipher_only(), KeyUsagePurpose::DecipherOnly),
    ]
    .into_iter()
    .filter_map(|(set, purpose)| set.then_some(purpose))
    .collect()
}

/// Converts a parsed X.509 name into rcgen's form, keeping each attribute's
/// string type so that the issuer name of certificates we sign is
/// byte-identical to the CA's subject (verifiers compare them as bytes).
fn rcgen_dn(name: &X509Name<'_>) -> std::result::Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err("multi-valued or empty RDNs in the subject are not supported".to_owned());
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| "subject attribute OID out of range".to_owned())?
            .collect();
        let value = attr.attr_value();
        let data = value.data;
        let text = || std::str::from_utf8(data).map_err(|_| "subject attribute is not valid UTF-8".to_owned());
        let bad = |e: rcgen::Error| format!("unsupported subject attribute value: {e}");
        let dn_value = match value.header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
            Tag::PrintableString => DnValue::PrintableString(text()?.try_into().map_err(bad)?),
            Tag::Ia5String => DnValue::Ia5String(text()?.try_into().map_err(bad)?),
            Tag::T61String => DnValue::TeletexString(text()?.try_into().map_err(bad)?),
            Tag::BmpString => DnValue::BmpString(rcgen::string::BmpString::from_utf16be(data.to_vec()).map_err(bad)?),
            Tag::UniversalString => {
                DnValue::UniversalString(rcgen::string::UniversalString::from_utf32be(data.to_vec()).map_err(bad)?)
            }
            other => return Err(format!("unsupported string type {other} in the subject")),
        };
        dn.push(DnType::from_oid(&oid), dn_value);
    }
    Ok(dn)
}

/// Encodes DER as a PEM block with 64-character lines.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_encode_matches_rcgen() {
        for len in [1usize, 2, 3, 4, 5, 47, 48, 49, 300] {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let pem = pem_encode("CERTIFICATE", &data);
            let decoded = CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem");
            assert_eq!(decoded.as_ref(), data.as_slice(), "len {len}");
        }
        let key = KeyPair::generate_for(KEY_ALG).expect("key");
        let cert = CertificateParams::new(vec!["pem.test".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        assert_eq!(pem_encode("CERTIFICATE", cert.der()), cert.pem());
        assert_eq!(pem_encode("PRIVATE KEY", key.serialized_der()), key.serialize_pem());
    }

    #[test]
    fn random_serials_are_positive_and_distinct() {
        let a = random_serial().to_bytes();
        let b = random_serial().to_bytes();
        assert_eq!(a.len(), 16);
        assert!(a[0] & 0x80 == 0);
        assert_ne!(a, b);
    }

    #[test]
    fn dns_name_validation() {
        assert!(checked_dns_name("localhost").is_ok());
        assert!(checked_dns_name("ward.example.com").is_ok());
        assert!(checked_dns_name("*.example.com").is_ok());
        assert!(checked_dns_name("").is_err());
        assert!(checked_dns_name("bad name").is_err());
        let err = checked_dns_name("127.0.0.1").expect_err("ip as dns");
        assert!(err.to_string().contains("IP"), "{err}");
    }
}
