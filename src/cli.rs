//! Operator commands of the binary: `formbridge events list|show|replay` on the store, and
//! `formbridge sandbox-ghl` (with the `sandbox` feature).
//!
//! The events commands open the store named by the settings directly, so they work whether the
//! server runs or not: SQLite's file is opened shared (`store::open_shared`), without the
//! serving process's lock. Exit codes: 0 done, 1 not found or nothing done, 2 usage or
//! configuration errors.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::domain::EventId;
use crate::domain::SourceName;
use crate::http::admin::{self, EventPage, MAX_PAGE};
use crate::redact::Redactor;
use crate::settings::Settings;
use crate::store::{self, AdminReads, EventFilter, EventStatus, EventSummary, Store};

/// Exit code: not found, or nothing was done.
const NOTHING: u8 = 1;
/// Exit code: bad usage or configuration.
const USAGE: u8 = 2;

/// `formbridge events …`: inspect and replay stored events.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List events, newest first (a table, or JSON with --json).
    List(ListArgs),
    /// Print one event with its body, steps and attempts as JSON.
    Show {
        /// The event id.
        id: i64,
    },
    /// Queue events again: by id, or every event matching a filter.
    Replay(ReplayArgs),
    /// Cancel events waiting to be sent (pending or retrying): each ends dead with a reason
    /// saying an admin cancelled it, and is never sent unless replayed.
    Cancel {
        /// The event ids.
        #[arg(required = true)]
        ids: Vec<i64>,
    },
}

/// Filters shared by `events list` and `events replay`.
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Only events in this status (pending, processing, done, retrying, dead).
    #[arg(long)]
    pub status: Option<EventStatus>,
    /// Only events of this source (e.g. jotform).
    #[arg(long, value_parser = parse_source)]
    pub source: Option<String>,
    /// Received at or after (RFC 3339 or unix seconds).
    #[arg(long, value_parser = admin::parse_time)]
    pub since: Option<OffsetDateTime>,
    /// Received before (RFC 3339 or unix seconds).
    #[arg(long, value_parser = admin::parse_time)]
    pub until: Option<OffsetDateTime>,
}

impl FilterArgs {
    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.source.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }

    fn to_filter(&self) -> EventFilter {
        EventFilter {
            status: self.status,
            source: self.source.clone(),
            since: self.since,
            until: self.until,
            ..EventFilter::default()
        }
    }
}

/// Arguments of `events list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only events older than this id (the next page; printed under the table).
    #[arg(long)]
    pub before_id: Option<i64>,
    /// Page size (1 to 500).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE)))]
    pub limit: u32,
    /// Print JSON (`{"events": [...], "next_before_id": …}`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `events replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Event ids to replay (or use a filter instead).
    #[arg(conflicts_with_all = ["status", "source", "since", "until", "all"])]
    pub ids: Vec<i64>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Replay every event (required when no id and no filter is given).
    #[arg(long)]
    pub all: bool,
    /// Run the whole plan again, completed GHL steps too (a task, note or contact by name is
    /// looked for by its marker before it is created again).
    #[arg(long)]
    pub from_scratch: bool,
}

fn parse_source(raw: &str) -> Result<String, String> {
    SourceName::parse(raw)
        .map(|s| s.as_str().to_owned())
        .map_err(|e| e.to_string())
}

/// Runs an `events` subcommand against the store of `settings`.
pub async fn run_events(command: EventsCommand, settings: &Settings) -> ExitCode {
    let store = match store::open_shared(&settings.store).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("formbridge events: {e}");
            return ExitCode::from(USAGE);
        }
    };
    // Secrets this process knows are masked; `?token=`-style values always are.
    let redactor = Redactor::from_settings(settings);
    let result = match command {
        EventsCommand::List(args) => list(store.as_ref(), &args, &redactor).await,
        EventsCommand::Show { id } => show(store.as_ref(), EventId(id), &redactor).await,
        EventsCommand::Replay(args) => replay(store.as_ref(), &args).await,
        EventsCommand::Cancel { ids } => cancel(store.as_ref(), &ids).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("formbridge events: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn list(
    store: &dyn AdminReads,
    args: &ListArgs,
    redactor: &Redactor,
) -> anyhow::Result<ExitCode> {
    let filter = EventFilter {
        before_id: args.before_id,
        limit: Some(args.limit),
        ..args.filter.to_filter()
    };
    let page = admin::list_page(store, &filter, redactor).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&page)?)?;
    } else {
        write_table(&mut out, &page)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Longest `last error` shown in the table.
const ERROR_WIDTH: usize = 60;

fn write_table(out: &mut impl Write, page: &EventPage) -> std::io::Result<()> {
    if page.events.is_empty() {
        return writeln!(out, "no events match");
    }
    let rows: Vec<[String; 6]> = page.events.iter().map(table_row).collect();
    let header = [
        "ID",
        "SOURCE",
        "STATUS",
        "ATTEMPTS",
        "RECEIVED",
        "LAST ERROR",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut s = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<width$}  "));
            }
        }
        s.trim_end().to_owned()
    };
    writeln!(out, "{}", line(header))?;
    for row in &rows {
        writeln!(out, "{}", line(row.each_ref().map(String::as_str)))?;
    }
    if let Some(next) = page.next_before_id {
        writeln!(out, "(more: --before-id {next})")?;
    }
    Ok(())
}

fn table_row(e: &EventSummary) -> [String; 6] {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    let received = e
        .received_at
        .to_offset(UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| e.received_at.to_string());
    [
        e.id.to_string(),
        e.source.clone(),
        e.status.to_string(),
        e.attempts.to_string(),
        received,
        e.last_error.as_deref().map(truncate).unwrap_or_default(),
    ]
}

/// The first line of an error, cut to [`ERROR_WIDTH`] characters.
fn truncate(error: &str) -> String {
    let first = error.lines().next().unwrap_or_default().trim();
    if first.chars().count() <= ERROR_WIDTH && !error.trim().contains('\n') {
        return first.to_owned();
    }
    let cut: String = first.chars().take(ERROR_WIDTH - 1).collect();
    format!("{}…", cut.trim_end())
}

async fn show(
    store: &dyn AdminReads,
    id: EventId,
    redactor: &Redactor,
) -> anyhow::Result<ExitCode> {
    match admin::event_detail(store, id, redactor).await? {
        Some(detail) => {
            println!("{}", serde_json::to_string_pretty(&detail)?);
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("formbridge events show: no event with id {id}");
            Ok(ExitCode::from(NOTHING))
        }
    }
}

async fn cancel(store: &dyn Store, ids: &[i64]) -> anyhow::Result<ExitCode> {
    let mut failed = 0;
    for &raw in ids {
        let id = EventId(raw);
        let (status, answer) =
            crate::http::admin_cockpit::cancel_event(store, id, "formbridge events cancel").await?;
        if status.is_success() {
            println!("cancelled event {id}");
        } else {
            let detail = answer["detail"].as_str().unwrap_or("not cancelled");
            eprintln!("event {id}: {detail}");
            failed += 1;
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOTHING)
    })
}

async fn replay(store: &dyn Store, args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let note = "a running server picks replayed events up on its next poll";
    if !args.ids.is_empty() {
        let mut failed = 0;
        for &raw in &args.ids {
            let id = EventId(raw);
            if store.replay(id, args.from_scratch).await? {
                println!("replayed event {id}");
            } else if store.get_event(id).await?.is_some() {
                eprintln!("event {id} is being processed right now; replay it once this attempt has ended");
                failed += 1;
            } else {
                eprintln!("no event with id {id}");
                failed += 1;
            }
        }
        if failed == 0 {
            println!("({note})");
            return Ok(ExitCode::SUCCESS);
        }
        return Ok(ExitCode::from(NOTHING));
    }
    if args.filter.is_empty() && !args.all {
        eprintln!(
            "formbridge events replay: give event ids or a filter (--status, --source, --since, \
             --until); use --all to replay every event"
        );
        return Ok(ExitCode::from(USAGE));
    }
    let replayed = store
        .replay_matching(&args.filter.to_filter(), args.from_scratch)
        .await?;
    println!("replayed {replayed} event(s)");
    if replayed == 0 {
        return Ok(ExitCode::from(NOTHING));
    }
    println!("({note})");
    Ok(ExitCode::SUCCESS)
}

/// `formbridge sandbox-ghl`: serves the built-in GHL sandbox on `addr` until `shutdown`.
#[cfg(feature = "sandbox")]
pub async fn sandbox_ghl(
    addr: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> ExitCode {
    use ghl_sandbox::{SandboxConfig, DEMO_LOCATION, DEMO_TOKEN};
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("formbridge sandbox-ghl: cannot listen on {addr}: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let mut bound = listener.local_addr().unwrap_or(addr);
    if bound.ip().is_unspecified() {
        bound.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let base = format!("http://{bound}/");
    println!("GHL sandbox listening on {base}");
    println!("  token:       {DEMO_TOKEN}");
    println!("  location id: {DEMO_LOCATION}");
    println!("point formbridge at it with:");
    println!(
        "  FORMBRIDGE__GHL__BASE_URL={base} FORMBRIDGE__GHL__TOKEN={DEMO_TOKEN} \
         FORMBRIDGE__GHL__LOCATION_ID={DEMO_LOCATION}"
    );
    println!("(ctrl-c to stop)");
    match ghl_sandbox::serve_sandbox(listener, SandboxConfig::default(), shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("formbridge sandbox-ghl: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_multi_line_errors_are_cut() {
        assert_eq!(truncate("short"), "short");
        assert_eq!(truncate("first\nsecond"), "first…");
        let long = "x".repeat(100);
        let cut = truncate(&long);
        assert_eq!(cut.chars().count(), ERROR_WIDTH);
        assert!(cut.ends_with('…'));
        assert_eq!(truncate(&"é".repeat(61)).chars().count(), ERROR_WIDTH);
    }
}
