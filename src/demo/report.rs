//! The demo's report: what each delivery became and what the GHL sandbox holds, checked and
//! rendered for people (or printed as JSON).

use super::*;

/// The whole report, as `--json` prints it.
#[derive(Debug, Serialize)]
pub(super) struct Report {
    /// True when the demo showed everything it should (the exit code is 0).
    pub(super) ok: bool,
    /// What went wrong, when `ok` is false.
    pub(super) problems: Vec<String>,
    pub(super) formbridge_url: String,
    pub(super) ghl_sandbox_url: String,
    pub(super) ghl_location: String,
    pub(super) deliveries: Vec<DeliveryReport>,
    /// Events in the store after all posts.
    pub(super) events_stored: u64,
    pub(super) ghl: GhlReport,
    /// Selected lines of `GET /metrics`.
    pub(super) metrics: Vec<String>,
    /// Notes about what the demo changed in the effective configuration.
    pub(super) config_notes: Vec<String>,
    pub(super) store: StoreReport,
}

#[derive(Debug, Serialize)]
pub(super) struct DeliveryReport {
    pub(super) source: String,
    pub(super) label: String,
    pub(super) fixture: String,
    pub(super) note: String,
    pub(super) expect: Expect,
    pub(super) http_status: u16,
    /// The response body (JSON when it is JSON).
    pub(super) answer: Value,
    /// The stored event this delivery is (new, or the one it duplicates).
    pub(super) event_id: Option<i64>,
    /// Whether this post created a new event.
    pub(super) stored: bool,
    /// Final status of the event (for posts that created one).
    pub(super) status: Option<String>,
    /// Why the event is dead or retrying.
    pub(super) error: Option<String>,
    /// The submitter's email / phone as formbridge understood them (demo placeholders).
    pub(super) email: Option<String>,
    pub(super) phone: Option<String>,
    /// For a follow-up without contact data: the reference of the lead it acted on.
    pub(super) follows: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct GhlReport {
    pub(super) contacts: Vec<ContactReport>,
    pub(super) tasks: Vec<ChildReport>,
    pub(super) notes: Vec<ChildReport>,
    /// API requests the sandbox answered.
    pub(super) api_requests: usize,
}

#[derive(Debug, Serialize)]
pub(super) struct ContactReport {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) email: Option<String>,
    pub(super) phone: Option<String>,
    pub(super) tags: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct ChildReport {
    /// The email (else phone, else id) of the contact it belongs to.
    pub(super) contact: String,
    /// Task title, or the first line of a note.
    pub(super) text: String,
    /// Task due date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) due: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct StoreReport {
    pub(super) url: String,
    pub(super) kept: bool,
    /// The command to inspect the kept store.
    pub(super) inspect: Option<String>,
}

/// The first clause of an error: up to the first `;` (the rest is advice on fixing it).
pub(super) fn short_reason(error: &str) -> String {
    let first = error.lines().next().unwrap_or_default();
    first.split(';').next().unwrap_or(first).trim().to_owned()
}

pub(super) fn check_answer(d: &DeliveryReport) -> Option<String> {
    let what = format!("{} {}", d.source, d.label);
    match d.expect {
        Expect::Stored if d.http_status != 200 => {
            Some(format!("{what}: answered {} instead of 200", d.http_status))
        }
        Expect::Stored if !d.stored => Some(format!("{what}: answered 200 but was not stored")),
        Expect::Duplicate if d.http_status != 200 => Some(format!(
            "{what} (resent): answered {} instead of 200",
            d.http_status
        )),
        Expect::Duplicate if d.stored => Some(format!("{what} (resent): stored twice")),
        Expect::Refused if d.http_status != 401 => Some(format!(
            "{what} with a wrong token: answered {} instead of 401",
            d.http_status
        )),
        Expect::Refused if d.stored => Some(format!("{what} with a wrong token: was stored")),
        _ => None,
    }
}

/// A delivery with an email or phone must end `done`.
pub(super) fn check_outcome(d: &DeliveryReport) -> Option<String> {
    let has_contact = d.email.is_some() || d.phone.is_some();
    let status = d.status.as_deref().unwrap_or("unknown");
    (has_contact && status != "done").then(|| {
        let ended = if status == "dead" {
            "ended"
        } else {
            "is still"
        };
        let reason = d
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        format!(
            "{} {} (event #{}) {ended} {status}{reason}",
            d.source,
            d.label,
            d.event_id.unwrap_or_default(),
        )
    })
}

/// Records created twice in GHL: two contacts with one email or phone, or one formbridge
/// marker on two tasks or notes.
pub(super) fn ghl_duplicates(state: &SandboxState) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for c in &state.contacts {
        for key in ["email", "phone"] {
            if let Some(v) = c.get(key).and_then(Value::as_str) {
                if !seen.insert(format!("{key}:{}", v.to_lowercase())) {
                    problems.push(format!("two GHL contacts share the {key} {v}"));
                }
            }
        }
    }
    let mut markers = BTreeSet::new();
    for record in state.tasks.iter().chain(&state.notes) {
        let body = record
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some((_, marker)) = body.rsplit_once("[formbridge:") {
            if !markers.insert(marker.to_owned()) {
                problems.push(format!("a GHL task or note was created twice ({marker}"));
            }
        }
    }
    problems
}

pub(super) fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub(super) fn ghl_report(state: &SandboxState) -> GhlReport {
    let contacts: Vec<ContactReport> = state
        .contacts
        .iter()
        .map(|c| ContactReport {
            id: text(c, "id").unwrap_or_default(),
            name: [text(c, "firstName"), text(c, "lastName")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
            email: text(c, "email"),
            phone: text(c, "phone"),
            tags: c.get("tags").map_or_else(Vec::new, ghl_sandbox::strings),
        })
        .collect();
    let owner = |v: &Value| {
        let id = text(v, "contactId").unwrap_or_default();
        contacts
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.email.clone().or_else(|| c.phone.clone()))
            .unwrap_or(id)
    };
    let tasks = state
        .tasks
        .iter()
        .map(|t| ChildReport {
            contact: owner(t),
            text: text(t, "title").unwrap_or_default(),
            due: text(t, "dueDate"),
        })
        .collect();
    let notes = state
        .notes
        .iter()
        .map(|n| ChildReport {
            contact: owner(n),
            text: text(n, "body")
                .and_then(|b| b.lines().next().map(str::to_owned))
                .unwrap_or_default(),
            due: None,
        })
        .collect();
    GhlReport {
        api_requests: state.requests.len(),
        contacts,
        tasks,
        notes,
    }
}

/// The human report.
pub(super) fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "formbridge demo — no GHL account needed");
    let _ = writeln!(
        out,
        "  formbridge   {}  (store {})",
        r.formbridge_url, r.store.url
    );
    let _ = writeln!(
        out,
        "  GHL sandbox  {}  (location {})",
        r.ghl_sandbox_url, r.ghl_location
    );
    for note in &r.config_notes {
        let _ = writeln!(out, "  note: {note}");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Deliveries (POST /hooks/{{source}}?token=…, bodies as the tools send them)"
    );
    for (i, d) in r.deliveries.iter().enumerate() {
        let what = if d.note.is_empty() {
            d.label.clone()
        } else {
            format!("{}, {}", d.label, d.note)
        };
        let answer = match (d.expect, d.stored, d.event_id) {
            (_, true, Some(id)) => format!("{} stored #{id}", d.http_status),
            (_, false, Some(id)) if d.http_status == 200 => {
                format!("{} duplicate of #{id}, not stored again", d.http_status)
            }
            (_, false, _) if d.http_status == 200 => {
                format!("{} duplicate, not stored again", d.http_status)
            }
            _ => format!("{} refused, nothing stored", d.http_status),
        };
        let outcome = match d.status.as_deref() {
            None => String::new(),
            Some("done") => {
                let who = match (&d.email, &d.phone, &d.follows) {
                    (Some(email), _, _) => email.clone(),
                    (None, Some(phone), _) => phone.clone(),
                    (None, None, Some(lead)) => format!("follow-up: the lead with {lead}"),
                    (None, None, None) => "no contact".to_owned(),
                };
                format!(" → done ({who})")
            }
            Some(status) => format!(
                " → {status}: {}",
                d.error.as_deref().unwrap_or("no reason recorded")
            ),
        };
        let _ = writeln!(
            out,
            "  {:>2}. {:<15}{:<52}{answer}{outcome}",
            i + 1,
            d.source,
            what
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "GHL sandbox now holds ({} API requests answered)",
        r.ghl.api_requests
    );
    let _ = writeln!(out, "  Contacts ({})", r.ghl.contacts.len());
    for c in &r.ghl.contacts {
        let _ = writeln!(
            out,
            "    {:<16}{:<28}{:<15}tags: {}",
            c.name,
            c.email.as_deref().unwrap_or("-"),
            c.phone.as_deref().unwrap_or("-"),
            c.tags.join(", ")
        );
    }
    let _ = writeln!(out, "  Tasks ({})", r.ghl.tasks.len());
    for t in &r.ghl.tasks {
        let _ = writeln!(
            out,
            "    {:<28}{}  (due {})",
            t.contact,
            t.text,
            t.due.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(out, "  Notes ({})", r.ghl.notes.len());
    for n in &r.ghl.notes {
        let _ = writeln!(out, "    {:<28}{}", n.contact, n.text);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Metrics (GET /metrics, excerpt)");
    for m in &r.metrics {
        let _ = writeln!(out, "  {m}");
    }
    let _ = writeln!(out);
    if r.ok {
        let done = r
            .deliveries
            .iter()
            .filter(|d| d.status.as_deref() == Some("done"))
            .count();
        let dead = r
            .deliveries
            .iter()
            .filter(|d| d.status.as_deref() == Some("dead"))
            .count();
        let _ = writeln!(
            out,
            "OK: {} deliveries stored once each; {done} done in GHL, {dead} dead-lettered for lack of an email or phone (replayable after a mapping fix); the resend was acknowledged, not stored twice; the wrong token got 401.",
            r.events_stored
        );
    } else {
        let _ = writeln!(out, "FAILED:");
        for p in &r.problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    match &r.store.inspect {
        Some(cmd) => {
            let _ = writeln!(out, "The store was kept. Inspect it with:\n  {cmd}");
        }
        None => {
            let _ = writeln!(
                out,
                "The temporary store was removed; run `formbridge demo --keep <dir>` to keep it for `formbridge events list`."
            );
        }
    }
    out
}
