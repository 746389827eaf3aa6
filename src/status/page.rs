//! `/`: the technician's status page, server-rendered HTML with no external assets.
use super::config::Language;
use super::snapshot::Snapshot;

pub fn render(s: &Snapshot, lang: Language) -> String {
    let _ = lang;
    format!(
        "<!doctype html><html><body><h1>{}</h1></body></html>",
        esc(&s.device)
    )
}

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
