//! Each configured source compiled once, at start: its tool, authentication, GHL location,
//! how its deliveries are read and its compiled mapping — shared by ingress, the preparer and
//! `formbridge map`, so none of them re-reads or re-checks configuration per delivery.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::domain::SourceName;
use crate::mapping::{CompiledMapping, MappingConfigError};
use crate::settings::{parse_net, Settings, SourceSettings};
use crate::sources::auth::Authenticator;
use crate::sources::{ReadOptions, SourceKind};

/// Why a source could not be compiled; names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("sources.{source_name}: {message}")]
    Source {
        source_name: String,
        message: String,
    },
    #[error("sources.{source_name}.{error}")]
    Mapping {
        source_name: String,
        error: MappingConfigError,
    },
}

/// One configured source, ready to serve.
#[derive(Debug)]
pub struct SourceRuntime {
    pub name: SourceName,
    pub kind: SourceKind,
    /// How deliveries are authenticated; `None` when the source is configured but not served
    /// (disabled, or no secret yet).
    pub auth: Option<Authenticator>,
    /// The GHL location its leads go to, when one is configured.
    pub location_id: Option<String>,
    pub mapping: CompiledMapping,
    /// The client networks it accepts deliveries from (`allow_from`); empty: any.
    pub allow_from: Vec<ipnet::IpNet>,
    settings: SourceSettings,
}

impl SourceRuntime {
    /// Compiles one source; `location_id` is the GHL location it routes to.
    pub fn compile(
        name: SourceName,
        settings: &SourceSettings,
        location_id: Option<String>,
    ) -> Result<Self, RuntimeError> {
        let kind = settings.kind_for(&name);
        let auth = if settings.is_enabled() {
            Some(
                settings
                    .authenticator()
                    .map_err(|message| RuntimeError::Source {
                        source_name: name.to_string(),
                        message,
                    })?,
            )
        } else {
            None
        };
        let mapping =
            CompiledMapping::compile(&settings.mapping, &name, kind).map_err(|error| {
                RuntimeError::Mapping {
                    source_name: name.to_string(),
                    error,
                }
            })?;
        let allow_from = settings
            .allow_from
            .iter()
            .map(|entry| parse_net(entry))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| RuntimeError::Source {
                source_name: format!("{name}.allow_from"),
                message,
            })?;
        Ok(Self {
            name,
            kind,
            auth,
            location_id,
            mapping,
            allow_from,
            settings: settings.clone(),
        })
    }

    /// Its mapping as configured (before compiling).
    pub fn mapping_config(&self) -> &crate::mapping::config::MappingConfig {
        &self.settings.mapping
    }

    /// How its deliveries are read.
    pub fn read_options(&self) -> ReadOptions<'_> {
        self.settings.read_options()
    }

    /// Whether its answers carry the agent view (`agent_view`, on by default for tools that
    /// have one).
    pub fn agent_view(&self) -> bool {
        self.settings.agent_view_enabled(&self.name)
    }

    /// The agent view's answer deadline from a delivery's arrival (`agent_view_timeout`).
    pub fn agent_view_timeout(&self) -> std::time::Duration {
        self.settings.agent_view_timeout
    }

    /// Whether the agent view shows `field` of `agent_view_fields` (`other_identity`, `note`).
    pub fn agent_view_shows(&self, field: &str) -> bool {
        self.settings.agent_view_shows(field)
    }

    /// Most agent-view look-ups per minute (`agent_view_per_minute`).
    pub fn agent_view_per_minute(&self) -> u32 {
        self.settings.agent_view_per_minute
    }

    /// The sender's delivery-id field configured for deduplication, if any.
    pub fn dedupe_field(&self) -> Option<&str> {
        self.settings.dedupe_field.as_deref()
    }
}

/// Every configured source by name (cloning shares the compiled sources).
#[derive(Debug, Default, Clone)]
pub struct SourceRuntimes {
    by_name: BTreeMap<String, Arc<SourceRuntime>>,
}

impl SourceRuntimes {
    /// Compiles every source of `settings`.
    pub fn compile(settings: &Settings) -> Result<Self, RuntimeError> {
        let mut by_name = BTreeMap::new();
        for (raw, source) in &settings.sources {
            let name = SourceName::parse(raw).map_err(|e| RuntimeError::Source {
                source_name: raw.clone(),
                message: e.to_string(),
            })?;
            let location_id = match &source.location {
                Some(named) => settings
                    .ghl
                    .locations
                    .get(named)
                    .map(|l| l.location_id.clone()),
                None => settings.ghl.location_id.clone(),
            };
            let runtime = SourceRuntime::compile(name, source, location_id)?;
            by_name.insert(raw.clone(), Arc::new(runtime));
        }
        Ok(Self { by_name })
    }

    /// The source named `name`, served or not.
    pub fn get(&self, name: &str) -> Option<&Arc<SourceRuntime>> {
        self.by_name.get(name)
    }

    /// Every source, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<SourceRuntime>> {
        self.by_name.values()
    }
}
