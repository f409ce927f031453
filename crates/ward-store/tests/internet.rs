#![allow(clippy::unwrap_used)]

//! Internet access control in the store: domain lists (a million names as
//! one value), internet rules, settings with their default lists, proxy
//! credentials and web/DNS records, on SQLite and (with
//! `WARD_TEST_POSTGRES`) PostgreSQL. Every change moves the policy epoch.

use ward_store::{
    AccessFilter, AccessRecordRow, DefaultList, InternetRuleRow, ListContent, ListDeletion, PageRequest,
    ProxyCredentialRow, Store, StoreError, TenantCaRow,
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
    lists_rules_settings_and_credentials_are_scoped_and_versioned,
    a_million_names_are_one_value,
    web_and_dns_records_filter_and_count,
    like_patterns_match_their_text_literally,
);

const NOW: i64 = 1_795_000_000_000;

fn content(text: &str) -> ListContent {
    ListContent {
        text: text.into(),
        entries: text.lines().count() as i64,
        sha256: format!("sha-of-{}", text.len()),
    }
}

async fn lists_rules_settings_and_credentials_are_scoped_and_versioned(s: &Store) {
    let a = s.create_tenant("a", "r", "admin", "h", None, NOW).await.unwrap();
    let b = s.create_tenant("b", "r", "admin", "h", None, NOW).await.unwrap();
    let mut epoch = s.policy_epoch().await.unwrap();
    macro_rules! moved {
        ($s:expr) => {{
            let now = $s.policy_epoch().await.unwrap();
            let m = now > epoch;
            epoch = now;
            m
        }};
    }

    // Lists.
    let ads = s
        .create_domain_list(
            &a.id,
            "ads",
            "ad servers",
            &content("ads.example\n*.ads.example\n"),
            None,
            NOW,
        )
        .await
        .unwrap();
    assert!(ads.id.starts_with("dl_"));
    assert!(moved!(s), "a new list moves the epoch");
    assert!(matches!(
        s.create_domain_list(&a.id, "ads", "", &content(""), None, NOW).await,
        Err(StoreError::Conflict(_))
    ));
    s.create_domain_list(&b.id, "ads", "", &content("b.example\n"), None, NOW)
        .await
        .unwrap();
    assert_eq!(s.all_domain_lists(&a.id).await.unwrap().len(), 1);
    assert_eq!(s.domain_list_by_name(&a.id, "ads").await.unwrap().unwrap().entries, 2);
    assert!(s.domain_list_content(&b.id, &ads.id).await.unwrap().is_none(), "scoped");
    moved!(s);
    assert!(s
        .set_domain_list_content(
            &a.id,
            &ads.id,
            &content("x.example\n"),
            Some("http://127.0.0.1/x"),
            NOW + 1
        )
        .await
        .unwrap());
    assert!(moved!(s));
    assert!(!s
        .set_domain_list_content(&b.id, &ads.id, &content(""), None, NOW)
        .await
        .unwrap());
    let row = s.domain_list_by_name(&a.id, "ads").await.unwrap().unwrap();
    assert_eq!(
        (row.entries, row.source_url.as_deref(), row.updated_at),
        (1, Some("http://127.0.0.1/x"), NOW + 1)
    );
    assert_eq!(
        s.domain_list_contents(&a.id, &[ads.id.clone(), "dl_nope".into()])
            .await
            .unwrap(),
        vec![(ads.id.clone(), "x.example\n".to_owned())]
    );

    // Rules.
    let alice = s.create_user(&a.id, "alice", NOW).await.unwrap();
    moved!(s);
    let rule = s
        .create_internet_rule(
            &a.id,
            &InternetRuleRow {
                priority: 10,
                action: "block".into(),
                user_ids: vec![alice.id.clone()],
                list_ids: vec![ads.id.clone()],
                enabled: true,
                valid_from: Some(NOW),
                ..Default::default()
            },
            NOW,
        )
        .await
        .unwrap();
    assert!(rule.id.starts_with("irl_"));
    assert!(moved!(s));
    assert!(s.internet_rule_by_id(&b.id, &rule.id).await.unwrap().is_none());
    let stored = s.internet_rule_by_id(&a.id, &rule.id).await.unwrap().unwrap();
    assert_eq!(stored, rule);
    assert_eq!(
        s.delete_domain_list(&a.id, &ads.id).await.unwrap(),
        ListDeletion::InUse,
        "a rule names it"
    );
    let mut changed = stored.clone();
    changed.enabled = false;
    changed.priority = 5;
    assert!(s.update_internet_rule(&a.id, &changed).await.unwrap());
    assert!(moved!(s));
    assert!(!s.update_internet_rule(&b.id, &changed).await.unwrap());
    assert_eq!(s.all_internet_rules(&a.id).await.unwrap(), vec![changed.clone()]);
    assert!(!s.delete_internet_rule(&b.id, &rule.id).await.unwrap());
    assert!(s.delete_internet_rule(&a.id, &rule.id).await.unwrap());
    assert!(moved!(s));
    assert_eq!(
        s.delete_domain_list(&b.id, &ads.id).await.unwrap(),
        ListDeletion::NotFound
    );

    // Settings, made once with their default lists.
    assert!(s.internet_settings(&a.id).await.unwrap().is_none());
    assert!(!s.has_internet_config(&a.id).await.unwrap() || s.all_domain_lists(&a.id).await.unwrap().len() == 1);
    let defaults = [DefaultList {
        name: "banking".into(),
        description: "banks".into(),
        content: content("bank.example\n"),
    }];
    let settings = s.internet_settings_or_init(&a.id, &defaults, NOW).await.unwrap();
    assert!(moved!(s));
    assert!(settings.enabled);
    assert_eq!(settings.default_action, "allow");
    assert_eq!(settings.dns_block_mode, "nxdomain");
    assert_eq!(settings.warn_minutes, 60);
    assert!(!settings.inspection && settings.inspection_ca.is_none());
    let banking = s.domain_list_by_name(&a.id, "banking").await.unwrap().unwrap();
    assert_eq!(settings.do_not_inspect, vec![banking.id.clone()]);
    assert_eq!(
        s.internet_settings_or_init(&a.id, &defaults, NOW).await.unwrap(),
        settings
    );
    assert!(!moved!(s), "made once");
    assert_eq!(
        s.delete_domain_list(&a.id, &banking.id).await.unwrap(),
        ListDeletion::InUse,
        "do_not_inspect names it"
    );
    let mut next = settings.clone();
    next.enabled = false;
    next.bypass = vec!["*.corp.example".into(), "10.0.0.0/8".into()];
    next.do_not_inspect = vec![];
    assert!(s.update_internet_settings(&a.id, &next, NOW + 2).await.unwrap());
    assert!(moved!(s));
    let read = s.internet_settings(&a.id).await.unwrap().unwrap();
    assert_eq!((read.enabled, read.bypass.clone()), (false, next.bypass.clone()));
    assert!(!s.update_internet_settings(&b.id, &next, NOW).await.unwrap());
    let ca = TenantCaRow {
        cert_pem: "cert".into(),
        sealed_key: "key".into(),
    };
    assert_eq!(s.set_inspection_ca(&a.id, &ca).await.unwrap(), Some(ca.clone()));
    assert!(moved!(s));
    let other = TenantCaRow {
        cert_pem: "other".into(),
        sealed_key: "other".into(),
    };
    assert_eq!(
        s.set_inspection_ca(&a.id, &other).await.unwrap(),
        Some(ca),
        "the first stays"
    );
    assert_eq!(
        s.delete_domain_list(&a.id, &banking.id).await.unwrap(),
        ListDeletion::Deleted
    );
    assert!(moved!(s));

    // Proxy credentials: scoped, and gone with their user.
    let cred = ProxyCredentialRow {
        id: "wpx_01".into(),
        tenant_id: a.id.clone(),
        user_id: alice.id.clone(),
        secret_sha256: "hash".into(),
        created_at: NOW,
    };
    s.create_proxy_credential(&cred).await.unwrap();
    assert!(moved!(s));
    assert_eq!(
        s.proxy_credentials(&a.id, Some(&alice.id)).await.unwrap(),
        vec![cred.clone()]
    );
    assert!(s.proxy_credentials(&b.id, None).await.unwrap().is_empty());
    assert!(!s.delete_proxy_credential(&b.id, &alice.id, "wpx_01").await.unwrap());
    assert!(s.delete_proxy_credential(&a.id, &alice.id, "wpx_01").await.unwrap());
    assert!(moved!(s));
    s.create_proxy_credential(&cred).await.unwrap();
    assert!(s.has_internet_config(&a.id).await.unwrap());
    assert!(s.delete_user(&a.id, &alice.id).await.unwrap());
    assert!(s.proxy_credentials(&a.id, None).await.unwrap().is_empty());
    assert!(moved!(s) && epoch > 0, "deleting the user moved the epoch");
}

async fn a_million_names_are_one_value(s: &Store) {
    let a = s.create_tenant("a", "r", "admin", "h", None, NOW).await.unwrap();
    let mut text = String::with_capacity(30_000_000);
    for i in 0..1_000_000 {
        text.push_str(&format!("host-{i}.ads.example\n"));
    }
    let started = std::time::Instant::now();
    let list = s
        .create_domain_list(&a.id, "big", "", &content(&text), None, NOW)
        .await
        .unwrap();
    let back = s.domain_list_content(&a.id, &list.id).await.unwrap().unwrap();
    eprintln!(
        "{:?}: a list of 1,000,000 names ({} bytes) stored and read back in {:?}",
        s.backend(),
        text.len(),
        started.elapsed()
    );
    assert_eq!(back, text);
    assert_eq!(
        s.domain_list_by_name(&a.id, "big").await.unwrap().unwrap().entries,
        1_000_000
    );
}

async fn web_and_dns_records_filter_and_count(s: &Store) {
    let record = |n: i64, kind: &str, user: &str, host: &str, action: &str| AccessRecordRow {
        id: format!("acr_{n:04}"),
        tenant_id: "t1".into(),
        started_ms: NOW + n,
        user_id: user.into(),
        device_id: "dev".into(),
        gateway_id: "gw".into(),
        source: "127.0.0.1".into(),
        dest_host: host.into(),
        port: 443,
        protocol: "tcp".into(),
        action: action.into(),
        reason: "rule_matched".into(),
        end_reason: "closed".into(),
        kind: kind.into(),
        ..Default::default()
    };
    let mut web = record(1, "web", "alice", "www.news.example", "allow");
    web.url = Some("http://www.news.example/a?b=c".into());
    web.upload_size = Some(12);
    web.upload_content_type = Some("text/plain".into());
    web.upload_file_name = Some("a.txt".into());
    web.upload_sha256 = Some("ab".into());
    web.inspected = true;
    let mut dns = record(2, "dns", "bob", "ads.example", "block");
    dns.qtype = Some("A".into());
    dns.answer = Some("NXDOMAIN".into());
    let batch = vec![
        web.clone(),
        dns.clone(),
        record(3, "web", "bob", "news.example", "block"),
        record(4, "web", "bob", "badnews.example", "block"),
        record(5, "", "carol", "db.corp", "allow"),
        record(6, "web", "alice", "www.news.example", "allow"),
    ];
    assert_eq!(s.insert_access_records(&batch, NOW).await.unwrap(), 6);
    let page = PageRequest::new(None, None);
    let list = |filter: AccessFilter| async move {
        s.list_access_records("t1", &filter, &PageRequest::new(None, None))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    let all = s
        .list_access_records("t1", &AccessFilter::default(), &page)
        .await
        .unwrap()
        .items;
    let stored_web = all.iter().find(|r| r.id == "acr_0001").unwrap();
    assert_eq!(stored_web, &web);
    assert_eq!(all.iter().find(|r| r.id == "acr_0002").unwrap(), &dns);
    assert_eq!(all.iter().find(|r| r.id == "acr_0005").unwrap().kind, "private");
    let kind = |k: &str| AccessFilter {
        kind: Some(k.into()),
        ..Default::default()
    };
    assert_eq!(list(kind("private")).await, ["acr_0005"]);
    assert_eq!(list(kind("dns")).await, ["acr_0002"]);
    assert_eq!(
        list(AccessFilter {
            domain: Some("news.example".into()),
            ..kind("web")
        })
        .await,
        ["acr_0006", "acr_0003", "acr_0001"],
        "the domain and the names below it, not badnews.example"
    );
    assert_eq!(
        s.top_access_records("t1", "web", false, None, NOW, 10).await.unwrap(),
        vec![
            ("www.news.example".to_owned(), 2),
            ("badnews.example".to_owned(), 1),
            ("news.example".to_owned(), 1)
        ]
    );
    assert_eq!(
        s.top_access_records("t1", "web", true, Some("block"), NOW, 10)
            .await
            .unwrap(),
        vec![("bob".to_owned(), 2)]
    );
    assert_eq!(
        s.top_access_records("t1", "web", true, None, NOW + 4, 1).await.unwrap(),
        vec![("alice".to_owned(), 1)]
    );
    assert!(s
        .top_access_records("t2", "web", true, None, 0, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .access_counts("t1", NOW, 1000)
        .await
        .unwrap()
        .iter()
        .all(|(_, a, d)| a + d == 1));
}

/// The domain filter and the "is this list in use" check are `LIKE`
/// patterns: a `_`, `%` or `\` in the text must match only itself.
async fn like_patterns_match_their_text_literally(s: &Store) {
    let record = |n: i64, host: &str| AccessRecordRow {
        id: format!("acr_{n:04}"),
        tenant_id: "t1".into(),
        started_ms: NOW + n,
        user_id: "alice".into(),
        device_id: "dev".into(),
        gateway_id: "gw".into(),
        source: "127.0.0.1".into(),
        dest_host: host.into(),
        port: 443,
        protocol: "tcp".into(),
        action: "allow".into(),
        reason: "rule_matched".into(),
        end_reason: "closed".into(),
        kind: "web".into(),
        ..Default::default()
    };
    let hosts = [
        "a_b.example",
        "axb.example",
        "www.a_b.example",
        "www.axb.example",
        "a%b.example",
        "axyzb.example",
        "a\\b.example",
        "ab.example",
    ];
    let batch: Vec<_> = hosts.iter().zip(1..).map(|(h, n)| record(n, h)).collect();
    assert_eq!(s.insert_access_records(&batch, NOW).await.unwrap(), 8);
    let hosts_for = |domain: &str| {
        let filter = AccessFilter {
            domain: Some(domain.into()),
            kind: Some("web".into()),
            ..Default::default()
        };
        async move {
            let mut found: Vec<String> = s
                .list_access_records("t1", &filter, &PageRequest::new(None, None))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|r| r.dest_host)
                .collect();
            found.sort();
            found
        }
    };
    assert_eq!(
        hosts_for("a_b.example").await,
        ["a_b.example", "www.a_b.example"],
        "not axb.example"
    );
    assert_eq!(hosts_for("axb.example").await, ["axb.example", "www.axb.example"]);
    assert_eq!(hosts_for("a%b.example").await, ["a%b.example"], "not axyzb.example");
    assert_eq!(hosts_for("a\\b.example").await, ["a\\b.example"], "not ab.example");
    assert!(hosts_for("_.example").await.is_empty());
    assert!(hosts_for("%").await.is_empty());

    // A rule naming an id that differs from a list's only where the list's
    // id has its `_` does not keep that list from being deleted.
    let t = s.create_tenant("a", "r", "admin", "h", None, NOW).await.unwrap();
    let ads = s
        .create_domain_list(&t.id, "ads", "", &content("ads.example\n"), None, NOW)
        .await
        .unwrap();
    assert!(ads.id.starts_with("dl_"), "{}", ads.id);
    let lookalike = ads.id.replacen('_', "x", 1);
    let rule = InternetRuleRow {
        priority: 1,
        action: "block".into(),
        list_ids: vec![lookalike],
        enabled: true,
        ..Default::default()
    };
    s.create_internet_rule(&t.id, &rule, NOW).await.unwrap();
    assert_eq!(
        s.delete_domain_list(&t.id, &ads.id).await.unwrap(),
        ListDeletion::Deleted
    );
    // The check still sees the list's own id among others.
    let news = s
        .create_domain_list(&t.id, "news", "", &content("news.example\n"), None, NOW)
        .await
        .unwrap();
    let rule = InternetRuleRow {
        list_ids: vec!["dl_other".into(), news.id.clone(), "dl_last".into()],
        ..rule
    };
    s.create_internet_rule(&t.id, &rule, NOW).await.unwrap();
    assert_eq!(
        s.delete_domain_list(&t.id, &news.id).await.unwrap(),
        ListDeletion::InUse
    );
}
