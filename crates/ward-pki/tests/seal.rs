//! Sealing secrets under the master key, and the master key file.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::DAY;
use ward_pki::{load_or_create_master_key, CertificateAuthority, MasterKey, PkiError};

fn key() -> MasterKey {
    MasterKey::generate().expect("master key")
}

#[test]
fn seal_open_round_trip() {
    let key = key();
    for plaintext in [&b""[..], b"x", b"-----BEGIN PRIVATE KEY-----\nsecret\n", &[0u8; 5000]] {
        let sealed = key.seal(plaintext, b"tenant-acme").expect("seal");
        assert!(sealed.starts_with("v1."), "{sealed}");
        let body = STANDARD.decode(&sealed[3..]).expect("base64");
        assert_eq!(body.len(), 12 + plaintext.len() + 16);
        let opened = key.open(&sealed, b"tenant-acme").expect("open");
        assert_eq!(opened.as_slice(), plaintext);
    }
    // Fresh nonce every time.
    let a = key.seal(b"same", b"ctx").expect("seal");
    let b = key.seal(b"same", b"ctx").expect("seal");
    assert_ne!(a, b);
}

#[test]
fn wrong_context_wrong_key_and_tampering_fail() {
    let key = key();
    let sealed = key.seal(b"tenant CA key", b"tenant-acme").expect("seal");

    let err = key.open(&sealed, b"tenant-globex").expect_err("wrong context");
    assert!(matches!(err, PkiError::Unseal(_)), "{err:?}");
    assert!(err.to_string().contains("wrong master key, wrong context"), "{err}");
    assert!(key.open(&sealed, b"").is_err());

    let err = self::key().open(&sealed, b"tenant-acme").expect_err("wrong key");
    assert!(matches!(err, PkiError::Unseal(_)), "{err:?}");

    // Flip every byte position in turn: nonce, ciphertext and tag.
    let body = STANDARD.decode(&sealed[3..]).expect("base64");
    for i in 0..body.len() {
        let mut flipped = body.clone();
        flipped[i] ^= 0x80;
        let tampered = format!("v1.{}", STANDARD.encode(&flipped));
        let err = key.open(&tampered, b"tenant-acme").expect_err("flipped byte");
        assert!(matches!(err, PkiError::Unseal(_)), "byte {i}: {err:?}");
    }

    for bad in [
        String::new(),
        "v2.AAAA".to_owned(),
        sealed[3..].to_owned(),
        "v1.!!!".to_owned(),
        format!("v1.{}", STANDARD.encode([0u8; 27])),
        format!("v1.{}", STANDARD.encode(&body[..body.len() - 1])),
    ] {
        let err = key.open(&bad, b"tenant-acme").expect_err("malformed");
        assert!(matches!(err, PkiError::Unseal(_)), "{bad:?}: {err:?}");
    }
}

#[test]
fn master_key_encoding_and_debug() {
    let key = key();
    let b64 = key.to_base64();
    assert_eq!(STANDARD.decode(b64.as_str()).expect("base64").len(), 32);
    let again = MasterKey::from_base64(&format!("  {}\n", b64.as_str())).expect("decode");
    let sealed = key.seal(b"hello", b"ctx").expect("seal");
    assert_eq!(again.open(&sealed, b"ctx").expect("open").as_slice(), b"hello");

    let debug = format!("{key:?}");
    assert_eq!(debug, "MasterKey([redacted])");
    assert!(!debug.contains(b64.as_str()));

    let short = STANDARD.encode([7u8; 31]);
    let err = MasterKey::from_base64(&short).expect_err("31 bytes");
    assert!(err.to_string().contains("32 bytes"), "{err}");
    assert!(!err.to_string().contains(&short), "error must not echo the key: {err}");
    assert!(MasterKey::from_base64("not base64 !!").is_err());
    assert!(MasterKey::from_base64("").is_err());
}

#[test]
fn ca_sealed_round_trip() {
    let master = key();
    let ca = CertificateAuthority::generate("Ward tenant acme").expect("ca");
    let (cert_pem, sealed_key) = ca.to_sealed(&master, b"acme").expect("to_sealed");
    assert_eq!(cert_pem, ca.cert_pem());
    assert!(sealed_key.starts_with("v1."));
    assert!(!sealed_key.contains("PRIVATE KEY"));

    let restored = CertificateAuthority::from_sealed(&cert_pem, &sealed_key, &master, b"acme").expect("from_sealed");
    assert_eq!(restored.fingerprint(), ca.fingerprint());
    assert_eq!(restored.key_pem(), ca.key_pem());
    // The restored CA issues certificates that chain to the original.
    let (_key, csr) = ward_pki::generate_key_and_csr("laptop-1").expect("csr");
    let identity = ward_pki::Identity::device("acme", "laptop-1").expect("identity");
    let leaf = restored.sign_csr(&csr, &identity, DAY).expect("sign");
    ward_pki::verify_issued_by(&leaf.cert_der().expect("der"), &ca.cert_der()).expect("issued by original");

    let err = CertificateAuthority::from_sealed(&cert_pem, &sealed_key, &master, b"globex").expect_err("context");
    assert!(matches!(err, PkiError::Unseal(_)), "{err:?}");
    let err = CertificateAuthority::from_sealed(&cert_pem, &sealed_key, &key(), b"acme").expect_err("key");
    assert!(matches!(err, PkiError::Unseal(_)), "{err:?}");
    // A sealed key paired with another CA's certificate is caught.
    let other = CertificateAuthority::generate("Ward tenant globex").expect("other");
    let err =
        CertificateAuthority::from_sealed(&other.cert_pem(), &sealed_key, &master, b"acme").expect_err("mismatch");
    assert!(matches!(err, PkiError::KeyMismatch(_)), "{err:?}");
}

#[test]
fn master_key_file_is_created_once_then_reused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("secrets").join("master.key");

    let (created, was_created) = load_or_create_master_key(&path).expect("create");
    assert!(was_created);
    let contents = std::fs::read_to_string(&path).expect("read");
    assert!(contents.ends_with('\n'));
    assert_eq!(contents.trim(), created.to_base64().as_str());

    let (loaded, was_created) = load_or_create_master_key(&path).expect("load");
    assert!(!was_created);
    let sealed = created.seal(b"secret", b"ctx").expect("seal");
    assert_eq!(loaded.open(&sealed, b"ctx").expect("open").as_slice(), b"secret");
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        contents,
        "never rewritten"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key mode {mode:o}");
        let dir_mode = std::fs::metadata(path.parent().expect("parent"))
            .expect("stat dir")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700, "dir mode {dir_mode:o}");
    }
}

#[cfg(unix)]
#[test]
fn exposed_master_key_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("master.key");
    load_or_create_master_key(&path).expect("create");
    for mode in [0o640, 0o604, 0o644] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let err = load_or_create_master_key(&path).expect_err("exposed");
        assert!(
            matches!(&err, PkiError::InsecurePermissions { path: p, mode: m } if p == &path && *m == mode),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("chmod 600"), "{msg}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    load_or_create_master_key(&path).expect("read-only for owner is fine");
}

#[test]
fn corrupt_master_key_file_names_the_path() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("master.key");
    std::fs::write(&path, "not a key\n").expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let err = load_or_create_master_key(&path).expect_err("corrupt");
    assert!(matches!(err, PkiError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "not a key\n",
        "left untouched"
    );
}
