//! Accounts: users, their sessions' refresh tokens, and expired tokens.

use super::*;

pub async fn users_have_unique_emails_and_a_personal_workspace(h: &dyn Harness) {
    let store = h.open().await;
    let ada = new_user("ada");
    let user = store.create_user(&ada).await.expect("create user");
    assert_eq!(user.email, "ada@example.test");
    let again = NewUser {
        id: UserId::generate(),
        workspace: WorkspaceId::generate(),
        ..ada.clone()
    };
    assert!(
        matches!(
            store.create_user(&again).await,
            Err(StoreError::AlreadyExists)
        ),
        "a second account with the same email"
    );
    let (found, hash) = store
        .user_by_email("ada@example.test")
        .await
        .expect("by email")
        .expect("found");
    assert_eq!(found, user);
    assert_eq!(hash, ada.password_hash);
    assert_eq!(
        store.user(&ada.id).await.expect("by id"),
        Some(user.clone())
    );
    let renamed = store
        .update_profile(&ada.id, "Ada L.", "#112233")
        .await
        .expect("update profile");
    assert_eq!(
        (renamed.name.as_str(), renamed.color.as_str()),
        ("Ada L.", "#112233")
    );
    assert_eq!(renamed.email, user.email);
    assert_eq!(store.user(&ada.id).await.expect("by id"), Some(renamed));
    assert!(matches!(
        store
            .update_profile(&UserId::generate(), "x", "#000000")
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.user_by_email("nobody@x").await.expect("lookup"), None);
    let spaces = store.workspaces_of(&ada.id).await.expect("workspaces");
    assert_eq!(spaces.len(), 1);
    assert_eq!(spaces[0].id, ada.workspace);
    assert_eq!(spaces[0].role, WorkspaceRole::Admin);
}

pub async fn refresh_rotation_has_one_winner_and_revocation_sticks(h: &dyn Harness) {
    let stores = open_store_nodes(h).await;
    let store = &stores[0];
    let ada = new_user("ada");
    store.create_user(&ada).await.expect("user");
    let session = AuthSessionId::generate();
    let far = UnixMillis::now().0 + 3_600_000;
    store
        .create_auth_session(
            &session,
            &ada.id,
            &[
                token("a0", TokenKind::Access, far),
                token("r0", TokenKind::Refresh, far),
            ],
        )
        .await
        .expect("session");
    let info = store.token("r0").await.expect("token").expect("known");
    assert_eq!(
        (info.kind, &info.session, &info.user),
        (TokenKind::Refresh, &session, &ada.id)
    );
    assert!(info.rotated_at.is_none() && !info.session_revoked);
    assert_eq!(store.token("nope").await.expect("token"), None);

    // Many concurrent exchanges of one refresh token, across nodes: one wins.
    let mut set = JoinSet::new();
    for i in 0..8 {
        let s = stores[i % stores.len()].clone();
        set.spawn(async move {
            let issue = [token(&format!("r1-{i}"), TokenKind::Refresh, far)];
            s.rotate_refresh_token("r0", UnixMillis::now(), &issue)
                .await
                .expect("rotate")
        });
    }
    let mut winners = 0;
    while let Some(r) = set.join_next().await {
        match r.expect("task") {
            Rotation::Rotated => winners += 1,
            Rotation::AlreadyRotated { .. } => {}
            Rotation::Invalid => panic!("a rotated token reported invalid"),
        }
    }
    assert_eq!(winners, 1, "exactly one exchange rotates the token");
    let stored: Vec<_> = {
        let mut v = Vec::new();
        for i in 0..8 {
            if store
                .token(&format!("r1-{i}"))
                .await
                .expect("token")
                .is_some()
            {
                v.push(i);
            }
        }
        v
    };
    assert_eq!(stored.len(), 1, "only the winner's successor is stored");
    assert!(
        store
            .token("r0")
            .await
            .expect("t")
            .expect("k")
            .rotated_at
            .is_some()
    );
    // An access token cannot be rotated.
    assert_eq!(
        store
            .rotate_refresh_token("a0", UnixMillis::now(), &[])
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
    // Extra tokens (the grace path) go to live sessions only.
    assert!(
        store
            .issue_tokens(&session, &ada.id, &[token("a2", TokenKind::Access, far)])
            .await
            .expect("issue")
    );

    assert!(store.auth_session_active(&session).await.expect("active"));
    assert!(
        !store
            .auth_session_active(&AuthSessionId::generate())
            .await
            .expect("active"),
        "an unknown sign-in is not active"
    );
    store
        .revoke_auth_session(&session, UnixMillis::now())
        .await
        .expect("revoke");
    assert!(!store.auth_session_active(&session).await.expect("active"));
    assert!(
        store
            .token("a2")
            .await
            .expect("t")
            .expect("k")
            .session_revoked
    );
    let live_successor = format!("r1-{}", stored[0]);
    assert_eq!(
        store
            .rotate_refresh_token(&live_successor, UnixMillis::now(), &[])
            .await
            .expect("rotate"),
        Rotation::Invalid,
        "a revoked family cannot be refreshed"
    );
    assert!(
        !store
            .issue_tokens(&session, &ada.id, &[token("a3", TokenKind::Access, far)])
            .await
            .expect("issue")
    );

    // Signing out everywhere revokes every live session and names them.
    let (s2, s3) = (AuthSessionId::generate(), AuthSessionId::generate());
    for s in [&s2, &s3] {
        store
            .create_auth_session(s, &ada.id, &[])
            .await
            .expect("session");
    }
    let mut revoked = store
        .revoke_user_sessions(&ada.id, UnixMillis::now())
        .await
        .expect("revoke all");
    revoked.sort();
    let mut want = vec![s2, s3];
    want.sort();
    assert_eq!(revoked, want);
    for s in &want {
        assert!(!store.auth_session_active(s).await.expect("active"));
    }
}

pub async fn expired_tokens_are_purged(h: &dyn Harness) {
    let store = h.open().await;
    let ada = new_user("ada");
    store.create_user(&ada).await.expect("ada");
    let now = UnixMillis::now().0;
    store
        .create_auth_session(
            &AuthSessionId::generate(),
            &ada.id,
            &[
                token("old", TokenKind::Access, now - 1000),
                token("new", TokenKind::Access, now + 60_000),
            ],
        )
        .await
        .expect("session");
    assert_eq!(
        store
            .purge_expired_tokens(UnixMillis(now))
            .await
            .expect("purge"),
        1
    );
    assert_eq!(store.token("old").await.expect("t"), None);
    assert!(store.token("new").await.expect("t").is_some());
}
