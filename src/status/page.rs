//! `/`: the technician's status page. Server-rendered HTML, no external assets (the box may
//! have no internet), refreshing itself every 10 s; Simplified Chinese by default, English on
//! request (`[status] language`, `?lang=en`). Drawn from the same [`Snapshot`] as
//! `/api/status`.

use std::fmt::Write as _;

use super::config::Language;
use super::snapshot::{CameraStatus, Snapshot};
use super::timeline;

/// Seconds between the page's own reloads.
pub const REFRESH_S: u32 = 10;

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The words of the page.
struct Words {
    title: &'static str,
    cameras: &'static str,
    camera: &'static str,
    since: &'static str,
    last_segment: &'static str,
    bitrate: &'static str,
    hours: &'static str,
    no_sessions: &'static str,
    attendance: &'static str,
    alarms: &'static str,
    no_alarms: &'static str,
    disk: &'static str,
    upstream: &'static str,
    jobs: &'static str,
    refresh: &'static str,
    other_lang: &'static str,
    other_code: &'static str,
}

const ZH: Words = Words {
    title: "课堂取证设备状态",
    cameras: "摄像头",
    camera: "摄像头",
    since: "起始",
    last_segment: "最近录像片段",
    bitrate: "码率",
    hours: "今日课时",
    no_sessions: "今日无课程安排",
    attendance: "签到",
    alarms: "告警",
    no_alarms: "无告警",
    disk: "磁盘",
    upstream: "上传",
    jobs: "后台任务",
    refresh: "页面每10秒自动刷新",
    other_lang: "English",
    other_code: "en",
};

const EN: Words = Words {
    title: "Classroom evidence box status",
    cameras: "Cameras",
    camera: "camera",
    since: "since",
    last_segment: "last segment",
    bitrate: "bitrate",
    hours: "Today's class hours",
    no_sessions: "no sessions today",
    attendance: "Check-in",
    alarms: "Alarms",
    no_alarms: "no alarms",
    disk: "Disk",
    upstream: "Upstream",
    jobs: "Jobs",
    refresh: "this page reloads itself every 10 s",
    other_lang: "中文",
    other_code: "zh-CN",
};

fn words(lang: Language) -> &'static Words {
    match lang {
        Language::ZhCn => &ZH,
        Language::En => &EN,
    }
}

/// HH:MM:SS of an RFC 3339 time.
fn hms(t: &str) -> &str {
    t.get(11..19).unwrap_or(t)
}

fn camera_state(c: &CameraStatus, lang: Language) -> (String, &'static str) {
    let zh = lang == Language::ZhCn;
    match c.state {
        "recording" => ((if zh { "录像中" } else { "recording" }).to_string(), "ok"),
        "gap" => (
            format!(
                "{}{}",
                if zh { "中断：" } else { "gap: " },
                timeline::cause_text(c.gap_cause.as_deref().unwrap_or("unrecorded"), lang)
            ),
            "bad",
        ),
        "off" => ((if zh { "不录像" } else { "not recorded" }).to_string(), "idle"),
        _ => ((if zh { "启动中" } else { "starting" }).to_string(), "idle"),
    }
}

fn size(bytes: u64) -> String {
    crate::evidence::disk::show_size(bytes)
}

/// Renders the page.
pub fn render(s: &Snapshot, lang: Language) -> String {
    let w = words(lang);
    let zh = lang == Language::ZhCn;
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · {}</title><style>{CSS}</style></head><body>",
        lang.as_str(),
        esc(w.title),
        esc(&s.device)
    );
    let _ = write!(
        h,
        "<header><h1>{} <span class=\"dev\">{}</span></h1><p class=\"meta\">{} · v{} · {} {:.0} min · <a href=\"?lang={}\">{}</a> · {}</p></header>",
        esc(w.title),
        esc(&s.device),
        esc(&s.time),
        esc(s.version),
        if zh { "已运行" } else { "up" },
        s.uptime_s / 60.0,
        w.other_code,
        w.other_lang,
        w.refresh
    );

    // Cameras.
    let _ = write!(
        h,
        "<section id=\"cameras\"><h2>{}</h2><div class=\"cards\">",
        w.cameras
    );
    for c in &s.cameras {
        let (state, class) = camera_state(c, lang);
        let _ = write!(
            h,
            "<div class=\"card camera\" id=\"camera-{id}\" data-camera=\"{id}\" data-state=\"{st}\">\
             <h3>{} {id}</h3><p class=\"state {class}\">{}</p>",
            w.camera,
            esc(&state),
            id = esc(&c.id),
            st = c.state,
        );
        if c.last_segment.is_some() || c.state == "recording" {
            let _ = write!(
                h,
                "<img class=\"still\" src=\"camera/{id}/still.jpg\" alt=\"{id}\" width=\"320\" height=\"180\">",
                id = esc(&c.id)
            );
        }
        h.push_str("<dl>");
        if let Some(since) = &c.since {
            let _ = write!(h, "<dt>{}</dt><dd>{}</dd>", w.since, esc(since));
        }
        if let Some(l) = &c.last_segment {
            let _ = write!(
                h,
                "<dt>{}</dt><dd>{}–{} {}</dd>",
                w.last_segment,
                esc(hms(&l.start)),
                esc(hms(&l.end)),
                l.bytes.map(size).unwrap_or_default()
            );
        }
        if let Some(b) = c.bitrate_bps {
            let _ = write!(h, "<dt>{}</dt><dd>{:.2} Mbit/s</dd>", w.bitrate, b / 1e6);
        }
        let _ = write!(
            h,
            "<dt>{}</dt><dd>{} · {}</dd></dl></div>",
            if zh { "录像片段" } else { "segments" },
            c.segments,
            size(c.recorded_bytes)
        );
    }
    h.push_str("</div></section>");

    // Class hours.
    let _ = write!(h, "<section id=\"hours\"><h2>{}</h2>", w.hours);
    if s.sessions.is_empty() {
        let _ = write!(h, "<p class=\"none\">{}</p>", w.no_sessions);
    }
    for sess in &s.sessions {
        let kind = match (sess.kind, zh) {
            ("theory", true) => "理论课",
            ("practical", true) => "实操课",
            ("makeup", true) => "补课",
            (k, _) => k,
        };
        let _ = write!(
            h,
            "<div class=\"session\" id=\"session-{id}\" data-session=\"{id}\"><h3>{} · {} {} · {}</h3>",
            esc(&sess.session),
            if zh { "班次" } else { "class" },
            esc(&sess.class_id),
            esc(kind),
            id = esc(&sess.session_id),
        );
        for hour in &sess.hours {
            let start = (hour.index as usize)
                .checked_sub(1)
                .and_then(|i| sess.class_hours.get(i));
            let t = |k: &str| {
                start
                    .and_then(|v| v[k].as_str())
                    .map(|x| hms(x).to_string())
                    .unwrap_or_default()
            };
            let _ = write!(
                h,
                "<div class=\"hour\" id=\"hour-{sid}-{i}\" data-index=\"{i}\" data-verdict=\"{v}\" data-rule=\"{r}\">\
                 <div class=\"label\">{} <span class=\"t\">{}–{}</span></div>{}\
                 <div class=\"caption\" style=\"color:{}\">{}</div></div>",
                esc(&timeline::hour_name(hour.index, lang)),
                t("start"),
                t("end"),
                timeline::hour_svg(hour, s.time_us, lang),
                timeline::verdict_colour(hour.verdict),
                esc(&timeline::hour_caption(hour, lang)),
                sid = esc(&sess.session_id),
                i = hour.index,
                v = hour.verdict.as_str(),
                r = hour.rule,
            );
        }
        h.push_str("</div>");
    }
    h.push_str("<p class=\"legend\">");
    for (colour, text) in timeline::legend(lang) {
        let _ = write!(
            h,
            "<span><i style=\"background:{colour}\"></i>{}</span>",
            esc(&text)
        );
    }
    h.push_str("</p></section>");

    // Check-in.
    let _ = write!(h, "<section id=\"attendance\"><h2>{}</h2><p>", w.attendance);
    let label = |k: &'static str| -> &'static str {
        match (k, zh) {
            ("check_in", true) => "签到",
            ("check_out", true) => "签退",
            ("absent", true) => "缺勤",
            ("unexpected_person", true) => "非本班人员",
            ("unknown_face", true) => "未登记人脸",
            ("spoof_attempt", true) => "疑似假体攻击",
            (k, _) => k,
        }
    };
    for k in super::snapshot::ATTENDANCE_KINDS {
        let n = s.attendance.today.get(*k).copied().unwrap_or(0);
        let _ = write!(
            h,
            "<span class=\"count\" data-kind=\"{k}\">{} <b>{n}</b></span>",
            esc(label(k))
        );
    }
    h.push_str("</p></section>");

    // Alarms.
    let _ = write!(h, "<section id=\"alarms\"><h2>{}</h2>", w.alarms);
    if s.alarms.is_empty() {
        let _ = write!(h, "<p class=\"none\">{}</p>", w.no_alarms);
    } else {
        h.push_str("<ul>");
        for a in &s.alarms {
            let detail = a
                .detail
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| *k != "alarm" && *k != "state")
                        .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let _ = write!(
                h,
                "<li class=\"alarm\" data-alarm=\"{}\"><b>{}</b> {} <span class=\"t\">{}</span></li>",
                esc(&a.alarm),
                esc(&a.alarm),
                esc(&detail),
                esc(&a.since)
            );
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>");

    // Disk and upstream.
    let _ = write!(h, "<section id=\"disk\"><h2>{}</h2><p>", w.disk);
    if let (Some(free), Some(cap)) = (s.disk.available_bytes, s.disk.capacity_bytes) {
        let _ = write!(
            h,
            "{} {} / {} · ",
            if zh { "可用" } else { "free" },
            size(free),
            size(cap)
        );
    }
    let retention = s.disk.retention_days;
    match s.disk.days_left {
        Some(d) => {
            let class = if d < retention { "bad" } else { "ok" };
            let _ = write!(
                h,
                "<span class=\"{class}\" id=\"days-left\">{}</span>",
                if zh {
                    format!("按近期写入速度可再录 {d:.0} 天，保存期要求 {retention:.0} 天（R6）")
                } else {
                    format!("{d:.0} days left at the recent rate, retention {retention:.0} days (R6)")
                }
            );
        }
        None => {
            let _ = write!(
                h,
                "<span id=\"days-left\">{}</span>",
                if zh {
                    format!("尚无预测，保存期要求 {retention:.0} 天（R6）")
                } else {
                    format!("no forecast yet, retention {retention:.0} days (R6)")
                }
            );
        }
    }
    h.push_str("</p></section>");
    let _ = write!(h, "<section id=\"upstream\"><h2>{}</h2><p>", w.upstream);
    match &s.upstream {
        None => h.push_str(if zh {
            "未配置上级平台，设备离线运行，记录全部保留（R7）"
        } else {
            "no upstream configured: the box runs offline and keeps every record (R7)"
        }),
        Some(u) => {
            let _ = write!(
                h,
                "<span class=\"{}\">{}</span> {} · {} {}",
                if u.connected { "ok" } else { "bad" },
                match (u.connected, zh) {
                    (true, true) => "已连接",
                    (false, true) => "未连接",
                    (true, false) => "connected",
                    (false, false) => "disconnected",
                },
                esc(u.broker.as_deref().unwrap_or("")),
                if zh { "待上传记录" } else { "backlog" },
                u.backlog_records
            );
        }
    }
    h.push_str("</p></section>");

    // Jobs.
    let _ = write!(h, "<section id=\"jobs\"><h2>{}</h2><p>", w.jobs);
    for (name, j) in &s.jobs {
        let class = if matches!(j.state, "running" | "starting" | "stopped") {
            "ok"
        } else {
            "bad"
        };
        let _ = write!(
            h,
            "<span class=\"job {class}\" data-job=\"{}\">{} {}{}</span> ",
            esc(name),
            esc(name),
            j.state,
            j.cause
                .as_ref()
                .map_or(String::new(), |c| format!(" ({})", esc(c)))
        );
    }
    h.push_str("</p></section></body></html>\n");
    h
}

const CSS: &str = "body{font-family:'Noto Sans CJK SC','WenQuanYi Micro Hei','Microsoft YaHei',sans-serif;margin:0 auto;max-width:1100px;padding:12px 20px;color:#212121;background:#fafafa}\
h1{font-size:22px;margin:8px 0}h1 .dev{color:#546e7a;font-size:16px}h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:22px}\
h3{font-size:15px;margin:6px 0}.meta{color:#666;font-size:13px}.cards{display:flex;flex-wrap:wrap;gap:12px}\
.still{display:block;width:320px;height:180px;object-fit:contain;background:#222;margin:4px 0}.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:240px}\
.state{font-weight:bold;margin:4px 0}.ok{color:#2e7d32}.bad{color:#c62828}.idle{color:#757575}\
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;font-size:13px;margin:4px 0}dt{color:#666}dd{margin:0}\
.session{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin:8px 0}\
.hour{display:grid;grid-template-columns:170px 1fr;gap:2px 12px;align-items:center;margin:6px 0}\
.hour .caption{grid-column:2;font-size:13px}.bar{display:block}.t{color:#666;font-size:12px}\
.legend{font-size:12px;color:#444}.legend span{margin-right:12px;white-space:nowrap}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}\
.count{margin-right:18px}.job{margin-right:12px;font-size:13px}.none{color:#666}";
