//! `[[session]]` read through the whole config, so key paths are what `check-config` prints.

use std::path::Path;

use chrono::NaiveDate;
use chrono_tz::Asia::Shanghai;

use super::*;
use crate::clock::rfc3339_us;
use crate::config::Config;

const HEAD: &str = r#"
[device]
id = "box"
[[camera]]
id = "front"
url = "rtsp://10.0.0.2/ch1"
[[camera]]
id = "back"
url = "rtsp://10.0.0.3/ch1"
"#;

fn parse(rest: &str) -> Result<Config, Vec<String>> {
    Config::parse(&format!("{HEAD}{rest}"), Path::new("/etc/classproof/c.toml")).map_err(|e| e.problems())
}

fn problems(rest: &str) -> Vec<String> {
    parse(rest).err().unwrap_or_default()
}

fn times(occ: &Occurrence) -> Vec<(String, String)> {
    occ.hours
        .iter()
        .map(|h| (rfc3339_us(h.start_us, Shanghai), rfc3339_us(h.end_us, Shanghai)))
        .collect()
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

const ONE_OFF: &str = r#"
[rules]
profile = "custom"
base = "henan"
min_class_hour = "60s"
practical_min_run = "15s"
continuity_tolerance = "2s"

[[session]]
id = "s1"
class_id = "c1"
kind = "practical"
cameras = ["front"]
start = "2026-11-22T10:00:00+08:00"
class_hours = 3
class_hour = "60s"
break = "0s"
"#;

#[test]
fn the_interface_example_of_issue_3_reads() {
    let c = parse(ONE_OFF).unwrap();
    let s = &c.sessions[0];
    assert_eq!(s.kind, SessionKind::Practical);
    assert_eq!(s.cameras, ["front"]);
    assert!(!s.is_daily());
    assert_eq!(s.rule(&c.rules).id, "R2");
    let occ = s.occurrence(None, Shanghai).unwrap();
    assert_eq!(occ.name, "s1");
    assert_eq!(
        times(&occ),
        [
            (
                "2026-11-22T10:00:00+08:00".into(),
                "2026-11-22T10:01:00+08:00".into()
            ),
            (
                "2026-11-22T10:01:00+08:00".into(),
                "2026-11-22T10:02:00+08:00".into()
            ),
            (
                "2026-11-22T10:02:00+08:00".into(),
                "2026-11-22T10:03:00+08:00".into()
            ),
        ]
    );
    assert_eq!(occ.hours[2].index, 3);
    // A one-off session ignores the date it is asked for.
    assert_eq!(
        s.occurrence(Some(date("2030-01-01")), Shanghai).unwrap().name,
        "s1"
    );
}

#[test]
fn the_demo_session_recurs_daily_in_local_time() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/demo.toml");
    let c = Config::load(&demo).unwrap();
    let s = &c.sessions[0];
    assert!(s.is_daily());
    assert_eq!(s.rule(&c.rules).id, "R2");
    let occ = s.occurrence(Some(date("2026-11-22")), Shanghai).unwrap();
    assert_eq!(occ.name, "demo@2026-11-22");
    assert_eq!(occ.hours.len(), 24);
    assert_eq!(
        times(&occ)[0],
        (
            "2026-11-22T00:00:00+08:00".into(),
            "2026-11-22T01:00:00+08:00".into()
        )
    );
    assert_eq!(times(&occ)[23].1, "2026-11-23T00:00:00+08:00");
    // Without a date, a daily session has no occurrence to name.
    assert!(s.occurrence(None, Shanghai).is_none());
    assert!(
        s.summary().contains("daily from 00:00, 24 class hour(s) of 1h"),
        "{}",
        s.summary()
    );
}

#[test]
fn explicit_hours_once_and_daily_with_midnight() {
    let c = parse(
        r#"
[[session]]
id = "t"
class_id = "c1"
kind = "theory"
cameras = ["front", "back"]
hours = [
  { start = "2026-11-22T08:30:00+08:00", end = "2026-11-22T09:15:00+08:00" },
  { start = "2026-11-22T09:25:00+08:00", end = "2026-11-22T10:10:00+08:00" },
]

[[session]]
id = "night"
class_id = "c2"
kind = "makeup"
cameras = ["back"]
hours = [{ start = "22:30", end = "23:15" }, { start = "23:30", end = "00:15" }, { start = "00:20", end = "01:05" }]
"#,
    )
    .unwrap();
    let t = c.sessions[0].occurrence(None, Shanghai).unwrap();
    assert_eq!(times(&t)[1].0, "2026-11-22T09:25:00+08:00");
    assert_eq!(c.sessions[0].rule(&c.rules).id, "R1");
    let n = c.sessions[1]
        .occurrence(Some(date("2026-11-22")), Shanghai)
        .unwrap();
    assert_eq!(n.name, "night@2026-11-22");
    assert_eq!(c.sessions[1].rule(&c.rules).id, "R13");
    assert_eq!(
        times(&n),
        [
            (
                "2026-11-22T22:30:00+08:00".into(),
                "2026-11-22T23:15:00+08:00".into()
            ),
            (
                "2026-11-22T23:30:00+08:00".into(),
                "2026-11-23T00:15:00+08:00".into()
            ),
            (
                "2026-11-23T00:20:00+08:00".into(),
                "2026-11-23T01:05:00+08:00".into()
            ),
        ]
    );
    // At 00:30 on the 23rd, the occurrence of the 22nd is the one running.
    let at = n.hours[2].start_us + 600_000_000;
    let running = c.sessions[1].occurrences_between(at, at + 1, Shanghai);
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].name, "night@2026-11-22");
    assert!(
        c.sessions[1]
            .occurrence_on(date("2026-11-23"), Shanghai)
            .is_some()
    );
    assert!(
        c.sessions[0]
            .occurrence_on(date("2026-11-22"), Shanghai)
            .is_some()
    );
    assert!(
        c.sessions[0]
            .occurrence_on(date("2026-11-23"), Shanghai)
            .is_none()
    );
}

#[test]
fn r5_a_class_hour_too_short_names_the_session_and_the_hour() {
    // henan: 40 min (R5).
    let ps = problems(
        r#"
[[session]]
id = "s1"
class_id = "c1"
kind = "theory"
cameras = ["front"]
start = "08:00"
class_hours = 4
class_hour = "30m"

[[session]]
id = "s2"
class_id = "c1"
kind = "theory"
cameras = ["front"]
hours = [
  { start = "2026-11-22T08:00:00+08:00", end = "2026-11-22T08:45:00+08:00" },
  { start = "2026-11-22T08:50:00+08:00", end = "2026-11-22T09:35:00+08:00" },
  { start = "2026-11-22T09:40:00+08:00", end = "2026-11-22T10:15:00+08:00" },
]
"#,
    );
    assert_eq!(ps.len(), 2, "{ps:#?}");
    assert!(
        ps[0].starts_with("session[0].class_hour = \"30m\": expected a class hour of at least 40m (R5, profile henan); each class hour of session \"s1\" lasts 30m"),
        "{ps:#?}"
    );
    assert!(ps[1].starts_with("session[1].hours[2] = { start = \"2026-11-22T09:40:00+08:00\", end = \"2026-11-22T10:15:00+08:00\" }: expected a class hour of at least 40m (R5"), "{ps:#?}");
    assert!(
        ps[1].contains("class hour 3 of session \"s2\" lasts 35m"),
        "{ps:#?}"
    );
}

#[test]
fn overlapping_and_disordered_hours_are_errors() {
    let ps = problems(
        r#"
[[session]]
id = "s1"
class_id = "c1"
kind = "practical"
cameras = ["front"]
hours = [
  { start = "08:00", end = "08:45" },
  { start = "08:30", end = "09:15" },
]

[[session]]
id = "s2"
class_id = "c1"
kind = "practical"
cameras = ["front"]
hours = [
  { start = "2026-11-22T10:00:00+08:00", end = "2026-11-22T10:45:00+08:00" },
  { start = "2026-11-22T08:00:00+08:00", end = "2026-11-22T08:45:00+08:00" },
  { start = "2026-11-22T11:00:00+08:00", end = "2026-11-22T10:59:00+08:00" },
]
"#,
    );
    assert_eq!(ps.len(), 3, "{ps:#?}");
    assert!(ps[0].starts_with("session[0].hours[1] = { start = \"08:30\", end = \"09:15\" }: expected a class hour that does not overlap another (it overlaps hours[0], class hour 1)"), "{ps:#?}");
    assert!(ps[1].starts_with("session[1].hours[1] = "), "{ps:#?}");
    assert!(ps[1].contains("class hours in time order"), "{ps:#?}");
    assert!(ps[2].starts_with("session[1].hours[2] = "), "{ps:#?}");
    assert!(ps[2].ends_with("expected an end after its start"), "{ps:#?}");
}

#[test]
fn a_class_hour_shorter_than_the_run_it_needs_is_an_error() {
    let ps = problems(
        r#"
[rules]
profile = "custom"
min_class_hour = "10s"
practical_min_run = "15s"

[[session]]
id = "s1"
class_id = "c1"
kind = "practical"
cameras = ["front"]
start = "2026-11-22T10:00:00+08:00"
class_hours = 2
class_hour = "12s"
"#,
    );
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert!(
        ps[0].contains("at least the 15s unbroken run R2 needs"),
        "{ps:#?}"
    );
}

#[test]
fn bad_keys_are_each_reported() {
    let ps = problems(
        r#"
[[session]]
id = "a@b"
class_id = "c1"
kind = "lecture"
cameras = ["front", "side", "front"]
start = "8:00"
class_hours = 0
class_hour = "45"
room = "101"

[[session]]
id = "s2"
class_id = "c1"
kind = "theory"
cameras = []
start = "08:00"
hours = [{ start = "09:00", end = "2026-11-22T10:00:00+08:00", teacher = "x" }]

[[session]]
id = "s3"
class_id = "c1"
kind = "theory"
cameras = ["front"]
start = "00:00"
class_hours = 30
class_hour = "50m"
"#,
    );
    let want = [
        "session[0].id = \"a@b\": expected 1 to 64 letters",
        "session[0].kind = \"lecture\": expected one of theory | practical | makeup",
        "session[0].cameras[1] = \"side\": expected the id of a [[camera]]: one of front | back",
        "session[0].cameras[2] = \"front\": expected each camera once",
        "session[0].start = \"8:00\": expected RFC 3339",
        "session[0].class_hours = 0: expected an integer from 1 to 100",
        "session[0].class_hour = \"45\": expected a duration",
        "session[0].room = \"101\": expected no such key",
        "session[1].cameras = []: expected at least one camera id",
        "session[1].start: either `hours = [...]` or `start` with `class_hours`, not both",
        "session[1].hours[0]: start and end of the same form",
        "session[1].hours[0].teacher = \"x\": expected no such key",
        "session[2].class_hours = 30: expected a daily session lasting at most 24h",
    ];
    for w in want {
        assert!(ps.iter().any(|p| p.starts_with(w)), "missing {w:?} in {ps:#?}");
    }
    assert_eq!(ps.len(), want.len(), "{ps:#?}");
}

#[test]
fn missing_keys_are_reported() {
    let ps = problems("[[session]]\nid = \"s\"\n");
    for w in [
        "session[0].class_id: missing",
        "session[0].kind: missing",
        "session[0].cameras: missing",
        "session[0].start: missing",
        "session[0].class_hours: missing",
    ] {
        assert!(ps.iter().any(|p| p.starts_with(w)), "missing {w:?} in {ps:#?}");
    }
}

#[test]
fn session_span_for_export() {
    let c = parse(&format!(
        "{ONE_OFF}\n[[session]]\nid = \"d\"\nclass_id = \"c\"\nkind = \"practical\"\ncameras = [\"back\"]\nstart = \"23:30\"\nclass_hours = 2\nclass_hour = \"60s\"\nbreak = \"0s\"\n"
    ))
    .unwrap();
    let (a, b, cams) = session_span(&c, "s1", None).unwrap();
    assert_eq!(crate::clock::rfc3339(a, Shanghai), "2026-11-22T10:00:00+08:00");
    assert_eq!(crate::clock::rfc3339(b, Shanghai), "2026-11-22T10:03:00+08:00");
    assert_eq!(cams, ["front"]);
    let by_date = session_span(&c, "d", Some(date("2026-11-22"))).unwrap();
    let by_name = session_span(&c, "d@2026-11-22", None).unwrap();
    assert_eq!(by_date, by_name);
    assert_eq!(
        crate::clock::rfc3339(by_name.0, Shanghai),
        "2026-11-22T23:30:00+08:00"
    );
    assert!(session_span(&c, "d", None).is_none());
    assert!(session_span(&c, "nope", None).is_none());
    assert!(session_span(&c, "d@tuesday", None).is_none());
}

#[test]
fn occurrence_names() {
    assert_eq!(parse_occurrence_name("s1"), Some(("s1", None)));
    assert_eq!(
        parse_occurrence_name("demo@2026-11-22"),
        Some(("demo", Some(date("2026-11-22"))))
    );
    assert_eq!(parse_occurrence_name("demo@22.11."), None);
}

fn weekday_session(days: &str) -> String {
    format!(
        r#"
[[session]]
id = "w"
class_id = "c1"
kind = "theory"
cameras = ["front"]
start = "23:30"
class_hours = 2
{days}
"#
    )
}

#[test]
fn weekdays_parse_as_a_table() {
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let ok: &[(&[&str], &[&str])] = &[
        (
            &["mon", "tue", "wed", "thu", "fri"],
            &["mon", "tue", "wed", "thu", "fri"],
        ),
        (&["sun"], &["sun"]),
        // Written in any order, kept Monday first.
        (&["sat", "mon"], &["mon", "sat"]),
        (&Weekdays::NAMES, &Weekdays::NAMES),
    ];
    for (list, want) in ok {
        let d = Weekdays::parse(&names(list)).unwrap_or_else(|e| panic!("{list:?}: {e:?}"));
        assert_eq!(d.names(), *want, "{list:?}");
    }
    assert!(Weekdays::parse(&names(&Weekdays::NAMES)).unwrap().is_every_day());
    assert!(Weekdays::default().is_every_day());
    let bad: &[(&[&str], Option<usize>, &str)] = &[
        (&[], None, "at least one day"),
        (
            &["mon", "Tue"],
            Some(1),
            "a day of the week: mon | tue | wed | thu | fri | sat | sun",
        ),
        (&["monday"], Some(0), "a day of the week"),
        (&["fri", "mon", "fri"], Some(2), "each day once"),
    ];
    for (list, item, expected) in bad {
        let e = Weekdays::parse(&names(list)).expect_err(&format!("{list:?}"));
        assert_eq!(e.item, *item, "{list:?}");
        assert!(e.expected.contains(expected), "{list:?}: {e:?}");
    }
}

#[test]
fn a_weekday_session_has_occurrences_only_on_its_days() {
    let c = parse(&weekday_session(r#"days = ["mon", "tue", "wed", "thu", "fri"]"#)).unwrap();
    let s = &c.sessions[0];
    assert_eq!(s.days.names(), ["mon", "tue", "wed", "thu", "fri"]);
    assert!(
        s.summary().contains("on mon,tue,wed,thu,fri from 23:30"),
        "{}",
        s.summary()
    );
    // 2026-11-20 is a Friday, 11-21 a Saturday, 11-22 a Sunday, 11-23 a Monday.
    let table = [
        ("2026-11-20", true),
        ("2026-11-21", false),
        ("2026-11-22", false),
        ("2026-11-23", true),
        ("2026-11-24", true),
    ];
    for (day, happens) in table {
        assert_eq!(s.happens_on(date(day)), happens, "{day}");
        assert_eq!(
            s.occurrence(Some(date(day)), Shanghai).is_some(),
            happens,
            "{day}"
        );
        assert_eq!(s.occurrence_on(date(day), Shanghai).is_some(), happens, "{day}");
        assert_eq!(session_span(&c, "w", Some(date(day))).is_some(), happens, "{day}");
        assert_eq!(
            session_span(&c, &format!("w@{day}"), None).is_some(),
            happens,
            "{day}"
        );
    }
    // Friday 00:00 to Tuesday 00:00: Thursday's (still running after midnight), Friday's and
    // Monday's occurrences; the one of Friday runs into Saturday (it belongs to the day it
    // starts on), and Saturday and Sunday have none.
    let from = date("2026-11-20").and_hms_opt(0, 0, 0).unwrap();
    let from_us = Shanghai.from_local_datetime(&from).unwrap().timestamp_micros();
    let to_us = from_us + 4 * 86_400_000_000;
    let names: Vec<String> = s
        .occurrences_between(from_us, to_us, Shanghai)
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, ["w@2026-11-19", "w@2026-11-20", "w@2026-11-23"]);
    let fri = s.occurrence(Some(date("2026-11-20")), Shanghai).unwrap();
    assert_eq!(times(&fri)[1].1, "2026-11-21T01:10:00+08:00");
    // At Saturday 00:30, Friday's occurrence is the one running.
    let sat = fri.hours[1].start_us + 60_000_000;
    let running = s.occurrences_between(sat, sat + 1, Shanghai);
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].name, "w@2026-11-20");
}

#[test]
fn without_days_a_daily_session_happens_every_day() {
    let c = parse(&weekday_session("")).unwrap();
    let s = &c.sessions[0];
    assert!(s.days.is_every_day());
    for day in ["2026-11-21", "2026-11-22", "2026-11-23"] {
        assert!(s.occurrence(Some(date(day)), Shanghai).is_some(), "{day}");
    }
    assert!(s.summary().contains("daily from 23:30"), "{}", s.summary());
}

#[test]
fn bad_days_name_the_key_and_what_was_expected() {
    let table = [
        (
            r#"days = []"#,
            "session[0].days = []: expected at least one day, e.g. [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]",
        ),
        (
            r#"days = ["mon", "tues"]"#,
            "session[0].days[1] = \"tues\": expected a day of the week: mon | tue | wed | thu | fri | sat | sun",
        ),
        (
            r#"days = ["mon", "tue", "mon"]"#,
            "session[0].days[2] = \"mon\": expected each day once",
        ),
        (
            r#"days = "mon-fri""#,
            "session[0].days = \"mon-fri\": expected a list of days of the week (mon | tue | wed | thu | fri | sat | sun)",
        ),
        (
            r#"days = [1, 2]"#,
            "session[0].days = [1, 2]: expected a list of days of the week",
        ),
    ];
    for (days, want) in table {
        let ps = problems(&weekday_session(days));
        assert_eq!(ps.len(), 1, "{days}: {ps:#?}");
        assert!(ps[0].starts_with(want), "{days}: {ps:#?}");
    }
    // A one-off session happens once: `days` makes no sense there.
    let ps = problems(&ONE_OFF.replace("break = \"0s\"", "break = \"0s\"\ndays = [\"mon\"]"));
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert!(
        ps[0].starts_with("session[0].days = [\"mon\"]: expected `days` only on a daily session"),
        "{ps:#?}"
    );
}
