//! Classroom presence in the running daemon (issue 11): glue between the analysis workers
//! (`daemon::analysis`), the store and the pure rules (`compliance::presence`,
//! `attendance::spot_check`, `media::tamper`).
//!
//! Per open session occurrence a [`Watch`]:
//! - every frame of a classroom camera of the session (`analyze = "classroom"`): every face
//!   identified against the occurrence's roster; the accepted ones are *sightings*, written to
//!   the `sightings` table (one row per occurrence, person, camera and second) and the frame's
//!   face count to `head_counts` (the most per class hour and camera), in one small transaction
//!   per frame; memory follows the commit, and an occurrence opened after a restart reads them
//!   back (nothing seen is lost);
//! - when a class hour starts: its spot-check moments are drawn from the operating system's
//!   generator (`ring::rand::SystemRandom`), so they are not derivable from the config or the
//!   log before they happen; after each window one `spot_check` record with a snapshot of the
//!   room (the last classroom frame);
//! - when a class hour ends: one `presence` record (seen / not seen, first and last seen per
//!   checked-in trainee, head count, whether the qualifying run showed all, R3), then R4 per
//!   class (`class_visibility_warning`, `class_failed`) under a profile with
//!   `max_hours_not_showing_all`;
//! - R10: a head count above the roster's trainees and teachers raises a `head_count` alarm
//!   (once per class hour, cleared when the hour's `presence` is written);
//! - R11: no teacher checked in or seen by `late_after` is a `no_teacher` alarm; too few
//!   teachers for the present trainees a `teacher_ratio` alarm; each cleared when resolved;
//! - at the occurrence's end: `left_early` for every checked-in trainee not seen for more than
//!   `left_early_after` (only when a classroom camera was analysed).
//!
//! Restarts: presence, spot-check, left-early and alarm records already in the log are not
//! written again (the spot-check moments of an hour that was running are drawn again for the
//! rest of it).

use std::collections::{BTreeMap, BTreeSet};

use ring::rand::SecureRandom;
use rusqlite::{Connection, params};

use crate::attendance::checkin::{Expected, Timing};
use crate::attendance::spot_check;
use crate::compliance::presence::{self as rules, HourPresence, TeacherCheck, Visibility};
use crate::compliance::schedule::Occurrence as ScheduleOccurrence;
use crate::config::Config;
use crate::db;
use crate::evidence::log;
use crate::evidence::record::{
    AlarmKind, AlarmState, ClassVisibility, Kind, LeftEarly, Presence, PresenceSeen, Record, SpotCheck,
};
use crate::vision::BgrImage;

type Result<T> = std::result::Result<T, super::analysis::AnalysisError>;

/// One spot check of a class hour.
#[derive(Debug, Clone)]
struct Spot {
    hour: u32,
    from_us: i64,
    to_us: i64,
    done: bool,
}

/// What the classroom cameras saw of one occurrence, and what was recorded about it.
pub struct Watch {
    timing: Timing,
    /// The session's classroom cameras.
    pub cameras: Vec<String>,
    roster_trainees: u32,
    teachers: BTreeSet<String>,
    trainees: BTreeSet<String>,
    /// Person → the seconds (µs of the first sighting in each) they were recognised.
    sightings: BTreeMap<String, Vec<i64>>,
    /// Class hour → the most faces in one frame.
    heads: BTreeMap<u32, u32>,
    analysed_hours: BTreeSet<u32>,
    presence_done: BTreeSet<u32>,
    head_alarmed: BTreeSet<u32>,
    drawn: BTreeSet<u32>,
    spots: Vec<Spot>,
    left_early_done: bool,
    no_teacher: bool,
    ratio: Option<(u32, u32, u32)>,
    /// The last classroom frame (camera, time, image): the spot check's snapshot.
    last_frame: Option<(String, i64, BgrImage)>,
}

impl Watch {
    /// The watch of an occurrence, rebuilt from the sightings table and the log.
    pub fn open(
        conn: &Connection,
        timing: &Timing,
        cameras: Vec<String>,
        expected: &Expected,
    ) -> Result<Watch> {
        let mut w = Watch {
            timing: timing.clone(),
            cameras,
            roster_trainees: expected.trainees.len() as u32,
            teachers: expected.teachers.clone(),
            trainees: expected.trainees.clone(),
            sightings: BTreeMap::new(),
            heads: BTreeMap::new(),
            analysed_hours: BTreeSet::new(),
            presence_done: BTreeSet::new(),
            head_alarmed: BTreeSet::new(),
            drawn: BTreeSet::new(),
            spots: Vec::new(),
            left_early_done: false,
            no_teacher: false,
            ratio: None,
            last_frame: None,
        };
        let s = &timing.session;
        let mut stmt =
            conn.prepare("SELECT person_id, first_us FROM sightings WHERE session = ?1 ORDER BY first_us")?;
        let rows = stmt.query_map(params![s], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for r in rows {
            let (p, t) = r?;
            w.sightings.entry(p).or_default().push(t);
        }
        let mut stmt = conn.prepare(
            "SELECT class_hour, MAX(head_count) FROM head_counts WHERE session = ?1 GROUP BY class_hour",
        )?;
        let rows = stmt.query_map(params![s], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, u32>(1)?)))?;
        for r in rows {
            let (h, n) = r?;
            w.heads.insert(h, n);
            w.analysed_hours.insert(h);
        }
        let from = timing.checkin_opens_at() - 1;
        for kind in [Kind::Presence, Kind::LeftEarly, Kind::Alarm] {
            for st in log::read_filtered(conn, Some(from), Some(kind))? {
                match st.record {
                    Record::Presence(p) if &p.session == s => {
                        w.presence_done.insert(p.class_hour);
                    }
                    Record::LeftEarly(l) if &l.session == s => w.left_early_done = true,
                    Record::Alarm(a) => match a.alarm {
                        AlarmKind::NoTeacher { session, .. } if &session == s => {
                            w.no_teacher = a.state == AlarmState::Raised;
                        }
                        AlarmKind::TeacherRatio {
                            session,
                            teachers,
                            trainees,
                            per_teacher,
                            ..
                        } if &session == s => {
                            w.ratio =
                                (a.state == AlarmState::Raised).then_some((teachers, trainees, per_teacher));
                        }
                        AlarmKind::HeadCount {
                            session,
                            class_hour: Some(h),
                            ..
                        } if &session == s => {
                            w.head_alarmed.insert(h);
                        }
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        Ok(w)
    }

    /// Whether `camera` is one of the session's classroom cameras.
    pub fn watches(&self, camera: &str) -> bool {
        self.cameras.iter().any(|c| c == camera)
    }

    /// One classroom frame at `time_us` with `faces` faces, `persons` of them recognised
    /// (accepted matches on the occurrence's roster). Written in one transaction, then applied.
    /// Returns whether an alarm record was written.
    pub fn frame(
        &mut self,
        conn: &mut Connection,
        camera: &str,
        time_us: i64,
        faces: u32,
        persons: &BTreeSet<String>,
        image: &BgrImage,
    ) -> Result<bool> {
        if !self.timing.observes(time_us) {
            return Ok(false);
        }
        let hour = self.timing.class_hour(time_us);
        let bucket = time_us.div_euclid(1_000_000);
        let s = self.timing.session.clone();
        {
            let tx = db::write_tx(conn)?;
            for p in persons {
                tx.execute(
                    "INSERT INTO sightings (session, person_id, camera, bucket_s, first_us, last_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                     ON CONFLICT (session, person_id, camera, bucket_s) DO UPDATE SET last_us = excluded.last_us",
                    params![s, p, camera, bucket, time_us],
                )?;
            }
            if let Some(h) = hour {
                tx.execute(
                    "INSERT INTO head_counts (session, class_hour, camera, head_count, frames)
                     VALUES (?1, ?2, ?3, ?4, 1)
                     ON CONFLICT (session, class_hour, camera) DO UPDATE SET
                       head_count = MAX(head_count, excluded.head_count), frames = frames + 1",
                    params![s, h, camera, faces],
                )?;
            }
            tx.commit()?;
        }
        // Committed: memory follows.
        for p in persons {
            let v = self.sightings.entry(p.clone()).or_default();
            if v.last().is_none_or(|t| t.div_euclid(1_000_000) != bucket) {
                v.push(time_us);
            }
        }
        self.last_frame = Some((camera.to_string(), time_us, image.clone()));
        let Some(h) = hour else { return Ok(false) };
        self.analysed_hours.insert(h);
        let most = self.heads.entry(h).or_insert(0);
        *most = (*most).max(faces);
        // R10: more faces than the roster has people.
        let teachers = self.teachers.len() as u32;
        if rules::head_count_exceeds(faces, self.roster_trainees, teachers) && !self.head_alarmed.contains(&h)
        {
            let rec = Record::alarm(
                AlarmKind::HeadCount {
                    session: s,
                    class_hour: Some(h),
                    camera: camera.to_string(),
                    head_count: faces,
                    roster_trainees: self.roster_trainees,
                    teachers,
                },
                AlarmState::Raised,
            );
            super::analysis::append(conn, time_us, &rec)?;
            self.head_alarmed.insert(h);
            return Ok(true);
        }
        Ok(false)
    }

    /// Sightings of `who` as (person, µs).
    fn sightings_of(&self, who: &BTreeSet<String>) -> Vec<(String, i64)> {
        self.sightings
            .iter()
            .filter(|(p, _)| who.contains(*p))
            .flat_map(|(p, ts)| ts.iter().map(move |t| (p.clone(), *t)))
            .collect()
    }

    /// The records due at `now`: spot checks, presence per hour, R4, teachers, left early.
    /// `checked_in`: person → check-in time (the occurrence's decided state). Each record is
    /// committed before the watch changes.
    pub fn step(
        &mut self,
        conn: &mut Connection,
        config: &Config,
        now: i64,
        checked_in: &BTreeMap<String, i64>,
    ) -> Result<bool> {
        let mut written = false;
        let a = &config.attendance;
        let t = self.timing.clone();
        let present: BTreeSet<String> = checked_in
            .keys()
            .filter(|p| self.trainees.contains(*p))
            .cloned()
            .collect();
        // Spot checks: drawn when the hour starts.
        let window = a.spot_check_window.as_micros() as i64;
        for (i, &(hs, he)) in t.hours.iter().enumerate() {
            let h = i as u32 + 1;
            if now < hs || now >= he || self.drawn.contains(&h) {
                continue;
            }
            let rng = ring::rand::SystemRandom::new();
            let random = || {
                let mut b = [0u8; 8];
                // The OS generator does not fail on Linux; a failure draws the stratum's start.
                let _ = rng.fill(&mut b);
                u64::from_le_bytes(b)
            };
            for m in spot_check::draw_moments(now.max(hs), he, window, a.spot_checks_per_class_hour, random) {
                self.spots.push(Spot {
                    hour: h,
                    from_us: m,
                    to_us: m + window,
                    done: false,
                });
            }
            self.drawn.insert(h);
        }
        if !self.cameras.is_empty() {
            for i in 0..self.spots.len() {
                let sp = self.spots[i].clone();
                if sp.done || now <= sp.to_us {
                    continue;
                }
                let due: BTreeSet<String> = checked_in
                    .iter()
                    .filter(|(p, at)| self.trainees.contains(*p) && **at <= sp.to_us)
                    .map(|(p, _)| p.clone())
                    .collect();
                let outcome = spot_check::judge(&due, &self.sightings_of(&due), sp.from_us, sp.to_us);
                let (camera, snapshot) = match &self.last_frame {
                    Some((cam, at, img)) => {
                        let snap = super::analysis::write_room_snapshot(
                            &config.device.data_dir,
                            cam,
                            *at,
                            "spot_check",
                            img,
                            config.device.timezone,
                        )?;
                        (cam.clone(), Some(snap))
                    }
                    None => (self.cameras.first().cloned().unwrap_or_default(), None),
                };
                let rec = Record::SpotCheck(SpotCheck {
                    session: t.session.clone(),
                    session_id: t.session_id.clone(),
                    date: t.date.clone(),
                    class_id: t.class_id.clone(),
                    class_hour: sp.hour,
                    camera,
                    from_us: sp.from_us,
                    to_us: sp.to_us,
                    seen: outcome.seen,
                    missed: outcome.missed,
                    snapshot: snapshot.as_ref().map(|s| s.0.clone()),
                    snapshot_sha256: snapshot.map(|s| s.1),
                });
                super::analysis::append(conn, sp.to_us, &rec)?;
                self.spots[i].done = true;
                written = true;
            }
        }
        // Presence per class hour, at its end.
        if !self.cameras.is_empty() {
            for (i, &(hs, he)) in t.hours.iter().enumerate() {
                let h = i as u32 + 1;
                if now < he || self.presence_done.contains(&h) {
                    continue;
                }
                written |= self.write_presence(conn, config, h, hs, he, now, &present)?;
            }
        }
        // R11: teachers.
        if now >= t.start_us && now < t.end_us {
            let mut teachers: BTreeSet<&String> =
                checked_in.keys().filter(|p| self.teachers.contains(*p)).collect();
            for (p, ts) in &self.sightings {
                if self.teachers.contains(p) && !ts.is_empty() {
                    teachers.insert(p);
                }
            }
            let check = rules::teacher_check(
                teachers.len() as u32,
                present.len() as u32,
                &config.rules.profile,
                t.start_us,
                t.late_after_us,
                now,
            );
            let session = t.session.clone();
            let class_id = t.class_id.clone();
            let no_teacher = check == TeacherCheck::NoTeacher;
            if no_teacher != self.no_teacher && check != TeacherCheck::Pending {
                let rec = Record::alarm(
                    AlarmKind::NoTeacher {
                        session: session.clone(),
                        class_id: class_id.clone(),
                    },
                    AlarmState::raised(no_teacher),
                );
                super::analysis::append(conn, now, &rec)?;
                self.no_teacher = no_teacher;
                written = true;
            }
            let ratio = match check {
                TeacherCheck::TooFewTeachers {
                    teachers,
                    trainees,
                    per_teacher,
                } => Some((teachers, trainees, per_teacher)),
                _ => None,
            };
            let change = match (self.ratio, ratio) {
                (None, Some(r)) => Some((r, AlarmState::Raised)),
                (Some(old), None) if check == TeacherCheck::Fine => Some((old, AlarmState::Cleared)),
                _ => None,
            };
            if let Some(((teachers, trainees, per_teacher), state)) = change {
                let rec = Record::alarm(
                    AlarmKind::TeacherRatio {
                        session,
                        class_id,
                        teachers,
                        trainees,
                        per_teacher,
                    },
                    state,
                );
                super::analysis::append(conn, now, &rec)?;
                self.ratio = ratio;
                written = true;
            }
        }
        // The session is over: a teacher alarm still raised ends with it (its raised record
        // stays in the log; the clearing is written when the box sees the end, so that no alarm of a
        // past session stays open on the status page for ever).
        if now >= t.end_us {
            if self.no_teacher {
                let rec = Record::alarm(
                    AlarmKind::NoTeacher {
                        session: t.session.clone(),
                        class_id: t.class_id.clone(),
                    },
                    AlarmState::Cleared,
                );
                super::analysis::append(conn, now, &rec)?;
                self.no_teacher = false;
                written = true;
            }
            if let Some((teachers, trainees, per_teacher)) = self.ratio {
                let rec = Record::alarm(
                    AlarmKind::TeacherRatio {
                        session: t.session.clone(),
                        class_id: t.class_id.clone(),
                        teachers,
                        trainees,
                        per_teacher,
                    },
                    AlarmState::Cleared,
                );
                super::analysis::append(conn, now, &rec)?;
                self.ratio = None;
                written = true;
            }
        }
        // Left early, at the end.
        if now >= t.end_us && !self.left_early_done && !self.analysed_hours.is_empty() {
            let mut last_seen: BTreeMap<String, i64> = BTreeMap::new();
            for (p, at) in checked_in.iter().filter(|(p, _)| self.trainees.contains(*p)) {
                let seen = self
                    .sightings
                    .get(p)
                    .and_then(|v| v.iter().copied().filter(|x| *x <= t.end_us).max());
                last_seen.insert(p.clone(), seen.map_or(*at, |s| s.max(*at)));
            }
            let after = a.left_early_after.as_micros() as i64;
            let left = rules::left_early(&last_seen, t.end_us, after);
            if !left.is_empty() {
                let tx = db::write_tx(conn)?;
                for p in &left {
                    let rec = Record::LeftEarly(LeftEarly {
                        session: t.session.clone(),
                        session_id: t.session_id.clone(),
                        date: t.date.clone(),
                        class_id: t.class_id.clone(),
                        person_id: p.clone(),
                        last_seen_us: last_seen.get(p).copied().unwrap_or(0),
                        end_us: t.end_us,
                    });
                    log::append(&tx, crate::clock::from_us(t.end_us), &rec)?;
                }
                tx.commit()?;
                written = true;
            }
            self.left_early_done = true;
        }
        Ok(written)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_presence(
        &mut self,
        conn: &mut Connection,
        config: &Config,
        h: u32,
        hs: i64,
        he: i64,
        now: i64,
        present: &BTreeSet<String>,
    ) -> Result<bool> {
        let t = &self.timing;
        let analysed = self.analysed_hours.contains(&h);
        let hour_presence = HourPresence {
            analysed,
            present: present.clone(),
            sightings: self
                .sightings_of(present)
                .into_iter()
                .filter(|(_, x)| *x >= hs && *x < he)
                .collect(),
        };
        let vis = match find_occurrence(config, t) {
            Some(occ) => hour_visibility(conn, config, &occ, h, now, &hour_presence)?,
            None => Visibility::NotAnalysed,
        };
        let (all_visible, not_visible) = match &vis {
            Visibility::AllVisible { .. } => (Some(true), Vec::new()),
            Visibility::NotAllVisible { missing, .. } => (Some(false), missing.clone()),
            _ => (None, Vec::new()),
        };
        let trainees = present
            .iter()
            .map(|p| {
                let ts: Vec<i64> = hour_presence
                    .sightings
                    .iter()
                    .filter(|(q, _)| q == p)
                    .map(|(_, x)| *x)
                    .collect();
                PresenceSeen {
                    person_id: p.clone(),
                    seen: !ts.is_empty(),
                    first_seen_us: ts.iter().copied().min(),
                    last_seen_us: ts.iter().copied().max(),
                }
            })
            .collect();
        let rec = Record::Presence(Presence {
            session: t.session.clone(),
            session_id: t.session_id.clone(),
            date: t.date.clone(),
            class_id: t.class_id.clone(),
            class_hour: h,
            start_us: hs,
            end_us: he,
            cameras: self.cameras.clone(),
            analysed,
            head_count: self.heads.get(&h).copied().unwrap_or(0),
            all_visible,
            not_visible,
            trainees,
        });
        let mut recs = vec![rec];
        if self.head_alarmed.contains(&h) {
            recs.push(Record::alarm(
                AlarmKind::HeadCount {
                    session: t.session.clone(),
                    class_hour: Some(h),
                    camera: self.cameras.first().cloned().unwrap_or_default(),
                    head_count: self.heads.get(&h).copied().unwrap_or(0),
                    roster_trainees: self.roster_trainees,
                    teachers: self.teachers.len() as u32,
                },
                AlarmState::Cleared,
            ));
        }
        // R4: the class's hours not showing all trainees, across its sessions.
        if all_visible == Some(false)
            && let Some(limit) = config.rules.profile.max_hours_not_showing_all.filter(|l| *l > 0)
        {
            let mut hours: Vec<String> = class_hours_not_showing_all(conn, &t.class_id)?;
            hours.push(format!("{}#{h}", t.session));
            let n = hours.len() as u32;
            let kind = match rules::class_visibility(n, &config.rules.profile) {
                Some(rules::ClassVisibility::Warning { .. }) => Some(Kind::ClassVisibilityWarning),
                Some(rules::ClassVisibility::Failed { .. }) => Some(Kind::ClassFailed),
                _ => None,
            };
            if let Some(kind) = kind
                && !class_has(conn, kind, &t.class_id)?
            {
                let cv = ClassVisibility {
                    class_id: t.class_id.clone(),
                    profile: config.rules.profile.name.clone(),
                    rule: "R4".into(),
                    hours_not_showing_all: n,
                    limit,
                    hours,
                };
                recs.push(if kind == Kind::ClassFailed {
                    Record::ClassFailed(cv)
                } else {
                    Record::ClassVisibilityWarning(cv)
                });
            }
        }
        let tx = db::write_tx(conn)?;
        for r in &recs {
            log::append(&tx, crate::clock::from_us(he), r)?;
        }
        tx.commit()?;
        self.presence_done.insert(h);
        Ok(true)
    }
}

/// The schedule occurrence a timing was made of.
pub fn find_occurrence<'a>(config: &'a Config, t: &Timing) -> Option<ScheduleOccurrence<'a>> {
    let tz = config.device.timezone;
    config
        .sessions
        .iter()
        .filter(|s| s.id == t.session_id)
        .flat_map(|s| s.occurrences_between(t.start_us - 1, t.start_us + 1, tz))
        .find(|o| o.name == t.session)
}

/// R3/R4: whether hour `h` of `occ`, judged from the recording index at `now`, showed all.
pub fn hour_visibility(
    conn: &Connection,
    config: &Config,
    occ: &ScheduleOccurrence<'_>,
    h: u32,
    now: i64,
    presence: &HourPresence,
) -> Result<Visibility> {
    let Some(hour) = occ.hours.iter().find(|x| x.index == h) else {
        return Ok(Visibility::NotAnalysed);
    };
    let verdict = super::verdicts::judge_one(Some(conn), config, occ, hour, now)?;
    let rule = occ.session.rule(&config.rules);
    Ok(rules::visibility(&verdict, &rule, presence))
}

/// Whether the database has the presence tables (migration 6): a database of an older version
/// opened read-only (`report` before the upgraded daemon ran) has not.
pub fn has_tables(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('sightings', 'head_counts')",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n == 2)
}

/// The hour's presence from the store: checked-in trainees and their sightings (for the judge
/// and the report). `analysed`: a classroom frame was analysed in the hour.
pub fn hour_presence(
    conn: &Connection,
    session: &str,
    class_id: &str,
    hour: &crate::compliance::ClassHour,
    from_us: i64,
) -> Result<HourPresence> {
    let (hs, he, h) = (hour.start_us, hour.end_us, hour.index);
    let trainees: BTreeSet<String> = crate::attendance::roster::trainees_of(conn, class_id)?
        .into_iter()
        .collect();
    let mut present = BTreeSet::new();
    for st in log::read_filtered(conn, Some(from_us), Some(Kind::CheckIn))? {
        if let Record::CheckIn(c) = st.record
            && c.vote.session == session
            && c.vote.time_us < he
            && let Some(p) = c.vote.person_id
            && trainees.contains(&p)
        {
            present.insert(p);
        }
    }
    let analysed: i64 = conn.query_row(
        "SELECT COUNT(*) FROM head_counts WHERE session = ?1 AND class_hour = ?2",
        params![session, h],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare(
        "SELECT person_id, first_us FROM sightings WHERE session = ?1 AND first_us >= ?2 AND first_us < ?3",
    )?;
    let rows = stmt.query_map(params![session, hs, he], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut sightings = Vec::new();
    for r in rows {
        let (p, t) = r?;
        if present.contains(&p) {
            sightings.push((p, t));
        }
    }
    Ok(HourPresence {
        analysed: analysed > 0,
        present,
        sightings,
    })
}

/// Issue 11: the tamper alarms of `cameras` overlapping `[from, to)`, as `camera: kind`.
pub fn tamper_overlapping(
    conn: &Connection,
    cameras: &[String],
    from: i64,
    to: i64,
    now: i64,
) -> Result<Vec<String>> {
    let mut raised: Vec<(String, String, i64, Option<i64>)> = Vec::new();
    let lookback = from - 7 * 86_400_000_000;
    let mut all = log::read_filtered(conn, Some(lookback), Some(Kind::CameraTamper))?;
    all.extend(log::read_filtered(
        conn,
        Some(lookback),
        Some(Kind::CameraTamperCleared),
    )?);
    all.sort_by_key(|s| s.seq);
    for st in all {
        match st.record {
            Record::CameraTamper(t) if cameras.contains(&t.camera) => {
                raised.push((t.camera, t.tamper, t.since_us, None));
            }
            Record::CameraTamperCleared(c) => {
                if let Some(r) = raised
                    .iter_mut()
                    .rev()
                    .find(|r| r.0 == c.camera && r.1 == c.tamper && r.3.is_none())
                {
                    r.3 = Some(c.since_us);
                }
            }
            _ => {}
        }
    }
    let mut out: Vec<String> = raised
        .into_iter()
        .filter(|(_, _, a, b)| *a < to && b.unwrap_or(now) > from)
        .map(|(c, k, _, _)| format!("{c}: {k}"))
        .collect();
    out.dedup();
    Ok(out)
}

fn class_hours_not_showing_all(conn: &Connection, class_id: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for st in log::read_filtered(conn, None, Some(Kind::Presence))? {
        if let Record::Presence(p) = st.record
            && p.class_id == class_id
            && p.all_visible == Some(false)
        {
            out.push(format!("{}#{}", p.session, p.class_hour));
        }
    }
    Ok(out)
}

fn class_has(conn: &Connection, kind: Kind, class_id: &str) -> Result<bool> {
    Ok(log::read_filtered(conn, None, Some(kind))?
        .into_iter()
        .any(|st| match st.record {
            Record::ClassFailed(c) | Record::ClassVisibilityWarning(c) => c.class_id == class_id,
            _ => false,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;
    const START: i64 = 1_800_000_000 * S;

    fn timing() -> Timing {
        Timing {
            session: "s1".into(),
            session_id: "s1".into(),
            date: None,
            class_id: "c1".into(),
            start_us: START,
            end_us: START + 90 * S,
            hours: vec![(START, START + 45 * S), (START + 45 * S, START + 90 * S)],
            checkin_opens_us: 60 * S,
            late_after_us: 10 * S,
            checkout_window_us: 5 * S,
        }
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Sightings and head counts are committed per frame and read back by the occurrence
    /// opened after a restart; so is the R10 alarm already raised (not raised twice).
    #[test]
    fn sightings_head_counts_and_alarms_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::open(dir.path()).unwrap();
        let t = timing();
        let expected = Expected {
            trainees: set(&["a", "b"]),
            teachers: set(&["t"]),
        };
        let img = BgrImage::zeros(64, 36);
        let mut w = Watch::open(&conn, &t, vec!["room".into()], &expected).unwrap();
        assert!(
            !w.frame(&mut conn, "room", START + S, 2, &set(&["a"]), &img)
                .unwrap()
        );
        assert!(
            !w.frame(&mut conn, "room", START + S + 500_000, 3, &set(&["a", "t"]), &img)
                .unwrap()
        );
        // 4 faces > 2 trainees + 1 teacher on the roster: R10.
        assert!(
            w.frame(&mut conn, "room", START + 50 * S, 4, &set(&["b"]), &img)
                .unwrap()
        );
        assert!(
            !w.frame(&mut conn, "room", START + 51 * S, 4, &set(&["b"]), &img)
                .unwrap()
        );
        // Outside the observed window: nothing.
        assert!(
            !w.frame(&mut conn, "room", START + 200 * S, 9, &set(&["a"]), &img)
                .unwrap()
        );
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM sightings", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 4, "one row per person, camera and second");
        let again = Watch::open(&conn, &t, vec!["room".into()], &expected).unwrap();
        assert_eq!(again.sightings, w.sightings);
        assert_eq!(again.heads, w.heads);
        assert_eq!(again.heads.get(&1), Some(&3));
        assert_eq!(again.heads.get(&2), Some(&4));
        assert_eq!(again.analysed_hours, set_u32(&[1, 2]));
        assert!(again.head_alarmed.contains(&2));
        let alarms = log::read_filtered(&conn, None, Some(Kind::Alarm)).unwrap();
        assert_eq!(alarms.len(), 1);
        // The store's view of hour 2 for the judge: b checked in? No check-in records: nobody
        // is present, but the hour was analysed.
        let hour = crate::compliance::ClassHour {
            index: 2,
            start_us: START + 45 * S,
            end_us: START + 90 * S,
        };
        let hp = hour_presence(&conn, "s1", "c1", &hour, START - 61 * S).unwrap();
        assert!(hp.analysed && hp.present.is_empty());
        // `report` on a database of an older version (no presence tables): not analysed.
        assert!(has_tables(&conn).unwrap());
        assert!(!has_tables(&Connection::open_in_memory().unwrap()).unwrap());
    }

    fn set_u32(v: &[u32]) -> BTreeSet<u32> {
        v.iter().copied().collect()
    }
}
