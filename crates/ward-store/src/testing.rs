//! Throwaway stores for tests: a SQLite file in a temporary directory, or a
//! fresh PostgreSQL database (when `WARD_TEST_POSTGRES` holds a server URL)
//! that is dropped when the test ends. Each test gets its own, so runs never
//! collide.

use crate::{Backend, Store};

/// Environment variable naming the PostgreSQL server for external tests.
pub const POSTGRES_ENV: &str = "WARD_TEST_POSTGRES";

/// A store that cleans up after itself.
pub struct TestStore {
    pub store: Store,
    /// The URL to hand to a server under test.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestStore {
    pub async fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ward.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let store = Store::connect(&url).await.expect("open sqlite");
        store.migrate().await.expect("migrate sqlite");
        TestStore {
            store,
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh database on the server in `WARD_TEST_POSTGRES`, or None when
    /// the variable is unset (the test is then skipped). When it is set, any
    /// failure to reach the server fails the test.
    pub async fn postgres() -> Option<TestStore> {
        let admin_url = std::env::var(POSTGRES_ENV).ok().filter(|v| !v.is_empty())?;
        let name = format!("ward_test_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
        let admin = Store::connect(&admin_url)
            .await
            .expect("WARD_TEST_POSTGRES is set but unreachable");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(admin.pool())
            .await
            .expect("create test database");
        admin.close().await;
        let url = replace_database(&admin_url, &name);
        let store = Store::connect(&url).await.expect("connect test database");
        store.migrate().await.expect("migrate postgres");
        Some(TestStore {
            store,
            url,
            _dir: None,
            pg: Some((admin_url, name)),
        })
    }

    /// Both backends this run can test: SQLite always, PostgreSQL when configured.
    pub async fn all() -> Vec<TestStore> {
        let mut v = vec![TestStore::sqlite().await];
        v.extend(TestStore::postgres().await);
        v
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.pg.take() {
            // Drop runs outside async; do the clean-up on a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
                if let Ok(rt) = rt {
                    rt.block_on(async {
                        if let Ok(admin) = Store::connect(&admin_url).await {
                            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(admin.pool())
                                .await;
                            admin.close().await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

/// `postgres://u@h:5432/x?opt` with the database part replaced by `db`.
pub fn replace_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_database() {
        assert_eq!(
            super::replace_database("postgres://postgres@127.0.0.1:5432", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::replace_database("postgres://p@h/db?sslmode=disable", "x"),
            "postgres://p@h/x?sslmode=disable"
        );
    }
}
