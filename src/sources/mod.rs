//! Webhook sources: their names, the tool seam (one [`Tool`] per form or chat tool, listed in
//! the [`registry`]), request authentication, and normalization into a `Submission`.

pub mod auth;
pub mod detect;
pub mod generic;
pub mod jivochat;
pub mod jotform;
pub mod jotform_values;
pub mod normalize;
pub mod ordered;
pub mod presets;
pub mod registry;
pub mod tool;
pub mod typeform;

pub use normalize::{normalize, normalize_parsed, ReadOptions};
pub use registry::{SourceKind, UnknownKind};
pub use tool::{
    CardAppointment, CrmCard, EventRules, NormalizeError, OpenTask, ReadInput, Tool, ToolCall,
};

/// Sources every installation knows (one per tool, named after it), served when configured
/// with a secret.
pub fn built_in_sources() -> impl Iterator<Item = &'static str> {
    SourceKind::all()
        .filter(|kind| !kind.named_after_source())
        .map(SourceKind::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SourceName;

    #[test]
    fn built_in_names_map_to_their_kind() {
        for name in built_in_sources() {
            let kind = SourceKind::default_for(&SourceName::parse(name).unwrap());
            assert_eq!(kind.as_str(), name);
        }
        let names: Vec<&str> = built_in_sources().collect();
        assert!(!names.contains(&"generic"), "{names:?}");
    }
}
