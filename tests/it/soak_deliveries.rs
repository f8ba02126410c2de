//! The soak run's mixed deliveries: one body shape per tool (Jotform multipart, JivoChat JSON,
//! DripJobs JSON, POWR JSON, 123FormBuilder urlencoded), each lead unique by email and phone.

/// The tools the soak run cycles through, one source (and GHL location) each in turn.
pub const KINDS: [&str; 5] = ["jotform", "jivochat", "dripjobs", "powr", "123formbuilder"];

/// One delivery to post: where, with which content type, and the lead it should become.
pub struct Delivery {
    /// The source's name (`/hooks/{source}`).
    pub source: String,
    pub content_type: String,
    pub body: String,
    /// The lead's email, lower case: how the sandbox's contact is found afterwards.
    pub email: String,
}

/// The name of the `index`-th source (and of its `[ghl.locations]` entry).
pub fn source_name(index: usize) -> String {
    format!("soak{index}")
}

/// The tool of the `index`-th source.
pub fn kind_of(index: usize) -> &'static str {
    KINDS[index % KINDS.len()]
}

/// Delivery number `n`, to source `n % sources`: a lead with its own email and phone, a name,
/// and a message of a few hundred bytes (bodies of roughly 0.6–1 KB).
pub fn delivery(n: u64, sources: usize) -> Delivery {
    let index = (n % sources as u64) as usize;
    let email = format!("soak{n}@example.com");
    // 928 (Arizona) with an exchange from 200: valid North American numbers, unique per lead.
    let phone = format!("928{:07}", 2_000_000 + n % 8_000_000);
    let first = format!("Lead{n}");
    let message = format!(
        "Soak delivery {n}: asking for a quote for a garage floor and a patio, about 40 square \
         metres, preferably before the end of the month; please call in the afternoon. The \
         driveway is gravel and the gate is on the left side of the house. {}",
        "Thanks! ".repeat(20)
    );
    let (content_type, body) = match kind_of(index) {
        "jotform" => jotform(n, &first, &email, &message),
        "jivochat" => json(serde_json::json!({
            "event_name": "offline_message",
            "widget_id": "3948",
            "visitor": {"name": format!("{first} Chat"), "email": email, "phone": format!("+1{phone}")},
            "chat_id": n,
            "message": message,
            "offline_message_id": 1_665_399_500_000u64 + n,
        })),
        "dripjobs" => json(serde_json::json!({
            "deal_id": format!("soak-deal-{n}"),
            "customer_name": format!("{first} Person"),
            "customer_email": email,
            "customer_phone": phone,
            "notes": message,
        })),
        "powr" => json(serde_json::json!({
            "submission_id": format!("powr-soak-{n}"),
            "form_name": "Contact Us",
            "Your Name": format!("{first} Powr"),
            "Email Address": email,
            "Phone Number": phone,
            "Message": message,
        })),
        _ => (
            "application/x-www-form-urlencoded".to_owned(),
            serde_urlencoded::to_string([
                ("entryId", n.to_string()),
                ("formId", "6123456".to_owned()),
                ("Full Name", format!("{first} Form")),
                ("E-mail", email.clone()),
                ("Phone Number", phone),
                ("Comments", message),
            ])
            .unwrap_or_default(),
        ),
    };
    Delivery {
        source: source_name(index),
        content_type,
        body,
        email,
    }
}

fn json(value: serde_json::Value) -> (String, String) {
    ("application/json".to_owned(), value.to_string())
}

/// A Jotform multipart delivery: `submissionID`, `formTitle` and the answers in `rawRequest`.
fn jotform(n: u64, first: &str, email: &str, message: &str) -> (String, String) {
    let boundary = format!("soakboundary{n}");
    let raw = serde_json::json!({
        "q3_name": {"first": first, "last": "Jotform"},
        "q4_email": email,
        "q6_message": message,
    });
    let fields = [
        (
            "submissionID",
            (6_000_000_000_000_000_000u64 + n).to_string(),
        ),
        ("formTitle", "Contact us".to_owned()),
        ("rawRequest", raw.to_string()),
    ];
    let mut body: String = fields
        .iter()
        .map(|(k, v)| {
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
        })
        .collect();
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}
