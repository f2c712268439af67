//! The click aggregate: one click on one video, identified by its click id.
//!
//! Recording is idempotent on the click id: the same click sent again (a client retry)
//! changes nothing and is answered as the first time; a different click under a used id
//! is refused.

mod command;
mod error;
mod event;

pub use command::{ClickCommand, ClickSizes, RecordClick, RecordMatch};
pub use error::ClickError;
pub use event::{
    CLICK_MATCHED, CLICK_RECORDED, CLICK_UNMATCHED, ClickEvent, ClickMatched, ClickRecorded, ClickUnmatched,
};

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use uuid::Uuid;

use crate::geometry::element_to_frame;
use crate::matching::Outcome;
use crate::personal::Personal;
use crate::text;

/// Aggregate type name: the `events.aggregate_type` column and the subject token.
pub const AGGREGATE_TYPE: &str = "click";

/// Largest media time accepted, in seconds (about 115 days: longer than any live stream
/// YouTube keeps seekable).
pub const MAX_MEDIA_TIME: f64 = 1e7;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Click {
    recorded: Option<ClickRecorded>,
    /// The last verdict, to record only changes.
    outcome: Option<(Uuid, Outcome)>,
}

impl Click {
    pub fn recorded(&self) -> Option<&ClickRecorded> {
        self.recorded.as_ref()
    }

    /// Decides what a command means for this click: the events to append, or a refusal.
    pub fn decide(&self, command: ClickCommand) -> Result<Vec<ClickEvent>, ClickError> {
        match command {
            ClickCommand::RecordClick(cmd) => {
                let recorded = record(cmd)?;
                match &self.recorded {
                    None => Ok(vec![ClickEvent::ClickRecorded(recorded)]),
                    Some(first) if same_client_click(first, &recorded) => Ok(vec![]),
                    Some(_) => Err(ClickError::ClickIdReused),
                }
            }
            ClickCommand::RecordMatch(cmd) => {
                let click = self.recorded.as_ref().ok_or(ClickError::NotRecorded)?;
                if self.outcome.as_ref().is_some_and(|(run, o)| *run == cmd.run_id && *o == cmd.outcome) {
                    return Ok(vec![]); // the same verdict again: nothing happened
                }
                let (click_id, video_id, run_id, evaluated_at) =
                    (click.click_id, click.video_id.clone(), cmd.run_id, cmd.evaluated_at);
                Ok(vec![match cmd.outcome {
                    Outcome::Matched { best, candidates, reason } => ClickEvent::ClickMatched(ClickMatched {
                        click_id,
                        video_id,
                        run_id,
                        best,
                        candidates,
                        reason,
                        evaluated_at,
                    }),
                    Outcome::Unmatched { reason, explanation, candidates } => {
                        ClickEvent::ClickUnmatched(ClickUnmatched {
                            click_id,
                            video_id,
                            run_id,
                            reason,
                            explanation,
                            candidates,
                            evaluated_at,
                        })
                    }
                }])
            }
        }
    }
}

fn record(cmd: RecordClick) -> Result<ClickRecorded, ClickError> {
    if !(cmd.media_time.is_finite() && (0.0..MAX_MEDIA_TIME).contains(&cmd.media_time)) {
        return Err(ClickError::InvalidMediaTime { max: MAX_MEDIA_TIME });
    }
    if !(cmd.x.is_finite() && cmd.y.is_finite() && cmd.x >= 0.0 && cmd.y >= 0.0) {
        return Err(ClickError::InvalidPosition);
    }
    text::line("videoId", &cmd.video_id_reported, text::MAX_LINE)?;
    let frame = match cmd.sizes {
        Some(sizes) => {
            let (w, h) = (sizes.player.width(), sizes.player.height());
            if cmd.x > w || cmd.y > h {
                return Err(ClickError::OutsidePlayer { x: cmd.x, y: cmd.y, width: w, height: h });
            }
            let hit = element_to_frame(cmd.x, cmd.y, sizes.player, sizes.video);
            // Sizes are bounded, so this holds; a derived number is still checked, never stored blind.
            if !hit.is_finite() {
                return Err(ClickError::InvalidPosition);
            }
            Some(hit)
        }
        None => None,
    };
    Ok(ClickRecorded {
        click_id: cmd.click_id,
        click_id_from_client: cmd.click_id_from_client,
        video_id: cmd.video_id,
        video_id_reported: cmd.video_id_reported,
        user_id: cmd.user_id,
        x: cmd.x,
        y: cmd.y,
        timestamp: cmd.media_time,
        player: cmd.sizes.map(|s| s.player),
        video: cmd.sizes.map(|s| s.video),
        on_black_band: frame.is_some_and(|f| !f.on_frame),
        frame,
        during_ad: cmd.during_ad,
        client_ip: Personal::Sealed(cmd.client_ip),
        viewer_cookie: cmd.viewer_cookie.map(Personal::Sealed),
        received_at: cmd.received_at,
    })
}

/// A retry is the same click when everything the client said is the same; what the
/// server observed (address, cookie, time of receipt) may differ between attempts.
fn same_client_click(a: &ClickRecorded, b: &ClickRecorded) -> bool {
    a.video_id_reported == b.video_id_reported
        && a.user_id == b.user_id
        && a.x == b.x
        && a.y == b.y
        && a.timestamp == b.timestamp
        && a.player == b.player
        && a.video == b.video
        && a.during_ad == b.during_ad
}

/// A viewer cookie as it may be recorded: one line of at most 256 characters. Checked
/// before it is sealed, since the aggregate only sees it sealed.
pub fn viewer_cookie(raw: &str) -> Result<&str, ClickError> {
    text::line("viewer cookie", raw, 256)?;
    Ok(raw)
}

impl crate::snapshot::Snapshot for Click {
    /// 2: the recorded click's address and cookie are sealed.
    const STATE_VERSION: u32 = 2;
}

impl Aggregate for Click {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = ClickCommand;
    type Event = ClickEvent;
    type Error = ClickError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ClickEvent::ClickRecorded(e) => self.recorded = Some(e),
            ClickEvent::ClickMatched(e) => {
                let outcome = Outcome::Matched { best: e.best, candidates: e.candidates, reason: e.reason };
                self.outcome = Some((e.run_id, outcome));
            }
            ClickEvent::ClickUnmatched(e) => {
                let outcome =
                    Outcome::Unmatched { reason: e.reason, explanation: e.explanation, candidates: e.candidates };
                self.outcome = Some((e.run_id, outcome));
            }
        }
    }
}

#[cfg(test)]
mod tests;
