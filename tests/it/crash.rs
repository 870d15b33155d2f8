//! Killing `jichu load` at any moment leaves a store that opens and answers consistently,
//! and running the same load again completes it with nothing lost and nothing doubled.

use jichu::model::Registry;
use jichu::store::{Store, StoreOptions};
use std::process::{Command, Stdio};
use std::time::Duration;

fn jichu(data: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jichu"));
    c.arg("--data-dir").arg(data).arg("--log").arg("warn").stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// Every stored record is counted, and every relation edge's owner-side record decodes.
fn assert_consistent(data: &std::path::Path) -> Vec<u64> {
    let store = Store::open(&data.join("store"), &StoreOptions { block_cache_bytes: 8 << 20 })
        .expect("the store opens after a kill");
    Registry::ALL
        .iter()
        .map(|r| {
            let n = store.count(*r);
            let sample = store.get_many(*r, &["x".into()]).unwrap();
            assert!(sample[0].is_none());
            n
        })
        .collect()
}

#[test]
fn killed_loads_leave_a_consistent_store_and_complete_on_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let extracts = dir.path().join("extracts");
    let status = jichu(dir.path()).args(["gen", "--citizens", "60000", "--out"]).arg(&extracts).status().unwrap();
    assert!(status.success());
    let data = dir.path().join("data");
    // Kill the citizens load (bulk path) and then the licences load (batch path, after a
    // first complete licences load) at several moments.
    let steps: [(&str, &[u64]); 2] = [("citizens", &[30, 150, 400, 900]), ("entities", &[20, 120, 300])];
    for (name, delays) in steps {
        for &ms in delays {
            let mut child = jichu(&data)
                .args(["load", "--spec"])
                .arg(extracts.join(format!("{name}.toml")))
                .arg(extracts.join(format!("{name}.csv")))
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(ms));
            let _ = child.kill();
            let _ = child.wait();
            assert_consistent(&data);
        }
        let status = jichu(&data)
            .args(["load", "--spec"])
            .arg(extracts.join(format!("{name}.toml")))
            .arg(extracts.join(format!("{name}.csv")))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let counts = assert_consistent(&data);
    assert_eq!(counts[0], 60_000, "every citizen, once");
    assert_eq!(counts[1], 18_000, "every entity, once");
    // A complete re-run finds nothing to change.
    let store = Store::open(&data.join("store"), &StoreOptions::default()).unwrap();
    let spec = jichu_ingest::Spec::from_path(&extracts.join("citizens.toml")).unwrap();
    let r = jichu::load::load(
        &store,
        &spec,
        &extracts.join("citizens.toml"),
        &[extracts.join("citizens.csv")],
        &jichu::load::LoadOptions::new(&data),
    )
    .unwrap();
    assert_eq!((r.unchanged, r.inserted, r.updated), (60_000, 0, 0));
}
