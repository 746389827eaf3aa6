//! Judges one class hour: (timelines of the session's cameras, the hour, its rule, the
//! continuity tolerance, now) → verdict. Pure; docs/compliance.md explains it in plain words.
//!
//! Definitions (all times µs on the box's wall clock):
//! - Only what lies inside the class hour `[start, end)` and before `now` counts.
//! - A *hole* is a piece of the hour nobody recorded. It *breaks* a run when it is longer than
//!   the continuity tolerance, unless it is bridged (the two segments around it are consecutive
//!   in one stream: the box's clock stepped, the camera did not stop).
//! - A *run* is a stretch from a recorded moment to a recorded moment with no breaking hole in
//!   between. Its length is the time recorded in it: holes never count, not even tolerated
//!   ones or bridged clock steps, so a run is never longer than the video it stands for (and a
//!   clock jumping forward cannot lengthen it).
//! - `FullRecording` (R1, R13) passes when no breaking hole lies anywhere in the hour; it is
//!   `fail` from the moment one does, `pass` once the hour has ended without one, `pending` in
//!   between. It is never `at_risk`: every moment of such an hour must be on camera, so the
//!   warning would be permanent and tell nobody anything.
//! - `MinRun(need)` (R2, R3) passes as soon as one run reaches `need`. While the hour lasts it
//!   fails as soon as no run can reach `need` any more, even if recording resumed now and never
//!   stopped again; it is `at_risk` from `end − need` on (a run starting later is too short, so
//!   only recording unbroken from now on can still pass it), `pending` before.
//!
//! Monotonicity (property-tested): more recording never makes a verdict worse, and a verdict
//! of `pass` or `fail` reached while the hour runs is the verdict at its end, as long as what
//! was recorded before `now` does not change.

use serde::Serialize;

use super::profile::{Requirement, Rule};
use super::schedule::ClassHour;
use super::timeline::{CameraTimeline, Coverage, PieceKind};

/// The verdict of a class hour at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The rule is met (for good: nothing later can undo it).
    Pass,
    /// The rule can no longer be met.
    Fail,
    /// Undecided, with slack left.
    Pending,
    /// Undecided, and only recording unbroken from now on can still meet the rule.
    AtRisk,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Pending => "pending",
            Verdict::AtRisk => "at_risk",
        }
    }

    /// Worst to best, for comparisons: fail < at_risk < pending < pass.
    pub fn rank(self) -> u8 {
        match self {
            Verdict::Fail => 0,
            Verdict::AtRisk => 1,
            Verdict::Pending => 2,
            Verdict::Pass => 3,
        }
    }
}

/// A hole inside a class hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hole {
    pub start_us: i64,
    /// For a hole still open at `now`: `now`.
    pub end_us: i64,
    /// Why (gap causes joined by `,`, `damaged`, `clock_step` or `unrecorded`).
    pub cause: String,
    /// Longer than the continuity tolerance and not bridged.
    pub breaks_run: bool,
}

/// The judgement of one class hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourVerdict {
    /// 1-based, as 第1学时.
    pub index: u32,
    pub start_us: i64,
    pub end_us: i64,
    /// The rule id that decides this hour (R1, R2, R3, R13).
    pub rule: &'static str,
    /// The unbroken run the rule needs; `None` for end-to-end recording.
    pub required_run_us: Option<i64>,
    pub verdict: Verdict,
    /// Longest run inside the hour (so far).
    pub longest_run_us: i64,
    /// Time recorded inside the hour (so far), by any of the session's cameras.
    pub recorded_us: i64,
    pub holes: Vec<Hole>,
    /// The unbroken runs inside the hour (so far), in order: what R3's "the run shows all
    /// trainees" is checked against (`compliance::presence`).
    pub runs: Vec<RunSpan>,
    /// The hour has ended (`now >= end`): the verdict is `pass` or `fail` and will not change
    /// unless the timeline before the end does.
    pub ended: bool,
    /// Issue 11: what the classroom cameras saw of the hour (set by the glue, `None` for a
    /// session without a classroom camera).
    pub presence: Option<super::presence::PresenceOutcome>,
}

/// An unbroken run found in the hour: from its first to its last recorded moment (it may
/// contain tolerated or bridged holes), and the time recorded in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSpan {
    pub start_us: i64,
    pub end_us: i64,
    pub len_us: i64,
}

/// Judges one class hour at `now`.
pub fn judge_hour(
    hour: &ClassHour,
    rule: &Rule,
    tolerance_us: i64,
    cameras: &[CameraTimeline],
    now_us: i64,
) -> HourVerdict {
    let (start, end) = (hour.start_us, hour.end_us);
    let known_to = now_us.min(end);
    let coverage = Coverage::of(cameras, start, known_to);

    // Walk the pieces, building runs: a breaking hole ends the current run.
    let mut runs: Vec<RunSpan> = Vec::new();
    let mut current: Option<RunSpan> = None;
    let mut holes = Vec::new();
    for piece in &coverage.pieces {
        match &piece.kind {
            PieceKind::Recorded => {
                let run = current.get_or_insert(RunSpan {
                    start_us: piece.start_us,
                    end_us: piece.start_us,
                    len_us: 0,
                });
                run.len_us += piece.len_us();
                run.end_us = piece.end_us;
            }
            PieceKind::Hole { bridged, cause } => {
                let breaks = !bridged && piece.len_us() > tolerance_us;
                holes.push(Hole {
                    start_us: piece.start_us,
                    end_us: piece.end_us,
                    cause: cause.clone(),
                    breaks_run: breaks,
                });
                if breaks {
                    runs.extend(current.take());
                }
            }
        }
    }
    // The run still alive at `now`: the last one, unless a breaking hole followed it.
    let alive = current.map(|r| r.len_us);
    runs.extend(current);
    let longest_run_us = runs.iter().map(|r| r.len_us).max().unwrap_or(0);
    let ended = now_us >= end;

    let (verdict, required_run_us) = match rule.requirement {
        Requirement::FullRecording => {
            let verdict = if holes.iter().any(|h| h.breaks_run) {
                Verdict::Fail
            } else if ended {
                Verdict::Pass
            } else {
                Verdict::Pending
            };
            (verdict, None)
        }
        Requirement::MinRun(need) => {
            let need = need.as_micros() as i64;
            let verdict = if longest_run_us >= need {
                Verdict::Pass
            } else if ended || end - start < need {
                Verdict::Fail
            } else {
                // The best any future can still do: a run starting now, or the live run going
                // on unbroken to the end of the hour.
                let left = end - now_us.max(start);
                let best = left.max(alive.map_or(0, |a| a + left));
                if best < need {
                    Verdict::Fail
                } else if now_us >= end - need {
                    Verdict::AtRisk
                } else {
                    Verdict::Pending
                }
            };
            (verdict, Some(need))
        }
    };
    HourVerdict {
        index: hour.index,
        start_us: start,
        end_us: end,
        rule: rule.id,
        required_run_us,
        verdict,
        longest_run_us,
        recorded_us: coverage.recorded_us(),
        holes,
        runs,
        ended,
        presence: None,
    }
}

/// Counts of verdicts, for the report's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: u32,
    pub fail: u32,
    pub pending: u32,
    pub at_risk: u32,
}

impl Summary {
    pub fn of(hours: &[HourVerdict]) -> Summary {
        let mut s = Summary::default();
        for h in hours {
            match h.verdict {
                Verdict::Pass => s.pass += 1,
                Verdict::Fail => s.fail += 1,
                Verdict::Pending => s.pending += 1,
                Verdict::AtRisk => s.at_risk += 1,
            }
        }
        s
    }
}

#[cfg(test)]
mod tests;
