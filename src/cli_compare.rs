//! `formbridge map --compare FILE --source NAME [--last N | --dead | --ids …] [--json]`: a
//! candidate mapping file compared with the running mapping over the stored deliveries of
//! `store.url` (opened shared, like `formbridge events`). Nothing is sent to GHL.
//!
//! Exit codes: 0 the candidate loads and breaks nothing; 2 usage, configuration or store
//! errors; [`PROBLEMS`] the candidate has configuration problems; [`BREAKS`] it would fail a
//! delivery the running mapping handles.

use std::path::Path;
use std::process::ExitCode;

use crate::playground::{self, report, Selection};
use crate::redact::Redactor;
use crate::runtime::SourceRuntimes;
use crate::settings::Settings;
use crate::store;

/// Exit code: bad usage, configuration or store.
const USAGE: u8 = 2;
/// Exit code: the candidate has configuration problems (it would not load).
pub const PROBLEMS: u8 = 3;
/// Exit code: the candidate loads but fails a delivery the running mapping handles.
pub const BREAKS: u8 = 4;

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareArgs<'a> {
    pub file: &'a Path,
    pub source: &'a str,
    pub selection: Selection,
    pub json: bool,
}

/// Runs the comparison and prints it.
pub async fn run(settings: &Settings, args: CompareArgs<'_>) -> ExitCode {
    let fail = |message: String| {
        eprintln!("formbridge map --compare: {message}");
        ExitCode::from(USAGE)
    };
    let runtimes = match SourceRuntimes::compile(settings) {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    let Some(source) = runtimes.get(args.source) else {
        return fail(format!("no [sources.{}] in the configuration", args.source));
    };
    let selection = match args.selection.checked() {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let text = match std::fs::read_to_string(args.file) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read {}: {e}", args.file.display())),
    };
    let store = match store::open_shared(&settings.store).await {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let events = match playground::load(store.as_ref(), args.source, &selection).await {
        Ok(e) => e,
        Err(e) => return fail(e.to_string()),
    };
    let candidate = playground::check(source, &text);
    let comparison =
        playground::compare(source, &settings.server.body_limits(), &candidate, &events);
    // Secrets this process knows, and `?token=`-style values, are masked (as `events show`).
    let redactor = Redactor::from_settings(settings);
    if args.json {
        match serde_json::to_value(&comparison) {
            Ok(mut json) => {
                redactor.mask_json(&mut json);
                println!("{json:#}");
            }
            Err(e) => return fail(e.to_string()),
        }
    } else {
        print!("{}", redactor.mask(&report::to_text(&comparison)));
    }
    if !comparison.loads() {
        ExitCode::from(PROBLEMS)
    } else if !comparison.would_break.is_empty() {
        ExitCode::from(BREAKS)
    } else {
        ExitCode::SUCCESS
    }
}
