//! Sandbox handlers for the Opportunities API (spec `ghl-opportunities-openapi.json`):
//! `GET /opportunities/pipelines`, `POST /opportunities/`, `GET|PUT /opportunities/{id}`,
//! `PUT /opportunities/{id}/status` and `GET /opportunities/search`, plus the pipelines each
//! location has (seeded with `POST /_sandbox/pipelines`, else [`default_pipelines`]).
//!
//! Behaviour chosen where the spec is silent (said here so tests can rely on it):
//! - unknown opportunity ids answer 400 `Opportunity with id X not found`, like the contact
//!   routes' unknown ids (GHL's exact text is not recorded);
//! - a `pipelineId` the location has no pipeline of, or a `pipelineStageId` that is not a stage
//!   of the pipeline, answers 400 naming it; without `pipelineStageId` a new card goes to the
//!   pipeline's first stage;
//! - a second open card for the same contact in the same pipeline answers 400 `Can not create
//!   duplicate opportunity for the contact.` (GHL's default, "allow duplicate opportunities"
//!   off);
//! - search filters on `contact_id`, `pipeline_id`, `pipeline_stage_id`, `status` and `q` (in
//!   the name), other parameters are accepted and ignored; results are oldest first, with
//!   `meta.total`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::gate::Caller;
use super::validate::Dto;
use super::world::{
    checked_body, error, forbidden_location, new_id, now_iso, reply, unprocessable, Record,
    Sandbox, World,
};

/// A pipeline stage as seeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSeed {
    /// Default: a new id.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
}

/// A pipeline as seeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSeed {
    /// Default: a new id.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    pub stages: Vec<StageSeed>,
}

/// Body of `POST /_sandbox/pipelines`: the location's pipelines, replacing its current ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelinesSeed {
    pub location_id: String,
    pub pipelines: Vec<PipelineSeed>,
}

/// The pipeline every location has until seeded: "Sales Pipeline", id `sbxSalesPipeline0001`,
/// with the stages of a contractor's deal.
pub fn default_pipelines() -> Vec<PipelineSeed> {
    let stages = [
        "New Lead",
        "Proposal Sent",
        "Accepted",
        "Scheduled",
        "Completed",
    ];
    vec![PipelineSeed {
        id: Some("sbxSalesPipeline0001".to_owned()),
        name: "Sales Pipeline".to_owned(),
        stages: stages
            .iter()
            .enumerate()
            .map(|(i, name)| StageSeed {
                id: Some(format!("sbx-stage-{}", i + 1)),
                name: (*name).to_owned(),
            })
            .collect(),
    }]
}

/// A seeded pipeline in GHL's shape (`PipelinesResponseSchema`; stages as GHL answers them).
fn pipeline_view(location: &str, seed: &PipelineSeed) -> Value {
    let stages: Vec<Value> = seed
        .stages
        .iter()
        .enumerate()
        .map(|(position, s)| {
            json!({"id": s.id.clone().unwrap_or_else(new_id), "name": s.name,
                   "position": position, "showInFunnel": true, "showInPieChart": true})
        })
        .collect();
    json!({"id": seed.id.clone().unwrap_or_else(new_id), "name": seed.name, "stages": stages,
           "showInFunnel": true, "showInPieChart": true, "locationId": location})
}

/// The location's pipelines, made from the default on first use.
fn pipelines_of<'w>(world: &'w mut World, location: &str) -> &'w Vec<Value> {
    world
        .pipelines
        .entry(location.to_owned())
        .or_insert_with(|| {
            default_pipelines()
                .iter()
                .map(|p| pipeline_view(location, p))
                .collect()
        })
}

impl Sandbox {
    /// Replaces a location's pipelines (what `POST /_sandbox/pipelines` does).
    pub fn seed_pipelines(&self, seed: &PipelinesSeed) -> Vec<Value> {
        let views: Vec<Value> = seed
            .pipelines
            .iter()
            .map(|p| pipeline_view(&seed.location_id, p))
            .collect();
        self.world()
            .pipelines
            .insert(seed.location_id.clone(), views.clone());
        views
    }
}

/// `POST /_sandbox/pipelines`.
pub(crate) async fn seed(State(sb): State<Sandbox>, Json(seed): Json<PipelinesSeed>) -> Response {
    let pipelines = sb.seed_pipelines(&seed);
    reply(StatusCode::OK, json!({ "pipelines": pipelines }))
}

type Ctx = (State<Sandbox>, Extension<Caller>);

fn str_of<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

/// A query's location parameter (`name`), which the caller must be allowed to use.
fn query_location(
    caller: &Caller,
    q: &HashMap<String, String>,
    name: &str,
) -> Result<String, Response> {
    match q.get(name).filter(|l| !l.is_empty()) {
        None => Err(unprocessable(vec![format!("{name} should not be empty")])),
        Some(l) if caller.may_use(l) => Ok(l.clone()),
        Some(_) => Err(forbidden_location()),
    }
}

/// `GET /opportunities/pipelines?locationId=`.
pub(crate) async fn pipelines(
    (State(sb), Extension(caller)): Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let location = match query_location(&caller, &q, "locationId") {
        Ok(l) => l,
        Err(r) => return r,
    };
    let mut world = sb.world();
    let pipelines = pipelines_of(&mut world, &location).clone();
    reply(StatusCode::OK, json!({ "pipelines": pipelines }))
}

fn not_found(id: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        format!("Opportunity with id {id} not found"),
    )
}

/// The stored card `id`, if the caller may see it.
fn card_mut<'w>(
    world: &'w mut World,
    caller: &Caller,
    id: &str,
) -> Result<&'w mut Record, Response> {
    match world.opportunities.get_mut(id) {
        Some(r) if caller.may_use(str_of(&r.data, "locationId").unwrap_or_default()) => Ok(r),
        _ => Err(not_found(id)),
    }
}

/// Checks `pipelineId` and `pipelineStageId` against the location's pipelines: the stage to
/// store (the first stage when none is given and `default_stage`).
fn check_stage(
    world: &mut World,
    location: &str,
    pipeline_id: &str,
    stage_id: Option<&str>,
) -> Result<Option<String>, Response> {
    let pipelines = pipelines_of(world, location);
    let Some(pipeline) = pipelines
        .iter()
        .find(|p| p.get("id").and_then(Value::as_str) == Some(pipeline_id))
    else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("pipelineId {pipeline_id} is not a pipeline of this location"),
        ));
    };
    let stages = pipeline
        .get("stages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let stage_ids: Vec<&str> = stages
        .iter()
        .filter_map(|s| s.get("id").and_then(Value::as_str))
        .collect();
    match stage_id {
        Some(id) if stage_ids.contains(&id) => Ok(Some(id.to_owned())),
        Some(id) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("pipelineStageId {id} is not a stage of pipeline {pipeline_id}"),
        )),
        None => Ok(stage_ids.first().map(|s| (*s).to_owned())),
    }
}

/// `POST /opportunities/`.
pub(crate) async fn create((State(sb), Extension(caller)): Ctx, body: Bytes) -> Response {
    let body = match checked_body(Dto::CreateOpportunity, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let location = str_of(&body, "locationId").unwrap_or_default().to_owned();
    if !caller.may_use(&location) {
        return forbidden_location();
    }
    let contact_id = str_of(&body, "contactId").unwrap_or_default().to_owned();
    let pipeline_id = str_of(&body, "pipelineId").unwrap_or_default().to_owned();
    let mut world = sb.world();
    let contact_here = world
        .contacts
        .get(&contact_id)
        .is_some_and(|c| str_of(&c.data, "locationId") == Some(location.as_str()));
    if !contact_here {
        return error(
            StatusCode::BAD_REQUEST,
            format!("Contact with id {contact_id} not found"),
        );
    }
    let stage = match check_stage(
        &mut world,
        &location,
        &pipeline_id,
        str_of(&body, "pipelineStageId"),
    ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let duplicate = world.opportunities.values().any(|o| {
        str_of(&o.data, "contactId") == Some(contact_id.as_str())
            && str_of(&o.data, "pipelineId") == Some(pipeline_id.as_str())
            && str_of(&o.data, "status") == Some("open")
    });
    if duplicate {
        return error(
            StatusCode::BAD_REQUEST,
            "Can not create duplicate opportunity for the contact.",
        );
    }
    let id = new_id();
    let now = now_iso();
    let mut data = body;
    data.insert("id".into(), json!(id));
    data.insert("pipelineStageId".into(), json!(stage));
    for key in [
        "createdAt",
        "updatedAt",
        "lastStatusChangeAt",
        "lastStageChangeAt",
    ] {
        data.insert(key.into(), json!(now));
    }
    data.entry("monetaryValue").or_insert(json!(0));
    data.insert("source".into(), json!(""));
    let view = Value::Object(data.clone());
    let seq = world.next_seq();
    world.opportunities.insert(id, Record { seq, data });
    reply(StatusCode::CREATED, json!({ "opportunity": view }))
}

/// `GET /opportunities/{id}`.
pub(crate) async fn get_one(
    (State(sb), Extension(caller)): Ctx,
    Path(id): Path<String>,
) -> Response {
    let mut world = sb.world();
    match card_mut(&mut world, &caller, &id) {
        Ok(card) => reply(
            StatusCode::OK,
            json!({ "opportunity": Value::Object(card.data.clone()) }),
        ),
        Err(r) => r,
    }
}

/// Applies an `UpdateOpportunityDto` or `UpdateStatusDto` body to the card `id`.
fn apply(
    sb: &Sandbox,
    caller: &Caller,
    id: &str,
    body: Map<String, Value>,
) -> Result<Value, Response> {
    let mut world = sb.world();
    let card = card_mut(&mut world, caller, id)?.data.clone();
    let location = str_of(&card, "locationId").unwrap_or_default().to_owned();
    let pipeline_id = str_of(&body, "pipelineId")
        .or_else(|| str_of(&card, "pipelineId"))
        .unwrap_or_default()
        .to_owned();
    let moves_stage = body.contains_key("pipelineStageId") || body.contains_key("pipelineId");
    if moves_stage {
        let stage = str_of(&body, "pipelineStageId").or_else(|| str_of(&card, "pipelineStageId"));
        check_stage(&mut world, &location, &pipeline_id, stage)?;
    }
    let now = now_iso();
    let card = card_mut(&mut world, caller, id)?;
    if body
        .get("status")
        .is_some_and(|s| Some(s) != card.data.get("status"))
    {
        card.data.insert("lastStatusChangeAt".into(), json!(now));
    }
    if body
        .get("pipelineStageId")
        .is_some_and(|s| Some(s) != card.data.get("pipelineStageId"))
    {
        card.data.insert("lastStageChangeAt".into(), json!(now));
    }
    for (k, v) in body {
        card.data.insert(k, v);
    }
    card.data.insert("updatedAt".into(), json!(now));
    Ok(Value::Object(card.data.clone()))
}

/// `PUT /opportunities/{id}`.
pub(crate) async fn update(
    (State(sb), Extension(caller)): Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match checked_body(Dto::UpdateOpportunity, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match apply(&sb, &caller, &id, body) {
        Ok(view) => reply(StatusCode::OK, json!({ "opportunity": view })),
        Err(r) => r,
    }
}

/// `PUT /opportunities/{id}/status`.
pub(crate) async fn update_status(
    (State(sb), Extension(caller)): Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match checked_body(Dto::OpportunityStatus, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match apply(&sb, &caller, &id, body) {
        Ok(_) => reply(StatusCode::OK, json!({ "succeded": true })),
        Err(r) => r,
    }
}

/// `GET /opportunities/search?location_id=&contact_id=&pipeline_id=&…`.
pub(crate) async fn search(
    (State(sb), Extension(caller)): Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let location = match query_location(&caller, &q, "location_id") {
        Ok(l) => l,
        Err(r) => return r,
    };
    let filter = |name: &str| q.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let world = sb.world();
    let found: Vec<Value> = World::sorted(&world.opportunities)
        .into_iter()
        .filter(|o| str_of(&o.data, "locationId") == Some(location.as_str()))
        .filter(|o| {
            [
                ("contact_id", "contactId"),
                ("pipeline_id", "pipelineId"),
                ("pipeline_stage_id", "pipelineStageId"),
                ("status", "status"),
            ]
            .iter()
            .all(|(param, field)| {
                filter(param).is_none_or(|v| {
                    v == "all" && *param == "status" || str_of(&o.data, field) == Some(v)
                })
            })
        })
        .filter(|o| {
            filter("q").is_none_or(|text| {
                str_of(&o.data, "name")
                    .is_some_and(|n| n.to_lowercase().contains(&text.to_lowercase()))
            })
        })
        .map(|o| Value::Object(o.data.clone()))
        .collect();
    let total = found.len();
    reply(
        StatusCode::OK,
        json!({"opportunities": found,
               "meta": {"total": total, "currentPage": 1, "nextPage": null, "prevPage": null},
               "aggregations": {}}),
    )
}
