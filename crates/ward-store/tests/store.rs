#![allow(clippy::unwrap_used)]

//! The store suite: every scenario runs on SQLite, and on PostgreSQL when
//! `WARD_TEST_POSTGRES` holds a server URL (CI sets it; a set but unreachable
//! server fails the test rather than skipping it).

use ward_core::{Role, TenantState};
use ward_store::testing::TestStore;
use ward_store::{
    AuditFilter, MfaOwner, NewAccount, NewApiKey, NewAuditEvent, NewIdentitySource, OidcLoginRow, PageRequest, Store,
    StoreError,
};

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                let t = ward_store::testing::TestStore::sqlite().await;
                super::$name(&t.store).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                let Some(t) = ward_store::testing::TestStore::postgres().await else {
                    eprintln!("skipped: set WARD_TEST_POSTGRES to run on PostgreSQL");
                    return;
                };
                super::$name(&t.store).await;
            })*
        }
    };
}

on_both_backends!(
    bootstrap_once,
    users_totp_factors_are_their_own_and_scoped_by_tenant,
    tenants_and_owner,
    accounts_are_scoped_by_tenant,
    pagination_walks_every_row,
    sessions_and_keys,
    audit_is_append_only_and_filtered,
    lockouts_count_and_forget,
    migrate_is_idempotent,
    access_model_is_scoped_and_versioned,
    enrolment_codes_work_once_and_devices_are_scoped,
    gateways_join_once_and_records_are_stored_once,
    large_record_batches_are_stored_once_across_statements,
    rules_are_reordered_at_once_keeping_their_priorities,
    enrolment_requests_are_decided_once_and_collected_once,
    totp_factors_enrol_once_accept_each_step_once_and_stay_in_their_tenant,
    user_passwords_are_set_cleared_counted_and_stay_in_their_tenant,
    identity_sources_link_users_and_groups_and_logins_are_taken_once,
    ldap_sources_sync_attributes_conditions_and_vanished_users,
    published_hosts_are_unique_and_web_codes_work_once_for_their_host,
    device_sessions_start_end_and_renew_moving_the_epoch,
);

const NOW: i64 = 1_795_000_000_000;

async fn bootstrap_once(s: &Store) {
    assert!(s.bootstrap("local", "h1", "h2", NOW).await.unwrap());
    assert!(!s.bootstrap("local", "h1", "h2", NOW).await.unwrap());
    let system = s.tenant_by_name("system").await.unwrap().unwrap();
    assert!(system.is_system());
    let op = s.account_by_name(&system.id, "operator").await.unwrap().unwrap();
    assert_eq!(op.role, Role::Owner);
    let default = s.tenant_by_name("default").await.unwrap().unwrap();
    let admin = s.tenant_owner(&default.id).await.unwrap().unwrap();
    assert_eq!(admin.name, "admin");
    assert_eq!(admin.password_hash, "h2");
}

async fn tenants_and_owner(s: &Store) {
    let t = s
        .create_tenant("acme", "eu-1", "admin", "hash", Some("operator"), NOW)
        .await
        .unwrap();
    assert_eq!(t.state, TenantState::Active);
    assert_eq!(t.region, "eu-1");
    let dup = s.create_tenant("acme", "eu-1", "admin", "hash", None, NOW).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let t2 = s
        .set_tenant_state(&t.id, TenantState::Suspended, NOW + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t2.state, TenantState::Suspended);
    // Exactly one owner: a second owner is refused by the schema.
    let second = s
        .create_account(
            &t.id,
            NewAccount {
                name: "boss2",
                role: Role::Owner,
                password_hash: "x",
                created_by: None,
            },
            NOW,
        )
        .await;
    assert!(second.is_err());
}

async fn accounts_are_scoped_by_tenant(s: &Store) {
    let a = s.create_tenant("a", "r", "admin", "ha", None, NOW).await.unwrap();
    let b = s.create_tenant("b", "r", "admin", "hb", None, NOW).await.unwrap();
    let aud = s
        .create_account(
            &a.id,
            NewAccount {
                name: "aud",
                role: Role::Auditor,
                password_hash: "x",
                created_by: Some("admin"),
            },
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(aud.created_by.as_deref(), Some("admin"));
    // Tenant B sees nothing of tenant A, by name or by id, and cannot change it.
    assert!(s.account_by_name(&b.id, "aud").await.unwrap().is_none());
    assert!(s.account_by_id(&b.id, &aud.id).await.unwrap().is_none());
    assert!(!s.set_account_role(&b.id, &aud.id, Role::Admin).await.unwrap());
    assert!(!s.delete_account(&b.id, &aud.id).await.unwrap());
    assert!(!s.unlock_account(&b.id, &aud.id).await.unwrap());
    assert_eq!(
        s.list_accounts(&b.id, &PageRequest::new(None, None))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    // Same name in another tenant is fine; twice in one tenant is a conflict.
    s.create_account(
        &b.id,
        NewAccount {
            name: "aud",
            role: Role::Auditor,
            password_hash: "x",
            created_by: None,
        },
        NOW,
    )
    .await
    .unwrap();
    let dup = s
        .create_account(
            &a.id,
            NewAccount {
                name: "aud",
                role: Role::Helpdesk,
                password_hash: "x",
                created_by: None,
            },
            NOW,
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
    // Role change, failures, lock, unlock, delete.
    assert!(s.set_account_role(&a.id, &aud.id, Role::Helpdesk).await.unwrap());
    assert_eq!(s.record_login_failure(&a.id, &aud.id).await.unwrap(), 1);
    assert_eq!(s.record_login_failure(&a.id, &aud.id).await.unwrap(), 2);
    s.lock_account(&a.id, &aud.id, NOW + 1000).await.unwrap();
    assert_eq!(s.locked_accounts(&a.id, NOW).await.unwrap().len(), 1);
    assert!(s.locked_accounts(&b.id, NOW).await.unwrap().is_empty());
    s.record_login_success(&a.id, &aud.id, NOW).await.unwrap();
    let row = s.account_by_id(&a.id, &aud.id).await.unwrap().unwrap();
    assert_eq!(
        (row.failed_logins, row.locked_until, row.last_login_at),
        (0, None, Some(NOW))
    );
    assert_eq!(row.role, Role::Helpdesk);
    assert!(s.delete_account(&a.id, &aud.id).await.unwrap());
    assert!(s.account_by_id(&a.id, &aud.id).await.unwrap().is_none());
}

async fn pagination_walks_every_row(s: &Store) {
    let t = s.create_tenant("p", "r", "admin", "h", None, NOW).await.unwrap();
    for i in 0..7 {
        let name = format!("acct{i}");
        s.create_account(
            &t.id,
            NewAccount {
                name: &name,
                role: Role::Auditor,
                password_hash: "x",
                created_by: None,
            },
            NOW,
        )
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_accounts(&t.id, &PageRequest::new(cursor.clone(), Some(3)))
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.into_iter().map(|a| a.name));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 8);
}

async fn sessions_and_keys(s: &Store) {
    let t = s.create_tenant("k", "r", "admin", "h", None, NOW).await.unwrap();
    let owner = s.tenant_owner(&t.id).await.unwrap().unwrap();
    let ses = s
        .create_session(&t.id, &owner.id, "tokhash", "127.0.0.1", NOW, NOW + 10)
        .await
        .unwrap();
    assert_eq!(s.session_by_token_hash("tokhash").await.unwrap().unwrap().id, ses.id);
    assert!(s.session_by_token_hash("other").await.unwrap().is_none());
    assert_eq!(s.delete_expired_sessions(NOW + 5).await.unwrap(), 0);
    assert_eq!(s.delete_expired_sessions(NOW + 10).await.unwrap(), 1);
    assert!(s.session_by_token_hash("tokhash").await.unwrap().is_none());

    let key = s
        .create_api_key(
            &t.id,
            NewApiKey {
                account_id: &owner.id,
                name: "ci",
                role_cap: Some(Role::Auditor),
                secret_hash: "sh",
                expires_at: None,
            },
            NOW,
        )
        .await
        .unwrap();
    let found = s.api_key_by_id(&key.id).await.unwrap().unwrap();
    assert_eq!(found.role_cap, Some(Role::Auditor));
    assert_eq!(found.tenant_id, t.id);
    s.touch_api_key(&t.id, &key.id, NOW + 5).await.unwrap();
    s.touch_api_key(&t.id, &key.id, NOW + 6).await.unwrap(); // within a minute: not written
    assert_eq!(
        s.api_key_by_id(&key.id).await.unwrap().unwrap().last_used_at,
        Some(NOW + 5)
    );
    assert!(!s.revoke_api_key("other-tenant", &owner.id, &key.id, NOW).await.unwrap());
    assert!(s.revoke_api_key(&t.id, &owner.id, &key.id, NOW).await.unwrap());
    assert!(
        !s.revoke_api_key(&t.id, &owner.id, &key.id, NOW).await.unwrap(),
        "revoking twice"
    );
    let keys = s
        .list_api_keys(&t.id, &owner.id, &PageRequest::new(None, None))
        .await
        .unwrap();
    assert_eq!(keys.items[0].revoked_at, Some(NOW));
    // A new password ends the account's sessions.
    s.create_session(&t.id, &owner.id, "t2", "::1", NOW, NOW + 100)
        .await
        .unwrap();
    assert!(s.set_password_hash(&t.id, &owner.id, "new").await.unwrap());
    assert!(s.session_by_token_hash("t2").await.unwrap().is_none());
}

async fn audit_is_append_only_and_filtered(s: &Store) {
    let event = |tenant: &str, actor: &str, action: &str, result: &str, time: i64| NewAuditEvent {
        tenant_id: tenant.into(),
        time,
        actor_name: Some(actor.into()),
        actor_role: Some(Role::Admin),
        on_behalf_of: Some("admin".into()),
        source_ip: "127.0.0.1".into(),
        action: action.into(),
        target: "account:x".into(),
        result: result.into(),
        status: 201,
        ..Default::default()
    };
    s.append_audit(&event("t1", "admin", "account.create", "ok", NOW))
        .await
        .unwrap();
    s.append_audit(&event("t1", "aud", "account.create", "denied", NOW + 10))
        .await
        .unwrap();
    s.append_audit(&event("t1", "aud", "audit.list", "ok", NOW + 20))
        .await
        .unwrap();
    s.append_audit(&event("t2", "admin", "account.create", "ok", NOW))
        .await
        .unwrap();
    let all = s
        .list_audit("t1", &AuditFilter::default(), &PageRequest::new(None, None))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 3);
    assert_eq!(all.items[0].action, "audit.list", "newest first");
    let f = AuditFilter {
        actor: Some("aud".into()),
        result: Some("denied".into()),
        ..Default::default()
    };
    let denied = s.list_audit("t1", &f, &PageRequest::new(None, None)).await.unwrap();
    assert_eq!(denied.items.len(), 1);
    assert_eq!(denied.items[0].on_behalf_of.as_deref(), Some("admin"));
    let f = AuditFilter {
        since: Some(NOW + 5),
        ..Default::default()
    };
    assert_eq!(
        s.list_audit("t1", &f, &PageRequest::new(None, None))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let page = s
        .list_audit("t1", &AuditFilter::default(), &PageRequest::new(None, Some(2)))
        .await
        .unwrap();
    let next = s
        .list_audit(
            "t1",
            &AuditFilter::default(),
            &PageRequest::new(page.next_cursor.clone(), Some(2)),
        )
        .await
        .unwrap();
    assert_eq!(page.items.len() + next.items.len(), 3);
    assert!(next.next_cursor.is_none());
    // The schema refuses to change a recorded event.
    let changed = s.raw_execute_for_tests("UPDATE audit_events SET result = 'ok'").await;
    assert!(changed.is_err(), "audit rows must not be updatable");
    let deleted = s.raw_execute_for_tests("DELETE FROM audit_events").await;
    assert!(deleted.is_err(), "audit rows must not be deletable");
    assert_eq!(
        s.list_audit("t1", &AuditFilter::default(), &PageRequest::new(None, None))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
}

async fn lockouts_count_and_forget(s: &Store) {
    let l = s.record_address_failure("t", "10.0.0.1", NOW, 60_000).await.unwrap();
    assert_eq!(l.failures, 1);
    let l = s
        .record_address_failure("t", "10.0.0.1", NOW + 1, 60_000)
        .await
        .unwrap();
    assert_eq!(l.failures, 2);
    s.lock_address("t", "10.0.0.1", NOW + 5000).await.unwrap();
    assert_eq!(s.locked_addresses("t", NOW).await.unwrap().len(), 1);
    assert!(s.locked_addresses("other", NOW).await.unwrap().is_empty());
    // After the window, counting starts again.
    let l = s
        .record_address_failure("t", "10.0.0.1", NOW + 120_000, 60_000)
        .await
        .unwrap();
    assert_eq!(l.failures, 1);
    assert!(s.unlock_address("t", "10.0.0.1").await.unwrap());
    assert!(s.address_lockout("t", "10.0.0.1").await.unwrap().is_none());
}

async fn access_model_is_scoped_and_versioned(s: &Store) {
    use ward_store::{AppRow, RuleRow};
    let a = s.create_tenant("a", "r", "admin", "h", None, NOW).await.unwrap();
    let b = s.create_tenant("b", "r", "admin", "h", None, NOW).await.unwrap();
    let epoch0 = s.policy_epoch().await.unwrap();

    let alice = s.create_user(&a.id, "alice", NOW).await.unwrap();
    let eng = s.create_group(&a.id, "eng", NOW).await.unwrap();
    assert!(matches!(
        s.create_user(&a.id, "alice", NOW).await,
        Err(StoreError::Conflict(_))
    ));
    s.add_member(&a.id, &eng.id, &alice.id).await.unwrap();
    s.add_member(&a.id, &eng.id, &alice.id).await.unwrap(); // twice: no-op
                                                            // Another tenant cannot join A's user to anything, nor see A's users.
    let b_grp = s.create_group(&b.id, "eng", NOW).await.unwrap();
    s.add_member(&b.id, &b_grp.id, &alice.id).await.unwrap();
    assert!(s.all_memberships(&b.id).await.unwrap().is_empty());
    assert!(s.user_by_name(&b.id, "alice").await.unwrap().is_none());
    assert!(s.user_by_id(&b.id, &alice.id).await.unwrap().is_none());
    assert_eq!(s.user_by_id(&a.id, &alice.id).await.unwrap().unwrap().name, "alice");
    assert_eq!(
        s.all_memberships(&a.id).await.unwrap(),
        vec![(eng.id.clone(), alice.id.clone())]
    );

    let app = AppRow {
        name: "db".into(),
        addresses: vec!["10.0.0.0/24".into(), "*.corp.example".into()],
        ports: vec!["5432".into(), "8000-8100".into()],
        protocol: "tcp".into(),
        tags: vec!["prod".into()],
        ..Default::default()
    };
    let app = s.create_app(&a.id, &app, NOW).await.unwrap();
    assert_eq!(
        s.app_by_name(&a.id, "db").await.unwrap().unwrap().addresses,
        app.addresses
    );
    let rule = RuleRow {
        priority: 1,
        action: "allow".into(),
        app_ids: vec![app.id.clone()],
        group_ids: vec![eng.id.clone()],
        posture: "enforce".into(),
        require_compliant: true,
        valid_until: Some(NOW + 1000),
        enabled: true,
        ..Default::default()
    };
    let rule = s.create_rule(&a.id, &rule, NOW).await.unwrap();
    let dup = s
        .create_rule(
            &a.id,
            &RuleRow {
                priority: 1,
                ..rule.clone()
            },
            NOW,
        )
        .await;
    assert!(
        matches!(dup, Err(StoreError::Conflict(_))),
        "priorities are unique per tenant"
    );
    s.create_rule(
        &b.id,
        &RuleRow {
            priority: 1,
            ..rule.clone()
        },
        NOW,
    )
    .await
    .unwrap();
    let stored = s.rule_by_id(&a.id, &rule.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.require_compliant, stored.valid_until, stored.enabled),
        (true, Some(NOW + 1000), true)
    );
    assert_eq!(stored.group_ids, vec![eng.id.clone()]);
    assert!(s.rule_by_id(&b.id, &rule.id).await.unwrap().is_none());
    assert!(!s.delete_rule(&b.id, &rule.id).await.unwrap());

    let epoch1 = s.policy_epoch().await.unwrap();
    assert!(epoch1 > epoch0, "changes move the policy epoch");
    assert!(!s.set_user_disabled(&b.id, &alice.id, true).await.unwrap());
    assert_eq!(
        s.policy_epoch().await.unwrap(),
        epoch1,
        "a change that touched nothing does not"
    );
    assert!(s.set_user_disabled(&a.id, &alice.id, true).await.unwrap());
    assert!(s.policy_epoch().await.unwrap() > epoch1);
    // Deleting a user removes its memberships.
    assert!(s.delete_user(&a.id, &alice.id).await.unwrap());
    assert!(s.all_memberships(&a.id).await.unwrap().is_empty());
}

async fn enrolment_codes_work_once_and_devices_are_scoped(s: &Store) {
    use ward_store::{DeviceRow, TenantCaRow};
    let a = s.create_tenant("a", "r", "admin", "h", None, NOW).await.unwrap();
    let b = s.create_tenant("b", "r", "admin", "h", None, NOW).await.unwrap();
    let alice = s.create_user(&a.id, "alice", NOW).await.unwrap();

    let ca = TenantCaRow {
        cert_pem: "cert-1".into(),
        sealed_key: "sealed-1".into(),
    };
    assert_eq!(s.insert_tenant_ca(&a.id, &ca, NOW).await.unwrap(), ca);
    let late = TenantCaRow {
        cert_pem: "cert-2".into(),
        sealed_key: "sealed-2".into(),
    };
    assert_eq!(
        s.insert_tenant_ca(&a.id, &late, NOW).await.unwrap(),
        ca,
        "the first CA stays"
    );
    assert_eq!(s.tenant_ca(&a.id).await.unwrap(), Some(ca.clone()));

    let code = s
        .create_enroll_code(&a.id, &alice.id, "codehash", "admin", NOW, NOW + 1000)
        .await
        .unwrap();
    assert!(
        s.usable_enroll_code("codehash", NOW + 1000).await.unwrap().is_none(),
        "expired"
    );
    let found = s.usable_enroll_code("codehash", NOW + 1).await.unwrap().unwrap();
    assert_eq!(
        (found.tenant_id.as_str(), found.user_id.as_str()),
        (a.id.as_str(), alice.id.as_str())
    );
    let device = DeviceRow {
        id: "dev_1".into(),
        tenant_id: a.id.clone(),
        user_id: alice.id.clone(),
        name: "laptop".into(),
        posture: "{}".into(),
        compliant: true,
        cert_serial: "01".into(),
        cert_not_after: NOW + 86_400_000,
        ..Default::default()
    };
    let epoch = s.policy_epoch().await.unwrap();
    let d = s
        .redeem_enroll_code(&code.id, &device, "tokhash", NOW + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.state.as_str(), d.enrolled_at), ("active", NOW + 1));
    assert!(s.policy_epoch().await.unwrap() > epoch);
    let again = DeviceRow {
        id: "dev_2".into(),
        ..device.clone()
    };
    assert!(
        s.redeem_enroll_code(&code.id, &again, "tokhash2", NOW + 2)
            .await
            .unwrap()
            .is_none(),
        "one use only"
    );
    assert!(s.usable_enroll_code("codehash", NOW + 2).await.unwrap().is_none());

    assert_eq!(s.device_by_token_hash("tokhash").await.unwrap().unwrap().id, "dev_1");
    assert!(s.device_by_id(&b.id, "dev_1").await.unwrap().is_none());
    assert!(!s.revoke_device(&b.id, "dev_1", NOW).await.unwrap());
    s.set_device_posture(&a.id, "dev_1", "{\"os\":\"linux\"}", false, NOW + 5)
        .await
        .unwrap();
    let d = s.device_by_id(&a.id, "dev_1").await.unwrap().unwrap();
    assert_eq!((d.compliant, d.last_seen_at), (false, NOW + 5));
    let epoch = s.policy_epoch().await.unwrap();
    assert!(s.revoke_device(&a.id, "dev_1", NOW + 6).await.unwrap());
    assert!(
        !s.revoke_device(&a.id, "dev_1", NOW + 7).await.unwrap(),
        "revoking twice"
    );
    assert!(s.policy_epoch().await.unwrap() > epoch);
    assert!(s.device_by_id(&a.id, "dev_1").await.unwrap().unwrap().is_revoked());
    assert_eq!(s.all_devices(&a.id).await.unwrap().len(), 1);
    assert!(s.all_devices(&b.id).await.unwrap().is_empty());

    assert_eq!(s.posture_requirements(&a.id).await.unwrap(), None);
    s.set_posture_requirements(&a.id, "{\"disk_encryption\":true}")
        .await
        .unwrap();
    s.set_posture_requirements(&a.id, "{\"firewall\":true}").await.unwrap();
    assert_eq!(
        s.posture_requirements(&a.id).await.unwrap().as_deref(),
        Some("{\"firewall\":true}")
    );
    assert_eq!(s.posture_requirements(&b.id).await.unwrap(), None);
}

async fn gateways_join_once_and_records_are_stored_once(s: &Store) {
    use ward_store::{AccessFilter, AccessRecordRow, GatewayRow};
    s.create_gateway_join_code("edge-1", "joinhash", "operator", NOW, NOW + 1000)
        .await
        .unwrap();
    let gw = GatewayRow {
        id: "gw_1".into(),
        addresses: vec!["127.0.0.1".into(), "gw.example".into()],
        cert_not_after: NOW + 10,
        ..Default::default()
    };
    let joined = s
        .join_gateway("joinhash", &gw, "gwtoken", NOW + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(joined.name, "edge-1");
    let again = GatewayRow {
        id: "gw_2".into(),
        ..gw.clone()
    };
    assert!(
        s.join_gateway("joinhash", &again, "gwtoken2", NOW + 2)
            .await
            .unwrap()
            .is_none(),
        "one use only"
    );
    assert_eq!(
        s.gateway_by_token_hash("gwtoken").await.unwrap().unwrap().addresses,
        gw.addresses
    );
    assert_eq!(s.list_gateways().await.unwrap().len(), 1);

    let record = |id: &str, tenant: &str, user: &str, action: &str, started: i64| AccessRecordRow {
        id: id.into(),
        tenant_id: tenant.into(),
        started_ms: started,
        user_id: user.into(),
        device_id: "dev".into(),
        gateway_id: "gw_1".into(),
        source: "127.0.0.1:5000".into(),
        dest_host: "db.corp.example".into(),
        dest_addr: Some("10.0.0.5:5432".into()),
        port: 5432,
        protocol: "tcp".into(),
        action: action.into(),
        rule_id: None,
        reason: "no_rule_matched".into(),
        bytes_up: 10,
        bytes_down: 20,
        duration_ms: 5,
        end_reason: "closed".into(),
        ..Default::default()
    };
    let batch = vec![
        record("acr_01", "t1", "alice", "allow", NOW),
        record("acr_02", "t1", "bob", "deny", NOW + 1),
        record("acr_03", "t2", "carol", "allow", NOW + 2),
    ];
    assert_eq!(s.insert_access_records(&batch, NOW).await.unwrap(), 3);
    assert_eq!(
        s.insert_access_records(&batch, NOW).await.unwrap(),
        0,
        "a retried batch is stored once"
    );
    let all = s
        .list_access_records("t1", &AccessFilter::default(), &PageRequest::new(None, None))
        .await
        .unwrap();
    assert_eq!(
        all.items.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["acr_02", "acr_01"]
    );
    assert_eq!(all.items[1].dest_addr.as_deref(), Some("10.0.0.5:5432"));
    let f = AccessFilter {
        action: Some("deny".into()),
        ..Default::default()
    };
    assert_eq!(
        s.list_access_records("t1", &f, &PageRequest::new(None, None))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let f = AccessFilter {
        user_id: Some("carol".into()),
        ..Default::default()
    };
    assert!(s
        .list_access_records("t1", &f, &PageRequest::new(None, None))
        .await
        .unwrap()
        .items
        .is_empty());
    let f = AccessFilter {
        since: Some(NOW + 1),
        ..Default::default()
    };
    assert_eq!(
        s.list_access_records("t1", &f, &PageRequest::new(None, None))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

/// Batches larger than one multi-row INSERT, with ids repeated within the
/// batch, across statements and across batches.
async fn large_record_batches_are_stored_once_across_statements(s: &Store) {
    use ward_store::{AccessFilter, AccessRecordRow};
    let record = |n: usize| AccessRecordRow {
        id: format!("acr_{n:06}"),
        tenant_id: "t1".into(),
        started_ms: NOW + n as i64,
        user_id: format!("user{}", n % 7),
        device_id: "dev".into(),
        gateway_id: "gw_1".into(),
        source: "127.0.0.1".into(),
        dest_host: "db.corp.example".into(),
        dest_addr: n.is_multiple_of(2).then(|| "10.0.0.5".into()),
        port: 5432,
        protocol: "tcp".into(),
        action: if n.is_multiple_of(3) { "deny" } else { "allow" }.into(),
        rule_id: n.is_multiple_of(5).then(|| format!("rul_{n}")),
        reason: "rule_matched".into(),
        bytes_up: n as i64,
        bytes_down: 2 * n as i64,
        duration_ms: 3,
        end_reason: "closed".into(),
        ..Default::default()
    };
    let per = ward_store::ROWS_PER_INSERT[0] * 3;
    // Many statements' worth, with the first ten again at the end (in a
    // later statement than their first copy) and one id twice in a row.
    let mut batch: Vec<AccessRecordRow> = (0..per * 5 / 2).map(record).collect();
    batch.extend((0..10).map(record));
    batch.insert(1, record(1));
    assert_eq!(
        s.insert_access_records(&batch, NOW).await.unwrap(),
        (per * 5 / 2) as u64
    );
    // The next batch overlaps the first half.
    let next: Vec<AccessRecordRow> = (per..per * 3).map(record).collect();
    assert_eq!(s.insert_access_records(&next, NOW).await.unwrap(), (per / 2) as u64);

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_access_records("t1", &AccessFilter::default(), &PageRequest::new(cursor, Some(500)))
            .await
            .unwrap();
        seen.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), per * 3);
    let last = seen.iter().find(|r| r.id == format!("acr_{:06}", per * 3 - 1)).unwrap();
    let expected = record(per * 3 - 1);
    assert_eq!(
        (
            last.bytes_up,
            last.bytes_down,
            &last.rule_id,
            &last.dest_addr,
            &last.user_id
        ),
        (
            expected.bytes_up,
            expected.bytes_down,
            &expected.rule_id,
            &expected.dest_addr,
            &expected.user_id
        )
    );

    // Counted per bucket: ids 0..per*3 started at NOW + n; one in three denied.
    let bucket = 10;
    let counts = s.access_counts("t1", NOW, bucket).await.unwrap();
    let total: u64 = counts.iter().map(|(_, a, d)| a + d).sum();
    assert_eq!(total, (per * 3) as u64);
    let denied: u64 = counts.iter().map(|(_, _, d)| d).sum();
    assert_eq!(denied, (0..per * 3).filter(|n| n % 3 == 0).count() as u64);
    assert!(counts.windows(2).all(|w| w[0].0 < w[1].0), "oldest first");
    assert!(counts.iter().all(|(b, _, _)| b % bucket == 0));
    assert!(s
        .access_counts("t1", NOW + (per * 3) as i64, bucket)
        .await
        .unwrap()
        .is_empty());
    assert!(
        s.access_counts("t2", NOW, bucket).await.unwrap().is_empty(),
        "another tenant's are not counted"
    );
}

async fn totp_factors_enrol_once_accept_each_step_once_and_stay_in_their_tenant(s: &Store) {
    let t = s.create_tenant("m", "r", "admin", "h", None, NOW).await.unwrap();
    let other = s.create_tenant("o", "r", "admin", "h", None, NOW).await.unwrap();
    let owner = s.tenant_owner(&t.id).await.unwrap().unwrap();
    assert!(!owner.mfa_enabled);
    assert!(s.totp(&t.id, &owner.id).await.unwrap().is_none());
    // Another tenant cannot start, confirm, use or remove this account's factor.
    assert!(!s.start_totp(&other.id, &owner.id, "v1.x", NOW).await.unwrap());
    assert!(s.start_totp(&t.id, &owner.id, "v1.first", NOW).await.unwrap());
    assert!(
        s.start_totp(&t.id, &owner.id, "v1.second", NOW + 1).await.unwrap(),
        "a pending secret is replaced"
    );
    let pending = s.totp(&t.id, &owner.id).await.unwrap().unwrap();
    assert_eq!(
        (pending.sealed_secret.as_str(), pending.enabled_at),
        ("v1.second", None)
    );
    assert!(
        !s.use_totp_step(&t.id, &owner.id, 10).await.unwrap(),
        "pending is not enabled"
    );
    assert!(!s.tenant_owner(&t.id).await.unwrap().unwrap().mfa_enabled);
    let hashes = vec!["h1".to_owned(), "h2".to_owned()];
    assert!(!s.confirm_totp(&other.id, &owner.id, 5, &hashes, NOW).await.unwrap());
    assert!(s.confirm_totp(&t.id, &owner.id, 5, &hashes, NOW + 2).await.unwrap());
    assert!(
        !s.confirm_totp(&t.id, &owner.id, 6, &hashes, NOW + 3).await.unwrap(),
        "only once"
    );
    assert!(
        !s.start_totp(&t.id, &owner.id, "v1.third", NOW).await.unwrap(),
        "enabled is not replaced"
    );
    let on = s.account_by_id(&t.id, &owner.id).await.unwrap().unwrap();
    assert!(on.mfa_enabled);
    assert!(s.account_by_name(&t.id, "admin").await.unwrap().unwrap().mfa_enabled);
    // Each step once, and never an earlier one.
    assert!(
        !s.use_totp_step(&t.id, &owner.id, 5).await.unwrap(),
        "the confirming step is used"
    );
    assert!(s.use_totp_step(&t.id, &owner.id, 6).await.unwrap());
    assert!(!s.use_totp_step(&t.id, &owner.id, 6).await.unwrap());
    assert!(!s.use_totp_step(&t.id, &owner.id, 4).await.unwrap());
    assert!(!s.use_totp_step(&other.id, &owner.id, 7).await.unwrap());
    // Recovery codes work once, in their own tenant.
    assert_eq!(s.recovery_codes_left(&t.id, &owner.id).await.unwrap(), 2);
    assert!(!s.use_recovery_code(&other.id, &owner.id, "h1").await.unwrap());
    assert!(s.use_recovery_code(&t.id, &owner.id, "h1").await.unwrap());
    assert!(!s.use_recovery_code(&t.id, &owner.id, "h1").await.unwrap());
    assert_eq!(s.recovery_codes_left(&t.id, &owner.id).await.unwrap(), 1);
    // Removing: not from another tenant; with the sessions when asked.
    s.create_session(&t.id, &owner.id, "mfa-tok", "::1", NOW, NOW + 100)
        .await
        .unwrap();
    assert!(!s.remove_totp(&other.id, &owner.id, true).await.unwrap());
    assert!(s.account_by_id(&t.id, &owner.id).await.unwrap().unwrap().mfa_enabled);
    assert!(s.remove_totp(&t.id, &owner.id, true).await.unwrap());
    assert!(s.session_by_token_hash("mfa-tok").await.unwrap().is_none());
    assert!(!s.account_by_id(&t.id, &owner.id).await.unwrap().unwrap().mfa_enabled);
    assert_eq!(s.recovery_codes_left(&t.id, &owner.id).await.unwrap(), 0);
    assert!(s.start_totp(&t.id, &owner.id, "v1.again", NOW).await.unwrap());

    // The tenant's requirement.
    assert!(!t.require_admin_mfa);
    let t2 = s.set_require_admin_mfa(&t.id, true, NOW + 5).await.unwrap().unwrap();
    assert!(t2.require_admin_mfa);
    assert!(s.tenant_by_name("m").await.unwrap().unwrap().require_admin_mfa);
    assert!(!s.tenant_by_name("o").await.unwrap().unwrap().require_admin_mfa);
    assert!(
        !s.set_require_admin_mfa(&t.id, false, NOW + 6)
            .await
            .unwrap()
            .unwrap()
            .require_admin_mfa
    );
}

async fn user_passwords_are_set_cleared_counted_and_stay_in_their_tenant(s: &Store) {
    let a = s.create_tenant("a", "r", "admin", "h", None, NOW).await.unwrap();
    let b = s.create_tenant("b", "r", "admin", "h", None, NOW).await.unwrap();
    let alice = s.create_user(&a.id, "alice", NOW).await.unwrap();
    assert!(!alice.has_password);
    assert_eq!(
        (alice.failed_logins, alice.locked_until, alice.last_login_at),
        (0, None, None)
    );
    assert_eq!(s.user_password_hash(&a.id, &alice.id).await.unwrap(), None);
    let epoch = s.policy_epoch().await.unwrap();

    // Set: only in its own tenant.
    assert!(!s.set_user_password_hash(&b.id, &alice.id, Some("hb")).await.unwrap());
    assert!(s.set_user_password_hash(&a.id, &alice.id, Some("ha")).await.unwrap());
    assert_eq!(
        s.user_password_hash(&a.id, &alice.id).await.unwrap().as_deref(),
        Some("ha")
    );
    assert_eq!(s.user_password_hash(&b.id, &alice.id).await.unwrap(), None);
    let row = s.user_by_name(&a.id, "alice").await.unwrap().unwrap();
    assert!(row.has_password);
    assert!(s.all_users(&a.id).await.unwrap()[0].has_password);
    assert!(s.list_users(&a.id, &PageRequest::new(None, None)).await.unwrap().items[0].has_password);
    assert_eq!(s.policy_epoch().await.unwrap(), epoch, "passwords are not policy");

    // Failures count, lock, and are reset by a success or an unlock.
    assert_eq!(s.record_user_login_failure(&a.id, &alice.id).await.unwrap(), 1);
    assert_eq!(s.record_user_login_failure(&a.id, &alice.id).await.unwrap(), 2);
    assert_eq!(s.record_user_login_failure(&b.id, &alice.id).await.unwrap(), 0);
    s.lock_user(&b.id, &alice.id, NOW + 9000).await.unwrap();
    assert_eq!(
        s.user_by_name(&a.id, "alice").await.unwrap().unwrap().locked_until,
        None
    );
    s.lock_user(&a.id, &alice.id, NOW + 5000).await.unwrap();
    let row = s.user_by_name(&a.id, "alice").await.unwrap().unwrap();
    assert_eq!((row.failed_logins, row.locked_until), (2, Some(NOW + 5000)));
    assert!(!s.unlock_user(&b.id, &alice.id).await.unwrap());
    assert!(s.unlock_user(&a.id, &alice.id).await.unwrap());
    let row = s.user_by_name(&a.id, "alice").await.unwrap().unwrap();
    assert_eq!((row.failed_logins, row.locked_until), (0, None));
    s.record_user_login_failure(&a.id, &alice.id).await.unwrap();
    s.lock_user(&a.id, &alice.id, NOW + 5000).await.unwrap();
    s.record_user_login_success(&a.id, &alice.id, NOW + 1).await.unwrap();
    let row = s.user_by_name(&a.id, "alice").await.unwrap().unwrap();
    assert_eq!(
        (row.failed_logins, row.locked_until, row.last_login_at),
        (0, None, Some(NOW + 1))
    );

    // Cleared: no hash, no password.
    assert!(!s.set_user_password_hash(&b.id, &alice.id, None).await.unwrap());
    assert!(s.user_password_hash(&a.id, &alice.id).await.unwrap().is_some());
    assert!(s.set_user_password_hash(&a.id, &alice.id, None).await.unwrap());
    assert_eq!(s.user_password_hash(&a.id, &alice.id).await.unwrap(), None);
    assert!(!s.user_by_name(&a.id, "alice").await.unwrap().unwrap().has_password);
}

async fn migrate_is_idempotent(s: &Store) {
    s.migrate().await.unwrap();
    s.ready().await.unwrap();
}

#[tokio::test]
async fn data_survives_reopening_the_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.db");
    {
        let s = Store::open_sqlite(&path).await.unwrap();
        s.migrate().await.unwrap();
        s.bootstrap("local", "a", "b", NOW).await.unwrap();
        s.close().await;
    }
    let s = Store::open_sqlite(&path).await.unwrap();
    s.ready().await.unwrap();
    assert!(s.tenant_by_name("default").await.unwrap().is_some());
}

#[tokio::test]
async fn a_fresh_store_is_not_ready_until_migrated() {
    let t = TestStore::sqlite().await;
    t.store.ready().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_sqlite(&dir.path().join("x.db")).await.unwrap();
    assert!(s.ready().await.is_err());
}

#[tokio::test]
async fn bad_urls_are_refused_clearly() {
    let e = Store::connect("mysql://x").await.unwrap_err();
    assert!(e.to_string().contains("sqlite:// or postgres://"), "{e}");
}

/// A reorder assigns the priorities in use to the rules in the new order,
/// in one change of the policy epoch, and refuses a list that is not
/// exactly the tenant's rules.
async fn rules_are_reordered_at_once_keeping_their_priorities(s: &Store) {
    use ward_store::RuleRow;
    let t = s.create_tenant("reorder", "r", "admin", "h", None, NOW).await.unwrap();
    let other = s
        .create_tenant("reorder-other", "r", "admin", "h", None, NOW)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for p in [5, 10, 20] {
        let r = RuleRow {
            priority: p,
            action: "allow".into(),
            tags: vec!["x".into()],
            posture: "enforce".into(),
            enabled: true,
            ..Default::default()
        };
        ids.push(s.create_rule(&t.id, &r, NOW).await.unwrap().id);
    }
    let foreign = s
        .create_rule(
            &other.id,
            &RuleRow {
                priority: 1,
                action: "block".into(),
                tags: vec!["x".into()],
                posture: "enforce".into(),
                enabled: true,
                ..Default::default()
            },
            NOW,
        )
        .await
        .unwrap()
        .id;
    let epoch = s.policy_epoch().await.unwrap();
    let order = |rules: Vec<RuleRow>| rules.into_iter().map(|r| (r.id, r.priority)).collect::<Vec<_>>();

    let new = vec![ids[2].clone(), ids[0].clone(), ids[1].clone()];
    assert!(s.reorder_rules(&t.id, &new).await.unwrap());
    assert_eq!(
        order(s.all_rules(&t.id).await.unwrap()),
        vec![(ids[2].clone(), 5), (ids[0].clone(), 10), (ids[1].clone(), 20)]
    );
    assert_eq!(s.policy_epoch().await.unwrap(), epoch + 1);

    // Missing, repeated or foreign ids change nothing.
    for bad in [
        vec![ids[0].clone(), ids[1].clone()],
        vec![ids[0].clone(), ids[0].clone(), ids[1].clone()],
        vec![ids[0].clone(), ids[1].clone(), foreign.clone()],
    ] {
        assert!(!s.reorder_rules(&t.id, &bad).await.unwrap(), "{bad:?}");
    }
    assert_eq!(order(s.all_rules(&t.id).await.unwrap())[0].0, ids[2]);
    assert_eq!(order(s.all_rules(&other.id).await.unwrap()), vec![(foreign, 1)]);

    // One priority at a time: a taken one is a conflict.
    assert!(matches!(
        s.set_rule_priority(&t.id, &ids[0], 5).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.set_rule_priority(&t.id, &ids[0], 7).await.unwrap());
    assert!(!s.set_rule_priority(&t.id, "rul_none", 8).await.unwrap());
}

/// An enrolment request: pending until decided once, its code collected
/// once; user codes free again once their request is over; portal sessions
/// expire and end per user.
async fn enrolment_requests_are_decided_once_and_collected_once(s: &Store) {
    let t = s.create_tenant("portal", "r", "admin", "h", None, NOW).await.unwrap();
    let alice = s.create_user(&t.id, "alice", NOW).await.unwrap();
    let exp = NOW + 600_000;
    let r = s
        .create_enroll_request("hash-a", "BCDF-GHJK", "laptop", "10.0.0.1", NOW, exp)
        .await
        .unwrap();
    assert!(matches!(
        s.create_enroll_request("hash-b", "BCDF-GHJK", "other", "10.0.0.2", NOW, exp)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.pending_enroll_requests(Some("10.0.0.1"), NOW).await.unwrap(), 1);
    assert_eq!(s.pending_enroll_requests(Some("10.0.0.9"), NOW).await.unwrap(), 0);
    assert_eq!(s.pending_enroll_requests(None, NOW).await.unwrap(), 1);
    let found = s.pending_enroll_request("BCDF-GHJK", NOW).await.unwrap().unwrap();
    assert_eq!(
        (found.id.as_str(), found.device_name.as_str()),
        (r.id.as_str(), "laptop")
    );
    assert!(
        s.pending_enroll_request("BCDF-GHJK", exp).await.unwrap().is_none(),
        "expired"
    );
    assert_eq!(
        s.collect_enroll_request(&r.id).await.unwrap(),
        None,
        "nothing to collect yet"
    );

    assert!(s
        .approve_enroll_request(&r.id, &t.id, &alice.id, "sealed", NOW + 1)
        .await
        .unwrap());
    assert!(!s
        .approve_enroll_request(&r.id, &t.id, &alice.id, "again", NOW + 2)
        .await
        .unwrap());
    assert!(!s.deny_enroll_request(&r.id, &t.id, &alice.id, NOW + 2).await.unwrap());
    assert!(s.pending_enroll_request("BCDF-GHJK", NOW + 3).await.unwrap().is_none());
    assert_eq!(
        s.collect_enroll_request(&r.id).await.unwrap().as_deref(),
        Some("sealed")
    );
    assert_eq!(s.collect_enroll_request(&r.id).await.unwrap(), None, "collected once");
    let done = s.enroll_request_by_secret("hash-a").await.unwrap().unwrap();
    assert_eq!((done.state.as_str(), done.sealed_code), ("collected", None));
    // The code is free for a new request now.
    let again = s
        .create_enroll_request("hash-c", "BCDF-GHJK", "laptop", "10.0.0.1", NOW + 5, exp)
        .await
        .unwrap();
    assert!(s
        .deny_enroll_request(&again.id, &t.id, &alice.id, NOW + 6)
        .await
        .unwrap());
    assert_eq!(s.collect_enroll_request(&again.id).await.unwrap(), None);
    assert_eq!(s.delete_old_enroll_requests(exp + 86_400_001).await.unwrap(), 1);

    s.create_user_session("sess-1", &t.id, &alice.id, NOW, NOW + 1000)
        .await
        .unwrap();
    s.create_user_session("sess-2", &t.id, &alice.id, NOW, NOW + 1000)
        .await
        .unwrap();
    assert_eq!(s.user_session("sess-1", NOW).await.unwrap().unwrap().user_id, alice.id);
    assert!(s.user_session("sess-1", NOW + 1000).await.unwrap().is_none(), "expired");
    assert!(s.delete_user_session("sess-1").await.unwrap());
    assert_eq!(s.delete_user_sessions(&t.id, &alice.id).await.unwrap(), 1);
    assert!(s.user_session("sess-2", NOW).await.unwrap().is_none());
}

/// Identity sources: unique per tenant, scoped; a linked user is found by
/// (source, subject) only; group sync joins named groups, leaves only the
/// source's own; a sign-in in progress is taken once and not after expiry.
async fn identity_sources_link_users_and_groups_and_logins_are_taken_once(s: &Store) {
    let a = s.create_tenant("a", "r", "admin", "h", None, NOW).await.unwrap();
    let b = s.create_tenant("b", "r", "admin", "h", None, NOW).await.unwrap();
    let new = NewIdentitySource {
        kind: "oidc".into(),
        config: String::new(),
        name: "corp".into(),
        issuer: "https://idp.example".into(),
        client_id: "ward".into(),
        sealed_client_secret: "sealed".into(),
        scopes: "openid profile email".into(),
        username_claim: "preferred_username".into(),
        groups_claim: "roles".into(),
    };
    let src = s
        .create_identity_source(&ward_store::new_id("idp"), &a.id, &new, NOW)
        .await
        .unwrap();
    assert!(matches!(
        s.create_identity_source(&ward_store::new_id("idp"), &a.id, &new, NOW)
            .await,
        Err(StoreError::Conflict(_))
    ));
    // The same name in another tenant is another source.
    s.create_identity_source(&ward_store::new_id("idp"), &b.id, &new, NOW)
        .await
        .unwrap();
    assert_eq!(s.identity_sources(&a.id).await.unwrap(), vec![src.clone()]);
    assert_eq!(
        s.identity_source_by_name(&a.id, "corp").await.unwrap(),
        Some(src.clone())
    );
    assert_eq!(s.identity_source_by_id(&src.id).await.unwrap(), Some(src.clone()));
    assert!(!s.delete_identity_source(&b.id, &src.id).await.unwrap());

    let local = s.create_user(&a.id, "bob", NOW).await.unwrap();
    assert_eq!(local.source_id, None);
    assert!(matches!(
        s.create_linked_user(&a.id, "bob", &src.id, "sub-bob", NOW).await,
        Err(StoreError::Conflict(_))
    ));
    let alice = s
        .create_linked_user(&a.id, "alice", &src.id, "sub-1", NOW)
        .await
        .unwrap();
    assert_eq!(
        s.user_by_subject(&a.id, &src.id, "sub-1").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(s.user_by_subject(&b.id, &src.id, "sub-1").await.unwrap(), None);
    assert_eq!(s.user_by_subject(&a.id, &src.id, "sub-2").await.unwrap(), None);
    assert_eq!(
        s.user_by_name(&a.id, "alice").await.unwrap().unwrap().source_id,
        Some(src.id.clone())
    );

    // A group made by hand is joined, never left; the source's own are left.
    let admins = s.create_group(&a.id, "admins", NOW).await.unwrap();
    let epoch = s.policy_epoch().await.unwrap();
    let names = |l: &[&str]| l.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(s
        .sync_source_groups(&a.id, &src.id, &alice.id, &names(&["admins", "eng"]), NOW)
        .await
        .unwrap());
    assert!(s.policy_epoch().await.unwrap() > epoch);
    let groups_of = |m: Vec<(String, String)>, gs: Vec<ward_store::GroupRow>| {
        let mut v: Vec<String> = m
            .into_iter()
            .filter(|(_, u)| *u == alice.id)
            .filter_map(|(g, _)| gs.iter().find(|x| x.id == g).map(|x| x.name.clone()))
            .collect();
        v.sort();
        v
    };
    let m = s.all_memberships(&a.id).await.unwrap();
    assert_eq!(groups_of(m, s.all_groups(&a.id).await.unwrap()), ["admins", "eng"]);
    assert!(!s
        .sync_source_groups(&a.id, &src.id, &alice.id, &names(&["admins", "eng"]), NOW)
        .await
        .unwrap());
    assert!(s
        .sync_source_groups(&a.id, &src.id, &alice.id, &names(&["ops"]), NOW)
        .await
        .unwrap());
    let m = s.all_memberships(&a.id).await.unwrap();
    assert_eq!(groups_of(m, s.all_groups(&a.id).await.unwrap()), ["admins", "ops"]);
    let _ = admins;

    // Sign-ins in progress: once, and not after they expire.
    let login = OidcLoginRow {
        id: "statehash".into(),
        source_id: src.id.clone(),
        nonce: "n".into(),
        sealed_verifier: "v".into(),
        next: "/portal".into(),
        created_at: NOW,
        expires_at: NOW + 600_000,
    };
    s.create_oidc_login(&login).await.unwrap();
    assert_eq!(
        s.take_oidc_login("statehash", NOW + 1).await.unwrap(),
        Some(login.clone())
    );
    assert_eq!(s.take_oidc_login("statehash", NOW + 1).await.unwrap(), None);
    s.create_oidc_login(&login).await.unwrap();
    assert_eq!(s.take_oidc_login("statehash", NOW + 600_000).await.unwrap(), None);
    assert_eq!(s.take_oidc_login("statehash", NOW).await.unwrap(), None);

    // Deleting the source keeps its users and groups, unlinked.
    assert!(s.delete_identity_source(&a.id, &src.id).await.unwrap());
    assert_eq!(s.user_by_name(&a.id, "alice").await.unwrap().unwrap().source_id, None);
    assert!(s.group_by_name(&a.id, "ops").await.unwrap().is_some());
}

/// A device's user session: set at enrolment, ended alone or for all the
/// user's devices, renewed by an approved sign-in request of its own user
/// only; every change moves the policy epoch; another tenant's device is
/// never touched. The tenant's session length is a setting.
async fn device_sessions_start_end_and_renew_moving_the_epoch(s: &Store) {
    let a = s.create_tenant("sess-a", "r", "admin", "h", None, NOW).await.unwrap();
    let b = s.create_tenant("sess-b", "r", "admin", "h", None, NOW).await.unwrap();
    assert_eq!(a.device_session_hours, 168);
    let a = s.set_device_session_hours(&a.id, 12, NOW).await.unwrap().unwrap();
    assert_eq!(a.device_session_hours, 12);
    assert_eq!(s.tenant_by_id(&b.id).await.unwrap().unwrap().device_session_hours, 168);
    let alice = s.create_user(&a.id, "alice", NOW).await.unwrap();
    let bob = s.create_user(&a.id, "bob", NOW).await.unwrap();
    let mut ids = Vec::new();
    for (i, user) in [&alice, &alice, &bob].into_iter().enumerate() {
        let code = s
            .create_enroll_code(&a.id, &user.id, &format!("sess-code-{i}"), "admin", NOW, NOW + 1000)
            .await
            .unwrap();
        let device = ward_store::DeviceRow {
            id: format!("dev_s{i}"),
            tenant_id: a.id.clone(),
            user_id: user.id.clone(),
            name: "laptop".into(),
            posture: "{}".into(),
            cert_serial: "01".into(),
            cert_not_after: NOW + 86_400_000,
            session_expires_at: Some(NOW + 3_600_000),
            ..Default::default()
        };
        let d = s
            .redeem_enroll_code(&code.id, &device, &format!("sess-tok-{i}"), NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.session_expires_at, Some(NOW + 3_600_000));
        ids.push(d.id);
    }
    let stored = s.device_by_id(&a.id, &ids[0]).await.unwrap().unwrap();
    assert_eq!(stored.session_expires_at, Some(NOW + 3_600_000));
    assert!(stored.signed_in(NOW) && !stored.signed_in(NOW + 3_600_000));

    // Ending one session moves the epoch; another tenant cannot.
    let e0 = s.policy_epoch().await.unwrap();
    assert!(!s.set_device_session(&b.id, &ids[0], None).await.unwrap());
    assert_eq!(s.policy_epoch().await.unwrap(), e0);
    assert!(s.set_device_session(&a.id, &ids[0], None).await.unwrap());
    assert!(s.policy_epoch().await.unwrap() > e0);
    assert_eq!(
        s.device_by_id(&a.id, &ids[0])
            .await
            .unwrap()
            .unwrap()
            .session_expires_at,
        None
    );

    // All of alice's devices at once; bob's stays.
    let e1 = s.policy_epoch().await.unwrap();
    assert_eq!(s.end_user_device_sessions(&a.id, &alice.id).await.unwrap(), 1);
    assert!(s.policy_epoch().await.unwrap() > e1);
    assert_eq!(
        s.device_by_id(&a.id, &ids[1])
            .await
            .unwrap()
            .unwrap()
            .session_expires_at,
        None
    );
    assert!(s.device_by_id(&a.id, &ids[2]).await.unwrap().unwrap().signed_in(NOW));
    let e2 = s.policy_epoch().await.unwrap();
    assert_eq!(s.end_user_device_sessions(&a.id, &alice.id).await.unwrap(), 0);
    assert_eq!(s.policy_epoch().await.unwrap(), e2, "nothing changed, nothing moved");

    // A sign-in request of alice's device: bob cannot approve it, alice can, once.
    let dev0 = s.device_by_id(&a.id, &ids[0]).await.unwrap().unwrap();
    let r = s
        .create_device_login_request("login-hash", "BCDF-LGNA", &dev0, "10.0.0.1", NOW, NOW + 600_000)
        .await
        .unwrap();
    let found = s.pending_enroll_request("BCDF-LGNA", NOW).await.unwrap().unwrap();
    assert_eq!(found.device_id.as_deref(), Some(ids[0].as_str()));
    assert_eq!(found.user_id.as_deref(), Some(alice.id.as_str()));
    assert!(!s
        .approve_device_login_request(&r.id, &a.id, &bob.id, NOW + 7_200_000, NOW + 1)
        .await
        .unwrap());
    assert!(!s
        .approve_device_login_request(&r.id, &b.id, &alice.id, NOW + 7_200_000, NOW + 1)
        .await
        .unwrap());
    let e3 = s.policy_epoch().await.unwrap();
    assert!(s
        .approve_device_login_request(&r.id, &a.id, &alice.id, NOW + 7_200_000, NOW + 1)
        .await
        .unwrap());
    assert!(s.policy_epoch().await.unwrap() > e3);
    assert_eq!(
        s.device_by_id(&a.id, &ids[0])
            .await
            .unwrap()
            .unwrap()
            .session_expires_at,
        Some(NOW + 7_200_000)
    );
    assert!(!s
        .approve_device_login_request(&r.id, &a.id, &alice.id, NOW + 9_000_000, NOW + 2)
        .await
        .unwrap());
    assert_eq!(
        s.enroll_request_by_secret("login-hash").await.unwrap().unwrap().state,
        "approved"
    );

    // A revoked device's session cannot be renewed.
    assert!(s.revoke_device(&a.id, &ids[1], NOW).await.unwrap());
    assert!(!s.set_device_session(&a.id, &ids[1], Some(NOW + 1)).await.unwrap());
}

/// LDAP sources keep their settings and last sync; users' attributes and
/// groups' conditions round-trip and move the epoch only when they change;
/// a sync re-enables only the users it disabled itself; vanished users are
/// disabled (not deleted), signed out, and the epoch moves; every method
/// stays in its tenant.
async fn ldap_sources_sync_attributes_conditions_and_vanished_users(s: &Store) {
    use std::collections::{BTreeMap, HashSet};
    let a = s.create_tenant("a", "r", "admin", "h", None, NOW).await.unwrap();
    let b = s.create_tenant("b", "r", "admin", "h", None, NOW).await.unwrap();
    let new = NewIdentitySource {
        kind: "ldap".into(),
        config: r#"{"url":"ldaps://dir"}"#.into(),
        name: "dir".into(),
        issuer: String::new(),
        client_id: String::new(),
        sealed_client_secret: "sealed".into(),
        scopes: String::new(),
        username_claim: String::new(),
        groups_claim: String::new(),
    };
    let src = s
        .create_identity_source(&ward_store::new_id("idp"), &a.id, &new, NOW)
        .await
        .unwrap();
    assert_eq!(
        (src.kind.as_str(), src.config.as_str()),
        ("ldap", r#"{"url":"ldaps://dir"}"#)
    );
    assert_eq!(s.identity_source_by_id(&src.id).await.unwrap(), Some(src.clone()));
    assert_eq!(s.all_ldap_sources().await.unwrap(), vec![src.clone()]);
    // Recording a sync in another tenant's name changes nothing.
    s.record_source_sync(&b.id, &src.id, NOW, false, "x").await.unwrap();
    assert_eq!(
        s.identity_source_by_id(&src.id).await.unwrap().unwrap().last_sync_at,
        None
    );
    s.record_source_sync(&a.id, &src.id, NOW + 5, true, "4 users")
        .await
        .unwrap();
    let got = s.identity_source_by_id(&src.id).await.unwrap().unwrap();
    assert_eq!(
        (got.last_sync_at, got.last_sync_ok, got.last_sync_result.as_deref()),
        (Some(NOW + 5), Some(true), Some("4 users"))
    );

    // Attributes: stored, read back, the epoch moves only on a change.
    let alice = s
        .create_linked_user(&a.id, "alice", &src.id, "uuid-a", NOW)
        .await
        .unwrap();
    let bob = s
        .create_linked_user(&a.id, "bob", &src.id, "uuid-b", NOW)
        .await
        .unwrap();
    let attrs: BTreeMap<String, String> = [
        ("department".to_owned(), "Engineering".to_owned()),
        ("email".to_owned(), "a@corp.example".to_owned()),
    ]
    .into();
    let e0 = s.policy_epoch().await.unwrap();
    assert!(s.refresh_linked_user(&a.id, &alice.id, &attrs).await.unwrap());
    let e1 = s.policy_epoch().await.unwrap();
    assert!(e1 > e0);
    assert!(!s.refresh_linked_user(&a.id, &alice.id, &attrs).await.unwrap());
    assert!(!s.set_user_attributes(&a.id, &alice.id, &attrs).await.unwrap());
    assert_eq!(s.policy_epoch().await.unwrap(), e1, "no change, no new epoch");
    assert_eq!(s.user_by_id(&a.id, &alice.id).await.unwrap().unwrap().attributes, attrs);
    assert!(!s.set_user_attributes(&b.id, &alice.id, &BTreeMap::new()).await.unwrap());
    assert_eq!(s.user_by_id(&a.id, &alice.id).await.unwrap().unwrap().attributes, attrs);

    // Conditions of groups.
    let g = s.create_group(&a.id, "eng", NOW).await.unwrap();
    assert!(g.conditions.is_empty());
    let conds = vec![
        "department=Engineering".to_owned(),
        "email_domain=corp.example".to_owned(),
    ];
    assert!(s.set_group_conditions(&a.id, &g.id, &conds).await.unwrap());
    let e2 = s.policy_epoch().await.unwrap();
    assert!(e2 > e1);
    assert_eq!(s.group_by_name(&a.id, "eng").await.unwrap().unwrap().conditions, conds);
    assert!(!s.set_group_conditions(&b.id, &g.id, &[]).await.unwrap());
    assert!(s.set_group_conditions(&a.id, &g.id, &[]).await.unwrap());
    assert!(s
        .group_by_name(&a.id, "eng")
        .await
        .unwrap()
        .unwrap()
        .conditions
        .is_empty());

    // Bob vanishes: disabled by the source, signed out (portal and
    // devices), the epoch moves.
    s.create_user_session("us-bob", &a.id, &bob.id, NOW, NOW + 10_000)
        .await
        .unwrap();
    let code = s
        .create_enroll_code(&a.id, &bob.id, "ldap-bob-code", "admin", NOW, NOW + 1000)
        .await
        .unwrap();
    let laptop = ward_store::DeviceRow {
        id: "dev_ldapbob".into(),
        tenant_id: a.id.clone(),
        user_id: bob.id.clone(),
        name: "laptop".into(),
        posture: "{}".into(),
        cert_serial: "01".into(),
        cert_not_after: NOW + 86_400_000,
        session_expires_at: Some(NOW + 3_600_000),
        ..Default::default()
    };
    let laptop = s
        .redeem_enroll_code(&code.id, &laptop, "ldap-bob-tok", NOW)
        .await
        .unwrap()
        .unwrap();
    let present: HashSet<String> = ["uuid-a".to_owned()].into();
    let e3 = s.policy_epoch().await.unwrap();
    // Another tenant's call disables nobody.
    assert!(s
        .disable_vanished_users(&b.id, &src.id, &HashSet::new())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.disable_vanished_users(&a.id, &src.id, &present).await.unwrap(),
        vec!["bob".to_owned()]
    );
    assert!(s.policy_epoch().await.unwrap() > e3);
    let b_row = s.user_by_id(&a.id, &bob.id).await.unwrap().unwrap();
    assert!(b_row.disabled && b_row.disabled_by_source);
    assert!(s.user_session("us-bob", NOW).await.unwrap().is_none());
    let laptop = s.device_by_id(&a.id, &laptop.id).await.unwrap().unwrap();
    assert_eq!(
        laptop.session_expires_at, None,
        "the vanished user's device is signed out"
    );
    assert!(
        s.disable_vanished_users(&a.id, &src.id, &present)
            .await
            .unwrap()
            .is_empty(),
        "once"
    );
    // Found again: enabled again.
    assert!(s.refresh_linked_user(&a.id, &bob.id, &BTreeMap::new()).await.unwrap());
    let b_row = s.user_by_id(&a.id, &bob.id).await.unwrap().unwrap();
    assert!(!b_row.disabled && !b_row.disabled_by_source);
    // An administrator's disabling is not undone by a sync.
    assert!(s.set_user_disabled(&a.id, &alice.id, true).await.unwrap());
    s.refresh_linked_user(&a.id, &alice.id, &attrs).await.unwrap();
    assert!(s.user_by_id(&a.id, &alice.id).await.unwrap().unwrap().disabled);
    assert_eq!(s.users_of_source(&a.id, &src.id).await.unwrap().len(), 2);
    assert!(s.users_of_source(&b.id, &src.id).await.unwrap().is_empty());
}

async fn published_hosts_are_unique_and_web_codes_work_once_for_their_host(s: &Store) {
    use ward_store::{AccessFilter, AccessRecordRow, AppRow, RuleRow};
    let a = s.create_tenant("a", "r", "admin", "h", None, NOW).await.unwrap();
    let b = s.create_tenant("b", "r", "admin", "h", None, NOW).await.unwrap();
    let app = |name: &str, host: Option<&str>| AppRow {
        name: name.into(),
        addresses: vec!["10.0.0.1".into()],
        ports: vec!["80".into()],
        protocol: "tcp".into(),
        public_host: host.map(str::to_owned),
        upstream_scheme: "https".into(),
        ..Default::default()
    };
    let epoch = s.policy_epoch().await.unwrap();
    let wiki = s
        .create_app(&a.id, &app("wiki", Some("wiki.example")), NOW)
        .await
        .unwrap();
    assert!(s.policy_epoch().await.unwrap() > epoch);
    // Unpublished applications are many; a host is published once in the whole store.
    s.create_app(&a.id, &app("plain1", None), NOW).await.unwrap();
    s.create_app(&b.id, &app("plain2", None), NOW).await.unwrap();
    let dup = s.create_app(&b.id, &app("wiki", Some("wiki.example")), NOW).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let found = s.app_by_public_host("wiki.example").await.unwrap().unwrap();
    assert_eq!(
        (found.id.as_str(), found.tenant_id.as_str()),
        (wiki.id.as_str(), a.id.as_str())
    );
    assert_eq!(found.upstream_scheme, "https");
    assert!(s.app_by_public_host("other.example").await.unwrap().is_none());

    // Rules keep their agentless flag.
    let rule = RuleRow {
        priority: 1,
        action: "allow".into(),
        app_ids: vec![wiki.id.clone()],
        posture: "enforce".into(),
        enabled: true,
        agentless: true,
        ..Default::default()
    };
    let r = s.create_rule(&a.id, &rule, NOW).await.unwrap();
    assert!(s.rule_by_id(&a.id, &r.id).await.unwrap().unwrap().agentless);

    // A code works once, for its host, until it expires.
    let user = s.create_user(&a.id, "alice", NOW).await.unwrap();
    s.create_web_code("h1", &a.id, &user.id, "wiki.example", NOW, NOW + 60_000)
        .await
        .unwrap();
    assert!(
        s.take_web_code("h1", "other.example", NOW).await.unwrap().is_none(),
        "another host"
    );
    assert!(
        s.take_web_code("h1", "wiki.example", NOW).await.unwrap().is_none(),
        "taken by the try above"
    );
    s.create_web_code("h2", &a.id, &user.id, "wiki.example", NOW, NOW + 60_000)
        .await
        .unwrap();
    let code = s.take_web_code("h2", "wiki.example", NOW + 1).await.unwrap().unwrap();
    assert_eq!(
        (code.tenant_id.as_str(), code.user_id.as_str()),
        (a.id.as_str(), user.id.as_str())
    );
    assert!(
        s.take_web_code("h2", "wiki.example", NOW + 2).await.unwrap().is_none(),
        "used once"
    );
    s.create_web_code("h3", &a.id, &user.id, "wiki.example", NOW, NOW + 60_000)
        .await
        .unwrap();
    assert!(
        s.take_web_code("h3", "wiki.example", NOW + 60_000)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    s.create_web_code("h4", &a.id, &user.id, "wiki.example", NOW, NOW + 60_000)
        .await
        .unwrap();
    assert_eq!(s.delete_expired_web_codes(NOW + 60_000).await.unwrap(), 1);

    // Records keep the HTTP request.
    let rec = AccessRecordRow {
        id: "acr_web1".into(),
        tenant_id: a.id.clone(),
        started_ms: NOW,
        user_id: user.id.clone(),
        dest_host: "wiki.example".into(),
        port: 80,
        protocol: "http".into(),
        action: "allow".into(),
        reason: "rule_matched".into(),
        end_reason: "closed".into(),
        method: Some("GET".into()),
        path: Some("/a".into()),
        status: Some(200),
        kind: "private".into(),
        ..Default::default()
    };
    assert_eq!(
        s.insert_access_records(std::slice::from_ref(&rec), NOW).await.unwrap(),
        1
    );
    let page = s
        .list_access_records(&a.id, &AccessFilter::default(), &PageRequest::new(None, None))
        .await
        .unwrap();
    assert_eq!(page.items, vec![rec]);
}

async fn users_totp_factors_are_their_own_and_scoped_by_tenant(s: &Store) {
    let u = MfaOwner::User;
    let t = s.create_tenant("m", "r", "admin", "h", None, NOW).await.unwrap();
    let other = s.create_tenant("o", "r", "admin", "h", None, NOW).await.unwrap();
    let owner = s.tenant_owner(&t.id).await.unwrap().unwrap();
    let alice = s.create_user(&t.id, "alice", NOW).await.unwrap();
    assert!(!alice.mfa_enabled);
    assert!(s.totp_of(u, &t.id, &alice.id).await.unwrap().is_none());
    // Not through another tenant, nor for an id that is no user (an account's).
    assert!(!s.start_totp_of(u, &other.id, &alice.id, "v1.x", NOW).await.unwrap());
    assert!(!s.start_totp_of(u, &t.id, &owner.id, "v1.x", NOW).await.unwrap());
    assert!(s.start_totp_of(u, &t.id, &alice.id, "v1.first", NOW).await.unwrap());
    assert!(s
        .start_totp_of(u, &t.id, &alice.id, "v1.second", NOW + 1)
        .await
        .unwrap());
    let pending = s.totp_of(u, &t.id, &alice.id).await.unwrap().unwrap();
    assert_eq!(
        (pending.sealed_secret.as_str(), pending.enabled_at),
        ("v1.second", None)
    );
    assert!(
        !s.use_totp_step_of(u, &t.id, &alice.id, 10).await.unwrap(),
        "pending is not enabled"
    );
    assert!(!s.user_by_id(&t.id, &alice.id).await.unwrap().unwrap().mfa_enabled);
    // The user's factor is not the administrators' table.
    assert!(s.totp(&t.id, &alice.id).await.unwrap().is_none());
    let hashes = vec!["h1".to_owned(), "h2".to_owned()];
    assert!(!s
        .confirm_totp_of(u, &other.id, &alice.id, 5, &hashes, NOW)
        .await
        .unwrap());
    assert!(s
        .confirm_totp_of(u, &t.id, &alice.id, 5, &hashes, NOW + 2)
        .await
        .unwrap());
    assert!(
        !s.confirm_totp_of(u, &t.id, &alice.id, 6, &hashes, NOW + 3)
            .await
            .unwrap(),
        "only once"
    );
    assert!(
        !s.start_totp_of(u, &t.id, &alice.id, "v1.third", NOW).await.unwrap(),
        "enabled stays"
    );
    assert!(s.user_by_id(&t.id, &alice.id).await.unwrap().unwrap().mfa_enabled);
    assert!(s.user_by_name(&t.id, "alice").await.unwrap().unwrap().mfa_enabled);
    assert!(s
        .all_users(&t.id)
        .await
        .unwrap()
        .iter()
        .any(|x| x.name == "alice" && x.mfa_enabled));
    // Each step once, never an earlier one, never from another tenant.
    assert!(!s.use_totp_step_of(u, &t.id, &alice.id, 5).await.unwrap());
    assert!(s.use_totp_step_of(u, &t.id, &alice.id, 6).await.unwrap());
    assert!(!s.use_totp_step_of(u, &t.id, &alice.id, 6).await.unwrap());
    assert!(!s.use_totp_step_of(u, &t.id, &alice.id, 4).await.unwrap());
    assert!(!s.use_totp_step_of(u, &other.id, &alice.id, 7).await.unwrap());
    // Recovery codes once each, in their own tenant.
    assert_eq!(s.recovery_codes_left_of(u, &t.id, &alice.id).await.unwrap(), 2);
    assert!(!s.use_recovery_code_of(u, &other.id, &alice.id, "h1").await.unwrap());
    assert!(
        !s.use_recovery_code(&t.id, &alice.id, "h1").await.unwrap(),
        "not an account's code"
    );
    assert!(s.use_recovery_code_of(u, &t.id, &alice.id, "h1").await.unwrap());
    assert!(!s.use_recovery_code_of(u, &t.id, &alice.id, "h1").await.unwrap());
    assert_eq!(s.recovery_codes_left_of(u, &t.id, &alice.id).await.unwrap(), 1);
    // Removing: not from another tenant; with the portal sessions when asked.
    s.create_user_session("mfa-user-tok", &t.id, &alice.id, NOW, NOW + 100)
        .await
        .unwrap();
    assert!(!s.remove_totp_of(u, &other.id, &alice.id, true).await.unwrap());
    assert!(s.user_by_id(&t.id, &alice.id).await.unwrap().unwrap().mfa_enabled);
    assert!(s.user_session("mfa-user-tok", NOW).await.unwrap().is_some());
    assert!(s.remove_totp_of(u, &t.id, &alice.id, true).await.unwrap());
    assert!(s.user_session("mfa-user-tok", NOW).await.unwrap().is_none());
    assert!(!s.user_by_id(&t.id, &alice.id).await.unwrap().unwrap().mfa_enabled);
    assert_eq!(s.recovery_codes_left_of(u, &t.id, &alice.id).await.unwrap(), 0);
    assert!(!s.remove_totp_of(u, &t.id, &alice.id, false).await.unwrap());
    assert!(s.start_totp_of(u, &t.id, &alice.id, "v1.again", NOW).await.unwrap());
    // Deleting the user takes its factor along.
    s.delete_user(&t.id, &alice.id).await.unwrap();
    assert!(s.totp_of(u, &t.id, &alice.id).await.unwrap().is_none());
}
