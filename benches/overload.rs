//! Overload benchmark: `cargo bench --bench overload -- [--citizens N] [--keep DIR] [--secs S]`.
//!
//! Serves a store of N generated citizens (all five registries) with `jichu serve` (a child
//! process, loopback, no access control) and drives it with a mix that includes the most
//! expensive queries the API accepts. First a closed loop (32 clients, S seconds) finds the
//! rate it sustains; then twice that rate is offered open-loop for S seconds. Reported: answers
//! by status, answers slower than the server's timeout, `/healthz` latency (probed every 50 ms
//! on a connection of its own), and the server's peak RSS. Passes when every answer is a 2xx,
//! 429 or 503, none outlives the timeout, and `/healthz` stays under 100 ms.

mod common;

use common::arg;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_jichu");
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let citizens: u64 = arg("--citizens").and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let secs: u64 = arg("--secs").and_then(|s| s.parse().ok()).unwrap_or(20);
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = arg("--keep").map(std::path::PathBuf::from).unwrap_or_else(|| tmp.path().to_path_buf());
    let data = root.join(format!("overload-{citizens}"));
    if !data.join("loaded").exists() {
        let x = root.join(format!("extracts-{citizens}"));
        run(Command::new(BIN).args(["gen", "--citizens", &citizens.to_string(), "--out"]).arg(&x));
        for name in jichu::generator::LOAD_ORDER {
            run(Command::new(BIN)
                .arg("--data-dir")
                .arg(&data)
                .args(["--log", "warn", "load", "--spec"])
                .arg(x.join(format!("{name}.toml")))
                .arg(x.join(format!("{name}.csv"))));
        }
        let _ = std::fs::remove_dir_all(&x);
        std::fs::write(data.join("loaded"), b"").expect("mark");
    }
    let port = 18000 + (std::process::id() % 1000) as u16;
    let server = Server::start(&data, port);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(drive(server, citizens, secs));
}

fn run(cmd: &mut Command) {
    let status = cmd.status().expect("run jichu");
    assert!(status.success(), "{cmd:?}: {status}");
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data: &Path, port: u16) -> Server {
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(data)
            .args(["--log", "warn", "serve", "--insecure-no-auth", "--addr", &format!("127.0.0.1:{port}")])
            .spawn()
            .expect("serve");
        // Made first, so that a server that never answers is killed as the panic unwinds.
        let server = Server { child, base: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(120);
        let up = || {
            use std::io::{Read, Write};
            let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            c.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").ok()?;
            let mut answer = String::new();
            c.read_to_string(&mut answer).ok()?;
            answer.split_whitespace().nth(1).is_some_and(|s| s == "200").then_some(())
        };
        while up().is_none() {
            assert!(Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    /// Peak resident memory so far, MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kb = status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1));
        kb.and_then(|k| k.parse::<f64>().ok()).map_or(0.0, |k| k / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request of the mix: cheap reads most of the time, the most expensive accepted queries
/// (ten-word address searches, 50 km counts, city-wide 1,000-vertex polygons, 1,000-key
/// lookups, profiles) the rest.
fn request(client: &reqwest::Client, base: &str, n: u64, rng: &mut SmallRng) -> reqwest::RequestBuilder {
    let id = || jichu::generator::citizen_id(rand::rng().random_range(0..n));
    let [x0, y0, x1, y1] = jichu::generator::EXTENT;
    let (lon, lat) = (rng.random_range(x0..x1), rng.random_range(y0..y1));
    match rng.random_range(0..100) {
        0..40 => client.get(format!("{base}/v1/citizens/{}", id())),
        40..60 => client.post(format!("{base}/v1/citizens/near")).json(&json!({"lon": lon, "lat": lat, "k": 10})),
        60..72 => client.post(format!("{base}/v1/citizens/search")).json(&json!({"q": "陈", "limit": 20})),
        72..78 => {
            let roads = jichu::generator::roads();
            let q: Vec<&str> =
                (0..10).map(|i| roads[(i * 7 + rng.random_range(0..roads.len())) % roads.len()]).collect();
            client.post(format!("{base}/v1/citizens/search")).json(&json!({"q": q.join(" "), "limit": 100}))
        }
        78..84 => client
            .post(format!("{base}/v1/citizens/near"))
            .json(&json!({"lon": lon, "lat": lat, "radius_m": 50_000, "count_only": true})),
        84..90 => {
            let ring: Vec<[f64; 2]> = (0..999)
                .map(|i| {
                    let a = f64::from(i) / 999.0 * std::f64::consts::TAU;
                    [118.15 + 0.3 * a.cos(), 24.6 + 0.2 * a.sin()]
                })
                .chain(std::iter::once([118.45, 24.6]))
                .collect();
            client
                .post(format!("{base}/v1/citizens/within"))
                .json(&json!({"polygon": {"type": "Polygon", "coordinates": [ring]}, "limit": 1000}))
        }
        90..95 => {
            let ids: Vec<String> = (0..1000).map(|_| id()).collect();
            client.post(format!("{base}/v1/citizens/lookup")).json(&json!({ "ids": ids }))
        }
        _ => client.get(format!("{base}/v1/citizens/{}/profile", id())),
    }
}

#[derive(Default)]
struct Tally {
    by_status: BTreeMap<String, u64>,
    over_timeout: u64,
    latencies_ms: Vec<f64>,
}

impl Tally {
    fn record(&mut self, outcome: Result<u16, String>, took: Duration) {
        let key = match outcome {
            Ok(s) => s.to_string(),
            Err(e) => e,
        };
        *self.by_status.entry(key).or_default() += 1;
        if took > TIMEOUT + Duration::from_secs(1) {
            self.over_timeout += 1;
        }
        self.latencies_ms.push(took.as_secs_f64() * 1e3);
    }

    fn total(&self) -> u64 {
        self.by_status.values().sum()
    }

    fn ok(&self) -> bool {
        self.over_timeout == 0 && self.by_status.keys().all(|k| k.starts_with('2') || k == "429" || k == "503")
    }
}

async fn send(req: reqwest::RequestBuilder) -> Result<u16, String> {
    match req.timeout(TIMEOUT * 3).send().await {
        Ok(r) => {
            let s = r.status().as_u16();
            let _ = r.bytes().await;
            Ok(s)
        }
        Err(e) if e.is_timeout() => Err("client timeout".into()),
        Err(_) => Err("connection error".into()),
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn drive(server: Server, n: u64, secs: u64) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("client");
    let base = server.base.clone();
    // Closed loop: what the server sustains.
    let tally = Arc::new(Mutex::new(Tally::default()));
    let until = Instant::now() + Duration::from_secs(secs);
    let mut clients = Vec::new();
    for c in 0..32u64 {
        let (client, base, tally) = (client.clone(), base.clone(), tally.clone());
        clients.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(c);
            while Instant::now() < until {
                let t = Instant::now();
                let outcome = send(request(&client, &base, n, &mut rng)).await;
                tally.lock().unwrap().record(outcome, t.elapsed());
            }
        }));
    }
    for c in clients {
        let _ = c.await;
    }
    let sustained = {
        let t = tally.lock().unwrap();
        t.by_status.iter().filter(|(k, _)| k.starts_with('2')).map(|(_, v)| v).sum::<u64>() as f64 / secs as f64
    };
    let closed = std::mem::take(&mut *tally.lock().unwrap());

    // Open loop at twice that rate, with /healthz probed beside it and the server's memory read.
    let rate = (2.0 * sustained).max(10.0);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let probe_client = reqwest::Client::new();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s2, pb) = (stop.clone(), base.clone());
    let probes = tokio::spawn(async move {
        let mut ms = Vec::new();
        let mut failed = 0u64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            match probe_client.get(format!("{pb}/healthz")).timeout(Duration::from_secs(5)).send().await {
                Ok(r) if r.status() == 200 => ms.push(t.elapsed().as_secs_f64() * 1e3),
                _ => failed += 1,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (ms, failed)
    });
    let mut rng = SmallRng::seed_from_u64(99);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let until = Instant::now() + Duration::from_secs(secs);
    let mut inflight = Vec::new();
    let mut peak_rss: f64 = 0.0;
    let mut sampled = Instant::now();
    while Instant::now() < until {
        ticker.tick().await;
        let req = request(&client, &base, n, &mut rng);
        let tally = tally.clone();
        inflight.push(tokio::spawn(async move {
            let t = Instant::now();
            let outcome = send(req).await;
            tally.lock().unwrap().record(outcome, t.elapsed());
        }));
        if sampled.elapsed() > Duration::from_millis(200) {
            peak_rss = peak_rss.max(server.peak_rss_mib());
            sampled = Instant::now();
        }
    }
    for t in inflight {
        let _ = t.await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut health, health_failed) = probes.await.expect("probes");
    peak_rss = peak_rss.max(server.peak_rss_mib());
    let mut open = std::mem::take(&mut *tally.lock().unwrap());

    println!("\n| measure | value |\n|---|---|");
    println!("| store | {n} citizens, all five registries |");
    println!(
        "| closed loop, 32 clients, {secs} s | {sustained:.0} answers/s sustained (2xx); statuses {:?} |",
        closed.by_status
    );
    println!(
        "| open loop at 2× ({rate:.0} req/s offered), {secs} s | {} answers: {:?} |",
        open.total(),
        open.by_status
    );
    println!(
        "| answer latency under overload | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} past the {} s timeout |",
        pct(&mut open.latencies_ms, 0.5),
        pct(&mut open.latencies_ms, 0.99),
        pct(&mut open.latencies_ms, 1.0),
        open.over_timeout,
        TIMEOUT.as_secs()
    );
    println!(
        "| /healthz under overload ({} probes) | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} failed |",
        health.len(),
        pct(&mut health, 0.5),
        pct(&mut health, 0.99),
        pct(&mut health, 1.0),
        health_failed
    );
    println!("| server peak RSS | {peak_rss:.0} MiB |");
    let healthy = health_failed == 0 && pct(&mut health, 1.0) <= 100.0;
    println!("| verdict | {} |", if open.ok() && closed.ok() && healthy { "pass" } else { "FAIL: see the rows above" });
}
