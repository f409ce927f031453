//! A real OpenID provider for the tests: the `oidc-provider` fixture of
//! `tests/oidc-provider` on Node.js, on a free loopback port.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub const SECRET: &str = "client-secret-of-ward-0123456789";

/// The fixture provider, killed on drop.
pub struct Provider {
    child: Child,
    pub issuer: String,
    fixture: tempfile::NamedTempFile,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// Starts the provider for a Ward at `ward_url`; None (skipped) when
    /// `WARD_TEST_OIDC` is unset.
    pub fn start(ward_url: &str, accounts: Value) -> Option<Provider> {
        if std::env::var_os("WARD_TEST_OIDC").is_none() {
            eprintln!("skipped: set WARD_TEST_OIDC=1 (after `npm ci --prefix tests/oidc-provider`) to run against a real OpenID provider");
            return None;
        }
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc-provider");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "WARD_TEST_OIDC is set but {} has no node_modules: run `npm ci --prefix tests/oidc-provider`",
            dir.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let fixture = tempfile::NamedTempFile::new().unwrap();
        write_fixture(&fixture, ward_url, accounts);
        let mut p = Provider {
            child: Command::new("node")
                .arg("provider.mjs")
                .current_dir(&dir)
                .env("PORT", port.to_string())
                .env("WARD_OIDC_FIXTURE_FILE", fixture.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("WARD_TEST_OIDC is set but node cannot be started"),
            issuer: format!("http://127.0.0.1:{port}"),
            fixture,
        };
        let stdout = p.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("listening") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("WARD_TEST_OIDC is set but the OpenID provider did not start");
        Some(p)
    }

    pub fn set_accounts(&self, ward_url: &str, accounts: Value) {
        write_fixture(&self.fixture, ward_url, accounts);
    }
}

fn write_fixture(file: &tempfile::NamedTempFile, ward_url: &str, accounts: Value) {
    {
        let f = json!({
            "client": {
                "client_id": "ward",
                "client_secret": SECRET,
                "redirect_uris": [format!("{ward_url}/portal/oidc/callback")],
            },
            "accounts": accounts,
        });
        std::fs::write(file.path(), f.to_string()).unwrap();
    }
}
