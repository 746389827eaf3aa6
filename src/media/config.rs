//! `[[camera]]`: one entry per camera the box reads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Problems, Section, is_valid_id};

/// Default segment length.
pub const DEFAULT_SEGMENT: Duration = Duration::from_secs(60);
/// Default time without packets after which a connected camera counts as stalled.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap of the reconnect backoff. Small, so that recording resumes within a few
/// seconds of the camera coming back.
pub const DEFAULT_RECONNECT_MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Default time allowed for connecting to a camera and reading its stream description.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default largest difference between media time and wall time before a segment is cut and
/// the clocks are re-anchored (a clock step, or a camera whose clock runs wrong).
pub const DEFAULT_CLOCK_TOLERANCE: Duration = Duration::from_secs(5);

/// Where a camera's packets come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An RTSP camera (`rtsp://` or `rtsps://`), read over TCP unless `rtsp_transport = "udp"`.
    Rtsp { url: String, transport: RtspTransport },
    /// A video file (`file:///path.mp4`), for demos and tests: optionally looped and paced at
    /// real time so that it behaves like a camera.
    File {
        path: PathBuf,
        looped: bool,
        realtime: bool,
    },
    /// A V4L2 device (`/dev/video0` or `v4l2:///dev/video0`).
    V4l2 { device: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtspTransport {
    Tcp,
    Udp,
}

/// What a camera's frames are analysed for (issue 9; `daemon::analysis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Analyze {
    /// Not analysed (default).
    Off,
    /// A door camera: faces check in as they pass.
    Entrance,
    /// A camera over the room: faces seen in the check-in window check in too.
    Classroom,
}

impl Analyze {
    pub const ALL: [Analyze; 3] = [Analyze::Off, Analyze::Entrance, Analyze::Classroom];

    pub fn as_str(self) -> &'static str {
        match self {
            Analyze::Off => "off",
            Analyze::Entrance => "entrance",
            Analyze::Classroom => "classroom",
        }
    }

    /// The default `analyze_fps`.
    pub fn default_fps(self) -> f64 {
        match self {
            Analyze::Entrance => 5.0,
            Analyze::Off | Analyze::Classroom => 1.0,
        }
    }
}

/// One `[[camera]]` entry.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    /// Camera id, used in paths, reports and sessions' `cameras`. Letters, digits, `-`, `_`, `.`;
    /// at most 32 characters. Required and unique.
    pub id: String,
    /// Where the video comes from: `rtsp://user:pass@host:554/path`, `file:///path/video.mp4`,
    /// `/dev/video0` or `v4l2:///dev/video0`. Required.
    pub source: Source,
    /// Record this camera. Default true. A camera with `record = false` is still read for
    /// analysis but writes no segments and no gaps.
    pub record: bool,
    /// Target segment length; segments are cut at the first keyframe after it. Default 60s,
    /// from 1s to 1h.
    pub segment: Duration,
    /// No packets for this long on an open connection counts as a stall: the segment is closed,
    /// a `stall` gap opened and the camera reconnected. Default 5s, from 1s to 60s.
    pub stall_timeout: Duration,
    /// Time allowed to connect and read the stream description. Default 5s, 1s to 60s.
    pub connect_timeout: Duration,
    /// Reconnect attempts back off exponentially from 250ms up to this. Default 2s,
    /// 100ms to 60s.
    pub reconnect_max_backoff: Duration,
    /// Media time and wall time may drift apart by this much before the segment is cut and the
    /// clocks re-anchored (recorded as a `clock_jump` gap). Default 5s, 1s to 10m.
    pub clock_tolerance: Duration,
    /// Extra options handed to FFmpeg when opening the input, e.g.
    /// `{ input_format = "mjpeg", video_size = "1280x720" }` for a V4L2 camera.
    pub input_options: BTreeMap<String, String>,
    /// `off` (default), `entrance` or `classroom`.
    pub analyze: Analyze,
    /// Frames analysed per second. Default 5 for entrance, 1 for classroom; 0.1 to 30.
    pub analyze_fps: f64,
    /// Decoded for analysis instead of `url` (the camera's sub-stream); same forms as `url`.
    pub analyze_source: Option<Source>,
}

impl CameraConfig {
    pub fn read(s: &Section, p: &mut Problems) -> Option<CameraConfig> {
        let id = s.string(p, "id");
        let id = s
            .required(p, "id", id, "a camera id, e.g. \"front\"")
            .filter(|id| {
                let ok = is_valid_id(id, 32);
                if !ok {
                    p.push(
                        s.key_path("id"),
                        Some(format!("{id:?}")),
                        "1 to 32 letters, digits, '-', '_' or '.'",
                    );
                }
                ok
            });
        let url = s.string(p, "url");
        let url = s.required(p, "url", url, "rtsp://…, file://… or a V4L2 device path");
        let looped = s.bool(p, "loop");
        let realtime = s.bool(p, "realtime");
        let transport = s.choice(p, "rtsp_transport", &["tcp", "udp"]);
        let source = url.and_then(|u| match parse_source(&u, s) {
            Ok(src) => Some(src),
            Err(expected) => {
                p.push(s.key_path("url"), Some(format!("{:?}", redact_url(&u))), expected);
                None
            }
        });
        let source = source.map(|src| match src {
            Source::File { path, .. } => Source::File {
                path,
                looped: looped.unwrap_or(false),
                realtime: realtime.unwrap_or(true),
            },
            Source::Rtsp { url, .. } => Source::Rtsp {
                url,
                transport: match transport.as_deref() {
                    Some("udp") => RtspTransport::Udp,
                    _ => RtspTransport::Tcp,
                },
            },
            other => other,
        });
        if let Some(src) = &source {
            let is_file = matches!(src, Source::File { .. });
            for (key, set) in [("loop", looped.is_some()), ("realtime", realtime.is_some())] {
                if set && !is_file {
                    p.push(s.key_path(key), None, "only for file:// cameras");
                }
            }
            if transport.is_some() && !matches!(src, Source::Rtsp { .. }) {
                p.push(s.key_path("rtsp_transport"), None, "only for rtsp:// cameras");
            }
        }
        let secs = Duration::from_secs;
        let record = s.bool(p, "record").unwrap_or(true);
        let segment = s
            .duration(p, "segment", secs(1), secs(3600))
            .unwrap_or(DEFAULT_SEGMENT);
        let stall_timeout = s
            .duration(p, "stall_timeout", secs(1), secs(60))
            .unwrap_or(DEFAULT_STALL_TIMEOUT);
        let connect_timeout = s
            .duration(p, "connect_timeout", secs(1), secs(60))
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let reconnect_max_backoff = s
            .duration(p, "reconnect_max_backoff", Duration::from_millis(100), secs(60))
            .unwrap_or(DEFAULT_RECONNECT_MAX_BACKOFF);
        let clock_tolerance = s
            .duration(p, "clock_tolerance", secs(1), secs(600))
            .unwrap_or(DEFAULT_CLOCK_TOLERANCE);
        let mut input_options = BTreeMap::new();
        if let Some(t) = s.table(p, "input_options") {
            for (k, _) in t.raw_table() {
                if let Some(v) = t.string(p, k) {
                    input_options.insert(k.clone(), v);
                }
            }
        }
        let names: Vec<&str> = Analyze::ALL.iter().map(|a| a.as_str()).collect();
        let analyze = s
            .choice(p, "analyze", &names)
            .and_then(|a| Analyze::ALL.into_iter().find(|x| x.as_str() == a))
            .unwrap_or(Analyze::Off);
        let fps = s.float(p, "analyze_fps", 0.1, 30.0);
        let analyze_url = s.string(p, "analyze_url");
        let analyze_source = analyze_url.and_then(|u| match parse_source(&u, s) {
            Ok(src) => Some(src),
            Err(expected) => {
                p.push(
                    s.key_path("analyze_url"),
                    Some(format!("{:?}", redact_url(&u))),
                    expected,
                );
                None
            }
        });
        if analyze == Analyze::Off {
            for (key, set) in [
                ("analyze_fps", fps.is_some()),
                ("analyze_url", analyze_source.is_some()),
            ] {
                if set {
                    p.push(
                        s.key_path(key),
                        None,
                        "only with analyze = \"entrance\" or \"classroom\"",
                    );
                }
            }
        }
        Some(CameraConfig {
            id: id?,
            source: source?,
            record,
            segment,
            stall_timeout,
            connect_timeout,
            reconnect_max_backoff,
            clock_tolerance,
            input_options,
            analyze,
            analyze_fps: fps.unwrap_or(analyze.default_fps()),
            analyze_source,
        })
    }

    /// What this camera needs from the machine.
    pub fn check_environment(&self, key: &str, p: &mut Problems) {
        match &self.source {
            Source::File { path, .. } if !path.is_file() => p.push(
                format!("{key}.url"),
                Some(format!("{:?}", path.display().to_string())),
                "an existing video file",
            ),
            Source::V4l2 { device } if !device.exists() => p.push(
                format!("{key}.url"),
                Some(format!("{:?}", device.display().to_string())),
                "a V4L2 device that exists (is the camera plugged in?)",
            ),
            _ => {}
        }
    }

    /// The URL with any password hidden, for logs and summaries.
    pub fn display_url(&self) -> String {
        match &self.source {
            Source::Rtsp { url, .. } => redact_url(url),
            Source::File { path, .. } => format!("file://{}", path.display()),
            Source::V4l2 { device } => device.display().to_string(),
        }
    }

    pub fn summary(&self) -> String {
        let mut extra = String::new();
        if let Source::File { looped, realtime, .. } = &self.source {
            extra = format!(
                "{}{}",
                if *looped { " loop" } else { "" },
                if *realtime { " realtime" } else { "" }
            );
        }
        if self.analyze != Analyze::Off {
            extra.push_str(&format!(
                " analyze={}@{}fps",
                self.analyze.as_str(),
                self.analyze_fps
            ));
            if let Some(src) = &self.analyze_source {
                let url = match src {
                    Source::Rtsp { url, .. } => redact_url(url),
                    Source::File { path, .. } => format!("file://{}", path.display()),
                    Source::V4l2 { device } => device.display().to_string(),
                };
                extra.push_str(&format!(" from {url}"));
            }
        }
        format!(
            "{:<10} {}{} record={} segment={} stall_timeout={}",
            self.id,
            self.display_url(),
            extra,
            self.record,
            humantime::format_duration(self.segment),
            humantime::format_duration(self.stall_timeout)
        )
    }
}

fn parse_source(u: &str, s: &Section) -> Result<Source, &'static str> {
    const EXPECTED: &str =
        "rtsp://host[:port]/path, file:///path/to/video.mp4, /dev/videoN or v4l2:///dev/videoN";
    if u.starts_with("/dev/") {
        return Ok(Source::V4l2 {
            device: PathBuf::from(u),
        });
    }
    let parsed = url::Url::parse(u).map_err(|_| EXPECTED)?;
    match parsed.scheme() {
        "rtsp" | "rtsps" => {
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(
                    "an rtsp:// URL with a host, e.g. rtsp://192.168.1.64:554/Streaming/Channels/101",
                );
            }
            Ok(Source::Rtsp {
                url: u.to_string(),
                transport: RtspTransport::Tcp,
            })
        }
        "file" => {
            // file://relative/x.mp4 is not a URL anyone means; accept file:///abs and, for
            // convenience in configs kept beside their videos, file:relative.
            let path = if u.starts_with("file://") {
                parsed
                    .to_file_path()
                    .map_err(|_| "file:///absolute/path.mp4 or file:relative/path.mp4")?
            } else {
                s.resolve_path(&u["file:".len()..])
            };
            Ok(Source::File {
                path,
                looped: false,
                realtime: true,
            })
        }
        "v4l2" => {
            let path = parsed.path();
            if !path.starts_with("/dev/") {
                return Err("v4l2:///dev/videoN");
            }
            Ok(Source::V4l2 {
                device: PathBuf::from(path),
            })
        }
        _ => Err(EXPECTED),
    }
}

/// Hides the password of a URL (`rtsp://admin:***@host/…`): logs and reports must not carry it.
pub fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => u.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn camera(src: &str) -> (Option<CameraConfig>, Vec<String>) {
        let t: toml::Table = src.parse().unwrap();
        let dir = Path::new("/etc/classproof");
        let s = Section::root(&t, dir);
        let mut p = Problems::default();
        let c = CameraConfig::read(&s, &mut p);
        s.finish(&mut p);
        (c, p.0.iter().map(ToString::to_string).collect())
    }

    /// Issue 9, item 1: `analyze`, `analyze_fps` (default by kind) and `analyze_url`.
    #[test]
    fn analyze_keys() {
        let (c, p) = camera("id = \"door\"\nurl = \"rtsp://h/101\"\n");
        assert!(p.is_empty(), "{p:?}");
        let c = c.unwrap();
        assert_eq!((c.analyze, c.analyze_source.clone()), (Analyze::Off, None));
        let (c, p) = camera("id = \"door\"\nurl = \"rtsp://h/101\"\nanalyze = \"entrance\"\n");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.unwrap().analyze_fps, 5.0);
        let (c, p) = camera(
            "id = \"room\"\nurl = \"rtsp://h/101\"\nanalyze = \"classroom\"\nanalyze_url = \"rtsp://u:pw@h/102\"\n",
        );
        assert!(p.is_empty(), "{p:?}");
        let c = c.unwrap();
        assert_eq!(c.analyze_fps, 1.0);
        assert!(matches!(&c.analyze_source, Some(Source::Rtsp { url, .. }) if url == "rtsp://u:pw@h/102"));
        assert!(
            c.summary()
                .contains("analyze=classroom@1fps from rtsp://u:***@h/102"),
            "{}",
            c.summary()
        );
        let (_, p) = camera(
            "id = \"a\"\nurl = \"rtsp://h/1\"\nanalyze = \"door\"\nanalyze_fps = 60\nanalyze_url = \"http://x\"\n",
        );
        let all = p.join("\n");
        assert!(all.contains("analyze") && all.contains("entrance"), "{all}");
        assert!(all.contains("analyze_fps"), "{all}");
        assert!(all.contains("analyze_url"), "{all}");
        let (_, p) = camera("id = \"a\"\nurl = \"rtsp://h/1\"\nanalyze_fps = 2\n");
        assert!(p.join("\n").contains("only with analyze"), "{p:?}");
    }

    #[test]
    fn rtsp_camera_with_defaults() {
        let (c, p) =
            camera("id = \"front\"\nurl = \"rtsp://admin:secret@192.168.1.64:554/Streaming/Channels/101\"\n");
        assert!(p.is_empty(), "{p:?}");
        let c = c.unwrap();
        assert_eq!(c.segment, DEFAULT_SEGMENT);
        assert_eq!(c.stall_timeout, DEFAULT_STALL_TIMEOUT);
        assert!(c.record);
        assert_eq!(
            c.display_url(),
            "rtsp://admin:***@192.168.1.64:554/Streaming/Channels/101"
        );
    }

    #[test]
    fn file_camera_relative_and_options() {
        let (c, p) = camera("id = \"demo\"\nurl = \"file:../var/t.mp4\"\nloop = true\n");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            c.unwrap().source,
            Source::File {
                path: PathBuf::from("/etc/var/t.mp4"),
                looped: true,
                realtime: true
            }
        );
    }

    #[test]
    fn bad_url_bad_durations_and_misplaced_options_are_each_reported() {
        let (c, p) = camera("id = \"a b\"\nurl = \"http://x/y\"\nsegment = \"0s\"\nstall_timeout = \"5\"\n");
        assert!(c.is_none());
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(p[0].starts_with("id = \"a b\""));
        assert!(p[1].starts_with("url = \"http://x/y\": expected rtsp://"));
        assert!(p[2].starts_with("segment = \"0s\": expected a duration from 1s to 1h"));
        assert!(p[3].starts_with("stall_timeout = \"5\""));
        let (_, p) = camera("id = \"a\"\nurl = \"rtsp://h/x\"\nloop = true\n");
        assert_eq!(p, ["loop: only for file:// cameras"]);
    }

    #[test]
    fn v4l2_forms() {
        for u in ["/dev/video0", "v4l2:///dev/video0"] {
            let (c, p) = camera(&format!("id = \"usb\"\nurl = \"{u}\"\n"));
            assert!(p.is_empty(), "{p:?}");
            assert_eq!(
                c.unwrap().source,
                Source::V4l2 {
                    device: PathBuf::from("/dev/video0")
                }
            );
        }
    }
}
