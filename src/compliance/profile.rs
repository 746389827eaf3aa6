//! Rule profiles: the named parameter sets of ../shared/RULES.md ("Profiles"), and `[rules]`.

use std::time::Duration;

use crate::config::{Problems, Section};

const MIN: u64 = 60;
const YEAR_DAYS: u64 = 365;

/// Whose documents a profile's rules come from; names the rule ids in verdicts (a `custom`
/// profile keeps the ids of its base).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// 豫人社办〔2025〕60号: R1, R2, R4, R5, R13.
    Henan,
    /// 阳人社规发〔2024〕2号: R3.
    ShanxiYangquan,
}

/// What a session is, as scheduled: it decides which recording rule its class hours meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// 理论教学: R1 (henan, end to end) or R3 (shanxi-yangquan, an unbroken run).
    Theory,
    /// 实操培训: R2 (henan, 15 min unbroken) or R3 (shanxi-yangquan, 10 min unbroken).
    Practical,
    /// 补课: R13, recorded end to end.
    Makeup,
}

impl SessionKind {
    pub const NAMES: [&'static str; 3] = ["theory", "practical", "makeup"];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Theory => "theory",
            SessionKind::Practical => "practical",
            SessionKind::Makeup => "makeup",
        }
    }

    pub fn parse(s: &str) -> Option<SessionKind> {
        match s {
            "theory" => Some(SessionKind::Theory),
            "practical" => Some(SessionKind::Practical),
            "makeup" => Some(SessionKind::Makeup),
            _ => None,
        }
    }
}

/// What one class hour needs from the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Recorded end to end: no hole longer than the continuity tolerance anywhere in the hour.
    FullRecording,
    /// One unbroken run at least this long inside the hour.
    MinRun(Duration),
}

/// The rule a class hour is judged by: its id in ../shared/RULES.md and what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub id: &'static str,
    pub requirement: Requirement,
}

/// The parameters a class hour, a class and the evidence store are judged by.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Name as written in the config (`henan`, `shanxi-yangquan`, `custom`).
    pub name: String,
    /// The province the rules come from (for `custom`: that of its base).
    pub region: Region,
    /// R5: a scheduled class hour shorter than this is rejected when the schedule is loaded.
    pub min_class_hour: Duration,
    /// R1: theory class hours must be recorded end to end.
    pub theory_full_recording: bool,
    /// R3: the unbroken run a theory class hour needs where full recording is not required.
    pub theory_min_run: Duration,
    /// R2/R3: the unbroken run each practical class hour needs.
    pub practical_min_run: Duration,
    /// R13: make-up sessions must be recorded end to end.
    pub makeup_full_recording: bool,
    /// A hole in the recording no longer than this does not break a run.
    pub continuity_tolerance: Duration,
    /// R3: the run must show all present trainees (judged once head counts exist).
    pub run_must_show_all_trainees: bool,
    /// R4: a class fails after this many class hours whose video does not show all trainees.
    pub max_hours_not_showing_all: Option<u32>,
    /// R10: the largest roster of one class.
    pub max_trainees: Option<u32>,
    /// R11: at most this many present trainees per present teacher.
    pub trainees_per_teacher: Option<u32>,
    /// R6: nothing younger than this is ever deleted.
    pub retention: Duration,
}

impl Profile {
    /// Henan, 豫人社办〔2025〕60号.
    pub fn henan() -> Profile {
        Profile {
            name: "henan".into(),
            region: Region::Henan,
            min_class_hour: Duration::from_secs(40 * MIN),
            theory_full_recording: true,
            theory_min_run: Duration::from_secs(15 * MIN),
            practical_min_run: Duration::from_secs(15 * MIN),
            makeup_full_recording: true,
            continuity_tolerance: Duration::from_secs(3),
            run_must_show_all_trainees: false,
            max_hours_not_showing_all: Some(3),
            max_trainees: Some(80),
            trainees_per_teacher: Some(20),
            retention: Duration::from_secs(3 * YEAR_DAYS * 86_400),
        }
    }

    /// Yangquan (Shanxi), 阳人社规发〔2024〕2号.
    pub fn shanxi_yangquan() -> Profile {
        Profile {
            name: "shanxi-yangquan".into(),
            region: Region::ShanxiYangquan,
            min_class_hour: Duration::from_secs(40 * MIN),
            theory_full_recording: false,
            theory_min_run: Duration::from_secs(10 * MIN),
            practical_min_run: Duration::from_secs(10 * MIN),
            makeup_full_recording: true,
            continuity_tolerance: Duration::from_secs(3),
            run_must_show_all_trainees: true,
            max_hours_not_showing_all: None,
            max_trainees: None,
            trainees_per_teacher: None,
            retention: Duration::from_secs(2 * YEAR_DAYS * 86_400),
        }
    }

    /// The rule the class hours of a session of `kind` are judged by.
    pub fn rule_for(&self, kind: SessionKind) -> Rule {
        let min_run = Requirement::MinRun;
        match kind {
            SessionKind::Theory if self.theory_full_recording => Rule {
                id: "R1",
                requirement: Requirement::FullRecording,
            },
            SessionKind::Theory => Rule {
                id: "R3",
                requirement: min_run(self.theory_min_run),
            },
            SessionKind::Practical => Rule {
                id: match self.region {
                    Region::Henan => "R2",
                    Region::ShanxiYangquan => "R3",
                },
                requirement: min_run(self.practical_min_run),
            },
            // R13 asks for the whole make-up session on camera; where a custom profile turns
            // that off, a make-up hour needs what a practical hour needs.
            SessionKind::Makeup => Rule {
                id: "R13",
                requirement: if self.makeup_full_recording {
                    Requirement::FullRecording
                } else {
                    min_run(self.practical_min_run)
                },
            },
        }
    }

    pub fn named(name: &str) -> Option<Profile> {
        match name {
            "henan" => Some(Profile::henan()),
            "shanxi-yangquan" => Some(Profile::shanxi_yangquan()),
            _ => None,
        }
    }
}

/// `[rules]`: the profile and any overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct RulesConfig {
    /// The effective parameters after overrides.
    pub profile: Profile,
    /// For `custom`: the named profile it started from.
    pub base: Option<String>,
    /// Keys that were overridden, for the summary.
    pub overridden: Vec<String>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            profile: Profile::henan(),
            base: None,
            overridden: Vec::new(),
        }
    }
}

const PROFILES: &[&str] = &["henan", "shanxi-yangquan", "custom"];
const BASES: &[&str] = &["henan", "shanxi-yangquan"];

impl RulesConfig {
    pub fn read(s: &Section, p: &mut Problems) -> RulesConfig {
        let name = s.choice(p, "profile", PROFILES).unwrap_or_else(|| "henan".into());
        let base = s.choice(p, "base", BASES);
        if base.is_some() && name != "custom" {
            p.push(s.key_path("base"), None, "only with profile = \"custom\"");
        }
        let mut profile =
            Profile::named(
                base.as_deref()
                    .unwrap_or(if name == "custom" { "henan" } else { &name }),
            )
            .unwrap_or_else(Profile::henan);
        profile.name = name;
        let mut overridden = Vec::new();
        let secs = Duration::from_secs;
        let day = 86_400;
        let mut dur = |key: &str, min: Duration, max: Duration, slot: &mut Duration| {
            if let Some(d) = s.duration(p, key, min, max) {
                *slot = d;
                overridden.push(key.to_string());
            }
        };
        dur(
            "min_class_hour",
            secs(1),
            secs(24 * 3600),
            &mut profile.min_class_hour,
        );
        dur(
            "theory_min_run",
            secs(1),
            secs(24 * 3600),
            &mut profile.theory_min_run,
        );
        dur(
            "practical_min_run",
            secs(1),
            secs(24 * 3600),
            &mut profile.practical_min_run,
        );
        dur(
            "continuity_tolerance",
            Duration::ZERO,
            secs(600),
            &mut profile.continuity_tolerance,
        );
        dur(
            "retention",
            secs(1),
            secs(100 * 365 * day),
            &mut profile.retention,
        );
        let mut flag = |key: &str, slot: &mut bool| {
            if let Some(b) = s.bool(p, key) {
                *slot = b;
                overridden.push(key.to_string());
            }
        };
        flag("theory_full_recording", &mut profile.theory_full_recording);
        flag("makeup_full_recording", &mut profile.makeup_full_recording);
        flag(
            "run_must_show_all_trainees",
            &mut profile.run_must_show_all_trainees,
        );
        // 0 switches a limit off.
        let mut limit = |key: &str, max: i64, slot: &mut Option<u32>| {
            if let Some(n) = s.integer(p, key, 0, max) {
                *slot = (n > 0).then_some(n as u32);
                overridden.push(key.to_string());
            }
        };
        limit(
            "max_hours_not_showing_all",
            1000,
            &mut profile.max_hours_not_showing_all,
        );
        limit("max_trainees", 100_000, &mut profile.max_trainees);
        limit("trainees_per_teacher", 1000, &mut profile.trainees_per_teacher);
        if !overridden.is_empty() && profile.name != "custom" {
            p.push(
                s.key_path("profile"),
                Some(format!("{:?}", profile.name)),
                format!(
                    "\"custom\" (with base = \"{}\") to override {}",
                    profile.name,
                    overridden.join(", ")
                ),
            );
        }
        RulesConfig {
            profile,
            base,
            overridden,
        }
    }

    pub fn summary(&self) -> String {
        let pr = &self.profile;
        let mut s = pr.name.clone();
        if let Some(b) = &self.base {
            s += &format!(" (base {b})");
        }
        s += &format!(
            ": class hour >= {}, practical run >= {}, theory {}, tolerance {}, retention {}",
            humantime::format_duration(pr.min_class_hour),
            humantime::format_duration(pr.practical_min_run),
            if pr.theory_full_recording {
                "end to end".to_string()
            } else {
                format!("run >= {}", humantime::format_duration(pr.theory_min_run))
            },
            humantime::format_duration(pr.continuity_tolerance),
            retention_text(pr.retention),
        );
        s
    }
}

/// Retention in whole days when it is whole days ("1095 days"): humantime would count a year
/// as 365.25 days and print "2years 11months 29days 15h 50m 24s" for three years.
fn retention_text(d: Duration) -> String {
    let secs = d.as_secs();
    if secs.is_multiple_of(86_400) && d.subsec_nanos() == 0 {
        format!("{} days", secs / 86_400)
    } else {
        humantime::format_duration(d).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn rules(src: &str) -> (RulesConfig, Vec<String>) {
        let t: toml::Table = src.parse().unwrap();
        let s = Section::root(&t, Path::new("."));
        let mut p = Problems::default();
        let r = RulesConfig::read(&s, &mut p);
        s.finish(&mut p);
        (r, p.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn named_profiles_follow_rules_md() {
        let h = Profile::henan();
        assert_eq!(h.practical_min_run, Duration::from_secs(900)); // R2
        assert!(h.theory_full_recording); // R1
        assert_eq!(h.min_class_hour, Duration::from_secs(2400)); // R5
        let y = Profile::shanxi_yangquan();
        assert_eq!(y.practical_min_run, Duration::from_secs(600)); // R3
        assert_eq!(y.theory_min_run, Duration::from_secs(600)); // R3
        assert!(h.retention > y.retention); // R6
    }

    #[test]
    fn custom_overrides_a_base() {
        let (r, p) = rules(
            "profile = \"custom\"\nbase = \"henan\"\nmin_class_hour = \"60s\"\npractical_min_run = \"15s\"\ncontinuity_tolerance = \"2s\"\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(r.profile.min_class_hour, Duration::from_secs(60));
        assert_eq!(r.profile.practical_min_run, Duration::from_secs(15));
        assert!(r.profile.theory_full_recording);
        assert!(r.summary().ends_with("retention 1095 days"), "{}", r.summary());
    }

    #[test]
    fn overriding_a_named_profile_is_refused() {
        let (_, p) = rules("profile = \"henan\"\npractical_min_run = \"1m\"\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("\"custom\""), "{p:?}");
    }
}
