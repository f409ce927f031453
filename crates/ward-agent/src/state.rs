//! The agent's state directory: who this device is and the secrets it holds.
//!
//! ```text
//! <dir>/                 0700
//!   device.json          server, tenant, device id, user, gateway, certificate expiry, compliance
//!   device.key    0600   the device's private key; never leaves the machine
//!   device.crt           its certificate, issued by the tenant CA
//!   tenant-ca.pem        the tenant CA
//!   gateway-ca.pem       the CA gateways' certificates chain to
//!   token         0600   the device token (`wd_...`) for renewal and posture reports
//!   status.json          written by a running `ward agent up` (see `crate::status`)
//! ```
//!
//! The default directory is `$XDG_STATE_HOME/ward`, else `~/.local/state/ward`.
//! Every file is written atomically (a temporary file in the same directory,
//! then a rename), so a reader never sees half a file; `device.json` is
//! written last at enrolment, so its presence means the rest is there.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ward_api::Posture;

/// `device.json`.
pub const DEVICE_FILE: &str = "device.json";
/// `device.key`, mode 0600.
pub const KEY_FILE: &str = "device.key";
/// `device.crt`.
pub const CERT_FILE: &str = "device.crt";
/// `tenant-ca.pem`.
pub const TENANT_CA_FILE: &str = "tenant-ca.pem";
/// `gateway-ca.pem`.
pub const GATEWAY_CA_FILE: &str = "gateway-ca.pem";
/// `token`, mode 0600.
pub const TOKEN_FILE: &str = "token";
/// `status.json`, written by `ward agent up`.
pub const STATUS_FILE: &str = "status.json";

/// Mode of the state directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of secret files (key, token).
pub const SECRET_MODE: u32 = 0o600;
/// Mode of the other files.
pub const PUBLIC_MODE: u32 = 0o644;

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No `device.json`: this state directory holds no enrolment.
    #[error("not enrolled (no {} in {}): run `ward agent enroll --server URL --code CODE` first", DEVICE_FILE, .0.display())]
    NotEnrolled(PathBuf),
    /// A file of the enrolment is missing or unreadable.
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    /// A file could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
    /// `device.json` is not what the agent wrote.
    #[error("{} is damaged: {reason}; enrol again (`ward agent enroll ... --force`)", .path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// Neither `--state-dir`, `$XDG_STATE_HOME` nor `$HOME` says where the state is.
    #[error("cannot tell where the agent's state lives: set $HOME or pass --state-dir")]
    NoDefaultDir,
}

/// What `device.json` holds: the enrolment, and what the agent learnt since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The Ward server's base URL.
    pub server: String,
    /// The tenant's name.
    pub tenant: String,
    pub device_id: String,
    /// The end user the device belongs to.
    pub user: String,
    /// Where the gateway is: `host:port`.
    pub gateway: String,
    /// When the current certificate expires (RFC 3339, as the server said).
    pub cert_expires_at: String,
    /// The CA behind the server's HTTPS certificate, when the enrolment
    /// code pinned one; absent for `http` and for a publicly trusted server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ca_pem: Option<String>,
    /// Whether the device met the tenant's posture requirements when it last
    /// told the server.
    pub compliant: bool,
    /// Why not, when the server said (from posture reports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compliance_failures: Vec<String>,
    /// The posture last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<Posture>,
    /// When the posture was last reported (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture_reported_at: Option<String>,
    /// When the device enrolled (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled_at: Option<String>,
    /// When the certificate was last renewed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed_at: Option<String>,
    /// When the device's user session ends, as the server last said (RFC
    /// 3339); absent once signed out here. `ward agent login` renews it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<String>,
}

/// The secrets and certificates of an enrolment, as the server sent them
/// (plus the key made here).
pub struct Credentials<'a> {
    /// PKCS#8 PEM of the device key.
    pub key_pem: &'a str,
    pub cert_pem: &'a str,
    pub tenant_ca_pem: &'a str,
    pub gateway_ca_pem: &'a str,
    /// The `wd_` device token.
    pub token: &'a str,
}

/// An enrolled agent's state directory and what `device.json` says.
#[derive(Debug, Clone)]
pub struct AgentState {
    dir: PathBuf,
    /// The contents of `device.json`.
    pub device: DeviceInfo,
}

/// The default state directory: `$XDG_STATE_HOME/ward` (when it is an
/// absolute path), else `$HOME/.local/state/ward`.
pub fn default_state_dir() -> Result<PathBuf, StateError> {
    state_dir_from(
        std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

/// [`default_state_dir`] from given values of `$XDG_STATE_HOME` and `$HOME`.
pub fn state_dir_from(xdg_state_home: Option<PathBuf>, home: Option<PathBuf>) -> Result<PathBuf, StateError> {
    // The XDG spec says relative paths are invalid and must be ignored.
    if let Some(xdg) = xdg_state_home.filter(|p| p.is_absolute()) {
        return Ok(xdg.join("ward"));
    }
    match home.filter(|p| !p.as_os_str().is_empty()) {
        Some(home) => Ok(home.join(".local").join("state").join("ward")),
        None => Err(StateError::NoDefaultDir),
    }
}

/// `dir`, or the default state directory.
pub fn resolve_state_dir(dir: Option<&Path>) -> Result<PathBuf, StateError> {
    match dir {
        Some(dir) => Ok(dir.to_path_buf()),
        None => default_state_dir(),
    }
}

impl AgentState {
    /// Loads an enrolled state directory: `device.json` must parse, and the
    /// key, certificate, gateway CA and token must be there.
    pub fn load(dir: &Path) -> Result<AgentState, StateError> {
        let path = dir.join(DEVICE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StateError::NotEnrolled(dir.to_path_buf())),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        let device: DeviceInfo = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        for file in [KEY_FILE, CERT_FILE, GATEWAY_CA_FILE, TOKEN_FILE] {
            let path = dir.join(file);
            fs::metadata(&path).map_err(|source| StateError::Read { path, source })?;
        }
        Ok(AgentState {
            dir: dir.to_path_buf(),
            device,
        })
    }

    /// Whether `dir` holds an enrolment (a `device.json`).
    pub fn is_enrolled(dir: &Path) -> bool {
        dir.join(DEVICE_FILE).exists()
    }

    /// Writes a new enrolment into `dir` (created 0700 if needed): the
    /// credentials first, `device.json` last.
    pub fn create(dir: &Path, device: DeviceInfo, creds: &Credentials<'_>) -> Result<AgentState, StateError> {
        ensure_private_dir(dir).map_err(|source| StateError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let state = AgentState {
            dir: dir.to_path_buf(),
            device,
        };
        state.write(KEY_FILE, creds.key_pem.as_bytes(), SECRET_MODE)?;
        state.write(CERT_FILE, creds.cert_pem.as_bytes(), PUBLIC_MODE)?;
        state.write(TENANT_CA_FILE, creds.tenant_ca_pem.as_bytes(), PUBLIC_MODE)?;
        state.write(GATEWAY_CA_FILE, creds.gateway_ca_pem.as_bytes(), PUBLIC_MODE)?;
        state.write(TOKEN_FILE, creds.token.as_bytes(), SECRET_MODE)?;
        state.save_device()?;
        Ok(state)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file of the state directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The device token, for renewal and posture reports.
    pub fn token(&self) -> Result<String, StateError> {
        let path = self.path(TOKEN_FILE);
        let token = fs::read_to_string(&path).map_err(|source| StateError::Read { path, source })?;
        Ok(token.trim().to_owned())
    }

    /// The device certificate's PEM.
    pub fn cert_pem(&self) -> Result<String, StateError> {
        let path = self.path(CERT_FILE);
        fs::read_to_string(&path).map_err(|source| StateError::Read { path, source })
    }

    /// Rewrites `device.json` from [`device`](Self::device).
    pub fn save_device(&self) -> Result<(), StateError> {
        let mut json = serde_json::to_vec_pretty(&self.device).map_err(|e| StateError::Corrupt {
            path: self.path(DEVICE_FILE),
            reason: e.to_string(),
        })?;
        json.push(b'\n');
        self.write(DEVICE_FILE, &json, PUBLIC_MODE)
    }

    /// Installs a renewed certificate and its new key. The key is written
    /// first: a tunnel that reads the two in between sees a mismatch, fails
    /// that attempt and retries, rather than presenting a stale pair.
    pub fn install_certificate(&mut self, key_pem: &str, cert_pem: &str, expires_at: &str) -> Result<(), StateError> {
        self.write(KEY_FILE, key_pem.as_bytes(), SECRET_MODE)?;
        self.write(CERT_FILE, cert_pem.as_bytes(), PUBLIC_MODE)?;
        self.device.cert_expires_at = expires_at.to_owned();
        self.device.renewed_at = Some(crate::now_rfc3339());
        self.save_device()
    }

    /// Re-reads `device.json` (another process may have changed it).
    pub fn reload(&mut self) -> Result<(), StateError> {
        *self = AgentState::load(&self.dir)?;
        Ok(())
    }

    /// Writes a file of the state directory atomically with `mode`.
    pub fn write(&self, file: &str, contents: &[u8], mode: u32) -> Result<(), StateError> {
        let path = self.path(file);
        write_atomic(&path, contents, mode).map_err(|source| StateError::Write { path, source })
    }
}

/// Creates `dir` (and its parents) if needed and makes it mode 0700.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
    // An existing directory keeps its mode with `create`: tighten it.
    let mode = fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode != DIR_MODE {
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

/// Writes `path` atomically: a temporary file beside it, created with
/// `mode` (so a secret is never readable by others, even for a moment),
/// written and synced, then renamed over `path`.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    replace_file(path, contents, mode, true)
}

/// [`write_atomic`] without the sync to disk: for files rewritten every few
/// seconds whose loss in a crash does not matter (`status.json`).
pub fn write_atomic_unsynced(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    replace_file(path, contents, mode, false)
}

fn replace_file(path: &Path, contents: &[u8], mode: u32, sync: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}.{}", std::process::id(), rand::random::<u32>()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode: set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        if sync {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn default_dir_follows_xdg_then_home() {
        let dir = state_dir_from(Some("/x/state".into()), Some("/home/a".into())).unwrap();
        assert_eq!(dir, PathBuf::from("/x/state/ward"));
        // A relative XDG_STATE_HOME is ignored, as the spec says.
        let dir = state_dir_from(Some("rel".into()), Some("/home/a".into())).unwrap();
        assert_eq!(dir, PathBuf::from("/home/a/.local/state/ward"));
        let dir = state_dir_from(None, Some("/home/a".into())).unwrap();
        assert_eq!(dir, PathBuf::from("/home/a/.local/state/ward"));
        assert!(matches!(state_dir_from(None, None), Err(StateError::NoDefaultDir)));
        assert!(matches!(
            state_dir_from(None, Some("".into())),
            Err(StateError::NoDefaultDir)
        ));
    }
}
