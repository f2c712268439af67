//! The data subject aggregate: a person (or a day of anonymous viewers) whose personal
//! data is sealed under one key, and its erasure.
//!
//! Its id is the [`Subject`] itself. Its only event, `PersonalDataErased`, is the record
//! that the subject's key was destroyed: the store destroys the key in the transaction
//! that appends the event (a trigger on `events`), so the record and the erasure cannot
//! part. Readers of the log take the event as the order to forget the subject: views
//! blank its fields, files of it are deleted.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::personal::Subject;

pub const AGGREGATE_TYPE: &str = "data_subject";
pub const PERSONAL_DATA_ERASED: &str = "PersonalDataErased";

/// Why a subject was erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureReason {
    /// The person asked (or an admin, for them): GDPR Article 17.
    Request,
    /// Its retention period ended.
    Retention,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DataSubjectCommand {
    Erase { subject: Subject, reason: ErasureReason, by: String, at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DataSubjectEvent {
    PersonalDataErased(PersonalDataErased),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonalDataErased {
    pub subject: Subject,
    pub reason: ErasureReason,
    /// Who did it: `user:<id>` or `system:<component>`.
    pub by: String,
    pub at: DateTime<Utc>,
}

/// No stored shape has changed yet: see [`crate::upcast`] for how one would.
impl crate::upcast::Upcast for DataSubjectEvent {}

impl DomainEvent for DataSubjectEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PersonalDataErased(_) => PERSONAL_DATA_ERASED.to_owned(),
        }
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataSubjectError {
    #[error("this subject's personal data is erased already")]
    AlreadyErased,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSubject {
    erased: Option<PersonalDataErased>,
}

impl DataSubject {
    pub fn erased(&self) -> Option<&PersonalDataErased> {
        self.erased.as_ref()
    }

    /// Erasure happens once: the key is gone after it.
    pub fn decide(&self, command: DataSubjectCommand) -> Result<Vec<DataSubjectEvent>, DataSubjectError> {
        match command {
            DataSubjectCommand::Erase { subject, reason, by, at } => {
                if self.erased.is_some() {
                    return Err(DataSubjectError::AlreadyErased);
                }
                Ok(vec![DataSubjectEvent::PersonalDataErased(PersonalDataErased { subject, reason, by, at })])
            }
        }
    }
}

impl crate::snapshot::Snapshot for DataSubject {
    const STATE_VERSION: u32 = 1;
}

impl Aggregate for DataSubject {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = DataSubjectCommand;
    type Event = DataSubjectEvent;
    type Error = DataSubjectError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            DataSubjectEvent::PersonalDataErased(e) => self.erased = Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use cqrs_es::test::TestFramework;

    use super::*;

    fn erase() -> DataSubjectCommand {
        let day = NaiveDate::from_ymd_opt(2026, 9, 1).expect("a day");
        DataSubjectCommand::Erase {
            subject: Subject::anonymous(day),
            reason: ErasureReason::Retention,
            by: "system:retention".into(),
            at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    fn erased() -> DataSubjectEvent {
        let DataSubjectCommand::Erase { subject, reason, by, at } = erase();
        DataSubjectEvent::PersonalDataErased(PersonalDataErased { subject, reason, by, at })
    }

    #[test]
    fn a_subject_is_erased_once() {
        TestFramework::<DataSubject>::with(())
            .given_no_previous_events()
            .when(erase())
            .then_expect_events(vec![erased()]);
        TestFramework::<DataSubject>::with(())
            .given(vec![erased()])
            .when(erase())
            .then_expect_error(DataSubjectError::AlreadyErased);
    }
}
