//! The [`CrmCard`] of a GHL contact: its link in the GHL app, its name, email and phone, its tags,
//! its open tasks with due dates, its next appointment and its latest note, cleaned of formbridge's own markers; and
//! the part of it a source shows its agent ([`for_agent`]).

use std::sync::OnceLock;

use regex::Regex;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::ghl::types::{Appointment, Contact, Note, Task};
use crate::sources::{CrmCard, OpenTask};

/// Open tasks listed on a card; the rest are counted.
pub const MAX_OPEN_TASKS: usize = 5;

/// Longest note shown, in characters (a chat side panel, not a document).
pub const MAX_NOTE_CHARS: usize = 500;

/// What one look-up found in GHL: the contact, and its tasks and notes when they could be read.
pub struct Found<'a> {
    pub contact: &'a Contact,
    pub tasks: Option<&'a [Task]>,
    pub notes: Option<&'a [Note]>,
    /// Its appointments, when they could be read.
    pub appointments: Option<&'a [Appointment]>,
}

/// The card of `found` in `location_id`, linking to the contact under `app_url`.
pub fn card(app_url: &url::Url, location_id: &str, found: &Found<'_>) -> CrmCard {
    let contact = found.contact;
    let joined = [contact.first_name.as_deref(), contact.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let name = non_empty(contact.name.as_deref()).or_else(|| non_empty(Some(&joined)));
    let mut open: Vec<OpenTask> = found
        .tasks
        .unwrap_or_default()
        .iter()
        .filter(|t| t.completed != Some(true))
        .map(|t| OpenTask {
            title: non_empty(t.title.as_deref())
                .map(|t| strip_markers(&t))
                .unwrap_or_else(|| "(untitled)".to_owned()),
            due: t.due_date.as_deref().and_then(parse_time),
        })
        .collect();
    // Soonest due first; tasks without a due date last.
    open.sort_by_key(|t| (t.due.is_none(), t.due));
    let more_open_tasks = open.len().saturating_sub(MAX_OPEN_TASKS);
    open.truncate(MAX_OPEN_TASKS);
    CrmCard {
        link: contact_link(app_url, location_id, &contact.id),
        name,
        email: non_empty(contact.email.as_deref()),
        phone: non_empty(contact.phone.as_deref()),
        tags: contact
            .tags
            .iter()
            .filter(|t| !is_marker_tag(t))
            .cloned()
            .collect(),
        open_tasks: open,
        more_open_tasks,
        latest_note: found.notes.and_then(latest_note),
        next_appointment: found
            .appointments
            .and_then(|list| super::appointment::next(list, OffsetDateTime::now_utc())),
    }
}

/// What the visitor was looked up by: the one identity field the sender already knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookedUpBy {
    Email,
    Phone,
}

/// What a card shows beyond name, link, tags and open tasks (`agent_view_fields`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extras {
    /// The phone when looked up by email, the email when looked up by phone.
    pub other_identity: bool,
    /// The latest note's text.
    pub note: bool,
}

/// `card` as the agent (and so anyone holding the webhook URL) may see it: the identity field
/// it was looked up by, and the other one and the note only when `extras` says so.
pub fn for_agent(card: &CrmCard, by: LookedUpBy, extras: Extras) -> CrmCard {
    let mut shown = card.clone();
    if !extras.other_identity {
        match by {
            LookedUpBy::Email => shown.phone = None,
            LookedUpBy::Phone => shown.email = None,
        }
    }
    if !extras.note {
        shown.latest_note = None;
    }
    shown
}

/// The contact's page in the GHL app: `{app_url}/v2/location/{locationId}/contacts/detail/
/// {contactId}`, the standard app URL's contact page (`ghl.app_url` is
/// `https://app.gohighlevel.com` unless an agency's white-label domain is set).
pub fn contact_link(app_url: &url::Url, location_id: &str, contact_id: &str) -> String {
    let mut url = app_url.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        // Each id is one percent-encoded segment: an id can never change the route.
        path.pop_if_empty().extend([
            "v2",
            "location",
            location_id,
            "contacts",
            "detail",
            contact_id,
        ]);
    }
    url.to_string()
}

/// The newest note (by `dateAdded`; of equal dates, the one listed last), without markers and
/// shortened to [`MAX_NOTE_CHARS`]; `None` when there is no note with text.
fn latest_note(notes: &[Note]) -> Option<String> {
    let newest = notes
        .iter()
        .filter_map(|n| {
            let text = n.body_text.as_deref().or(n.body.as_deref())?;
            let text = strip_markers(text);
            (!text.is_empty()).then(|| (n.date_added.as_deref().and_then(parse_time), text))
        })
        .max_by_key(|(at, _)| *at)?;
    Some(shorten(&newest.1, MAX_NOTE_CHARS))
}

/// `text` without formbridge's idempotency markers (`[formbridge:<event>:<step>]`, written by
/// the dispatcher on each task and note it creates, and `[formbridge:call:<key>:<record>]` on a phone
/// call's task and note), trimmed.
pub fn strip_markers(text: &str) -> String {
    static MARKER: OnceLock<Option<Regex>> = OnceLock::new();
    let marker = MARKER
        .get_or_init(|| Regex::new(r"\s*\[formbridge:(\d+:\d+|call:[A-Za-z0-9:._-]+)\]").ok());
    match marker {
        Some(re) => re.replace_all(text, "").trim().to_owned(),
        None => text.trim().to_owned(),
    }
}

/// A marker tag (`formbridge:<event>:<step>`) the dispatcher puts on a contact created by name.
fn is_marker_tag(tag: &str) -> bool {
    tag.strip_prefix("formbridge:")
        .and_then(|rest| rest.split_once(':'))
        .is_some_and(|(event, step)| {
            [event, step]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// At most `max` characters of `text`, cut at a word boundary when one is near, with `…`.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    let at_word = match cut.rfind(char::is_whitespace) {
        Some(i) if i >= cut.len() * 3 / 4 => &cut[..i],
        _ => &cut,
    };
    format!("{}…", at_word.trim_end())
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

fn non_empty(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::EventId;
    use crate::ghl_access::marker::{marker, marker_tag};

    fn task(title: &str, due: Option<&str>, completed: bool) -> Task {
        Task {
            title: Some(title.to_owned()),
            due_date: due.map(str::to_owned),
            completed: Some(completed),
            ..Task::default()
        }
    }

    fn note(body: &str, at: &str) -> Note {
        Note {
            body: Some(body.to_owned()),
            date_added: Some(at.to_owned()),
            ..Note::default()
        }
    }

    #[test]
    fn the_card_shows_open_tasks_by_due_date_and_the_newest_note_without_markers() {
        let contact = Contact {
            id: "c1".into(),
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            email: Some("ada@example.com".into()),
            tags: vec!["vip".into(), marker_tag(EventId(12), 0)],
            ..Contact::default()
        };
        let tasks = [
            task("Later", Some("2025-06-01T10:00:00.000Z"), false),
            task("Done", Some("2025-04-01T10:00:00.000Z"), true),
            task("Whenever", None, false),
            task(
                &format!("Sooner {}", marker(EventId(3), 2)),
                Some("2025-05-01T10:00:00.000Z"),
                false,
            ),
        ];
        let notes = [
            note(
                &format!("Old\n\n{}", marker(EventId(1), 3)),
                "2025-01-01T00:00:00.000Z",
            ),
            note(
                &format!("New note\n\n{}", marker(EventId(2), 3)),
                "2025-02-01T00:00:00.000Z",
            ),
            note("Older", "2024-01-01T00:00:00.000Z"),
        ];
        let app = url::Url::parse("https://app.gohighlevel.com").unwrap();
        let card = card(
            &app,
            "loc 1",
            &Found {
                contact: &contact,
                tasks: Some(&tasks),
                notes: Some(&notes),
                appointments: None,
            },
        );
        assert_eq!(
            card.link,
            "https://app.gohighlevel.com/v2/location/loc%201/contacts/detail/c1"
        );
        assert_eq!(card.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(card.tags, vec!["vip".to_owned()]);
        let titles: Vec<&str> = card.open_tasks.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(titles, ["Sooner", "Later", "Whenever"]);
        assert_eq!(
            card.open_tasks[0].due,
            Some(time::macros::datetime!(2025-05-01 10:00 UTC))
        );
        assert_eq!(card.more_open_tasks, 0);
        assert_eq!(card.latest_note.as_deref(), Some("New note"));
    }

    #[test]
    fn long_lists_and_notes_are_kept_short() {
        let contact = Contact {
            id: "c".into(),
            ..Contact::default()
        };
        let tasks: Vec<Task> = (0..8)
            .map(|i| task(&format!("t{i}"), None, false))
            .collect();
        let long = "word ".repeat(200);
        let notes = [note(&long, "2025-01-01T00:00:00Z")];
        let app = url::Url::parse("https://agency.example/").unwrap();
        let card = card(
            &app,
            "l",
            &Found {
                contact: &contact,
                tasks: Some(&tasks),
                notes: Some(&notes),
                appointments: None,
            },
        );
        assert_eq!(card.open_tasks.len(), MAX_OPEN_TASKS);
        assert_eq!(card.more_open_tasks, 3);
        let shown = card.latest_note.unwrap();
        assert!(shown.chars().count() <= MAX_NOTE_CHARS, "{}", shown.len());
        assert!(shown.ends_with("word…"), "{shown}");
        assert_eq!(
            card.link,
            "https://agency.example/v2/location/l/contacts/detail/c"
        );
    }

    #[test]
    fn the_agent_sees_the_other_identity_and_the_note_only_when_configured() {
        let full = CrmCard {
            link: "l".into(),
            name: Some("Ada".into()),
            email: Some("ada@example.com".into()),
            phone: Some("+14155550100".into()),
            latest_note: Some("secret".into()),
            ..CrmCard::default()
        };
        let by_email = for_agent(&full, LookedUpBy::Email, Extras::default());
        assert_eq!(by_email.email, full.email);
        assert_eq!((by_email.phone, by_email.latest_note), (None, None));
        let by_phone = for_agent(&full, LookedUpBy::Phone, Extras::default());
        assert_eq!((by_phone.email, by_phone.phone), (None, full.phone.clone()));
        let all = Extras {
            other_identity: true,
            note: true,
        };
        assert_eq!(for_agent(&full, LookedUpBy::Email, all), full);
    }

    #[test]
    fn only_marker_tags_are_hidden() {
        assert!(is_marker_tag("formbridge:12:0"));
        assert!(!is_marker_tag("formbridge"));
        assert!(!is_marker_tag("formbridge:vip:x"));
        assert_eq!(
            strip_markers("a [formbridge:x:1] b"),
            "a [formbridge:x:1] b"
        );
        assert_eq!(
            strip_markers("Call ended\n\n[formbridge:call:jivochat:4398:note]"),
            "Call ended"
        );
    }
}
