//! The HTTP query API (axum on tokio). Only this module knows HTTP.
//!
//! [`router`] builds every route together with its OpenAPI description (utoipa-axum), so the
//! document cannot drift from the routes. [`serve`] runs it on a listener until `shutdown`.
//! Queries run on a bounded pool of their own ([`pool`]), never on the async workers.

mod access;
mod auth;
mod backups;
mod catalog;
mod changes;
mod conn;
mod export;
mod extract;
mod frame;
mod limits;
mod loads;
mod ops;
mod pool;
mod problem;
mod records;
mod review;
mod schemas;
mod search;
mod spatial;

pub use problem::{ApiError, Problem};

use crate::access::AccessControl;
use crate::access::audit::AuditLog;
use crate::config::Config;
use crate::loads::{LoadQueue, QueueSettings};
use crate::query::{QueryResult, View};
use crate::service::Service;
use crate::store::Store;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use std::future::Future;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What every handler shares: the service (store, indexes, published views), the load queue,
/// access control and the audit trail (both absent with `--insecure-no-auth`), the
/// configuration.
///
/// One `Arc` around the parts: every layer and handler that takes the state clones it, so a
/// clone is one reference count, not one per part.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

/// The parts of an [`AppState`] (reached through it by `Deref`).
#[derive(Clone, Debug)]
pub struct Shared {
    pub service: Arc<Service>,
    pub loads: Arc<LoadQueue>,
    pub access: Option<Arc<AccessControl>>,
    pub audit: Option<Arc<AuditLog>>,
    /// Keeps the access file watched while the state lives.
    _watch: Option<Arc<crate::access::Watch>>,
    /// A server of this state stops the load queue and the audit when it stops (a second
    /// server over the same service, [`AppState::without_access`], does not).
    owns_shutdown: bool,
    pub config: Arc<Config>,
    pub metrics: PrometheusHandle,
    /// Where queries run (see [`pool`]).
    pub pool: Arc<pool::QueryPool>,
    /// Requests being served, at most `config.max_in_flight` (see [`frame`]).
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Opens the service over a store (`crate::service`: indexes brought in step, the first
    /// view published) and resumes its load queue. The data directory is the store's parent.
    pub fn new(store: Arc<Store>, mut config: Config) -> crate::Result<Self> {
        if let Some(dir) = store.path().parent() {
            config.data_dir = dir.to_path_buf();
        }
        let (access, audit, watch) = if config.insecure_no_auth {
            (None, None, None)
        } else {
            let access = Arc::new(AccessControl::open(&config.access_file())?);
            let watch = Arc::new(access.watch());
            (Some(access), Some(Arc::new(AuditLog::open(&config.audit_dir())?)), Some(watch))
        };
        let service = Arc::new(Service::open(store, &config)?);
        let loads = LoadQueue::start(service.clone(), QueueSettings::from_config(&config)?)?;
        let pool = pool::QueryPool::new(config.query_threads, config.query_queue)
            .map_err(|e| crate::Error::Internal(format!("query threads could not start: {e}")))?;
        Ok(AppState(Arc::new(Shared {
            pool: Arc::new(pool),
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight.max(1))),
            service,
            loads,
            access,
            audit,
            _watch: watch,
            owns_shutdown: true,
            config: Arc::new(config),
            metrics: ops::metrics_handle(),
        })))
    }

    /// The same service without access control or audit (`--insecure-no-auth`; benchmarks
    /// compare the two).
    pub fn without_access(&self) -> AppState {
        AppState(Arc::new(Shared {
            access: None,
            audit: None,
            _watch: None,
            owns_shutdown: false,
            in_flight: Arc::new(tokio::sync::Semaphore::new(self.config.max_in_flight.max(1))),
            ..Shared::clone(&self.0)
        }))
    }

    /// Runs a query on the query pool (see [`pool`]): refused with 429 when its queue is full,
    /// cancelled when the request stops waiting.
    pub(crate) async fn query<T: Send + 'static>(
        &self,
        cancel: crate::query::Cancel,
        f: impl FnOnce() -> QueryResult<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.pool.run(cancel, f).await
    }

    /// The view a new request answers from.
    pub fn view(&self) -> Arc<View> {
        self.service.view()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "jichu", description = "Master-data foundation database: the city's base registries of citizens, legal entities, parcels, credit records and licences."),
    tags((name = "records", description = "records by key and by relation"), (name = "search", description = "full text, Chinese-aware (CJK bigrams), with filters"), (name = "spatial", description = "by location; distances in metres on the Earth"), (name = "catalogue"), (name = "changes", description = "every change, in one gap-free order, for systems that keep their own copies"), (name = "loads", description = "department extracts loaded into the running service, each published all at once"), (name = "access", description = "what a caller may see; the audit trail"), (name = "stewardship", description = "golden records: identity conflicts between sources, a steward's decisions, recomputing after a rules change (administrators)"), (name = "operations")),
    components(schemas(Problem))
)]
struct ApiDoc;

/// The key and the purpose in the document: a bearer security scheme required everywhere but
/// `/healthz` and `/openapi.json`, and the `X-Purpose` and `X-Request-Id` headers on every
/// route that needs a key.
fn document_access(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
    use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("an API key from `jichu keys add`"))
                .build(),
        ),
    );
    let header = |name: &str, doc: &str| -> Parameter {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .description(Some(doc))
            .schema(Some(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String)))
            .build()
    };
    let purpose = header(
        "X-Purpose",
        "why personal data is read: one of the department's declared purposes, percent-encoded UTF-8; required when personal or sensitive fields would be returned",
    );
    let request_id = header("X-Request-Id", "the request's id in the audit trail (echoed; made when absent)");
    for (path, item) in doc.paths.paths.iter_mut() {
        if path == "/healthz" || path == "/openapi.json" {
            continue;
        }
        for op in [&mut item.get, &mut item.post, &mut item.delete].into_iter().flatten() {
            op.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
            let params = op.parameters.get_or_insert_with(Vec::new);
            params.push(purpose.clone());
            params.push(request_id.clone());
        }
    }
}

/// A JSON response serialised straight from borrowed data.
pub(crate) fn json_body(value: &impl serde::Serialize) -> Result<axum::response::Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| crate::Error::Codec(e.to_string()))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The routes and their OpenAPI document, built together.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(records::get_record))
        .routes(routes!(records::lookup))
        .routes(routes!(records::relations))
        .routes(routes!(records::profile))
        .routes(routes!(records::history))
        .routes(routes!(records::sources))
        .routes(routes!(records::by_organisation_code))
        .routes(routes!(review::list))
        .routes(routes!(review::resolve))
        .routes(routes!(review::recompute))
        .routes(routes!(search::search))
        .routes(routes!(search::search_all))
        .routes(routes!(spatial::near))
        .routes(routes!(spatial::within))
        .routes(routes!(spatial::containing))
        .routes(routes!(catalog::catalog))
        .routes(routes!(changes::changes))
        .routes(routes!(export::export))
        .routes(routes!(access::me))
        .routes(routes!(access::search))
        .routes(routes!(access::public_key))
        .routes(loads::submit_routes())
        .routes(routes!(loads::get_load, loads::cancel))
        .routes(routes!(loads::rejects))
        .routes(routes!(backups::take, backups::list))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::metrics))
        .split_for_parts()
}

/// The whole application: routes, `/openapi.json`, limits, timeout, load shedding, metrics
/// and request logs (by route template, so that no personal key reaches a log line).
pub fn router(state: AppState) -> Router {
    let (routes, mut doc) = routes();
    doc.paths.paths.insert(
        "/openapi.json".into(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .tag("operations")
                .summary(Some("This OpenAPI document"))
                .response("200", utoipa::openapi::ResponseBuilder::new().description("OpenAPI 3.1 JSON")),
        ),
    );
    document_access(&mut doc);
    let mut doc = serde_json::to_value(&doc).expect("the OpenAPI document is JSON");
    schemas::apply(&mut doc);
    let doc: Arc<[u8]> = serde_json::to_vec(&doc).expect("the OpenAPI document is JSON").into();
    let body_limit = state.config.max_body_bytes;
    routes
        .route(
            "/openapi.json",
            get(move || async move {
                ([(axum::http::header::CONTENT_TYPE, "application/json")], axum::body::Bytes::copy_from_slice(&doc))
            }),
        )
        .fallback(|| async { ApiError::UnknownRoute })
        // axum adds the `Allow` header of the route's methods.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Each layer here is boxed and cloned for every request: the request's whole frame is
        // one middleware (see `frame`), and the body limit, which axum's extractors read.
        .layer(axum::middleware::from_fn_with_state(state.clone(), frame::frame))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves, then drains in-flight requests.
///
/// Connections are served by hyper directly (HTTP/1.1), for the limits `axum::serve` does not
/// set: a connection that takes longer than `header_timeout` to send a request's head, or
/// stays idle that long between requests, is closed; hyper's own head limits sit above those
/// of [`limits`], which answer in problem+json.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    let (loads, audit, owns) = (state.loads.clone(), state.audit.clone(), state.owns_shutdown);
    let (grace, header_timeout) = (state.config.shutdown_grace, state.config.header_timeout);
    let mut lanes = conn::Lanes::start(state.config.http_threads)?;
    let app = router(state);
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's default cap of 100 header fields is above `limits::MAX_HEADERS` and is kept:
    // setting any cap makes it fill room for that many on every request's parse.
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout).max_buf_size(16 * limits::MAX_HEADER_BYTES);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file handles or a connection reset before it was taken: go on.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(stream) = stream.into_std() else { continue };
        let (service, http) = (TowerToHyperService::new(app.clone()), http.clone());
        let watcher = graceful.watcher();
        lanes.next().spawn(async move {
            // Registered with the lane's own reactor: its reads, writes and wake-ups stay on
            // that thread.
            let Ok(stream) = tokio::net::TcpStream::from_std(stream) else { return };
            let io = TokioIo::new(conn::Lingering::new(stream));
            let connection = watcher.watch(http.serve_connection(io, service));
            // A client that goes away mid-request is not the server's error.
            let _ = connection.await;
        });
    }
    drop(listener);
    // Requests in flight get `shutdown_grace` to finish; then the server stops anyway, so a
    // request that will not end cannot keep the store locked and a restart waiting.
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(grace_secs = grace.as_secs_f64(), "requests still running after the grace period: stopping anyway");
        }
    }
    drop(lanes);
    if !owns {
        return Ok(());
    }
    // A running load is stopped and undone; it stays queued for the next start. The audit
    // trail writes what it holds and signs its head.
    let _ = tokio::task::spawn_blocking(move || {
        loads.shutdown();
        if let Some(a) = audit {
            a.close();
        }
    })
    .await;
    Ok(())
}

/// Resolves on SIGINT (ctrl-c) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: draining requests");
}
