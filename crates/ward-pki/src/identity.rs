//! Who a certificate belongs to: a device of a tenant or a gateway, encoded
//! as a `ward://` URI subject alternative name.

use std::fmt;

use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::csr::verify_signature;
use crate::error::{PkiError, Result};

/// Scheme and authority prefix of every Ward identity URI.
const URI_PREFIX: &str = "ward://";

/// Maximum length of a tenant, device or gateway id.
pub const MAX_ID_LEN: usize = 64;

/// The identity a Ward certificate is issued to, carried in the certificate
/// as exactly one URI subject alternative name (see [`to_uri`](Self::to_uri)).
///
/// Ids are 1 to [`MAX_ID_LEN`] characters from `[a-z0-9_-]` (see
/// [`is_valid_id`]). The variants are public so they can be matched on;
/// values built by hand are checked by [`validate`](Self::validate) before
/// anything is signed for them, and [`device`](Self::device) /
/// [`gateway`](Self::gateway) check on construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// An endpoint running the Ward agent, enrolled in one tenant. Its
    /// certificate comes from that tenant's CA and is for client
    /// authentication only.
    Device {
        /// The tenant the device belongs to.
        tenant_id: String,
        /// The device's id, unique within the tenant.
        device_id: String,
    },
    /// A Ward gateway. Its certificate comes from the service CA and is for
    /// both server and client authentication.
    Gateway {
        /// The gateway's id.
        gateway_id: String,
    },
}

/// Whether `id` is a valid tenant, device or gateway id: 1 to
/// [`MAX_ID_LEN`] characters, each `a`-`z`, `0`-`9`, `_` or `-`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Identity {
    /// A device identity; fails with [`PkiError::Identity`] if either id is
    /// invalid.
    pub fn device(tenant_id: impl Into<String>, device_id: impl Into<String>) -> Result<Self> {
        let identity = Self::Device {
            tenant_id: tenant_id.into(),
            device_id: device_id.into(),
        };
        identity.validate()?;
        Ok(identity)
    }

    /// A gateway identity; fails with [`PkiError::Identity`] if the id is
    /// invalid.
    pub fn gateway(gateway_id: impl Into<String>) -> Result<Self> {
        let identity = Self::Gateway {
            gateway_id: gateway_id.into(),
        };
        identity.validate()?;
        Ok(identity)
    }

    /// Checks every id against [`is_valid_id`].
    pub fn validate(&self) -> Result<()> {
        let ids: &[(&str, &str)] = match self {
            Self::Device { tenant_id, device_id } => &[("tenant id", tenant_id), ("device id", device_id)],
            Self::Gateway { gateway_id } => &[("gateway id", gateway_id)],
        };
        for (what, id) in ids {
            if !is_valid_id(id) {
                return Err(PkiError::Identity(format!(
                    "{what} {} must be 1 to {MAX_ID_LEN} characters from [a-z0-9_-]",
                    shown(id)
                )));
            }
        }
        Ok(())
    }

    /// The identity as a URI: `ward://tenant/<tenant_id>/device/<device_id>`
    /// or `ward://gateway/<gateway_id>`.
    pub fn to_uri(&self) -> String {
        match self {
            Self::Device { tenant_id, device_id } => format!("{URI_PREFIX}tenant/{tenant_id}/device/{device_id}"),
            Self::Gateway { gateway_id } => format!("{URI_PREFIX}gateway/{gateway_id}"),
        }
    }

    /// Parses a URI produced by [`to_uri`](Self::to_uri). Anything else
    /// (other scheme, extra or missing path segments, query, fragment,
    /// upper-case or otherwise invalid ids) is a [`PkiError::Identity`].
    pub fn from_uri(uri: &str) -> Result<Self> {
        let bad = |reason: &str| PkiError::Identity(format!("{}: {reason}", shown(uri)));
        let path = uri.strip_prefix(URI_PREFIX).ok_or_else(|| bad("not a ward:// URI"))?;
        let segments: Vec<&str> = path.split('/').collect();
        let identity = match segments.as_slice() {
            ["tenant", tenant_id, "device", device_id] => Self::Device {
                tenant_id: (*tenant_id).to_owned(),
                device_id: (*device_id).to_owned(),
            },
            ["gateway", gateway_id] => Self::Gateway {
                gateway_id: (*gateway_id).to_owned(),
            },
            _ => {
                return Err(bad(
                    "expected ward://tenant/<tenant_id>/device/<device_id> or ward://gateway/<gateway_id>",
                ))
            }
        };
        identity.validate()?;
        Ok(identity)
    }

    /// Extracts the identity of a certificate: it must carry exactly one
    /// subject alternative name that is a `ward:` URI, and that URI must
    /// parse with [`from_uri`](Self::from_uri). Other SANs (DNS names, IP
    /// addresses) are ignored.
    ///
    /// This does **not** verify the certificate; call it on a peer
    /// certificate that rustls has already verified. A gateway trusting the
    /// CAs of many tenants should additionally check, with
    /// [`verify_issued_by`], that a device certificate was issued by the CA
    /// of the tenant it names.
    pub fn from_cert_der(cert: &CertificateDer<'_>) -> Result<Self> {
        let x509 = parse_cert(cert, "certificate")?;
        let san = x509
            .subject_alternative_name()
            .map_err(|e| PkiError::Identity(format!("bad subjectAltName extension: {e}")))?;
        let uris: Vec<&str> = san
            .iter()
            .flat_map(|ext| ext.value.general_names.iter())
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some(*uri),
                _ => None,
            })
            .filter(|uri| uri.get(..5).is_some_and(|scheme| scheme.eq_ignore_ascii_case("ward:")))
            .collect();
        match uris.as_slice() {
            [uri] => Self::from_uri(uri),
            [] => Err(PkiError::Identity(
                "certificate has no ward:// URI subject alternative name".to_owned(),
            )),
            more => Err(PkiError::Identity(format!(
                "certificate has {} ward:// URI subject alternative names; exactly one is required",
                more.len()
            ))),
        }
    }

    /// The device or gateway id, which is also the certificate's common name.
    pub fn common_name(&self) -> &str {
        match self {
            Self::Device { device_id, .. } => device_id,
            Self::Gateway { gateway_id } => gateway_id,
        }
    }

    /// The tenant of a device; `None` for a gateway.
    pub fn tenant_id(&self) -> Option<&str> {
        match self {
            Self::Device { tenant_id, .. } => Some(tenant_id),
            Self::Gateway { .. } => None,
        }
    }
}

impl fmt::Display for Identity {
    /// Same as [`Identity::to_uri`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

/// When a certificate stops being valid, in milliseconds since the Unix
/// epoch.
pub fn not_after_ms(cert: &CertificateDer<'_>) -> Result<i64> {
    let x509 = parse_cert(cert, "certificate")?;
    Ok(x509.validity().not_after.timestamp().saturating_mul(1000))
}

/// Checks that `leaf` was issued by `ca`: the leaf's issuer name equals the
/// CA's subject and the leaf's signature verifies with the CA's public key
/// (ECDSA P-256 or Ed25519 CA keys). Validity and usages are not checked;
/// this is meant for a certificate rustls has already verified against a set
/// of roots, to pin down *which* root — e.g. that a device certificate came
/// from the CA of the tenant named in its [`Identity`].
pub fn verify_issued_by(leaf: &CertificateDer<'_>, ca: &CertificateDer<'_>) -> Result<()> {
    let leaf_x509 = parse_cert(leaf, "certificate")?;
    let ca_x509 = parse_cert(ca, "CA certificate")?;
    if leaf_x509.issuer().as_raw() != ca_x509.subject().as_raw() {
        return Err(PkiError::WrongIssuer(format!(
            "certificate issuer {} is not the CA {}",
            leaf_x509.issuer(),
            ca_x509.subject()
        )));
    }
    verify_signature(
        ca_x509.public_key(),
        &leaf_x509.signature_algorithm,
        leaf_x509.tbs_certificate.as_ref(),
        &leaf_x509.signature_value,
    )
    .map_err(|reason| {
        PkiError::WrongIssuer(format!(
            "certificate is not signed by the CA {}: {reason}",
            ca_x509.subject()
        ))
    })?;
    Ok(())
}

/// Parses a complete DER certificate (no trailing data).
fn parse_cert<'a>(der: &'a CertificateDer<'_>, what: &str) -> Result<X509Certificate<'a>> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], x509)) => Ok(x509),
        Ok(_) => Err(PkiError::Parse {
            what: what.to_owned(),
            reason: "trailing data after the DER certificate".to_owned(),
        }),
        Err(e) => Err(PkiError::Parse {
            what: what.to_owned(),
            reason: format!("not valid X.509: {e}"),
        }),
    }
}

/// Renders untrusted text for an error message: quoted, escaped and cut to
/// a reasonable length.
fn shown(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    if text.chars().count() <= MAX_CHARS {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX_CHARS).collect();
        format!("{head:?}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(is_valid_id("a"));
        assert!(is_valid_id("tenant_1-x"));
        assert!(is_valid_id(&"a".repeat(64)));
        assert!(!is_valid_id(&"a".repeat(65)));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("A"));
        assert!(!is_valid_id("a/b"));
        assert!(!is_valid_id("a.b"));
        assert!(!is_valid_id("é"));
    }

    #[test]
    fn shown_truncates_on_char_boundaries() {
        let long = "é".repeat(200);
        let s = shown(&long);
        assert!(s.ends_with("..."));
        assert!(s.chars().count() < 100);
    }
}
