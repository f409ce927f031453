//! The identity assertion the upstream receives: an ES256 JWT in
//! `X-Ward-Assertion`, signed with a P-256 key the gateway makes once and
//! keeps in its data directory (`web-assertion.key`, PKCS#8, mode 0600),
//! and the JWKS that publishes its public half on every published host.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde::Serialize;

const KEY_FILE: &str = "web-assertion.key";
/// How long an assertion is valid: it is made for one request.
pub(crate) const LIFETIME_SECS: i64 = 60;

pub(crate) struct Signer {
    key: EcdsaKeyPair,
    kid: String,
    jwks: String,
    issuer: String,
    rng: SystemRandom,
}

/// What the assertion says.
#[derive(Debug, Serialize)]
pub(crate) struct Claims<'a> {
    pub(crate) iss: &'a str,
    pub(crate) aud: String,
    pub(crate) sub: &'a str,
    pub(crate) name: &'a str,
    pub(crate) groups: Vec<&'a str>,
    pub(crate) tenant: &'a str,
    pub(crate) iat: i64,
    pub(crate) exp: i64,
    pub(crate) jti: String,
}

impl Signer {
    /// Loads the key from `dir`, or makes it (mode 0600) on first use.
    pub(crate) fn load_or_create(dir: &Path, gateway_id: &str) -> anyhow::Result<Signer> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(KEY_FILE);
        let rng = SystemRandom::new();
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| anyhow::anyhow!("cannot generate the assertion key"))?;
                write_private(&path, doc.as_ref())?;
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
            .map_err(|_| anyhow::anyhow!("{} is not a P-256 PKCS#8 key", path.display()))?;
        let public = key.public_key().as_ref();
        // Uncompressed point: 0x04 || x (32) || y (32).
        anyhow::ensure!(public.len() == 65 && public[0] == 4, "unexpected public key form");
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public);
        let kid = B64.encode(&digest.as_ref()[..16]);
        let jwks = serde_json::json!({
            "keys": [{
                "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
                "x": B64.encode(&public[1..33]), "y": B64.encode(&public[33..65]),
            }]
        })
        .to_string();
        Ok(Signer {
            key,
            kid,
            jwks,
            issuer: format!("ward-gateway:{gateway_id}"),
            rng,
        })
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    pub(crate) fn jwks(&self) -> &str {
        &self.jwks
    }

    /// A compact JWS of `claims`.
    pub(crate) fn sign(&self, claims: &Claims<'_>) -> anyhow::Result<String> {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            B64.encode(serde_json::to_vec(&header)?),
            B64.encode(serde_json::to_vec(claims)?)
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("cannot sign the assertion"))?;
        Ok(format!("{signing_input}.{}", B64.encode(sig.as_ref())))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    #[test]
    fn signs_verifiably_and_keeps_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::load_or_create(dir.path(), "gw1").unwrap();
        let claims = Claims {
            iss: signer.issuer(),
            aud: "https://app.example".into(),
            sub: "usr_1",
            name: "alice",
            groups: vec!["eng"],
            tenant: "ten_1",
            iat: 1,
            exp: 61,
            jti: "j".into(),
        };
        let jwt = signer.sign(&claims).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let jwks: serde_json::Value = serde_json::from_str(signer.jwks()).unwrap();
        let k = &jwks["keys"][0];
        let mut point = vec![4u8];
        point.extend(B64.decode(k["x"].as_str().unwrap()).unwrap());
        point.extend(B64.decode(k["y"].as_str().unwrap()).unwrap());
        let sig = B64.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        let payload: serde_json::Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload["sub"], "usr_1");
        assert_eq!(payload["aud"], "https://app.example");

        // The same key after a restart; the file is private.
        let again = Signer::load_or_create(dir.path(), "gw1").unwrap();
        assert_eq!(again.jwks(), signer.jwks());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
