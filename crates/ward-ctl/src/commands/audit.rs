//! `audit list`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use ward_api::AuditQuery;

use super::Ctx;
use crate::args::{AuditCommand, AuditListArgs};
use crate::output;

pub(super) async fn run(ctx: &mut Ctx<'_>, cmd: AuditCommand) -> Result<()> {
    let AuditCommand::List(args) = cmd;
    let client = ctx.client()?;
    let filters = filters(&args, SystemTime::now());
    /// A trail can be long: without --limit, show the newest hundred.
    const DEFAULT_LIMIT: usize = 100;
    let max = Some(args.limit.map_or(DEFAULT_LIMIT, |n| n as usize));
    let items = client
        .list_up_to(max, |p| {
            client.list_audit(AuditQuery {
                cursor: p.cursor,
                limit: p.limit,
                ..filters.clone()
            })
        })
        .await?;
    output::list(ctx.out, ctx.output, &items)
}

/// The query filters of the flags, `--since` counted back from `now`.
fn filters(args: &AuditListArgs, now: SystemTime) -> AuditQuery {
    AuditQuery {
        actor: args.actor.clone(),
        action: args.action.clone(),
        result: args.result.clone(),
        since: args.since.map(|d| since_rfc3339(now, d)),
        cursor: None,
        limit: None,
    }
}

/// RFC 3339 time of `now - ago` (never before the Unix epoch).
pub(crate) fn since_rfc3339(now: SystemTime, ago: Duration) -> String {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let ago_ms = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
    ward_core::time::rfc3339(now_ms.saturating_sub(ago_ms).max(0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::args::parse_duration;

    #[test]
    fn since_counts_back_from_now() {
        // 2026-01-02T03:04:05Z
        let now = UNIX_EPOCH + Duration::from_secs(1_767_323_045);
        let since = |s: &str| since_rfc3339(now, parse_duration(s).unwrap());
        assert_eq!(since("1h"), "2026-01-02T02:04:05Z");
        assert_eq!(since("30m"), "2026-01-02T02:34:05Z");
        assert_eq!(since("7d"), "2025-12-26T03:04:05Z");
        assert_eq!(since("1h 30m"), "2026-01-02T01:34:05Z");
        assert_eq!(since("100000y"), "1970-01-01T00:00:00Z");
        assert!(ward_core::time::parse_rfc3339(&since("90s")).is_some());
    }

    #[test]
    fn bad_durations_are_refused() {
        assert!(parse_duration("yesterday").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1h").is_err());
    }

    #[test]
    fn flags_become_filters() {
        let now = UNIX_EPOCH + Duration::from_secs(1_767_323_045);
        let q = filters(
            &AuditListArgs {
                actor: Some("bob".into()),
                action: None,
                result: Some("denied".into()),
                since: Some(Duration::from_secs(60)),
                limit: Some(5),
            },
            now,
        );
        assert_eq!(q.actor.as_deref(), Some("bob"));
        assert_eq!(q.action, None);
        assert_eq!(q.result.as_deref(), Some("denied"));
        assert_eq!(q.since.as_deref(), Some("2026-01-02T03:03:05Z"));
    }
}
