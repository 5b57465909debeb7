//! The documents REST API: list, create, read, rename, delete.

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use quire_hub::{CloseCode, CloseFrame, Presence};
use quire_store::{DocumentMeta, ListQuery};
use quire_types::{DocId, UnixMillis};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;

const MAX_TITLE_CHARS: usize = 200;
const DEFAULT_TITLE: &str = "Untitled document";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/documents", get(list_documents).post(create_document))
        .route(
            "/documents/{id}",
            get(get_document)
                .patch(rename_document)
                .delete(delete_document),
        )
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DocumentView {
    id: DocId,
    title: String,
    created_at: UnixMillis,
    updated_at: UnixMillis,
    present: Vec<Presence>,
}

impl DocumentView {
    async fn new(state: &AppState, meta: DocumentMeta) -> Self {
        let present = state.hub.presence(&meta.id).await;
        DocumentView {
            id: meta.id,
            title: meta.title,
            created_at: meta.created_at,
            updated_at: meta.updated_at,
            present,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    q: Option<String>,
}

async fn list_documents(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<impl IntoResponse, ApiError> {
    let query = ListQuery {
        title_contains: params.q.filter(|q| !q.trim().is_empty()),
        limit: Some(500),
    };
    let metas = state.hub.store().list_documents(&query).await?;
    let mut documents = Vec::with_capacity(metas.len());
    for meta in metas {
        documents.push(DocumentView::new(&state, meta).await);
    }
    Ok(Json(serde_json::json!({ "documents": documents })))
}

#[derive(Debug, Deserialize, Default)]
struct CreateBody {
    title: Option<String>,
}

async fn create_document(
    State(state): State<AppState>,
    body: Result<Option<Json<CreateBody>>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let title = match body?.and_then(|Json(b)| b.title) {
        Some(t) => valid_title(&t)?,
        None => DEFAULT_TITLE.to_string(),
    };
    let meta = state
        .hub
        .store()
        .create_document(&DocId::generate(), &title)
        .await?;
    let view = DocumentView::new(&state, meta).await;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "document": view })),
    ))
}

async fn get_document(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = doc_id(id)?;
    let meta = state
        .hub
        .store()
        .document(&id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let view = DocumentView::new(&state, meta).await;
    Ok(Json(serde_json::json!({ "document": view })))
}

#[derive(Debug, Deserialize)]
struct RenameBody {
    title: String,
}

async fn rename_document(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<RenameBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id = doc_id(id)?;
    let Json(body) = body?;
    let title = valid_title(&body.title)?;
    let meta = state.hub.store().rename_document(&id, &title).await?;
    let view = DocumentView::new(&state, meta).await;
    Ok(Json(serde_json::json!({ "document": view })))
}

async fn delete_document(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = doc_id(id)?;
    if state.hub.store().document(&id).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    // Close the live sessions and let pending appends commit first, so that
    // nothing written after the delete brings the document back.
    state
        .hub
        .evict(
            &id,
            CloseFrame::new(CloseCode::NotFound, "document deleted"),
        )
        .await;
    state.hub.store().delete_document(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn doc_id(raw: String) -> Result<DocId, ApiError> {
    DocId::new(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn valid_title(raw: &str) -> Result<String, ApiError> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(ApiError::BadRequest("title must not be empty".into()));
    }
    if t.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::BadRequest(format!(
            "title must be at most {MAX_TITLE_CHARS} characters"
        )));
    }
    if t.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "title must not contain control characters".into(),
        ));
    }
    Ok(t.to_string())
}
