//! The Opportunities API (`/opportunities/*`, spec `tests/fixtures/ghl/ghl-opportunities-openapi.json`):
//! its request and answer bodies and one typed method per endpoint formbridge uses.
//!
//! Which look-up guards a create against a lost answer: `GET /opportunities/search` with the
//! contact and pipeline as filters. We do not use `POST /opportunities/upsert`: the spec
//! requires `followers`, `isRemoveAllFollowers` and `followersActionType` on it, says nothing
//! of what it matches on without an `id`, and answers an untyped `opportunity` object; a search
//! followed by a create or an update says exactly what happens.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::client::{encode_query, GhlClient, GhlResponse};
use super::error::GhlError;

/// A pipeline stage in `GET /opportunities/pipelines` (the spec types `stages` as an array of
/// arrays; GHL answers objects with `id`, `name` and `position`, which we read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PipelineStage {
    pub id: String,
    pub name: String,
}

/// A pipeline (`PipelinesResponseSchema`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Pipeline {
    pub id: String,
    pub name: String,
    pub stages: Vec<PipelineStage>,
}

/// `GetPipelinesSuccessfulResponseDto`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelinesResponse {
    pub pipelines: Vec<Pipeline>,
}

/// An opportunity in an answer (`SearchOpportunitiesResponseSchema`), the fields we read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Opportunity {
    pub id: String,
    pub name: Option<String>,
    pub pipeline_id: Option<String>,
    pub pipeline_stage_id: Option<String>,
    pub status: Option<String>,
    pub contact_id: Option<String>,
    pub monetary_value: Option<f64>,
}

/// `GetPostOpportunitySuccessfulResponseDto`: `{opportunity}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpportunityResponse {
    pub opportunity: Opportunity,
}

/// `SearchSuccessfulResponseDto`: `{opportunities, meta}` (meta not read).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpportunitiesResponse {
    pub opportunities: Vec<Opportunity>,
}

/// Body of `POST /opportunities/` (`CreateDto`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOpportunityRequest {
    pub pipeline_id: String,
    pub location_id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_stage_id: Option<String>,
    pub status: String,
    pub contact_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monetary_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
}

/// Body of `PUT /opportunities/:id` (`UpdateOpportunityDto`: every property optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateOpportunityRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_stage_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monetary_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
}

/// Query of `GET /opportunities/search` (its names are snake_case in the spec).
#[derive(Debug, Clone, Serialize)]
struct SearchQuery<'a> {
    location_id: &'a str,
    contact_id: &'a str,
    pipeline_id: &'a str,
}

/// Query of `GET /opportunities/pipelines`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct LocationQuery<'a> {
    location_id: &'a str,
}

impl GhlClient {
    /// `GET /opportunities/pipelines?locationId=`: the location's pipelines and their stages.
    pub async fn pipelines(
        &self,
        location_id: &str,
    ) -> Result<GhlResponse<PipelinesResponse>, GhlError> {
        let p = self.prepare_json::<()>(
            Method::GET,
            "GET /opportunities/pipelines",
            &["opportunities", "pipelines"],
            Some(encode_query(&LocationQuery { location_id })?),
            None,
        )?;
        self.execute(location_id, p).await
    }

    /// `POST /opportunities/`.
    pub async fn create_opportunity(
        &self,
        request: &CreateOpportunityRequest,
    ) -> Result<GhlResponse<OpportunityResponse>, GhlError> {
        let p = self.prepare_json(
            Method::POST,
            "POST /opportunities/",
            &["opportunities", ""],
            None,
            Some(request),
        )?;
        self.execute(&request.location_id, p).await
    }

    /// `PUT /opportunities/:id`.
    pub async fn update_opportunity(
        &self,
        location_id: &str,
        id: &str,
        request: &UpdateOpportunityRequest,
    ) -> Result<GhlResponse<OpportunityResponse>, GhlError> {
        let p = self.prepare_json(
            Method::PUT,
            "PUT /opportunities/:id",
            &["opportunities", id],
            None,
            Some(request),
        )?;
        self.execute(location_id, p).await
    }

    /// The contact's opportunities in a pipeline, via `GET /opportunities/search`.
    pub async fn find_opportunities(
        &self,
        location_id: &str,
        contact_id: &str,
        pipeline_id: &str,
    ) -> Result<Vec<Opportunity>, GhlError> {
        let query = SearchQuery {
            location_id,
            contact_id,
            pipeline_id,
        };
        let p = self.prepare_json::<()>(
            Method::GET,
            "GET /opportunities/search",
            &["opportunities", "search"],
            Some(encode_query(&query)?),
            None,
        )?;
        let found: GhlResponse<OpportunitiesResponse> = self.execute(location_id, p).await?;
        Ok(found.body.opportunities)
    }
}
