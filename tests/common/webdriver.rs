//! A small W3C WebDriver client for the browser tests: Debian's chromedriver on a free loopback
//! port drives a real headless Chromium with a fresh profile. Only what the tests use: open a
//! page, find elements by CSS, click, type, read text and attributes, take screenshots.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The W3C key of a found element in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

/// A found element.
#[derive(Debug, Clone)]
pub struct Element(String);

/// The chromedriver to run: `$TUSK_CHROMEDRIVER` or Debian's.
pub fn chromedriver() -> PathBuf {
    std::env::var_os("TUSK_CHROMEDRIVER").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

impl Browser {
    /// Starts chromedriver and a headless Chromium (flags that let it run as root in a
    /// container with no network but loopback).
    pub fn start() -> Self {
        let driver_path = chromedriver();
        assert!(driver_path.exists(), "{} is missing: run scripts/setup-browser.sh (scripts/test.sh does)", driver_path.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(&driver_path).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while ureq::get(&format!("{base}/status")).call().is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}});
        let answer: Value = ureq::post(&format!("{base}/session")).timeout(Duration::from_secs(60)).send_json(caps).expect("new WebDriver session").into_json().unwrap();
        let session = answer["value"]["sessionId"].as_str().expect("a session id").to_string();
        let mut b = Browser { driver, base, session, _profile: profile };
        b.call("POST", "timeouts", json!({"implicit": 2000, "pageLoad": 30000}));
        b
    }

    fn call(&mut self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}/{path}", self.base, self.session);
        let req = ureq::request(method, &url).timeout(Duration::from_secs(60));
        let resp = if method == "GET" { req.call() } else { req.send_json(body) };
        match resp {
            Ok(r) => r.into_json::<Value>().unwrap()["value"].clone(),
            Err(ureq::Error::Status(code, r)) => panic!("WebDriver {method} {path}: {code} {}", r.into_string().unwrap_or_default()),
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        }
    }

    /// Opens a page and waits for it to load.
    pub fn goto(&mut self, url: &str) {
        self.call("POST", "url", json!({"url": url}));
    }

    /// The address shown now.
    pub fn url(&mut self) -> String {
        self.call("GET", "url", Value::Null).as_str().unwrap_or("").to_string()
    }

    /// Elements matching a CSS selector (none is not an error).
    pub fn find_all(&mut self, css: &str) -> Vec<Element> {
        let found = self.call("POST", "elements", json!({"using": "css selector", "value": css}));
        found.as_array().map(|a| a.iter().filter_map(|e| e[ELEMENT].as_str().map(|s| Element(s.to_string()))).collect()).unwrap_or_default()
    }

    /// The first element matching a CSS selector; panics when there is none.
    pub fn find(&mut self, css: &str) -> Element {
        if let Some(e) = self.find_all(css).into_iter().next() {
            return e;
        }
        let (url, source) = (self.url(), self.call("GET", "source", Value::Null));
        panic!("no element matches {css:?} on {url}: {}", source.as_str().unwrap_or("").chars().take(3000).collect::<String>())
    }

    /// Clicks an element (and waits for the page a form post leads to).
    pub fn click(&mut self, e: &Element) {
        self.call("POST", &format!("element/{}/click", e.0), json!({}));
    }

    /// Clicks a link or a form's button and waits until the next page has loaded.
    pub fn click_to_load(&mut self, e: &Element) {
        let before = self.eval("return String(performance.timeOrigin);");
        self.click(e);
        let started = Instant::now();
        loop {
            let now = self.eval("return [String(performance.timeOrigin), document.readyState];");
            if now[0] != before && now[1] == "complete" {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no new page loaded after the click");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends keys and waits until the page they lead to has loaded.
    pub fn keys_to_load(&mut self, text: &str) {
        let before = self.eval("return String(performance.timeOrigin);");
        self.keys(text);
        let started = Instant::now();
        loop {
            let now = self.eval("return [String(performance.timeOrigin), document.readyState];");
            if now[0] != before && now[1] == "complete" {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no new page loaded after the keys");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Empties an input.
    pub fn clear(&mut self, e: &Element) {
        self.call("POST", &format!("element/{}/clear", e.0), json!({}));
    }

    /// Types into an element.
    pub fn type_into(&mut self, e: &Element, text: &str) {
        self.call("POST", &format!("element/{}/value", e.0), json!({"text": text}));
    }

    /// Sends keys to whatever has the focus.
    pub fn keys(&mut self, text: &str) {
        let actions: Vec<Value> = text.chars().flat_map(|c| [json!({"type": "keyDown", "value": c.to_string()}), json!({"type": "keyUp", "value": c.to_string()})]).collect();
        self.call("POST", "actions", json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}));
    }

    /// An element's visible text.
    pub fn text(&mut self, e: &Element) -> String {
        self.call("GET", &format!("element/{}/text", e.0), Value::Null).as_str().unwrap_or("").to_string()
    }

    /// An element's attribute.
    pub fn attr(&mut self, e: &Element, name: &str) -> Option<String> {
        self.call("GET", &format!("element/{}/attribute/{name}", e.0), Value::Null).as_str().map(str::to_string)
    }

    /// Runs a script in the page and returns its value.
    pub fn eval(&mut self, script: &str) -> Value {
        self.call("POST", "execute/sync", json!({"script": script, "args": []}))
    }

    /// Saves a PNG screenshot of the window.
    pub fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let data = self.call("GET", "screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
