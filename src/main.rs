//! The `jichu` command line. Thin: parses flags, sets up logging, calls the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use jichu::config::Config;
use jichu::load::{Progress, load_indexed};
use jichu::store::Store;
use jichu::text::TextLayer;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// mimalloc instead of glibc's malloc: per-thread free lists make the many small, short-lived
/// allocations of a request (headers, keys, JSON) and of indexing cheaper, and it returns
/// freed memory to the system instead of holding it in per-thread arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "jichu",
    version,
    about = "jichu (基础): master-data foundation database for a city's base registries"
)]
struct Cli {
    /// Optional TOML config file (data_dir, addr, block_cache_mb, request_timeout_secs, …).
    #[arg(long, global = true, env = "JICHU_CONFIG")]
    config: Option<PathBuf>,
    /// The data directory [default: ./jichu-data].
    #[arg(long, global = true, env = "JICHU_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// RocksDB block cache in MiB [default: an eighth of memory, 256 to 4096].
    #[arg(long, global = true, env = "JICHU_BLOCK_CACHE_MB")]
    block_cache_mb: Option<usize>,
    /// Days earlier versions of records are kept [default: forever].
    #[arg(long, global = true, env = "JICHU_HISTORY_RETENTION_DAYS")]
    history_retention_days: Option<u32>,
    /// Survivorship rules of golden records [default: DATA_DIR/survivorship.toml].
    #[arg(long, global = true, env = "JICHU_SURVIVORSHIP_FILE")]
    survivorship_file: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, global = true, env = "JICHU_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load department extracts into a registry, as a mapping spec describes them: into the
    /// store directly (the server stopped; the fastest way to fill an empty store), or with
    /// --server into a running server, which publishes the load all at once.
    Load {
        /// The mapping spec (TOML) of the extract.
        #[arg(long)]
        spec: PathBuf,
        /// Extract files (CSV), all in the spec's shape.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write the load report (JSON) here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Write rejected rows (CSV: line,reason,message,raw) here [default: DATA_DIR/rejects/load-ID.csv].
        #[arg(long)]
        rejects: Option<PathBuf>,
        /// Worker threads validating rows [default: the number of cores].
        #[arg(long)]
        threads: Option<usize>,
        /// Submit to the running server at this URL (e.g. http://127.0.0.1:8080) and follow
        /// the load until it is published.
        #[arg(long, env = "JICHU_SERVER")]
        server: Option<String>,
        /// The API key for --server.
        #[arg(long, env = "JICHU_KEY", hide_env_values = true)]
        key: Option<String>,
    },
    /// Serve the HTTP query API.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long, env = "JICHU_ADDR")]
        addr: Option<SocketAddr>,
        /// No keys, grants or audit: every caller sees everything. Loopback addresses only;
        /// a warning is logged every minute.
        #[arg(long)]
        insecure_no_auth: bool,
    },
    /// Export a registry as the store holds it — whole, or the records changed after a feed
    /// cursor — as NDJSON or CSV (a CSV re-loads with `jichu load` and the spec written beside
    /// it). The store must not be served; a running server exports at GET /v1/{registry}/export.
    Export {
        /// citizens, entities, parcels, credit or licences.
        #[arg(long)]
        registry: String,
        /// Only the records changed after this cursor (the one the export before printed).
        #[arg(long)]
        since: Option<u64>,
        /// ndjson or csv.
        #[arg(long, default_value = "ndjson")]
        format: String,
        /// Write here [default: standard output]; a CSV's spec goes beside it (FILE.toml).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Recompute every golden record (records more than one source supplies) by the
    /// survivorship rules as the file now says, after changing it: a load per registry, with
    /// history and feed entries where a value changes. The store must not be served; a running
    /// server recomputes at POST /v1/admin/recompute.
    Recompute {
        /// Only this registry [default: all].
        #[arg(long)]
        registry: Option<String>,
    },
    /// Back up the store and the data directory's small files into a folder (incremental: a
    /// second backup there copies only new files); list or verify the backups a folder holds.
    /// The store must not be served; a running server backs up at POST /v1/admin/backups.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["to", "list", "verify"])))]
    Backup {
        /// Take a backup into this folder.
        #[arg(long)]
        to: Option<PathBuf>,
        /// List the backups in this folder.
        #[arg(long)]
        list: Option<PathBuf>,
        /// Check every backup in this folder: RocksDB's check and each file's SHA-256.
        #[arg(long)]
        verify: Option<PathBuf>,
    },
    /// Restore a backup into a data directory (empty, unless --force). The full-text and
    /// spatial indexes are rebuilt from the restored store when it is first opened.
    Restore {
        /// The backup folder.
        #[arg(long)]
        from: PathBuf,
        /// Which backup [default: the latest].
        #[arg(long)]
        backup: Option<u32>,
        /// The data directory to restore into.
        #[arg(long)]
        to: PathBuf,
        /// Replace the store a non-empty target holds.
        #[arg(long)]
        force: bool,
    },
    /// API keys in the access file (works whether or not a server runs).
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// The audit trail: verify it, search it, show its public key.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// Rebuild the full-text index from the store (the spatial index rebuilds at `serve`).
    Reindex,
    /// Disk use of the data directory by part (each column family, the full-text and spatial
    /// indexes), in bytes and bytes per record. The store must not be served.
    Stats {
        /// Print JSON instead of a Markdown table.
        #[arg(long)]
        json: bool,
    },
    /// Generate a consistent set of the five extracts with their specs.
    Gen {
        /// Citizens to generate (about 2.2 records in all per citizen).
        #[arg(long)]
        citizens: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output folder.
        #[arg(long, required_unless_present = "ids_from")]
        out: Option<PathBuf>,
        /// Instead: print the identity numbers of generated citizens N.. (N+citizens),
        /// e.g. valid numbers absent from a store loaded with N citizens.
        #[arg(long, value_name = "N")]
        ids_from: Option<u64>,
    },
    /// The scale benchmark: generate N citizens' extracts, load them with every index, reopen
    /// cold, run the mixed workload (in process and over HTTP, 1 and 2 clients); print a
    /// Markdown table, write the JSON report. Works in --data-dir (fresh), else a temporary folder.
    Bench {
        #[arg(long, default_value_t = 1_000_000)]
        citizens: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Write the JSON report here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Scale of the workload (1: 100k id lookups and 10k of every other kind).
        #[arg(long, default_value_t = 1.0)]
        query_scale: f64,
        /// In process only: skip the HTTP half of the workload.
        #[arg(long)]
        no_http: bool,
        /// Keep the generated extracts (deleted after loading otherwise).
        #[arg(long)]
        keep_extracts: bool,
        /// Index each load from the store after it, instead of as it writes: times the store
        /// alone (the "store only" column), at the cost of reading each load back.
        #[arg(long)]
        index_after_load: bool,
    },
    /// Quickstart: generate extracts, load all five registries, serve, print example requests.
    Demo {
        #[arg(long, default_value_t = 20_000)]
        citizens: u64,
        #[arg(long, env = "JICHU_ADDR")]
        addr: Option<SocketAddr>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// A new key for a department (declared if new); the key is printed once, on stdout.
    Add {
        #[arg(long)]
        department: String,
        #[arg(long, value_enum, default_value = "department")]
        role: RoleArg,
    },
    /// Key ids, departments, roles, when created, revoked, last used; never a secret.
    List,
    /// Revokes a key by id.
    Revoke { key_id: String },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Department,
    Admin,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Checks every line's hash chain and every signed head; exits non-zero on a break.
    Verify,
    /// Entries about a record or a department, optionally between two times (RFC 3339).
    Search {
        #[arg(long)]
        record: Option<String>,
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The Ed25519 public key the heads are signed with (hex).
    PublicKey,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let mut config = Config::from_file(cli.config.as_deref())?;
    // A load or rebuild that exits when done would pay for clearing fresh huge pages and
    // not live to profit from them (`memory::set_transparent_huge_pages`).
    let one_batch = matches!(cli.command, Command::Load { server: None, .. } | Command::Reindex);
    let huge_pages = match config.transparent_huge_pages {
        None if one_batch => Some(false),
        setting => setting,
    };
    if let Some(Err(e)) = huge_pages.map(jichu::memory::set_transparent_huge_pages) {
        tracing::warn!(error = %e, "could not set transparent huge pages for the process");
    }
    let data_dir_given = cli.data_dir.is_some();
    if let Some(d) = cli.data_dir {
        config.data_dir = d;
    }
    if let Some(mb) = cli.block_cache_mb {
        config.block_cache_bytes = mb << 20;
    }
    if let Some(days) = cli.history_retention_days {
        config.history_retention_days = Some(days);
    }
    if let Some(f) = cli.survivorship_file {
        config.survivorship_file = Some(f);
    }
    match cli.command {
        Command::Load { spec, files, report, rejects, server: Some(server), key, .. } => {
            let submission = jichu::client::Submission { server, key, spec, files, report, rejects };
            let r = jichu::client::submit(&submission)?;
            eprintln!("{}", r.summary());
            Ok(())
        }
        Command::Load { spec, files, report, rejects, threads, server: None, .. } => {
            let store = open(&config)?;
            let parsed = jichu_ingest::Spec::from_path(&spec)?;
            let mut opts = config.load_options()?;
            opts.rejects = rejects;
            opts.progress = Progress::auto();
            if let Some(t) = threads {
                opts.threads = t;
            }
            let (r, text) = load_indexed(&store, &parsed, &spec, &files, &opts, config.text_writer())?;
            eprintln!("{}", r.summary());
            eprintln!("full-text index: {} documents in {:.1}s ({})", text.indexed, text.seconds, text.mode);
            if let Some(path) = report {
                std::fs::write(&path, serde_json::to_vec_pretty(&r)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
        Command::Serve { addr, insecure_no_auth } => {
            if let Some(a) = addr {
                config.addr = a;
            }
            if insecure_no_auth {
                anyhow::ensure!(
                    config.addr.ip().is_loopback(),
                    "--insecure-no-auth serves loopback addresses only, not {}",
                    config.addr
                );
                config.insecure_no_auth = true;
            }
            let store = Arc::new(open(&config)?);
            serve(store, config, None)
        }
        Command::Export { registry, since, format, out } => export(&config, &registry, since, &format, out.as_deref()),
        Command::Backup { to, list, verify } => backup(&config, to, list, verify),
        Command::Recompute { registry } => recompute(&config, registry.as_deref()),
        Command::Restore { from, backup, to, force } => {
            let b = jichu::backup::restore(&from, backup, &to, force)?;
            eprintln!(
                "restored backup {} ({} store files, {:.1} MB) into {}; its indexes are rebuilt when it is first opened",
                b.backup_id,
                b.store_files,
                b.store_bytes as f64 / 1e6,
                to.display()
            );
            Ok(())
        }
        Command::Keys { action } => {
            let path = config.access_file();
            match action {
                KeysCommand::Add { department, role } => {
                    let role = match role {
                        RoleArg::Admin => jichu::access::Role::Admin,
                        RoleArg::Department => jichu::access::Role::Department,
                    };
                    let (id, key) = jichu::access::keys::add(&path, &department, role)?;
                    eprintln!("key {id} for {department} added to {}; it is shown once:", path.display());
                    println!("{key}");
                }
                KeysCommand::List => {
                    for k in jichu::access::keys::list(&path)? {
                        println!("{}", serde_json::to_string(&k)?);
                    }
                }
                KeysCommand::Revoke { key_id } => {
                    jichu::access::keys::revoke(&path, &key_id)?;
                    eprintln!("key {key_id} revoked");
                }
            }
            Ok(())
        }
        Command::Audit { action } => {
            let dir = config.audit_dir();
            match action {
                AuditCommand::Verify => {
                    let v = jichu::access::audit::verify(&dir)?;
                    println!("{}", serde_json::to_string(&v)?);
                    if let Some(seq) = v.first_broken {
                        eprintln!("the audit trail is broken at {seq}: {}", v.problem.unwrap_or_default());
                        std::process::exit(1);
                    }
                    eprintln!("the audit trail is intact: {} lines, {} signed heads", v.lines, v.heads);
                }
                AuditCommand::Search { record, department, from, to } => {
                    let filter = jichu::access::audit::Filter { record, department, from, to, after: 0 };
                    for e in jichu::access::audit::search(&dir, &filter, usize::MAX)? {
                        println!("{e}");
                    }
                }
                AuditCommand::PublicKey => println!("{}", jichu::access::audit::public_key(&dir)?),
            }
            Ok(())
        }
        Command::Bench { citizens, seed, out, query_scale, no_http, keep_extracts, index_after_load } => {
            let tmp = tempfile::tempdir()?;
            let dir = if data_dir_given { config.data_dir.clone() } else { tmp.path().to_path_buf() };
            let opts = jichu::bench::BenchOptions {
                citizens,
                seed,
                dir,
                config,
                query_scale,
                clients: vec![1, 2],
                http: !no_http,
                connections: 16,
                keep_extracts,
                index_after_load,
                progress: true,
                drop_caches: true,
            };
            let report = jichu::bench::run(&opts)?;
            println!("{}", report.markdown());
            if let Some(path) = out {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
        Command::Stats { json } => {
            let store = open(&config)?;
            let f = jichu::footprint::Footprint::measure(&store);
            if json {
                println!("{}", serde_json::to_string_pretty(&f)?);
            } else {
                print!("{}", f.markdown());
            }
            Ok(())
        }
        Command::Reindex => {
            let store = open(&config)?;
            let (_, r) = TextLayer::rebuild(&store, config.text_writer(), &Progress::auto())?;
            std::fs::remove_dir_all(jichu::spatial::SpatialIndex::dir_of(&store)).ok();
            eprintln!(
                "full-text index rebuilt: {} documents in {:.1}s ({:.0}/s)",
                r.indexed, r.seconds, r.docs_per_second
            );
            Ok(())
        }
        Command::Gen { citizens, seed, out, ids_from } => {
            if let Some(from) = ids_from {
                use std::io::Write;
                let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                for i in from..from + citizens {
                    writeln!(w, "{}", jichu::generator::citizen_id(i))?;
                }
                return Ok(());
            }
            let out = out.unwrap_or_default();
            let started = std::time::Instant::now();
            let counts = jichu::generator::generate(&out, &jichu::generator::GenOptions { citizens, seed })?;
            eprintln!(
                "generated {} in {:.1}s: {}",
                out.display(),
                started.elapsed().as_secs_f64(),
                serde_json::to_string(&counts)?
            );
            Ok(())
        }
        Command::Demo { citizens, addr } => {
            if let Some(a) = addr {
                config.addr = a;
            }
            let extracts = config.data_dir.join("demo-extracts");
            let store = Arc::new(open(&config)?);
            if store.count(jichu::model::Registry::Citizens) == 0 {
                jichu::generator::generate(&extracts, &jichu::generator::GenOptions { citizens, seed: 42 })?;
                for name in jichu::generator::LOAD_ORDER {
                    let spec_path = extracts.join(format!("{name}.toml"));
                    let spec = jichu_ingest::Spec::from_path(&spec_path)?;
                    let mut opts = config.load_options()?;
                    opts.progress = Progress::auto();
                    let csv = [extracts.join(format!("{name}.csv"))];
                    let (r, _) = load_indexed(&store, &spec, &spec_path, &csv, &opts, config.text_writer())?;
                    eprintln!("{}", r.summary());
                }
            }
            let sample = |file: &str, column| first_row_cell(&extracts.join(file), column).unwrap_or_default();
            let (admin, department) = demo_keys(&config)?;
            let examples = Examples {
                citizen: sample("citizens.csv", 0),
                name: sample("citizens.csv", 1),
                entity: sample("entities.csv", 0),
                admin,
                department,
            };
            serve(store, config, Some(examples))
        }
    }
}

fn open(config: &Config) -> anyhow::Result<Store> {
    match Store::open(&config.store_dir(), &config.store_options()) {
        Err(jichu::Error::StoreInUse(_)) => {
            // One line, not an error chain: the user needs the way, not a trace.
            let addr = std::fs::read_to_string(config.data_dir.join(SERVER_FILE)).ok();
            let url = addr.as_deref().map(str::trim).filter(|a| !a.is_empty()).unwrap_or("127.0.0.1:8080");
            eprintln!(
                "the store in {} is held by a running jichu (serve): submit loads to it with `jichu load --server http://{url} …` and export through GET /v1/{{registry}}/export",
                config.data_dir.display()
            );
            std::process::exit(1)
        }
        r => r.with_context(|| format!("opening the store in {}", config.data_dir.display())),
    }
}

/// `jichu backup`: take one, list them, or verify them.
fn backup(config: &Config, to: Option<PathBuf>, list: Option<PathBuf>, verify: Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(dir) = list {
        for b in jichu::backup::list(&dir)? {
            let at = chrono::DateTime::from_timestamp(b.timestamp, 0).map(|t| t.to_rfc3339()).unwrap_or_default();
            println!("{}\t{at}\t{} files\t{:.1} MB", b.backup_id, b.store_files, b.store_bytes as f64 / 1e6);
        }
        return Ok(());
    }
    if let Some(dir) = verify {
        let n = jichu::backup::verify(&dir)?;
        eprintln!("every backup in {} checks out ({n} files' checksums)", dir.display());
        return Ok(());
    }
    let dir = to.expect("clap requires one of --to, --list, --verify");
    let store = open(config)?;
    let t = jichu::backup::take(&store, config, &dir)?;
    eprintln!(
        "backup {} in {}: {:.1} MB of store files, {:.1} MB copied in {:.1} s ({:.0} MB/s)",
        t.backup.backup_id,
        dir.display(),
        t.backup.store_bytes as f64 / 1e6,
        t.bytes_copied as f64 / 1e6,
        t.seconds,
        t.bytes_copied as f64 / 1e6 / t.seconds.max(1e-9)
    );
    Ok(())
}

/// `jichu recompute`: golden records by the rules as they are now; the full-text index after.
fn recompute(config: &Config, registry: Option<&str>) -> anyhow::Result<()> {
    let registries = match registry {
        Some(r) => vec![r.parse::<jichu::model::Registry>().map_err(anyhow::Error::msg)?],
        None => jichu::model::Registry::ALL.to_vec(),
    };
    let rules = jichu::golden::Rules::load(&config.survivorship_file())?;
    let store = open(config)?;
    for r in jichu::load::recompute::recompute(&store, &rules, &registries)? {
        eprintln!(
            "{}: {} records, {} with several sources recomputed, {} changed, {} review items opened, in {:.1} s ({:.0} records/s)",
            r.registry, r.records, r.sourced, r.changed, r.review_items_opened, r.seconds, r.records_per_second
        );
    }
    jichu::text::TextLayer::open(&store)?.sync(store.reader(), config.text_writer(), &jichu::load::Progress::auto())?;
    Ok(())
}

/// `jichu export`: from a snapshot of the store, unrestricted.
fn export(config: &Config, registry: &str, since: Option<u64>, format: &str, out: Option<&Path>) -> anyhow::Result<()> {
    use jichu::query::export::{self, ExportQuery, Format, Source};
    use std::io::Write;
    let registry: jichu::model::Registry = registry.parse().map_err(anyhow::Error::msg)?;
    let format: Format = format.parse()?;
    let store = Arc::new(open(config)?);
    let snapshot = store.snapshot()?;
    let at = snapshot.reader();
    let loads = at.finished_loads()?;
    let src = Source { at, loads: &loads, feed_last: at.feed_last()? };
    let caller = jichu::query::Caller::unrestricted();
    let shape = export::shape(&caller, registry)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let q = ExportQuery { registry, since, format, threads };
    let started = std::time::Instant::now();
    let sink: Box<dyn Write> = match out {
        Some(path) => Box::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = std::io::BufWriter::with_capacity(1 << 20, sink);
    let e = export::export(src, &caller, &shape, &q, &mut sink)?;
    sink.flush()?;
    if let (Some(path), Format::Csv) = (out, format) {
        let spec = path.with_extension("toml");
        std::fs::write(&spec, export::csv_spec(registry)).with_context(|| format!("writing {}", spec.display()))?;
        eprintln!("spec to load it back: {}", spec.display());
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "exported {} {registry} records in {seconds:.1} s ({:.0} records/s); the next delta: --since {}",
        e.records,
        e.records as f64 / seconds.max(1e-9),
        e.cursor
    );
    Ok(())
}

/// Where a serving process writes its address, for the hint `jichu load` gives.
const SERVER_FILE: &str = "serve.addr";

/// A cell of a generated extract's first data row (generated cells hold no commas).
fn first_row_cell(csv: &Path, column: usize) -> Option<String> {
    let text = std::fs::read_to_string(csv).ok()?;
    text.lines().nth(1)?.split(',').nth(column).map(str::to_string)
}

/// Keys and a name from the demo's extracts, for the example requests it prints.
struct Examples {
    citizen: String,
    name: String,
    entity: String,
    /// An administrator's key and a department's (masked fields), made for the demo.
    admin: String,
    department: String,
}

/// The demo's departments (written once if the access file has none), and a fresh key for
/// each: an administrator who sees everything, and a department that sees some citizens'
/// fields masked.
fn demo_keys(config: &Config) -> anyhow::Result<(String, String)> {
    let path = config.access_file();
    if !path.exists() {
        let full: Vec<String> = jichu::model::Registry::ALL
            .iter()
            .map(|r| {
                let fields: Vec<String> = std::iter::once("id")
                    .chain(r.schema().fields.iter().map(|f| f.name))
                    .map(|f| format!("{f} = \"full\""))
                    .collect();
                format!(
                    "[department.registries.{r}]\noperations = [\"get\", \"lookup\", \"relations\", \"profile\", \"search\", \"spatial\"]\nfields = {{ {} }}\n",
                    fields.join(", ")
                )
            })
            .collect();
        let text = format!(
            "# Written by `jichu demo`: an administrator, and a department that sees some fields masked.\n\
             [[department]]\nname = \"信息中心\"\nrole = \"admin\"\npurposes = [\"运维\"]\n{}\n\
             [[department]]\nname = \"市人社局\"\nrole = \"department\"\npurposes = [\"社保待遇审核\", \"就业服务\"]\n\
             rate_limit = {{ per_second = 200, burst = 400 }}\n\
             [department.registries.citizens]\noperations = [\"get\", \"lookup\", \"relations\", \"profile\", \"search\", \"spatial\"]\n\
             fields = {{ id = \"full\", name = \"full\", gender = \"full\", birth_date = \"masked\", address = \"masked\", household_address = \"masked\", phone = \"masked\", location = \"full\" }}\n\
             [department.registries.entities]\noperations = [\"get\", \"lookup\", \"search\", \"spatial\"]\n\
             fields = {{ id = \"full\", name = \"full\", legal_rep_name = \"masked\", status = \"full\", address = \"full\", location = \"full\" }}\n",
            full.join("")
        );
        std::fs::create_dir_all(&config.data_dir)?;
        std::fs::write(&path, text)?;
    }
    let (_, admin) = jichu::access::keys::add(&path, "信息中心", jichu::access::Role::Admin)?;
    let (_, department) = jichu::access::keys::add(&path, "市人社局", jichu::access::Role::Department)?;
    Ok((admin, department))
}

fn serve(store: Arc<Store>, config: Config, examples: Option<Examples>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.addr).await.with_context(|| format!("binding {}", config.addr))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "serving");
        let server_file = config.data_dir.join(SERVER_FILE);
        let _ = std::fs::write(&server_file, addr.to_string());
        if let Some(Examples { citizen, name, entity, admin, department }) = examples {
            // 社保待遇审核, percent-encoded for the X-Purpose header.
            let purpose = "%E7%A4%BE%E4%BF%9D%E5%BE%85%E9%81%87%E5%AE%A1%E6%A0%B8";
            let a = format!("-H 'Authorization: Bearer {admin}' -H 'X-Purpose: %E8%BF%90%E7%BB%B4'");
            let d = format!("-H 'Authorization: Bearer {department}' -H 'X-Purpose: {purpose}'");
            let json = "-H 'content-type: application/json'";
            eprintln!("\njichu is serving on http://{addr}. Keys made for this demo (access file: {}):", config.access_file().display());
            eprintln!("  administrator (信息中心, sees everything):   {admin}");
            eprintln!("  department (市人社局, some fields masked):   {department}\n\nTry:\n");
            eprintln!("  curl -s http://{addr}/v1/me {d}");
            eprintln!("  curl -s http://{addr}/v1/citizens/{citizen} {d}        # masked birth date, address, phone");
            eprintln!("  curl -s http://{addr}/v1/citizens/{citizen} {a}");
            eprintln!("  curl -s http://{addr}/v1/citizens/{citizen}/profile {a}");
            eprintln!("  curl -s http://{addr}/v1/entities/{entity}/profile {a}");
            eprintln!("  curl -s -X POST http://{addr}/v1/citizens/lookup {d} {json} -d '{{\"ids\":[\"{citizen}\"],\"fields\":[\"name\",\"address\"]}}'");
            eprintln!("  curl -s -X POST http://{addr}/v1/citizens/search {d} {json} -d '{{\"name\":\"{name}\",\"fields\":[\"name\",\"address\"]}}'");
            eprintln!("  curl -s -X POST http://{addr}/v1/entities/search {d} {json} -d '{{\"q\":\"科技\",\"limit\":3,\"fields\":[\"name\"]}}'");
            eprintln!("  curl -s -X POST http://{addr}/v1/citizens/near {d} {json} -d '{{\"lon\":118.09,\"lat\":24.48,\"k\":5,\"fields\":[\"name\"]}}'");
            eprintln!("  curl -s 'http://{addr}/v1/parcels/containing?lon=118.09&lat=24.48' {a} -H 'accept: application/geo+json'");
            eprintln!("  curl -s 'http://{addr}/v1/audit?record={citizen}' -H 'Authorization: Bearer {admin}'   # who read this person's data");
            eprintln!("  curl -s http://{addr}/openapi.json\n");
        }
        if config.insecure_no_auth {
            tokio::spawn(async {
                loop {
                    tracing::warn!("serving WITHOUT access control (--insecure-no-auth): every caller sees everything, nothing is audited");
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                }
            });
        }
        let state = jichu::api::AppState::new(store, config)?;
        jichu::api::serve(listener, state, jichu::api::shutdown_signal()).await?;
        let _ = std::fs::remove_file(&server_file);
        Ok(())
    });
    // A blocking task still running (a request past the grace period) is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}
