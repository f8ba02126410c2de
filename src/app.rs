//! Application assembly: router, state, workers, serving and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use tokio_util::sync::CancellationToken;

use crate::dispatch::{DispatchError, Dispatcher};
use crate::http::admin::{self, AdminState};
use crate::http::errors::{self, REQUEST_ID};
use crate::http::health::{self, OpsState};
use crate::http::hooks::{self, IngressState};
use crate::http::server::{self, ServerLimits};
use crate::redact::Redactor;
use crate::runtime::SourceRuntimes;
use crate::settings::Settings;
use crate::store::{self, Store, StoreError};
use crate::telemetry;

/// Why the application could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
}

fn has_ghl_credentials(settings: &Settings) -> bool {
    let ghl = &settings.ghl;
    (ghl.token.is_some() && ghl.location_id.is_some())
        || !ghl.locations.is_empty()
        || ghl.oauth.is_some()
}

/// A built application: a bound listener, the router and the store, ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    store: Arc<dyn Store>,
    settings: Arc<Settings>,
    dispatcher: Option<Arc<Dispatcher>>,
}

impl Application {
    /// Opens the store, prepares the sources and binds `server.addr` (port 0 picks a free port).
    pub async fn build(settings: Settings) -> Result<Self, AppError> {
        let store = store::open(&settings.store).await?;
        let listener = TcpListener::bind(settings.server.addr)
            .await
            .map_err(|source| AppError::Bind {
                addr: settings.server.addr,
                source,
            })?;
        let settings = Arc::new(settings);
        warn_if_no_source_is_served(&settings);
        let wake = Arc::new(Notify::new());
        let runtimes = Arc::new(
            SourceRuntimes::compile(&settings).map_err(|e| AppError::Config(e.to_string()))?,
        );
        let dispatcher = if !settings.dispatch.enabled {
            tracing::info!(
                "dispatch disabled (dispatch.enabled = false): deliveries are stored only"
            );
            None
        } else if !has_ghl_credentials(&settings) {
            tracing::warn!("dispatch off: no GHL credentials (set ghl.token and ghl.location_id, [ghl.locations.*] or [ghl.oauth]); deliveries are stored and wait");
            None
        } else {
            Some(Arc::new(Dispatcher::new(
                settings.clone(),
                runtimes.clone(),
                store.clone(),
                wake.clone(),
            )?))
        };
        let router = build_router(&settings, &runtimes, store.clone(), wake)?;
        Ok(Self {
            listener,
            router,
            store,
            settings,
            dispatcher,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.settings.server.addr)
    }

    /// Takes the dispatcher out, so that `run_until` serves HTTP only and the caller drives
    /// dispatch itself (`Dispatcher::run_once`); `None` when dispatch is off.
    pub fn take_dispatcher(&mut self) -> Option<Arc<Dispatcher>> {
        self.dispatcher.take()
    }

    /// The store this application writes to.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish for at most
    /// `server.shutdown_grace` (connections waiting for a request are closed at once).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let grace = self.settings.server.shutdown_grace;
        let upkeep = spawn_metrics_upkeep();
        let addr = self.local_addr();
        let stop_dispatch = CancellationToken::new();
        let dispatch = self
            .dispatcher
            .map(|d| tokio::spawn(d.run(stop_dispatch.clone())));
        let retention = self.settings.store.retention;
        let retention = (!retention.is_zero()).then(|| {
            tokio::spawn(crate::retention::run(
                self.store.clone(),
                retention,
                stop_dispatch.clone(),
            ))
        });
        let limits = ServerLimits::from_settings(&self.settings.server);
        tracing::info!(%addr, "formbridge listening");
        server::serve(self.listener, self.router, limits, shutdown).await;
        // The HTTP side has stopped; let in-flight GHL work finish within the same grace.
        stop_dispatch.cancel();
        if let Some(mut dispatch) = dispatch {
            if tokio::time::timeout(grace, &mut dispatch).await.is_err() {
                dispatch.abort();
                tracing::warn!("dispatcher did not stop within the grace; leases will expire and other workers resume");
            }
        }
        if let Some(retention) = retention {
            retention.abort();
        }
        upkeep.abort();
        Ok(())
    }
}

/// Says loudly when no source has a secret (or `auth = "none"`): the server then stores nothing.
fn warn_if_no_source_is_served(settings: &Settings) {
    if settings.enabled_sources().next().is_none() {
        tracing::warn!(
            "no webhook source is served: every POST /hooks/{{source}} answers 404. Give a source its secret (FORMBRIDGE__SOURCES__<NAME>__SECRET, e.g. FORMBRIDGE__SOURCES__JOTFORM__SECRET) or define one with auth = \"none\""
        );
    }
}

fn spawn_metrics_upkeep() -> tokio::task::JoinHandle<()> {
    let handle = telemetry::metrics_handle();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

/// The whole HTTP surface with its middleware. `wake` is notified after an admin replay so the
/// dispatcher picks the replayed events up at once.
pub fn build_router(
    settings: &Settings,
    runtimes: &SourceRuntimes,
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
) -> Result<Router, AppError> {
    let ingress = Arc::new(
        IngressState::new(settings, runtimes, store.clone(), wake.clone())
            .map_err(AppError::Config)?,
    );
    let admin_routes = admin::router(Arc::new(AdminState::new(
        store.clone(),
        settings.admin.token.as_ref(),
        Some(wake),
        Redactor::from_settings(settings),
    )));
    let ops = Arc::new(OpsState {
        store,
        metrics: telemetry::metrics_handle(),
    });
    let hooks = Router::new()
        .route(
            "/hooks/{source}",
            post(hooks::receive).get(hooks::probe).head(hooks::probe),
        )
        .with_state(ingress);
    let ops_routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(ops);
    let router = hooks
        .merge(ops_routes)
        .merge(admin_routes)
        .method_not_allowed_fallback(errors::method_not_allowed)
        .fallback(errors::not_found)
        .layer(CatchPanicLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.server.request_timeout,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let request_id = req
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            // Only the path: the query string may carry a source's secret token.
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid));
    Ok(router)
}
