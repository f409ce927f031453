//! Gateways, their join codes, and the access records they ship.

use sqlx::any::AnyRow;

use crate::{get, new_id, Backend, Page, PageRequest, Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatewayRow {
    pub id: String,
    pub name: String,
    /// The addresses its certificate names (`host` or IP), comma-separated in the store.
    pub addresses: Vec<String>,
    pub cert_not_after: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
}

impl GatewayRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let addresses: String = get(row, "addresses")?;
        Ok(GatewayRow {
            id: get(row, "id")?,
            name: get(row, "name")?,
            addresses: addresses
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            cert_not_after: get(row, "cert_not_after")?,
            created_at: get(row, "created_at")?,
            last_seen_at: get(row, "last_seen_at")?,
        })
    }
}

/// An access record as stored (the wire type lives in `ward-api`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessRecordRow {
    pub id: String,
    pub tenant_id: String,
    pub started_ms: i64,
    pub user_id: String,
    pub device_id: String,
    pub gateway_id: String,
    pub source: String,
    pub dest_host: String,
    pub dest_addr: Option<String>,
    pub port: i64,
    pub protocol: String,
    pub action: String,
    pub rule_id: Option<String>,
    pub reason: String,
    pub bytes_up: i64,
    pub bytes_down: i64,
    pub duration_ms: i64,
    pub end_reason: String,
    /// Clientless requests: the HTTP method, the path (no query string) and
    /// the status answered.
    pub method: Option<String>,
    pub path: Option<String>,
    pub status: Option<i64>,
    /// `private`, `web` or `dns` (empty: stored as `private`).
    pub kind: String,
    /// Web: the URL of a plain-HTTP (or inspected) request.
    pub url: Option<String>,
    /// Web: an upload's size, content type, file name and SHA-256.
    pub upload_size: Option<i64>,
    pub upload_content_type: Option<String>,
    pub upload_file_name: Option<String>,
    pub upload_sha256: Option<String>,
    /// Web: the tunnel's TLS was inspected.
    pub inspected: bool,
    /// DNS: the query type and the answer as text.
    pub qtype: Option<String>,
    pub answer: Option<String>,
}

impl AccessRecordRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(AccessRecordRow {
            id: get(row, "id")?,
            tenant_id: get(row, "tenant_id")?,
            started_ms: get(row, "started_ms")?,
            user_id: get(row, "user_id")?,
            device_id: get(row, "device_id")?,
            gateway_id: get(row, "gateway_id")?,
            source: get(row, "source")?,
            dest_host: get(row, "dest_host")?,
            dest_addr: get(row, "dest_addr")?,
            port: get(row, "port")?,
            protocol: get(row, "protocol")?,
            action: get(row, "action")?,
            rule_id: get(row, "rule_id")?,
            reason: get(row, "reason")?,
            bytes_up: get(row, "bytes_up")?,
            bytes_down: get(row, "bytes_down")?,
            duration_ms: get(row, "duration_ms")?,
            end_reason: get(row, "end_reason")?,
            method: get(row, "method")?,
            path: get(row, "path")?,
            status: get(row, "status")?,
            kind: get(row, "kind")?,
            url: get(row, "url")?,
            upload_size: get(row, "upload_size")?,
            upload_content_type: get(row, "upload_content_type")?,
            upload_file_name: get(row, "upload_file_name")?,
            upload_sha256: get(row, "upload_sha256")?,
            inspected: get::<i64>(row, "inspected")? != 0,
            qtype: get(row, "qtype")?,
            answer: get(row, "answer")?,
        })
    }
}

/// Filters for [`Store::list_access_records`]; all optional.
#[derive(Debug, Clone, Default)]
pub struct AccessFilter {
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub action: Option<String>,
    /// Started at or after (ms).
    pub since: Option<i64>,
    /// `private`, `web` or `dns`; None: every kind.
    pub kind: Option<String>,
    /// Only this destination name and the names below it.
    pub domain: Option<String>,
}

const GATEWAY_COLUMNS: &str = "id, name, addresses, cert_not_after, created_at, last_seen_at";
const RECORD_COLUMNS: &str =
    "id, tenant_id, started_ms, user_id, device_id, gateway_id, source, dest_host, dest_addr, \
                              port, protocol, action, rule_id, reason, bytes_up, bytes_down, duration_ms, end_reason, \
                              method, path, status, kind, url, upload_size, upload_content_type, upload_file_name, \
                              upload_sha256, inspected, qtype, answer";

impl Store {
    pub async fn create_gateway_join_code(
        &self,
        name: &str,
        secret_hash: &str,
        created_by: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<String> {
        let id = new_id("gjc");
        sqlx::query(
            "INSERT INTO gateway_join_codes (id, secret_hash, name, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(secret_hash)
        .bind(name)
        .bind(created_by)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// Use a join code (once) and register the gateway it names, in one
    /// transaction. None when the code is unknown, used or expired.
    pub async fn join_gateway(
        &self,
        secret_hash: &str,
        gateway: &GatewayRow,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<GatewayRow>> {
        let mut tx = self.pool().begin().await?;
        let name: Option<String> = sqlx::query_scalar(
            "UPDATE gateway_join_codes SET used_at = $1 WHERE secret_hash = $2 AND used_at IS NULL AND expires_at > $1 \
             RETURNING name",
        )
        .bind(now)
        .bind(secret_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(name) = name else { return Ok(None) };
        sqlx::query(&format!(
            "INSERT INTO gateways ({GATEWAY_COLUMNS}, token_hash) VALUES ($1, $2, $3, $4, $5, $5, $6)"
        ))
        .bind(&gateway.id)
        .bind(&name)
        .bind(gateway.addresses.join(","))
        .bind(gateway.cert_not_after)
        .bind(now)
        .bind(token_hash)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_or(e, format!("gateway {name}")))?;
        tx.commit().await?;
        Ok(Some(GatewayRow {
            name,
            created_at: now,
            last_seen_at: now,
            ..gateway.clone()
        }))
    }

    /// Gateway authentication entry point.
    pub async fn gateway_by_token_hash(&self, token_hash: &str) -> Result<Option<GatewayRow>> {
        let row = sqlx::query(&format!("SELECT {GATEWAY_COLUMNS} FROM gateways WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(GatewayRow::from_row).transpose()
    }

    pub async fn list_gateways(&self) -> Result<Vec<GatewayRow>> {
        let rows = sqlx::query(&format!("SELECT {GATEWAY_COLUMNS} FROM gateways ORDER BY id"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(GatewayRow::from_row).collect()
    }

    pub async fn touch_gateway(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE gateways SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $3")
            .bind(now)
            .bind(id)
            .bind(now - 10_000)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Store a batch of access records; ids already stored (or repeated in
    /// the batch) are skipped. Returns how many were new. One transaction;
    /// multi-row `INSERT`s of [`ROWS_PER_INSERT`] sizes (so that only three
    /// statements are ever prepared, each reused from the statement cache):
    /// a statement per record would cost a round trip to the database (or to
    /// SQLite's worker thread) each, while one huge statement would hold the
    /// CPU (and, on SQLite, the write lock) in one long stretch.
    pub async fn insert_access_records(&self, records: &[AccessRecordRow], now: i64) -> Result<u64> {
        let mut tx = self.pool().begin().await?;
        let mut stored = 0;
        let mut rest = records;
        while !rest.is_empty() {
            let rows = ROWS_PER_INSERT.iter().copied().find(|&n| n <= rest.len()).unwrap_or(1);
            let (chunk, after) = rest.split_at(rows);
            rest = after;
            let mut query = sqlx::query(insert_records_sql(self.backend(), chunk.len()));
            for r in chunk {
                query = query
                    .bind(&r.id)
                    .bind(&r.tenant_id)
                    .bind(r.started_ms)
                    .bind(&r.user_id)
                    .bind(&r.device_id)
                    .bind(&r.gateway_id)
                    .bind(&r.source)
                    .bind(&r.dest_host)
                    .bind(&r.dest_addr)
                    .bind(r.port)
                    .bind(&r.protocol)
                    .bind(&r.action)
                    .bind(&r.rule_id)
                    .bind(&r.reason)
                    .bind(r.bytes_up)
                    .bind(r.bytes_down)
                    .bind(r.duration_ms)
                    .bind(&r.end_reason)
                    .bind(&r.method)
                    .bind(&r.path)
                    .bind(r.status)
                    .bind(if r.kind.is_empty() { "private" } else { r.kind.as_str() })
                    .bind(&r.url)
                    .bind(r.upload_size)
                    .bind(&r.upload_content_type)
                    .bind(&r.upload_file_name)
                    .bind(&r.upload_sha256)
                    .bind(i64::from(r.inspected))
                    .bind(&r.qtype)
                    .bind(&r.answer)
                    .bind(now);
            }
            stored += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// The tenant's access records, newest first.
    pub async fn list_access_records(
        &self,
        tenant_id: &str,
        filter: &AccessFilter,
        page: &PageRequest,
    ) -> Result<Page<AccessRecordRow>> {
        // `.name` ends with `.domain`: the domain itself and every name below
        // it. The domain is matched literally: its `_` is no wildcard.
        let below = filter.domain.as_ref().map(|d| format!("%.{}", crate::like_literal(d)));
        let rows = crate::newest_first(
            self,
            &format!("SELECT {RECORD_COLUMNS} FROM access_records WHERE tenant_id = $1"),
            tenant_id,
            &[
                ("user_id =", filter.user_id.as_deref()),
                ("device_id =", filter.device_id.as_deref()),
                ("action =", filter.action.as_deref()),
                ("kind =", filter.kind.as_deref()),
                ("('.' || dest_host) LIKE $? ESCAPE '\\'", below.as_deref()),
            ],
            filter.since.map(|ms| ("started_ms", ms)),
            page,
        )
        .await?;
        let items = rows.iter().map(AccessRecordRow::from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, page, |r| &r.id))
    }

    /// The tenant's connection attempts started at or after `since_ms`,
    /// counted per `bucket_ms` (buckets aligned to multiples of it, since
    /// the epoch) and per action: `(bucket start in ms, allowed, denied)`,
    /// oldest first, empty buckets left out.
    pub async fn access_counts(&self, tenant_id: &str, since_ms: i64, bucket_ms: i64) -> Result<Vec<(i64, u64, u64)>> {
        let bucket_ms = bucket_ms.max(1);
        let rows = sqlx::query(
            "SELECT (started_ms / $3) * $3 AS bucket, \
                    SUM(CASE WHEN action = 'allow' THEN 1 ELSE 0 END) AS allowed, \
                    SUM(CASE WHEN action = 'allow' THEN 0 ELSE 1 END) AS denied \
             FROM access_records WHERE tenant_id = $1 AND started_ms >= $2 AND kind = 'private' \
             GROUP BY bucket ORDER BY bucket",
        )
        .bind(tenant_id)
        .bind(since_ms)
        .bind(bucket_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let bucket: i64 = get(row, "bucket")?;
                let allowed: i64 = get(row, "allowed")?;
                let denied: i64 = get(row, "denied")?;
                Ok((bucket, allowed.max(0) as u64, denied.max(0) as u64))
            })
            .collect()
    }
}

impl Store {
    /// The most frequent destinations (`by_user` false) or users of the
    /// tenant's records of `kind`, started at or after `since` and with
    /// `action` when given: `(key, count)`, most first, ties by key.
    pub async fn top_access_records(
        &self,
        tenant_id: &str,
        kind: &str,
        by_user: bool,
        action: Option<&str>,
        since: i64,
        limit: i64,
    ) -> Result<Vec<(String, i64)>> {
        let column = if by_user { "user_id" } else { "dest_host" };
        let action_cond = if action.is_some() { " AND action = $5" } else { "" };
        let sql = format!(
            "SELECT {column} AS k, COUNT(*) AS n FROM access_records \
             WHERE tenant_id = $1 AND kind = $2 AND started_ms >= $3{action_cond} \
             GROUP BY {column} ORDER BY n DESC, k LIMIT $4"
        );
        let mut q = sqlx::query(&sql).bind(tenant_id).bind(kind).bind(since).bind(limit);
        if let Some(a) = action {
            q = q.bind(a);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| Ok((get::<String>(row, "k")?, get::<i64>(row, "n")?)))
            .collect()
    }
}

/// Columns bound per access record (the record's, then `received_at`).
const RECORD_PARAMS: usize = 31;
/// Rows per `INSERT`, largest first: a batch is stored as greedy chunks of
/// these sizes.
pub const ROWS_PER_INSERT: [usize; 3] = [16, 4, 1];

/// `INSERT ... VALUES (...), (...) ON CONFLICT (id) DO NOTHING` for `rows`
/// records, one of [`ROWS_PER_INSERT`]; built once each.
///
/// SQLite gets anonymous `?` placeholders, bound in order, instead of the
/// `$N` the rest of the store uses: SQLite finds a named parameter's name by
/// a linear scan, and the driver asks for every name at every execution, so
/// `$N` made each of these statements cost the square of its 496
/// parameters (a sixth of a busy gateway's CPU in the benchmark).
fn insert_records_sql(backend: Backend, rows: usize) -> &'static str {
    type Built = Vec<(Backend, usize, String)>;
    static SQL: std::sync::OnceLock<Built> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        [Backend::Sqlite, Backend::Postgres]
            .into_iter()
            .flat_map(|b| {
                ROWS_PER_INSERT
                    .iter()
                    .map(move |&n| (b, n, build_insert_records_sql(b, n)))
            })
            .collect()
    });
    match all.iter().find(|(b, n, _)| *b == backend && *n == rows) {
        Some((_, _, sql)) => sql,
        None => "",
    }
}

fn build_insert_records_sql(backend: Backend, rows: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = format!("INSERT INTO access_records ({RECORD_COLUMNS}, received_at) VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..RECORD_PARAMS {
            let sep = if col == 0 { "" } else { ", " };
            match backend {
                Backend::Sqlite => {
                    let _ = write!(sql, "{sep}?");
                }
                Backend::Postgres => {
                    let _ = write!(sql, "{sep}${}", row * RECORD_PARAMS + col + 1);
                }
            }
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (id) DO NOTHING");
    sql
}
