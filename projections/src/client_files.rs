//! Projection `client_files`: the original system's per-viewer click files,
//! `media/client_files/{user_id}_{user_ip}_{video_id}.json` (`None` for no user), each a
//! JSON list of `{"x", "y", "timestamp", "videoId"}` in click order.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use framecart_domain::click::{self, CLICK_RECORDED, ClickEvent, ClickRecorded};
use framecart_domain::log::{LoggedEvent, Namespace};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinHandle;

use crate::files::{DirtyFiles, Throttle, plain_number, remove_files, write_files};
use crate::personal::{KeyReader, Keys, erased_subject, is_erasure, with_erasures};
use crate::runner::{Projection, ProjectionError, decode};

pub const NAME: &str = "client_files";
pub const FOLDER: &str = "client_files";
/// The files whose clicks changed and are not written yet.
pub const DIRTY: DirtyFiles = DirtyFiles { table: "client_files_dirty" };

pub struct ClientFilesProjection {
    keys: Arc<KeyReader>,
    file_ip: FileIp,
    writer: Arc<Writer>,
    /// The files being written in the background, if they are.
    job: tokio::sync::Mutex<Option<JoinHandle<Result<(), ProjectionError>>>>,
}

/// What writes the files: the folder, and when each file was last written.
struct Writer {
    dir: PathBuf,
    throttle: Throttle,
}

/// A busy viewer's file is rewritten at most this often. (At one second, a viewer who
/// clicked twice in a second waited a second for the second click; and at thousands of
/// clicks a second, clicks keep coming for files written a moment ago.)
const REWRITE_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

impl ClientFilesProjection {
    pub fn new(media_dir: PathBuf, keys: Arc<KeyReader>, file_ip: FileIp) -> Self {
        let writer = Writer { dir: media_dir.join(FOLDER), throttle: Throttle::new(REWRITE_EVERY) };
        Self { keys, file_ip, writer: Arc::new(writer), job: tokio::sync::Mutex::new(None) }
    }
}

/// How much of a viewer's address names their files (`FRAMECART_CLIENT_FILE_IP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileIp {
    /// The whole address, as the original system had it.
    Full,
    /// IPv4 to its /24 (`203.0.113.0`), IPv6 to its /48 (`2001:db8:1::`): a viewer's
    /// files are then shared with their neighbours'.
    Truncated,
    /// None: `None` in its place, as the original wrote a missing user.
    None,
}

impl std::str::FromStr for FileIp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Self::Full),
            "truncated" => Ok(Self::Truncated),
            "none" => Ok(Self::None),
            other => Err(format!("{other:?}: the address in file names is `full`, `truncated` or `none`")),
        }
    }
}

impl FileIp {
    /// What of `ip` goes into a file name.
    pub fn part(self, ip: IpAddr) -> String {
        match (self, ip) {
            (Self::Full, ip) => ip.to_string(),
            (Self::Truncated, IpAddr::V4(v4)) => {
                let [a, b, c, _] = v4.octets();
                Ipv4Addr::new(a, b, c, 0).to_string()
            }
            (Self::Truncated, IpAddr::V6(v6)) => {
                let [a, b, c, ..] = v6.segments();
                Ipv6Addr::new(a, b, c, 0, 0, 0, 0, 0).to_string()
            }
            (Self::None, _) => "None".to_owned(),
        }
    }
}

/// The file a click belongs to, named by the viewer's address (as much of it as
/// `file_ip` keeps): `None` once that is erased. Every part is a parsed value: a user id
/// token, an IP address, a canonical video id; none can hold a path separator.
pub fn file_name(click: &ClickRecorded, keys: &Keys, file_ip: FileIp) -> Option<String> {
    let user = click.user_id.as_ref().map_or("None", |u| u.as_str());
    let ip = file_ip.part(keys.reveal(&click.client_ip)?);
    Some(format!("{user}_{ip}_{}.json", click.video_id))
}

/// One entry of a client file, in the original field order.
#[derive(Serialize)]
struct Entry {
    #[serde(serialize_with = "plain_number")]
    x: f64,
    #[serde(serialize_with = "plain_number")]
    y: f64,
    #[serde(serialize_with = "plain_number")]
    timestamp: f64,
    #[serde(rename = "videoId")]
    video_id: String,
}

#[async_trait]
impl Projection for ClientFilesProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    /// On NATS 2.9 (one filter), every event: erasures are data subjects' events.
    fn filter_subject(&self, ns: &Namespace) -> String {
        ns.all_events_subject()
    }

    /// The clicks as recorded (verdicts on them are not delivered), and erasures.
    fn filter_subjects(&self, ns: &Namespace) -> Vec<String> {
        with_erasures(ns, vec![ns.event_type_subject(click::AGGREGATE_TYPE, click::CLICK_RECORDED)])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["client_file_clicks", "client_files_dirty"]
    }

    /// The file holds the clicks as recorded; the verdicts on them are not read.
    fn wants(&self, aggregate_type: &str, event_type: &str) -> bool {
        (aggregate_type == click::AGGREGATE_TYPE && event_type == click::CLICK_RECORDED)
            || is_erasure(aggregate_type, event_type)
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &LoggedEvent,
        log_position: i64,
    ) -> Result<(), ProjectionError> {
        self.apply_all(tx, &[(event.clone(), log_position)]).await
    }

    /// A batch's clicks are written with one statement, and their files marked with one.
    /// An erasure deletes its subject's rows and marks their files, which the writer then
    /// deletes (a file with no clicks left is removed).
    async fn apply_all(&self, tx: &mut PgConnection, events: &[(LoggedEvent, i64)]) -> Result<(), ProjectionError> {
        let (mut clicks, mut erased) = (Vec::new(), Vec::new());
        for (event, log_position) in events {
            if let Some(subject) = erased_subject(event, *log_position)? {
                erased.push((subject, *log_position));
            } else if event.event_type == CLICK_RECORDED
                && let ClickEvent::ClickRecorded(c) = decode(event, *log_position)?
            {
                clicks.push((c, *log_position));
            }
        }
        let keys = self.keys.keys(tx, clicks.iter().filter_map(|(c, _)| c.client_ip.subject())).await?;
        let (mut names, mut positions, mut xs, mut ys, mut times, mut videos, mut subjects) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (c, log_position) in &clicks {
            // A click whose viewer is erased has no file.
            let Some(name) = file_name(c, &keys, self.file_ip) else { continue };
            names.push(name);
            positions.push(*log_position);
            xs.push(c.x);
            ys.push(c.y);
            times.push(c.timestamp);
            videos.push(c.video_id.to_string());
            subjects.push(c.client_ip.subject().map(|s| s.to_string()));
        }
        if !names.is_empty() {
            sqlx::query(
                "INSERT INTO client_file_clicks (file_name, log_position, x, y, media_time, video_id, subject)
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::float8[], $4::float8[], $5::float8[],
                     $6::text[], $7::text[])
                 ON CONFLICT DO NOTHING",
            )
            .bind(&names)
            .bind(&positions)
            .bind(&xs)
            .bind(&ys)
            .bind(&times)
            .bind(&videos)
            .bind(&subjects)
            .execute(&mut *tx)
            .await?;
            DIRTY.mark_all(tx, &names, &positions).await?;
        }
        for (subject, log_position) in erased {
            let files: Vec<String> = sqlx::query_scalar(
                "WITH gone AS (DELETE FROM client_file_clicks WHERE subject = $1 RETURNING file_name)
                 SELECT DISTINCT file_name FROM gone",
            )
            .bind(subject.as_str())
            .fetch_all(&mut *tx)
            .await?;
            let at = vec![log_position; files.len()];
            DIRTY.mark_all(tx, &files, &at).await?;
            self.keys.forget(&subject);
        }
        Ok(())
    }

    /// Every applied click is in its file up to the oldest click a mark waits for.
    async fn files_up_to(&self, pool: &PgPool, applied: i64) -> Result<Option<i64>, ProjectionError> {
        Ok(Some(DIRTY.written_up_to(pool, applied).await?))
    }

    /// Starts writing the files whose rows changed in the background, unless that is
    /// under way already (it goes on until nothing is left, so it takes these too): the
    /// runner goes back to the log at once, and the files are written while it applies
    /// the next batch. An error of the last background write is returned here, and the
    /// runner starts over (the marks are still there).
    async fn after_commit(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        let mut job = self.job.lock().await;
        if job.as_ref().is_some_and(|running| !running.is_finished()) {
            return Ok(());
        }
        if let Some(done) = job.take() {
            done.await.map_err(|e| ProjectionError::Internal(format!("the client files' writer: {e}")))??;
        }
        let (writer, pool) = (self.writer.clone(), pool.clone());
        *job = Some(tokio::spawn(async move { writer.write_pending(&pool).await }));
        Ok(())
    }

    /// Waits until every marked file is written (the throttle waited out).
    async fn finish(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        let mut job = self.job.lock().await;
        if let Some(running) = job.take() {
            running.await.map_err(|e| ProjectionError::Internal(format!("the client files' writer: {e}")))??;
        }
        while !DIRTY.some_pending(pool, 1).await?.is_empty() {
            self.writer.write_pending(pool).await?;
            tokio::time::sleep(REWRITE_EVERY / 4).await;
        }
        Ok(())
    }
}

impl Writer {
    /// Rewrites the files whose rows changed, then forgets each, unless it changed again
    /// in the meantime. A round takes up to [`FILES_PER_ROUND`] files, those that waited
    /// longest first: their rows in one query, the files written [`WRITERS`] at a time,
    /// their marks cleared in one statement; rounds go on until none is left that the
    /// throttle lets through.
    async fn write_pending(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        loop {
            let started = std::time::Instant::now();
            let pending = DIRTY.some_pending(pool, FILES_PER_ROUND).await?;
            let ready: Vec<(String, i64)> = pending.into_iter().filter(|(name, _)| self.throttle.ready(name)).collect();
            if ready.is_empty() {
                return Ok(());
            }
            let names: Vec<&str> = ready.iter().map(|(name, _)| name.as_str()).collect();
            let rows: Vec<(String, f64, f64, f64, String)> = sqlx::query_as(
                "SELECT file_name, x, y, media_time, video_id FROM client_file_clicks
                 WHERE file_name = ANY($1) ORDER BY file_name, log_position",
            )
            .bind(&names)
            .fetch_all(pool)
            .await?;
            // Every marked file is written; one with no clicks left (its viewer erased) is
            // deleted.
            let mut entries: HashMap<&str, Vec<Entry>> = names.iter().map(|name| (*name, Vec::new())).collect();
            for (name, x, y, timestamp, video_id) in rows {
                if let Some(list) = entries.get_mut(name.as_str()) {
                    list.push(Entry { x, y, timestamp, video_id });
                }
            }
            let mut files: Vec<(String, Vec<u8>)> = Vec::with_capacity(entries.len());
            let (empty, entries): (Vec<_>, Vec<_>) = entries.into_iter().partition(|(_, list)| list.is_empty());
            let empty: Vec<String> = empty.into_iter().map(|(name, _)| name.to_owned()).collect();
            for (name, list) in entries {
                let json = serde_json::to_vec(&list)
                    .map_err(|e| ProjectionError::Internal(format!("serialising {name}: {e}")))?;
                files.push((name.to_owned(), json));
            }
            let prepared = started.elapsed();
            let (mut written, mut failed) = write_files(self.dir.clone(), files, WRITERS).await;
            let (removed, not_removed) = remove_files(self.dir.clone(), empty).await;
            written.extend(removed);
            failed = failed.or(not_removed);
            let wrote = started.elapsed();
            self.throttle.wrote(written.iter().map(String::as_str));
            let written: HashSet<String> = written.into_iter().collect();
            let done: Vec<(String, i64)> = ready.into_iter().filter(|(name, _)| written.contains(name)).collect();
            DIRTY.written_all(pool, &done).await?;
            tracing::debug!(
                files = done.len(),
                read_ms = prepared.as_millis() as u64,
                write_ms = (wrote - prepared).as_millis() as u64,
                total_ms = started.elapsed().as_millis() as u64,
                "client files written"
            );
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
    }
}

/// Files rewritten per round of [`Writer::write_pending`].
const FILES_PER_ROUND: i64 = 2000;
/// Files written at the same time: each waits for its flush, and the disk takes many
/// flushes together (measured at 2,000 clicks/s: 16 wrote about 2,000 files/s).
const WRITERS: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_as_much_of_the_address_as_asked() {
        let v4: IpAddr = "203.0.113.77".parse().expect("v4");
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().expect("v6");
        assert_eq!(
            (FileIp::Full.part(v4), FileIp::Full.part(v6)),
            ("203.0.113.77".into(), "2001:db8:1:2:3:4:5:6".into())
        );
        assert_eq!(
            (FileIp::Truncated.part(v4), FileIp::Truncated.part(v6)),
            ("203.0.113.0".into(), "2001:db8:1::".into())
        );
        assert_eq!(FileIp::None.part(v4), "None");
        assert_eq!("truncated".parse::<FileIp>(), Ok(FileIp::Truncated));
        assert!("half".parse::<FileIp>().is_err());
    }

    #[test]
    fn entries_keep_the_original_shape() {
        let entries = [Entry { x: 431.0625, y: 255.0, timestamp: 2.983575, video_id: "VESeA6leQuk".into() }];
        assert_eq!(
            serde_json::to_string(&entries).expect("json"),
            r#"[{"x":431.0625,"y":255,"timestamp":2.983575,"videoId":"VESeA6leQuk"}]"#
        );
    }
}
