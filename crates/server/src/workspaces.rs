//! Workspaces (organizations): each user has a personal one from sign-up and
//! may create more and invite members. Admins manage members; documents are
//! created in a workspace but stay private to their owner until shared, so
//! membership alone opens no document. A workspace always keeps an admin:
//! the last one can neither leave nor step down (409).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use quire_store::MemberChange;
use quire_types::{UserId, WorkspaceId, WorkspaceRole};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::auth_api::{normalize_email, valid_name};
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workspaces", get(list_workspaces).post(create_workspace))
        .route(
            "/workspaces/{id}/members",
            get(list_members).post(add_member),
        )
        .route("/workspaces/{id}/members/{user}", delete(remove_member))
}

async fn list_workspaces(
    State(state): State<AppState>,
    me: CurrentUser,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        json!({ "workspaces": state.auth.workspaces_of(&me.user.id).await? }),
    ))
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    name: String,
}

async fn create_workspace(
    State(state): State<AppState>,
    me: CurrentUser,
    body: Result<Json<CreateBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body?;
    let name = valid_name(&body.name)?;
    let ws = state
        .auth
        .create_workspace(&WorkspaceId::generate(), &name, &me.user.id)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "workspace": ws }))))
}

/// The caller's role in the workspace; not a member is 404.
async fn role_in(
    state: &AppState,
    me: &CurrentUser,
    ws: &WorkspaceId,
) -> Result<WorkspaceRole, ApiError> {
    state
        .auth
        .workspace_role(ws, &me.user.id)
        .await?
        .ok_or(ApiError::NotFound)
}

async fn list_members(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let ws = WorkspaceId(id);
    role_in(&state, &me, &ws).await?;
    let members: Vec<_> = state
        .auth
        .workspace_members(&ws)
        .await?
        .into_iter()
        .map(|m| json!({ "user": m.user, "role": m.role }))
        .collect();
    Ok(Json(json!({ "members": members })))
}

#[derive(Debug, Deserialize)]
struct MemberBody {
    email: String,
    role: WorkspaceRole,
}

async fn add_member(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<MemberBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let ws = WorkspaceId(id);
    if role_in(&state, &me, &ws).await? != WorkspaceRole::Admin {
        return Err(ApiError::Forbidden(
            "only workspace admins manage members".into(),
        ));
    }
    let Json(body) = body?;
    let email = normalize_email(&body.email)?;
    let (user, _) = state.auth.user_by_email(&email).await?.ok_or_else(|| {
        ApiError::BadRequest("no account uses this email; ask them to sign up first".into())
    })?;
    if state
        .auth
        .set_workspace_member(&ws, &user.id, body.role)
        .await?
        == MemberChange::LastAdmin
    {
        return Err(last_admin());
    }
    Ok(Json(
        json!({ "member": { "user": user, "role": body.role } }),
    ))
}

async fn remove_member(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, user)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let ws = WorkspaceId(id);
    let user = UserId(user);
    let mine = role_in(&state, &me, &ws).await?;
    if user != me.user.id && mine != WorkspaceRole::Admin {
        return Err(ApiError::Forbidden(
            "only workspace admins manage members".into(),
        ));
    }
    match state.auth.remove_workspace_member(&ws, &user).await? {
        MemberChange::Done => Ok(StatusCode::NO_CONTENT),
        MemberChange::NotMember => Err(ApiError::NotFound),
        MemberChange::LastAdmin => Err(last_admin()),
    }
}

fn last_admin() -> ApiError {
    ApiError::Conflict(
        "a workspace needs an admin: make another member admin before this one leaves or steps down"
            .into(),
    )
}
