//! The note step: what a note sends to GHL (its body with the marker), written at most once
//! through [`super::marked`].

use super::marked::{MarkedRecord, On};
use crate::ghl::types::{CreateNoteRequest, NoteResponse, UpdateNoteRequest};
use crate::ghl::{GhlError, GhlResponse};
use crate::ghl_access::marker::with_marker;

/// A note step's contents, as the plan gives them.
pub(super) struct NoteStep<'a> {
    pub body: &'a str,
}

impl MarkedRecord for NoteStep<'_> {
    type Answer = NoteResponse;

    fn id_of(answer: NoteResponse) -> String {
        answer.note.id
    }

    async fn update(&self, on: &On<'_>, id: &str) -> Result<GhlResponse<NoteResponse>, GhlError> {
        let update = UpdateNoteRequest {
            body: Some(with_marker(Some(self.body), on.mark)),
            ..UpdateNoteRequest::default()
        };
        on.client
            .update_note(on.location, on.contact, id, &update)
            .await
    }

    async fn find(&self, on: &On<'_>) -> Result<Option<String>, GhlError> {
        let found = on
            .client
            .find_note_with_marker(on.location, on.contact, on.mark)
            .await?;
        Ok(found.map(|note| note.id))
    }

    async fn create(&self, on: &On<'_>) -> Result<GhlResponse<NoteResponse>, GhlError> {
        let request = CreateNoteRequest {
            body: with_marker(Some(self.body), on.mark),
            user_id: None,
            title: None,
            color: None,
            pinned: None,
        };
        on.client
            .create_note(on.location, on.contact, &request)
            .await
    }
}
