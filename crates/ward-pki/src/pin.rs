//! Trust on a pinned CA fingerprint, for enrolment over an untrusted network
//! (like `kubeadm join --discovery-token-ca-cert-hash`).
//!
//! The enrolment code carries `sha256:<hex>` of the server's CA certificate.
//! The client accepts the server only if the chain it presents contains a
//! certificate with exactly that fingerprint and the server's certificate
//! verifies up to it (signatures, validity, server name). After the first
//! connection the client keeps the CA with [`pinned_ca_from_chain`] and
//! uses an ordinary [`client_config`](crate::client_config) from then on.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::error::{PkiError, Result};
use crate::provider;
use crate::tls::{alpn_list, TLS13_ONLY};

/// Parses a pin `sha256:<64 hex digits>` (as printed by
/// [`CertificateAuthority::fingerprint`](crate::CertificateAuthority::fingerprint);
/// the prefix and the hex digits may be in either case, surrounding
/// whitespace is ignored) into the 32-byte SHA-256.
pub fn parse_pin(pin: &str) -> Result<[u8; 32]> {
    let bad =
        |reason: &str| PkiError::InvalidInput(format!("invalid CA pin: {reason} (expected sha256:<64 hex digits>)"));
    let pin = pin.trim();
    let hex_part = match pin.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256:") => &pin[7..],
        _ => return Err(bad("missing \"sha256:\" prefix")),
    };
    if hex_part.len() != 64 {
        return Err(bad(&format!("{} hex digits instead of 64", hex_part.len())));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).map_err(|_| bad("not hexadecimal"))?;
    Ok(out)
}

/// The certificate in `chain` (as presented by a server, e.g.
/// `ClientConnection::peer_certificates()` after a pinned handshake) whose
/// SHA-256 is `pin` (see [`parse_pin`]), or `None`.
///
/// A client enrolling with [`client_config_pinned`] calls this after its
/// first successful handshake and saves the result as the server's CA. This
/// works because Ward's servers present their CA in the chain
/// ([`IssuedCert::chain_pem`](crate::IssuedCert)), which a pinned handshake
/// requires anyway.
pub fn pinned_ca_from_chain(chain: &[CertificateDer<'_>], pin: &[u8; 32]) -> Option<CertificateDer<'static>> {
    chain
        .iter()
        .find(|cert| Sha256::digest(cert.as_ref()).as_slice() == pin.as_slice())
        .map(|cert| cert.clone().into_owned())
}

/// A client configuration that trusts a server only through a pinned CA:
/// some certificate in the presented chain (end entity or intermediates)
/// must have SHA-256 fingerprint `pin` (`"sha256:<hex>"`, see
/// [`parse_pin`]), and the end-entity certificate must verify up to that
/// certificate used as the only trust anchor, with full webpki checks
/// (signatures with the provider's algorithms, validity, extended key usage
/// serverAuth, and the server name the connection is made to). TLS 1.3
/// only, no client certificate.
///
/// Pin the CA, not the server's own certificate: a CA-issued leaf used as
/// its own trust anchor does not verify.
pub fn client_config_pinned(pin: &str, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>> {
    let pin = parse_pin(pin)?;
    let alpn = alpn_list(alpn)?;
    let verifier = PinnedCaVerifier {
        pin,
        provider: provider(),
        inner: OnceLock::new(),
    };
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(TLS13_ONLY)
        .map_err(PkiError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// Verifies a server against the one certificate in its chain matching the
/// pin.
struct PinnedCaVerifier {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
    /// A webpki verifier with the pinned certificate as its only root, built
    /// on first sight of that certificate. Its fingerprint is fixed, so it is
    /// the same certificate in every later handshake.
    inner: OnceLock<Arc<WebPkiServerVerifier>>,
}

impl PinnedCaVerifier {
    fn verifier_for(
        &self,
        anchor: &CertificateDer<'_>,
    ) -> std::result::Result<Arc<WebPkiServerVerifier>, rustls::Error> {
        if let Some(inner) = self.inner.get() {
            return Ok(inner.clone());
        }
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone().into_owned())?;
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(format!("cannot use the pinned CA certificate: {e}")))?;
        // A concurrent handshake may have set it first; both are equivalent.
        let _ = self.inner.set(inner.clone());
        Ok(inner)
    }
}

impl fmt::Debug for PinnedCaVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedCaVerifier")
            .field("pin", &format_args!("sha256:{}", hex::encode(self.pin)))
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let anchor = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|cert| Sha256::digest(cert.as_ref()).as_slice() == self.pin.as_slice())
            .ok_or_else(|| {
                rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(PinNotInChain(
                    self.pin,
                )))))
            })?;
        self.verifier_for(anchor)?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The error a pinned client reports when no presented certificate matches.
/// `Debug` is the same as `Display`, because rustls prints wrapped errors
/// with `Debug`.
struct PinNotInChain([u8; 32]);

impl fmt::Debug for PinNotInChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for PinNotInChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no certificate presented by the server matches the pinned CA sha256:{} \
             (wrong server, wrong pin, or the server does not send its CA certificate)",
            hex::encode(self.0)
        )
    }
}

impl std::error::Error for PinNotInChain {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_parsing() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let pin = parse_pin(&format!("sha256:{hex}")).expect("valid");
        assert_eq!(hex::encode(pin), hex);
        assert_eq!(
            parse_pin(&format!("  SHA256:{}\n", hex.to_uppercase())).expect("upper"),
            pin
        );
        for bad in [
            "",
            hex,
            "sha1:e3b0",
            "sha256:",
            "sha256:e3b0",
            &format!("sha256:{hex}00"),
            &format!("sha256:{}", "zz".repeat(32)),
            &format!("sha256:{}é", &hex[..62]),
            "sha25é:xx",
        ] {
            let err = parse_pin(bad).expect_err(bad);
            assert!(matches!(err, PkiError::InvalidInput(_)), "{bad:?}: {err:?}");
        }
    }
}
