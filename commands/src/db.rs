//! Connections and migrations.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

/// The schema: the event store, the relay's log table and the projections' views.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connection options every Framecart connection gets.
///
/// `pg_snapshot_xmin` is cluster-wide: one forgotten open transaction would hold back
/// every relay on the server, so an idle transaction is ended after a minute.
///
/// TLS follows `sslmode` in the URL (or `PGSSLMODE`). Without either, a server on this
/// machine (a loopback address or a Unix socket) is reached without TLS: libpq's default,
/// `prefer`, would encrypt every loopback round trip for nothing (measured: a fifth of the
/// process's CPU at 2k clicks/s went to TLS with Postgres on the same host).
pub fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let mut options: PgConnectOptions = url.parse()?;
    let ssl_mode_chosen = url.contains("sslmode=") || std::env::var_os("PGSSLMODE").is_some();
    if !ssl_mode_chosen && (options.get_socket().is_some() || is_local_host(options.get_host())) {
        options = options.ssl_mode(PgSslMode::Disable);
    }
    Ok(options.options([("idle_in_transaction_session_timeout", "60s")]).application_name("framecart"))
}

/// A host on this machine: a Unix socket directory, `localhost` or a loopback address.
fn is_local_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// How long a request waits for a connection before it is answered 503. With Postgres
/// down, sqlx retries a refused connection until this runs out: a short bound makes an
/// outage fail fast (and answer `Retry-After`) instead of piling callers up for seconds.
/// Under load a connection is free in milliseconds, so a second is ample.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a process that starts waits for Postgres to answer (a server starting at
/// the same moment, a fail-over) before it gives up.
pub const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// A pool, once Postgres answers (waiting up to [`STARTUP_WAIT`] for it). Its sessions
/// show `application_name` in `pg_stat_activity`, beside the locks they hold.
pub async fn connect(url: &str, max_connections: u32, application_name: &str) -> Result<PgPool, sqlx::Error> {
    let options = connect_options(url)?.application_name(application_name);
    let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
    loop {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await;
        match pool {
            Err(e @ (sqlx::Error::PoolTimedOut | sqlx::Error::Io(_))) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "Postgres does not answer yet; waiting for it");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

#[cfg(test)]
mod tests {
    use sqlx::postgres::PgSslMode;

    use super::{connect_options, is_local_host};

    #[test]
    fn hosts_on_this_machine_are_local() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "/var/run/postgresql"] {
            assert!(is_local_host(host), "{host}");
        }
        for host in ["db.example.com", "10.0.0.5", "2001:db8::1"] {
            assert!(!is_local_host(host), "{host}");
        }
    }

    #[test]
    fn loopback_goes_without_tls_unless_the_url_asks_for_it() {
        if std::env::var_os("PGSSLMODE").is_some() {
            return; // the environment chose; nothing of ours to check
        }
        let local = connect_options("postgres://postgres@127.0.0.1:5432/db").expect("a URL");
        assert!(matches!(local.get_ssl_mode(), PgSslMode::Disable));
        let asked = connect_options("postgres://postgres@127.0.0.1:5432/db?sslmode=require").expect("a URL");
        assert!(matches!(asked.get_ssl_mode(), PgSslMode::Require));
        let remote = connect_options("postgres://postgres@db.example.com:5432/db").expect("a URL");
        assert!(matches!(remote.get_ssl_mode(), PgSslMode::Prefer));
    }
}
