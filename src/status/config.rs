//! `[status]`: the local status server (page, `/metrics`, `/api/status`). Key reference:
//! docs/configuration.md ("[status]").

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{Problems, Section};

/// Default listen address: loopback only, no token needed.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8480";

/// The language of the page and the SVG timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    ZhCn,
    En,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::ZhCn => "zh-CN",
            Language::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Language> {
        match s {
            "zh-CN" => Some(Language::ZhCn),
            "en" => Some(Language::En),
            _ => None,
        }
    }
}

/// `[status]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusConfig {
    /// Serve at all. Default true.
    pub enabled: bool,
    /// Where to listen. Default `127.0.0.1:8480`.
    pub listen: SocketAddr,
    /// A file holding the bearer token every request must carry. Required unless `listen` is
    /// a loopback address.
    pub token_file: Option<PathBuf>,
    pub language: Language,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8480)),
            token_file: None,
            language: Language::ZhCn,
        }
    }
}

impl StatusConfig {
    pub fn read(s: &Section, p: &mut Problems) -> StatusConfig {
        let d = StatusConfig::default();
        let enabled = s.bool(p, "enabled").unwrap_or(d.enabled);
        let listen = match s.string(p, "listen") {
            Some(text) => match text.parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) => {
                    p.push(
                        s.key_path("listen"),
                        Some(format!("{text:?}")),
                        "an IP address and port, e.g. \"127.0.0.1:8480\" or \"0.0.0.0:8480\"",
                    );
                    d.listen
                }
            },
            None => d.listen,
        };
        let token_file = s.path(p, "token_file");
        let language = match s.choice(p, "language", &["zh-CN", "en"]) {
            Some(l) => Language::parse(&l).unwrap_or(d.language),
            None => d.language,
        };
        if enabled && !listen.ip().is_loopback() && token_file.is_none() {
            p.push(
                s.key_path("token_file"),
                None,
                format!(
                    "a token file (listen = \"{listen}\" is not a loopback address: every \
                     request must then carry `Authorization: Bearer <token>`)"
                ),
            );
        }
        StatusConfig {
            enabled,
            listen,
            token_file,
            language,
        }
    }

    /// One line for `check-config`.
    pub fn summary(&self) -> String {
        if !self.enabled {
            return "off".into();
        }
        format!(
            "http://{} ({}), {}",
            self.listen,
            match &self.token_file {
                Some(f) => format!("bearer token from {}", f.display()),
                None => "no token (loopback only)".into(),
            },
            self.language.as_str()
        )
    }
}

/// Reads the token: the file's first line, trimmed; an error names the file.
pub fn read_token(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the status token: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.len() < 16 {
        return Err(format!(
            "{}: the status token must be at least 16 characters on the first line",
            path.display()
        ));
    }
    Ok(token)
}
