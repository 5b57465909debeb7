//! Access: private documents, invitations, share links, workspaces and
//! their roles.

use super::*;

pub async fn documents_are_private_until_shared(h: &dyn Harness) {
    let store = h.open().await;
    let (ada, bob) = (new_user("ada"), new_user("bob"));
    store.create_user(&ada).await.expect("ada");
    let bob_user = store.create_user(&bob).await.expect("bob");
    let d = doc("private-doc");
    store
        .create_owned_document(&d, "Plans", &ada.workspace, &ada.id)
        .await
        .expect("create");
    assert!(matches!(
        store
            .create_owned_document(&d, "Again", &ada.workspace, &ada.id)
            .await,
        Err(StoreError::AlreadyExists)
    ));
    let own = store
        .document_access(&d, &ada.id)
        .await
        .expect("access")
        .expect("owner sees it");
    assert_eq!(own.role, DocRole::Owner);
    assert_eq!(own.workspace.as_ref(), Some(&ada.workspace));
    assert_eq!(own.owner.as_ref(), Some(&ada.id));
    assert_eq!(
        store.document_access(&d, &bob.id).await.expect("access"),
        None
    );
    assert_eq!(
        store
            .document_access(&doc("missing"), &ada.id)
            .await
            .expect("access"),
        None
    );
    // An ownerless (pre-accounts) document is nobody's.
    store
        .create_document(&doc("legacy"), "Old")
        .await
        .expect("legacy");
    assert_eq!(
        store
            .document_access(&doc("legacy"), &ada.id)
            .await
            .expect("access"),
        None
    );

    let q = ListQuery::default();
    let owned = store
        .list_accessible(&ada.id, DocScope::Owned, &q)
        .await
        .expect("list");
    assert_eq!(
        owned.iter().map(|a| a.meta.id.as_str()).collect::<Vec<_>>(),
        vec!["private-doc"]
    );
    assert!(
        store
            .list_accessible(&bob.id, DocScope::SharedWithMe, &q)
            .await
            .expect("list")
            .is_empty()
    );

    store
        .put_share(&d, &bob.id, DocRole::Viewer, false)
        .await
        .expect("share");
    let seen = store
        .document_access(&d, &bob.id)
        .await
        .expect("access")
        .expect("shared");
    assert_eq!(seen.role, DocRole::Viewer);
    let shared = store
        .list_accessible(&bob.id, DocScope::SharedWithMe, &q)
        .await
        .expect("list");
    assert_eq!(shared.len(), 1);
    assert_eq!(
        (shared[0].meta.title.as_str(), shared[0].role),
        ("Plans", DocRole::Viewer)
    );
    let filtered = ListQuery {
        title_contains: Some("PLA".into()),
        limit: None,
    };
    assert_eq!(
        store
            .list_accessible(&bob.id, DocScope::SharedWithMe, &filtered)
            .await
            .expect("list")
            .len(),
        1
    );
    let none = ListQuery {
        title_contains: Some("zzz".into()),
        limit: None,
    };
    assert!(
        store
            .list_accessible(&bob.id, DocScope::SharedWithMe, &none)
            .await
            .expect("list")
            .is_empty()
    );

    // Changing the role replaces it; a link grant never demotes it.
    store
        .put_share(&d, &bob.id, DocRole::Editor, false)
        .await
        .expect("promote");
    store
        .put_share(&d, &bob.id, DocRole::Viewer, true)
        .await
        .expect("link grant");
    let entries = store.shares(&d).await.expect("shares");
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (&entries[0].user, entries[0].role, entries[0].via_link),
        (&bob_user, DocRole::Editor, false)
    );
    assert!(matches!(
        store
            .put_share(&doc("missing"), &bob.id, DocRole::Viewer, false)
            .await,
        Err(StoreError::NotFound)
    ));

    assert!(store.remove_share(&d, &bob.id).await.expect("unshare"));
    assert!(
        !store
            .remove_share(&d, &bob.id)
            .await
            .expect("unshare twice")
    );
    assert_eq!(
        store.document_access(&d, &bob.id).await.expect("access"),
        None
    );
}

pub async fn link_sharing_grants_and_withdraws(h: &dyn Harness) {
    let store = h.open().await;
    let (ada, bob, cy) = (new_user("ada"), new_user("bob"), new_user("cy"));
    for u in [&ada, &bob, &cy] {
        store.create_user(u).await.expect("user");
    }
    let d = doc("linked");
    store
        .create_owned_document(&d, "Linked", &ada.workspace, &ada.id)
        .await
        .expect("create");
    assert_eq!(store.link(&d).await.expect("link"), None);
    store
        .set_link(&d, "h1", DocRole::Viewer)
        .await
        .expect("link on");
    assert_eq!(
        store.link(&d).await.expect("link").map(|l| l.role),
        Some(DocRole::Viewer)
    );
    assert_eq!(
        store.link_role(&d, "h1").await.expect("role"),
        Some(DocRole::Viewer)
    );
    assert_eq!(store.link_role(&d, "h2").await.expect("role"), None);
    assert_eq!(
        store.link_role(&doc("other"), "h1").await.expect("role"),
        None
    );
    // A new link replaces the old token.
    store
        .set_link(&d, "h2", DocRole::Editor)
        .await
        .expect("new link");
    assert_eq!(store.link_role(&d, "h1").await.expect("role"), None);
    assert_eq!(
        store.link_role(&d, "h2").await.expect("role"),
        Some(DocRole::Editor)
    );
    assert!(matches!(
        store.set_link(&doc("missing"), "h3", DocRole::Viewer).await,
        Err(StoreError::NotFound)
    ));

    store
        .put_share(&d, &bob.id, DocRole::Editor, true)
        .await
        .expect("bob via link");
    store
        .put_share(&d, &cy.id, DocRole::Viewer, false)
        .await
        .expect("cy invited");
    let entries = store.shares(&d).await.expect("shares");
    assert!(entries.iter().any(|e| e.user.id == bob.id && e.via_link));

    let withdrawn = store.remove_link(&d).await.expect("link off");
    assert_eq!(withdrawn, vec![bob.id.clone()]);
    assert_eq!(store.link(&d).await.expect("link"), None);
    assert_eq!(store.link_role(&d, "h2").await.expect("role"), None);
    assert_eq!(
        store.document_access(&d, &bob.id).await.expect("access"),
        None
    );
    assert!(
        store
            .document_access(&d, &cy.id)
            .await
            .expect("access")
            .is_some(),
        "invited people keep access"
    );
}

pub async fn workspaces_have_members_and_roles(h: &dyn Harness) {
    let store = h.open().await;
    let (ada, bob) = (new_user("ada"), new_user("bob"));
    store.create_user(&ada).await.expect("ada");
    store.create_user(&bob).await.expect("bob");
    let team = WorkspaceId::generate();
    let ws = store
        .create_workspace(&team, "Team", &ada.id)
        .await
        .expect("create");
    assert_eq!(ws.role, WorkspaceRole::Admin);
    assert_eq!(
        store.workspace_role(&team, &ada.id).await.expect("role"),
        Some(WorkspaceRole::Admin)
    );
    assert_eq!(
        store.workspace_role(&team, &bob.id).await.expect("role"),
        None
    );
    assert_eq!(
        store
            .set_workspace_member(&team, &bob.id, WorkspaceRole::Member)
            .await
            .expect("invite"),
        MemberChange::Done
    );
    assert_eq!(
        store.workspace_role(&team, &bob.id).await.expect("role"),
        Some(WorkspaceRole::Member)
    );
    assert_eq!(
        store
            .set_workspace_member(&team, &bob.id, WorkspaceRole::Admin)
            .await
            .expect("promote"),
        MemberChange::Done
    );
    let members = store.workspace_members(&team).await.expect("members");
    assert_eq!(
        members
            .iter()
            .map(|m| (m.user.email.as_str(), m.role))
            .collect::<Vec<_>>(),
        vec![
            ("ada@example.test", WorkspaceRole::Admin),
            ("bob@example.test", WorkspaceRole::Admin)
        ]
    );
    assert_eq!(store.workspaces_of(&bob.id).await.expect("of bob").len(), 2);
    assert_eq!(
        store
            .remove_workspace_member(&team, &bob.id)
            .await
            .expect("remove"),
        MemberChange::Done
    );
    assert_eq!(
        store
            .remove_workspace_member(&team, &bob.id)
            .await
            .expect("remove again"),
        MemberChange::NotMember
    );
    assert_eq!(store.workspaces_of(&bob.id).await.expect("of bob").len(), 1);
}

pub async fn every_workspace_keeps_an_admin(h: &dyn Harness) {
    let store = h.open().await;
    let (ada, bob) = (new_user("ada"), new_user("bob"));
    store.create_user(&ada).await.expect("ada");
    store.create_user(&bob).await.expect("bob");
    // The sole admin of a personal workspace can neither leave nor step down.
    assert_eq!(
        store
            .remove_workspace_member(&ada.workspace, &ada.id)
            .await
            .expect("leave"),
        MemberChange::LastAdmin
    );
    assert_eq!(
        store
            .set_workspace_member(&ada.workspace, &ada.id, WorkspaceRole::Member)
            .await
            .expect("step down"),
        MemberChange::LastAdmin
    );
    assert_eq!(
        store
            .workspace_role(&ada.workspace, &ada.id)
            .await
            .expect("role"),
        Some(WorkspaceRole::Admin)
    );
    assert_eq!(
        store
            .remove_workspace_member(&ada.workspace, &bob.id)
            .await
            .expect("not a member"),
        MemberChange::NotMember
    );
    // With a second admin, one may go; of two admins removing each other at
    // once, exactly one succeeds.
    for _ in 0..5 {
        store
            .set_workspace_member(&ada.workspace, &bob.id, WorkspaceRole::Admin)
            .await
            .expect("second admin");
        let (a, b) = tokio::join!(
            store.remove_workspace_member(&ada.workspace, &ada.id),
            store.remove_workspace_member(&ada.workspace, &bob.id),
        );
        let mut outcomes = vec![a.expect("remove ada"), b.expect("remove bob")];
        outcomes.sort_by_key(|o| *o == MemberChange::Done);
        assert_eq!(outcomes, vec![MemberChange::LastAdmin, MemberChange::Done]);
        let admins: Vec<_> = store
            .workspace_members(&ada.workspace)
            .await
            .expect("members")
            .into_iter()
            .filter(|m| m.role == WorkspaceRole::Admin)
            .collect();
        assert_eq!(admins.len(), 1);
        // Back to Ada alone, for the next round.
        let stayed = admins[0].user.id.clone();
        if stayed != ada.id {
            store
                .set_workspace_member(&ada.workspace, &ada.id, WorkspaceRole::Admin)
                .await
                .expect("ada back");
            assert_eq!(
                store
                    .remove_workspace_member(&ada.workspace, &bob.id)
                    .await
                    .expect("bob out"),
                MemberChange::Done
            );
        }
    }
}

pub async fn deleting_a_document_removes_its_grants(h: &dyn Harness) {
    let store = h.open().await;
    let (ada, bob) = (new_user("ada"), new_user("bob"));
    store.create_user(&ada).await.expect("ada");
    store.create_user(&bob).await.expect("bob");
    let d = doc("short-lived");
    store
        .create_owned_document(&d, "Doomed", &ada.workspace, &ada.id)
        .await
        .expect("create");
    store
        .put_share(&d, &bob.id, DocRole::Editor, false)
        .await
        .expect("share");
    store
        .set_link(&d, "hx", DocRole::Viewer)
        .await
        .expect("link");
    store.delete_document(&d).await.expect("delete");
    assert!(store.shares(&d).await.expect("shares").is_empty());
    assert_eq!(store.link(&d).await.expect("link"), None);
    // Re-created under the same id without an owner, it is nobody's.
    create(&*store, &[&d]).await;
    assert_eq!(
        store.document_access(&d, &bob.id).await.expect("access"),
        None
    );
    assert_eq!(
        store.document_access(&d, &ada.id).await.expect("access"),
        None
    );
}
