//! Chromium through chromedriver, for the browser suites
//! (`WARD_TEST_BROWSER=1`; Debian's chromium and chromium-driver).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::free_port;

/// The chromedriver process, killed when dropped.
pub struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless Chromium with a throwaway profile, no background traffic, and
/// the given extra arguments (name resolution rules, a proxy, ...).
pub async fn chromium(extra: &[String]) -> (Driver, fantoccini::Client) {
    let chromedriver = std::env::var("WARD_TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let binary = std::env::var("WARD_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let port = free_port();
    let child = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e} (apt-get install chromium chromium-driver)"));
    let driver = Driver(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start listening");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1100,760",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-pings",
        "--disable-domain-reliability",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend_from_slice(extra);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "binary": binary, "args": args }),
    );
    let client = fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    (driver, client)
}

pub async fn page_text(c: &fantoccini::Client) -> String {
    match c.find(fantoccini::Locator::Css("body")).await {
        Ok(b) => b.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

pub async fn wait_for_text(c: &fantoccini::Client, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = page_text(c).await;
        if now.contains(text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {text:?}; it shows:\n{now}\n(at {:?})",
            c.current_url().await.ok()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Saves a screenshot as `NAME.png` in `WARD_SCREENSHOTS`, when set.
pub async fn screenshot(c: &fantoccini::Client, name: &str) {
    let Some(dir) = std::env::var_os("WARD_SCREENSHOTS") else {
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), c.screenshot().await.unwrap()).unwrap();
}
