//! Backups of a data directory, taken while it serves, and their restore.
//!
//! A backup folder holds RocksDB's backup engine (`store/`: SST files shared by every backup
//! that has them, so a second backup copies only the files written since), each backup's
//! small files (`files/ID/`: the access file, the pilot-code allow-list, the audit trail cut
//! at its last whole line) and a SHA-256 of every file (`checksums.json`), which `verify`
//! reads back. The full-text and spatial indexes are not copied: they are derived from the
//! store and rebuilt when the restored store is first opened, so a restore can never pair a
//! store with an index of another moment.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Store;
use rocksdb::backup::{BackupEngine, BackupEngineOptions, RestoreOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One backup in a backup folder.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BackupInfo {
    pub backup_id: u32,
    /// When it was taken (Unix seconds).
    pub timestamp: i64,
    /// Bytes of store files it uses (shared with other backups or not).
    pub store_bytes: u64,
    pub store_files: u32,
}

/// What taking a backup did.
#[derive(Clone, Debug, Serialize)]
pub struct Taken {
    pub backup: BackupInfo,
    /// Bytes this backup copied (files the backups before it did not have).
    pub bytes_copied: u64,
    pub seconds: f64,
}

fn engine(dir: &Path) -> Result<BackupEngine> {
    let store = dir.join("store");
    std::fs::create_dir_all(&store).map_err(Error::io(&store))?;
    let opts = BackupEngineOptions::new(&store)?;
    Ok(BackupEngine::open(&opts, &rocksdb::Env::new()?)?)
}

/// Takes a backup of `store` (and the data directory's small files) into `dir`, which may
/// hold earlier backups. Reads and loads go on meanwhile: RocksDB flushes its memtables and
/// copies a consistent set of files; a load that is half-written in it is undone when the
/// restored store opens, as after a crash.
pub fn take(store: &Store, config: &Config, dir: &Path) -> Result<Taken> {
    let started = std::time::Instant::now();
    let before = dir_bytes(&dir.join("store"));
    let mut e = engine(dir)?;
    e.create_new_backup_flush(store.db(), true)?;
    let backup = list_in(&e).pop().ok_or_else(|| Error::Internal("the backup engine lists no backup".into()))?;
    let files = dir.join("files").join(backup.backup_id.to_string());
    copy_small_files(config, &files)?;
    update_checksums(dir)?;
    Ok(Taken {
        bytes_copied: dir_bytes(&dir.join("store")).saturating_sub(before),
        backup,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The backups in a folder, oldest first.
pub fn list(dir: &Path) -> Result<Vec<BackupInfo>> {
    if !dir.join("store").exists() {
        return Err(Error::Invalid(format!("{} holds no jichu backup", dir.display())));
    }
    Ok(list_in(&engine(dir)?))
}

fn list_in(e: &BackupEngine) -> Vec<BackupInfo> {
    let mut out: Vec<BackupInfo> = e
        .get_backup_info()
        .into_iter()
        .map(|i| BackupInfo {
            backup_id: i.backup_id,
            timestamp: i.timestamp,
            store_bytes: i.size,
            store_files: i.num_files,
        })
        .collect();
    out.sort_by_key(|b| b.backup_id);
    out
}

/// Checks every backup: RocksDB's check of each backup's files, then each file's SHA-256
/// against the one recorded when it was written. Returns the files checked.
pub fn verify(dir: &Path) -> Result<usize> {
    let e = engine(dir)?;
    for b in list_in(&e) {
        e.verify_backup(b.backup_id).map_err(|err| Error::Invalid(format!("backup {}: {err}", b.backup_id)))?;
    }
    let recorded = read_checksums(dir)?;
    for (name, sum) in &recorded {
        let path = dir.join(name);
        let actual = sha256(&path).map_err(|_| Error::Invalid(format!("{name}: missing or unreadable")))?;
        if &actual != sum {
            return Err(Error::Invalid(format!("{name}: its checksum differs from the one recorded")));
        }
    }
    Ok(recorded.len())
}

/// Restores backup `id` (the latest when None) of `dir` into the data directory `to`, which
/// must not hold a store unless `force` (its store is then replaced and its derived indexes
/// removed, to be rebuilt when it is opened).
pub fn restore(dir: &Path, id: Option<u32>, to: &Path, force: bool) -> Result<BackupInfo> {
    let e = engine(dir)?;
    let backups = list_in(&e);
    let backup = match id {
        Some(id) => backups.iter().find(|b| b.backup_id == id).cloned(),
        None => backups.last().cloned(),
    }
    .ok_or_else(|| {
        Error::Invalid(format!("{} has no backup {}", dir.display(), id.map_or("at all".into(), |i| i.to_string())))
    })?;
    let occupied = std::fs::read_dir(to).map(|mut d| d.next().is_some()).unwrap_or(false);
    if occupied && !force {
        return Err(Error::Invalid(format!(
            "{} is not empty: restore into an empty folder, or add --force",
            to.display()
        )));
    }
    for derived in ["store", "text", "spatial", "spatial.idx"] {
        let path = to.join(derived);
        if path.is_dir() {
            std::fs::remove_dir_all(&path).map_err(Error::io(&path))?;
        } else if path.exists() {
            std::fs::remove_file(&path).map_err(Error::io(&path))?;
        }
    }
    let store = to.join("store");
    std::fs::create_dir_all(&store).map_err(Error::io(&store))?;
    let mut e = e;
    e.restore_from_backup(&store, &store, &RestoreOptions::default(), backup.backup_id)?;
    let files = dir.join("files").join(backup.backup_id.to_string());
    copy_tree(&files, to)?;
    Ok(backup)
}

/// The access file, the pilot codes and the audit trail, as they are now.
fn copy_small_files(config: &Config, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(Error::io(to))?;
    let access = config.access_file();
    if access.exists() {
        copy_file(&access, &to.join("access.toml"))?;
    }
    let pilot = config.data_dir.join("pilot_codes.txt");
    if pilot.exists() {
        copy_file(&pilot, &to.join("pilot_codes.txt"))?;
    }
    let audit = config.audit_dir();
    if let Ok(entries) = std::fs::read_dir(&audit) {
        let target = to.join("audit");
        std::fs::create_dir_all(&target).map_err(Error::io(&target))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            let mut bytes = std::fs::read(&path).map_err(Error::io(&path))?;
            if path.extension().is_some_and(|x| x == "jsonl") {
                // Being appended to: up to its last whole line.
                let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                bytes.truncate(whole);
            }
            let out = target.join(entry.file_name());
            std::fs::write(&out, bytes).map_err(Error::io(&out))?;
        }
    }
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map_err(Error::io(from))?;
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(from) else { return Ok(()) };
    std::fs::create_dir_all(to).map_err(Error::io(to))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() { copy_tree(&path, &target)? } else { copy_file(&path, &target)? }
    }
    Ok(())
}

const CHECKSUMS: &str = "checksums.json";

fn read_checksums(dir: &Path) -> Result<BTreeMap<String, String>> {
    let path = dir.join(CHECKSUMS);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(Error::io(&path)(e)),
    }
}

/// Records the SHA-256 of every file not yet recorded (backup files never change once
/// written, so the earlier ones stand) and forgets those the engine removed.
fn update_checksums(dir: &Path) -> Result<()> {
    let mut sums = read_checksums(dir)?;
    let mut present = Vec::new();
    walk(dir, dir, &mut present)?;
    sums.retain(|name, _| present.contains(name));
    for name in present {
        if name == CHECKSUMS || name.starts_with("store/meta/") || name.contains("/.tmp") {
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(slot) = sums.entry(name) {
            let path = dir.join(slot.key());
            slot.insert(sha256(&path).map_err(Error::io(&path))?);
        }
    }
    let path = dir.join(CHECKSUMS);
    let json = serde_json::to_vec_pretty(&sums).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&path, json).map_err(Error::io(&path))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

fn sha256(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut files = Vec::new();
    if walk(dir, dir, &mut files).is_err() {
        return 0;
    }
    files.iter().filter_map(|f| std::fs::metadata(dir.join(f)).ok()).map(|m| m.len()).sum()
}

/// Where a running server keeps its backups: `backup_dir`, default `DATA_DIR/backups`.
pub fn server_dir(config: &Config) -> PathBuf {
    config.backup_dir.clone().unwrap_or_else(|| config.data_dir.join("backups"))
}
