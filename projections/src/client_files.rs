//! Projection `client_files`: the original system's per-viewer click files,
//! `media/client_files/{user_id}_{user_ip}_{video_id}.json` (`None` for no user), each a
//! JSON list of `{"x", "y", "timestamp", "videoId"}` in click order.

use std::path::PathBuf;

use async_trait::async_trait;
use framecart_domain::click::{self, CLICK_RECORDED, ClickEvent, ClickRecorded};
use framecart_domain::log::{LoggedEvent, Namespace};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::files::{DirtyFiles, Throttle, plain_number, write_file};
use crate::runner::{Projection, ProjectionError, decode};

pub const NAME: &str = "client_files";
pub const FOLDER: &str = "client_files";
const DIRTY: DirtyFiles = DirtyFiles { table: "client_files_dirty" };

pub struct ClientFilesProjection {
    dir: PathBuf,
    throttle: Throttle,
}

/// A busy viewer's file is rewritten at most this often.
const REWRITE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl ClientFilesProjection {
    pub fn new(media_dir: PathBuf) -> Self {
        Self { dir: media_dir.join(FOLDER), throttle: Throttle::new(REWRITE_EVERY) }
    }
}

/// The file a click belongs to. Every part is a parsed value: a user id token, an IP
/// address, a canonical video id; none can hold a path separator.
pub fn file_name(click: &ClickRecorded) -> String {
    let user = click.user_id.as_ref().map_or("None", |u| u.as_str());
    format!("{user}_{}_{}.json", click.client_ip, click.video_id)
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

    /// The file holds the clicks as recorded: verdicts on them are not delivered.
    fn filter_subject(&self, ns: &Namespace) -> String {
        ns.event_type_subject(click::AGGREGATE_TYPE, click::CLICK_RECORDED)
    }

    fn tables(&self) -> &'static [&'static str] {
        &["client_file_clicks", "client_files_dirty"]
    }

    /// The file holds the clicks as recorded; the verdicts on them are not read.
    fn wants(&self, _aggregate_type: &str, event_type: &str) -> bool {
        event_type == click::CLICK_RECORDED
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
    async fn apply_all(&self, tx: &mut PgConnection, events: &[(LoggedEvent, i64)]) -> Result<(), ProjectionError> {
        let (mut names, mut positions, mut xs, mut ys, mut times, mut videos) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (event, log_position) in events {
            if event.event_type != CLICK_RECORDED {
                continue;
            }
            let ClickEvent::ClickRecorded(c) = decode(event, *log_position)? else { continue };
            names.push(file_name(&c));
            positions.push(*log_position);
            xs.push(c.x);
            ys.push(c.y);
            times.push(c.timestamp);
            videos.push(c.video_id.to_string());
        }
        if names.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO client_file_clicks (file_name, log_position, x, y, media_time, video_id)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::float8[], $4::float8[], $5::float8[], $6::text[])
             ON CONFLICT DO NOTHING",
        )
        .bind(&names)
        .bind(&positions)
        .bind(&xs)
        .bind(&ys)
        .bind(&times)
        .bind(&videos)
        .execute(&mut *tx)
        .await?;
        DIRTY.mark_all(tx, &names).await?;
        Ok(())
    }

    /// Rewrites every file whose rows changed, then forgets it, unless it changed again
    /// in the meantime.
    async fn after_commit(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        for (name, version) in DIRTY.pending(pool).await? {
            if !self.throttle.ready(&name) {
                continue;
            }
            let rows: Vec<(f64, f64, f64, String)> = sqlx::query_as(
                "SELECT x, y, media_time, video_id FROM client_file_clicks
                 WHERE file_name = $1 ORDER BY log_position",
            )
            .bind(&name)
            .fetch_all(pool)
            .await?;
            let entries: Vec<Entry> =
                rows.into_iter().map(|(x, y, timestamp, video_id)| Entry { x, y, timestamp, video_id }).collect();
            let json = serde_json::to_vec(&entries)
                .map_err(|e| ProjectionError::Internal(format!("serialising {name}: {e}")))?;
            write_file(self.dir.clone(), name.clone(), json).await?;
            self.throttle.wrote(&name);
            DIRTY.written(pool, &name, version).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_the_original_shape() {
        let entries = [Entry { x: 431.0625, y: 255.0, timestamp: 2.983575, video_id: "VESeA6leQuk".into() }];
        assert_eq!(
            serde_json::to_string(&entries).expect("json"),
            r#"[{"x":431.0625,"y":255,"timestamp":2.983575,"videoId":"VESeA6leQuk"}]"#
        );
    }
}
