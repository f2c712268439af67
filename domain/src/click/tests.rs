//! Given/when/then tests of the click rules.

use std::net::{IpAddr, Ipv4Addr};

use chrono::{TimeZone, Utc};
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;
use crate::geometry::Size;
use crate::personal::{DataKey, KEY_LEN, NONCE_LEN, Sealed, Subject};
use crate::{UserId, VideoId};

type ClickTest = TestFramework<Click>;

fn size(w: f64, h: f64) -> Size {
    Size::new(w, h).expect("valid size")
}

/// A viewer's address as a command carries it: sealed under a test key.
fn sealed(ip: IpAddr) -> Sealed<IpAddr> {
    let subject = Subject::anonymous(chrono::NaiveDate::from_ymd_opt(2026, 11, 26).expect("a day"));
    DataKey::from_bytes([7; KEY_LEN]).seal(&subject, &ip, [1; NONCE_LEN])
}

fn record() -> RecordClick {
    RecordClick {
        click_id: Uuid::from_u128(7),
        click_id_from_client: true,
        video_id: VideoId::parse("VESeA6leQuk").expect("id"),
        video_id_reported: "VESeA6leQuk&list=PL1&index=37".into(),
        user_id: Some(UserId::parse("u1").expect("id")),
        x: 400.0,
        y: 300.0,
        media_time: 2.983575,
        sizes: Some(ClickSizes { player: size(800.0, 600.0), video: size(1280.0, 720.0) }),
        during_ad: false,
        client_ip: sealed(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        viewer_cookie: None,
        received_at: Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).single().expect("time"),
    }
}

fn fact(cmd: RecordClick) -> ClickRecorded {
    match recorded(cmd) {
        ClickEvent::ClickRecorded(e) => e,
        other => panic!("expected ClickRecorded, got {other:?}"),
    }
}

fn recorded(cmd: RecordClick) -> ClickEvent {
    let events = Click::default().decide(ClickCommand::RecordClick(cmd)).expect("recorded");
    events.into_iter().next().expect("one event")
}

#[test]
fn a_new_click_is_recorded_with_its_frame_point() {
    let e = fact(record());
    let frame = e.frame.expect("frame point");
    assert_eq!((frame.x, frame.y), (640.0, 360.0));
    assert!(frame.on_frame && !e.on_black_band);
    ClickTest::with(())
        .given_no_previous_events()
        .when(ClickCommand::RecordClick(record()))
        .then_expect_events(vec![ClickEvent::ClickRecorded(e)]);
}

#[test]
fn a_click_on_a_black_band_is_recorded_and_flagged() {
    let cmd = RecordClick { y: 30.0, ..record() };
    let e = fact(cmd.clone());
    assert!(e.on_black_band);
    ClickTest::with(())
        .given_no_previous_events()
        .when(ClickCommand::RecordClick(cmd))
        .then_expect_events(vec![ClickEvent::ClickRecorded(e)]);
}

#[test]
fn a_minimal_click_has_no_frame_point() {
    let cmd = RecordClick { sizes: None, click_id_from_client: false, ..record() };
    let e = fact(cmd);
    assert!(e.frame.is_none() && !e.on_black_band);
}

#[test]
fn a_retried_click_changes_nothing() {
    let first = recorded(record());
    let retry =
        RecordClick { client_ip: sealed(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9))), received_at: Utc::now(), ..record() };
    ClickTest::with(()).given(vec![first]).when(ClickCommand::RecordClick(retry)).then_expect_events(vec![]);
}

#[test]
fn another_click_under_a_used_id_is_refused() {
    let first = recorded(record());
    ClickTest::with(())
        .given(vec![first])
        .when(ClickCommand::RecordClick(RecordClick { x: 401.0, ..record() }))
        .then_expect_error(ClickError::ClickIdReused);
}

#[test]
fn negative_or_non_finite_media_time_is_refused() {
    for t in [-0.5, f64::NAN, f64::INFINITY, 2e7] {
        ClickTest::with(())
            .given_no_previous_events()
            .when(ClickCommand::RecordClick(RecordClick { media_time: t, ..record() }))
            .then_expect_error(ClickError::InvalidMediaTime { max: MAX_MEDIA_TIME });
    }
}

#[test]
fn a_position_outside_the_player_is_refused() {
    ClickTest::with(())
        .given_no_previous_events()
        .when(ClickCommand::RecordClick(RecordClick { x: 801.0, ..record() }))
        .then_expect_error(ClickError::OutsidePlayer { x: 801.0, y: 300.0, width: 800.0, height: 600.0 });
    ClickTest::with(())
        .given_no_previous_events()
        .when(ClickCommand::RecordClick(RecordClick { y: -1.0, ..record() }))
        .then_expect_error(ClickError::InvalidPosition);
}

fn verdict(article: Option<&str>) -> crate::matching::Outcome {
    use crate::geometry::BoundingBox;
    use crate::matching::{ClickPoint, LinkedProduct, ObjectAt, decide};
    let object = ObjectAt {
        track_id: "run:1".into(),
        class_id: 1,
        label: "person".into(),
        bbox: BoundingBox { xmin: 0.4, ymin: 0.4, xmax: 0.6, ymax: 0.6 },
        confidence: 0.9,
        product: article.map(|a| LinkedProduct {
            article: a.into(),
            additional_identifier: "size M".into(),
            link_id: "l1".into(),
        }),
    };
    let point = ClickPoint { u: 0.5, v: 0.5, css_width: 800.0, css_height: 450.0, on_frame: true, during_ad: false };
    decide(&point, &[object], 12.0)
}

fn record_match(article: Option<&str>) -> ClickCommand {
    ClickCommand::RecordMatch(RecordMatch {
        outcome: verdict(article),
        run_id: Uuid::from_u128(1),
        evaluated_at: Utc::now(),
    })
}

fn matched_event(article: Option<&str>) -> ClickEvent {
    Click::default()
        .decide(ClickCommand::RecordClick(record()))
        .map(|mut e| {
            let mut click = Click::default();
            cqrs_es::Aggregate::apply(&mut click, e.remove(0));
            click
        })
        .expect("recorded")
        .decide(record_match(article))
        .expect("verdict")
        .remove(0)
}

#[test]
fn a_verdict_is_recorded_only_when_it_changes() {
    let first = recorded(record());
    let matched = matched_event(Some("SKU-1"));
    assert!(
        matches!(matched, ClickEvent::ClickMatched(ref m) if m.best.product.as_ref().map(|p| p.article.as_str()) == Some("SKU-1"))
    );
    ClickTest::with(())
        .given(vec![first.clone(), matched.clone()])
        .when(record_match(Some("SKU-1")))
        .then_expect_events(vec![]);
    let unlinked = matched_event(None);
    assert!(
        matches!(unlinked, ClickEvent::ClickUnmatched(ref u) if u.reason == crate::matching::UnmatchedReason::NotLinked)
    );
    let result = ClickTest::with(()).given(vec![first, matched]).when(record_match(None)).inspect_result();
    assert!(matches!(result.as_deref(), Ok([ClickEvent::ClickUnmatched(_)])));
}

#[test]
fn a_verdict_needs_a_recorded_click() {
    ClickTest::with(()).given_no_previous_events().when(record_match(None)).then_expect_error(ClickError::NotRecorded);
}
