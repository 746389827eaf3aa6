//! Table tests and properties of the presence rules (R3, R4, R10, R11).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::compliance::engine::{HourVerdict, RunSpan, Verdict};
use crate::compliance::profile::{Profile, Requirement, Rule};

const S: i64 = 1_000_000;
const MIN: i64 = 60 * S;

/// Yangquan's practical rule: 10 minutes unbroken (R3).
const R3: Rule = Rule {
    id: "R3",
    requirement: Requirement::MinRun(Duration::from_secs(600)),
};
/// Henan's theory rule: end to end (R1).
const R1: Rule = Rule {
    id: "R1",
    requirement: Requirement::FullRecording,
};

fn run(from_min: i64, to_min: i64) -> RunSpan {
    RunSpan {
        start_us: from_min * MIN,
        end_us: to_min * MIN,
        len_us: (to_min - from_min) * MIN,
    }
}

/// A 45-minute hour with these runs, ended, verdict by the longest run against 10 minutes.
fn hour(runs: &[RunSpan], ended: bool) -> HourVerdict {
    let longest = runs.iter().map(|r| r.len_us).max().unwrap_or(0);
    HourVerdict {
        index: 1,
        start_us: 0,
        end_us: 45 * MIN,
        rule: "R3",
        required_run_us: Some(10 * MIN),
        verdict: if longest >= 10 * MIN {
            Verdict::Pass
        } else if ended {
            Verdict::Fail
        } else {
            Verdict::Pending
        },
        longest_run_us: longest,
        recorded_us: runs.iter().map(|r| r.len_us).sum(),
        holes: vec![],
        runs: runs.to_vec(),
        ended,
        presence: None,
    }
}

fn presence(present: &[&str], sightings: &[(&str, i64)]) -> HourPresence {
    HourPresence {
        analysed: true,
        present: present.iter().map(|p| p.to_string()).collect(),
        sightings: sightings.iter().map(|(p, m)| (p.to_string(), m * MIN)).collect(),
    }
}

#[test]
fn visibility_table() {
    struct Case {
        what: &'static str,
        rule: Rule,
        runs: Vec<RunSpan>,
        ended: bool,
        presence: HourPresence,
        want: Visibility,
    }
    let cases = vec![
        Case {
            what: "nothing analysed: judged on recording alone",
            rule: R3,
            runs: vec![run(0, 45)],
            ended: true,
            presence: HourPresence::default(),
            want: Visibility::NotAnalysed,
        },
        Case {
            what: "the hour still runs",
            rule: R3,
            runs: vec![run(0, 20)],
            ended: false,
            presence: presence(&["a"], &[("a", 5)]),
            want: Visibility::Pending,
        },
        Case {
            what: "everyone seen inside the run",
            rule: R3,
            runs: vec![run(0, 45)],
            ended: true,
            presence: presence(&["a", "b"], &[("a", 5), ("b", 40)]),
            want: Visibility::AllVisible { run: run(0, 45) },
        },
        Case {
            what: "b never seen",
            rule: R3,
            runs: vec![run(0, 45)],
            ended: true,
            presence: presence(&["a", "b"], &[("a", 5)]),
            want: Visibility::NotAllVisible {
                missing: vec!["b".into()],
                run: Some(run(0, 45)),
            },
        },
        Case {
            what: "b seen only in a run too short to qualify",
            rule: R3,
            runs: vec![run(0, 5), run(10, 30)],
            ended: true,
            presence: presence(&["a", "b"], &[("b", 2), ("a", 12)]),
            want: Visibility::NotAllVisible {
                missing: vec!["b".into()],
                run: Some(run(10, 30)),
            },
        },
        Case {
            what: "seen while the recording was broken does not count",
            rule: R3,
            runs: vec![run(0, 20), run(30, 45)],
            ended: true,
            presence: presence(&["a"], &[("a", 25)]),
            want: Visibility::NotAllVisible {
                missing: vec!["a".into()],
                run: Some(run(0, 20)),
            },
        },
        Case {
            what: "the second qualifying run shows everyone",
            rule: R3,
            runs: vec![run(0, 15), run(20, 45)],
            ended: true,
            presence: presence(&["a", "b"], &[("a", 1), ("a", 21), ("b", 44)]),
            want: Visibility::AllVisible { run: run(20, 45) },
        },
        Case {
            what: "no qualifying run: nobody was shown",
            rule: R3,
            runs: vec![run(0, 5)],
            ended: true,
            presence: presence(&["a", "b"], &[("a", 1), ("b", 2)]),
            want: Visibility::NotAllVisible {
                missing: vec!["a".into(), "b".into()],
                run: None,
            },
        },
        Case {
            what: "no trainee present: trivially all shown",
            rule: R3,
            runs: vec![run(0, 45)],
            ended: true,
            presence: presence(&[], &[]),
            want: Visibility::AllVisible { run: run(0, 45) },
        },
        Case {
            what: "end-to-end hour: seen anywhere in it",
            rule: R1,
            runs: vec![run(0, 20), run(20, 45)],
            ended: true,
            presence: presence(&["a", "b"], &[("a", 1), ("b", 44)]),
            want: Visibility::AllVisible {
                run: RunSpan {
                    start_us: 0,
                    end_us: 45 * MIN,
                    len_us: 45 * MIN,
                },
            },
        },
        Case {
            what: "a teacher's or an unknown's sighting does not stand in for a trainee",
            rule: R3,
            runs: vec![run(0, 45)],
            ended: true,
            presence: presence(&["a"], &[("teacher", 3), ("x", 4)]),
            want: Visibility::NotAllVisible {
                missing: vec!["a".into()],
                run: Some(run(0, 45)),
            },
        },
    ];
    let mut failures = Vec::new();
    for c in cases {
        let got = visibility(&hour(&c.runs, c.ended), &c.rule, &c.presence);
        if got != c.want {
            failures.push(format!("{}: got {got:?}, want {:?}", c.what, c.want));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn r3_fails_an_hour_that_did_not_show_everyone_under_yangquan_only() {
    let ended = hour(&[run(0, 45)], true);
    let missed = Visibility::NotAllVisible {
        missing: vec!["b".into()],
        run: Some(run(0, 45)),
    };
    let yangquan = Profile::shanxi_yangquan();
    let v = apply_r3(ended.clone(), &yangquan, &missed);
    assert_eq!((v.verdict, v.rule), (Verdict::Fail, "R3"));

    // Henan does not require it per hour (R4 counts such hours per class instead).
    let v = apply_r3(ended.clone(), &Profile::henan(), &missed);
    assert_eq!(v.verdict, Verdict::Pass);

    // Nothing analysed: judged on recording alone.
    let v = apply_r3(ended.clone(), &yangquan, &Visibility::NotAnalysed);
    assert_eq!(v.verdict, Verdict::Pass);

    // A pass while the hour runs waits for the end.
    let running = hour(&[run(0, 20)], false);
    assert_eq!(running.verdict, Verdict::Pass);
    let v = apply_r3(running, &yangquan, &Visibility::Pending);
    assert_eq!(v.verdict, Verdict::Pending);

    // A recording fail stays a fail by its own rule.
    let mut failed = hour(&[run(0, 5)], true);
    failed.rule = "R2";
    let v = apply_r3(failed, &yangquan, &missed);
    assert_eq!((v.verdict, v.rule), (Verdict::Fail, "R2"));
}

#[test]
fn r4_warns_one_hour_before_the_limit_and_fails_at_it() {
    let henan = Profile::henan();
    assert_eq!(henan.max_hours_not_showing_all, Some(3));
    let got: Vec<_> = (0..5).map(|n| class_visibility(n, &henan)).collect();
    assert_eq!(
        got,
        vec![
            Some(ClassVisibility::Fine { hours: 0, limit: 3 }),
            Some(ClassVisibility::Fine { hours: 1, limit: 3 }),
            Some(ClassVisibility::Warning { hours: 2, limit: 3 }),
            Some(ClassVisibility::Failed { hours: 3, limit: 3 }),
            Some(ClassVisibility::Failed { hours: 4, limit: 3 }),
        ]
    );
    assert_eq!(class_visibility(7, &Profile::shanxi_yangquan()), None);
    let mut one = Profile::henan();
    one.max_hours_not_showing_all = Some(1);
    assert_eq!(
        class_visibility(0, &one),
        Some(ClassVisibility::Warning { hours: 0, limit: 1 })
    );
}

#[test]
fn r4_counts_only_decided_hours_that_missed_someone() {
    let missed = Visibility::NotAllVisible {
        missing: vec!["a".into()],
        run: None,
    };
    let all = Visibility::AllVisible { run: run(0, 45) };
    let hours = [
        missed.clone(),
        all,
        Visibility::Pending,
        Visibility::NotAnalysed,
        missed,
    ];
    assert_eq!(hours_not_showing_all(&hours), 2);
}

#[test]
fn r11_teacher_table() {
    let henan = Profile::henan(); // 20 trainees per teacher
    let late = 5 * MIN;
    let start = 100 * MIN;
    let cases = [
        (0, 10, start + MIN, TeacherCheck::Pending),
        (0, 10, start + late, TeacherCheck::NoTeacher),
        (1, 20, start + late, TeacherCheck::Fine),
        (
            1,
            21,
            start + late,
            TeacherCheck::TooFewTeachers {
                teachers: 1,
                trainees: 21,
                per_teacher: 20,
            },
        ),
        (2, 40, start, TeacherCheck::Fine),
    ];
    for (teachers, trainees, now, want) in cases {
        assert_eq!(
            teacher_check(teachers, trainees, &henan, start, late, now),
            want,
            "{teachers} teachers, {trainees} trainees"
        );
    }
    // Yangquan sets no ratio, but a session still needs a teacher.
    let yq = Profile::shanxi_yangquan();
    assert_eq!(
        teacher_check(1, 500, &yq, start, late, start + late),
        TeacherCheck::Fine
    );
    assert_eq!(
        teacher_check(0, 5, &yq, start, late, start + late),
        TeacherCheck::NoTeacher
    );
}

#[test]
fn r10_head_count_and_left_early() {
    assert!(!head_count_exceeds(31, 30, 1));
    assert!(head_count_exceeds(32, 30, 1));

    let last_seen: BTreeMap<String, i64> = [("a", 80), ("b", 60), ("c", 74)]
        .into_iter()
        .map(|(p, m)| (p.to_string(), m * MIN))
        .collect();
    // Session ends at 90 min; 15 minutes unseen before the end is leaving early.
    assert_eq!(left_early(&last_seen, 90 * MIN, 15 * MIN), vec!["b", "c"]);
}

fn arb_presence() -> impl Strategy<Value = (Vec<RunSpan>, HourPresence)> {
    let runs = prop::collection::vec((0i64..45, 1i64..30), 0..4).prop_map(|v| {
        let mut at = 0;
        let mut runs = Vec::new();
        for (pause, len) in v {
            let start = at + pause;
            let end = (start + len).min(45);
            if start >= 45 {
                break;
            }
            runs.push(run(start, end));
            at = end + 1;
        }
        runs
    });
    let present = prop::collection::btree_set(0u8..6, 0..6);
    let sightings = prop::collection::vec((0u8..8, 0i64..45 * 60), 0..30);
    (runs, present, sightings).prop_map(|(runs, present, sightings)| {
        let p = HourPresence {
            analysed: true,
            present: present.iter().map(|n| format!("p{n}")).collect(),
            sightings: sightings
                .into_iter()
                .map(|(n, s)| (format!("p{n}"), s * S))
                .collect(),
        };
        (runs, p)
    })
}

proptest! {
    /// More sightings never make an hour show fewer trainees; the R3 verdict never improves on
    /// the recording verdict.
    #[test]
    fn sightings_only_help_and_r3_only_tightens(
        (runs, p) in arb_presence(),
        extra in prop::collection::vec((0u8..8, 0i64..45 * 60), 0..10),
    ) {
        let h = hour(&runs, true);
        let before = visibility(&h, &R3, &p);
        let mut more = p.clone();
        more.sightings.extend(extra.into_iter().map(|(n, s)| (format!("p{n}"), s * S)));
        let after = visibility(&h, &R3, &more);
        if before.all_visible() == Some(true) {
            prop_assert_eq!(after.all_visible(), Some(true));
        }
        let missing = |v: &Visibility| match v {
            Visibility::NotAllVisible { missing, .. } => missing.len(),
            _ => 0,
        };
        prop_assert!(missing(&after) <= missing(&before));

        let judged = apply_r3(h.clone(), &Profile::shanxi_yangquan(), &after);
        prop_assert!(judged.verdict.rank() <= h.verdict.rank());
        if judged.verdict == Verdict::Pass {
            // Every present trainee was seen inside one qualifying run.
            let Visibility::AllVisible { run } = after else { panic!("pass without all visible") };
            prop_assert!(run.len_us >= 10 * MIN);
            let seen: BTreeSet<&String> = more.sightings.iter()
                .filter(|(_, t)| (run.start_us..=run.end_us).contains(t))
                .map(|(p, _)| p)
                .collect();
            prop_assert!(more.present.iter().all(|p| seen.contains(p)));
        }
    }
}
