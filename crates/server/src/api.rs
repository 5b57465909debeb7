//! The documents REST API: list, create, read, rename, delete. Every route
//! takes a [`CurrentUser`]; a document the user may not open answers 404,
//! exactly as one that does not exist, so ids reveal nothing.

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use quire_hub::{CloseCode, CloseFrame, Presence};
use quire_store::{DocAccess, DocScope, DocumentMeta, ListQuery};
use quire_types::{DocId, DocRole, UnixMillis, UserId, WorkspaceId};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::control::{self, ControlMessage};
use crate::error::ApiError;
use crate::quotas;

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
pub struct DocumentView {
    id: DocId,
    title: String,
    created_at: UnixMillis,
    updated_at: UnixMillis,
    /// The accounts in the document now, as the hub bound their presence to
    /// the sign-in of their sockets: one entry per account.
    present: Vec<Presence>,
    /// The asking user's role.
    role: DocRole,
    workspace: Option<WorkspaceId>,
    owner: Option<UserId>,
}

impl DocumentView {
    pub async fn new(state: &AppState, access: DocAccess) -> Self {
        let present = state.hub.presence(&access.meta.id).await;
        let DocAccess {
            meta,
            workspace,
            owner,
            role,
        } = access;
        let DocumentMeta {
            id,
            title,
            created_at,
            updated_at,
        } = meta;
        DocumentView {
            id,
            title,
            created_at,
            updated_at,
            present,
            role,
            workspace,
            owner,
        }
    }
}

/// The user's access to a document, if at least `min`. No access at all is
/// `NotFound`, like a missing document; too little is `Forbidden` (the user
/// already knows the document exists).
pub async fn require_role(
    state: &AppState,
    me: &CurrentUser,
    id: &DocId,
    min: DocRole,
) -> Result<DocAccess, ApiError> {
    let access = state
        .auth
        .document_access(id, &me.user.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if access.role < min {
        return Err(ApiError::Forbidden(format!(
            "this needs {} access",
            min.as_str()
        )));
    }
    Ok(access)
}

#[derive(Debug, Deserialize)]
struct ListParams {
    q: Option<String>,
    /// `shared` lists what others shared with the user ("Shared with me");
    /// anything else, the user's own documents.
    scope: Option<String>,
}

async fn list_documents(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(params): Query<ListParams>,
) -> Result<impl IntoResponse, ApiError> {
    let query = ListQuery {
        title_contains: params.q.filter(|q| !q.trim().is_empty()),
        limit: Some(500),
    };
    let scope = match params.scope.as_deref() {
        Some("shared") => DocScope::SharedWithMe,
        _ => DocScope::Owned,
    };
    let found = state
        .auth
        .list_accessible(&me.user.id, scope, &query)
        .await?;
    let mut documents = Vec::with_capacity(found.len());
    for access in found {
        documents.push(DocumentView::new(&state, access).await);
    }
    Ok(Json(serde_json::json!({ "documents": documents })))
}

#[derive(Debug, Deserialize, Default)]
struct CreateBody {
    title: Option<String>,
    /// A client-chosen id (tools and tests that name their documents);
    /// generated when absent. 409 if taken.
    id: Option<DocId>,
    /// The workspace to create it in (the user must belong to it); the
    /// user's personal workspace when absent.
    workspace: Option<WorkspaceId>,
}

async fn create_document(
    State(state): State<AppState>,
    me: CurrentUser,
    body: Result<Option<Json<CreateBody>>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = body?.map(|Json(b)| b).unwrap_or_default();
    let title = match body.title {
        Some(t) => valid_title(&t)?,
        None => DEFAULT_TITLE.to_string(),
    };
    let workspace = match body.workspace {
        Some(ws) => {
            if state.auth.workspace_role(&ws, &me.user.id).await?.is_none() {
                return Err(ApiError::NotFound);
            }
            ws
        }
        None => home_workspace(&state, &me).await?,
    };
    quotas::check_create(&state, &me.user.id).await?;
    let id = body.id.unwrap_or_else(DocId::generate);
    let meta = match state
        .auth
        .create_owned_document(&id, &title, &workspace, &me.user.id)
        .await
    {
        Ok(m) => m,
        Err(quire_store::StoreError::AlreadyExists) => {
            return Err(ApiError::Conflict(
                "a document with this id already exists".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let access = DocAccess {
        meta,
        workspace: Some(workspace),
        owner: Some(me.user.id.clone()),
        role: DocRole::Owner,
    };
    let view = DocumentView::new(&state, access).await;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "document": view })),
    ))
}

/// Where a document goes when no workspace is named: the user's first
/// workspace (the personal one, unless they were removed from it). Someone
/// an admin removed from every workspace gets a new personal one rather
/// than an error: creating a document must always work.
async fn home_workspace(state: &AppState, me: &CurrentUser) -> Result<WorkspaceId, ApiError> {
    if let Some(w) = state
        .auth
        .workspaces_of(&me.user.id)
        .await?
        .into_iter()
        .next()
    {
        return Ok(w.id);
    }
    let name = format!("{}'s workspace", me.user.name);
    let created = state
        .auth
        .create_workspace(&WorkspaceId::generate(), &name, &me.user.id)
        .await?;
    tracing::info!(user = %me.user.id, workspace = %created.id, "recreated a personal workspace");
    Ok(created.id)
}

async fn get_document(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = doc_id(id)?;
    let access = require_role(&state, &me, &id, DocRole::Viewer).await?;
    let view = DocumentView::new(&state, access).await;
    Ok(Json(serde_json::json!({ "document": view })))
}

#[derive(Debug, Deserialize)]
struct RenameBody {
    title: String,
}

async fn rename_document(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<RenameBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id = doc_id(id)?;
    let mut access = require_role(&state, &me, &id, DocRole::Editor).await?;
    let Json(body) = body?;
    let title = valid_title(&body.title)?;
    access.meta = state.hub.store().rename_document(&id, &title).await?;
    let view = DocumentView::new(&state, access).await;
    Ok(Json(serde_json::json!({ "document": view })))
}

async fn delete_document(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = doc_id(id)?;
    require_role(&state, &me, &id, DocRole::Owner).await?;
    // Close the live sessions and let pending appends commit first, so that
    // editors are told at once rather than on their next write. Other nodes
    // are told twice: before the delete, so that they stop taking writes as
    // soon as they can, and after it, to close any socket that reconnected
    // there in between, now that a new join is refused. A write that slips
    // through anyway cannot bring the document back: the store refuses
    // appends to a document that does not exist, and the live document that
    // made it closes its sessions with 4404.
    let evict = ControlMessage::Evict {
        doc: id.clone(),
        frame: CloseFrame::new(CloseCode::NotFound, "document deleted"),
    };
    control::apply_everywhere(&state, evict.clone()).await;
    state.hub.store().delete_document(&id).await?;
    control::publish(&state, &evict);
    Ok(StatusCode::NO_CONTENT)
}

pub fn doc_id(raw: String) -> Result<DocId, ApiError> {
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
