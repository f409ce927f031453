//! First start: on an empty store, create the operator and the first tenant.

use ward_store::Store;

use crate::auth::password;
use crate::config::Secret;
use crate::error::ApiError;
use crate::state::now_ms;

/// Environment variable with the bootstrap accounts' password.
pub const PASSWORD_ENV: &str = "WARD_BOOTSTRAP_PASSWORD";

/// What the first start created, to tell the person who started it.
pub struct Bootstrapped {
    pub operator_password: String,
    pub admin_password: String,
    /// True when the passwords came from `WARD_BOOTSTRAP_PASSWORD`.
    pub from_env: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{PASSWORD_ENV}: {0}")]
    Password(String),
    #[error(transparent)]
    Store(#[from] ward_store::StoreError),
}

impl From<ApiError> for BootstrapError {
    fn from(e: ApiError) -> Self {
        BootstrapError::Password(e.message)
    }
}

/// Create tenant `system` with operator `operator`, and tenant `default`
/// with owner `admin`, if the store is empty. Returns None otherwise.
pub async fn bootstrap(
    store: &Store,
    region: &str,
    given: Option<&Secret>,
) -> Result<Option<Bootstrapped>, BootstrapError> {
    if store.tenant_by_name(ward_core::SYSTEM_TENANT).await?.is_some() {
        return Ok(None);
    }
    let (operator_password, admin_password, from_env) = match given {
        Some(p) => {
            password::check_policy(p.expose())?;
            (p.expose().to_owned(), p.expose().to_owned(), true)
        }
        None => (password::generate(), password::generate(), false),
    };
    let op_hash = password::hash(operator_password.clone()).await?;
    let admin_hash = password::hash(admin_password.clone()).await?;
    if store.bootstrap(region, &op_hash, &admin_hash, now_ms()).await? {
        Ok(Some(Bootstrapped {
            operator_password,
            admin_password,
            from_env,
        }))
    } else {
        Ok(None)
    }
}
