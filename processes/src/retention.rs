//! Anonymous viewers' personal data is kept for a retention period, then erased.
//!
//! An anonymous click's address and cookie are sealed under its day's key
//! (`anonymous-<YYYY-MM-DD>`, see `framecart_domain::personal`). Once a day is older than
//! `FRAMECART_ANONYMOUS_RETENTION_DAYS`, this job erases it: it records
//! `PersonalDataErased` (reason `retention`) on the day's data subject, which destroys
//! the key in the same transaction, and the views forget the day's addresses and
//! cookies when they read it.
//!
//! Every process with the `processes` role runs it, once at start and then every
//! [`EVERY`]. Two that race erase a day once: the second is refused as erased already.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use framecart_commands::execute::execute;
use framecart_commands::{CommandError, Commands};
use framecart_domain::EventMetadata;
use framecart_domain::data_subject::{DataSubjectCommand, DataSubjectError, ErasureReason};
use framecart_domain::personal::{Subject, SubjectKind};
use tokio_util::sync::CancellationToken;

/// How often the job looks for days past their period.
pub const EVERY: Duration = Duration::from_secs(3600);

const COMPONENT: &str = "retention";

/// Erases every anonymous day that still has a key and is more than `days` days before
/// `today`. Returns the subjects it erased (the job's record is their events).
pub async fn erase_expired(commands: &Commands, today: NaiveDate, days: u32) -> anyhow::Result<Vec<Subject>> {
    let live: Vec<String> = sqlx::query_scalar(
        "SELECT subject FROM data_keys WHERE wrapped IS NOT NULL AND subject LIKE 'anonymous-%' ORDER BY subject",
    )
    .fetch_all(&commands.pool)
    .await?;
    let oldest_kept = today - chrono::Days::new(u64::from(days));
    let mut erased = Vec::new();
    for subject in live {
        let Ok(subject) = Subject::parse(&subject) else { continue };
        let SubjectKind::Anonymous(day) = subject.kind() else { continue };
        if day >= oldest_kept {
            continue;
        }
        let metadata =
            EventMetadata::caused_by_event(&uuid::Uuid::now_v7().to_string(), &subject.to_string(), COMPONENT);
        let command = DataSubjectCommand::Erase {
            subject: subject.clone(),
            reason: ErasureReason::Retention,
            by: format!("system:{COMPONENT}"),
            at: Utc::now(),
        };
        match execute(&commands.data_subjects, subject.as_str(), command, metadata).await {
            Ok(_) => {
                tracing::info!(%subject, days, "anonymous personal data past its retention period erased");
                erased.push(subject);
            }
            Err(CommandError::Refused(DataSubjectError::AlreadyErased) | CommandError::Conflict(_)) => {}
            Err(e) => return Err(anyhow::anyhow!("erasing {subject}: {e}")),
        }
    }
    Ok(erased)
}

/// Runs [`erase_expired`] now and every [`EVERY`] until `shutdown`.
pub async fn run(commands: Arc<Commands>, days: u32, shutdown: CancellationToken) {
    loop {
        if let Err(e) = erase_expired(&commands, Utc::now().date_naive(), days).await {
            tracing::warn!(error = %e, "the retention job failed; it tries again later");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
