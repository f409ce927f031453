//! The config file: named profiles of server, account and token.
//!
//! `$WARD_CONFIG_DIR/config.toml`, by default `~/.config/ward/config.toml`.
//! It holds tokens, so the directory is created 0700 and the file written
//! 0600, atomically (a temporary file renamed over the old one).
//!
//! ```toml
//! current = "default"
//!
//! [profiles.default]
//! server = "https://ward.example.com:7600"
//! tenant = "acme"
//! user = "admin"
//! token = "..."
//! ca_cert = "/home/me/ward-ca.pem"
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The file's name inside the config directory.
pub const CONFIG_FILE: &str = "config.toml";
/// The profile used when none is named and none is current.
pub const DEFAULT_PROFILE: &str = "default";

/// The whole config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFile {
    /// The profile used when `--profile` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One server and the session on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The session token (absent after logout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// PEM file of the CA to trust for an https server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

/// Where the config file is: `$WARD_CONFIG_DIR/config.toml`, else
/// `$HOME/.config/ward/config.toml`.
pub fn config_path() -> Result<PathBuf> {
    config_path_from(std::env::var_os("WARD_CONFIG_DIR"), std::env::var_os("HOME"))
}

/// [`config_path`] for the given values of `WARD_CONFIG_DIR` and `HOME`.
pub fn config_path_from(ward_config_dir: Option<OsString>, home: Option<OsString>) -> Result<PathBuf> {
    if let Some(dir) = ward_config_dir.filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join(CONFIG_FILE));
    }
    match home.filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".config").join("ward").join(CONFIG_FILE)),
        None => bail!("cannot find the config directory: set WARD_CONFIG_DIR or HOME"),
    }
}

impl ConfigFile {
    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<ConfigFile> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
            Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
        };
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .and_then(|span| text.as_bytes().get(..span.start))
                .map(|before| before.iter().filter(|b| **b == b'\n').count() + 1);
            let why = e.message().trim().replace('\n', " ");
            match line {
                Some(line) => anyhow!("cannot read {}: line {line}: {why}", path.display()),
                None => anyhow!("cannot read {}: {why}", path.display()),
            }
        })
    }

    /// Writes the file atomically, 0600, creating its directory 0700.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self).context("cannot encode the config")?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        create_private_dir(dir)?;
        let fail = |e: std::io::Error| anyhow!("cannot write {}: {e}", path.display());
        let mut tmp = tempfile::Builder::new()
            .prefix(".config.toml.")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(fail)?;
        set_mode(tmp.path(), 0o600).map_err(fail)?;
        tmp.write_all(text.as_bytes()).map_err(fail)?;
        tmp.as_file().sync_all().map_err(fail)?;
        tmp.persist(path).map_err(|e| fail(e.error))?;
        // Make the rename itself durable; not fatal where unsupported.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The profile to use: the one named, else the current one, else `default`.
    pub fn selected_name(&self, named: Option<&str>) -> String {
        named
            .filter(|n| !n.is_empty())
            .or(self.current.as_deref().filter(|n| !n.is_empty()))
            .unwrap_or(DEFAULT_PROFILE)
            .to_owned()
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| anyhow!("cannot create {}: {e}", dir.display()))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> ConfigFile {
        let mut cfg = ConfigFile {
            current: Some("prod".to_owned()),
            ..ConfigFile::default()
        };
        cfg.profiles.insert(
            "prod".to_owned(),
            Profile {
                server: "https://ward.example.com:7600".to_owned(),
                tenant: Some("acme".to_owned()),
                user: Some("admin".to_owned()),
                token: Some("sess-secret".to_owned()),
                ca_cert: Some(PathBuf::from("/etc/ward/ca.pem")),
            },
        );
        cfg.profiles.insert(
            "lab \"x\"".to_owned(),
            Profile {
                server: "http://127.0.0.1:7600".to_owned(),
                ..Profile::default()
            },
        );
        cfg
    }

    #[test]
    fn round_trips_with_private_permissions() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("nested").join("ward").join(CONFIG_FILE);
        assert_eq!(ConfigFile::load(&path).unwrap(), ConfigFile::default());
        let cfg = sample();
        cfg.save(&path).unwrap();
        assert_eq!(ConfigFile::load(&path).unwrap(), cfg);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }

        // Saving again replaces the file and leaves no temporary file behind.
        let mut cfg2 = cfg.clone();
        cfg2.current = Some("lab \"x\"".to_owned());
        cfg2.save(&path).unwrap();
        assert_eq!(ConfigFile::load(&path).unwrap(), cfg2);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [CONFIG_FILE]);
    }

    #[test]
    fn a_broken_file_names_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(CONFIG_FILE);
        std::fs::write(&path, "current = [").unwrap();
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(err.starts_with(&format!("cannot read {}", path.display())), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn finds_the_config_dir() {
        assert_eq!(
            config_path_from(Some("/cfg".into()), Some("/home/me".into())).unwrap(),
            PathBuf::from("/cfg/config.toml")
        );
        assert_eq!(
            config_path_from(None, Some("/home/me".into())).unwrap(),
            PathBuf::from("/home/me/.config/ward/config.toml")
        );
        assert_eq!(
            config_path_from(Some("".into()), Some("/home/me".into())).unwrap(),
            PathBuf::from("/home/me/.config/ward/config.toml")
        );
        assert!(config_path_from(None, None).is_err());
    }

    #[test]
    fn selects_the_profile() {
        let mut cfg = ConfigFile::default();
        assert_eq!(cfg.selected_name(None), "default");
        cfg.current = Some("prod".to_owned());
        assert_eq!(cfg.selected_name(None), "prod");
        assert_eq!(cfg.selected_name(Some("lab")), "lab");
        assert_eq!(cfg.selected_name(Some("")), "prod");
    }
}
