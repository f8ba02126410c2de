//! A comparison as text for people (`formbridge map --compare`).

use std::fmt::Write as _;

use serde_json::Value;

use super::compare::{Comparison, Outcome, Verdict};
use super::plan_diff::Change;

/// The comparison as lines of text: the candidate's problems, then each delivery that differs,
/// then a summary.
pub fn to_text(comparison: &Comparison) -> String {
    let mut out = String::new();
    let source = &comparison.source;
    if comparison.problems.is_empty() {
        let _ = writeln!(out, "candidate mapping for `{source}`: configuration OK");
    } else {
        let _ = writeln!(
            out,
            "candidate mapping for `{source}`: {} configuration problem(s)",
            comparison.problems.len()
        );
        for problem in &comparison.problems {
            let _ = writeln!(out, "  {problem}");
        }
    }
    for d in &comparison.deliveries {
        if d.verdict == Verdict::Same {
            continue;
        }
        let verdict = match d.verdict {
            Verdict::Same => "same",
            Verdict::Changed => "changed",
            Verdict::Fixes => "FIXED by the candidate",
            Verdict::Breaks => "BROKEN by the candidate",
            Verdict::StillFails => "fails under both",
            Verdict::NotCompared => "not compared",
        };
        let _ = writeln!(out, "\nevent {} ({}): {verdict}", d.event_id, d.status);
        if let Outcome::Error(e) = &d.running {
            let _ = writeln!(out, "  running:   {e}");
        }
        if let Some(Outcome::Error(e)) = &d.candidate {
            let _ = writeln!(out, "  candidate: {e}");
        }
        for diff in &d.differences {
            let mark = match diff.change {
                Change::Added => '+',
                Change::Removed => '-',
                Change::Changed => '~',
            };
            let _ = writeln!(
                out,
                "  {mark} {}: {} -> {}",
                diff.path,
                shown(diff.running.as_ref()),
                shown(diff.candidate.as_ref())
            );
        }
    }
    let c = &comparison.counts;
    let _ = writeln!(
        out,
        "\n{} deliveries: {} same, {} changed, {} fixed, {} broken, {} failing under both",
        comparison.deliveries.len(),
        c.same,
        c.changed,
        c.fixes,
        c.breaks,
        c.still_fails
    );
    if !comparison.would_fix.is_empty() {
        let ids: Vec<String> = comparison
            .would_fix
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(
            out,
            "dead letters a replay would fix once deployed: {} (formbridge events replay {})",
            ids.join(", "),
            ids.join(" ")
        );
    }
    out
}

/// A value on one line, at most 120 characters.
fn shown(value: Option<&Value>) -> String {
    let text = match value {
        None => return "(none)".to_owned(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    };
    if text.chars().count() > 120 {
        let cut: String = text.chars().take(119).collect();
        format!("{cut}…")
    } else {
        text
    }
}
