//! On-disk layout of a CA: `ca.pem` (certificate) and `ca.key` (PKCS#8
//! private key, mode 0600 on unix) in one directory.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::ca::CertificateAuthority;
use crate::error::{io_err, PkiError, Result};

/// File name of the CA certificate inside a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside a CA directory.
pub const CA_KEY_FILE: &str = "ca.key";

/// Loads the CA in `dir` (`ca.pem` + `ca.key`), or creates it.
///
/// * Both files exist: they are loaded and checked to belong together; the
///   flag is `false`. On unix a warning is logged if `ca.key` is readable by
///   group or others.
/// * Neither exists: a new CA named `common_name` is generated, `dir` is
///   created if needed (mode 0700 on unix), `ca.key` is written with mode
///   0600 and `ca.pem` with mode 0644; the flag is `true`. Both files are
///   opened with `create_new`, so an existing file is never overwritten (if
///   another process races us, this fails instead of clobbering its CA).
/// * Only one exists: [`PkiError::IncompleteCa`]; nothing is generated,
///   because silently replacing a CA would break every certificate it issued.
pub fn load_or_create_ca(dir: &Path, common_name: &str) -> Result<(CertificateAuthority, bool)> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let cert_exists = cert_path.try_exists().map_err(io_err(&cert_path))?;
    let key_exists = key_path.try_exists().map_err(io_err(&key_path))?;

    match (cert_exists, key_exists) {
        (true, true) => {
            warn_if_key_exposed(&key_path);
            let cert_pem = std::fs::read(&cert_path).map_err(io_err(&cert_path))?;
            let key_pem = std::fs::read(&key_path).map_err(io_err(&key_path))?;
            let ca = CertificateAuthority::from_pem_named(
                &cert_pem,
                &key_pem,
                &format!("CA certificate {}", cert_path.display()),
                &format!("CA private key {}", key_path.display()),
            )?;
            tracing::debug!(
                dir = %dir.display(),
                fingerprint = %ca.fingerprint(),
                "loaded CA"
            );
            Ok((ca, false))
        }
        (false, false) => {
            let ca = CertificateAuthority::generate(common_name)?;
            create_private_dir(dir)?;
            write_new_file(&key_path, ca.key_pem().as_bytes(), 0o600)?;
            if let Err(e) = write_new_file(&cert_path, ca.cert_pem().as_bytes(), 0o644) {
                // Do not leave a key without its certificate behind: the next
                // start would refuse to run with an incomplete CA. We created
                // the key file ourselves a moment ago, so removing it is safe.
                if let Err(rm) = std::fs::remove_file(&key_path) {
                    tracing::warn!(
                        path = %key_path.display(),
                        error = %rm,
                        "could not remove CA key after failing to write the CA certificate"
                    );
                }
                return Err(e);
            }
            tracing::info!(
                dir = %dir.display(),
                fingerprint = %ca.fingerprint(),
                "generated new CA"
            );
            Ok((ca, true))
        }
        (true, false) => Err(PkiError::IncompleteCa {
            dir: dir.to_path_buf(),
            present: cert_path,
            missing: key_path,
        }),
        (false, true) => Err(PkiError::IncompleteCa {
            dir: dir.to_path_buf(),
            present: key_path,
            missing: cert_path,
        }),
    }
}

/// Creates `dir` (and parents) if missing; new directories get mode 0700 on
/// unix. Existing directories are left as they are.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_err(dir))
}

/// Writes `contents` to a file that must not exist yet, with exactly `mode`
/// on unix (independent of the umask), and syncs it to disk.
pub(crate) fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    let mut file = options.open(path).map_err(io_err(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_err(path))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(contents).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// Logs a warning if the key file is accessible to group or others.
fn warn_if_key_exposed(key_path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(key_path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %key_path.display(),
                    mode = format_args!("{mode:04o}"),
                    "CA private key is readable by group or others; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = key_path;
}
