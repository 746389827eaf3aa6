//! The engine's rules and edge cases as a table, then its properties.
//!
//! Times are seconds from the start of the class hour under test; the hour is [0 s, 60 s), the
//! continuity tolerance 2 s and the minimum run (R2) 15 s: the `custom` profile of the
//! integration test, so that the numbers read the same in both places.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::compliance::profile::{Requirement, Rule};
use crate::compliance::schedule::ClassHour;
use crate::compliance::timeline::{CameraTimeline, Missing, Recorded};

const S: i64 = 1_000_000;
/// 2026-11-22T10:00:00+08:00, so that failures print recognisable times.
const T0: i64 = 1_795_312_800 * S;
const TOL: i64 = 2 * S;

fn us(sec: f64) -> i64 {
    T0 + (sec * 1e6).round() as i64
}

const HOUR: ClassHour = ClassHour {
    index: 1,
    start_us: T0,
    end_us: T0 + 60 * S,
};

const R2: Rule = Rule {
    id: "R2",
    requirement: Requirement::MinRun(Duration::from_secs(15)),
};
const R1: Rule = Rule {
    id: "R1",
    requirement: Requirement::FullRecording,
};
const R13: Rule = Rule {
    id: "R13",
    requirement: Requirement::FullRecording,
};

/// A camera's timeline written as text: `seg a-b stream/seq`, `gap a-b cause`, `damaged a-b`,
/// separated by `;` (seconds, fractions allowed).
fn cam(name: &str, spec: &str) -> CameraTimeline {
    let mut t = CameraTimeline {
        camera: name.into(),
        ..Default::default()
    };
    for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let parts: Vec<&str> = item.split_whitespace().collect();
        let (a, b) = parts[1].split_once('~').expect("a~b");
        let (a, b) = (us(a.parse().unwrap()), us(b.parse().unwrap()));
        match parts[0] {
            "seg" => {
                let (stream, seq) = parts[2].split_once('/').expect("stream/seq");
                t.recorded.push(Recorded {
                    start_us: a,
                    end_us: b,
                    stream: stream.into(),
                    seq: seq.parse().unwrap(),
                });
            }
            "gap" => t.missing.push(Missing {
                start_us: a,
                end_us: b,
                cause: parts[2].into(),
            }),
            "damaged" => t.missing.push(Missing {
                start_us: a,
                end_us: b,
                cause: "damaged".into(),
            }),
            other => panic!("unknown item {other}"),
        }
    }
    t
}

struct Case {
    name: &'static str,
    rule: Rule,
    cameras: Vec<CameraTimeline>,
    /// Seconds from the hour's start.
    now: f64,
    verdict: Verdict,
    longest: f64,
    recorded: f64,
    /// (start, end, cause, breaks_run) in seconds.
    holes: Vec<(f64, f64, &'static str, bool)>,
}

fn one(front: &str) -> Vec<CameraTimeline> {
    vec![cam("front", front)]
}

fn cases() -> Vec<Case> {
    use Verdict::*;
    vec![
        Case {
            name: "no recording at all: R2 fails at the end",
            rule: R2,
            cameras: one(""),
            now: 60.0,
            verdict: Fail,
            longest: 0.0,
            recorded: 0.0,
            holes: vec![(0.0, 60.0, "unrecorded", true)],
        },
        Case {
            name: "no recording, mid-hour with slack left: pending",
            rule: R2,
            cameras: one("gap -100~44.9 camera_lost"),
            now: 44.9,
            verdict: Pending,
            longest: 0.0,
            recorded: 0.0,
            holes: vec![(0.0, 44.9, "camera_lost", true)],
        },
        Case {
            name: "no recording at end - need: at risk (a run starting now just fits)",
            rule: R2,
            cameras: one("gap -100~45 camera_lost"),
            now: 45.0,
            verdict: AtRisk,
            longest: 0.0,
            recorded: 0.0,
            holes: vec![(0.0, 45.0, "camera_lost", true)],
        },
        Case {
            name: "no recording just after end - need: fail, though the hour still runs",
            rule: R2,
            cameras: one("gap -100~45.001 camera_lost"),
            now: 45.001,
            verdict: Fail,
            longest: 0.0,
            recorded: 0.0,
            holes: vec![(0.0, 45.001, "camera_lost", true)],
        },
        Case {
            name: "before the hour: pending, nothing counted",
            rule: R2,
            cameras: one("seg -30~-10 a/0"),
            now: -10.0,
            verdict: Pending,
            longest: 0.0,
            recorded: 0.0,
            holes: vec![],
        },
        Case {
            name: "recording that starts before the hour counts only from the start",
            rule: R2,
            cameras: one("seg -600~10 a/0; gap 10~60 camera_lost"),
            now: 60.0,
            verdict: Fail,
            longest: 10.0,
            recorded: 10.0,
            holes: vec![(10.0, 60.0, "camera_lost", true)],
        },
        Case {
            name: "a run crossing the hour's end counts only up to the end",
            rule: R2,
            cameras: one("seg 50~120 a/0"),
            now: 120.0,
            verdict: Fail,
            longest: 10.0,
            recorded: 10.0,
            holes: vec![(0.0, 50.0, "unrecorded", true)],
        },
        Case {
            name: "a run crossing the hour's start and end: whole hour",
            rule: R1,
            cameras: one("seg -30~30 a/0; seg 30~90 a/1"),
            now: 90.0,
            verdict: Pass,
            longest: 60.0,
            recorded: 60.0,
            holes: vec![],
        },
        Case {
            name: "R2 passes live the moment the run reaches 15 s",
            rule: R2,
            cameras: one("seg 0~15 a/0"),
            now: 15.0,
            verdict: Pass,
            longest: 15.0,
            recorded: 15.0,
            holes: vec![],
        },
        Case {
            name: "R2 one microsecond short is still pending",
            rule: R2,
            cameras: one("seg 0~14.999999 a/0"),
            now: 14.999999,
            verdict: Pending,
            longest: 14.999999,
            recorded: 14.999999,
            holes: vec![],
        },
        Case {
            name: "a camera drop of 3 s breaks the run: 10 s + 12 s is no 15 s run",
            rule: R2,
            cameras: one("seg 0~10 a/0; gap 10~13 camera_lost; seg 13~25 b/0; gap 25~60 camera_lost"),
            now: 60.0,
            verdict: Fail,
            longest: 12.0,
            recorded: 22.0,
            holes: vec![
                (10.0, 13.0, "camera_lost", true),
                (25.0, 60.0, "camera_lost", true),
            ],
        },
        Case {
            name: "a drop of exactly the tolerance does not break the run (holes do not count)",
            rule: R2,
            cameras: one("seg 0~8 a/0; gap 8~10 camera_lost; seg 10~17 b/0"),
            now: 17.0,
            verdict: Pass,
            longest: 15.0,
            recorded: 15.0,
            holes: vec![(8.0, 10.0, "camera_lost", false)],
        },
        Case {
            name: "a drop of the tolerance plus 1 µs breaks it",
            rule: R2,
            cameras: one("seg 0~8 a/0; gap 8~10.000001 camera_lost; seg 10.000001~17 b/0"),
            now: 17.0,
            verdict: Pending,
            longest: 8.0,
            recorded: 14.999999,
            holes: vec![(8.0, 10.000001, "camera_lost", true)],
        },
        Case {
            name: "a late run under way is at risk: it must go on unbroken",
            rule: R2,
            cameras: one("gap 0~40 camera_lost; seg 40~50 a/0"),
            now: 50.0,
            verdict: AtRisk,
            longest: 10.0,
            recorded: 10.0,
            holes: vec![(0.0, 40.0, "camera_lost", true)],
        },
        Case {
            name: "the at-risk run dropping: still at risk within the tolerance",
            rule: R2,
            cameras: one("gap 0~40 camera_lost; seg 40~50 a/0; gap 50~52 camera_lost"),
            now: 52.0,
            verdict: AtRisk,
            longest: 10.0,
            recorded: 10.0,
            holes: vec![
                (0.0, 40.0, "camera_lost", true),
                (50.0, 52.0, "camera_lost", false),
            ],
        },
        Case {
            name: "the at-risk run dropping: fail once the hole outgrows the tolerance",
            rule: R2,
            cameras: one("gap 0~40 camera_lost; seg 40~50 a/0; gap 50~52.000001 camera_lost"),
            now: 52.000001,
            verdict: Fail,
            longest: 10.0,
            recorded: 10.0,
            holes: vec![
                (0.0, 40.0, "camera_lost", true),
                (50.0, 52.000001, "camera_lost", true),
            ],
        },
        Case {
            name: "a run started too late fails at once",
            rule: R2,
            cameras: one("gap 0~46 camera_lost; seg 46~50 a/0"),
            now: 50.0,
            verdict: Fail,
            longest: 4.0,
            recorded: 4.0,
            holes: vec![(0.0, 46.0, "camera_lost", true)],
        },
        Case {
            name: "an open segment counts up to now; no hole before anything is known",
            rule: R2,
            cameras: one("seg 0~30 a/0"),
            now: 30.0,
            verdict: Pass,
            longest: 30.0,
            recorded: 30.0,
            holes: vec![],
        },
        Case {
            name: "daemon restart: the crash loses the time the daemon was down",
            rule: R2,
            cameras: one("seg 0~10 a/0; seg 10~14 a/1; gap 14~20 daemon_down; seg 20~60 b/0"),
            now: 60.0,
            verdict: Pass,
            longest: 40.0,
            recorded: 54.0,
            holes: vec![(14.0, 20.0, "daemon_down", true)],
        },
        Case {
            name: "daemon restart fails an R1 hour",
            rule: R1,
            cameras: one("seg 0~10 a/0; seg 10~14 a/1; gap 14~20 daemon_down; seg 20~60 b/0"),
            now: 60.0,
            verdict: Fail,
            longest: 40.0,
            recorded: 54.0,
            holes: vec![(14.0, 20.0, "daemon_down", true)],
        },
        Case {
            name: "a damaged segment is not recorded",
            rule: R1,
            cameras: one("seg 0~10 a/0; damaged 10~20; seg 20~60 a/2"),
            now: 60.0,
            verdict: Fail,
            longest: 40.0,
            recorded: 50.0,
            holes: vec![(10.0, 20.0, "damaged", true)],
        },
        Case {
            name: "R1 passes only at the end of the hour",
            rule: R1,
            cameras: one("seg -5~59.9 a/0"),
            now: 59.9,
            verdict: Pending,
            longest: 59.9,
            recorded: 59.9,
            holes: vec![],
        },
        Case {
            name: "R1 tolerates a short hole at the start and at the end",
            rule: R1,
            cameras: one("gap -5~1 daemon_down; seg 1~58.5 a/0; gap 58.5~70 camera_lost"),
            now: 70.0,
            verdict: Pass,
            longest: 57.5,
            recorded: 57.5,
            holes: vec![
                (0.0, 1.0, "daemon_down", false),
                (58.5, 60.0, "camera_lost", false),
            ],
        },
        Case {
            name: "R1 fails the moment a hole outgrows the tolerance, long before the end",
            rule: R1,
            cameras: one("seg 0~10 a/0; gap 10~12.5 stall"),
            now: 12.5,
            verdict: Fail,
            longest: 10.0,
            recorded: 10.0,
            holes: vec![(10.0, 12.5, "stall", true)],
        },
        Case {
            name: "R13 (make-up) is judged end to end too",
            rule: R13,
            cameras: one("seg 0~30 a/0; gap 30~40 disk_full; seg 40~60 b/0"),
            now: 60.0,
            verdict: Fail,
            longest: 30.0,
            recorded: 50.0,
            holes: vec![(30.0, 40.0, "disk_full", true)],
        },
        Case {
            name: "wall clock steps forward 10 s inside one stream: bridged, counted as nothing",
            rule: R2,
            cameras: one("seg 0~8 a/0; seg 18~24 a/1"),
            now: 24.0,
            verdict: Pending,
            longest: 14.0,
            recorded: 14.0,
            holes: vec![(8.0, 18.0, "clock_step", false)],
        },
        Case {
            name: "wall clock steps forward with a new stream: a real hole with its cause",
            rule: R2,
            cameras: one("seg 0~8 a/0; gap 8~18 clock_jump; seg 18~25 b/0"),
            now: 25.0,
            verdict: Pending,
            longest: 8.0,
            recorded: 15.0,
            holes: vec![(8.0, 18.0, "clock_jump", true)],
        },
        Case {
            name: "wall clock steps back: overlapping segments count once",
            rule: R1,
            cameras: one("seg 0~30 a/0; seg 25~60 a/1"),
            now: 60.0,
            verdict: Pass,
            longest: 60.0,
            recorded: 60.0,
            holes: vec![],
        },
        Case {
            name: "two cameras hand over with overlap: one unbroken run",
            rule: R2,
            cameras: vec![
                cam("front", "seg 0~10 a/0; gap 10~60 camera_lost"),
                cam("back", "gap 0~9 camera_lost; seg 9~30 c/0"),
            ],
            now: 60.0,
            verdict: Pass,
            longest: 30.0,
            recorded: 30.0,
            holes: vec![(30.0, 60.0, "camera_lost", true)],
        },
        Case {
            name: "two cameras hand over within the tolerance",
            rule: R2,
            cameras: vec![
                cam("front", "seg 0~10 a/0; gap 10~60 camera_lost"),
                cam("back", "gap 0~11.5 camera_lost; seg 11.5~20 c/0"),
            ],
            now: 20.0,
            verdict: Pass,
            longest: 18.5,
            recorded: 18.5,
            holes: vec![(10.0, 11.5, "camera_lost", false)],
        },
        Case {
            name: "two cameras with a hole between them longer than the tolerance",
            rule: R2,
            cameras: vec![
                cam("front", "seg 0~10 a/0; gap 10~60 stall"),
                cam("back", "gap 0~14 camera_lost; seg 14~20 c/0"),
            ],
            now: 20.0,
            verdict: Pending,
            longest: 10.0,
            recorded: 16.0,
            holes: vec![(10.0, 14.0, "camera_lost,stall", true)],
        },
    ]
}

#[test]
fn every_rule_and_edge_case() {
    let secs = |x: i64| (x - T0) as f64 / 1e6;
    let mut failures = Vec::new();
    for c in cases() {
        let v = judge_hour(&HOUR, &c.rule, TOL, &c.cameras, us(c.now));
        let got_holes: Vec<(f64, f64, String, bool)> = v
            .holes
            .iter()
            .map(|h| (secs(h.start_us), secs(h.end_us), h.cause.clone(), h.breaks_run))
            .collect();
        let want_holes: Vec<(f64, f64, String, bool)> = c
            .holes
            .iter()
            .map(|&(a, b, cause, br)| (a, b, cause.to_string(), br))
            .collect();
        let ok = v.verdict == c.verdict
            && v.longest_run_us == (c.longest * 1e6).round() as i64
            && v.recorded_us == (c.recorded * 1e6).round() as i64
            && got_holes == want_holes
            && v.rule == c.rule.id
            && v.ended == (us(c.now) >= HOUR.end_us);
        if !ok {
            failures.push(format!(
                "{}:\n  want {:?} longest {} recorded {} holes {:?}\n  got  {:?} longest {} recorded {} holes {:?}",
                c.name,
                c.verdict,
                c.longest,
                c.recorded,
                want_holes,
                v.verdict,
                v.longest_run_us as f64 / 1e6,
                v.recorded_us as f64 / 1e6,
                got_holes
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_hour_shorter_than_the_run_it_needs_can_never_pass() {
    let short = ClassHour {
        index: 1,
        start_us: T0,
        end_us: T0 + 10 * S,
    };
    let v = judge_hour(&short, &R2, TOL, &one("seg -10~10 a/0"), T0);
    assert_eq!(v.verdict, Verdict::Fail);
}

#[test]
fn summary_counts_verdicts() {
    let mk = |verdict| HourVerdict {
        index: 1,
        start_us: 0,
        end_us: 1,
        rule: "R2",
        required_run_us: None,
        verdict,
        longest_run_us: 0,
        recorded_us: 0,
        holes: vec![],
        runs: vec![],
        ended: false,
        presence: None,
    };
    let s = Summary::of(&[mk(Verdict::Pass), mk(Verdict::Pass), mk(Verdict::AtRisk)]);
    assert_eq!(
        s,
        Summary {
            pass: 2,
            fail: 0,
            pending: 0,
            at_risk: 1
        }
    );
}

// ---- properties ----------------------------------------------------------------------------

/// A plausible camera timeline around the hour: segments chained within streams, streams
/// separated by gaps (with or without a gap row), now and then a damaged segment or a
/// forward clock step inside a stream. Times in ms from the hour's start.
fn arb_camera(name: &'static str) -> impl Strategy<Value = CameraTimeline> {
    let step = (1i64..20_000, 0u8..10, 0i64..8_000);
    (-20_000i64..10_000, prop::collection::vec(step, 0..14)).prop_map(move |(t0, steps)| {
        let mut t = CameraTimeline {
            camera: name.into(),
            ..Default::default()
        };
        let mut at = t0;
        let mut stream = 0u32;
        let mut seq = 0u32;
        for (len, what, pause) in steps {
            let (a, b) = (T0 + at * 1000, T0 + (at + len) * 1000);
            if what == 0 {
                t.missing.push(Missing {
                    start_us: a,
                    end_us: b,
                    cause: "damaged".into(),
                });
            } else {
                t.recorded.push(Recorded {
                    start_us: a,
                    end_us: b,
                    stream: format!("{name}{stream}"),
                    seq,
                });
            }
            seq += 1;
            at += len;
            match what {
                // contiguous, same stream
                0..=5 => {}
                // forward clock step inside the stream
                6 => at += pause,
                // a lost connection, with a gap row
                7 | 8 => {
                    t.missing.push(Missing {
                        start_us: T0 + at * 1000,
                        end_us: T0 + (at + pause) * 1000,
                        cause: "camera_lost".into(),
                    });
                    at += pause;
                    stream += 1;
                    seq = 0;
                }
                // a lost connection nobody wrote down
                _ => {
                    at += pause;
                    stream += 1;
                    seq = 0;
                }
            }
        }
        t
    })
}

fn arb_cameras() -> impl Strategy<Value = Vec<CameraTimeline>> {
    prop_oneof![
        arb_camera("f").prop_map(|a| vec![a]),
        (arb_camera("f"), arb_camera("b")).prop_map(|(a, b)| vec![a, b]),
    ]
}

fn arb_rule() -> impl Strategy<Value = Rule> {
    prop_oneof![Just(R1), Just(R2), Just(R13)]
}

/// What the box would know at `now` of a timeline that was in truth `cams`: nothing that
/// starts later, and what is under way cut at `now`.
fn known_at(cams: &[CameraTimeline], now: i64) -> Vec<CameraTimeline> {
    cams.iter()
        .map(|c| CameraTimeline {
            camera: c.camera.clone(),
            recorded: c
                .recorded
                .iter()
                .filter(|r| r.start_us < now)
                .map(|r| Recorded {
                    end_us: r.end_us.min(now),
                    ..r.clone()
                })
                .collect(),
            missing: c
                .missing
                .iter()
                .filter(|m| m.start_us < now)
                .map(|m| Missing {
                    end_us: m.end_us.min(now),
                    ..m.clone()
                })
                .collect(),
        })
        .collect()
}

fn inside_a_clock_step(cams: &[CameraTimeline], t: i64) -> bool {
    cams.iter().any(|c| {
        c.recorded.windows(2).any(|w| {
            w[0].stream == w[1].stream && w[0].seq + 1 == w[1].seq && w[0].end_us < t && t <= w[1].start_us
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Adding recording never turns a pass into a fail, nor makes any verdict worse.
    #[test]
    fn adding_recording_never_makes_a_verdict_worse(
        cams in arb_cameras(),
        rule in arb_rule(),
        extra in (-10_000i64..70_000, 1i64..30_000, 0usize..2),
        now in -5_000i64..80_000,
    ) {
        let now = T0 + now * 1000;
        let before = judge_hour(&HOUR, &rule, TOL, &cams, now);
        let mut more = cams.clone();
        let (a, len, which) = extra;
        let which = which.min(more.len() - 1);
        more[which].recorded.push(Recorded {
            start_us: T0 + a * 1000,
            end_us: T0 + (a + len) * 1000,
            stream: "added".into(),
            seq: 0,
        });
        let after = judge_hour(&HOUR, &rule, TOL, &more, now);
        prop_assert!(
            after.verdict.rank() >= before.verdict.rank(),
            "{:?} became {:?}", before.verdict, after.verdict
        );
        prop_assert!(after.longest_run_us >= before.longest_run_us);
        prop_assert!(after.recorded_us >= before.recorded_us);
    }

    /// The runs (what R3's presence check looks inside) are ordered, disjoint, inside the hour
    /// and before `now`, each no longer than its span; the longest is `longest_run_us`, and a
    /// breaking hole lies between any two.
    #[test]
    fn runs_are_ordered_disjoint_spans_split_by_breaking_holes(
        cams in arb_cameras(),
        rule in arb_rule(),
        now in -5_000i64..80_000,
    ) {
        let now = T0 + now * 1000;
        let v = judge_hour(&HOUR, &rule, TOL, &cams, now);
        for r in &v.runs {
            prop_assert!(HOUR.start_us <= r.start_us && r.start_us < r.end_us);
            prop_assert!(r.end_us <= HOUR.end_us.min(now));
            prop_assert!(0 < r.len_us && r.len_us <= r.end_us - r.start_us);
        }
        for w in v.runs.windows(2) {
            prop_assert!(w[0].end_us <= w[1].start_us);
            prop_assert!(v.holes.iter().any(|h| h.breaks_run
                && w[0].end_us <= h.start_us && h.end_us <= w[1].start_us));
        }
        prop_assert_eq!(v.runs.iter().map(|r| r.len_us).max().unwrap_or(0), v.longest_run_us);
    }

    /// Removing recording (a whole segment, which may also undo a bridge) never turns a fail
    /// into a pass, nor makes any verdict better.
    #[test]
    fn removing_recording_never_makes_a_verdict_better(
        cams in arb_cameras(),
        rule in arb_rule(),
        pick in any::<prop::sample::Index>(),
        now in -5_000i64..80_000,
    ) {
        let now = T0 + now * 1000;
        let before = judge_hour(&HOUR, &rule, TOL, &cams, now);
        let mut less = cams.clone();
        let n = less[0].recorded.len();
        if n > 0 {
            less[0].recorded.remove(pick.index(n));
        }
        let after = judge_hour(&HOUR, &rule, TOL, &less, now);
        prop_assert!(
            after.verdict.rank() <= before.verdict.rank(),
            "{:?} became {:?}", before.verdict, after.verdict
        );
        prop_assert!(after.longest_run_us <= before.longest_run_us);
    }

    /// A pass or fail reached while the hour runs is the final verdict; at risk never goes
    /// back to pending; the final verdict is pass or fail.
    #[test]
    fn live_verdicts_agree_with_the_final_one(
        cams in arb_cameras(),
        rule in arb_rule(),
        t1 in -5_000i64..70_000,
        dt in 0i64..30_000,
    ) {
        let (t1, t2) = (T0 + t1 * 1000, T0 + (t1 + dt) * 1000);
        // A clock step inside a stream is a jump of the box's clock: no moment of the new
        // clock falls inside it, so nobody can be judging then.
        prop_assume!(!inside_a_clock_step(&cams, t1) && !inside_a_clock_step(&cams, t2));
        let early = judge_hour(&HOUR, &rule, TOL, &known_at(&cams, t1), t1);
        let late = judge_hour(&HOUR, &rule, TOL, &known_at(&cams, t2), t2);
        match early.verdict {
            Verdict::Pass | Verdict::Fail => prop_assert_eq!(early.verdict, late.verdict),
            Verdict::AtRisk => prop_assert!(late.verdict != Verdict::Pending),
            Verdict::Pending => {}
        }
        if late.ended {
            prop_assert!(matches!(late.verdict, Verdict::Pass | Verdict::Fail));
        }
    }

    /// The pieces tile what is known of the hour, and the figures stay within it.
    #[test]
    fn figures_stay_inside_the_hour(cams in arb_cameras(), rule in arb_rule(), now in -5_000i64..80_000) {
        let now = T0 + now * 1000;
        let v = judge_hour(&HOUR, &rule, TOL, &cams, now);
        let known = (now.min(HOUR.end_us) - HOUR.start_us).max(0);
        prop_assert!(v.recorded_us <= known);
        prop_assert!(v.longest_run_us <= v.recorded_us);
        let holes: i64 = v.holes.iter().map(|h| h.end_us - h.start_us).sum();
        prop_assert_eq!(holes + v.recorded_us, known);
    }
}

// ---- the worked examples of docs/compliance.md, on the henan profile ------------------------

/// "HH:MM:SS" on 2026-11-22 (+08:00) → µs; T0 is 10:00:00.
fn hms(s: &str) -> i64 {
    let p: Vec<i64> = s.split(':').map(|x| x.parse().unwrap()).collect();
    T0 + ((p[0] - 10) * 3600 + p[1] * 60 + p[2]) * S
}

fn henan_cam(items: &[(&str, &str, &str)]) -> CameraTimeline {
    let mut t = CameraTimeline {
        camera: "front".into(),
        ..Default::default()
    };
    for (i, (a, b, what)) in items.iter().enumerate() {
        if *what == "rec" {
            t.recorded.push(Recorded {
                start_us: hms(a),
                end_us: hms(b),
                stream: format!("s{i}"),
                seq: 0,
            });
        } else {
            t.missing.push(Missing {
                start_us: hms(a),
                end_us: hms(b),
                cause: what.to_string(),
            });
        }
    }
    t
}

const HENAN_TOL: i64 = 3 * S;
const HENAN_HOUR: ClassHour = ClassHour {
    index: 1,
    start_us: T0,
    end_us: T0 + 45 * 60 * S,
};

fn henan_r2() -> Rule {
    crate::compliance::Profile::henan().rule_for(crate::compliance::SessionKind::Practical)
}

/// The verdict at each moment, judged on what was known then.
fn verdicts_at(rule: &Rule, cams: &[CameraTimeline], moments: &[&str]) -> Vec<Verdict> {
    moments
        .iter()
        .map(|m| {
            let now = hms(m);
            judge_hour(&HENAN_HOUR, rule, HENAN_TOL, &known_at(cams, now), now).verdict
        })
        .collect()
}

#[test]
fn docs_example_a_practical_hour_passing_despite_a_drop() {
    let cam = henan_cam(&[
        ("10:00:00", "10:05:00", "rec"),
        ("10:05:00", "10:05:02", "camera_lost"),
        ("10:05:02", "10:12:30", "rec"),
        ("10:12:30", "10:13:10", "camera_lost"),
        ("10:13:10", "10:45:00", "rec"),
    ]);
    let r2 = henan_r2();
    use Verdict::*;
    assert_eq!(
        verdicts_at(&r2, std::slice::from_ref(&cam), &["10:28:09", "10:28:10"]),
        [Pending, Pass]
    );
    let v = judge_hour(&HENAN_HOUR, &r2, HENAN_TOL, &[cam], hms("10:45:06"));
    assert_eq!((v.rule, v.verdict), ("R2", Pass));
    assert_eq!((v.longest_run_us, v.recorded_us), (1910 * S, 2658 * S));
}

#[test]
fn docs_example_b_a_drop_that_breaks_a_run_and_the_warning() {
    let cam = henan_cam(&[
        ("10:00:00", "10:10:00", "rec"),
        ("10:10:00", "10:25:00", "camera_lost"),
        ("10:25:00", "10:38:00", "rec"),
        ("10:38:00", "10:45:00", "stall"),
    ]);
    use Verdict::*;
    let moments = ["10:10:03", "10:29:59", "10:30:00", "10:38:03", "10:38:04"];
    assert_eq!(
        verdicts_at(&henan_r2(), std::slice::from_ref(&cam), &moments),
        [Pending, Pending, AtRisk, AtRisk, Fail]
    );
    let v = judge_hour(&HENAN_HOUR, &henan_r2(), HENAN_TOL, &[cam], hms("10:45:06"));
    assert_eq!(v.verdict, Fail);
    assert_eq!((v.longest_run_us, v.recorded_us), (780 * S, 1380 * S));
    let holes: Vec<_> = v.holes.iter().map(|h| h.cause.as_str()).collect();
    assert_eq!(holes, ["camera_lost", "stall"]);
    // Had the camera not come back at 10:25, the hour fails at 10:30 without a warning first
    // that anyone could see.
    let gone = henan_cam(&[
        ("10:00:00", "10:10:00", "rec"),
        ("10:10:00", "10:45:00", "camera_lost"),
    ]);
    assert_eq!(
        verdicts_at(
            &henan_r2(),
            std::slice::from_ref(&gone),
            &["10:29:59", "10:30:00"]
        ),
        [Pending, AtRisk]
    );
    let now = hms("10:30:00") + 1;
    assert_eq!(
        judge_hour(&HENAN_HOUR, &henan_r2(), HENAN_TOL, &known_at(&[gone], now), now).verdict,
        Fail
    );
}

#[test]
fn docs_example_c_theory_end_to_end() {
    let r1 = crate::compliance::Profile::henan().rule_for(crate::compliance::SessionKind::Theory);
    let cam = |second_drop: bool| {
        let mut items = vec![
            ("10:00:00", "10:20:00", "rec"),
            ("10:20:00", "10:20:01", "camera_lost"),
        ];
        // 1.5 s: from 10:20:00 to 10:20:01.5, in µs below.
        if second_drop {
            items.extend([
                ("10:20:01", "10:31:00", "rec"),
                ("10:31:00", "10:31:40", "camera_lost"),
                ("10:31:40", "10:45:00", "rec"),
            ]);
        } else {
            items.push(("10:20:01", "10:45:00", "rec"));
        }
        let mut t = henan_cam(&items);
        t.recorded[1].start_us += S / 2;
        t.missing[0].end_us += S / 2;
        t
    };
    use Verdict::*;
    assert_eq!(r1.id, "R1");
    assert_eq!(
        verdicts_at(&r1, &[cam(true)], &["10:31:03", "10:31:04", "10:45:06"]),
        [Pending, Fail, Fail]
    );
    assert_eq!(
        verdicts_at(&r1, &[cam(false)], &["10:44:59", "10:45:00"]),
        [Pending, Pass]
    );
}

#[test]
fn docs_example_d_two_cameras() {
    let front = henan_cam(&[
        ("10:00:00", "10:08:00", "rec"),
        ("10:08:00", "10:45:00", "camera_lost"),
    ]);
    let back = |from: &str| {
        let mut t = henan_cam(&[(from, "10:45:00", "rec")]);
        t.camera = "back".into();
        t
    };
    use Verdict::*;
    let both = [front.clone(), back("10:07:30")];
    assert_eq!(
        verdicts_at(&henan_r2(), &both, &["10:14:59", "10:15:00"]),
        [Pending, Pass]
    );
    let late = [front, back("10:08:05")];
    assert_eq!(
        verdicts_at(&henan_r2(), &late, &["10:23:04", "10:23:05"]),
        [Pending, Pass]
    );
}
