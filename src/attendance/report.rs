//! The attendance of one session occurrence, read back from the evidence log (issue 9, item 7):
//! what `classproof attendance` prints and `--json` returns ([`AttendanceReport`]).
//!
//! Built from the log's `check_in` and `check_out` records of the occurrence and the roster as
//! it is now (who the class's trainees are, names, masked ID numbers, R15). A trainee without a
//! `check_in` is `absent` (the `absent` records, written at the end, say the same). Teachers
//! are listed when they checked in; they are never absent. `opening_head_count` is R12's figure:
//! the trainees present at the class's first occurrence that has check-ins in the log.

use std::collections::{BTreeMap, BTreeSet};

use chrono_tz::Tz;
use rusqlite::Connection;
use serde::Serialize;
use thiserror::Error;

use super::Role;
use super::roster::{self, RosterError};
use crate::clock::rfc3339_us;
use crate::evidence::log::{self, LogError};
use crate::evidence::record::{CheckIn, FaceVote, Kind, LeftEarly, Presence, Record, SpotCheck};

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("{0}")]
    Roster(#[from] RosterError),
    #[error("{0}")]
    Log(#[from] LogError),
    #[error("{0}")]
    Record(#[from] crate::evidence::record::RecordError),
}

/// `classproof attendance --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttendanceReport {
    /// The occurrence, e.g. `s1` or `demo@2026-11-22`.
    pub session: String,
    /// Local date of the occurrence's start (YYYY-MM-DD).
    pub date: String,
    pub summary: AttendanceSummary,
    pub persons: Vec<PersonAttendance>,
    /// Issue 11: per class hour, what the classroom cameras saw (from its `presence` record).
    pub class_hours: Vec<HourLine>,
}

/// Issue 11: one class hour's `presence` in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourLine {
    pub class_hour: u32,
    pub analysed: bool,
    /// The most faces in one frame.
    pub head_count: u32,
    /// `null`: no classroom camera analysed (judged on recording alone).
    pub all_visible: Option<bool>,
    pub not_visible: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttendanceSummary {
    /// Trainees of the session's class.
    pub expected: u32,
    /// Trainees checked in on time.
    pub present: u32,
    /// Trainees checked in after `late_after`.
    pub late: u32,
    pub absent: u32,
    /// Teachers checked in.
    pub teachers: u32,
    /// R12: trainees present (on time or late) at the class's first occurrence with check-ins.
    pub opening_head_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Present,
    Late,
    Absent,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Present => "present",
            Status::Late => "late",
            Status::Absent => "absent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonAttendance {
    pub person_id: String,
    pub name: String,
    pub role: Role,
    /// Masked (R15).
    pub id_number: Option<String>,
    pub status: Status,
    /// RFC 3339 in the device's zone, or null.
    pub check_in: Option<String>,
    pub check_out: Option<String>,
    /// Of the check-in vote.
    pub similarity: Option<f64>,
    pub liveness: Option<f64>,
    /// Issue 11: spot checks (R8) of the occurrence the person was recognised in / missed.
    pub spot_checks_seen: u32,
    pub spot_checks_missed: u32,
    /// A `left_early` record names them.
    pub left_early: bool,
    /// The last recognition on a classroom camera (any class hour's `presence`), RFC 3339.
    pub last_seen: Option<String>,
}

/// What the report is about (from the config's session).
#[derive(Debug, Clone)]
pub struct ReportOccurrence {
    pub name: String,
    pub class_id: String,
    pub start_us: i64,
}

/// The report of one occurrence from the log and the roster.
pub fn attendance_report(
    conn: &Connection,
    occ: &ReportOccurrence,
    tz: Tz,
) -> Result<AttendanceReport, ReportError> {
    let mut check_ins = Vec::new();
    for raw in log::read_raw_kind(conn, Kind::CheckIn)? {
        if let Record::CheckIn(c) = raw.record()? {
            check_ins.push(c);
        }
    }
    let mut check_outs = Vec::new();
    for raw in log::read_raw_kind(conn, Kind::CheckOut)? {
        if let Record::CheckOut(v) = raw.record()? {
            check_outs.push(v);
        }
    }
    let trainees = roster::trainees_of(conn, &occ.class_id)?;
    let mut persons = BTreeMap::new();
    for c in check_ins.iter().filter(|c| c.vote.session == occ.name) {
        if let Some(p) = &c.vote.person_id
            && !persons.contains_key(p)
            && let Some(person) = roster::get_person(conn, p)?
        {
            persons.insert(p.clone(), person);
        }
    }
    for p in &trainees {
        if !persons.contains_key(p)
            && let Some(person) = roster::get_person(conn, p)?
        {
            persons.insert(p.clone(), person);
        }
    }
    let mut report = build(occ, tz, &trainees, &persons, &check_ins, &check_outs);
    // Issue 11: presence, spot checks and leaving early.
    let mut presences = Vec::new();
    let mut spots = Vec::new();
    let mut left = Vec::new();
    for kind in [Kind::Presence, Kind::SpotCheck, Kind::LeftEarly] {
        for raw in log::read_raw_kind(conn, kind)? {
            match raw.record()? {
                Record::Presence(p) if p.session == occ.name => presences.push(p),
                Record::SpotCheck(s) if s.session == occ.name => spots.push(s),
                Record::LeftEarly(l) if l.session == occ.name => left.push(l),
                _ => {}
            }
        }
    }
    add_presence(&mut report, &presences, &spots, &left, tz);
    Ok(report)
}

/// Issue 11: adds the class hours' presence, spot checks and `left_early` to a report (pure).
pub fn add_presence(
    report: &mut AttendanceReport,
    presences: &[Presence],
    spots: &[SpotCheck],
    left: &[LeftEarly],
    tz: Tz,
) {
    let mut hours: BTreeMap<u32, &Presence> = BTreeMap::new();
    for p in presences {
        hours.entry(p.class_hour).or_insert(p);
    }
    report.class_hours = hours
        .values()
        .map(|p| HourLine {
            class_hour: p.class_hour,
            analysed: p.analysed,
            head_count: p.head_count,
            all_visible: p.all_visible,
            not_visible: p.not_visible.clone(),
        })
        .collect();
    for line in &mut report.persons {
        let id = line.person_id.as_str();
        line.spot_checks_seen = spots.iter().filter(|s| s.seen.iter().any(|p| p == id)).count() as u32;
        line.spot_checks_missed = spots.iter().filter(|s| s.missed.iter().any(|p| p == id)).count() as u32;
        line.left_early = left.iter().any(|l| l.person_id == id);
        line.last_seen = hours
            .values()
            .flat_map(|p| p.trainees.iter())
            .filter(|t| t.person_id == id)
            .filter_map(|t| t.last_seen_us)
            .max()
            .map(|t| rfc3339_us(t, tz));
    }
}

/// The report from its inputs (pure).
pub fn build(
    occ: &ReportOccurrence,
    tz: Tz,
    trainees: &[String],
    persons: &BTreeMap<String, super::Person>,
    check_ins: &[CheckIn],
    check_outs: &[FaceVote],
) -> AttendanceReport {
    let ours = |v: &FaceVote| v.session == occ.name;
    // The first check-in of each person of this occurrence (the log has one; be safe).
    let mut first_in: BTreeMap<&str, &CheckIn> = BTreeMap::new();
    for c in check_ins.iter().filter(|c| ours(&c.vote)) {
        if let Some(p) = &c.vote.person_id {
            first_in.entry(p.as_str()).or_insert(c);
        }
    }
    let mut first_out: BTreeMap<&str, &FaceVote> = BTreeMap::new();
    for v in check_outs.iter().filter(|v| ours(v)) {
        if let Some(p) = &v.person_id {
            first_out.entry(p.as_str()).or_insert(v);
        }
    }
    let trainee_set: BTreeSet<&str> = trainees.iter().map(String::as_str).collect();
    let mut lines = Vec::new();
    let mut summary = AttendanceSummary {
        expected: trainee_set.len() as u32,
        present: 0,
        late: 0,
        absent: 0,
        teachers: 0,
        opening_head_count: 0,
    };
    for (id, person) in persons {
        let is_trainee = trainee_set.contains(id.as_str());
        let c = first_in.get(id.as_str());
        if !is_trainee && c.is_none() {
            continue;
        }
        let status = match c {
            Some(c) if c.late => Status::Late,
            Some(_) => Status::Present,
            None => Status::Absent,
        };
        if is_trainee {
            match status {
                Status::Present => summary.present += 1,
                Status::Late => summary.late += 1,
                Status::Absent => summary.absent += 1,
            }
        } else if person.role == Role::Teacher {
            summary.teachers += 1;
        }
        lines.push(PersonAttendance {
            person_id: id.clone(),
            name: person.name.clone(),
            role: person.role,
            id_number: person.id_number_masked(),
            status,
            check_in: c.map(|c| rfc3339_us(c.vote.time_us, tz)),
            check_out: first_out.get(id.as_str()).map(|v| rfc3339_us(v.time_us, tz)),
            similarity: c.and_then(|c| c.vote.similarity),
            liveness: c.map(|c| c.vote.liveness),
            spot_checks_seen: 0,
            spot_checks_missed: 0,
            left_early: false,
            last_seen: None,
        });
    }
    // R12: the class's first occurrence with check-ins (by the earliest check-in's time).
    let first_occurrence = check_ins
        .iter()
        .filter(|c| c.vote.class_id == occ.class_id)
        .min_by_key(|c| c.vote.time_us)
        .map(|c| c.vote.session.clone());
    if let Some(first) = first_occurrence {
        let opening: BTreeSet<&str> = check_ins
            .iter()
            .filter(|c| c.vote.session == first && c.vote.role == Some(Role::Trainee))
            .filter_map(|c| c.vote.person_id.as_deref())
            .collect();
        summary.opening_head_count = opening.len() as u32;
    }
    AttendanceReport {
        session: occ.name.clone(),
        date: crate::clock::from_us(occ.start_us)
            .with_timezone(&tz)
            .format("%Y-%m-%d")
            .to_string(),
        summary,
        persons: lines,
        class_hours: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attendance::Person;

    fn vote(session: &str, person: &str, role: Role, t: i64) -> FaceVote {
        FaceVote {
            session: session.into(),
            session_id: "s".into(),
            date: None,
            class_id: "c1".into(),
            class_hour: Some(1),
            camera: "door".into(),
            track: 1,
            time_us: t,
            person_id: Some(person.into()),
            role: Some(role),
            similarity: Some(0.8),
            margin: None,
            liveness: 0.9,
            frames_voted: 5,
            frames_agreeing: 5,
            snapshot: None,
            snapshot_sha256: None,
        }
    }

    fn person(id: &str, role: Role) -> (String, Person) {
        (
            id.into(),
            Person {
                person_id: id.into(),
                name: format!("N{id}"),
                role,
                id_number: Some("410105199001011234".into()),
            },
        )
    }

    #[test]
    fn statuses_summary_masking_and_the_opening_head_count() {
        let occ = ReportOccurrence {
            name: "s@2026-12-02".into(),
            class_id: "c1".into(),
            start_us: 1_796_176_800_000_000,
        };
        let trainees = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let persons: BTreeMap<String, Person> = [
            person("a", Role::Trainee),
            person("b", Role::Trainee),
            person("c", Role::Trainee),
            person("t", Role::Teacher),
        ]
        .into_iter()
        .collect();
        let ci = |s: &str, p: &str, role, t, late| CheckIn {
            vote: vote(s, p, role, t),
            late,
        };
        let check_ins = vec![
            // The first occurrence of c1: a and b.
            ci("s@2026-12-01", "a", Role::Trainee, 10, false),
            ci("s@2026-12-01", "b", Role::Trainee, 11, false),
            ci("s@2026-12-02", "a", Role::Trainee, 100, false),
            ci("s@2026-12-02", "b", Role::Trainee, 200, true),
            ci("s@2026-12-02", "t", Role::Teacher, 150, false),
        ];
        let outs = vec![vote("s@2026-12-02", "a", Role::Trainee, 900)];
        let r = build(
            &occ,
            chrono_tz::Asia::Shanghai,
            &trainees,
            &persons,
            &check_ins,
            &outs,
        );
        assert_eq!(
            r.summary,
            AttendanceSummary {
                expected: 3,
                present: 1,
                late: 1,
                absent: 1,
                teachers: 1,
                opening_head_count: 2,
            }
        );
        let status: Vec<(&str, &str)> = r
            .persons
            .iter()
            .map(|p| (p.person_id.as_str(), p.status.as_str()))
            .collect();
        assert_eq!(
            status,
            [("a", "present"), ("b", "late"), ("c", "absent"), ("t", "present")]
        );
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["date"], "2026-12-02");
        assert_eq!(j["persons"][0]["id_number"], "410105********1234");
        assert!(j["persons"][0]["check_out"].is_string());
        assert!(j["persons"][2]["check_in"].is_null());
        assert!(!j.to_string().contains("199001011234"), "R15: masked");
    }

    // --- issue 11 ---
    #[test]
    fn presence_spot_checks_and_leaving_early_in_the_report() {
        use crate::evidence::record::PresenceSeen;
        let occ = ReportOccurrence {
            name: "s".into(),
            class_id: "c1".into(),
            start_us: 0,
        };
        let trainees = vec!["a".to_string(), "b".to_string()];
        let persons: BTreeMap<String, Person> = [person("a", Role::Trainee), person("b", Role::Trainee)]
            .into_iter()
            .collect();
        let check_ins = vec![
            CheckIn {
                vote: vote("s", "a", Role::Trainee, 10),
                late: false,
            },
            CheckIn {
                vote: vote("s", "b", Role::Trainee, 11),
                late: false,
            },
        ];
        let tz = chrono_tz::Asia::Shanghai;
        let mut r = build(&occ, tz, &trainees, &persons, &check_ins, &[]);
        let seen = |p: &str, last: Option<i64>| PresenceSeen {
            person_id: p.into(),
            seen: last.is_some(),
            first_seen_us: last,
            last_seen_us: last,
        };
        let hour = |h: u32, all: bool, a: Option<i64>, b: Option<i64>| Presence {
            session: "s".into(),
            session_id: "s".into(),
            date: None,
            class_id: "c1".into(),
            class_hour: h,
            start_us: 0,
            end_us: 1,
            cameras: vec!["room".into()],
            analysed: true,
            head_count: 2 + h,
            all_visible: Some(all),
            not_visible: if all { vec![] } else { vec!["b".into()] },
            trainees: vec![seen("a", a), seen("b", b)],
        };
        let presences = vec![
            hour(1, true, Some(1_000_000), Some(2_000_000)),
            hour(2, false, Some(9_000_000), None),
        ];
        let spot = |seen: &[&str], missed: &[&str]| SpotCheck {
            session: "s".into(),
            session_id: "s".into(),
            date: None,
            class_id: "c1".into(),
            class_hour: 1,
            camera: "room".into(),
            from_us: 0,
            to_us: 1,
            seen: seen.iter().map(|x| x.to_string()).collect(),
            missed: missed.iter().map(|x| x.to_string()).collect(),
            snapshot: None,
            snapshot_sha256: None,
        };
        let spots = vec![spot(&["a", "b"], &[]), spot(&["a"], &["b"])];
        let left = vec![LeftEarly {
            session: "s".into(),
            session_id: "s".into(),
            date: None,
            class_id: "c1".into(),
            person_id: "b".into(),
            last_seen_us: 2_000_000,
            end_us: 10_000_000,
        }];
        add_presence(&mut r, &presences, &spots, &left, tz);
        let (a, b) = (&r.persons[0], &r.persons[1]);
        assert_eq!(
            (a.spot_checks_seen, a.spot_checks_missed, a.left_early),
            (2, 0, false)
        );
        assert_eq!(
            (b.spot_checks_seen, b.spot_checks_missed, b.left_early),
            (1, 1, true)
        );
        assert_eq!(b.last_seen.as_deref(), Some(rfc3339_us(2_000_000, tz).as_str()));
        assert_eq!(a.last_seen.as_deref(), Some(rfc3339_us(9_000_000, tz).as_str()));
        let hours: Vec<(u32, u32, Option<bool>)> = r
            .class_hours
            .iter()
            .map(|h| (h.class_hour, h.head_count, h.all_visible))
            .collect();
        assert_eq!(hours, [(1, 3, Some(true)), (2, 4, Some(false))]);
    }
}
