/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to the database {0}: {1}")]
    Connect(String, #[source] sqlx::Error),
    #[error("database configuration: {0}")]
    Config(String),
    #[error("database migrations are not applied ({applied} of {expected})")]
    NotMigrated { applied: i64, expected: i64 },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A unique constraint refused the write: the name is taken.
    #[error("{0} already exists")]
    Conflict(String),
    #[error("stored value {value:?} in column {column} is not valid")]
    Corrupt { column: &'static str, value: String },
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

impl StoreError {
    /// Map a unique-constraint violation to [`StoreError::Conflict`].
    pub(crate) fn conflict_or(e: sqlx::Error, what: impl Into<String>) -> StoreError {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return StoreError::Conflict(what.into());
            }
        }
        StoreError::Database(e)
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;
