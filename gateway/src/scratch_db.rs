//! Scratch schemas on a shared PostgreSQL, for this workspace's own tests and benchmarks.
//!
//! Every test and benchmark run gets a schema of its own, so runs never see each other's
//! rows. Test processes end without a chance to clean up, and one benchmark run stores a few
//! hundred MB, so a schema's name carries the time it was made, and making one first drops
//! the schemas of the same prefix that are more than an hour old (no test or benchmark here
//! runs that long). Before this, a few days of runs had left 9 GB behind.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::AnyPool;

/// Schemas older than this are left over from an earlier run.
const STALE_AFTER_SECONDS: u64 = 3600;

/// A schema made for one run, and the URL that puts it first on the search path.
#[derive(Debug, Clone)]
pub struct ScratchSchema {
    /// The schema's name: `<prefix>_<unix seconds>_<random>`.
    pub name: String,
    /// `admin_url` with `search_path` set to the schema.
    pub url: String,
}

/// Makes a new schema named after `prefix` (letters and digits only), after dropping that
/// prefix's schemas more than an hour old.
///
/// # Errors
/// PostgreSQL cannot be reached or the schema cannot be made.
pub async fn create(admin_url: &str, prefix: &str) -> Result<ScratchSchema, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let admin = AnyPool::connect(admin_url).await?;
    let now = unix_seconds();
    drop_stale(&admin, prefix, now).await;
    let name = format!("{prefix}_{now}_{}", uuid::Uuid::new_v4().simple());
    let made = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
        .execute(&admin)
        .await;
    admin.close().await;
    made?;
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{separator}options=-c%20search_path%3D{name}");
    Ok(ScratchSchema { name, url })
}

/// [`create`] for a storage test: `None`, with a `SKIPPED` line saying why, when PostgreSQL
/// cannot be reached, so the test runs on SQLite only.
///
/// # Panics
/// When PostgreSQL cannot be reached in CI (`CI=true`): there the PostgreSQL tests must run.
pub async fn create_for_test(admin_url: &str, prefix: &str) -> Option<ScratchSchema> {
    match create(admin_url, prefix).await {
        Ok(schema) => Some(schema),
        Err(error) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL must be reachable at {admin_url} in CI: {error}"
            );
            eprintln!(
                "SKIPPED: PostgreSQL is not reachable at {admin_url} ({error}); this test ran on SQLite only"
            );
            None
        }
    }
}

/// Drops a schema made by [`create`] with everything in it.
///
/// # Errors
/// PostgreSQL cannot be reached or refuses the drop.
pub async fn drop(admin_url: &str, schema: &ScratchSchema) -> Result<(), sqlx::Error> {
    sqlx::any::install_default_drivers();
    let admin = AnyPool::connect(admin_url).await?;
    let dropped = drop_schema(&admin, &schema.name).await;
    admin.close().await;
    dropped
}

async fn drop_stale(admin: &AnyPool, prefix: &str, now: u64) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE $1",
    )
    .bind(format!("{prefix}\\_%"))
    .fetch_all(admin)
    .await
    .unwrap_or_default();
    for name in names {
        if made_at(&name, prefix).is_some_and(|made| made + STALE_AFTER_SECONDS < now) {
            // Another run may be dropping the same schema at the same moment: not an error.
            if let Err(error) = drop_schema(admin, &name).await {
                tracing::debug!(%name, %error, "stale scratch schema not dropped");
            }
        }
    }
}

async fn drop_schema(admin: &AnyPool, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {name} CASCADE"
    )))
    .execute(admin)
    .await
    .map(|_| ())
}

/// The creation time in a name made by [`create`]; `None` for any other name (schemas of
/// older runs without a time, or someone else's).
fn made_at(name: &str, prefix: &str) -> Option<u64> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('_')?;
    let (seconds, random) = rest.split_once('_')?;
    let valid = !random.is_empty() && random.chars().all(|c| c.is_ascii_alphanumeric());
    valid.then(|| seconds.parse().ok()).flatten()
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::made_at;

    #[test]
    fn only_names_this_module_made_carry_a_time() {
        assert_eq!(made_at("t_1764580000_0a1b2c", "t"), Some(1_764_580_000));
        assert_eq!(made_at("t_0a1b2c3d", "t"), None, "an old-style name");
        assert_eq!(made_at("bench_1764580000_ff", "t"), None, "another prefix");
        assert_eq!(made_at("t_1764580000_", "t"), None);
        assert_eq!(made_at("t_x_ff", "t"), None);
    }
}
