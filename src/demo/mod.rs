//! `formbridge demo`: formbridge's whole job end to end, with no GHL account — the built-in GHL
//! sandbox and formbridge itself in this process, real deliveries posted over HTTP, and a report
//! of what ended up where.
//!
//! The deliveries are the recorded fixtures of `tests/fixtures`, embedded in the binary, so the
//! demo works from any directory; with no config folder it runs on the defaults built into the
//! binary.
//!
//! Compiled only with the `sandbox` feature (on by default), like the fixtures it embeds. It
//! lives here rather than in the `ghl-sandbox` crate because it runs formbridge's own app: the
//! sandbox crate depending on formbridge would make a package cycle.
mod deliveries;
mod report;
mod workdir;

use deliveries::*;
use report::*;
use workdir::*;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ghl_sandbox::{SandboxConfig, SandboxHandle, SandboxState, DEMO_LOCATION, DEMO_TOKEN};
use serde::Serialize;
use serde_json::Value;

use crate::app::Application;
use crate::domain::EventId;
use crate::mapping::config::TaskConfig;
use crate::settings::{ConfigSource, Settings};
use crate::sources::built_in_sources;
use crate::store::{EventFilter, EventStatus, Store};

/// Name of the SQLite file inside the demo's folder.
const DB_FILE: &str = "formbridge.db";
/// Longest wait for the queue to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the servers to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Exit code for a demo that ran but did not show what it should.
const FAILED: u8 = 1;
/// Exit code for a demo that could not start (configuration, folders, ports).
const USAGE: u8 = 2;

/// What `formbridge demo` was asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the layered configuration is read from (the user's mapping config is honoured).
    pub config: ConfigSource,
    /// Keep the SQLite store in this folder instead of a temporary one.
    pub keep: Option<PathBuf>,
    /// Print the report as JSON instead of text.
    pub json: bool,
}

/// Runs the demo; `interrupt` (ctrl-c) stops it early and cleans up.
pub async fn run(options: DemoOptions, interrupt: impl Future<Output = ()>) -> ExitCode {
    init_quiet_tracing();
    let workdir = match WorkDir::prepare(options.keep.as_deref()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("formbridge demo: {e:#}");
            return ExitCode::from(USAGE);
        }
    };
    let config = options.config.clone();
    let demo = match Demo::start(&config, &workdir).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("formbridge demo: cannot start: {e:#}");
            return ExitCode::from(USAGE);
        }
    };
    let result = tokio::select! {
        r = demo.exercise() => Some(r),
        () = interrupt => None,
    };
    let formbridge_url = demo.base.clone();
    let ghl_url = demo.ghl.base_url.to_string();
    let config_notes = demo.config_notes.clone();
    let stopped = demo.stop().await;
    let report = match result {
        None => {
            eprintln!("formbridge demo: interrupted");
            return ExitCode::from(130);
        }
        Some(Err(e)) => {
            eprintln!("formbridge demo: {e:#}");
            return ExitCode::from(FAILED);
        }
        Some(Ok(parts)) => {
            let mut problems = parts.problems;
            if let Err(e) = stopped {
                problems.push(format!("shutdown: {e}"));
            }
            Report {
                ok: problems.is_empty(),
                problems,
                formbridge_url,
                ghl_sandbox_url: ghl_url,
                ghl_location: DEMO_LOCATION.to_owned(),
                deliveries: parts.deliveries,
                events_stored: parts.events_stored,
                ghl: parts.ghl,
                metrics: parts.metrics,
                config_notes,
                store: workdir.store_report(&options.config),
            }
        }
    };
    if options.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("formbridge demo: cannot print the report: {e}"),
        }
    } else {
        print!("{}", render(&report));
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        if options.json {
            eprintln!("formbridge demo: FAILED: {}", report.problems.join("; "));
        } else {
            eprintln!("formbridge demo: FAILED (see the report above)");
        }
        ExitCode::from(FAILED)
    }
}

/// Logs at `warn` (unless `RUST_LOG` says otherwise) on stderr, so stdout holds only the report.
/// The preparer's warning for a dead-lettered delivery is left out: the report shows it.
fn init_quiet_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,formbridge::dispatch::prepare=error")
    });
    // An error means a subscriber is already installed.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The running demo: the sandbox, formbridge, and what is needed to talk to them.
struct Demo {
    ghl: SandboxHandle,
    base: String,
    store: Arc<dyn Store>,
    client: reqwest::Client,
    secrets: Vec<(&'static str, String)>,
    /// The sources as formbridge compiles them, to sign deliveries of sources that check a
    /// signature.
    sources: crate::runtime::SourceRuntimes,
    config_notes: Vec<String>,
    stop_app: tokio::sync::oneshot::Sender<()>,
    app: tokio::task::JoinHandle<Result<(), crate::app::AppError>>,
}

/// What the exercise found.
struct Findings {
    problems: Vec<String>,
    deliveries: Vec<DeliveryReport>,
    events_stored: u64,
    ghl: GhlReport,
    metrics: Vec<String>,
}

impl Demo {
    async fn start(config: &ConfigSource, workdir: &WorkDir) -> anyhow::Result<Self> {
        let mut notes = Vec::new();
        let ghl = ghl_sandbox::start(SandboxConfig::default())
            .await
            .context("cannot start the GHL sandbox")?;
        let secrets: Vec<(&'static str, String)> = built_in_sources()
            .map(|s| (s, format!("demo-{}", uuid::Uuid::new_v4().simple())))
            .collect();
        let settings = demo_settings(config, workdir, &ghl, &secrets, &mut notes)?;
        let sources = crate::runtime::SourceRuntimes::compile(&settings)
            .context("cannot compile the demo's sources")?;
        let app = Application::build(settings)
            .await
            .context("cannot start formbridge")?;
        let base = format!("http://{}", app.local_addr());
        let store = app.store();
        let (stop_app, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            ghl,
            base,
            store,
            client,
            secrets,
            sources,
            config_notes: notes,
            stop_app,
            app,
        })
    }

    /// Posts the deliveries, waits for the queue to settle, and collects the findings.
    async fn exercise(&self) -> anyhow::Result<Findings> {
        let mut problems = Vec::new();
        let mut deliveries = Vec::new();
        let mut newest = self.newest_event().await?;
        for post in POSTS {
            let d = self.post(post, &mut newest).await?;
            if let Some(p) = check_answer(&d) {
                problems.push(p);
            }
            deliveries.push(d);
        }
        let events_stored = self.total_events().await?;
        let expected = POSTS.iter().filter(|p| p.expect == Expect::Stored).count() as u64;
        if events_stored != expected {
            problems.push(format!(
                "{events_stored} events stored for {expected} distinct deliveries"
            ));
        }
        if let Err(open) = self.settle(SETTLE_TIMEOUT).await? {
            problems.push(format!(
                "{open} events still pending, processing or retrying after {}s",
                SETTLE_TIMEOUT.as_secs()
            ));
        }
        for d in deliveries.iter_mut().filter(|d| d.stored) {
            self.fill_outcome(d).await?;
            if let Some(p) = check_outcome(d) {
                problems.push(p);
            }
        }
        let state = self.ghl.state();
        problems.extend(ghl_duplicates(&state));
        let ghl = ghl_report(&state);
        let metrics = self.metrics().await?;
        Ok(Findings {
            problems,
            deliveries,
            events_stored,
            ghl,
            metrics,
        })
    }

    fn secret(&self, source: &str) -> &str {
        self.secrets
            .iter()
            .find(|(s, _)| *s == source)
            .map(|(_, secret)| secret.as_str())
            .unwrap_or_default()
    }

    async fn post(
        &self,
        post: &Post,
        newest: &mut Option<EventId>,
    ) -> anyhow::Result<DeliveryReport> {
        let fx = post.fixture;
        let token = match post.expect {
            Expect::Refused => "not-the-demo-token",
            _ => self.secret(fx.source),
        };
        let url = format!("{}/hooks/{}?token={token}", self.base, fx.source);
        let mut request = self.client.post(url).body(fx.body);
        if let Some(ct) = fx.content_type() {
            request = request.header("content-type", ct);
        }
        let signature = self
            .sources
            .get(fx.source)
            .and_then(|source| source.auth.as_ref())
            .and_then(|auth| auth.signature_for(fx.body));
        if let Some((header, value)) = signature {
            request = request.header(header, value);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("POST /hooks/{} failed", fx.source))?;
        let http_status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
        // Which event this delivery is: a new newest event means it was stored; otherwise the
        // answer's `event_id` (JivoChat answers only {"result":"ok"}) names the one it repeats.
        let now_newest = self.newest_event().await?;
        let stored = now_newest.is_some() && now_newest != *newest;
        let event_id = if stored {
            now_newest.map(|id| id.0)
        } else {
            answer.get("event_id").and_then(Value::as_i64)
        };
        *newest = now_newest;
        Ok(DeliveryReport {
            source: fx.source.to_owned(),
            label: fx.label.to_owned(),
            fixture: fx.file.to_owned(),
            note: post.note.to_owned(),
            expect: post.expect,
            http_status,
            answer,
            event_id,
            stored,
            status: None,
            error: None,
            email: None,
            phone: None,
            follows: None,
        })
    }

    async fn newest_event(&self) -> anyhow::Result<Option<EventId>> {
        let filter = EventFilter {
            limit: Some(1),
            ..EventFilter::default()
        };
        Ok(self.store.list_events(&filter).await?.first().map(|e| e.id))
    }

    async fn total_events(&self) -> anyhow::Result<u64> {
        Ok(self.store.status_counts().await?.values().sum())
    }

    /// Waits until nothing is pending, processing or retrying; `Err(open)` at the deadline.
    async fn settle(&self, timeout: Duration) -> anyhow::Result<Result<(), u64>> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.store.queue_stats().await?;
            let open: u64 = [
                EventStatus::Pending,
                EventStatus::Processing,
                EventStatus::Retrying,
            ]
            .iter()
            .map(|s| stats.by_status.get(s).copied().unwrap_or(0))
            .sum();
            if open == 0 {
                return Ok(Ok(()));
            }
            if Instant::now() >= deadline {
                return Ok(Err(open));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn fill_outcome(&self, d: &mut DeliveryReport) -> anyhow::Result<()> {
        let Some(id) = d.event_id else {
            return Ok(());
        };
        let Some(event) = self.store.get_event(EventId(id)).await? else {
            return Ok(());
        };
        d.status = Some(event.summary.status.as_str().to_owned());
        d.error = event.summary.last_error.as_deref().map(short_reason);
        let contact = event.submission.as_ref().and_then(|s| s.get("contact"));
        let field = |name: &str| {
            contact
                .and_then(|c| c.get(name))
                .and_then(Value::as_str)
                .filter(|v| !v.trim().is_empty())
                .map(str::to_owned)
        };
        d.email = field("email");
        d.phone = field("phone");
        d.follows = event
            .plan
            .iter()
            .flat_map(|p| &p.steps)
            .find_map(|s| match s {
                crate::domain::Step::LeadContact { reference } => Some(reference.clone()),
                _ => None,
            });
        Ok(())
    }

    async fn metrics(&self) -> anyhow::Result<Vec<String>> {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .context("GET /metrics failed")?
            .text()
            .await
            .context("GET /metrics failed")?;
        Ok(text
            .lines()
            .filter(|l| {
                [
                    crate::metrics::WEBHOOKS_RECEIVED,
                    crate::metrics::DISPATCH,
                    crate::metrics::DEAD_LETTERS,
                ]
                .iter()
                .any(|m| l.starts_with(m))
            })
            .map(str::to_owned)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    /// Stops formbridge (gracefully) and the sandbox.
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop_app.send(());
        let result = match tokio::time::timeout(STOP_TIMEOUT, self.app).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(anyhow::anyhow!("formbridge stopped with an error: {e}")),
            Ok(Err(e)) => Err(anyhow::anyhow!("formbridge task failed: {e}")),
            Err(_) => Err(anyhow::anyhow!(
                "formbridge did not stop within {}s",
                STOP_TIMEOUT.as_secs()
            )),
        };
        self.ghl.stop();
        drop(self.store);
        result
    }
}

/// The user's layered configuration with the demo's overrides: local addresses, the demo store,
/// the sandbox as GHL, dispatch on and quick, a generated token for each built-in source.
fn demo_settings(
    source: &ConfigSource,
    workdir: &WorkDir,
    ghl: &SandboxHandle,
    secrets: &[(&'static str, String)],
    notes: &mut Vec<String>,
) -> anyhow::Result<Settings> {
    let store_url = workdir.store_url();
    let base_url = ghl.base_url.to_string();
    let mut keys: Vec<(String, String)> = vec![
        ("server.addr".into(), "127.0.0.1:0".into()),
        ("store.url".into(), store_url),
        ("ghl.base_url".into(), base_url),
        ("ghl.token".into(), DEMO_TOKEN.into()),
        ("ghl.location_id".into(), DEMO_LOCATION.into()),
        ("dispatch.enabled".into(), "true".into()),
        ("dispatch.poll_interval".into(), "50ms".into()),
        ("dispatch.retry.initial_backoff".into(), "100ms".into()),
        ("dispatch.retry.max_backoff".into(), "1s".into()),
    ];
    for (name, secret) in secrets {
        keys.push((format!("sources.{name}.enabled"), "true".into()));
        keys.push((format!("sources.{name}.auth"), "token".into()));
        keys.push((format!("sources.{name}.secret"), secret.clone()));
    }
    let overrides: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut settings = Settings::load(source, &overrides).context("configuration refused")?;
    // One GHL location: the sandbox's. OAuth and extra locations would point at real GHL.
    settings.ghl.oauth = None;
    settings.ghl.locations.clear();
    for s in settings.sources.values_mut() {
        s.location = None;
    }
    if settings
        .sources
        .values()
        .all(|s| s.mapping.tasks.is_empty())
    {
        if let Some(dripjobs) = settings.sources.get_mut("dripjobs") {
            dripjobs.mapping.tasks.push(TaskConfig {
                title: "Call {{first_name}} back".to_owned(),
                body: Some("Lead from DripJobs: {{email}}".to_owned()),
                due_in: "1d".to_owned(),
                due_from: None,
                assigned_to: None,
                when: None,
            });
            notes.push(
                "your configuration maps no tasks: the demo added one to dripjobs (title \"Call {{first_name}} back\"); see config/sources/*.toml for task rules".to_owned(),
            );
        }
    }
    settings
        .validate()
        .context("configuration refused after the demo's changes")?;
    Ok(settings)
}
