//! Sharing a document: with people by email (owner, editor, commenter,
//! viewer), and by link. Only owners change who has access; everyone with
//! access sees the list. Every change reaches the affected user's open
//! sockets before the request returns: a lowered role turns them read-only, a
//! raised one makes them reconnect with it, a removed one closes them. Other
//! nodes' sockets follow as soon as the bus delivers the change
//! ([`crate::control`]).
//!
//! A share link carries a 256-bit token in the URL fragment (never sent to a
//! server, so it stays out of logs); only its hash is stored, so it is shown
//! once, when created. Opening it grants its role (`via_link`), and turning
//! the link off withdraws every grant it made.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use quire_hub::AccessChange;
use quire_types::{DocId, DocRole, UserId};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::api::{DocumentView, doc_id, require_role};
use crate::auth::{self, CurrentUser};
use crate::auth_api::normalize_email;
use crate::control::{self, ControlMessage};
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/documents/{id}/shares", get(list_shares).post(share))
        .route("/documents/{id}/shares/{user}", delete(unshare))
        .route(
            "/documents/{id}/link",
            get(get_link).post(create_link).delete(delete_link),
        )
        .route("/documents/{id}/link/redeem", post(redeem_link))
}

async fn list_shares(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = doc_id(id)?;
    let access = require_role(&state, &me, &id, DocRole::Viewer).await?;
    let owner = match &access.owner {
        Some(o) => state.auth.user(o).await?,
        None => None,
    };
    let shares: Vec<_> = state
        .auth
        .shares(&id)
        .await?
        .into_iter()
        .map(|s| json!({ "user": s.user, "role": s.role, "viaLink": s.via_link }))
        .collect();
    Ok(Json(
        json!({ "owner": owner, "shares": shares, "yourRole": access.role }),
    ))
}

#[derive(Debug, Deserialize)]
struct ShareBody {
    email: String,
    role: DocRole,
}

async fn share(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<ShareBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id = doc_id(id)?;
    let access = require_role(&state, &me, &id, DocRole::Owner).await?;
    let Json(body) = body?;
    let email = normalize_email(&body.email)?;
    let (user, _) = state.auth.user_by_email(&email).await?.ok_or_else(|| {
        ApiError::BadRequest("no account uses this email; ask them to sign up first".into())
    })?;
    if access.owner.as_ref() == Some(&user.id) {
        return Err(ApiError::BadRequest("that is the document's owner".into()));
    }
    let before = state
        .auth
        .document_access(&id, &user.id)
        .await?
        .map(|a| a.role);
    state
        .auth
        .put_share(&id, &user.id, body.role, false)
        .await?;
    apply_change(&state, &id, &user.id, before, Some(body.role)).await;
    Ok((
        StatusCode::OK,
        Json(json!({ "share": { "user": user, "role": body.role, "viaLink": false } })),
    ))
}

async fn unshare(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, user)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let id = doc_id(id)?;
    let user = UserId(user);
    // Owners remove anyone; anyone may remove themselves.
    let min = if user == me.user.id {
        DocRole::Viewer
    } else {
        DocRole::Owner
    };
    require_role(&state, &me, &id, min).await?;
    let before = state
        .auth
        .document_access(&id, &user)
        .await?
        .map(|a| a.role);
    if !state.auth.remove_share(&id, &user).await? {
        return Err(ApiError::NotFound);
    }
    apply_change(&state, &id, &user, before, None).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Tells the hubs what changed for `user` on `doc`, so their open sockets
/// follow: this node's at once, the others' as the bus delivers it.
async fn apply_change(
    state: &AppState,
    doc: &DocId,
    user: &UserId,
    before: Option<DocRole>,
    after: Option<DocRole>,
) {
    let could_edit = before.is_some_and(DocRole::can_edit);
    if let Some(change) = control::access_change(could_edit, !could_edit, after) {
        let message = ControlMessage::ChangeAccess {
            doc: doc.clone(),
            user: user.clone(),
            change,
        };
        control::apply_everywhere(state, message).await;
    }
}

async fn get_link(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = doc_id(id)?;
    require_role(&state, &me, &id, DocRole::Owner).await?;
    let link = state.auth.link(&id).await?;
    Ok(Json(json!({
        "enabled": link.is_some(),
        "role": link.as_ref().map(|l| l.role),
        "createdAt": link.map(|l| l.created_at),
    })))
}

#[derive(Debug, Deserialize)]
struct LinkBody {
    role: DocRole,
}

async fn create_link(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<LinkBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id = doc_id(id)?;
    require_role(&state, &me, &id, DocRole::Owner).await?;
    let Json(body) = body?;
    if body.role == DocRole::Owner {
        return Err(ApiError::BadRequest(
            "a link cannot make people owners".into(),
        ));
    }
    let token = auth::new_token();
    state
        .auth
        .set_link(&id, &auth::hash_token(&token), body.role)
        .await?;
    let path = format!("/d/{id}#link={token}");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "enabled": true, "role": body.role, "token": token, "path": path })),
    ))
}

async fn delete_link(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = doc_id(id)?;
    require_role(&state, &me, &id, DocRole::Owner).await?;
    for user in state.auth.remove_link(&id).await? {
        let message = ControlMessage::ChangeAccess {
            doc: id.clone(),
            user,
            change: AccessChange::Revoked,
        };
        control::apply_everywhere(&state, message).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct RedeemBody {
    token: String,
}

/// Opens a share link: grants its role to the signed-in user (never lowering
/// one they already have) and returns the document. A wrong or revoked token
/// is 404, like a document that does not exist.
async fn redeem_link(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<RedeemBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id = doc_id(id)?;
    let Json(body) = body?;
    let role = state
        .auth
        .link_role(&id, &auth::hash_token(body.token.trim()))
        .await?
        .ok_or(ApiError::NotFound)?;
    if state
        .auth
        .document_access(&id, &me.user.id)
        .await?
        .is_none()
    {
        state.auth.put_share(&id, &me.user.id, role, true).await?;
    }
    let access = require_role(&state, &me, &id, DocRole::Viewer).await?;
    Ok(Json(
        json!({ "document": DocumentView::new(&state, access).await }),
    ))
}
