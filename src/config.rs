//! Service configuration: defaults in one place ([`Config::default`]), overridden by an
//! optional TOML file, then by environment variables (`JICHU_…`) and flags (clap).

use crate::error::{Error, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything a jichu process can be configured with.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub addr: SocketAddr,
    pub block_cache_bytes: usize,
    /// A request's deadline (503 `timeout` past it). Uploads have none as a whole: each read
    /// of their body must arrive within it (408 `upload_stalled`). Backups and recomputes
    /// have none (`api::frame`).
    pub request_timeout: Duration,
    /// How long a connection may take to send a request's head, and stay idle between
    /// requests, before the server closes it.
    pub header_timeout: Duration,
    pub max_body_bytes: usize,
    /// Keys per `POST …/lookup` call.
    pub max_lookup_ids: usize,
    /// Memory of the full-text index writer, shared by its threads.
    pub text_memory_bytes: usize,
    /// Allow-list of genuine Fujian pilot credit codes (one a line); default
    /// `DATA_DIR/pilot_codes.txt` when that file exists.
    pub pilot_codes_file: Option<PathBuf>,
    /// Files a load submitted by path may name; default `DATA_DIR/import`.
    pub import_dir: Option<PathBuf>,
    /// Largest upload of one `POST /v1/loads`.
    pub max_upload_bytes: u64,
    /// How long a superseded view stays available to search cursors.
    pub cursor_retention: Duration,
    /// How long a stopping server waits for requests in flight before it exits anyway.
    pub shutdown_grace: Duration,
    /// Where `POST /v1/admin/backups` writes; default `DATA_DIR/backups`.
    pub backup_dir: Option<PathBuf>,
    /// Threads a load inside a running server maps rows with (the rest answer requests).
    pub live_load_threads: usize,
    /// Threads that hold HTTP connections, each with its own single-threaded runtime; default:
    /// the cores.
    pub http_threads: usize,
    /// Threads that run queries (search, spatial, lookups, profiles); default: the cores.
    pub query_threads: usize,
    /// Queries that may wait for a query thread; past that a request is refused with 503.
    pub query_queue: usize,
    /// Requests served at once; past that a request is refused at once with 429.
    pub max_in_flight: usize,
    /// Departments, grants and keys; default `DATA_DIR/access.toml`.
    pub access_file: Option<PathBuf>,
    /// No keys, no grants, no audit (`jichu serve --insecure-no-auth`, loopback only).
    pub insecure_no_auth: bool,
    /// Days earlier versions of records are kept (dropped in compaction); None: forever.
    pub history_retention_days: Option<u32>,
    /// Survivorship rules of golden records; default `DATA_DIR/survivorship.toml` (absent:
    /// the newest non-empty value wins).
    pub survivorship_file: Option<PathBuf>,
    /// Transparent huge pages for the process's heap
    /// ([`crate::memory::set_transparent_huge_pages`]). None: off for `jichu load` and
    /// `jichu reindex`, the kernel's setting for every other command.
    pub transparent_huge_pages: Option<bool>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("jichu-data"),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            block_cache_bytes: default_block_cache(),
            request_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            max_body_bytes: 1 << 20,
            max_lookup_ids: 1000,
            text_memory_bytes: 1 << 30,
            pilot_codes_file: None,
            import_dir: None,
            max_upload_bytes: 20 << 30,
            cursor_retention: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(10),
            backup_dir: None,
            live_load_threads: (std::thread::available_parallelism().map_or(2, |n| n.get()) / 2).max(1),
            http_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            query_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            query_queue: 256,
            max_in_flight: 1024,
            access_file: None,
            insecure_no_auth: false,
            history_retention_days: None,
            survivorship_file: None,
            transparent_huge_pages: None,
        }
    }
}

/// The block cache by default: an eighth of the machine's memory, between 256 MiB and 4 GiB.
/// Point reads that miss it pay a read and a zstd decompression: at 10M citizens (a 2 GB
/// store) a 512 MiB cache gave an id lookup p99 of 51 µs, a 3 GiB one 17 µs (`jichu bench`).
pub fn default_block_cache() -> usize {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(4 << 30, |kib| kib << 10);
    (total / 8).clamp(256 << 20, 4 << 30)
}

/// The optional TOML file: every key may be left out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub addr: Option<SocketAddr>,
    pub block_cache_mb: Option<usize>,
    pub request_timeout_secs: Option<u64>,
    pub header_timeout_secs: Option<u64>,
    pub max_body_bytes: Option<usize>,
    pub max_lookup_ids: Option<usize>,
    pub text_memory_mb: Option<usize>,
    pub pilot_codes_file: Option<PathBuf>,
    pub import_dir: Option<PathBuf>,
    pub max_upload_bytes: Option<u64>,
    pub cursor_retention_secs: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
    pub backup_dir: Option<PathBuf>,
    pub live_load_threads: Option<usize>,
    pub http_threads: Option<usize>,
    pub query_threads: Option<usize>,
    pub query_queue: Option<usize>,
    pub max_in_flight: Option<usize>,
    pub access_file: Option<PathBuf>,
    pub history_retention_days: Option<u32>,
    pub survivorship_file: Option<PathBuf>,
    pub transparent_huge_pages: Option<bool>,
}

impl FileConfig {
    pub fn read(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        toml::from_str(&text).map_err(|e| Error::Invalid(format!("config file {}: {e}", path.display())))
    }
}

impl Config {
    /// Defaults, then the file (if any). Flags and environment are applied by the caller.
    pub fn from_file(file: Option<&Path>) -> Result<Config> {
        let mut c = Config::default();
        if let Some(path) = file {
            let f = FileConfig::read(path)?;
            if let Some(v) = f.data_dir {
                c.data_dir = v;
            }
            if let Some(v) = f.addr {
                c.addr = v;
            }
            if let Some(v) = f.block_cache_mb {
                c.block_cache_bytes = v << 20;
            }
            if let Some(v) = f.request_timeout_secs {
                c.request_timeout = Duration::from_secs(v);
            }
            if let Some(v) = f.header_timeout_secs {
                c.header_timeout = Duration::from_secs(v.max(1));
            }
            if let Some(v) = f.max_body_bytes {
                c.max_body_bytes = v;
            }
            if let Some(v) = f.max_lookup_ids {
                c.max_lookup_ids = v;
            }
            if let Some(v) = f.text_memory_mb {
                c.text_memory_bytes = v << 20;
            }
            if let Some(v) = f.pilot_codes_file {
                c.pilot_codes_file = Some(v);
            }
            if let Some(v) = f.import_dir {
                c.import_dir = Some(v);
            }
            if let Some(v) = f.max_upload_bytes {
                c.max_upload_bytes = v;
            }
            if let Some(v) = f.cursor_retention_secs {
                c.cursor_retention = Duration::from_secs(v);
            }
            if let Some(v) = f.shutdown_grace_secs {
                c.shutdown_grace = Duration::from_secs(v);
            }
            if let Some(v) = f.backup_dir {
                c.backup_dir = Some(v);
            }
            if let Some(v) = f.live_load_threads {
                c.live_load_threads = v.max(1);
            }
            if let Some(v) = f.http_threads {
                c.http_threads = v.max(1);
            }
            if let Some(v) = f.query_threads {
                c.query_threads = v.max(1);
            }
            if let Some(v) = f.query_queue {
                c.query_queue = v.max(1);
            }
            if let Some(v) = f.max_in_flight {
                c.max_in_flight = v.max(1);
            }
            if let Some(v) = f.access_file {
                c.access_file = Some(v);
            }
            if let Some(v) = f.history_retention_days {
                c.history_retention_days = Some(v);
            }
            if let Some(v) = f.survivorship_file {
                c.survivorship_file = Some(v);
            }
            if let Some(v) = f.transparent_huge_pages {
                c.transparent_huge_pages = Some(v);
            }
        }
        Ok(c)
    }

    /// The access file (departments, grants, keys).
    pub fn access_file(&self) -> PathBuf {
        self.access_file.clone().unwrap_or_else(|| self.data_dir.join("access.toml"))
    }

    /// The survivorship rules' file.
    pub fn survivorship_file(&self) -> PathBuf {
        self.survivorship_file.clone().unwrap_or_else(|| self.data_dir.join("survivorship.toml"))
    }

    /// The audit trail's folder.
    pub fn audit_dir(&self) -> PathBuf {
        self.data_dir.join("audit")
    }

    /// The folder whose files a load may be submitted by path.
    pub fn import_dir(&self) -> PathBuf {
        self.import_dir.clone().unwrap_or_else(|| self.data_dir.join("import"))
    }

    /// Where the RocksDB store lives inside the data directory.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    /// Full-text index writer settings (threads: the number of cores).
    pub fn text_writer(&self) -> jichu_indexes::text::WriterOptions {
        jichu_indexes::text::WriterOptions { memory_bytes: self.text_memory_bytes, ..Default::default() }
    }

    /// The writer a running service opens for each publication: a quarter of the load's
    /// budget (at least 64 MiB). A publication indexes one delta while readers need the page
    /// cache; its arena is freed at each commit, so a smaller budget only means more segments
    /// for the background merges, while a full budget put up to 1 GiB on the server's peak.
    pub fn publication_text_writer(&self) -> jichu_indexes::text::WriterOptions {
        jichu_indexes::text::WriterOptions {
            memory_bytes: (self.text_memory_bytes / 4).max(64 << 20),
            ..Default::default()
        }
    }

    /// Load settings: scratch space in the data directory, the pilot-code allow-list.
    pub fn load_options(&self) -> Result<crate::load::LoadOptions> {
        let mut opts = crate::load::LoadOptions::new(&self.data_dir);
        opts.pilot_codes = std::sync::Arc::new(self.pilot_codes()?);
        opts.survivorship = Some(self.survivorship_file());
        Ok(opts)
    }

    /// The allow-listed pilot codes, canonical. Lines are trimmed; blank lines and `#`
    /// comments are skipped; a line that is not a well-formed credit code is an error.
    pub fn pilot_codes(&self) -> Result<std::collections::HashSet<String>> {
        let default = self.data_dir.join("pilot_codes.txt");
        let path = match &self.pilot_codes_file {
            Some(p) => p.clone(),
            None if default.exists() => default,
            None => return Ok(Default::default()),
        };
        let text = std::fs::read_to_string(&path).map_err(Error::io(&path))?;
        let mut codes = std::collections::HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let code = crate::model::ids::read_credit_code(line).map_err(|e| {
                Error::Invalid(format!("pilot codes file {} line {}: {line:?} {e}", path.display(), i + 1))
            })?;
            codes.insert(code.id);
        }
        Ok(codes)
    }

    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            block_cache_bytes: self.block_cache_bytes,
            history_retention_days: self.history_retention_days,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jichu.toml");
        std::fs::write(&path, "addr = \"127.0.0.1:9999\"\nblock_cache_mb = 64\ntransparent_huge_pages = true\n")
            .unwrap();
        let c = Config::from_file(Some(&path)).unwrap();
        assert_eq!(c.addr.port(), 9999);
        assert_eq!(c.block_cache_bytes, 64 << 20);
        assert_eq!(c.transparent_huge_pages, Some(true));
        assert_eq!(Config::default().transparent_huge_pages, None);
        assert_eq!(c.max_lookup_ids, Config::default().max_lookup_ids);
        std::fs::write(&path, "adr = \"x\"\n").unwrap();
        assert!(Config::from_file(Some(&path)).unwrap_err().to_string().contains("adr"));
    }
}
