//! `POST /forms/upload-custom-files`: one file streamed into a contact's file custom field, as
//! the multipart part `<customFieldId>_<fileId>` the spec names (tests/fixtures/ghl/
//! ghl-forms-openapi.json). The body is never held whole: the file's bytes go from `body` to
//! the socket as they come.

use std::time::Duration;

use reqwest::multipart::{Form, Part};
use reqwest::Method;

use super::client::{encode_query, GhlClient, GhlResponse};
use super::error::GhlError;

/// One file to upload.
pub struct FileUpload {
    /// The File Upload custom field's id.
    pub custom_field_id: String,
    /// The file's id within the field (the spec: "a randomly generated id (or uuid)"); the key
    /// of the field's value GHL stores it under, so a caller that picks it can find it again.
    pub file_id: String,
    /// The file name GHL shows.
    pub file_name: String,
    /// Its MIME type.
    pub content_type: String,
    /// Its bytes, streamed.
    pub body: reqwest::Body,
    /// The longest the whole upload may take.
    pub timeout: Duration,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct UploadQuery<'a> {
    contact_id: &'a str,
    location_id: &'a str,
}

impl GhlClient {
    /// `POST /forms/upload-custom-files?contactId=…&locationId=…`. GHL answers with the
    /// updated contact (its shape is not in the spec; it is not read beyond success).
    pub async fn upload_custom_file(
        &self,
        location_id: &str,
        contact_id: &str,
        file: FileUpload,
    ) -> Result<GhlResponse<serde_json::Value>, GhlError> {
        let query = encode_query(&UploadQuery {
            contact_id,
            location_id,
        })?;
        let part = Part::stream(file.body)
            .file_name(file.file_name)
            .mime_str(&file.content_type)
            .map_err(|e| GhlError::encode(format!("file content type: {e}")))?;
        let form = Form::new().part(format!("{}_{}", file.custom_field_id, file.file_id), part);
        let request = self
            .streamed_request(
                location_id,
                Method::POST,
                &["forms", "upload-custom-files"],
                query,
                file.timeout,
            )
            .await?
            .multipart(form);
        self.send_streamed("POST /forms/upload-custom-files", request)
            .await
    }
}
