//! Domain lists by digest: snapshots name their tenants' lists by the
//! SHA-256 of their text (`InternetSnapshot::list_refs`), and the gateway
//! fetches a digest it does not have once, checks it, and keeps it under
//! the spool directory (`lists/<sha256>`), so a restarted gateway enforces
//! its saved snapshot without the server, and a snapshot stays small
//! however long the lists are.
//!
//! Files are written whole (a temporary file renamed) and checked again
//! when read; only a 64-character lowercase hex digest ever names a file.
//! Nothing is held in memory: a list is read when a tenant's policy is
//! compiled again, and the compiled form is all the gateway keeps.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use ward_api::{is_sha256_hex, GatewaySnapshot};
use ward_inet::DomainList;

/// The lists this gateway has, by digest.
pub(crate) struct ListStore {
    dir: PathBuf,
}

impl ListStore {
    pub(crate) fn new(dir: PathBuf) -> ListStore {
        ListStore { dir }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    /// The digests `snapshot` names that this gateway does not have, each
    /// once. A malformed digest is an error (the snapshot is not applied).
    pub(crate) fn missing(&self, snapshot: &GatewaySnapshot) -> anyhow::Result<Vec<String>> {
        let mut missing = Vec::new();
        for sha256 in digests(snapshot) {
            if !is_sha256_hex(sha256) {
                bail!("the snapshot names a domain list by a malformed digest {sha256:?}");
            }
            if !self.path(sha256).is_file() && !missing.iter().any(|m| m == sha256) {
                missing.push(sha256.to_owned());
            }
        }
        Ok(missing)
    }

    /// Keeps a fetched list: its text must have the digest it was asked
    /// for, and parse. Written to disk before it is used.
    pub(crate) fn put(&self, sha256: &str, text: &str) -> anyhow::Result<()> {
        if !is_sha256_hex(sha256) {
            bail!("malformed domain list digest {sha256:?}");
        }
        let got = sha256_hex(text.as_bytes());
        if got != sha256 {
            bail!("domain list {sha256}: the text received has digest {got}");
        }
        DomainList::from_text(text).with_context(|| format!("domain list {sha256}"))?;
        write_file(&self.dir, &self.path(sha256), text.as_bytes())
    }

    /// The list with this digest, read from disk and checked.
    pub(crate) fn get(&self, sha256: &str) -> Option<DomainList> {
        if !is_sha256_hex(sha256) {
            return None;
        }
        let text = std::fs::read_to_string(self.path(sha256)).ok()?;
        if sha256_hex(text.as_bytes()) != sha256 {
            tracing::error!(list = %sha256, "a kept domain list does not match its digest; it is fetched again");
            let _ = std::fs::remove_file(self.path(sha256));
            return None;
        }
        DomainList::from_text(&text).ok()
    }

    /// Deletes the lists `snapshot` does not name.
    pub(crate) fn retain(&self, snapshot: &GatewaySnapshot) {
        let keep: HashSet<&str> = digests(snapshot).collect();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if is_sha256_hex(&name) && !keep.contains(name.as_ref()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Every digest a snapshot names.
fn digests(snapshot: &GatewaySnapshot) -> impl Iterator<Item = &str> {
    snapshot
        .tenants
        .iter()
        .flat_map(|t| t.internet.list_refs.iter().map(|r| r.sha256.as_str()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

fn write_file(dir: &Path, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_api::{InternetSnapshot, SnapshotListRef, TenantSnapshot};

    fn snapshot_naming(digests: &[&str]) -> GatewaySnapshot {
        GatewaySnapshot {
            version: 1,
            tenants: vec![TenantSnapshot {
                id: "acme".into(),
                internet: InternetSnapshot {
                    list_refs: digests
                        .iter()
                        .map(|d| SnapshotListRef {
                            id: "l".into(),
                            sha256: (*d).to_owned(),
                            entries: 1,
                        })
                        .collect(),
                    ..Default::default()
                },
                ..Default::default()
            }],
        }
    }

    #[test]
    fn lists_are_checked_kept_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = ListStore::new(dir.path().join("lists"));
        let text = "ads.example\n*.tracker.example\n";
        let sha = sha256_hex(text.as_bytes());
        let other = "0".repeat(64);
        let snapshot = snapshot_naming(&[&sha, &sha, &other]);
        assert_eq!(store.missing(&snapshot).unwrap(), vec![sha.clone(), other.clone()]);

        // The wrong text for a digest is refused; the right one kept.
        assert!(store.put(&other, text).is_err());
        assert!(store.put("../../etc/passwd", text).is_err());
        store.put(&sha, text).unwrap();
        assert_eq!(store.missing(&snapshot).unwrap(), vec![other.clone()]);
        assert_eq!(store.get(&sha).unwrap().len(), 2);

        // A new store on the same directory finds it on disk.
        let again = ListStore::new(dir.path().join("lists"));
        assert_eq!(again.get(&sha).unwrap().len(), 2);
        assert!(again.get("../x").is_none());

        // A tampered file is not used.
        std::fs::write(dir.path().join("lists").join(&sha), "evil.example\n").unwrap();
        assert!(ListStore::new(dir.path().join("lists")).get(&sha).is_none());

        // Malformed digests in a snapshot stop it.
        assert!(store.missing(&snapshot_naming(&["../../x"])).is_err());

        // Lists no snapshot names are forgotten.
        store.put(&sha, text).unwrap();
        store.retain(&snapshot_naming(&[]));
        assert!(store.get(&sha).is_none());
        assert!(!dir.path().join("lists").join(&sha).exists());
    }
}
