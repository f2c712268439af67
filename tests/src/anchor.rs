//! The anchor of the throughput figures: what this Postgres does alone, measured in the
//! same run as Framecart. `pgbench -n -c 64 -j 2 -T 15` of one single-row INSERT of a
//! click as JSON into `t (id bigserial PRIMARY KEY, payload jsonb, at timestamptz
//! DEFAULT now())`, in a database of its own, dropped afterwards.

use std::io::Write;
use std::process::Command;

use sqlx::{Connection, PgConnection};

use crate::TestDatabase;

/// pgbench's run.
#[derive(Debug, Clone, Copy)]
pub struct Pgbench {
    pub clients: u32,
    pub threads: u32,
    pub seconds: u64,
}

impl Default for Pgbench {
    fn default() -> Self {
        Self { clients: 64, threads: 2, seconds: 15 }
    }
}

impl Pgbench {
    /// Committed single-row INSERTs of `row` (a JSON text) per second.
    pub async fn inserts_per_second(&self, row: &str) -> anyhow::Result<f64> {
        let db = TestDatabase::create().await?;
        let mut conn = PgConnection::connect(&db.url).await?;
        sqlx::query("CREATE TABLE t (id bigserial PRIMARY KEY, payload jsonb, at timestamptz DEFAULT now())")
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let mut script = tempfile::Builder::new().suffix(".sql").tempfile()?;
        writeln!(script, "INSERT INTO t (payload) VALUES ('{}');", row.replace('\'', "''"))?;
        script.flush()?;
        let (clients, threads, seconds, url) = (self.clients, self.threads, self.seconds, db.url.clone());
        let path = script.path().to_owned();
        let output = tokio::task::spawn_blocking(move || {
            Command::new("pgbench")
                .args(["-n", "-c", &clients.to_string(), "-j", &threads.to_string(), "-T", &seconds.to_string()])
                .arg("-f")
                .arg(&path)
                .arg(&url)
                .output()
        })
        .await??;
        let stdout = String::from_utf8_lossy(&output.stdout);
        anyhow::ensure!(
            output.status.success(),
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
        tps(&stdout).ok_or_else(|| anyhow::anyhow!("no `tps = ` line in pgbench's output:\n{stdout}"))
    }
}

/// `tps = 11812.345 (without initial connection time)` → 11812.345.
fn tps(output: &str) -> Option<f64> {
    output.lines().find_map(|line| line.strip_prefix("tps = ")?.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_rate_off_pgbench_output() {
        let output = "number of failed transactions: 0 (0.000%)\nlatency average = 5.4 ms\n\
                      initial connection time = 20.1 ms\ntps = 11812.345 (without initial connection time)\n";
        assert_eq!(super::tps(output), Some(11812.345));
        assert_eq!(super::tps("nothing"), None);
    }
}
