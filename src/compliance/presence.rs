//! Presence rules: what the classroom cameras saw of a class hour, judged against R3, R4, R10
//! and R11 (issue 11). Pure, like the rest of the compliance room: the glue builds an
//! [`HourPresence`] from the check-in and sighting records of the log and calls these.
//!
//! Definitions:
//! - The *present trainees* of an hour are the trainees checked in for the session occurrence.
//! - A trainee is *shown* by a run when the classroom cameras recognised them at least once at a
//!   moment inside the run (`[start, end]`). Sightings outside the recording do not count: R3
//!   asks that the *recording* shows them, and analysis may read a sub-stream while recording is
//!   broken.
//! - The runs that can *qualify* an hour: under `MinRun(need)` each run at least `need` long;
//!   under `FullRecording` the hour as a whole (a trainee seen anywhere in it), when anything
//!   was recorded.
//! - An hour *shows all trainees* when some qualifying run shows every present trainee. It is
//!   decided when the hour ends (a late check-in adds someone who must be shown too); before
//!   that it is pending.
//! - Without a classroom camera analysed during the hour nothing is known: the hour is judged
//!   on recording alone and says so ([`Visibility::NotAnalysed`]).

use std::collections::{BTreeMap, BTreeSet};

use super::engine::{HourVerdict, RunSpan, Verdict};
use super::profile::{Profile, Requirement, Rule};

/// What the classroom cameras saw of one class hour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourPresence {
    /// A classroom camera of the session was analysed during the hour.
    pub analysed: bool,
    /// The present trainees (person ids).
    pub present: BTreeSet<String>,
    /// Every recognition of a trainee on the session's classroom cameras: (person id, µs).
    pub sightings: Vec<(String, i64)>,
}

/// What the report and the verdict events say about an hour's presence (issue 11).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresenceOutcome {
    /// A classroom camera was analysed during the hour (else: judged on recording alone).
    pub analysed: bool,
    /// `None`: not analysed or still running.
    pub all_visible: Option<bool>,
    /// Who the closest qualifying run did not show, as `name (masked id)`.
    pub not_visible: Vec<String>,
    /// The most faces in one frame.
    pub head_count: u32,
    /// Tamper alarms overlapping the hour, as `camera: kind`.
    pub tamper: Vec<String>,
}

/// Whether an hour's recording showed all present trainees (R3, R4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// No classroom camera analysed: judged on recording alone.
    NotAnalysed,
    /// The hour is still running.
    Pending,
    /// This qualifying run showed every present trainee.
    AllVisible { run: RunSpan },
    /// No qualifying run showed everyone. `missing`: who the closest run did not show (every
    /// present trainee when no run qualified); `run`: that run.
    NotAllVisible {
        missing: Vec<String>,
        run: Option<RunSpan>,
    },
}

impl Visibility {
    /// `Some(false)` for an hour that did not show all trainees (what R4 counts).
    pub fn all_visible(&self) -> Option<bool> {
        match self {
            Visibility::AllVisible { .. } => Some(true),
            Visibility::NotAllVisible { .. } => Some(false),
            Visibility::NotAnalysed | Visibility::Pending => None,
        }
    }
}

/// The runs of `verdict` that can qualify its hour under `rule`.
fn qualifying_runs(verdict: &HourVerdict, rule: &Rule) -> Vec<RunSpan> {
    match rule.requirement {
        Requirement::MinRun(need) => {
            let need = need.as_micros() as i64;
            verdict
                .runs
                .iter()
                .copied()
                .filter(|r| r.len_us >= need)
                .collect()
        }
        Requirement::FullRecording => {
            let (Some(first), Some(last)) = (verdict.runs.first(), verdict.runs.last()) else {
                return Vec::new();
            };
            vec![RunSpan {
                start_us: first.start_us,
                end_us: last.end_us,
                len_us: verdict.runs.iter().map(|r| r.len_us).sum(),
            }]
        }
    }
}

/// Whether the hour judged as `verdict` under `rule` showed all present trainees.
pub fn visibility(verdict: &HourVerdict, rule: &Rule, presence: &HourPresence) -> Visibility {
    if !presence.analysed {
        return Visibility::NotAnalysed;
    }
    if !verdict.ended {
        return Visibility::Pending;
    }
    let mut closest: Option<(Vec<String>, RunSpan)> = None;
    for run in qualifying_runs(verdict, rule) {
        let shown: BTreeSet<&str> = presence
            .sightings
            .iter()
            .filter(|(_, t)| (run.start_us..=run.end_us).contains(t))
            .map(|(p, _)| p.as_str())
            .collect();
        let missing: Vec<String> = presence
            .present
            .iter()
            .filter(|p| !shown.contains(p.as_str()))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Visibility::AllVisible { run };
        }
        if closest.as_ref().is_none_or(|(m, _)| missing.len() < m.len()) {
            closest = Some((missing, run));
        }
    }
    match closest {
        Some((missing, run)) => Visibility::NotAllVisible {
            missing,
            run: Some(run),
        },
        None => Visibility::NotAllVisible {
            missing: presence.present.iter().cloned().collect(),
            run: None,
        },
    }
}

/// R3 (`run_must_show_all_trainees`): the hour's verdict with presence taken into account.
///
/// - The rule off, or nothing analysed: the recording verdict, unchanged.
/// - An hour that did not show all present trainees fails, by rule R3.
/// - A recording `pass` reached while the hour runs is held as `pending` until the hour ends:
///   whether everyone was shown is only known then, and a pass must never turn into a fail.
pub fn apply_r3(mut verdict: HourVerdict, profile: &Profile, visibility: &Visibility) -> HourVerdict {
    if !profile.run_must_show_all_trainees {
        return verdict;
    }
    match visibility {
        Visibility::NotAnalysed | Visibility::AllVisible { .. } => {}
        Visibility::Pending => {
            if verdict.verdict == Verdict::Pass {
                verdict.verdict = Verdict::Pending;
            }
        }
        Visibility::NotAllVisible { .. } => {
            if verdict.verdict != Verdict::Fail {
                verdict.verdict = Verdict::Fail;
                verdict.rule = "R3";
            }
        }
    }
    verdict
}

/// R4: a class (班次) and how many of its hours, across its sessions, did not show all trainees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassVisibility {
    /// Fewer than `limit − 1` such hours.
    Fine { hours: u32, limit: u32 },
    /// One more such hour fails the class: a `class_visibility_warning`.
    Warning { hours: u32, limit: u32 },
    /// The limit is reached: a `class_failed` (its subsidy is cancelled).
    Failed { hours: u32, limit: u32 },
}

/// R4 for a class with `hours` class hours that did not show all trainees; `None` when the
/// profile has no such limit (`max_hours_not_showing_all` off).
pub fn class_visibility(hours: u32, profile: &Profile) -> Option<ClassVisibility> {
    let limit = profile.max_hours_not_showing_all.filter(|l| *l > 0)?;
    Some(if hours >= limit {
        ClassVisibility::Failed { hours, limit }
    } else if hours + 1 == limit {
        ClassVisibility::Warning { hours, limit }
    } else {
        ClassVisibility::Fine { hours, limit }
    })
}

/// R4: the hours of one class, in order, that did not show all trainees. Hours not yet decided
/// or not analysed are not counted.
pub fn hours_not_showing_all<'a>(hours: impl IntoIterator<Item = &'a Visibility>) -> u32 {
    hours
        .into_iter()
        .filter(|v| v.all_visible() == Some(false))
        .count() as u32
}

/// R11 and "a real teacher present": the teachers of a session occurrence at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeacherCheck {
    /// Too early to say (before `late_after` past the start, and no teacher yet).
    Pending,
    /// Enough teachers for the present trainees.
    Fine,
    /// `late_after` has passed and no teacher checked in or was seen: a `no_teacher` alarm.
    NoTeacher,
    /// Present teachers × `per_teacher` < present trainees: a `teacher_ratio` alarm.
    TooFewTeachers {
        teachers: u32,
        trainees: u32,
        per_teacher: u32,
    },
}

/// The teacher check for an occurrence that started at `start_us`, at `now_us`.
pub fn teacher_check(
    teachers: u32,
    trainees: u32,
    profile: &Profile,
    start_us: i64,
    late_after_us: i64,
    now_us: i64,
) -> TeacherCheck {
    if teachers == 0 {
        return if now_us >= start_us + late_after_us {
            TeacherCheck::NoTeacher
        } else {
            TeacherCheck::Pending
        };
    }
    match profile.trainees_per_teacher.filter(|n| *n > 0) {
        Some(per_teacher) if u64::from(teachers) * u64::from(per_teacher) < u64::from(trainees) => {
            TeacherCheck::TooFewTeachers {
                teachers,
                trainees,
                per_teacher,
            }
        }
        _ => TeacherCheck::Fine,
    }
}

/// R10: more faces in one frame than the class has trainees on its roster (plus its teachers)
/// means people are there who should not be: a `head_count` alarm.
pub fn head_count_exceeds(head_count: u32, roster_trainees: u32, teachers: u32) -> bool {
    head_count > roster_trainees + teachers
}

/// Trainees checked in but not seen for more than `left_early_after` before the end of the
/// session (judged at its end): the `left_early` ones. `last_seen`: each checked-in trainee's
/// last recognition on any camera of the session (the check-in itself counts as a sighting).
pub fn left_early(last_seen: &BTreeMap<String, i64>, end_us: i64, left_early_after_us: i64) -> Vec<String> {
    last_seen
        .iter()
        .filter(|(_, t)| **t < end_us - left_early_after_us)
        .map(|(p, _)| p.clone())
        .collect()
}

#[cfg(test)]
mod tests;
