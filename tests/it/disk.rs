//! A full disk during a load: the load fails with an error that says so, the store opens and
//! answers as before the load (nothing half-applied), and once there is room the same load
//! completes.
//!
//! The data dir is a small tmpfs mounted for the test. Where mounting is not allowed (not
//! root), the load runs under a file-size limit (`ulimit -f`) instead: its writes fail the
//! same way, with EFBIG instead of ENOSPC.

use jichu::model::Registry;
use jichu::store::{Store, StoreOptions};
use std::path::Path;
use std::process::Command;

fn counts(data: &Path) -> Vec<u64> {
    let store =
        Store::open(&data.join("store"), &StoreOptions { block_cache_bytes: 8 << 20, history_retention_days: None })
            .expect("the store opens");
    for r in Registry::ALL {
        assert_eq!(store.count(r), store.count_keys(r).unwrap(), "{r}: count and keys agree");
    }
    Registry::ALL.iter().map(|r| store.count(*r)).collect()
}

/// `jichu load` of one extract, under a file-size limit in KiB when given.
fn load(data: &Path, x: &Path, name: &str, fsize_kib: Option<u64>) -> std::process::Output {
    let bin = env!("CARGO_BIN_EXE_jichu");
    let args = format!(
        "exec {bin} --data-dir {} --log warn load --spec {} {}",
        data.display(),
        x.join(format!("{name}.toml")).display(),
        x.join(format!("{name}.csv")).display()
    );
    let script = match fsize_kib {
        Some(k) => format!("trap '' XFSZ; ulimit -f {k}; {args}"),
        None => args,
    };
    Command::new("sh").arg("-c").arg(script).output().expect("run jichu load")
}

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_load_that_fills_the_disk_fails_clearly_and_leaves_the_store_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let (small, big) = (tmp.path().join("small"), tmp.path().join("big"));
    jichu::generator::generate(&small, &jichu::generator::GenOptions { citizens: 2_000, seed: 5 }).unwrap();
    jichu::generator::generate(&big, &jichu::generator::GenOptions { citizens: 150_000, seed: 6 }).unwrap();
    let disk = tmp.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    // `JICHU_TEST_NO_MOUNT=1` tries the file-size limit where mounting would work.
    let mounted = std::env::var_os("JICHU_TEST_NO_MOUNT").is_none()
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
            .arg(&disk)
            .status()
            .is_ok_and(|s| s.success());
    let _unmount = mounted.then(|| Mount(disk.clone()));
    let limit = (!mounted).then_some(24 * 1024);
    eprintln!("full disk by {}", if mounted { "a 24 MiB tmpfs" } else { "a 24 MiB file-size limit" });
    let data = disk.join("data");
    let first = load(&data, &small, "citizens", limit);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let before = counts(&data);
    assert!(before.iter().sum::<u64>() > 1_000, "{before:?}");

    let full = load(&data, &big, "citizens", limit);
    let err = String::from_utf8_lossy(&full.stderr);
    assert!(!full.status.success(), "a 150k-citizen load fit in 24 MiB?");
    assert!(
        err.contains("No space left") || err.contains("File too large") || err.contains("space"),
        "the error says the disk is full: {err}"
    );
    if mounted {
        // Room again (as when an operator frees space).
        let grown = Command::new("mount").args(["-o", "remount,size=400m"]).arg(&disk).status().unwrap();
        assert!(grown.success());
    }
    assert_eq!(counts(&data), before, "nothing of the failed load is visible");
    let again = load(&data, &big, "citizens", None);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    // As the same two loads give with room to spare.
    let roomy = tmp.path().join("roomy");
    for x in [&small, &big] {
        assert!(load(&roomy, x, "citizens", None).status.success());
    }
    assert_eq!(counts(&data), counts(&roomy));
}
