//! Preparation: normalize each new delivery and build its plan, in arrival order, so that
//! every event has its contact key before any later event can be claimed.

use std::collections::HashMap;

use crate::mapping::{build_plan, CompiledMapping};
use crate::settings::Settings;
use crate::sources::{normalize, SourceName};
use crate::store::{Event, Preparation, Store, StoreError};

/// Turns stored deliveries into plans with the current configuration.
pub struct Preparer {
    settings: std::sync::Arc<Settings>,
    /// GHL location id of each source.
    locations: HashMap<String, Option<String>>,
    /// Each source's mapping, compiled once (settings were checked at start, so an error here
    /// only reaches a source that start-up would have refused).
    mappings: HashMap<String, Result<CompiledMapping, String>>,
}

impl Preparer {
    pub fn new(settings: std::sync::Arc<Settings>) -> Self {
        let locations = settings
            .sources
            .iter()
            .map(|(name, source)| {
                let location = match &source.location {
                    Some(named) => settings
                        .ghl
                        .locations
                        .get(named)
                        .map(|l| l.location_id.clone()),
                    None => settings.ghl.location_id.clone(),
                };
                (name.clone(), location)
            })
            .collect();
        let mappings = settings
            .sources
            .iter()
            .map(|(name, source)| {
                let compiled =
                    SourceName::parse(name)
                        .map_err(|e| e.to_string())
                        .and_then(|parsed| {
                            CompiledMapping::compile(
                                &source.mapping,
                                &parsed,
                                source.kind_for(&parsed),
                            )
                            .map_err(|e| format!("sources.{name}.{e}"))
                        });
                (name.clone(), compiled)
            })
            .collect();
        Self {
            settings,
            locations,
            mappings,
        }
    }

    /// Prepares up to `batch` unprepared events; returns how many it handled.
    pub async fn run_once(&self, store: &dyn Store, batch: u32) -> Result<usize, StoreError> {
        let events = store.unprepared(batch).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let mut results = Vec::with_capacity(events.len());
        for event in &events {
            results.push((event.summary.id, self.prepare(event).await));
        }
        store.save_preparations(&results).await?;
        for (id, prep) in &results {
            match prep {
                Preparation::Failed { error, .. } => {
                    metrics::counter!("formbridge_dead_letters_total", "reason" => "unmappable")
                        .increment(1);
                    tracing::warn!(event_id = %id, %error, "event dead-lettered: cannot be mapped");
                }
                Preparation::NothingToDo { .. } => {
                    metrics::counter!("formbridge_dispatch_total", "outcome" => "nothing_to_do")
                        .increment(1);
                    tracing::debug!(event_id = %id, "event needs nothing in GHL");
                }
                Preparation::Ready { .. } => {}
            }
        }
        Ok(events.len())
    }

    async fn prepare(&self, event: &Event) -> Preparation {
        let failed = |submission, error: String| Preparation::Failed { submission, error };
        let source_name = &event.summary.source;
        let (Some(source), Ok(name)) = (
            self.settings.sources.get(source_name),
            SourceName::parse(source_name),
        ) else {
            return failed(None, format!("source `{source_name}` is no longer configured; add [sources.{source_name}] and replay"));
        };
        let kind = source.kind_for(&name);
        let submission = match normalize(
            &name,
            kind,
            source,
            event.content_type.as_deref(),
            &event.body,
            event.summary.received_at,
        )
        .await
        {
            Ok(s) => s,
            Err(e) => return failed(None, format!("cannot read the delivery: {e}")),
        };
        let submission_json = serde_json::to_value(&submission).unwrap_or(serde_json::Value::Null);
        let mapping = match self.mappings.get(source_name) {
            Some(Ok(mapping)) => mapping,
            Some(Err(e)) => return failed(Some(submission_json), e.clone()),
            None => {
                return failed(
                    Some(submission_json),
                    format!("source `{source_name}` has no mapping"),
                )
            }
        };
        let plan = match build_plan(mapping, &submission) {
            Ok(plan) => plan,
            Err(e) => return failed(Some(submission_json), e.to_string()),
        };
        if plan.steps.is_empty() {
            return Preparation::NothingToDo {
                submission: submission_json,
            };
        }
        let Some(location_id) = self.locations.get(source_name).cloned().flatten() else {
            return failed(
                Some(submission_json),
                format!("no GHL location for source `{source_name}`: set ghl.location_id (FORMBRIDGE__GHL__LOCATION_ID) or sources.{source_name}.location, then replay"),
            );
        };
        let contact_key = plan
            .contact_key()
            .unwrap_or_else(|| format!("event:{}", event.summary.id));
        match serde_json::to_value(&plan) {
            Ok(plan) => Preparation::Ready {
                submission: submission_json,
                plan,
                contact_key: format!("{location_id}/{contact_key}"),
                location_id,
            },
            Err(e) => failed(
                Some(submission_json),
                format!("cannot encode the plan: {e}"),
            ),
        }
    }
}
