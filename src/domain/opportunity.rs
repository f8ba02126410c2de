//! A lead's GHL opportunity as plain data: its status, where it goes in a pipeline (by name or
//! by id), what a lead writes on it and how a follow-up moves it.

use serde::{Deserialize, Serialize};

/// An opportunity's status in GHL (`CreateDto.status`; the spec's fifth value, `all`, is a
/// search filter, not a status a card can have).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpportunityStatus {
    #[default]
    Open,
    Won,
    Lost,
    Abandoned,
}

impl OpportunityStatus {
    /// The name GHL takes.
    pub fn as_str(self) -> &'static str {
        match self {
            OpportunityStatus::Open => "open",
            OpportunityStatus::Won => "won",
            OpportunityStatus::Lost => "lost",
            OpportunityStatus::Abandoned => "abandoned",
        }
    }
}

/// A pipeline or stage as the mapping names it: by its name in GHL (resolved through
/// `GET /opportunities/pipelines`) or by its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameOrId {
    Name(String),
    Id(String),
}

impl std::fmt::Display for NameOrId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameOrId::Name(name) => write!(f, "\"{name}\""),
            NameOrId::Id(id) => write!(f, "id {id}"),
        }
    }
}

/// What a lead's opportunity step writes: created once per lead in `pipeline` and `stage` with
/// `status`; an edit or a replay updates only `name`, `monetary_value` and `assigned_to` in
/// place (the stage and status then belong to the follow-ups).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpportunityFields {
    /// The mapping key of the rule (`opportunities[0]`), named in dead letters.
    pub rule: String,
    pub pipeline: NameOrId,
    /// `None`: the pipeline's first stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<NameOrId>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monetary_value: Option<f64>,
    #[serde(default)]
    pub status: OpportunityStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
}

/// What a follow-up changes on its lead's opportunity: a stage of the same pipeline, a status,
/// or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpportunityMove {
    /// The mapping key of the rule (`follow_ups[1].opportunity`), named in dead letters.
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<NameOrId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OpportunityStatus>,
}

/// The opportunity a lead made, as the store keeps it per location and reference: its id and
/// the pipeline it is in (a follow-up's stage name is resolved there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadOpportunity {
    pub opportunity_id: String,
    pub pipeline_id: String,
}
