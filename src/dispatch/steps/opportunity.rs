//! The opportunity steps: a lead's opportunity made once per location and reference (the
//! store's lead records say which card a lead has; an edit or a replay updates that card in
//! place), and a follow-up moving its lead's card to a stage or status. Pipelines and stages
//! named in the mapping are resolved through the [`PipelineCache`].
//!
//! Effectively-once: the card's id is saved in the store before the step is recorded done; a
//! create whose answer was lost (the step is recorded `started`) first looks for the card with
//! `GET /opportunities/search` (this contact, this pipeline, this name) before creating again.

use std::sync::Arc;

use super::StepAt;
use crate::dispatch::attempt::{Executor, StepError};
use crate::domain::opportunity::{LeadOpportunity, NameOrId, OpportunityFields, OpportunityMove};
use crate::ghl::opportunities::{
    CreateOpportunityRequest, Pipeline, PipelineStage, UpdateOpportunityRequest,
};
use crate::ghl::GhlError;

/// The references a lead's card is kept under: the plan's, else the event's own (its first
/// revision's, so an edit finds the card its first revision made).
fn references(at: &StepAt<'_>) -> Vec<String> {
    let plan = &at.event.plan;
    if plan.references.is_empty() {
        vec![format!(
            "event/{}",
            plan.revision_of.unwrap_or(at.event.id.0)
        )]
    } else {
        plan.references.clone()
    }
}

/// The card a lead sharing one of this event's references made, if any.
async fn known_card(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
) -> Result<Option<LeadOpportunity>, StepError> {
    for reference in references(at) {
        let found = executor
            .leads
            .lead_opportunity(&at.event.location_id, &reference)
            .await
            .map_err(|e| StepError::Stop(e.into()))?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// Makes the lead's card, or updates the one it has (name, value, owner; its stage and status
/// belong to the follow-ups once it exists): the card's id.
pub(super) async fn upsert(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    fields: &OpportunityFields,
) -> Result<Option<String>, StepError> {
    let (client, event, location) = (executor.client, at.event, at.location());
    let contact = at.contact()?;
    if let Some(card) = known_card(executor, at).await? {
        let update = UpdateOpportunityRequest {
            name: Some(fields.name.clone()),
            monetary_value: fields.monetary_value,
            assigned_to: fields.assigned_to.clone(),
            ..UpdateOpportunityRequest::default()
        };
        let id = card.opportunity_id.as_str();
        let updated = executor.change_existing(event, id, || {
            client.update_opportunity(location, id, &update)
        });
        // Deleted in GHL since: the lead gets a card anew (below).
        if let Some(id) = updated.await? {
            return Ok(Some(id));
        }
    }
    // Resolved from a list fetched earlier: GHL may have renamed or replaced it since.
    let from_cache = executor.pipelines.get(location).is_some();
    let (pipeline, stage_id) = resolve_target(executor, at, fields).await?;
    let pipeline_id = pipeline.id.clone();
    let save =
        |opportunity_id: String| save_card(executor, at, opportunity_id, pipeline_id.clone());
    if at.uncertain {
        let found = executor
            .find(event, || async {
                let cards = client
                    .find_opportunities(location, contact, &pipeline_id)
                    .await?;
                Ok(cards
                    .into_iter()
                    .find(|o| o.name.as_deref() == Some(fields.name.as_str())))
            })
            .await?;
        if let Some(card) = found {
            return save(card.id).await;
        }
    }
    let request = |pipeline_id: &str, stage_id: Option<String>| CreateOpportunityRequest {
        pipeline_id: pipeline_id.to_owned(),
        location_id: location.to_owned(),
        name: fields.name.clone(),
        pipeline_stage_id: stage_id,
        status: fields.status.as_str().to_owned(),
        contact_id: contact.to_owned(),
        monetary_value: fields.monetary_value,
        assigned_to: fields.assigned_to.clone(),
    };
    let first = request(&pipeline_id, stage_id);
    let created = match executor
        .create(event, at.index, at.step, || {
            client.create_opportunity(&first)
        })
        .await
    {
        // GHL refused the ids of a cached list (a stage replaced in GHL since): resolve the
        // names afresh and send once more. The refused create made nothing.
        Err(e) if from_cache && is_refusal(&e) => {
            executor.pipelines.forget(location);
            let (pipeline, stage_id) = resolve_target(executor, at, fields).await?;
            let again = request(&pipeline.id, stage_id);
            let created = executor
                .create(event, at.index, at.step, || {
                    client.create_opportunity(&again)
                })
                .await
                .inspect_err(|e| forget_on_refusal(executor, location, e))?;
            return save_card(executor, at, created.opportunity.id, pipeline.id).await;
        }
        other => other.inspect_err(|e| forget_on_refusal(executor, location, e))?,
    };
    save(created.opportunity.id).await
}

/// The pipeline and stage id a lead's rule names.
async fn resolve_target(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    fields: &OpportunityFields,
) -> Result<(Pipeline, Option<String>), StepError> {
    let pipeline = resolve_pipeline(executor, at, &fields.pipeline, &fields.rule).await?;
    let stage_id = match &fields.stage {
        Some(stage) => Some(resolve_stage(executor, at, &pipeline, stage, &fields.rule).await?),
        None => None,
    };
    Ok((pipeline, stage_id))
}

/// Keeps the lead's card under each of its references: its id.
async fn save_card(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    opportunity_id: String,
    pipeline_id: String,
) -> Result<Option<String>, StepError> {
    let card = LeadOpportunity {
        opportunity_id,
        pipeline_id,
    };
    for reference in references(at) {
        executor
            .leads
            .save_lead_opportunity(&at.event.location_id, &reference, &card)
            .await
            .map_err(|e| StepError::Stop(e.into()))?;
    }
    Ok(Some(card.opportunity_id))
}

/// Moves the lead's card to the follow-up's stage and/or status: its id, or nothing when the
/// lead has no card (its rule did not hold) or it was deleted in GHL.
pub(super) async fn move_lead(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    change: &OpportunityMove,
) -> Result<Option<String>, StepError> {
    let (client, event, location) = (executor.client, at.event, at.location());
    let Some(card) = known_card(executor, at).await? else {
        tracing::info!(
            rule = %change.rule,
            "the lead has no opportunity in GHL (no opportunities rule made one): nothing to move"
        );
        return Ok(None);
    };
    let stage_id = match &change.stage {
        Some(NameOrId::Id(id)) => Some(id.clone()),
        Some(stage) => {
            let pipeline = resolve_pipeline(
                executor,
                at,
                &NameOrId::Id(card.pipeline_id.clone()),
                &change.rule,
            )
            .await?;
            Some(resolve_stage(executor, at, &pipeline, stage, &change.rule).await?)
        }
        None => None,
    };
    let update = UpdateOpportunityRequest {
        pipeline_stage_id: stage_id,
        status: change.status.map(|s| s.as_str().to_owned()),
        ..UpdateOpportunityRequest::default()
    };
    let id = card.opportunity_id.as_str();
    let moved = executor
        .change_existing(event, id, || {
            client.update_opportunity(location, id, &update)
        })
        .await
        .inspect_err(|e| forget_on_refusal(executor, location, e))?;
    if moved.is_none() {
        tracing::info!(rule = %change.rule, "the lead's opportunity is gone from GHL: nothing to move");
    }
    Ok(moved)
}

/// Whether GHL refused the request (400): an id it does not know, among others.
fn is_refusal(error: &StepError) -> bool {
    matches!(
        error,
        StepError::Ghl(GhlError::Rejected { status: 400, .. })
    )
}

/// GHL refused a request naming a pipeline or stage (400): the cached list may be stale.
fn forget_on_refusal(executor: &Executor<'_>, location: &str, error: &StepError) {
    if is_refusal(error) {
        executor.pipelines.forget(location);
    }
}

/// The location's pipelines: cached, else fetched (`fresh` fetches again).
async fn pipelines(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    fresh: bool,
) -> Result<Arc<Vec<Pipeline>>, StepError> {
    let location = at.location();
    if !fresh {
        if let Some(cached) = executor.pipelines.get(location) {
            return Ok(cached);
        }
    }
    let fetched = executor
        .call(at.event, || executor.client.pipelines(location))
        .await?;
    Ok(executor.pipelines.put(location, fetched.pipelines))
}

/// Finds what `pick` picks in the location's pipelines, fetching them again once when the
/// cached list has nothing matching (renamed or added in GHL since).
async fn lookup<T>(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    pick: impl Fn(&[Pipeline]) -> Option<T>,
) -> Result<(Option<T>, Arc<Vec<Pipeline>>), StepError> {
    let cached = executor.pipelines.get(at.location()).is_some();
    let list = pipelines(executor, at, false).await?;
    if let Some(found) = pick(&list) {
        return Ok((Some(found), list));
    }
    if !cached {
        return Ok((None, list));
    }
    let list = pipelines(executor, at, true).await?;
    Ok((pick(&list), list))
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// The pipeline the mapping names (by name or id).
async fn resolve_pipeline(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    pipeline: &NameOrId,
    rule: &str,
) -> Result<Pipeline, StepError> {
    let matches = |p: &Pipeline| match pipeline {
        NameOrId::Name(name) => same_name(&p.name, name),
        NameOrId::Id(id) => p.id == *id,
    };
    let (found, list) = lookup(executor, at, |list| {
        list.iter().find(|p| matches(p)).cloned()
    })
    .await?;
    found.ok_or_else(|| {
        let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
        let key = if matches!(pipeline, NameOrId::Id(_)) && rule.starts_with("follow_ups") {
            // The follow-up's card is in its lead's pipeline.
            format!("the lead's pipeline ({rule})")
        } else {
            config_key(at, rule, "pipeline")
        };
        StepError::Plan(format!(
            "{key}: GHL location {} has no pipeline {pipeline}; its pipelines: {}. Fix the mapping (or the pipeline in GHL), then replay this event",
            at.location(),
            list_or_none(&names),
        ))
    })
}

/// The stage the mapping names (by name or id) in `pipeline`: its id.
async fn resolve_stage(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    pipeline: &Pipeline,
    stage: &NameOrId,
    rule: &str,
) -> Result<String, StepError> {
    let matches = |s: &PipelineStage| match stage {
        NameOrId::Name(name) => same_name(&s.name, name),
        NameOrId::Id(id) => s.id == *id,
    };
    if let Some(found) = pipeline.stages.iter().find(|s| matches(s)) {
        return Ok(found.id.clone());
    }
    let (found, list) = lookup(executor, at, |list| {
        let fresh = list.iter().find(|p| p.id == pipeline.id)?;
        fresh
            .stages
            .iter()
            .find(|s| matches(s))
            .map(|s| s.id.clone())
    })
    .await?;
    found.ok_or_else(|| {
        let stages: Vec<&str> = list
            .iter()
            .find(|p| p.id == pipeline.id)
            .map(|p| p.stages.iter().map(|s| s.name.as_str()).collect())
            .unwrap_or_default();
        StepError::Plan(format!(
            "{}: pipeline \"{}\" in GHL has no stage {stage}; its stages: {}. Fix the mapping (or the stage in GHL), then replay this event",
            config_key(at, rule, "stage"),
            pipeline.name,
            list_or_none(&stages),
        ))
    })
}

/// `sources.<source>.mapping.<rule>.<field>`.
fn config_key(at: &StepAt<'_>, rule: &str, field: &str) -> String {
    format!("sources.{}.mapping.{rule}.{field}", at.event.source)
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}
