//! `[[session]]`: scheduled sessions, their class hours, and their occurrences.
//!
//! A session is either *one-off* (its times are RFC 3339 with an offset) or *daily* (its times
//! are local `HH:MM`, in the device's timezone, and it happens every day, or only on the
//! weekdays of its `days` list). An *occurrence* is
//! one concrete happening of a session, named in reports and events:
//! - a one-off session's only occurrence is named by the session id (`s1`);
//! - a daily session's occurrence by the id, `@` and the local date its first class hour
//!   starts on (`demo@2026-11-22`). Session ids cannot contain `@`.
//!
//! Class hours are numbered from 1 in reports and events (第1学时); config key paths count from
//! 0 as TOML arrays do (`session[0].hours[2]` is class hour 3).
//!
//! Nothing here reads the clock: "today" is always handed in.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use crate::compliance::RulesConfig;
use crate::compliance::profile::{Requirement, Rule, SessionKind};
use crate::config::{Config, Problems, Section, is_valid_id};

/// Default length of a class hour where `class_hour` is not given (a 45-minute 课时).
pub const DEFAULT_CLASS_HOUR: Duration = Duration::from_secs(45 * 60);
/// Default break between class hours where `break` is not given.
pub const DEFAULT_BREAK: Duration = Duration::from_secs(10 * 60);
/// Most class hours one session may have.
pub const MAX_CLASS_HOURS: i64 = 100;
/// Longest a daily session may last from its first start to its last end, so that one day's
/// occurrence ends before the next day's begins.
pub const MAX_DAILY_SPAN: Duration = Duration::from_secs(24 * 3600);

const DAY_US: i64 = 86_400_000_000;

/// One class hour of one occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassHour {
    /// 1-based.
    pub index: u32,
    /// µs since the Unix epoch.
    pub start_us: i64,
    pub end_us: i64,
}

impl ClassHour {
    pub fn len(&self) -> Duration {
        Duration::from_micros((self.end_us - self.start_us).max(0) as u64)
    }
}

/// When a session happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Once, at these times (as written, with their offsets).
    Once(Vec<(DateTime<FixedOffset>, DateTime<FixedOffset>)>),
    /// Every day: each class hour as (start, end) offsets from the local midnight of the
    /// occurrence's date (an hour past midnight has an offset of more than a day).
    Daily(Vec<(Duration, Duration)>),
}

/// The days of the week a daily session happens on (`days = ["mon", …]`), by the local date
/// its first class hour starts on. Default: every day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Weekdays(u8);

impl Weekdays {
    /// The names `days` takes, Monday first.
    pub const NAMES: [&'static str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    pub const EVERY_DAY: Weekdays = Weekdays(0x7f);

    fn bit(day: Weekday) -> u8 {
        1 << day.num_days_from_monday()
    }

    pub fn contains(self, day: Weekday) -> bool {
        self.0 & Self::bit(day) != 0
    }

    pub fn is_every_day(self) -> bool {
        self == Self::EVERY_DAY
    }

    /// The days as written in the config, Monday first.
    pub fn names(self) -> Vec<&'static str> {
        (0..7u8)
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| Self::NAMES[i as usize])
            .collect()
    }

    /// Reads a `days` list. On a bad list: which item (`None`: the list itself), the value as
    /// written and what was expected.
    pub fn parse(list: &[String]) -> Result<Weekdays, DaysProblem> {
        if list.is_empty() {
            return Err(DaysProblem {
                item: None,
                value: "[]".into(),
                expected: "at least one day, e.g. [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"] (leave `days` out for every day)".into(),
            });
        }
        let mut bits = 0u8;
        for (i, name) in list.iter().enumerate() {
            let Some(d) = Self::NAMES.iter().position(|n| n == name) else {
                return Err(DaysProblem {
                    item: Some(i),
                    value: format!("{name:?}"),
                    expected: format!("a day of the week: {}", Self::NAMES.join(" | ")),
                });
            };
            if bits & (1 << d) != 0 {
                return Err(DaysProblem {
                    item: Some(i),
                    value: format!("{name:?}"),
                    expected: "each day once".into(),
                });
            }
            bits |= 1 << d;
        }
        Ok(Weekdays(bits))
    }
}

impl Default for Weekdays {
    fn default() -> Self {
        Self::EVERY_DAY
    }
}

/// What is wrong with a `days` list (see [`Weekdays::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaysProblem {
    pub item: Option<usize>,
    pub value: String,
    pub expected: String,
}

/// One `[[session]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Session id, unique in the config; letters, digits, `-`, `_`, `.`, at most 64.
    pub id: String,
    /// The class (班次) it belongs to (R4 counts per class).
    pub class_id: String,
    /// theory | practical | makeup: picks the rule (R1/R3, R2/R3, R13).
    pub kind: SessionKind,
    /// The cameras whose recording counts for it (at least one, each a `[[camera]]` id).
    pub cameras: Vec<String>,
    pub schedule: Schedule,
    /// The weekdays a daily session happens on (every day for a one-off session).
    pub days: Weekdays,
}

/// A concrete happening of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence<'a> {
    pub session: &'a SessionConfig,
    /// `s1` or `demo@2026-11-22`.
    pub name: String,
    /// The local date of a daily session's occurrence; `None` for a one-off session.
    pub date: Option<NaiveDate>,
    pub hours: Vec<ClassHour>,
}

impl Occurrence<'_> {
    pub fn start_us(&self) -> i64 {
        self.hours.first().map_or(0, |h| h.start_us)
    }

    pub fn end_us(&self) -> i64 {
        self.hours.last().map_or(0, |h| h.end_us)
    }
}

/// Splits an occurrence name: `demo@2026-11-22` → (`demo`, that date); `s1` → (`s1`, None).
/// `None` if the part after `@` is not a date.
pub fn parse_occurrence_name(name: &str) -> Option<(&str, Option<NaiveDate>)> {
    match name.split_once('@') {
        None => Some((name, None)),
        Some((id, date)) => Some((id, Some(NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?))),
    }
}

/// The time span and cameras of one occurrence of a session: from the start of its first class
/// hour to the end of its last. `session_id` may name the occurrence (`demo@2026-11-22`);
/// otherwise `date` (local) picks the occurrence of a daily session. A one-off session ignores
/// `date`. `None` if there is no such session, or for a daily session without a date.
pub fn session_span(
    config: &Config,
    session_id: &str,
    date: Option<NaiveDate>,
) -> Option<(DateTime<Utc>, DateTime<Utc>, Vec<String>)> {
    let (id, named_date) = parse_occurrence_name(session_id)?;
    let session = config.sessions.iter().find(|s| s.id == id)?;
    let occ = session.occurrence(named_date.or(date), config.device.timezone)?;
    Some((
        crate::clock::from_us(occ.start_us()),
        crate::clock::from_us(occ.end_us()),
        session.cameras.clone(),
    ))
}

/// Local midnight of `date` plus `offset`, as µs since the epoch. In a timezone with daylight
/// saving, a local time that does not exist is taken an hour later, an ambiguous one the
/// first time it happens.
fn local_us(tz: Tz, date: NaiveDate, offset: Duration) -> Option<i64> {
    let midnight = date.and_time(NaiveTime::MIN);
    let local = midnight + chrono::TimeDelta::from_std(offset).ok()?;
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + chrono::TimeDelta::hours(1)))
                .earliest()
        })
        .map(|t| t.timestamp_micros())
}

impl SessionConfig {
    pub fn is_daily(&self) -> bool {
        matches!(self.schedule, Schedule::Daily(_))
    }

    /// The rule its class hours are judged by.
    pub fn rule(&self, rules: &RulesConfig) -> Rule {
        rules.profile.rule_for(self.kind)
    }

    /// Whether a daily session happens on `date` (local): its weekday is one of `days`. A
    /// one-off session "happens" on any date asked (it has its one occurrence).
    pub fn happens_on(&self, date: NaiveDate) -> bool {
        !self.is_daily() || self.days.contains(date.weekday())
    }

    /// The occurrence on `date` (local) of a daily session; the only occurrence of a one-off
    /// session (whatever `date` says). `None` for a daily session without a date, or on a day
    /// its `days` leave out.
    pub fn occurrence(&self, date: Option<NaiveDate>, tz: Tz) -> Option<Occurrence<'_>> {
        match &self.schedule {
            Schedule::Once(hours) => Some(Occurrence {
                session: self,
                name: self.id.clone(),
                date: None,
                hours: hours
                    .iter()
                    .enumerate()
                    .map(|(i, (a, b))| ClassHour {
                        index: i as u32 + 1,
                        start_us: a.timestamp_micros(),
                        end_us: b.timestamp_micros(),
                    })
                    .collect(),
            }),
            Schedule::Daily(hours) => {
                let date = date.filter(|d| self.happens_on(*d))?;
                let hours = hours
                    .iter()
                    .enumerate()
                    .map(|(i, (a, b))| {
                        Some(ClassHour {
                            index: i as u32 + 1,
                            start_us: local_us(tz, date, *a)?,
                            end_us: local_us(tz, date, *b)?,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Occurrence {
                    session: self,
                    name: format!("{}@{}", self.id, date.format("%Y-%m-%d")),
                    date: Some(date),
                    hours,
                })
            }
        }
    }

    /// The occurrences whose span overlaps `[from_us, to_us)`, in time order.
    pub fn occurrences_between(&self, from_us: i64, to_us: i64, tz: Tz) -> Vec<Occurrence<'_>> {
        let overlaps = |o: &Occurrence| o.start_us() < to_us && o.end_us() > from_us;
        match &self.schedule {
            Schedule::Once(_) => self.occurrence(None, tz).into_iter().filter(overlaps).collect(),
            Schedule::Daily(_) => {
                // An occurrence lasts at most a day, so the one that started the day before
                // `from` may still be running (one more day for hours given past midnight).
                let first = local_date(from_us.saturating_sub(DAY_US), tz) - Days::new(1);
                let last = local_date(to_us, tz);
                first
                    .iter_days()
                    .take_while(|d| *d <= last)
                    .filter_map(|d| self.occurrence(Some(d), tz))
                    .filter(overlaps)
                    .collect()
            }
        }
    }

    /// The occurrence starting on local `date`, if any (for `report --date`).
    pub fn occurrence_on(&self, date: NaiveDate, tz: Tz) -> Option<Occurrence<'_>> {
        let occ = self.occurrence(Some(date), tz)?;
        let starts_on = crate::clock::from_us(occ.start_us())
            .with_timezone(&tz)
            .date_naive();
        (occ.date.is_some() || starts_on == date).then_some(occ)
    }

    pub fn read(
        s: &Section,
        p: &mut Problems,
        rules: &RulesConfig,
        cameras: &[&str],
    ) -> Option<SessionConfig> {
        let id = s.string(p, "id");
        let id = s.required(p, "id", id, "a session id, e.g. \"s1\"");
        let id = id.filter(|id| valid_id(s, p, "id", id));
        let class_id = s.string(p, "class_id");
        let class_id = s.required(p, "class_id", class_id, "the class (班次) id, e.g. \"c1\"");
        let class_id = class_id.filter(|c| valid_id(s, p, "class_id", c));
        let kind = s.choice(p, "kind", &SessionKind::NAMES);
        let kind = s
            .required(p, "kind", kind, "theory | practical | makeup")
            .and_then(|k| SessionKind::parse(&k));
        let session_cameras = read_cameras(s, p, cameras);
        let schedule = read_schedule(s, p);
        let days = read_days(s, p, schedule.as_ref());
        // Judge the hours even when other keys are wrong, so one run lists every problem.
        if let (Some(kind), Some(schedule)) = (kind, &schedule) {
            let shown_id = id.as_deref().unwrap_or(s.path_str());
            check_against_profile(s, p, rules, shown_id, kind, schedule);
        }
        Some(SessionConfig {
            id: id?,
            class_id: class_id?,
            kind: kind?,
            cameras: session_cameras?,
            schedule: schedule?,
            days: days?,
        })
    }

    pub fn summary(&self) -> String {
        let mut s = format!(
            "{:<10} class {} {} cameras={} ",
            self.id,
            self.class_id,
            self.kind.as_str(),
            self.cameras.join(",")
        );
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        match &self.schedule {
            Schedule::Once(h) => {
                let _ = write!(s, "once from {}", h[0].0.to_rfc3339());
                let _ = write!(s, ", {} class hour(s)", h.len());
                if let Some((a, b)) = h.first() {
                    let _ = write!(s, " of {}", fmt((*b - *a).to_std().unwrap_or_default()));
                }
            }
            Schedule::Daily(h) => {
                if self.days.is_every_day() {
                    let _ = write!(s, "daily from {}", hhmm(h[0].0));
                } else {
                    let _ = write!(s, "on {} from {}", self.days.names().join(","), hhmm(h[0].0));
                }
                let _ = write!(s, ", {} class hour(s) of {}", h.len(), fmt(h[0].1 - h[0].0));
            }
        }
        s
    }
}

/// R5 and the rule's minimum run, checked on each class hour.
fn check_against_profile(
    s: &Section,
    p: &mut Problems,
    rules: &RulesConfig,
    id: &str,
    kind: SessionKind,
    schedule: &Schedule,
) {
    let profile = &rules.profile;
    let rule = profile.rule_for(kind);
    let lens: Vec<Duration> = match schedule {
        Schedule::Once(h) => h
            .iter()
            .map(|(a, b)| (*b - *a).to_std().unwrap_or_default())
            .collect(),
        Schedule::Daily(h) => h.iter().map(|(a, b)| b.saturating_sub(*a)).collect(),
    };
    let explicit = s.raw_table().contains_key("hours");
    let fmt = |d: Duration| humantime::format_duration(d).to_string();
    for (i, len) in lens.iter().enumerate() {
        let which = if explicit {
            format!("class hour {} of session {id:?} lasts", i + 1)
        } else {
            format!("each class hour of session {id:?} lasts")
        };
        let (key, value) = if explicit {
            (
                format!("{}[{i}]", s.key_path("hours")),
                Some(hour_text(schedule, i)),
            )
        } else {
            (s.key_path("class_hour"), Some(format!("{:?}", fmt(*len))))
        };
        let mut problem = None;
        if *len < profile.min_class_hour {
            problem = Some(format!(
                "a class hour of at least {} (R5, profile {}); {which} {}",
                fmt(profile.min_class_hour),
                profile.name,
                fmt(*len)
            ));
        } else if let Requirement::MinRun(need) = rule.requirement
            && *len < need
        {
            problem = Some(format!(
                "a class hour of at least the {} unbroken run {} needs; {which} {} and could never pass",
                fmt(need),
                rule.id,
                fmt(*len)
            ));
        }
        if let Some(expected) = problem {
            p.push(key, value, expected);
            if !explicit {
                // Every generated hour has the same length: one problem is enough.
                break;
            }
        }
    }
}

/// A class hour as written, for messages: `{ start = "…", end = "…" }`.
fn hour_text(schedule: &Schedule, i: usize) -> String {
    let (a, b) = match schedule {
        Schedule::Once(h) => (h[i].0.to_rfc3339(), h[i].1.to_rfc3339()),
        Schedule::Daily(h) => (hhmm(h[i].0), hhmm(h[i].1)),
    };
    format!("{{ start = \"{a}\", end = \"{b}\" }}")
}

/// `HH:MM` (or `HH:MM:SS`) of an offset from midnight; `+1d` past midnight.
fn hhmm(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let mut s = format!("{:02}:{:02}", rest / 3600, rest % 3600 / 60);
    if rest % 60 != 0 {
        s += &format!(":{:02}", rest % 60);
    }
    if days > 0 {
        s += &format!(" +{days}d");
    }
    s
}

fn valid_id(s: &Section, p: &mut Problems, key: &str, id: &str) -> bool {
    let ok = is_valid_id(id, 64);
    if !ok {
        p.push(
            s.key_path(key),
            Some(format!("{id:?}")),
            "1 to 64 letters, digits, '-', '_' or '.'",
        );
    }
    ok
}

fn read_cameras(s: &Section, p: &mut Problems, known: &[&str]) -> Option<Vec<String>> {
    let list = s.strings(p, "cameras");
    let list = s.required(
        p,
        "cameras",
        list,
        "the cameras whose recording counts for this session, e.g. [\"front\"]",
    )?;
    if list.is_empty() {
        p.push(s.key_path("cameras"), Some("[]".into()), "at least one camera id");
        return None;
    }
    let mut ok = true;
    for (i, c) in list.iter().enumerate() {
        if !known.contains(&c.as_str()) {
            ok = false;
            let expected = if known.is_empty() {
                "the id of a [[camera]] (none are configured)".to_string()
            } else {
                format!("the id of a [[camera]]: one of {}", known.join(" | "))
            };
            p.push(
                format!("{}[{i}]", s.key_path("cameras")),
                Some(format!("{c:?}")),
                expected,
            );
        } else if list[..i].contains(c) {
            ok = false;
            p.push(
                format!("{}[{i}]", s.key_path("cameras")),
                Some(format!("{c:?}")),
                "each camera once",
            );
        }
    }
    ok.then_some(list)
}

/// `days`: only for a daily session; default every day.
fn read_days(s: &Section, p: &mut Problems, schedule: Option<&Schedule>) -> Option<Weekdays> {
    let Some(raw) = s.raw("days") else {
        return Some(Weekdays::EVERY_DAY);
    };
    let list = raw.as_array().and_then(|a| {
        a.iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
    });
    let Some(list) = list else {
        p.push(
            s.key_path("days"),
            Some(crate::config::reader::show(raw)),
            format!(
                "a list of days of the week ({}), e.g. [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]",
                Weekdays::NAMES.join(" | ")
            ),
        );
        return None;
    };
    if matches!(schedule, Some(Schedule::Once(_))) {
        p.push(
            s.key_path("days"),
            Some(format!("{list:?}")),
            "`days` only on a daily session (times \"HH:MM\"); a one-off session happens once",
        );
        return None;
    }
    match Weekdays::parse(&list) {
        Ok(days) => Some(days),
        Err(e) => {
            let key = match e.item {
                Some(i) => format!("{}[{i}]", s.key_path("days")),
                None => s.key_path("days"),
            };
            p.push(key, Some(e.value), e.expected);
            None
        }
    }
}

/// A time as written in the config: absolute (RFC 3339) or a local time of day.
#[derive(Debug, Clone, Copy)]
enum TimeSpec {
    At(DateTime<FixedOffset>),
    Daily(Duration),
}

const TIME_EXPECTED: &str =
    "RFC 3339 with an offset (\"2026-11-22T10:00:00+08:00\", once) or a local time \"HH:MM\" (every day)";

fn parse_time(text: &str) -> Option<TimeSpec> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(TimeSpec::At(t));
    }
    // Only HH:MM and HH:MM:SS, two digits each: "9:5" is more likely a typo than a time.
    let shape_ok = matches!(text.len(), 5 | 8)
        && text
            .bytes()
            .enumerate()
            .all(|(i, b)| if i % 3 == 2 { b == b':' } else { b.is_ascii_digit() });
    if !shape_ok {
        return None;
    }
    let t = NaiveTime::parse_from_str(text, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .ok()?;
    let since_midnight = t - NaiveTime::MIN;
    Some(TimeSpec::Daily(since_midnight.to_std().ok()?))
}

fn read_time(s: &Section, p: &mut Problems, key: &str) -> Option<TimeSpec> {
    let text = s.string(p, key)?;
    let t = parse_time(&text);
    if t.is_none() {
        p.push(s.key_path(key), Some(format!("{text:?}")), TIME_EXPECTED);
    }
    t
}

fn read_schedule(s: &Section, p: &mut Problems) -> Option<Schedule> {
    if s.has("hours") {
        for key in ["start", "class_hours", "class_hour", "break"] {
            if s.has(key) {
                p.push(
                    s.key_path(key),
                    None,
                    "either `hours = [...]` or `start` with `class_hours`, not both",
                );
            }
        }
        return read_hour_list(s, p);
    }
    let start = read_time(s, p, "start");
    let start = s.required(
        p,
        "start",
        start,
        "when the first class hour starts: \"2026-11-22T10:00:00+08:00\" (once) or \"08:30\" (every day); or give `hours = [...]`",
    );
    let count = s.integer(p, "class_hours", 1, MAX_CLASS_HOURS);
    let count = s.required(p, "class_hours", count, "how many class hours, e.g. 3");
    let secs = Duration::from_secs;
    let len = s
        .duration(p, "class_hour", secs(1), secs(24 * 3600))
        .unwrap_or(DEFAULT_CLASS_HOUR);
    let pause = s
        .duration(p, "break", Duration::ZERO, secs(24 * 3600))
        .unwrap_or(DEFAULT_BREAK);
    let (start, count) = (start?, count? as u32);
    let offsets = (0..count).map(|i| {
        let a = (len + pause) * i;
        (a, a + len)
    });
    match start {
        TimeSpec::At(t0) => Some(Schedule::Once(
            offsets
                .map(|(a, b)| {
                    let d = |x: Duration| chrono::TimeDelta::from_std(x).unwrap_or_default();
                    (t0 + d(a), t0 + d(b))
                })
                .collect(),
        )),
        TimeSpec::Daily(t0) => {
            let hours: Vec<_> = offsets.map(|(a, b)| (t0 + a, t0 + b)).collect();
            let span = hours[hours.len() - 1].1 - hours[0].0;
            if span > MAX_DAILY_SPAN {
                p.push(
                    s.key_path("class_hours"),
                    Some(count.to_string()),
                    format!(
                        "a daily session lasting at most 24h (it would last {}, overlapping the next day's)",
                        humantime::format_duration(span)
                    ),
                );
                return None;
            }
            Some(Schedule::Daily(hours))
        }
    }
}

fn read_hour_list(s: &Section, p: &mut Problems) -> Option<Schedule> {
    let items = s.tables(p, "hours");
    if items.is_empty() {
        p.push(
            s.key_path("hours"),
            None,
            "at least one class hour, e.g. [{ start = \"08:30\", end = \"09:15\" }]",
        );
        return None;
    }
    let mut specs = Vec::new();
    for item in &items {
        let a = read_time(item, p, "start");
        let a = item.required(p, "start", a, TIME_EXPECTED);
        let b = read_time(item, p, "end");
        let b = item.required(p, "end", b, TIME_EXPECTED);
        specs.push(a.zip(b));
    }
    for item in items {
        item.finish(p);
    }
    let specs: Vec<(TimeSpec, TimeSpec)> = specs.into_iter().collect::<Option<_>>()?;
    let key = |i: usize| format!("{}[{i}]", s.key_path("hours"));
    let daily = matches!(specs[0].0, TimeSpec::Daily(_));
    let mut hours: Vec<(i64, i64)> = Vec::new();
    let mut once = Vec::new();
    let mut daily_hours = Vec::new();
    let mut ok = true;
    // Daily times of day roll over to the next day when they go backwards.
    let mut day = Duration::ZERO;
    let mut last_daily_start = Duration::ZERO;
    for (i, (a, b)) in specs.iter().enumerate() {
        let (start, end) = match (a, b) {
            (TimeSpec::At(a), TimeSpec::At(b)) if !daily => {
                once.push((*a, *b));
                (a.timestamp_micros(), b.timestamp_micros())
            }
            (TimeSpec::Daily(a), TimeSpec::Daily(b)) if daily => {
                if i > 0 && *a < last_daily_start {
                    day += Duration::from_secs(86_400);
                }
                last_daily_start = *a;
                let start = day + *a;
                let mut end = day + *b;
                if end <= start {
                    end += Duration::from_secs(86_400);
                }
                daily_hours.push((start, end));
                (start.as_micros() as i64, end.as_micros() as i64)
            }
            _ => {
                p.push(
                    key(i),
                    None,
                    "start and end of the same form as the first class hour's: all RFC 3339 (once) or all \"HH:MM\" (every day)",
                );
                ok = false;
                continue;
            }
        };
        if end <= start {
            p.push(key(i), Some(hour_shown(a, b)), "an end after its start");
            ok = false;
        }
        if let Some(j) = hours.iter().rposition(|&(x, y)| start < y && end > x) {
            p.push(
                key(i),
                Some(hour_shown(a, b)),
                format!(
                    "a class hour that does not overlap another (it overlaps hours[{j}], class hour {})",
                    j + 1
                ),
            );
            ok = false;
        } else if let Some(&(x, _)) = hours.last()
            && start < x
        {
            p.push(
                key(i),
                Some(hour_shown(a, b)),
                format!(
                    "class hours in time order (this one starts before hours[{}])",
                    i - 1
                ),
            );
            ok = false;
        }
        hours.push((start, end));
    }
    if !ok {
        return None;
    }
    if daily {
        let span = Duration::from_micros((hours[hours.len() - 1].1 - hours[0].0) as u64);
        if span > MAX_DAILY_SPAN {
            p.push(
                s.key_path("hours"),
                None,
                format!(
                    "a daily session lasting at most 24h from its first start to its last end (this one lasts {})",
                    humantime::format_duration(span)
                ),
            );
            return None;
        }
        Some(Schedule::Daily(daily_hours))
    } else {
        Some(Schedule::Once(once))
    }
}

fn hour_shown(a: &TimeSpec, b: &TimeSpec) -> String {
    let t = |x: &TimeSpec| match x {
        TimeSpec::At(t) => t.to_rfc3339(),
        TimeSpec::Daily(d) => hhmm(*d),
    };
    format!("{{ start = \"{}\", end = \"{}\" }}", t(a), t(b))
}

/// Local date of a µs time.
pub fn local_date(us: i64, tz: Tz) -> NaiveDate {
    crate::clock::from_us(us).with_timezone(&tz).date_naive()
}

#[cfg(test)]
mod tests;
