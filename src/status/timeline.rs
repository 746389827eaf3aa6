//! A class hour drawn as a timeline bar (SVG): recorded runs, holes coloured by cause, the part
//! still to come, the verdict and the rule that decided it. Used by the status page and by
//! `classproof report --svg` (an inspector's report). Pure: no I/O, no clock.

use std::fmt::Write as _;

use super::config::Language;
use super::page::esc;
use crate::compliance::{HourVerdict, Verdict};

/// Colour of a recorded run.
pub const RECORDED: &str = "#2e7d32";
/// Colour of the part of the hour still to come.
pub const FUTURE: &str = "#e0e0e0";

/// Colour of a hole by its (first) cause.
pub fn cause_colour(cause: &str) -> &'static str {
    match cause.split(',').next().unwrap_or("") {
        "camera_lost" => "#c62828",
        "stall" => "#ef6c00",
        "daemon_down" => "#6a1b9a",
        "disk_full" | "disk_error" => "#4e342e",
        "clock_jump" | "clock_step" => "#1565c0",
        "stream_error" => "#ad1457",
        "damaged" => "#880e4f",
        _ => "#757575", // unrecorded
    }
}

/// A cause in the reader's language.
pub fn cause_text(cause: &str, lang: Language) -> String {
    cause
        .split(',')
        .map(|c| {
            let zh = match c {
                "camera_lost" => "摄像头断线",
                "stall" => "画面停滞",
                "daemon_down" => "系统未运行",
                "disk_full" => "磁盘已满",
                "disk_error" => "磁盘错误",
                "clock_jump" => "时钟跳变",
                "clock_step" => "系统时钟调整",
                "stream_error" => "视频流错误",
                "damaged" => "录像损坏",
                "unrecorded" => "无录像",
                other => other,
            };
            match lang {
                Language::ZhCn => zh.to_string(),
                Language::En => c.replace('_', " "),
            }
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// A verdict in the reader's language.
pub fn verdict_text(v: Verdict, lang: Language) -> &'static str {
    match (v, lang) {
        (Verdict::Pass, Language::ZhCn) => "合格",
        (Verdict::Fail, Language::ZhCn) => "不合格",
        (Verdict::Pending, Language::ZhCn) => "进行中",
        (Verdict::AtRisk, Language::ZhCn) => "有风险",
        (Verdict::Pass, Language::En) => "pass",
        (Verdict::Fail, Language::En) => "fail",
        (Verdict::Pending, Language::En) => "pending",
        (Verdict::AtRisk, Language::En) => "at risk",
    }
}

pub fn verdict_colour(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "#2e7d32",
        Verdict::Fail => "#c62828",
        Verdict::Pending => "#546e7a",
        Verdict::AtRisk => "#ef6c00",
    }
}

/// "第2学时" / "class hour 2".
pub fn hour_name(index: u32, lang: Language) -> String {
    match lang {
        Language::ZhCn => format!("第{index}学时"),
        Language::En => format!("class hour {index}"),
    }
}

/// Seconds as "12分05秒" / "12m05s".
pub fn duration_text(us: i64, lang: Language) -> String {
    let s = (us.max(0) as f64 / 1e6).round() as i64;
    match lang {
        Language::ZhCn if s >= 60 => format!("{}分{:02}秒", s / 60, s % 60),
        Language::ZhCn => format!("{s}秒"),
        Language::En if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        Language::En => format!("{s}s"),
    }
}

/// The pieces of the bar: (from_us, to_us, colour, title).
fn pieces(h: &HourVerdict, now_us: i64, lang: Language) -> Vec<(i64, i64, &'static str, String)> {
    let known_to = now_us.clamp(h.start_us, h.end_us);
    let mut out = Vec::new();
    let mut at = h.start_us;
    let mut holes: Vec<_> = h.holes.iter().collect();
    holes.sort_by_key(|x| x.start_us);
    let recorded = match lang {
        Language::ZhCn => "连续录像",
        Language::En => "recorded",
    };
    for hole in holes {
        let (a, b) = (hole.start_us.max(h.start_us), hole.end_us.min(known_to));
        if a > at {
            out.push((
                at,
                a,
                RECORDED,
                format!("{recorded} {}", duration_text(a - at, lang)),
            ));
        }
        if b > a {
            let tol = if hole.breaks_run {
                ""
            } else {
                match lang {
                    Language::ZhCn => "（容差内）",
                    Language::En => " (within tolerance)",
                }
            };
            out.push((
                a,
                b,
                cause_colour(&hole.cause),
                format!(
                    "{} {}{tol}",
                    cause_text(&hole.cause, lang),
                    duration_text(b - a, lang)
                ),
            ));
        }
        at = at.max(b);
    }
    if known_to > at {
        out.push((
            at,
            known_to,
            RECORDED,
            format!("{recorded} {}", duration_text(known_to - at, lang)),
        ));
    }
    if h.end_us > known_to {
        let left = match lang {
            Language::ZhCn => "尚未开始",
            Language::En => "still to come",
        };
        out.push((known_to, h.end_us, FUTURE, left.to_string()));
    }
    out
}

/// The bar alone as `<rect>`s in a `width` × `height` box at (`x`, `y`).
#[allow(clippy::too_many_arguments)]
pub fn bar(
    out: &mut String,
    h: &HourVerdict,
    now_us: i64,
    lang: Language,
    x: f64,
    y: f64,
    width: f64,
    height: f64,
) {
    let span = (h.end_us - h.start_us).max(1) as f64;
    for (a, b, colour, title) in pieces(h, now_us, lang) {
        let x0 = x + (a - h.start_us) as f64 / span * width;
        let w = ((b - a) as f64 / span * width).max(0.5);
        let _ = write!(
            out,
            "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{height:.1}\" fill=\"{colour}\"><title>{}</title></rect>",
            esc(&title)
        );
    }
    let _ = write!(
        out,
        "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{height:.1}\" fill=\"none\" stroke=\"#424242\" stroke-width=\"0.5\"/>"
    );
}

/// One class hour as an inline SVG of its own (the page).
pub fn hour_svg(h: &HourVerdict, now_us: i64, lang: Language) -> String {
    let mut s = String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"bar\" viewBox=\"0 0 600 18\" preserveAspectRatio=\"none\" width=\"100%\" height=\"18\">",
    );
    bar(&mut s, h, now_us, lang, 0.0, 0.0, 600.0, 18.0);
    s.push_str("</svg>");
    s
}

/// The line of text beside a bar: verdict, rule, longest run against what the rule needs.
pub fn hour_caption(h: &HourVerdict, lang: Language) -> String {
    let needs = h.required_run_us.map(|u| duration_text(u, lang));
    match lang {
        Language::ZhCn => format!(
            "{} · 依据 {} · 最长连续录像 {}{}",
            verdict_text(h.verdict, lang),
            h.rule,
            duration_text(h.longest_run_us, lang),
            needs.map_or("（要求全程录像）".to_string(), |n| format!(
                "（要求 {n}）"
            ))
        ),
        Language::En => format!(
            "{} · rule {} · longest run {}{}",
            verdict_text(h.verdict, lang),
            h.rule,
            duration_text(h.longest_run_us, lang),
            needs.map_or(" (needs end-to-end recording)".to_string(), |n| format!(
                " (needs {n})"
            ))
        ),
    }
}

/// A legend of the colours used.
pub fn legend(lang: Language) -> Vec<(&'static str, String)> {
    let mut v = vec![(
        RECORDED,
        match lang {
            Language::ZhCn => "连续录像".to_string(),
            Language::En => "recorded".to_string(),
        },
    )];
    for c in [
        "camera_lost",
        "stall",
        "daemon_down",
        "disk_full",
        "clock_jump",
        "damaged",
        "unrecorded",
    ] {
        v.push((cause_colour(c), cause_text(c, lang)));
    }
    v.push((
        FUTURE,
        match lang {
            Language::ZhCn => "尚未开始".to_string(),
            Language::En => "still to come".to_string(),
        },
    ));
    v
}

/// A whole session as a standalone SVG document: title, one row per class hour (name and
/// times, the bar, the caption), the legend. `time` formats µs as local HH:MM:SS.
pub fn session_svg(
    title: &str,
    subtitle: &str,
    hours: &[HourVerdict],
    now_us: i64,
    lang: Language,
    time: &dyn Fn(i64) -> String,
) -> String {
    let row = 46.0;
    let top = 56.0;
    let legend_rows = 1.0;
    let height = top + row * hours.len() as f64 + 30.0 * legend_rows + 10.0;
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"{height:.0}\" viewBox=\"0 0 900 {height:.0}\" font-family=\"'Noto Sans CJK SC','WenQuanYi Micro Hei','Microsoft YaHei',sans-serif\" font-size=\"13\">\n<rect width=\"900\" height=\"{height:.0}\" fill=\"#ffffff\"/>\n<text x=\"16\" y=\"24\" font-size=\"17\" font-weight=\"bold\">{}</text>\n<text x=\"16\" y=\"44\" fill=\"#555\">{}</text>\n",
        esc(title),
        esc(subtitle)
    );
    for (i, h) in hours.iter().enumerate() {
        let y = top + row * i as f64;
        let _ = writeln!(
            s,
            "<g class=\"hour\" data-index=\"{}\" data-verdict=\"{}\" data-rule=\"{}\"><text x=\"16\" y=\"{:.0}\">{} {}–{}</text>",
            h.index,
            h.verdict.as_str(),
            h.rule,
            y + 14.0,
            esc(&hour_name(h.index, lang)),
            time(h.start_us),
            time(h.end_us)
        );
        bar(&mut s, h, now_us, lang, 200.0, y + 2.0, 680.0, 16.0);
        let _ = writeln!(
            s,
            "<text x=\"200\" y=\"{:.0}\" fill=\"{}\">{}</text></g>",
            y + 34.0,
            verdict_colour(h.verdict),
            esc(&hour_caption(h, lang))
        );
    }
    let mut x = 16.0;
    let y = top + row * hours.len() as f64 + 8.0;
    for (colour, text) in legend(lang) {
        let _ = write!(
            s,
            "<rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{:.0}\" y=\"{:.0}\" font-size=\"11\">{}</text>",
            x + 16.0,
            y + 10.0,
            esc(&text)
        );
        x += 24.0
            + text
                .chars()
                .map(|c| if c.is_ascii() { 6.5 } else { 11.5 })
                .sum::<f64>();
    }
    s.push_str("\n</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::engine::Hole;

    fn hour() -> HourVerdict {
        HourVerdict {
            index: 1,
            start_us: 0,
            end_us: 100_000_000,
            rule: "R2",
            required_run_us: Some(30_000_000),
            verdict: Verdict::Pending,
            longest_run_us: 40_000_000,
            recorded_us: 50_000_000,
            holes: vec![Hole {
                start_us: 40_000_000,
                end_us: 50_000_000,
                cause: "camera_lost".into(),
                breaks_run: true,
            }],
            runs: vec![],
            presence: None,
            ended: false,
        }
    }

    #[test]
    fn the_bar_is_runs_holes_and_what_is_still_to_come_in_order() {
        let p = pieces(&hour(), 60_000_000, Language::En);
        let spans: Vec<(i64, i64, &str)> = p.iter().map(|(a, b, c, _)| (*a, *b, *c)).collect();
        assert_eq!(
            spans,
            vec![
                (0, 40_000_000, RECORDED),
                (40_000_000, 50_000_000, cause_colour("camera_lost")),
                (50_000_000, 60_000_000, RECORDED),
                (60_000_000, 100_000_000, FUTURE),
            ]
        );
        assert!(p[1].3.contains("camera lost 10s"), "{:?}", p[1]);
    }

    #[test]
    fn the_svg_names_each_hour_with_its_verdict_and_rule() {
        let svg = session_svg("s1", "c1", &[hour()], 60_000_000, Language::ZhCn, &|_| {
            "10:00:00".into()
        });
        assert!(svg.contains("第1学时"), "{svg}");
        assert!(svg.contains("依据 R2"), "{svg}");
        assert!(svg.contains("data-verdict=\"pending\""), "{svg}");
        assert!(svg.contains("摄像头断线"), "{svg}");
    }
}
