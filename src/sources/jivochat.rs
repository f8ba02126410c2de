//! JivoChat, the tool: its Webhooks API events (`chat_accepted`, `chat_updated`,
//! `chat_finished`, `offline_message`, `client_updated`, `call_event`, …) read into visitor
//! contact, offline message or chat transcript, page, UTM and geo; its ids, its `{"result":"ok"}`
//! reply and the agent view answer (`crm_link`, `contact_info`, `custom_data`), its transcript
//! note and which events make contacts.

use std::collections::HashMap;

use axum::http::HeaderMap;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::detect::{Confidence, ContactDraft, Role};
use super::tool::{
    json_text as text, CrmCard, EventRules, NormalizeError, ReadInput, Tool, ToolCall, ToolTask,
};
use crate::body::ParsedBody;
use crate::domain::call::{CallKind, CallStatus};
use crate::submission::{Answer, AnswerValue, ChatMessage, Geo, Page, Submission};

const TOOL: &str = "JivoChat";

/// JivoChat event names formbridge knows.
const EVENTS: &[&str] = &[
    "chat_accepted",
    "chat_updated",
    "chat_finished",
    "chat_assigned",
    "offline_message",
    "client_updated",
    "client_attribute_updated",
    "call_event",
];

/// The events that create or update a contact unless `mapping.contact_events` says otherwise.
const DEFAULT_CONTACT_EVENTS: &[&str] = &["chat_finished", "offline_message", "client_updated"];

/// Events that update the contact by default when they carry the visitor's email or phone.
const CONTACT_IF_PRESENT: &[&str] = &[
    "chat_accepted",
    "chat_updated",
    "chat_assigned",
    "client_attribute_updated",
    "call_event",
];

/// A phone call's status change. JivoChat sends one at every change of one call (`start`,
/// `agent_connected`, `client_connected`, `end`, `error`); its `call` object has no id of its
/// own, so the call is its chat (`chat_id`, which the docs' example carries): the statuses of
/// one call are revisions of one delivery. One without `chat_id` stands alone, as before.
const CALL_EVENT: &str = "call_event";

/// How soon a callback request or a missed call is due.
const CALL_TASK_DUE: time::Duration = time::Duration::minutes(30);

/// Events that happen once per id: an offline message has its own id, and a chat is accepted
/// and finished once. `chat_updated` and `client_updated` legitimately repeat for one chat with
/// new content (keyed by the body's hash); `call_event` is keyed by its call (see
/// [`CALL_EVENT`]).
const ONCE_PER_ID: &[&str] = &["offline_message", "chat_accepted", "chat_finished"];

/// The events whose answer JivoChat shows to the agent in the chat window (its docs: the
/// response to `chat_accepted` and `chat_updated` may carry `custom_data`, `contact_info`,
/// `crm_link`; to every other event only `{"result":"ok"}` is expected).
const AGENT_VIEW_EVENTS: &[&str] = &["chat_accepted", "chat_updated"];

/// Due dates as the agent reads them: JivoChat does not say the agent's time zone, so UTC,
/// named.
const DUE_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");

/// JivoChat Webhooks API (JSON events).
pub struct Jivochat;

impl Tool for Jivochat {
    fn name(&self) -> &'static str {
        "jivochat"
    }

    fn title(&self) -> &'static str {
        TOOL
    }

    /// JivoChat's docs do not state a Content-Type and its deliveries are always JSON, so its
    /// body is read as JSON whatever the header says (as Jivo's own PHP handlers do).
    fn body_content_type<'a>(&self, _declared: Option<&'a str>) -> Option<&'a str> {
        Some("application/json")
    }

    /// JivoChat has no delivery id: `event_name` + the event's own id for events that happen
    /// once per id; other events fall back to the body hash (an identical resend is still a
    /// duplicate).
    fn delivery_id(&self, parsed: &ParsedBody, _headers: &HeaderMap) -> Option<String> {
        let ParsedBody::Json(root) = parsed else {
            return None;
        };
        let event = text(root.get("event_name"))?;
        if event == CALL_EVENT {
            // Every status of one call shares its key, so each new status is a revision of
            // the call's delivery and a repeated status (same body) a duplicate.
            return text(root.get("chat_id")).map(|id| format!("{event}:{id}"));
        }
        if !ONCE_PER_ID.contains(&event.as_str()) {
            return None;
        }
        own_id(root, Some(&event)).map(|id| format!("{event}:{id}"))
    }

    fn read(&self, input: &ReadInput<'_>) -> Result<(Submission, ContactDraft), NormalizeError> {
        read(input.parsed, input.received_at)
    }

    /// Jivo's docs expect exactly this body for every event.
    fn acknowledgement(&self, _receipt: Value) -> Value {
        json!({"result": "ok"})
    }

    fn default_note(&self, title: &str, sub: &Submission) -> Option<String> {
        note(title, sub)
    }

    fn events(&self) -> Option<EventRules> {
        Some(EventRules {
            known: EVENTS,
            contact_by_default: DEFAULT_CONTACT_EVENTS,
            contact_if_present: CONTACT_IF_PRESENT,
        })
    }

    /// An anonymous visitor's chat is the common case, not a fault: skipped by default.
    fn is_chat(&self) -> bool {
        true
    }

    fn has_agent_view(&self) -> bool {
        true
    }

    /// `chat_accepted` and `chat_updated`: JivoChat shows their answer in the chat window.
    fn agent_view_wanted(&self, parsed: &ParsedBody) -> bool {
        let ParsedBody::Json(root) = parsed else {
            return false;
        };
        text(root.get("event_name")).is_some_and(|e| AGENT_VIEW_EVENTS.contains(&e.as_str()))
    }

    fn agent_view_answer(&self, card: &CrmCard) -> Option<Value> {
        Some(agent_view(card))
    }

    /// One chat's events share its `chat_id`; one visitor's chats share the `client_id`.
    fn default_references(&self) -> &'static [&'static str] {
        &["chat_id", "client_id"]
    }

    /// A `call_event` of a call formbridge can follow (it has a `chat_id`, a known type and
    /// status): its task is "Callback requested" for a callback request, else "Missed call",
    /// created only once the call's statuses say it needs a call-back.
    fn call(&self, sub: &Submission) -> Option<ToolCall> {
        if sub.extras.event.as_deref() != Some(CALL_EVENT) {
            return None;
        }
        let other = |k: &str| sub.extras.other.get(k).map(String::as_str);
        let kind = CallKind::parse(other("call_type")?)?;
        let status = CallStatus::parse(other("call_status")?)?;
        let what = match kind {
            CallKind::Callback => "Callback requested",
            CallKind::Incoming | CallKind::Outgoing => "Missed call",
        };
        Some(ToolCall {
            id: other("chat_id")?.to_owned(),
            kind,
            status,
            task: call_task(what, sub),
        })
    }

    /// A callback request, or a call that failed (`status = error`), asks for a call back
    /// (a `call_event` whose call formbridge cannot follow, see [`Tool::call`]).
    fn default_task(&self, sub: &Submission) -> Option<ToolTask> {
        if sub.extras.event.as_deref() != Some("call_event") {
            return None;
        }
        let other = |k: &str| sub.extras.other.get(k).map(String::as_str);
        let what = match (other("call_type"), other("call_status")) {
            (Some("callback"), _) => "Callback requested",
            (_, Some("error")) => "Missed call",
            _ => return None,
        };
        Some(call_task(what, sub))
    }
}

/// The answer to `chat_accepted` / `chat_updated` that shows `card` in the agent's chat window:
/// `crm_link`, `contact_info` (`name` is required there, so the email or phone stands in for a
/// contact without one) and `custom_data` rows for the tags, each open task with its due date,
/// and the latest note. `enable_assign` (assign the chat to the CRM's responsible agent) and
/// `page` are not sent: formbridge knows neither.
pub fn agent_view(card: &CrmCard) -> Value {
    let mut contact = serde_json::Map::new();
    let name = card
        .name
        .clone()
        .or_else(|| card.email.clone())
        .or_else(|| card.phone.clone())
        .unwrap_or_else(|| "GHL contact".to_owned());
    contact.insert("name".to_owned(), json!(name));
    if let Some(phone) = &card.phone {
        contact.insert("phone".to_owned(), json!(phone));
    }
    if let Some(email) = &card.email {
        contact.insert("email".to_owned(), json!(email));
    }
    let row = |title: String, content: String| json!({"title": title, "content": content});
    let mut rows = Vec::new();
    if !card.tags.is_empty() {
        rows.push(row("Tags".to_owned(), card.tags.join(", ")));
    }
    for task in &card.open_tasks {
        let title = match task.due.and_then(|d| d.format(DUE_FORMAT).ok()) {
            Some(due) => format!("Task due {due}"),
            None => "Task (no due date)".to_owned(),
        };
        rows.push(row(title, task.title.clone()));
    }
    if let Some(next) = &card.next_appointment {
        let when = next
            .start
            .to_offset(time::UtcOffset::UTC)
            .format(DUE_FORMAT)
            .unwrap_or_default();
        rows.push(row(format!("Appointment {when}"), next.title.clone()));
    }
    if card.more_open_tasks > 0 {
        rows.push(row(
            "More open tasks".to_owned(),
            format!("{} more in GHL", card.more_open_tasks),
        ));
    }
    if let Some(note) = &card.latest_note {
        rows.push(row("Latest note".to_owned(), note.clone()));
    }
    let mut answer = json!({
        "result": "ok",
        "crm_link": card.link,
        "contact_info": contact,
    });
    if !rows.is_empty() {
        answer["custom_data"] = Value::Array(rows);
    }
    answer
}

/// The event's own id: the offline message's, the client's, else the chat's. Both the
/// submission id and the delivery id come from it.
fn own_id(root: &Value, event: Option<&str>) -> Option<String> {
    let at = |path: &str| text(root.pointer(path));
    match event {
        Some("offline_message") => at("/offline_message_id").or_else(|| at("/chat_id")),
        Some("client_updated") | Some("client_attribute_updated") => {
            at("/client_id").or_else(|| at("/visitor/number"))
        }
        _ => at("/chat_id").or_else(|| at("/offline_message_id")),
    }
}

/// Reads a JivoChat event.
pub fn read(
    body: &ParsedBody,
    received_at: OffsetDateTime,
) -> Result<(Submission, ContactDraft), NormalizeError> {
    let ParsedBody::Json(root) = body else {
        return Err(NormalizeError::ExpectedJson { tool: TOOL });
    };
    if !root.is_object() {
        return Err(NormalizeError::NotAnObject { tool: TOOL });
    }
    let at = |path: &str| text(root.pointer(path));

    let mut sub = Submission::new(received_at);
    let event = at("/event_name");
    sub.extras.event = event.clone();
    sub.submission_id = own_id(root, event.as_deref());
    for (name, path) in [
        ("widget_id", "/widget_id"),
        ("chat_id", "/chat_id"),
        ("client_id", "/client_id"),
        ("user_token", "/user_token"),
        ("agent_name", "/agent/name"),
        ("call_type", "/call/type"),
        ("call_status", "/call/status"),
        ("call_reason", "/call/reason"),
        ("call_record_url", "/call/record_url"),
    ] {
        if let Some(v) = at(path) {
            sub.extras.other.insert(name.to_owned(), v);
        }
    }

    let mut draft = ContactDraft::default();
    // The visitor's own country (geo-IP) reads a phone written without `+country`.
    if let Some(code) = at("/visitor/country_code").or_else(|| at("/session/geoip/country_code")) {
        draft.phone_country(&code);
    }
    let push = |sub: &mut Submission, key: &str, label: &str, value: Option<String>| {
        if let Some(v) = value {
            sub.answers.push(Answer {
                key: key.to_owned(),
                label: label.to_owned(),
                value: AnswerValue::Text(v),
            });
        }
    };
    let name = at("/visitor/name");
    let email = at("/visitor/email");
    let phone = at("/visitor/phone").or_else(|| at("/call/phone"));
    if let Some(v) = &name {
        draft.offer(Role::FullName, Confidence::Key, "visitor.name", v);
    }
    if let Some(v) = &email {
        draft.offer(Role::Email, Confidence::Key, "visitor.email", v);
    }
    if let Some(v) = &phone {
        draft.offer(Role::Phone, Confidence::Key, "visitor.phone", v);
    }
    push(&mut sub, "visitor.name", "Name", name);
    push(&mut sub, "visitor.email", "Email", email);
    push(&mut sub, "visitor.phone", "Phone", phone);
    push(
        &mut sub,
        "visitor.description",
        "Description",
        at("/visitor/description"),
    );
    push(&mut sub, "message", "Message", at("/message"));
    push(
        &mut sub,
        "organization.name",
        "Organization",
        at("/organization/name"),
    );
    push(&mut sub, "status.title", "Status", at("/status/title"));
    push(&mut sub, "topic.title", "Topic", at("/topic/title"));
    push(
        &mut sub,
        "department.name",
        "Department",
        at("/department/name"),
    );
    if let Some(Value::Array(tags)) = root.get("tags") {
        let titles: Vec<String> = tags.iter().filter_map(|t| text(t.get("title"))).collect();
        if !titles.is_empty() {
            sub.answers.push(Answer {
                key: "tags".to_owned(),
                label: "Jivo tags".to_owned(),
                value: AnswerValue::List(titles),
            });
        }
    }
    push(&mut sub, "call.type", "Call", at("/call/type"));
    push(&mut sub, "call.phone", "Call phone", at("/call/phone"));
    push(&mut sub, "call.status", "Call status", at("/call/status"));
    push(&mut sub, "call.reason", "Call reason", at("/call/reason"));
    push(
        &mut sub,
        "call.record_url",
        "Call recording",
        at("/call/record_url"),
    );
    push(&mut sub, "page.url", "Page", at("/page/url"));

    sub.extras.message = at("/message");
    if let Some(url) = at("/page/url") {
        sub.extras.page = Some(Page {
            url,
            title: at("/page/title"),
        });
    }
    if let Some(Value::Object(utm)) = root.pointer("/session/utm_json") {
        for (k, v) in utm {
            if let Some(v) = text(Some(v)).filter(|v| v != "...") {
                sub.extras.utm.insert(k.clone(), v);
            }
        }
    } else if let Some(utm) = at("/session/utm") {
        for pair in utm.split('|') {
            if let Some((k, v)) = pair.split_once('=') {
                if !v.trim().is_empty() {
                    sub.extras
                        .utm
                        .insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
        }
    }
    if root.pointer("/session/geoip").is_some_and(Value::is_object) {
        sub.extras.geo = Some(Geo {
            country: at("/session/geoip/country"),
            country_code: at("/session/geoip/country_code"),
            region: at("/session/geoip/region"),
            city: at("/session/geoip/city"),
        });
    }
    sub.extras.transcript = transcript(root);
    Ok((sub, draft))
}

/// `chat.messages[{message,timestamp,type,agent_id}]`, else `plain_messages` as one block.
fn transcript(root: &Value) -> Vec<ChatMessage> {
    // Agent names by id (the first agent listed with an id wins).
    let mut agents: HashMap<String, String> = HashMap::new();
    if let Some(Value::Array(list)) = root.get("agents") {
        for (id, name) in list
            .iter()
            .filter_map(|a| Some((text(a.get("id"))?, text(a.get("name"))?)))
        {
            agents.entry(id).or_insert(name);
        }
    }
    if let Some(Value::Array(messages)) = root.pointer("/chat/messages") {
        return messages
            .iter()
            .filter_map(|m| {
                let body = text(m.get("message"))?;
                let kind = text(m.get("type")).unwrap_or_else(|| "message".to_owned());
                let from = match (kind.as_str(), text(m.get("agent_id"))) {
                    ("agent", Some(id)) => agents
                        .get(&id)
                        .map(|n| format!("agent {n}"))
                        .unwrap_or_else(|| "agent".to_owned()),
                    _ => kind,
                };
                let at = m
                    .get("timestamp")
                    .and_then(|t| t.as_i64().or_else(|| t.as_str()?.parse().ok()))
                    .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
                Some(ChatMessage {
                    at,
                    from,
                    text: body,
                })
            })
            .collect();
    }
    match text(root.get("plain_messages")) {
        Some(plain) => vec![ChatMessage {
            at: None,
            from: "chat".to_owned(),
            text: plain,
        }],
        None => Vec::new(),
    }
}

/// The task "`what`: call <name> back", with the call's details, due in 30 minutes.
fn call_task(what: &str, sub: &Submission) -> ToolTask {
    let name = sub.contact.full_name.as_deref().unwrap_or("the visitor");
    ToolTask {
        title: format!("{what}: call {name} back"),
        body: Some(call_lines(sub)),
        due_in: CALL_TASK_DUE,
    }
}

/// A call's type, status, reason, phone and recording link, one per line.
fn call_lines(sub: &Submission) -> String {
    let other = |k: &str| sub.extras.other.get(k).cloned();
    let phone = sub
        .answer("call.phone")
        .map(|a| a.value.display())
        .or_else(|| sub.contact.phone.as_ref().map(ToString::to_string));
    [
        ("Type", other("call_type")),
        ("Status", other("call_status")),
        ("Reason", other("call_reason")),
        ("Phone", phone),
        ("Recording", other("call_record_url")),
    ]
    .into_iter()
    .filter_map(|(label, v)| v.map(|v| format!("{label}: {v}")))
    .collect::<Vec<_>>()
    .join("\n")
}

/// The chat transcript or the offline message, then the other answers and the UTM; `None`
/// when the event has neither (the common note is written).
fn note(title: &str, sub: &Submission) -> Option<String> {
    match sub.extras.event.as_deref() {
        Some(CALL_EVENT) => {
            let id = sub.submission_id.as_deref().unwrap_or("?");
            return Some(format!("{title} call (chat {id})\n\n{}", call_lines(sub)));
        }
        // Contact updates from chat events write no note; the finished chat does.
        Some(e) if CONTACT_IF_PRESENT.contains(&e) => return Some(String::new()),
        _ => {}
    }
    let transcript = sub.transcript_text();
    if transcript.is_empty() && sub.extras.message.is_none() {
        return None;
    }
    let what = if transcript.is_empty() {
        "offline message"
    } else {
        "chat"
    };
    let mut out = format!("{title} {what}");
    if let Some(id) = &sub.submission_id {
        out.push_str(&format!(" (id {id})"));
    }
    out.push_str("\n\n");
    if transcript.is_empty() {
        out.push_str(sub.extras.message.as_deref().unwrap_or_default());
    } else {
        out.push_str(&transcript);
    }
    let details: Vec<String> = sub
        .answers
        .iter()
        .filter(|a| a.key != "message" && !a.value.is_blank())
        .map(|a| format!("{}: {}", a.label, a.value.display()))
        .collect();
    if !details.is_empty() {
        out.push_str("\n\n");
        out.push_str(&details.join("\n"));
    }
    if !sub.extras.utm.is_empty() {
        let utm: Vec<String> = sub
            .extras
            .utm
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!("\nUTM: {}", utm.join(", ")));
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sources::OpenTask;

    fn card() -> CrmCard {
        CrmCard {
            link: "https://app.gohighlevel.com/v2/location/L/contacts/detail/C".to_owned(),
            name: Some("Ada Lovelace".to_owned()),
            email: Some("ada@example.com".to_owned()),
            phone: Some("+14155550100".to_owned()),
            tags: vec!["vip".to_owned(), "jivochat".to_owned()],
            open_tasks: vec![
                OpenTask {
                    title: "Call back".to_owned(),
                    due: Some(time::macros::datetime!(2025-05-01 14:30 UTC)),
                },
                OpenTask {
                    title: "Send quote".to_owned(),
                    due: None,
                },
            ],
            more_open_tasks: 2,
            latest_note: Some("Wants a callback".to_owned()),
            next_appointment: Some(crate::sources::CardAppointment {
                title: "Install".to_owned(),
                start: time::macros::datetime!(2025-05-03 15:00 UTC),
            }),
        }
    }

    #[test]
    fn the_answer_has_the_documented_shape() {
        let answer = agent_view(&card());
        assert_eq!(
            answer,
            json!({
                "result": "ok",
                "crm_link": "https://app.gohighlevel.com/v2/location/L/contacts/detail/C",
                "contact_info": {"name": "Ada Lovelace", "phone": "+14155550100", "email": "ada@example.com"},
                "custom_data": [
                    {"title": "Tags", "content": "vip, jivochat"},
                    {"title": "Task due 2025-05-01 14:30 UTC", "content": "Call back"},
                    {"title": "Task (no due date)", "content": "Send quote"},
                    {"title": "Appointment 2025-05-03 15:00 UTC", "content": "Install"},
                    {"title": "More open tasks", "content": "2 more in GHL"},
                    {"title": "Latest note", "content": "Wants a callback"},
                ],
            })
        );
    }

    #[test]
    fn a_bare_contact_has_a_name_and_no_custom_data() {
        let bare = CrmCard {
            link: "https://x/".to_owned(),
            phone: Some("+14155550100".to_owned()),
            ..CrmCard::default()
        };
        let answer = agent_view(&bare);
        assert_eq!(answer["contact_info"]["name"], "+14155550100");
        assert!(answer["contact_info"].get("email").is_none());
        assert!(answer.get("custom_data").is_none());
        assert_eq!(answer["result"], "ok");
    }

    #[test]
    fn only_chat_accepted_and_chat_updated_are_shown_to_the_agent() {
        let wanted = |event: &str| {
            Jivochat.agent_view_wanted(&ParsedBody::Json(json!({"event_name": event})))
        };
        assert!(wanted("chat_accepted"));
        assert!(wanted("chat_updated"));
        for other in [
            "chat_finished",
            "offline_message",
            "client_updated",
            "call_event",
        ] {
            assert!(!wanted(other), "{other}");
        }
        assert!(!Jivochat.agent_view_wanted(&ParsedBody::Json(json!([]))));
    }

    fn call_event(call: Value) -> ParsedBody {
        ParsedBody::Json(json!({
            "event_name": "call_event", "chat_id": 4398,
            "visitor": {"name": "John Smith", "phone": "+14084987855"},
            "call": call,
        }))
    }

    #[test]
    fn the_statuses_of_one_call_share_its_delivery_id() {
        let id = |body: &ParsedBody| Jivochat.delivery_id(body, &HeaderMap::new());
        let start = call_event(json!({"type": "callback", "status": "start"}));
        let end = call_event(json!({"type": "callback", "status": "end"}));
        assert_eq!(id(&start).as_deref(), Some("call_event:4398"));
        assert_eq!(id(&start), id(&end));
        assert_ne!(start.content_hash(), end.content_hash(), "so a revision");
        let no_chat = ParsedBody::Json(json!({"event_name": "call_event", "call": {}}));
        assert_eq!(id(&no_chat), None, "deduplicated by its body's hash");
    }

    #[test]
    fn a_call_event_reports_its_call_and_the_task_it_may_need() {
        let at = time::macros::datetime!(2026-01-01 10:00 UTC);
        let call = |body: ParsedBody| {
            let (sub, _) = read(&body, at).unwrap();
            Jivochat.call(&sub)
        };
        let missed = call(call_event(
            json!({"type": "incoming", "status": "error", "reason": "busy"}),
        ))
        .unwrap();
        assert_eq!(missed.id, "4398");
        assert_eq!(missed.kind, CallKind::Incoming);
        assert_eq!(missed.status, CallStatus::Error);
        // (The name is the contact's, filled in after reading.)
        assert_eq!(missed.task.title, "Missed call: call the visitor back");
        let body = missed.task.body.unwrap_or_default();
        assert!(body.contains("Reason: busy"), "{body}");
        let callback = call(call_event(json!({"type": "callback", "status": "start"}))).unwrap();
        assert_eq!(
            callback.task.title,
            "Callback requested: call the visitor back"
        );
        // A status or type formbridge does not know: not followed as a call.
        assert_eq!(
            call(call_event(json!({"type": "callback", "status": "ok"}))),
            None
        );
        assert_eq!(
            call(call_event(json!({"type": "video", "status": "end"}))),
            None
        );
        let chat = ParsedBody::Json(json!({"event_name": "chat_finished", "chat_id": 1}));
        assert_eq!(call(chat), None);
    }
}
