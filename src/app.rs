//! Application assembly: routers (public and ops ports), state, workers, alerts, serving and
//! graceful shutdown.

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

use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agent_view::AgentView;
use crate::alerts::{self, AlertSink, AlertsError, Notifier};
use crate::dispatch::{self as dispatching, DispatchError, Dispatcher};
use crate::ghl_access::Budgets;
use crate::http::admin::{self, AdminState, OverviewSources};
use crate::http::admin_playground::PlaygroundApi;
use crate::http::errors::{self, REQUEST_ID};
use crate::http::health::{self, OpsState};
use crate::http::hooks::{self, IngressState};
use crate::http::log_safe::Escaped;
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
    #[error(transparent)]
    Alerts(#[from] AlertsError),
}

fn has_ghl_credentials(settings: &Settings) -> bool {
    let ghl = &settings.ghl;
    (ghl.token.is_some() && ghl.location_id.is_some())
        || !ghl.locations.is_empty()
        || ghl.oauth.is_some()
}

/// A built application: bound listeners, the routers and the store, ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// The internal ops listener and its routes, when `server.ops_addr` is set.
    ops: Option<(TcpListener, Router)>,
    store: Arc<dyn Store>,
    settings: Arc<Settings>,
    dispatcher: Option<Arc<Dispatcher>>,
    alerts: AlertSink,
    notifier: Option<Notifier>,
}

impl Application {
    /// Opens the store, prepares the sources and binds `server.addr` (and `server.ops_addr`;
    /// port 0 picks a free port).
    pub async fn build(settings: Settings) -> Result<Self, AppError> {
        let store = store::open(&settings.store).await?;
        let listener = bind(settings.server.addr).await?;
        let ops_listener = match settings.server.ops_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let settings = Arc::new(settings);
        warn_if_no_source_is_served(&settings);
        let redactor = Redactor::from_settings(&settings);
        let (alerts, notifier) =
            alerts::start(&settings.alerts, Arc::new(move |text| redactor.mask(text)))?;
        let wake = Arc::new(Notify::new());
        let runtimes = Arc::new(
            SourceRuntimes::compile(&settings).map_err(|e| AppError::Config(e.to_string()))?,
        );
        // One GHL client (one OAuth refresher) and one rate budget per location for every GHL
        // caller of this process: the dispatcher and the agent view.
        let ghl = if has_ghl_credentials(&settings) {
            let client = dispatching::ghl_client(&settings, store.clone())?;
            let budgets = Arc::new(Budgets::new(&settings.ghl, store.shared_budget()));
            Some((client, budgets))
        } else {
            None
        };
        let dispatcher = match &ghl {
            _ if !settings.dispatch.enabled => {
                tracing::info!(
                    "dispatch disabled (dispatch.enabled = false): deliveries are stored only"
                );
                None
            }
            None => {
                tracing::warn!("dispatch off: no GHL credentials (set ghl.token and ghl.location_id, [ghl.locations.*] or [ghl.oauth]); deliveries are stored and wait");
                None
            }
            Some((client, budgets)) => Some(Arc::new(Dispatcher::with_ghl(
                settings.clone(),
                runtimes.clone(),
                store.clone(),
                wake.clone(),
                alerts.clone(),
                client.clone(),
                budgets.clone(),
            ))),
        };
        let agent_view = ghl.map(|(client, budgets)| {
            Arc::new(AgentView::new(&settings, client, budgets, alerts.clone()))
        });
        let routers = build_routers(
            &settings,
            &runtimes,
            store.clone(),
            wake,
            agent_view,
            dispatcher.clone(),
        )?;
        let ops = match (ops_listener, routers.ops) {
            (Some(listener), Some(router)) => Some((listener, router)),
            _ => None,
        };
        Ok(Self {
            listener,
            router: routers.public,
            ops,
            store,
            settings,
            dispatcher,
            alerts,
            notifier,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.settings.server.addr)
    }

    /// The ops address actually bound, when `server.ops_addr` is set.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().and_then(|(l, _)| l.local_addr().ok())
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

    /// Serves until `shutdown` resolves. Then, within one `server.shutdown_grace`: nothing new
    /// is accepted or claimed, connections waiting for a request are closed at once, requests
    /// inside their handler and GHL steps under way finish (what is left when the grace ends
    /// is cancelled and its event released, due at once). Last, waiting alerts are sent.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let grace = self.settings.server.shutdown_grace;
        let upkeep = spawn_metrics_upkeep();
        let addr = self.local_addr();
        let ops_addr = self.ops_addr();
        let stop = CancellationToken::new();
        let stop_alerts = CancellationToken::new();
        let notifier = self
            .notifier
            .map(|n| tokio::spawn(n.run(stop_alerts.clone())));
        let watcher = tokio::spawn(watch_queue(
            self.alerts.clone(),
            self.settings.clone(),
            self.store.clone(),
            stop.clone(),
        ));
        let dispatcher = self.dispatcher.clone();
        let mut dispatch = self.dispatcher.map(|d| tokio::spawn(d.run(stop.clone())));
        let retention = self.settings.store.retention;
        let retention = (!retention.is_zero()).then(|| {
            tokio::spawn(crate::retention::run(
                self.store.clone(),
                retention,
                stop.clone(),
            ))
        });
        let limits = ServerLimits::from_settings(&self.settings.server);
        match ops_addr {
            Some(ops_addr) => tracing::info!(%addr, %ops_addr, "formbridge listening"),
            None => tracing::info!(%addr, "formbridge listening"),
        }
        let public = server::serve(
            self.listener,
            self.router,
            limits,
            stop.clone().cancelled_owned(),
        );
        let ops = async {
            if let Some((listener, router)) = self.ops {
                server::serve(listener, router, limits, stop.clone().cancelled_owned()).await;
            }
        };
        let trigger = async {
            shutdown.await;
            tracing::info!(
                ?grace,
                "stopping: no new connections or claims; finishing what is in flight"
            );
            stop.cancel();
            Instant::now()
        };
        let ((), (), stopped_at) = tokio::join!(public, ops, trigger);
        // The HTTP side has drained; in-flight GHL work has what is left of the same grace.
        if let Some(dispatch) = dispatch.as_mut() {
            if tokio::time::timeout_at(stopped_at + grace, &mut *dispatch)
                .await
                .is_err()
            {
                // Cancel what is still running (dropping the dispatcher's tasks), then give
                // their events back, due now, rather than leave them until the lease expires.
                dispatch.abort();
                let _ = (&mut *dispatch).await;
                let released = match &dispatcher {
                    Some(d) => d.release_held().await,
                    None => 0,
                };
                tracing::warn!(
                    released,
                    "dispatcher did not stop within the grace; its unfinished events were released for another worker"
                );
            }
        }
        if let Some(retention) = retention {
            retention.abort();
        }
        let _ = watcher.await;
        stop_alerts.cancel();
        if let Some(notifier) = notifier {
            let limit = self.settings.alerts.request_timeout * self.settings.alerts.max_attempts;
            if tokio::time::timeout(limit, notifier).await.is_err() {
                tracing::warn!("alerts still unsent at shutdown were dropped");
            }
        }
        upkeep.abort();
        tracing::info!("stopped");
        Ok(())
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })
}

/// Raises the queue-age alert (when alerts are on) from how long the longest-waiting due event
/// has been due (the figure of `formbridge_queue_oldest_pending_seconds`: not a follow-up
/// waiting for its lead, not a retry in backoff).
async fn watch_queue(
    sink: AlertSink,
    settings: Arc<Settings>,
    store: Arc<dyn Store>,
    stop: CancellationToken,
) {
    let oldest = || async {
        let stats = store.queue_stats().await.ok()?;
        let age = OffsetDateTime::now_utc() - stats.oldest_due?;
        Duration::try_from(age).ok()
    };
    alerts::watch_queue_age(sink, &settings.alerts, oldest, stop).await;
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

/// The HTTP surface split by port: `public` (hooks and health checks) and, with
/// `server.ops_addr`, `ops` (metrics, admin and health checks); without it, `public` holds all.
pub struct Routers {
    pub public: Router,
    pub ops: Option<Router>,
}

/// The whole HTTP surface in one router, with its middleware (what `server.addr` serves when no
/// `server.ops_addr` is set). `agent_view` answers chat deliveries shown to an agent.
pub fn build_router(
    settings: &Settings,
    runtimes: &SourceRuntimes,
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    agent_view: Option<Arc<AgentView>>,
) -> Result<Router, AppError> {
    let parts = route_parts(settings, runtimes, store, wake, agent_view, None)?;
    Ok(with_middleware(
        parts.hooks.merge(parts.health).merge(parts.internal),
        settings,
    ))
}

/// The routers of each port, with their middleware. `wake` is notified after an admin replay
/// so the dispatcher picks the replayed events up at once; the admin overview shows what
/// `dispatcher` (this process's, when it runs one) knows of each location.
pub fn build_routers(
    settings: &Settings,
    runtimes: &SourceRuntimes,
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    agent_view: Option<Arc<AgentView>>,
    dispatcher: Option<Arc<Dispatcher>>,
) -> Result<Routers, AppError> {
    let parts = route_parts(settings, runtimes, store, wake, agent_view, dispatcher)?;
    if settings.server.ops_addr.is_none() {
        return Ok(Routers {
            public: with_middleware(
                parts.hooks.merge(parts.health).merge(parts.internal),
                settings,
            ),
            ops: None,
        });
    }
    Ok(Routers {
        public: with_middleware(parts.hooks.merge(parts.health.clone()), settings),
        ops: Some(with_middleware(
            parts.health.merge(parts.internal),
            settings,
        )),
    })
}

/// The routes, grouped by who calls them.
struct RouteParts {
    /// `/hooks/{source}`: the form tools.
    hooks: Router,
    /// `/healthz`, `/readyz`: load balancers and orchestrators.
    health: Router,
    /// `/metrics`, `/admin/*`: ops only.
    internal: Router,
}

fn route_parts(
    settings: &Settings,
    runtimes: &SourceRuntimes,
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    agent_view: Option<Arc<AgentView>>,
    dispatcher: Option<Arc<Dispatcher>>,
) -> Result<RouteParts, AppError> {
    let ingress = Arc::new(
        IngressState::new(settings, runtimes, store.clone(), wake.clone(), agent_view)
            .map_err(AppError::Config)?,
    );
    let admin_routes = admin::router(Arc::new(
        AdminState::new(
            store.clone(),
            store.clone(),
            settings.admin.token.as_ref(),
            Some(wake),
            Redactor::from_settings(settings),
        )
        .with_lead_index(store.clone(), default_countries(settings))
        .with_overview(OverviewSources {
            store: store.clone(),
            dispatch: dispatcher,
        })
        .with_playground(PlaygroundApi::new(
            store.clone(),
            runtimes.clone(),
            settings.server.body_limits(),
            Redactor::from_settings(settings),
        )),
    ));
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
    let health = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(ops.clone());
    let metrics = Router::new()
        .route("/metrics", get(health::metrics))
        .with_state(ops);
    Ok(RouteParts {
        hooks,
        health,
        internal: metrics.merge(admin_routes),
    })
}

fn with_middleware(router: Router, settings: &Settings) -> Router {
    router
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
            // Escaped like every request-derived string in the log.
            tracing::info_span!("http", method = %req.method(), path = %Escaped(req.uri().path()), request_id = %Escaped(request_id))
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// The sources' `mapping.default_country` values, US first when any source has none (how
/// the admin search reads a phone typed without `+country`).
fn default_countries(settings: &Settings) -> Vec<String> {
    let mut countries: Vec<String> = Vec::new();
    for source in settings.sources.values() {
        let country = source
            .mapping
            .default_country
            .clone()
            .unwrap_or_else(|| "US".to_owned())
            .to_ascii_uppercase();
        if !countries.contains(&country) {
            countries.push(country);
        }
    }
    countries
}
