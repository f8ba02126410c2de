//! `[[mapping.files]]`: which file answers become `upload_file` steps, into which GHL file
//! custom field, and from which hosts they may be downloaded.

use super::config::MappingConfig;
use super::error::MappingConfigError;
use crate::domain::plan::Step;
use crate::sources::SourceKind;
use crate::submission::{AnswerValue, Submission};

/// The file rules, checked.
#[derive(Debug, Clone, Default)]
pub(super) struct CompiledFiles {
    rules: Vec<FileTarget>,
    /// The tool's file hosts and `mapping.file_hosts`, lower-cased.
    hosts: Vec<String>,
}

/// One `[[mapping.files]]` rule.
#[derive(Debug, Clone)]
struct FileTarget {
    custom_field_id: String,
    /// `None`: every file-upload answer.
    answer: Option<String>,
}

impl CompiledFiles {
    /// Checks `mapping.files` and `mapping.file_hosts`.
    pub(super) fn compile(
        config: &MappingConfig,
        kind: SourceKind,
    ) -> Result<Self, MappingConfigError> {
        let mut rules = Vec::new();
        for (i, rule) in config.files.iter().enumerate() {
            let id = rule.custom_field_id.trim();
            if id.is_empty() || id.contains(|c: char| c.is_whitespace() || c == '/') {
                return Err(MappingConfigError::new(
                    format!("files[{i}].custom_field_id"),
                    "must be the id of a GHL custom field of type File Upload (no spaces or `/`)",
                ));
            }
            if rule.answer.as_deref().is_some_and(|a| a.trim().is_empty()) {
                return Err(MappingConfigError::new(
                    format!("files[{i}].answer"),
                    "is empty; leave it out to take every file-upload answer",
                ));
            }
            rules.push(FileTarget {
                custom_field_id: id.to_owned(),
                answer: rule.answer.clone(),
            });
        }
        let mut hosts: Vec<String> = kind.file_hosts().iter().map(|h| (*h).to_owned()).collect();
        for (i, host) in config.file_hosts.iter().enumerate() {
            let host = host.trim().to_ascii_lowercase();
            let valid = !host.is_empty()
                && !host.contains(['/', ':', '@', ' '])
                && url::Host::parse(&host).is_ok();
            if !valid {
                return Err(MappingConfigError::new(
                    format!("file_hosts[{i}]"),
                    "must be a host name alone, like `forms.example.com` (no scheme, port or path)",
                ));
            }
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        Ok(Self { rules, hosts })
    }

    /// One `upload_file` step per link of each rule's answers, in rule order; a link is taken
    /// once per custom field.
    pub(super) fn steps(&self, submission: &Submission) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut seen: Vec<(String, String)> = Vec::new();
        for rule in &self.rules {
            for url in links(rule, submission) {
                let pair = (rule.custom_field_id.clone(), url);
                if seen.contains(&pair) {
                    continue;
                }
                steps.push(Step::UploadFile {
                    url: pair.1.clone(),
                    custom_field_id: pair.0.clone(),
                    hosts: self.hosts.clone(),
                });
                seen.push(pair);
            }
        }
        steps
    }
}

/// The links a rule takes: its answer's, or every file-upload answer's.
fn links(rule: &FileTarget, submission: &Submission) -> Vec<String> {
    let values: Vec<&AnswerValue> = match &rule.answer {
        Some(selector) => submission
            .answer(selector)
            .map(|a| &a.value)
            .into_iter()
            .collect(),
        None => submission
            .answers
            .iter()
            .map(|a| &a.value)
            .filter(|v| matches!(v, AnswerValue::Files(_)))
            .collect(),
    };
    values
        .into_iter()
        .flat_map(|v| v.items())
        .flat_map(|item| {
            item.split_whitespace()
                .map(|w| w.trim_matches([',', ';']).to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|link| {
            let lower = link.to_ascii_lowercase();
            lower.starts_with("https://") || lower.starts_with("http://")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::config::FileRule;

    fn compile(config: MappingConfig) -> Result<CompiledFiles, MappingConfigError> {
        CompiledFiles::compile(&config, SourceKind::parse("jotform").unwrap())
    }

    #[test]
    fn every_upload_link_becomes_one_step_and_a_named_answer_gives_its_links() {
        use crate::submission::Answer;
        let mut sub = Submission::new(time::OffsetDateTime::UNIX_EPOCH);
        let answer = |key: &str, value: AnswerValue| Answer {
            key: key.to_owned(),
            label: key.to_owned(),
            value,
        };
        sub.answers = vec![
            answer(
                "filesRelated",
                AnswerValue::Files(vec![
                    "https://www.jotform.com/uploads/u/1/2/a.png".to_owned(),
                    "https://www.jotform.com/uploads/u/1/2/b.pdf".to_owned(),
                    "c.png#jotformfs-x#uuid".to_owned(),
                ]),
            ),
            answer(
                "q5_links",
                AnswerValue::Text(
                    "see https://files.example.com/x.pdf, and https://www.jotform.com/uploads/u/1/2/a.png".to_owned(),
                ),
            ),
        ];
        let files = compile(MappingConfig {
            files: vec![
                FileRule {
                    custom_field_id: "f1".to_owned(),
                    answer: None,
                },
                FileRule {
                    custom_field_id: "f1".to_owned(),
                    answer: Some("q5_links".to_owned()),
                },
            ],
            ..MappingConfig::default()
        })
        .unwrap();
        let urls: Vec<String> = files
            .steps(&sub)
            .into_iter()
            .map(|s| match s {
                Step::UploadFile {
                    url,
                    custom_field_id,
                    hosts,
                } => {
                    assert_eq!(custom_field_id, "f1");
                    assert!(hosts.contains(&"www.jotform.com".to_owned()));
                    url
                }
                other => panic!("not an upload: {other:?}"),
            })
            .collect();
        // The name-only item is no link; a.png, in both answers, goes into f1 once.
        assert_eq!(
            urls,
            [
                "https://www.jotform.com/uploads/u/1/2/a.png",
                "https://www.jotform.com/uploads/u/1/2/b.pdf",
                "https://files.example.com/x.pdf",
            ]
        );
    }

    #[test]
    fn rules_name_a_field_id_and_hosts_are_bare_host_names() {
        let rule = |id: &str, answer: Option<&str>| FileRule {
            custom_field_id: id.to_owned(),
            answer: answer.map(str::to_owned),
        };
        let e = compile(MappingConfig {
            files: vec![rule(" ", None)],
            ..MappingConfig::default()
        })
        .unwrap_err();
        assert_eq!(e.key, "files[0].custom_field_id");
        let e = compile(MappingConfig {
            files: vec![rule("abc", Some(""))],
            ..MappingConfig::default()
        })
        .unwrap_err();
        assert_eq!(e.key, "files[0].answer");
        for bad in [
            "https://x.example.com",
            "x.example.com:8443",
            "x.example.com/a",
            "",
        ] {
            let e = compile(MappingConfig {
                file_hosts: vec![bad.to_owned()],
                ..MappingConfig::default()
            })
            .unwrap_err();
            assert_eq!(e.key, "file_hosts[0]", "{bad}");
        }
        let ok = compile(MappingConfig {
            files: vec![rule("abc", None)],
            file_hosts: vec!["Forms.Example.com".to_owned()],
            ..MappingConfig::default()
        })
        .unwrap();
        assert!(ok.hosts.contains(&"www.jotform.com".to_owned()));
        assert!(ok.hosts.contains(&"forms.example.com".to_owned()));
    }
}
