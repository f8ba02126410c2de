//! The upload step: a file answer downloaded under `[files]` and streamed into the contact's
//! file custom field (`POST /forms/upload-custom-files`), at most once.
//!
//! Effectively-once: the file goes in as the part `<customFieldId>_<fileId>`, and GHL keeps it
//! under that `fileId` in the field's value (an object keyed by file id, reference §2.2). The
//! `fileId` is not random but derived from the field and the link, so before anything is
//! downloaded the contact's field is read (`GET /contacts/:id`) and a file already there under
//! that id is not sent again. Chosen over a started-record and marker look-up as tasks and notes
//! do, because it holds for every way a repeat comes: a lost answer, a crash, a replay from
//! scratch (its step records are gone), an edited submission repeating the same link. It costs
//! one read per file.
//!
//! A refusal (a host not allowed, too big, a wrong type, a download that failed after its
//! tries, GHL refusing the file) is no failure of the event: the step is done with the reason
//! as its detail, the link stays in the note, and the plan goes on. GHL's 5xx, 429 and lost
//! answers on the upload are retried as every step's are.

use sha2::{Digest, Sha256};

use super::StepAt;
use crate::dispatch::attempt::{Executor, StepError};
use crate::dispatch::decision::{decide, Decision};
use crate::files::Refusal;
use crate::ghl::upload::FileUpload;
use crate::store::StepStatus;

/// Runs an `upload_file` step: the file id (in GHL, the key of the file in the field), or
/// `None` when it was refused.
pub(super) async fn upload(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    url: &str,
    custom_field_id: &str,
    hosts: &[String],
) -> Result<Option<String>, StepError> {
    let contact = at.contact()?;
    let file_id = file_id(custom_field_id, url);
    if already_uploaded(executor, at, contact, custom_field_id, &file_id).await? {
        let detail = format!(
            "already in custom field {custom_field_id} as file {file_id} (an earlier attempt or delivery uploaded it)"
        );
        return done(executor, at, Some(file_id), detail).await;
    }
    // A download and upload may outlast half a lease: the lease is renewed meanwhile.
    executor
        .with_lease_kept(
            at.event,
            transfer(executor, at, url, custom_field_id, hosts, contact, file_id),
        )
        .await
}

/// Downloads the file and streams it into the field as `file_id`.
async fn transfer(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    url: &str,
    custom_field_id: &str,
    hosts: &[String],
    contact: &str,
    file_id: String,
) -> Result<Option<String>, StepError> {
    let Some(downloader) = executor.downloader else {
        let refusal = Refusal::Failed("the download client could not be built".to_owned());
        return refused(executor, at, custom_field_id, &refusal).await;
    };
    let download = match downloader.open(url, hosts).await {
        Ok(download) => download,
        Err(refusal) => return refused(executor, at, custom_field_id, &refusal).await,
    };
    let file_name = download.file_name.clone();
    let content_type = download.content_type.clone();
    let (body, tally) = download.into_body();
    let file = FileUpload {
        custom_field_id: custom_field_id.to_owned(),
        file_id: file_id.clone(),
        file_name: file_name.clone(),
        content_type: content_type.clone(),
        body,
        timeout: downloader.settings().timeout,
    };
    let sent = executor
        .call(at.event, || {
            executor
                .client
                .upload_custom_file(at.location(), contact, file)
        })
        .await;
    match sent {
        Ok(_) => match tally.received() {
            Ok(received) => {
                let detail = format!(
                    "uploaded {file_name} ({content_type}, {} bytes, sha256 {}) into custom field {custom_field_id} as file {file_id}",
                    received.bytes, received.sha256
                );
                done(executor, at, Some(file_id), detail).await
            }
            Err(refusal) => refused(executor, at, custom_field_id, &refusal).await,
        },
        Err(StepError::Ghl(e)) => {
            // Our own stream cut the upload off (too big, the download broke): GHL got no
            // whole file.
            if let Some(refusal) = tally.failure() {
                return refused(executor, at, custom_field_id, &refusal).await;
            }
            match decide(&e) {
                Decision::DeadLetter => {
                    let refusal = Refusal::Failed(format!("GHL refused the file: {e}"));
                    refused(executor, at, custom_field_id, &refusal).await
                }
                _ => Err(StepError::Ghl(e)),
            }
        }
        Err(other) => Err(other),
    }
}

/// The file's id in GHL: UUID-shaped, derived from the field and the link (see the module
/// documentation for why it is not random).
fn file_id(custom_field_id: &str, url: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"formbridge upload\0")
        .chain_update(custom_field_id.as_bytes())
        .chain_update(b"\0")
        .chain_update(url.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // Version 8 (custom) and the RFC 9562 variant.
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// Whether the contact's field already holds the file `file_id`.
async fn already_uploaded(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    contact: &str,
    custom_field_id: &str,
    file_id: &str,
) -> Result<bool, StepError> {
    let found = executor
        .find(at.event, || async {
            let contact = executor
                .client
                .get_contact(at.location(), contact)
                .await?
                .body
                .contact;
            Ok(contact
                .custom_fields
                .into_iter()
                .find(|f| f.id.as_deref() == Some(custom_field_id))
                .filter(|f| f.value.get(file_id).is_some()))
        })
        .await?;
    Ok(found.is_some())
}

/// Records the step done with what it did.
async fn done(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    file_id: Option<String>,
    detail: String,
) -> Result<Option<String>, StepError> {
    executor
        .record_with_detail(
            at.event,
            at.index,
            at.step,
            StepStatus::Done,
            file_id.clone(),
            Some(detail),
        )
        .await
        .map_err(StepError::Stop)?;
    Ok(file_id)
}

/// Records the step done without an upload, and why: the link stays in the note.
async fn refused(
    executor: &Executor<'_>,
    at: &StepAt<'_>,
    custom_field_id: &str,
    refusal: &Refusal,
) -> Result<Option<String>, StepError> {
    tracing::info!(
        event_id = %at.event.id,
        step = at.index,
        custom_field_id,
        reason = %refusal,
        "file not uploaded; its link stays in the note"
    );
    let detail = format!("{refusal}; the link stays in the note");
    done(executor, at, None, detail).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_id_is_a_uuid_fixed_by_field_and_link() {
        let a = file_id("field1", "https://www.jotform.com/uploads/a.pdf");
        assert_eq!(
            a,
            file_id("field1", "https://www.jotform.com/uploads/a.pdf")
        );
        assert_ne!(
            a,
            file_id("field2", "https://www.jotform.com/uploads/a.pdf")
        );
        assert_ne!(
            a,
            file_id("field1", "https://www.jotform.com/uploads/b.pdf")
        );
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }
}
