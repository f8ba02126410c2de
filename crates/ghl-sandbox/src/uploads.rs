//! `POST /forms/upload-custom-files?contactId=&locationId=` (the Forms API,
//! tests/fixtures/ghl/ghl-forms-openapi.json): files, as multipart parts named
//! `<customFieldId>_<fileId>`, stored on the contact's File Upload custom field.
//!
//! What the spec says, enforced: both query parameters required, multipart body, one or more
//! file parts named `<custom field id>_<file id>`, at most 50 MB a file, the listed types (PDF,
//! DOCX, DOC, JPG, JPEG, PNG, GIF, CSV, XLSX, XLS, MP4, MPEG, ZIP, RAR, TXT, SVG, by the file
//! name's extension), answered with the updated contact.
//!
//! Choices where the spec is silent (documented, not observed): a missing parameter or a part
//! that is no file is 422 with class-validator messages like every other validation; an
//! unknown contact is 400 `Contact with id … not found` as on the contacts routes; a body that
//! is not multipart is 400; a file over 50 MB is 413 (multer's limit, as NestJS reports it); a
//! refused type is 422. The field's value is an object keyed by file id (reference §2.2),
//! each file `{meta: {fieldname, originalname, encoding, mimetype, uuid, size}, url}` — the
//! shape integrators report [inf] — plus `meta.sha256`, which is the sandbox's own, for tests.
//! A second upload into the field adds its files beside the first ones. The custom field's
//! existence and type are not checked (the sandbox keeps no field definitions). The answer is
//! `{contact}` as `GET /contacts/:id` gives it. Bodies are read as they stream in and hashed,
//! never held whole.

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::http::{header::CONTENT_TYPE, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::contacts::str_field;
use super::gate::Caller;
use super::world::{error, forbidden_location, now_iso, reply, unprocessable, Sandbox};

/// The spec's limit: "File size is limited to 50 MB".
pub const MAX_FILE_BYTES: u64 = 50 * 1000 * 1000;

/// The spec's allowed types, by extension.
const ALLOWED_EXTENSIONS: &[&str] = &[
    "pdf", "docx", "doc", "jpg", "jpeg", "png", "gif", "csv", "xlsx", "xls", "mp4", "mpeg", "zip",
    "rar", "txt", "svg",
];

/// One received file.
struct Received {
    custom_field_id: String,
    file_id: String,
    part_name: String,
    file_name: String,
    content_type: String,
    size: u64,
    sha256: String,
}

/// `POST /forms/upload-custom-files`.
pub(crate) async fn upload_custom_files(
    State(sb): State<Sandbox>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let param = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let mut missing = Vec::new();
    for key in ["contactId", "locationId"] {
        if param(key).is_none() {
            missing.push(format!("{key} should not be empty"));
            missing.push(format!("{key} must be a string"));
        }
    }
    let (Some(contact_id), Some(location)) = (param("contactId"), param("locationId")) else {
        return unprocessable(missing);
    };
    if !caller.may_use(location) {
        return forbidden_location();
    }
    let known = sb
        .world()
        .contacts
        .get(contact_id)
        .is_some_and(|c| str_field(&c.data, "locationId") == Some(location));
    if !known {
        return error(
            StatusCode::BAD_REQUEST,
            format!("Contact with id {contact_id} not found"),
        );
    }
    let boundary = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| multer::parse_boundary(t).ok());
    let Some(boundary) = boundary else {
        return error(
            StatusCode::BAD_REQUEST,
            "Multipart: Boundary not found (send multipart/form-data)",
        );
    };
    let limits =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().per_field(MAX_FILE_BYTES));
    let stream = request.into_body().into_data_stream();
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, limits);
    let mut files = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return multipart_error(&e),
        };
        match receive(field).await {
            Ok(file) => files.push(file),
            Err(r) => return r,
        }
    }
    if files.is_empty() {
        return unprocessable(vec![
            "no file: send each file as a part named <customFieldId>_<fileId>".to_owned(),
        ]);
    }
    let mut world = sb.world();
    let Some(record) = world.contacts.get_mut(contact_id) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("Contact with id {contact_id} not found"),
        );
    };
    store(&mut record.data, location, files);
    reply(
        StatusCode::OK,
        json!({"contact": Value::Object(record.data.clone())}),
    )
}

/// Reads one part to its end, hashing it as it comes.
async fn receive(mut field: multer::Field<'static>) -> Result<Received, Response> {
    let part_name = field.name().unwrap_or_default().to_owned();
    let Some(file_name) = field.file_name().map(str::to_owned) else {
        return Err(unprocessable(vec![format!(
            "property {part_name} should not exist"
        )]));
    };
    let Some((custom_field_id, file_id)) = part_name
        .split_once('_')
        .filter(|(f, i)| !f.is_empty() && !i.is_empty())
    else {
        return Err(unprocessable(vec![format!(
            "file part {part_name} must be named <customFieldId>_<fileId>"
        )]));
    };
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if !ALLOWED_EXTENSIONS.contains(&extension.as_str()) {
        return Err(unprocessable(vec![format!(
            "file {file_name}: type not allowed (allowed: {})",
            ALLOWED_EXTENSIONS.join(", ")
        )]));
    }
    let content_type = field.content_type().map_or_else(
        || "application/octet-stream".to_owned(),
        ToString::to_string,
    );
    let (custom_field_id, file_id) = (custom_field_id.to_owned(), file_id.to_owned());
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                size += chunk.len() as u64;
                hasher.update(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(multipart_error(&e)),
        }
    }
    Ok(Received {
        custom_field_id,
        file_id,
        part_name,
        file_name,
        content_type,
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// A multipart body that breaks off or runs over a limit.
fn multipart_error(e: &multer::Error) -> Response {
    match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            error(StatusCode::PAYLOAD_TOO_LARGE, "File too large")
        }
        other => error(StatusCode::BAD_REQUEST, format!("Multipart: {other}")),
    }
}

/// Adds the files to their custom fields on the contact.
fn store(contact: &mut Map<String, Value>, location: &str, files: Vec<Received>) {
    let mut fields: Vec<Value> = contact
        .get("customFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for file in files {
        let entry = json!({
            "meta": {
                "fieldname": file.part_name,
                "originalname": file.file_name,
                "encoding": "7bit",
                "mimetype": file.content_type,
                "uuid": file.file_id,
                "size": file.size,
                "sha256": file.sha256,
            },
            "url": format!(
                "https://sandbox.invalid/locations/{location}/files/{}/{}",
                file.file_id, file.file_name
            ),
        });
        let slot = fields
            .iter_mut()
            .find(|f| f.get("id").and_then(Value::as_str) == Some(file.custom_field_id.as_str()));
        match slot {
            Some(field) => {
                let value = field
                    .as_object_mut()
                    .map(|f| f.entry("value").or_insert_with(|| json!({})));
                if let Some(value) = value {
                    if !value.is_object() {
                        *value = json!({});
                    }
                    if let Some(map) = value.as_object_mut() {
                        map.insert(file.file_id.clone(), entry);
                    }
                }
            }
            None => fields.push(json!({
                "id": file.custom_field_id,
                "value": {file.file_id.clone(): entry},
            })),
        }
    }
    contact.insert("customFields".into(), Value::Array(fields));
    contact.insert("dateUpdated".into(), json!(now_iso()));
}
