//! Headless Chromium for a test, driven over WebDriver: chromedriver started on a loopback
//! port, one session, screenshots into a folder a person can look at, and the browser's
//! console log, so a test can say the page logged no error.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// Where screenshots go: `target/console-screenshots/` of the workspace.
pub fn screenshot_dir() -> PathBuf {
    let target =
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into());
    Path::new(&target).join("console-screenshots")
}

/// A program on `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// One line of the browser's console log.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub level: String,
    pub source: String,
    pub message: String,
}

pub struct Browser {
    pub client: Client,
    driver: tokio::process::Child,
    driver_url: String,
    shots: PathBuf,
    /// Where the browser saves downloads.
    pub downloads: PathBuf,
    http: reqwest::Client,
}

impl Browser {
    /// Chromium through chromedriver, or `None` (after saying why) when either is missing;
    /// under `CI=true` a missing browser fails the test instead.
    pub async fn start_or_skip() -> Option<Browser> {
        let (Some(driver), Some(chromium)) = (on_path("chromedriver"), on_path("chromium")) else {
            let why = "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)";
            assert!(!functional_tests::engine::on_ci(), "{why}; CI=true needs them (scripts/test.sh installs them)");
            eprintln!("skipping: {why}");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let child = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // Its own process group, which the browsers it starts join: dropping the Browser
            // (a failed test too) ends them all, not only chromedriver.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let driver_url = format!("http://127.0.0.1:{port}");
        wharf::install_crypto_provider();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).no_proxy().build().expect("client");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{driver_url}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer on {driver_url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let shots = screenshot_dir();
        let downloads = shots.join(format!("downloads-{port}"));
        std::fs::create_dir_all(&downloads).expect("download folder");
        // Chromium takes only a plain absolute path (no `..`) as its download folder.
        let downloads = downloads.canonicalize().expect("download folder path");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-proxy-server", "--window-size=1280,900", "--lang=en-US"],
                "prefs": {"download.default_directory": downloads, "download.prompt_for_download": false},
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else { unreachable!("a JSON object literal") };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver_url)
            .await
            .expect("a Chromium session");
        let browser = Browser { client, driver: child, driver_url, shots, downloads, http };
        // Headless Chromium refuses downloads unless told where they go, through DevTools.
        let params = json!({"behavior": "allow", "downloadPath": browser.downloads});
        browser.devtools("Browser.setDownloadBehavior", params).await;
        Some(browser)
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Saves what the window shows as `<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Saves one element as `<name>.png` (scrolled into view first).
    pub async fn screenshot_of(&self, css: &str, name: &str) {
        let element = self.find(css).await;
        self.client
            .execute(
                "arguments[0].scrollIntoView({block: 'start'});",
                vec![serde_json::to_value(&element).expect("ref")],
            )
            .await
            .expect("scroll");
        let png = element.screenshot().await.expect("element screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
    }

    pub async fn set_size(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.expect("window size");
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    pub async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.map(|all| all.len()).unwrap_or(0)
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Waits until the text of the first element matching `css` satisfies `ready`; gives it.
    pub async fn wait_text(&self, css: &str, secs: u64, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = String::new();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if ready(&text) {
                    return text;
                }
                last = text;
            }
            assert!(Instant::now() < deadline, "{css} never got the expected text; last: {last:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs `script` in the page and gives its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// The browser's console log since the last call (chromedriver's log endpoint).
    pub async fn log(&self) -> Vec<LogEntry> {
        let session = self.client.session_id().await.expect("session").expect("a session id");
        let answer: Value = self
            .http
            .post(format!("{}/session/{session}/se/log", self.driver_url))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .expect("browser log")
            .json()
            .await
            .expect("log JSON");
        answer["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| LogEntry {
                        level: e["level"].as_str().unwrap_or_default().to_owned(),
                        source: e["source"].as_str().unwrap_or_default().to_owned(),
                        message: e["message"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sends a DevTools command through chromedriver.
    async fn devtools(&self, command: &str, params: Value) {
        let session = self.client.session_id().await.expect("session").expect("a session id");
        let answer = self
            .http
            .post(format!("{}/session/{session}/goog/cdp/execute", self.driver_url))
            .json(&json!({"cmd": command, "params": params}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{command}: {e}"));
        assert!(answer.status().is_success(), "{command}: {}", answer.text().await.unwrap_or_default());
    }

    /// The content of the downloaded file `name`, once the browser has saved it whole.
    pub async fn downloaded(&self, name: &str) -> Vec<u8> {
        let path = self.downloads.join(name);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !path.exists() {
            assert!(Instant::now() < deadline, "{} was never downloaded", path.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::fs::read(&path).expect("read the download")
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        let _ = std::fs::remove_dir_all(&self.downloads);
    }
}

impl Drop for Browser {
    /// Kills chromedriver's process group: chromedriver and every Chromium process it started.
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
        }
    }
}
