//! `jichu load --server URL`: a load submitted to a running server, followed to its end as an
//! offline `jichu load` would show it — progress bar, summary, report and rejects files.

use crate::error::{Error, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to submit and where the outcome goes.
#[derive(Debug)]
pub struct Submission {
    pub server: String,
    pub key: Option<String>,
    pub spec: PathBuf,
    pub files: Vec<PathBuf>,
    pub report: Option<PathBuf>,
    pub rejects: Option<PathBuf>,
}

/// The published load's report, or an error naming why it did not publish.
pub fn submit(s: &Submission) -> Result<jichu_ingest::LoadReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the HTTP client: {e}")))?;
    runtime.block_on(run(s))
}

fn http(e: reqwest::Error) -> Error {
    Error::Remote(format!("the server: {e}"))
}

async fn problem(r: reqwest::Response) -> Error {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let detail = body.get("detail").and_then(Value::as_str).unwrap_or("no detail");
    Error::Remote(format!("the server refused ({status}): {detail}"))
}

async fn run(s: &Submission) -> Result<jichu_ingest::LoadReport> {
    let client = reqwest::Client::new();
    let base = s.server.trim_end_matches('/');
    let auth = |b: reqwest::RequestBuilder| match &s.key {
        Some(k) => b.bearer_auth(k),
        None => b,
    };
    let spec = std::fs::read_to_string(&s.spec).map_err(Error::io(&s.spec))?;
    let mut form = reqwest::multipart::Form::new().text("spec", spec);
    for f in &s.files {
        let file = tokio::fs::File::open(f).await.map_err(Error::io(f))?;
        let len = file.metadata().await.map_err(Error::io(f))?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let name = f.file_name().map_or_else(|| "extract.csv".into(), |n| n.to_string_lossy().into_owned());
        form = form.part("file", reqwest::multipart::Part::stream_with_length(body, len).file_name(name));
    }
    let r = auth(client.post(format!("{base}/v1/loads")).multipart(form)).send().await.map_err(http)?;
    if r.status() != reqwest::StatusCode::ACCEPTED {
        return Err(problem(r).await);
    }
    let accepted: Value = r.json().await.map_err(http)?;
    let load_id = accepted["load_id"].as_u64().ok_or_else(|| Error::Remote("the server gave no load id".into()))?;
    eprintln!("load {load_id} queued on {base}");
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("load {prefix} [{bar:30}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(load_id.to_string());
        bar
    });
    let status = loop {
        let r = auth(client.get(format!("{base}/v1/loads/{load_id}"))).send().await.map_err(http)?;
        if !r.status().is_success() {
            return Err(problem(r).await);
        }
        let status: Value = r.json().await.map_err(http)?;
        let state = status["status"].as_str().unwrap_or("").to_string();
        if let Some(bar) = &bar {
            let p = &status["progress"];
            bar.set_position((p["fraction"].as_f64().unwrap_or(0.0) * 1000.0) as u64);
            bar.set_message(format!("{state}: {} rows", p["rows_read"].as_u64().unwrap_or(0)));
        }
        if matches!(state.as_str(), "published" | "failed" | "cancelled") {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(path) = &s.rejects {
        let r = auth(client.get(format!("{base}/v1/loads/{load_id}/rejects"))).send().await.map_err(http)?;
        if r.status().is_success() {
            write(path, &r.bytes().await.map_err(http)?)?;
        }
    }
    match status["status"].as_str() {
        Some("published") => {
            let report = status["report"].clone();
            if let Some(path) = &s.report {
                write(path, &serde_json::to_vec_pretty(&report).map_err(|e| Error::Codec(e.to_string()))?)?;
            }
            serde_json::from_value(report).map_err(|e| Error::Codec(e.to_string()))
        }
        Some(other) => Err(Error::Remote(format!(
            "load {load_id} {other}: {}",
            status["error"].as_str().unwrap_or("cancelled before it was published")
        ))),
        None => Err(Error::Remote("the server's answer has no status".into())),
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(Error::io(path))
}
