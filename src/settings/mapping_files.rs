//! Mapping files: `<config dir>/mappings/<source>.toml`, each holding one source's whole
//! `[sources.<source>.mapping]` (what the admin playground downloads). At load, each replaces
//! that source's mapping from the other layers, so what the playground compared is what runs.

use std::path::Path;

use super::{Settings, SettingsError};
use crate::mapping::file;

/// The folder of the mapping files inside the config folder.
pub const MAPPINGS_DIR: &str = "mappings";

/// Replaces the mapping of each source that has a file in `<dir>/mappings/` by that file's.
/// A file for a source that is not configured, or one that does not read, refuses the load
/// naming the file and key.
pub(super) fn apply(dir: &Path, settings: &mut Settings) -> Result<(), SettingsError> {
    let folder = dir.join(MAPPINGS_DIR);
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return Ok(()); // no folder: no mapping files
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        let shown = path.display().to_string();
        let Some(source) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            SettingsError::invalid(
                file::mapping_key(&source),
                format!("cannot read {shown}: {e}"),
            )
        })?;
        let Some(configured) = settings.sources.get_mut(&source) else {
            return Err(SettingsError::invalid(
                format!("sources.{source}"),
                format!("{shown} maps a source that is not configured: add [sources.{source}] to the configuration, or rename the file after a configured source"),
            ));
        };
        let mapping = file::parse(&source, &text).map_err(|problems| {
            let first = problems.into_iter().next();
            let (key, message) = first
                .map(|p| (p.key, p.message))
                .unwrap_or_else(|| (file::mapping_key(&source), "does not read".to_owned()));
            SettingsError::invalid(key, format!("{message} (in {shown})"))
        })?;
        configured.mapping = mapping;
    }
    Ok(())
}
