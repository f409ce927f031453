//! End users' sign-in check (`ward_server::auth::user_login::user_login`),
//! which the user portal calls, on SQLite and (when `WARD_TEST_POSTGRES` is
//! set) PostgreSQL: right and wrong passwords, the lock-outs per user and
//! per source address (shared with administrators' sign-ins), and every
//! refusal that must look the same from outside.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::Arc;

use ward_core::{ErrorCode, TenantState};
use ward_server::audit::{AuditNote, AuditSlot};
use ward_server::auth::user_login::user_login;
use ward_server::auth::{login, password};
use ward_server::error::ApiError;
use ward_server::metrics::Metrics;
use ward_server::state::{now_ms, AppState};
use ward_server::{ServerArgs, ServerConfig};
use ward_store::testing::TestStore;
use ward_store::{TenantRow, UserRow};

const PW: &str = "alice-password-1";

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(ward_store::testing::TestStore::sqlite().await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(t) = ward_store::testing::TestStore::postgres().await else {
                    eprintln!("skipped: set WARD_TEST_POSTGRES to run on PostgreSQL");
                    return;
                };
                super::$name(t).await;
            })*
        }
    };
}

on_both_backends!(
    right_password_signs_in_and_wrong_ones_are_counted,
    repeated_failures_lock_the_user_out,
    every_other_refusal_looks_the_same,
    a_suspended_tenant_is_named,
    failures_count_with_administrators_sign_ins_per_address,
);

/// An application state on `store` with test limits: slow-down off, a user
/// locked after 3 failures, an address after 6.
struct Fixture {
    state: AppState,
    tenant: TenantRow,
    alice: UserRow,
    _data: tempfile::TempDir,
    _store: TestStore,
}

async fn fixture(store: TestStore) -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let args = ServerArgs {
        data_dir: Some(data.path().to_owned()),
        database: Some(store.url.clone()),
        ..Default::default()
    };
    let mut config = ServerConfig::load(&args).unwrap();
    config.login.slow_after = 100;
    config.login.lock_after = 3;
    config.login.address_lock_after = 6;
    let s = store.store.clone();
    let admin_hash = password::hash_now("admin-password-1").unwrap();
    let tenant = s
        .create_tenant("acme", "local", "admin", &admin_hash, None, now_ms())
        .await
        .unwrap();
    let alice = s.create_user(&tenant.id, "alice", now_ms()).await.unwrap();
    s.set_user_password_hash(&tenant.id, &alice.id, Some(&password::hash_now(PW).unwrap()))
        .await
        .unwrap();
    let state = AppState {
        store: s,
        config: Arc::new(config),
        metrics: Arc::new(Metrics::new()),
        system_tenant_id: tenant.id.clone().into(),
        master_key: Arc::new(ward_pki::MasterKey::generate().unwrap()),
        server_pin: None,
        gateway_reports: Default::default(),
    };
    Fixture {
        state,
        tenant,
        alice,
        _data: data,
        _store: store,
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, last])
}

async fn try_login(f: &Fixture, from: IpAddr, tenant: &str, user: &str, pw: &str) -> Result<UserRow, ApiError> {
    let audit = AuditSlot::default();
    user_login(&f.state, from, &audit, tenant, user, pw)
        .await
        .map(|(t, u)| {
            assert_eq!(t.id, f.tenant.id);
            u
        })
}

fn note(slot: &AuditSlot) -> AuditNote {
    let mut out = AuditNote::default();
    slot.update(|n| out = n.clone());
    out
}

async fn stored(f: &Fixture, name: &str) -> UserRow {
    f.state.store.user_by_name(&f.tenant.id, name).await.unwrap().unwrap()
}

fn assert_refused(r: Result<UserRow, ApiError>, code: ErrorCode) -> ApiError {
    let e = r.unwrap_err();
    assert_eq!(e.code, code, "{}", e.message);
    e
}

async fn right_password_signs_in_and_wrong_ones_are_counted(store: TestStore) {
    let f = fixture(store).await;
    let audit = AuditSlot::default();
    let (tenant, user) = user_login(&f.state, ip(1), &audit, "acme", "alice", PW).await.unwrap();
    assert_eq!((tenant.name.as_str(), user.id.as_str()), ("acme", f.alice.id.as_str()));
    assert!(user.has_password && user.last_login_at.is_some());
    let n = note(&audit);
    assert_eq!(n.target.as_deref(), Some("user:alice"));
    assert_eq!(n.tenant_id.as_deref(), Some(f.tenant.id.as_str()));
    assert!(stored(&f, "alice").await.last_login_at.is_some());

    let audit = AuditSlot::default();
    let e = user_login(&f.state, ip(1), &audit, "acme", "alice", "wrong-password")
        .await
        .unwrap_err();
    assert_eq!((e.code, e.status().as_u16()), (ErrorCode::InvalidCredentials, 401));
    let n = note(&audit);
    assert_eq!(n.target.as_deref(), Some("user:alice"));
    assert_eq!(n.detail.as_deref(), Some("wrong password"));
    assert!(
        !format!("{n:?}").contains("wrong-password"),
        "the password stays out of the trail"
    );
    assert_eq!(stored(&f, "alice").await.failed_logins, 1);
    // A success resets the count.
    try_login(&f, ip(1), "acme", "alice", PW).await.unwrap();
    assert_eq!(stored(&f, "alice").await.failed_logins, 0);
}

async fn repeated_failures_lock_the_user_out(store: TestStore) {
    let f = fixture(store).await;
    for _ in 0..3 {
        assert_refused(
            try_login(&f, ip(2), "acme", "alice", "wrong-password").await,
            ErrorCode::InvalidCredentials,
        );
    }
    let row = stored(&f, "alice").await;
    assert_eq!(row.failed_logins, 3);
    assert!(row.locked_until.is_some_and(|u| u > now_ms()));
    // Locked even with the right password, from any address; the answer says until when.
    let e = assert_refused(try_login(&f, ip(3), "acme", "alice", PW).await, ErrorCode::LockedOut);
    assert_eq!(e.status().as_u16(), 429);
    assert!(e.message.contains("until 20"), "{}", e.message);
    // Another user of the tenant is not locked.
    let bob = f.state.store.create_user(&f.tenant.id, "bob", now_ms()).await.unwrap();
    f.state
        .store
        .set_user_password_hash(
            &f.tenant.id,
            &bob.id,
            Some(&password::hash_now("bob-password-1").unwrap()),
        )
        .await
        .unwrap();
    try_login(&f, ip(3), "acme", "bob", "bob-password-1").await.unwrap();
    // An administrator lifts it.
    assert!(f.state.store.unlock_user(&f.tenant.id, &f.alice.id).await.unwrap());
    try_login(&f, ip(3), "acme", "alice", PW).await.unwrap();
}

async fn every_other_refusal_looks_the_same(store: TestStore) {
    let f = fixture(store).await;
    let s = &f.state.store;
    // A user without a password.
    s.create_user(&f.tenant.id, "nopass", now_ms()).await.unwrap();
    let audit = AuditSlot::default();
    let e = user_login(&f.state, ip(4), &audit, "acme", "nopass", "anything-at-all")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidCredentials);
    assert_eq!(note(&audit).detail.as_deref(), Some("user has no password"));
    let reference = e.message;
    // An unknown user, an unknown tenant.
    let e = assert_refused(
        try_login(&f, ip(4), "acme", "nobody", PW).await,
        ErrorCode::InvalidCredentials,
    );
    assert_eq!(e.message, reference);
    let e = assert_refused(
        try_login(&f, ip(4), "no-such-tenant", "alice", PW).await,
        ErrorCode::InvalidCredentials,
    );
    assert_eq!(e.message, reference);
    // A disabled user, even with the right password; not counted against it.
    assert!(s.set_user_disabled(&f.tenant.id, &f.alice.id, true).await.unwrap());
    let e = assert_refused(
        try_login(&f, ip(5), "acme", "alice", PW).await,
        ErrorCode::InvalidCredentials,
    );
    assert_eq!(e.message, reference);
    assert_eq!(stored(&f, "alice").await.failed_logins, 0);
    assert!(s.set_user_disabled(&f.tenant.id, &f.alice.id, false).await.unwrap());
    try_login(&f, ip(5), "acme", "alice", PW).await.unwrap();
    // A cleared password no longer works.
    assert!(s.set_user_password_hash(&f.tenant.id, &f.alice.id, None).await.unwrap());
    let e = assert_refused(
        try_login(&f, ip(5), "acme", "alice", PW).await,
        ErrorCode::InvalidCredentials,
    );
    assert_eq!(e.message, reference);
    // Over-long input is refused before any work.
    assert_refused(
        try_login(&f, ip(5), "acme", "alice", &"x".repeat(2000)).await,
        ErrorCode::InvalidField,
    );
}

async fn a_suspended_tenant_is_named(store: TestStore) {
    let f = fixture(store).await;
    f.state
        .store
        .set_tenant_state(&f.tenant.id, TenantState::Suspended, now_ms())
        .await
        .unwrap();
    // Only to whoever knows the password.
    assert_refused(
        try_login(&f, ip(6), "acme", "alice", "wrong-password").await,
        ErrorCode::InvalidCredentials,
    );
    let e = assert_refused(
        try_login(&f, ip(6), "acme", "alice", PW).await,
        ErrorCode::TenantSuspended,
    );
    assert_eq!(e.status().as_u16(), 403);
}

async fn failures_count_with_administrators_sign_ins_per_address(store: TestStore) {
    let f = fixture(store).await;
    let admin_login = |from: IpAddr, pw: &str| {
        let req = ward_api::LoginRequest {
            tenant: "acme".into(),
            username: "admin".into(),
            password: pw.into(),
            otp: None,
        };
        let state = f.state.clone();
        async move { login::login(&state, from, &AuditSlot::default(), req).await }
    };
    // Two failed administrator sign-ins (the account locks at three) and four
    // unknown users from one address...
    for _ in 0..2 {
        let e = admin_login(ip(7), "wrong-password").await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidCredentials);
    }
    for i in 0..4 {
        assert_refused(
            try_login(&f, ip(7), "acme", &format!("ghost{i}"), PW).await,
            ErrorCode::InvalidCredentials,
        );
    }
    // ...lock the address out of both kinds of sign-in.
    let e = assert_refused(try_login(&f, ip(7), "acme", "alice", PW).await, ErrorCode::LockedOut);
    assert!(e.message.contains("try again after"), "{}", e.message);
    let e = admin_login(ip(7), "admin-password-1").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::LockedOut);
    // Other addresses are not locked.
    try_login(&f, ip(8), "acme", "alice", PW).await.unwrap();
    admin_login(ip(8), "admin-password-1").await.unwrap();
}
