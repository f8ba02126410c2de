//! `formbridge demo`: formbridge's whole job end to end, with no GHL account — the built-in GHL
//! sandbox and formbridge itself in this process, real deliveries posted over HTTP, and a report
//! of what ended up where.
//!
//! The deliveries are the recorded fixtures of `tests/fixtures`, embedded in the binary, so the
//! demo works from any directory. When no `config/default.toml` is found, the built-in default
//! configuration is used.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

use crate::app::Application;
use crate::ghl::sandbox::{
    self, SandboxConfig, SandboxHandle, SandboxState, DEMO_LOCATION, DEMO_TOKEN,
};
use crate::mapping::config::TaskConfig;
use crate::settings::{ConfigSource, Settings};
use crate::sources::BUILT_IN_SOURCES;
use crate::store::{EventFilter, EventId, EventStatus, Store};

/// Name of the SQLite file inside the demo's folder.
const DB_FILE: &str = "formbridge.db";
/// Longest wait for the queue to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the servers to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The built-in default configuration, used when the config folder has no `default.toml`.
const DEFAULT_TOML: &str = include_str!("../config/default.toml");
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

/// A recorded delivery, embedded in the binary.
struct Fixture {
    source: &'static str,
    file: &'static str,
    label: &'static str,
    meta: &'static str,
    body: &'static [u8],
}

impl Fixture {
    /// The Content-Type from the first line of the `.meta` file.
    fn content_type(&self) -> Option<&'static str> {
        self.meta
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("Content-Type:"))
            .map(str::trim)
    }
}

macro_rules! fixture {
    ($source:literal, $stem:literal, $ext:literal, $label:literal) => {
        Fixture {
            source: $source,
            file: concat!($stem, ".", $ext),
            label: $label,
            meta: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/",
                $source,
                "/",
                $stem,
                ".meta"
            )),
            body: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/",
                $source,
                "/",
                $stem,
                ".",
                $ext
            )),
        }
    };
}

const JOTFORM_CONSENT: Fixture = fixture!(
    "jotform",
    "enterprise_consent-widget.ASSEMBLED",
    "multipart",
    "Enterprise consent widget"
);
const JOTFORM_FEEDBACK: Fixture = fixture!(
    "jotform",
    "2024-12-30_feedback-rating-file-upload",
    "multipart",
    "Feedback form (2024-12-30)"
);
const JIVO_OFFLINE: Fixture = fixture!("jivochat", "offline_message", "json", "offline_message");
const JIVO_CLIENT: Fixture = fixture!("jivochat", "client_updated", "json", "client_updated");
const DRIPJOBS_PROPOSAL: Fixture = fixture!(
    "dripjobs",
    "zapier_proposal-accepted.ASSEMBLED",
    "json",
    "Proposal accepted (Zapier)"
);
const POWR_CONTACT: Fixture = fixture!(
    "powr",
    "zapier_contact-form.SYNTHETIC",
    "json",
    "Contact form (Zapier)"
);
const F123_CONTACT: Fixture = fixture!(
    "123formbuilder",
    "webhook_contact.SYNTHETIC",
    "urlencoded",
    "Contact form (urlencoded)"
);
const F123_QUOTE: Fixture = fixture!(
    "123formbuilder",
    "webhook_quote-request.SYNTHETIC",
    "multipart",
    "Quote request (multipart)"
);

/// What a posted delivery should come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Expect {
    /// Acknowledged with 200 and stored as a new event.
    Stored,
    /// Acknowledged with 200, recognised as a delivery already stored.
    Duplicate,
    /// Refused with 401 (wrong token); nothing stored.
    Refused,
}

struct Post {
    fixture: &'static Fixture,
    expect: Expect,
    note: &'static str,
}

/// The deliveries, in the order they are posted.
static POSTS: &[Post] = &[
    Post {
        fixture: &JOTFORM_CONSENT,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &JOTFORM_FEEDBACK,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &JIVO_OFFLINE,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &JIVO_CLIENT,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &DRIPJOBS_PROPOSAL,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &POWR_CONTACT,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &F123_CONTACT,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &F123_QUOTE,
        expect: Expect::Stored,
        note: "",
    },
    Post {
        fixture: &JOTFORM_CONSENT,
        expect: Expect::Duplicate,
        note: "resent (a Jotform retry)",
    },
    Post {
        fixture: &POWR_CONTACT,
        expect: Expect::Refused,
        note: "wrong token",
    },
];

/// The whole report, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Report {
    /// True when the demo showed everything it should (the exit code is 0).
    ok: bool,
    /// What went wrong, when `ok` is false.
    problems: Vec<String>,
    formbridge_url: String,
    ghl_sandbox_url: String,
    ghl_location: String,
    deliveries: Vec<DeliveryReport>,
    /// Events in the store after all posts.
    events_stored: u64,
    ghl: GhlReport,
    /// Selected lines of `GET /metrics`.
    metrics: Vec<String>,
    /// Notes about what the demo changed in the effective configuration.
    config_notes: Vec<String>,
    store: StoreReport,
}

#[derive(Debug, Serialize)]
struct DeliveryReport {
    source: String,
    label: String,
    fixture: String,
    note: String,
    expect: Expect,
    http_status: u16,
    /// The response body (JSON when it is JSON).
    answer: Value,
    /// The stored event this delivery is (new, or the one it duplicates).
    event_id: Option<i64>,
    /// Whether this post created a new event.
    stored: bool,
    /// Final status of the event (for posts that created one).
    status: Option<String>,
    /// Why the event is dead or retrying.
    error: Option<String>,
    /// The submitter's email / phone as formbridge understood them (demo placeholders).
    email: Option<String>,
    phone: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct GhlReport {
    contacts: Vec<ContactReport>,
    tasks: Vec<ChildReport>,
    notes: Vec<ChildReport>,
    /// API requests the sandbox answered.
    api_requests: usize,
}

#[derive(Debug, Serialize)]
struct ContactReport {
    id: String,
    name: String,
    email: Option<String>,
    phone: Option<String>,
    tags: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ChildReport {
    /// The email (else phone, else id) of the contact it belongs to.
    contact: String,
    /// Task title, or the first line of a note.
    text: String,
    /// Task due date.
    #[serde(skip_serializing_if = "Option::is_none")]
    due: Option<String>,
}

#[derive(Debug, Serialize)]
struct StoreReport {
    url: String,
    kept: bool,
    /// The command to inspect the kept store.
    inspect: Option<String>,
}

/// Runs the demo; `interrupt` (ctrl-c) stops it early and cleans up.
pub async fn run(options: DemoOptions, interrupt: impl Future<Output = ()>) -> ExitCode {
    init_quiet_tracing();
    let mut workdir = match WorkDir::prepare(options.keep.as_deref()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("formbridge demo: {e:#}");
            return ExitCode::from(USAGE);
        }
    };
    let config = match workdir.config_source(&options.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("formbridge demo: {e:#}");
            return ExitCode::from(USAGE);
        }
    };
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

/// The demo's folder: a temporary one (removed on drop) or the `--keep` one.
struct WorkDir {
    path: PathBuf,
    keep: bool,
    /// The built-in config written here when the config folder had none.
    fallback_config: Option<PathBuf>,
}

impl WorkDir {
    fn prepare(keep: Option<&Path>) -> anyhow::Result<Self> {
        let (path, keep) = match keep {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let dir = std::fs::canonicalize(dir)
                    .with_context(|| format!("cannot resolve {}", dir.display()))?;
                if dir.join(DB_FILE).exists() {
                    anyhow::bail!(
                        "{} already exists; the demo needs a fresh store (remove it or choose another --keep folder)",
                        dir.join(DB_FILE).display()
                    );
                }
                (dir, true)
            }
            None => {
                let dir = std::env::temp_dir()
                    .join(format!("formbridge-demo-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                (dir, false)
            }
        };
        Ok(Self {
            path,
            keep,
            fallback_config: None,
        })
    }

    fn db_path(&self) -> PathBuf {
        self.path.join(DB_FILE)
    }

    fn store_url(&self) -> String {
        format!("sqlite://{}", self.db_path().display())
    }

    /// The config folder to use: the user's, or the built-in defaults written into this folder.
    fn config_source(&mut self, config: &ConfigSource) -> anyhow::Result<ConfigSource> {
        if config.dir.join("default.toml").exists() {
            return Ok(config.clone());
        }
        let dir = self.path.join("config");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(dir.join("default.toml"), DEFAULT_TOML)
            .with_context(|| format!("cannot write {}", dir.display()))?;
        self.fallback_config = Some(dir.clone());
        Ok(ConfigSource {
            dir,
            env: config.env.clone(),
        })
    }

    fn store_report(&self, config: &ConfigSource) -> StoreReport {
        let inspect = self.keep.then(|| {
            let config_dir = match &self.fallback_config {
                Some(dir) => Some(dir.clone()),
                None if config.dir != Path::new("config") => {
                    Some(std::fs::canonicalize(&config.dir).unwrap_or_else(|_| config.dir.clone()))
                }
                None => None,
            };
            let mut cmd = format!(
                "FORMBRIDGE__STORE__URL={} formbridge",
                shell_quote(&self.store_url())
            );
            if let Some(dir) = config_dir {
                let _ = write!(
                    cmd,
                    " --config-dir {}",
                    shell_quote(&dir.display().to_string())
                );
            }
            cmd.push_str(" events list");
            cmd
        });
        StoreReport {
            url: self.store_url(),
            kept: self.keep,
            inspect,
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                eprintln!(
                    "formbridge demo: cannot remove {}: {e}",
                    self.path.display()
                );
            }
        }
    }
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_quote(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:+=,@".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The running demo: the sandbox, formbridge, and what is needed to talk to them.
struct Demo {
    ghl: SandboxHandle,
    base: String,
    store: Arc<dyn Store>,
    client: reqwest::Client,
    secrets: Vec<(&'static str, String)>,
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
        if let Some(dir) = &workdir.fallback_config {
            notes.push(format!(
                "no default.toml in the config folder: using the built-in defaults (written to {})",
                dir.display()
            ));
        }
        let ghl = sandbox::start(SandboxConfig::default())
            .await
            .context("cannot start the GHL sandbox")?;
        let secrets: Vec<(&'static str, String)> = BUILT_IN_SOURCES
            .iter()
            .map(|s| (*s, format!("demo-{}", uuid::Uuid::new_v4().simple())))
            .collect();
        let settings = demo_settings(config, workdir, &ghl, &secrets, &mut notes)?;
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
                    "formbridge_webhooks_received_total",
                    "formbridge_dispatch_total",
                    "formbridge_dead_letters_total",
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

/// The first clause of an error: up to the first `;` (the rest is advice on fixing it).
fn short_reason(error: &str) -> String {
    let first = error.lines().next().unwrap_or_default();
    first.split(';').next().unwrap_or(first).trim().to_owned()
}

fn check_answer(d: &DeliveryReport) -> Option<String> {
    let what = format!("{} {}", d.source, d.label);
    match d.expect {
        Expect::Stored if d.http_status != 200 => {
            Some(format!("{what}: answered {} instead of 200", d.http_status))
        }
        Expect::Stored if !d.stored => Some(format!("{what}: answered 200 but was not stored")),
        Expect::Duplicate if d.http_status != 200 => Some(format!(
            "{what} (resent): answered {} instead of 200",
            d.http_status
        )),
        Expect::Duplicate if d.stored => Some(format!("{what} (resent): stored twice")),
        Expect::Refused if d.http_status != 401 => Some(format!(
            "{what} with a wrong token: answered {} instead of 401",
            d.http_status
        )),
        Expect::Refused if d.stored => Some(format!("{what} with a wrong token: was stored")),
        _ => None,
    }
}

/// A delivery with an email or phone must end `done`.
fn check_outcome(d: &DeliveryReport) -> Option<String> {
    let has_contact = d.email.is_some() || d.phone.is_some();
    let status = d.status.as_deref().unwrap_or("unknown");
    (has_contact && status != "done").then(|| {
        let ended = if status == "dead" {
            "ended"
        } else {
            "is still"
        };
        let reason = d
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        format!(
            "{} {} (event #{}) {ended} {status}{reason}",
            d.source,
            d.label,
            d.event_id.unwrap_or_default(),
        )
    })
}

/// Records created twice in GHL: two contacts with one email or phone, or one formbridge
/// marker on two tasks or notes.
fn ghl_duplicates(state: &SandboxState) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for c in &state.contacts {
        for key in ["email", "phone"] {
            if let Some(v) = c.get(key).and_then(Value::as_str) {
                if !seen.insert(format!("{key}:{}", v.to_lowercase())) {
                    problems.push(format!("two GHL contacts share the {key} {v}"));
                }
            }
        }
    }
    let mut markers = BTreeSet::new();
    for record in state.tasks.iter().chain(&state.notes) {
        let body = record
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some((_, marker)) = body.rsplit_once("[formbridge:") {
            if !markers.insert(marker.to_owned()) {
                problems.push(format!("a GHL task or note was created twice ({marker}"));
            }
        }
    }
    problems
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn ghl_report(state: &SandboxState) -> GhlReport {
    let contacts: Vec<ContactReport> = state
        .contacts
        .iter()
        .map(|c| ContactReport {
            id: text(c, "id").unwrap_or_default(),
            name: [text(c, "firstName"), text(c, "lastName")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
            email: text(c, "email"),
            phone: text(c, "phone"),
            tags: c
                .get("tags")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let owner = |v: &Value| {
        let id = text(v, "contactId").unwrap_or_default();
        contacts
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.email.clone().or_else(|| c.phone.clone()))
            .unwrap_or(id)
    };
    let tasks = state
        .tasks
        .iter()
        .map(|t| ChildReport {
            contact: owner(t),
            text: text(t, "title").unwrap_or_default(),
            due: text(t, "dueDate"),
        })
        .collect();
    let notes = state
        .notes
        .iter()
        .map(|n| ChildReport {
            contact: owner(n),
            text: text(n, "body")
                .and_then(|b| b.lines().next().map(str::to_owned))
                .unwrap_or_default(),
            due: None,
        })
        .collect();
    GhlReport {
        api_requests: state.requests.len(),
        contacts,
        tasks,
        notes,
    }
}

/// The human report.
fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "formbridge demo — no GHL account needed");
    let _ = writeln!(
        out,
        "  formbridge   {}  (store {})",
        r.formbridge_url, r.store.url
    );
    let _ = writeln!(
        out,
        "  GHL sandbox  {}  (location {})",
        r.ghl_sandbox_url, r.ghl_location
    );
    for note in &r.config_notes {
        let _ = writeln!(out, "  note: {note}");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Deliveries (POST /hooks/{{source}}?token=…, bodies as the tools send them)"
    );
    for (i, d) in r.deliveries.iter().enumerate() {
        let what = if d.note.is_empty() {
            d.label.clone()
        } else {
            format!("{}, {}", d.label, d.note)
        };
        let answer = match (d.expect, d.stored, d.event_id) {
            (_, true, Some(id)) => format!("{} stored #{id}", d.http_status),
            (_, false, Some(id)) if d.http_status == 200 => {
                format!("{} duplicate of #{id}, not stored again", d.http_status)
            }
            (_, false, _) if d.http_status == 200 => {
                format!("{} duplicate, not stored again", d.http_status)
            }
            _ => format!("{} refused, nothing stored", d.http_status),
        };
        let outcome = match d.status.as_deref() {
            None => String::new(),
            Some("done") => {
                let who = d
                    .email
                    .as_deref()
                    .or(d.phone.as_deref())
                    .unwrap_or("no contact");
                format!(" → done ({who})")
            }
            Some(status) => format!(
                " → {status}: {}",
                d.error.as_deref().unwrap_or("no reason recorded")
            ),
        };
        let _ = writeln!(
            out,
            "  {:>2}. {:<15}{:<52}{answer}{outcome}",
            i + 1,
            d.source,
            what
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "GHL sandbox now holds ({} API requests answered)",
        r.ghl.api_requests
    );
    let _ = writeln!(out, "  Contacts ({})", r.ghl.contacts.len());
    for c in &r.ghl.contacts {
        let _ = writeln!(
            out,
            "    {:<16}{:<28}{:<15}tags: {}",
            c.name,
            c.email.as_deref().unwrap_or("-"),
            c.phone.as_deref().unwrap_or("-"),
            c.tags.join(", ")
        );
    }
    let _ = writeln!(out, "  Tasks ({})", r.ghl.tasks.len());
    for t in &r.ghl.tasks {
        let _ = writeln!(
            out,
            "    {:<28}{}  (due {})",
            t.contact,
            t.text,
            t.due.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(out, "  Notes ({})", r.ghl.notes.len());
    for n in &r.ghl.notes {
        let _ = writeln!(out, "    {:<28}{}", n.contact, n.text);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Metrics (GET /metrics, excerpt)");
    for m in &r.metrics {
        let _ = writeln!(out, "  {m}");
    }
    let _ = writeln!(out);
    if r.ok {
        let done = r
            .deliveries
            .iter()
            .filter(|d| d.status.as_deref() == Some("done"))
            .count();
        let dead = r
            .deliveries
            .iter()
            .filter(|d| d.status.as_deref() == Some("dead"))
            .count();
        let _ = writeln!(
            out,
            "OK: {} deliveries stored once each; {done} done in GHL, {dead} dead-lettered for lack of an email or phone (replayable after a mapping fix); the resend was acknowledged, not stored twice; the wrong token got 401.",
            r.events_stored
        );
    } else {
        let _ = writeln!(out, "FAILED:");
        for p in &r.problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    match &r.store.inspect {
        Some(cmd) => {
            let _ = writeln!(out, "The store was kept. Inspect it with:\n  {cmd}");
        }
        None => {
            let _ = writeln!(
                out,
                "The temporary store was removed; run `formbridge demo --keep <dir>` to keep it for `formbridge events list`."
            );
        }
    }
    out
}
