//! Loads inside a running server: submitted by upload or by path, queued, cancelled, resumed
//! after a restart, and published all at once while readers keep answering.

use crate::common::{Server, TestStore, fixture, reject_lines, write_variant};
use jichu::model::Registry;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Generated citizens' extract and spec (the generator's, deterministic).
pub fn generated(dir: &Path, citizens: u64) -> (PathBuf, PathBuf) {
    jichu::generator::generate(dir, &jichu::generator::GenOptions { citizens, seed: 7 }).unwrap();
    (dir.join("citizens.toml"), dir.join("citizens.csv"))
}

/// The first `n` data rows of a CSV (with its header), each passed through `edit`.
fn rows(csv: &Path, n: usize, edit: impl Fn(usize, &str) -> String) -> String {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for (i, l) in lines.take(n).enumerate() {
        out.push_str(&edit(i, l));
        out.push('\n');
    }
    out
}

pub async fn upload(s: &Server, spec: &str, files: &[(&str, Vec<u8>)]) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new().text("spec", spec.to_string());
    for (name, bytes) in files {
        form = form.part("file", reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()));
    }
    let r = s.client.post(s.url("/v1/loads")).multipart(form).send().await.unwrap();
    let status = r.status().as_u16();
    if status == 202 {
        let location = r.headers().get("location").unwrap().to_str().unwrap().to_string();
        let body: Value = r.json().await.unwrap();
        assert_eq!(location, format!("/v1/loads/{}", body["load_id"]));
        return (status, body);
    }
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls a load until it has ended; its last status.
pub async fn wait_for(s: &Server, load_id: &Value) -> Value {
    for _ in 0..1200 {
        let (code, _, body) = s.get(&format!("/v1/loads/{load_id}")).await;
        assert_eq!(code, 200, "{body}");
        if matches!(body["status"].as_str(), Some("published" | "failed" | "cancelled")) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("load {load_id} did not end");
}

/// What readers are asked, answered from one view: the names and ended flags of fixed keys,
/// the total of a name search, the keys of the ten nearest to a point, the count of citizens
/// within a box.
#[derive(Clone, Debug, PartialEq)]
struct Answers {
    records: Vec<(String, bool)>,
    search_total: u64,
    nearest: Vec<String>,
    in_box: u64,
}

const POINT: (f64, f64) = (118.10, 24.50);
const SURNAME: &str = "陈";

async fn ask(s: &Server, keys: &[String]) -> Answers {
    let (code, _, body) = s.post("/v1/citizens/lookup", &json!({"ids": keys})).await;
    assert_eq!(code, 200, "{body}");
    let records = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap_or("").to_string(), r["ended"].as_bool().unwrap_or(false)))
        .collect();
    let (code, _, body) = s.post("/v1/citizens/search", &json!({"name": SURNAME, "limit": 1})).await;
    assert_eq!(code, 200, "{body}");
    let search_total = body["total"].as_u64().unwrap();
    let (code, _, body) =
        s.post("/v1/citizens/near", &json!({"lon": POINT.0, "lat": POINT.1, "k": 10, "fields": ["name"]})).await;
    assert_eq!(code, 200, "{body}");
    let nearest = body["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect();
    let (code, _, body) = s.post("/v1/citizens/within", &json!({"bbox": [118.0, 24.4, 118.2, 24.6], "limit": 1})).await;
    assert_eq!(code, 200, "{body}");
    Answers { records, search_total, nearest, in_box: body["count"].as_u64().unwrap() }
}

/// Readers hammer a served store while a snapshot load ends a third of the citizens and a
/// delta renames and moves others: every answer is one of the three published states, never a
/// mix, readers never go back, and the last state is visible in every index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_each_load_all_at_once() {
    let work = tempfile::tempdir().unwrap();
    let (spec, csv) = generated(work.path(), 3000);
    let snapshot_csv = rows(&csv, 2000, |_, l| l.to_string());
    let delta_csv = rows(&csv, 300, |i, l| {
        let mut cells: Vec<String> = l.split(',').map(String::from).collect();
        cells[1] = format!("{}{}", cells[1], if i % 2 == 0 { "新" } else { "改" });
        let lon: f64 = cells[8].parse().unwrap();
        cells[8] = format!("{:.6}", lon + 0.01);
        cells.join(",")
    });
    let spec_text = std::fs::read_to_string(&spec).unwrap();
    let snapshot_spec = spec_text.replace("mode = \"delta\"", "mode = \"snapshot\"");
    let keys: Vec<String> = (0..40)
        .map(|i| jichu::generator::citizen_id(i * 7))
        .chain((0..40).map(|i| jichu::generator::citizen_id(2000 + i * 20)))
        .collect();

    // The oracle: the same loads, offline, with a view published after each.
    let oracle = TestStore::new();
    oracle.load(&spec, std::slice::from_ref(&csv));
    let oracle_server = Server::start(oracle.store.clone()).await;
    let mut states = vec![ask(&oracle_server, &keys).await];
    for (spec, body) in [(&snapshot_spec, &snapshot_csv), (&spec_text, &delta_csv)] {
        let (code, accepted) = upload(&oracle_server, spec, &[("x.csv", body.clone().into_bytes())]).await;
        assert_eq!(code, 202, "{accepted}");
        assert_eq!(wait_for(&oracle_server, &accepted["load_id"]).await["status"], "published");
        states.push(ask(&oracle_server, &keys).await);
    }
    assert_ne!(states[0], states[1], "the snapshot changes the answers");
    assert_ne!(states[1], states[2], "the delta changes the answers");
    assert!(states[1].search_total < states[0].search_total, "ended citizens are not found");

    // The live server, with readers running through both loads.
    let live = TestStore::new();
    live.load(&spec, std::slice::from_ref(&csv));
    let s = std::sync::Arc::new(Server::start(live.store.clone()).await);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (s, done, keys, states) = (s.clone(), done.clone(), keys.clone(), states.clone());
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let a = ask(&s, &keys).await;
                // One request sees one state: each answer is a whole state's.
                let lookups = states.iter().position(|st| st.records == a.records);
                let search = states.iter().position(|st| st.search_total == a.search_total);
                let near = states.iter().position(|st| st.nearest == a.nearest);
                let count = states.iter().position(|st| st.in_box == a.in_box);
                assert!(
                    lookups.is_some() && search.is_some() && near.is_some() && count.is_some(),
                    "an answer from no published state: {a:?}"
                );
                seen.push(lookups.unwrap());
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (spec, body) in [(&snapshot_spec, &snapshot_csv), (&spec_text, &delta_csv)] {
        let (code, accepted) = upload(&s, spec, &[("x.csv", body.clone().into_bytes())]).await;
        assert_eq!(code, 202, "{accepted}");
        let status = wait_for(&s, &accepted["load_id"]).await;
        assert_eq!(status["status"], "published", "{status}");
        assert!(status["report"]["read"].as_u64().unwrap() > 0);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut saw = std::collections::BTreeSet::new();
    for r in readers {
        let seen = r.await.unwrap();
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "a reader went back to an older state: {seen:?}");
        saw.extend(seen);
    }
    assert!(saw.contains(&0) && saw.contains(&2), "readers ran before and after: {saw:?}");
    assert_eq!(ask(&s, &keys).await, states[2], "after publication every index shows the last state");
    let (_, _, catalog) = s.get("/v1/catalog").await;
    assert_eq!(catalog["registries"][0]["count"], 3000);
}

#[tokio::test]
async fn loads_are_submitted_by_upload_or_by_path_and_checked_first() {
    let t = TestStore::new();
    let s = Server::start(t.store.clone()).await;
    let spec = std::fs::read_to_string(fixture("citizens_crlf.toml")).unwrap();
    let data = std::fs::read(fixture("citizens_crlf.csv")).unwrap();

    // By upload: queued, run, published; the report and rejects as `jichu load` gives them.
    let (code, accepted) = upload(&s, &spec, &[("citizens_crlf.csv", data.clone())]).await;
    assert_eq!(code, 202, "{accepted}");
    let status = wait_for(&s, &accepted["load_id"]).await;
    assert_eq!(status["status"], "published", "{status}");
    assert_eq!((status["report"]["read"].as_u64(), status["report"]["rejected"].as_u64()), (Some(9), Some(4)));
    // Into an empty registry: the load fed the spatial layer, and its report times the save.
    assert!(status["report"]["stage_seconds"]["spatial_index"].is_f64(), "{status}");
    let r = s.client.get(s.url(&format!("/v1/loads/{}/rejects", accepted["load_id"]))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let rejects = t.dir.path().join("got-rejects.csv");
    std::fs::write(&rejects, r.bytes().await.unwrap()).unwrap();
    assert_eq!(reject_lines(&rejects), crate::common::expected_rejects("citizens_crlf"));
    let (_, _, body) = s.get("/v1/citizens/350203198508111112").await;
    assert_eq!(body["name"], "王磊");

    // By path in the import folder.
    let import = t.dir.path().join("import");
    std::fs::create_dir_all(import.join("dept")).unwrap();
    std::fs::write(import.join("dept/licences.csv"), std::fs::read(fixture("licences_crlf.csv")).unwrap()).unwrap();
    let lic_spec = std::fs::read_to_string(fixture("licences_crlf.toml")).unwrap();
    let (code, _, accepted) = s.post("/v1/loads", &json!({"spec": lic_spec, "files": ["dept/licences.csv"]})).await;
    assert_eq!(code, 202, "{accepted}");
    assert_eq!(wait_for(&s, &accepted["load_id"]).await["status"], "published");
    let (code, _, _) = s.get("/v1/licences/LC0000000002").await;
    assert_eq!(code, 200);

    // Paths that leave the import folder are refused, and so is a bad spec or header: nothing queued.
    std::os::unix::fs::symlink("/etc", import.join("out")).unwrap();
    let (_, _, before) = s.get("/v1/loads").await;
    for files in
        [json!(["../store/CURRENT"]), json!(["/etc/passwd"]), json!(["out/passwd"]), json!(["dept/missing.csv"])]
    {
        let (code, ct, body) = s.post("/v1/loads", &json!({"spec": lic_spec, "files": files})).await;
        assert_eq!((code, ct.as_str()), (400, "application/problem+json"), "{files}: {body}");
    }
    let bad_spec = spec.replace("registry = \"citizens\"", "registry = \"citizenz\"");
    let (code, body) = upload(&s, &bad_spec, &[("x.csv", data.clone())]).await;
    assert_eq!(code, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("citizenz"), "{body}");
    let bad_header = spec.replace("姓名", "名字");
    let (code, body) = upload(&s, &bad_header, &[("x.csv", data.clone())]).await;
    assert_eq!(code, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("名字"), "{body}");
    let (_, _, after) = s.get("/v1/loads").await;
    assert_eq!(before["loads"].as_array().unwrap().len(), after["loads"].as_array().unwrap().len(), "nothing queued");
    let spool: Vec<_> = std::fs::read_dir(t.dir.path().join("spool")).unwrap().collect();
    assert!(spool.is_empty(), "refused uploads leave nothing behind: {spool:?}");
}

/// A multipart load submission, written by hand so that a test can send it at its own pace.
fn multipart_submission(spec: &str, csv: &[u8]) -> (String, Vec<u8>) {
    let boundary = "jichu-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"spec\"\r\n\r\n{spec}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"citizens.csv\"\r\nContent-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(csv);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let head = format!(
        "POST /v1/loads HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    (head, body)
}

/// Reads what the server answers on `conn` until it closes it, for at most `wait`.
async fn answer(conn: &mut tokio::net::TcpStream, wait: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(wait, conn.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

/// An upload has no deadline as a whole (it arrives at the client's pace), but each piece
/// must come within the request timeout: one sent slowly for longer than the timeout is
/// queued and published, one that stalls is a 408 `upload_stalled`, and neither a stalled
/// nor an abandoned upload leaves anything in the spool; nor does one a stopped server was
/// receiving.
#[tokio::test]
async fn a_slow_upload_is_received_and_a_stalled_or_abandoned_one_leaves_nothing() {
    use tokio::io::AsyncWriteExt;
    let t = TestStore::new();
    let timeout = Duration::from_secs(1);
    let config = jichu::config::Config { insecure_no_auth: true, request_timeout: timeout, ..Default::default() };
    let s = Server::start_with(t.store.clone(), config.clone()).await;
    let spec = std::fs::read_to_string(fixture("citizens.toml")).unwrap();
    let (head, body) = multipart_submission(&spec, &std::fs::read(fixture("citizens.csv")).unwrap());
    let spool = t.dir.path().join("spool");
    let uploads = || -> Vec<String> {
        std::fs::read_dir(&spool)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("upload-"))
            .collect()
    };

    // Six pieces 0.4 s apart: 2.4 s in all, more than twice the timeout, never 1 s silent.
    let started = std::time::Instant::now();
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(body.len().div_ceil(6)) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        conn.write_all(piece).await.unwrap();
    }
    let got = answer(&mut conn, Duration::from_secs(10)).await;
    assert!(started.elapsed() > 2 * timeout, "{:?}", started.elapsed());
    assert!(got.starts_with("HTTP/1.1 202"), "a slow upload is received: {got}");
    let load_id: Value = serde_json::from_str(got.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(wait_for(&s, &load_id["load_id"]).await["status"], "published");
    let (code, _, _) = s.get("/v1/citizens/35020319500110100X").await;
    assert_eq!(code, 200);

    // Half the body, then silence: 408 once the timeout has passed without a byte.
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..body.len() / 2]).await.unwrap();
    let got = answer(&mut conn, Duration::from_secs(10)).await;
    assert!(got.starts_with("HTTP/1.1 408") && got.contains("upload_stalled"), "{got}");

    // Half the body, then the connection closed by the client.
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..body.len() / 2]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(conn);
    let mut left = uploads();
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = uploads();
    }
    assert!(left.is_empty(), "a stalled or abandoned upload leaves nothing: {left:?}");

    // An upload the server was receiving when it stopped: removed at the next start.
    s.stop().await;
    std::fs::create_dir_all(spool.join("upload-stopped")).unwrap();
    std::fs::write(spool.join("upload-stopped/001-citizens.csv"), &body[..100]).unwrap();
    let s = Server::start_with(t.store.clone(), config).await;
    assert!(uploads().is_empty(), "{:?}", uploads());
    let (_, _, loads) = s.get("/v1/loads").await;
    assert_eq!(loads["loads"].as_array().unwrap().len(), 1, "{loads}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_load_leaves_no_trace() {
    let t = TestStore::new();
    let work = tempfile::tempdir().unwrap();
    let (spec, csv) = generated(work.path(), 200_000);
    t.load(&fixture("citizens.toml"), &[fixture("citizens.csv")]);
    let s = Server::start(t.store.clone()).await;
    let spec_text = std::fs::read_to_string(&spec).unwrap();
    let big = std::fs::read(&csv).unwrap();
    let (_, running) = upload(&s, &spec_text, &[("big.csv", big.clone())]).await;
    let (_, queued) = upload(&s, &spec_text, &[("big.csv", big)]).await;
    // The queued one is cancelled at once.
    let r = s.client.delete(s.url(&format!("/v1/loads/{}", queued["load_id"]))).send().await.unwrap();
    let (code, _, body) = Server::parts(r).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("cancelled")), "{body}");
    // The running one is stopped while it runs.
    for _ in 0..400 {
        let (_, _, b) = s.get(&format!("/v1/loads/{}", running["load_id"])).await;
        if b["status"] == "running" && b["progress"]["rows_read"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = s.client.delete(s.url(&format!("/v1/loads/{}", running["load_id"]))).send().await.unwrap();
    let (code, _, body) = Server::parts(r).await;
    assert_eq!(code, 202, "stopped while running: {body}");
    assert_eq!(wait_for(&s, &running["load_id"]).await["status"], "cancelled");
    let r = s.client.delete(s.url(&format!("/v1/loads/{}", running["load_id"]))).send().await.unwrap();
    assert_eq!(r.status(), 409, "an ended load cannot be cancelled again");
    // Nothing of either is visible, now or in the store.
    let (_, _, catalog) = s.get("/v1/catalog").await;
    assert_eq!(catalog["registries"][0]["count"], 16);
    assert_eq!(t.store.count(Registry::Citizens), 16);
    assert_eq!(t.store.count_keys(Registry::Citizens).unwrap(), 16);
    let (code, _, _) = s.get(&format!("/v1/citizens/{}", jichu::generator::citizen_id(5))).await;
    assert_eq!(code, 404);
}

/// A server stopped with a load running and another queued: at the next start both run, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_loads_survive_a_restart() {
    let t = TestStore::new();
    let work = tempfile::tempdir().unwrap();
    let (spec, csv) = generated(work.path(), 100_000);
    let spec_text = std::fs::read_to_string(&spec).unwrap();
    let first = rows(&csv, 60_000, |_, l| l.to_string());
    let second = std::fs::read_to_string(fixture("citizens.csv")).unwrap();
    let fixture_spec = std::fs::read_to_string(fixture("citizens.toml")).unwrap();
    let (a, b) = {
        let s = Server::start(t.store.clone()).await;
        let (_, a) = upload(&s, &spec_text, &[("first.csv", first.into_bytes())]).await;
        let (_, b) = upload(&s, &fixture_spec, &[("second.csv", second.into_bytes())]).await;
        for _ in 0..400 {
            let (_, _, st) = s.get(&format!("/v1/loads/{}", a["load_id"])).await;
            if st["status"] == "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        s.stop().await;
        (a, b)
    };
    let t = t.reopen();
    let s = Server::start(t.store.clone()).await;
    for accepted in [&a, &b] {
        let status = wait_for(&s, &accepted["load_id"]).await;
        assert_eq!(status["status"], "published", "{status}");
    }
    assert_eq!(t.store.count(Registry::Citizens), 60_016);
    assert_eq!(t.store.count_keys(Registry::Citizens).unwrap(), 60_016, "nothing doubled");
    let (_, _, catalog) = s.get("/v1/catalog").await;
    assert_eq!(catalog["registries"][0]["count"], 60_016);
}

/// `jichu load --server` end to end, and `jichu load` on a served store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jichu_load_talks_to_a_running_server() {
    let t = TestStore::new();
    let s = Server::start(t.store.clone()).await;
    let (report, rejects) = (t.dir.path().join("report.json"), t.dir.path().join("rejects.csv"));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_jichu"))
        .args(["--log", "warn", "load", "--server", &s.url(""), "--spec"])
        .arg(fixture("citizens_crlf.toml"))
        .arg(fixture("citizens_crlf.csv"))
        .arg("--report")
        .arg(&report)
        .arg("--rejects")
        .arg(&rejects)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!((r["read"].as_u64(), r["rejected"].as_u64()), (Some(9), Some(4)));
    assert_eq!(reject_lines(&rejects), crate::common::expected_rejects("citizens_crlf"));
    let (code, _, _) = s.get("/v1/citizens/350203198508111112").await;
    assert_eq!(code, 200, "published before the command returned");

    // Offline, on the store the server holds: one line naming the way.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_jichu"))
        .arg("--data-dir")
        .arg(t.dir.path())
        .args(["--log", "warn", "load", "--spec"])
        .arg(fixture("citizens.toml"))
        .arg(fixture("citizens.csv"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("jichu load --server"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// A search's pages come from the state its first page came from, across a publication.
#[tokio::test]
async fn cursors_page_over_the_state_they_started_on() {
    let t = TestStore::new();
    let work = tempfile::tempdir().unwrap();
    let (spec, csv) = generated(work.path(), 2000);
    t.load(&spec, std::slice::from_ref(&csv));
    let s = Server::start(t.store.clone()).await;
    let query = json!({"name": SURNAME, "limit": 5});
    let (_, _, first) = s.post("/v1/citizens/search", &query).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let (_, _, page2) = s.post("/v1/citizens/search", &json!({"name": SURNAME, "limit": 5, "cursor": cursor})).await;
    // A load ends most citizens; the old cursor still pages the old state.
    let snapshot_spec = std::fs::read_to_string(&spec).unwrap().replace("mode = \"delta\"", "mode = \"snapshot\"");
    let (_, accepted) =
        upload(&s, &snapshot_spec, &[("few.csv", rows(&csv, 100, |_, l| l.to_string()).into_bytes())]).await;
    assert_eq!(wait_for(&s, &accepted["load_id"]).await["status"], "published");
    let (code, _, again) = s.post("/v1/citizens/search", &json!({"name": SURNAME, "limit": 5, "cursor": cursor})).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again, page2, "the same page as before the publication");
    let (_, _, fresh) = s.post("/v1/citizens/search", &query).await;
    assert!(fresh["total"].as_u64() < first["total"].as_u64());
    // A cursor from another process is stale.
    let forged = format!("5.{:x}.1.0", 12345);
    let (code, _, body) = s.post("/v1/citizens/search", &json!({"name": SURNAME, "cursor": forged})).await;
    assert_eq!((code, body["code"].as_str()), (409, Some("stale_cursor")));
}

async fn near(s: &Server, lon: f64, lat: f64) -> Value {
    s.post("/v1/citizens/near", &json!({"lon": lon, "lat": lat, "k": 20, "fields": ["name"]})).await.2["hits"].clone()
}

/// A delta that moves more than 5% (and 50,000) of the points is published layered, then the
/// spatial index is folded in the background and published again: answers before and after the
/// fold equal those of an index built from scratch over the same data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_delta_is_folded_into_the_spatial_index_without_changing_an_answer() {
    let work = tempfile::tempdir().unwrap();
    let (spec, csv) = generated(work.path(), 100_000);
    let delta = work.path().join("moved.csv");
    jichu::generator::citizens_delta(&delta, 100_000, 7, 1, 60_000, 100_000, 0).unwrap();
    let t = TestStore::new();
    t.load(&spec, std::slice::from_ref(&csv));
    let s = Server::start(t.store.clone()).await;
    let (code, accepted) =
        upload(&s, &std::fs::read_to_string(&spec).unwrap(), &[("moved.csv", std::fs::read(&delta).unwrap())]).await;
    assert_eq!(code, 202);
    assert_eq!(wait_for(&s, &accepted["load_id"]).await["status"], "published");
    let points = [(118.10, 24.50), (118.0, 24.6), (118.3, 24.7), (117.95, 24.45)];
    let mut first = Vec::new();
    for (lon, lat) in points {
        first.push(near(&s, lon, lat).await);
    }
    // Generation 1 at start, 2 with the load, 3 with the fold.
    let mut folded = false;
    for _ in 0..200 {
        let (_, _, h) = s.get("/healthz").await;
        if h["generation"].as_u64().unwrap() >= 3 {
            folded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(folded, "the fold was published");
    // The oracle: the same data loaded offline, its index built from scratch.
    let oracle = TestStore::new();
    oracle.load(&spec, std::slice::from_ref(&csv));
    oracle.load(&spec, std::slice::from_ref(&delta));
    let o = Server::start(oracle.store.clone()).await;
    for ((lon, lat), before) in points.iter().zip(&first) {
        let want = near(&o, *lon, *lat).await;
        assert_eq!(want.as_array().map(Vec::len), Some(20));
        assert_eq!(before, &want, "right after publication, at ({lon}, {lat})");
        assert_eq!(near(&s, *lon, *lat).await, want, "after the fold, at ({lon}, {lat})");
    }
}

/// An upload larger than `max_upload_bytes` is refused with a 413, and leaves nothing behind.
#[tokio::test]
async fn an_upload_over_the_limit_is_refused() {
    let t = TestStore::new();
    let config = jichu::config::Config { insecure_no_auth: true, max_upload_bytes: 2_000, ..Default::default() };
    let s = Server::start_with(t.store.clone(), config).await;
    let spec = std::fs::read_to_string(fixture("citizens.toml")).unwrap();
    let big = std::fs::read(fixture("citizens.csv")).unwrap().repeat(3);
    assert!(big.len() > 2_000);
    let (code, body) = upload(&s, &spec, &[("big.csv", big)]).await;
    assert_eq!((code, body["code"].as_str()), (413, Some("body_too_large")), "{body}");
    let (_, _, list) = s.get("/v1/loads").await;
    assert!(list["loads"].as_array().unwrap().is_empty());
    let spool: Vec<_> = std::fs::read_dir(t.dir.path().join("spool")).unwrap().collect();
    assert!(spool.is_empty(), "{spool:?}");
}

/// A superseded view is kept for search cursors with its snapshot and searcher only: its
/// spatial index (a whole base after a fold) is let go at once.
#[test]
fn a_superseded_view_keeps_no_spatial_index() {
    let t = TestStore::loaded();
    let config = jichu::config::Config { insecure_no_auth: true, ..Default::default() };
    let service = std::sync::Arc::new(jichu::service::Service::open(t.store.clone(), &config).unwrap());
    let first = service.view();
    assert!(first.spatial().is_ok());
    let published = service.publish().unwrap();
    assert_eq!(published.generation, first.generation + 1);
    // A request that held the view before the publication still has its spatial index.
    assert!(first.spatial().is_ok());
    let kept = service.views.at(first.generation).expect("kept for cursors");
    assert!(kept.spatial().is_err(), "a superseded view keeps no spatial index");
    assert_eq!(kept.count(Registry::Citizens), first.count(Registry::Citizens));
    assert!(service.view().spatial().is_ok());
    let memory = service.views.memory();
    assert_eq!(memory.retained, 1);
    // The current view's bases are served from their files: their bytes are mapped, not heap.
    assert!(service.view().spatial().unwrap().mapped_bytes() > 0);
    assert!(memory.spatial_bytes < 1024, "{} heap bytes", memory.spatial_bytes);
}

/// A layer a bulk load fills into a running server is built to its file before the
/// publication serves it, as a start or a fold builds one: its base is mapped, not heap (a
/// registry of 100M points would otherwise sit in the heap until the next start), and the
/// next start maps that file as it is.
#[test]
fn a_layer_a_bulk_load_fills_is_served_from_its_file() {
    use jichu::spatial::SpatialIndex;
    let t = TestStore::new();
    let config = jichu::config::Config { insecure_no_auth: true, ..Default::default() };
    let service = std::sync::Arc::new(jichu::service::Service::open(t.store.clone(), &config).unwrap());
    assert_eq!(service.view().spatial().unwrap().citizens.index.len(), 0);
    for stem in ["citizens", "parcels"] {
        assert_eq!(t.load_fixture(stem).path, "bulk", "{stem}");
    }
    service.publish().unwrap();
    let view = service.view();
    let served = view.spatial().unwrap();
    assert_eq!(served.citizens.index.len() as u64, t.store.points(Registry::Citizens).count() as u64);
    assert!(!served.parcels.index.is_empty());
    // Each base is read where its file lies (a base built in memory maps nothing).
    assert!(served.citizens.index.base().mapped_bytes() > 0 && served.parcels.index.base().mapped_bytes() > 0);
    let memory = service.views.memory();
    assert!(memory.spatial_bytes < 1024, "{} heap bytes", memory.spatial_bytes);
    let dir = SpatialIndex::dir_of(&t.store);
    assert!(dir.join("citizens.idx").exists() && dir.join("parcels.idx").exists());
    let (lon, lat) = (118.1, 24.5);
    let want = served.citizens.index.nearest(lon, lat, 5, None);
    let inside = [(118.085, 24.455), (118.101, 24.451)];
    let want_parcels: Vec<_> = inside.map(|(x, y)| served.parcels.index.containing(x, y)).into();
    assert!(want_parcels.iter().all(|hits| !hits.is_empty()), "{want_parcels:?}");
    drop((served, view, service));
    let reopened = SpatialIndex::open(&t.store).unwrap();
    assert!(reopened.from_file && reopened.applied_at_open == 0, "the file holds the bulk load");
    assert_eq!(reopened.citizens.index.nearest(lon, lat, 5, None), want);
    let got: Vec<_> = inside.map(|(x, y)| reopened.parcels.index.containing(x, y)).into();
    assert_eq!(got, want_parcels);
}

/// A publication does not keep its full-text writer: tantivy's delete queue lives as long as
/// the writer, so a kept one held every replaced document's delete (~0.5 KiB each) for as
/// long as the server ran. Once the publication's merges are done, the index's single-writer
/// lock is free, and the replaced document is gone from search.
#[test]
fn a_publication_lets_its_full_text_writer_go() {
    let t = TestStore::loaded();
    let config = jichu::config::Config { insecure_no_auth: true, ..Default::default() };
    let service = std::sync::Arc::new(jichu::service::Service::open(t.store.clone(), &config).unwrap());
    let renamed = write_variant(&t, "citizens", |l| Some(l.replace("陈志强", "陈志远")));
    t.load(&fixture("citizens.toml"), &[renamed]);
    service.publish().unwrap();
    service.text_writer_done();
    let second = service.text.index.writer(jichu_indexes::text::WriterOptions::default());
    assert!(second.is_ok(), "no writer held between publications: {:?}", second.err());
    drop(second);
    let search = |name: &str| {
        let q = jichu_indexes::text::SearchQuery {
            registries: vec![Registry::Citizens as u8],
            matches: vec![jichu_indexes::text::Match {
                text: name.into(),
                fields: vec![jichu::text::field_name(Registry::Citizens, "name")],
            }],
            limit: 10,
            ..Default::default()
        };
        service.view().text.search(&q).unwrap().total
    };
    assert_eq!((search("陈志强"), search("陈志远")), (0, 1), "the old document was deleted");
}
