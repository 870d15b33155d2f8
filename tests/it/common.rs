//! Shared set-up: fixture paths, stores loaded from the fixtures, a running server.

use jichu::config::Config;
use jichu::load::{LoadOptions, load};
use jichu::store::{Store, StoreOptions};
use jichu_ingest::{LoadReport, Spec};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempDir;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// A store in a temporary data directory (removed on drop).
pub struct TestStore {
    pub dir: TempDir,
    pub store: Arc<Store>,
}

impl TestStore {
    pub fn new() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("store"), &small()).unwrap());
        TestStore { dir, store }
    }

    /// Drops the store and opens it again from disk.
    pub fn reopen(self) -> TestStore {
        self.reopen_after(|_| {})
    }

    /// Drops the store, lets `edit` change its folder (as another version of jichu might
    /// have left it), and opens it again.
    pub fn reopen_after(self, edit: impl FnOnce(&Path)) -> TestStore {
        let TestStore { dir, store } = self;
        drop(Arc::into_inner(store).expect("no other handle"));
        edit(&dir.path().join("store"));
        let store = Arc::new(Store::open(&dir.path().join("store"), &small()).unwrap());
        TestStore { dir, store }
    }

    pub fn options(&self) -> LoadOptions {
        LoadOptions::new(self.dir.path())
    }

    /// Loads `data` described by `spec` (both paths), returning the report.
    pub fn load(&self, spec: &Path, data: &[PathBuf]) -> LoadReport {
        self.try_load(spec, data, &self.options()).unwrap()
    }

    pub fn try_load(&self, spec: &Path, data: &[PathBuf], opts: &LoadOptions) -> jichu::Result<LoadReport> {
        let parsed = Spec::from_path(spec)?;
        load(&self.store, &parsed, spec, data, opts)
    }

    /// Loads a fixture extract by its stem (`citizens` → citizens.toml + citizens.csv).
    pub fn load_fixture(&self, stem: &str) -> LoadReport {
        self.load(&fixture(&format!("{stem}.toml")), &[fixture(&format!("{stem}.csv"))])
    }

    /// Every fixture loaded, holders first.
    pub fn loaded() -> TestStore {
        let t = TestStore::new();
        for stem in ["citizens", "citizens_gb18030", "entities", "parcels", "credit", "licences"] {
            t.load_fixture(stem);
        }
        t
    }
}

fn small() -> StoreOptions {
    StoreOptions { block_cache_bytes: 8 << 20, history_retention_days: None }
}

/// `(line, reason)` pairs of a rejects CSV.
pub fn reject_lines(path: &Path) -> Vec<(u64, String)> {
    let mut r = csv::Reader::from_path(path).unwrap();
    assert_eq!(r.headers().unwrap(), vec!["line", "reason", "message", "raw"]);
    let mut out: Vec<(u64, String)> = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[0].parse().unwrap(), rec[1].to_string())
        })
        .collect();
    out.sort();
    out
}

pub fn expected_rejects(stem: &str) -> Vec<(u64, String)> {
    reject_lines_plain(&fixture(&format!("expected/{stem}.rejects.csv")))
}

fn reject_lines_plain(path: &Path) -> Vec<(u64, String)> {
    let mut r = csv::Reader::from_path(path).unwrap();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[0].parse().unwrap(), rec[1].to_string())
        })
        .collect()
}

/// A server on 127.0.0.1:0 over `store`; stops when dropped (or, waiting, by [`Server::stop`]).
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub client: reqwest::Client,
}

impl Server {
    /// A server without access control (`--insecure-no-auth`): the API's own behaviour.
    pub async fn start(store: Arc<Store>) -> Server {
        Self::start_with(store, Config { insecure_no_auth: true, ..Config::default() }).await
    }

    pub async fn start_with(store: Arc<Store>, config: Config) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = jichu::api::AppState::new(store, config).unwrap();
        let task = tokio::spawn(jichu::api::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Server { addr, stop: Some(stop), task: Some(task), client: reqwest::Client::new() }
    }

    /// Stops the server as a SIGTERM would (a running load is undone and stays queued) and
    /// waits until it has let go of its store.
    pub async fn stop(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> (u16, String, serde_json::Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        Self::parts(r).await
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, String, serde_json::Value) {
        let r = self.client.post(self.url(path)).json(body).send().await.unwrap();
        Self::parts(r).await
    }

    pub async fn parts(r: reqwest::Response) -> (u16, String, serde_json::Value) {
        let status = r.status().as_u16();
        let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, ct, json)
    }
}

/// A copy of a fixture extract with each data row edited (or dropped, on `None`).
pub fn write_variant(t: &TestStore, name: &str, edit: impl Fn(&str) -> Option<String>) -> PathBuf {
    let text = std::fs::read_to_string(fixture(&format!("{name}.csv"))).unwrap();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(l) = if i == 0 { Some(line.to_string()) } else { edit(line) } {
            out.push_str(&l);
            out.push('\n');
        }
    }
    let path = t.dir.path().join(format!("{name}-variant.csv"));
    std::fs::write(&path, out).unwrap();
    path
}
