//! `[upstream]`: the provincial platform's MQTT broker (docs/configuration.md, "[upstream]";
//! docs/protocol.md). No `[upstream]` section: the box runs offline (R7) and keeps everything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Problems, Section};

/// Default MQTT keepalive.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);
/// Default interval between `online` status messages.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(60);
/// Default age of the oldest unsent record that raises `sync_backlog`.
pub const DEFAULT_BACKLOG_ALARM: Duration = Duration::from_secs(24 * 3600);
/// Default longest live push (downlink `live.start`, a later issue).
pub const DEFAULT_LIVE_MAX: Duration = Duration::from_secs(30 * 60);
/// Default topic prefix.
pub const DEFAULT_TOPIC_PREFIX: &str = "classproof";

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (32 bytes) }. Followed by the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Broker address, parsed from `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// `true` for `mqtts://`.
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// `[upstream]`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub broker: Broker,
    /// Topics are `{topic_prefix}/{device id}/…`.
    pub topic_prefix: String,
    /// The pinned CA that signed the broker's certificate (PEM). Required with `mqtts://`.
    pub ca_file: Option<PathBuf>,
    /// The device's client certificate (PEM chain) for mutual TLS; with `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub client_key_file: Option<PathBuf>,
    /// The platform's Ed25519 public key (PEM SubjectPublicKeyInfo) for signed downlink
    /// commands (a later issue); checked by `check-config` when set.
    pub platform_key_file: Option<PathBuf>,
    pub username: Option<String>,
    /// File holding the MQTT password (first line, without its newline).
    pub password_file: Option<PathBuf>,
    /// `mqtt://` (no TLS) is refused unless this is set.
    pub insecure_plaintext: bool,
    pub keepalive: Duration,
    pub status_interval: Duration,
    pub backlog_alarm: Duration,
    pub live_max: Duration,
}

impl UpstreamConfig {
    /// Reads `[upstream]`; `None` when it has problems (all pushed to `p`).
    pub fn read(s: &Section, p: &mut Problems) -> Option<UpstreamConfig> {
        let before = p.0.len();
        let insecure_plaintext = s.bool(p, "insecure_plaintext").unwrap_or(false);
        let url = s.string(p, "url");
        let url = s.required(
            p,
            "url",
            url,
            "the broker, e.g. \"mqtts://platform.example.cn:8883\"",
        );
        let broker = url.and_then(|u| match parse_broker(&u) {
            Ok(b) if !b.tls && !insecure_plaintext => {
                p.push(
                    s.key_path("url"),
                    Some(format!("{u:?}")),
                    "an mqtts:// URL (mqtt:// sends evidence in clear text; it is allowed only \
                     with upstream.insecure_plaintext = true)",
                );
                None
            }
            Ok(b) => Some(b),
            Err(why) => {
                p.push(s.key_path("url"), Some(format!("{u:?}")), why);
                None
            }
        });
        let topic_prefix = s
            .string(p, "topic_prefix")
            .unwrap_or_else(|| DEFAULT_TOPIC_PREFIX.to_string());
        if !is_valid_prefix(&topic_prefix) {
            p.push(
                s.key_path("topic_prefix"),
                Some(format!("{topic_prefix:?}")),
                "1 to 128 of letters, digits, '-', '_', '.' and '/', not starting or ending with \
                 '/' (no MQTT wildcards)",
            );
        }
        let ca_file = s.path(p, "ca_file");
        let client_cert_file = s.path(p, "client_cert_file");
        let client_key_file = s.path(p, "client_key_file");
        let platform_key_file = s.path(p, "platform_key_file");
        let username = s.string(p, "username");
        let password_file = s.path(p, "password_file");
        if let Some(b) = &broker
            && b.tls
            && ca_file.is_none()
        {
            s.required::<()>(
                p,
                "ca_file",
                None,
                "the CA that signed the broker's certificate (PEM), pinned",
            );
        }
        if client_cert_file.is_some() != client_key_file.is_some() {
            let missing = if client_cert_file.is_none() {
                "client_cert_file"
            } else {
                "client_key_file"
            };
            s.required::<()>(
                p,
                missing,
                None,
                "client_cert_file and client_key_file go together (mutual TLS)",
            );
        }
        if password_file.is_some() && username.is_none() {
            s.required::<()>(p, "username", None, "a user name to go with password_file");
        }
        if broker.as_ref().is_some_and(|b| !b.tls) && client_cert_file.is_some() {
            p.push(
                s.key_path("client_cert_file"),
                None,
                "no client certificate with mqtt:// (it needs mqtts://)",
            );
        }
        let dur = |p: &mut Problems, key: &str, min: Duration, max: Duration, d: Duration| {
            s.duration(p, key, min, max).unwrap_or(d)
        };
        let keepalive = dur(
            p,
            "keepalive",
            Duration::from_secs(5),
            Duration::from_secs(3600),
            DEFAULT_KEEPALIVE,
        );
        let status_interval = dur(
            p,
            "status_interval",
            Duration::from_secs(1),
            Duration::from_secs(86_400),
            DEFAULT_STATUS_INTERVAL,
        );
        let backlog_alarm = dur(
            p,
            "backlog_alarm",
            Duration::from_secs(1),
            Duration::from_secs(365 * 86_400),
            DEFAULT_BACKLOG_ALARM,
        );
        let live_max = dur(
            p,
            "live_max",
            Duration::from_secs(10),
            Duration::from_secs(86_400),
            DEFAULT_LIVE_MAX,
        );
        if p.0.len() > before {
            return None;
        }
        Some(UpstreamConfig {
            broker: broker?,
            topic_prefix,
            ca_file,
            client_cert_file,
            client_key_file,
            platform_key_file,
            username,
            password_file,
            insecure_plaintext,
            keepalive,
            status_interval,
            backlog_alarm,
            live_max,
        })
    }

    /// Step 2 (`check-config`): the files exist and parse. TLS material is read again at every
    /// connection attempt, so a file fixed later is picked up without a restart.
    pub fn check_environment(&self, p: &mut Problems) {
        let files = [
            ("upstream.ca_file", &self.ca_file),
            ("upstream.client_cert_file", &self.client_cert_file),
            ("upstream.client_key_file", &self.client_key_file),
            ("upstream.password_file", &self.password_file),
        ];
        for (key, file) in files {
            if let Some(f) = file
                && let Err(e) = std::fs::metadata(f)
            {
                p.push(
                    key,
                    Some(format!("{:?}", f.display().to_string())),
                    format!("a readable file ({e})"),
                );
            }
        }
        if self.broker.tls
            && let Err(e) = super::tls::client_config(self)
        {
            p.push("upstream", None, format!("usable TLS files ({e})"));
        }
        if let Some(f) = &self.platform_key_file
            && let Err(why) = read_platform_key(f)
        {
            p.push(
                "upstream.platform_key_file",
                Some(format!("{:?}", f.display().to_string())),
                why,
            );
        }
    }

    /// One line for `check-config`.
    pub fn summary(upstream: Option<&UpstreamConfig>) -> String {
        match upstream {
            None => "none: the box runs offline (R7) and keeps every record; nothing is sent upstream".into(),
            Some(u) => format!(
                "{} topics {}/<device>/…, {}; status every {}, backlog alarm after {}",
                u.broker,
                u.topic_prefix,
                if u.client_cert_file.is_some() {
                    "mutual TLS"
                } else if u.broker.tls {
                    "TLS"
                } else {
                    "PLAINTEXT (insecure_plaintext)"
                },
                humantime::format_duration(u.status_interval),
                humantime::format_duration(u.backlog_alarm)
            ),
        }
    }
}

/// `mqtts://host[:port]` (default 8883) or `mqtt://host[:port]` (default 1883), nothing else.
pub fn parse_broker(s: &str) -> Result<Broker, String> {
    let url = url::Url::parse(s).map_err(|e| format!("a broker URL such as \"mqtts://host:8883\" ({e})"))?;
    let (tls, default_port) = match url.scheme() {
        "mqtts" => (true, 8883),
        "mqtt" => (false, 1883),
        _ => return Err("a URL starting with mqtts:// (or mqtt:// with insecure_plaintext)".into()),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a URL without credentials (use upstream.username and password_file)".into());
    }
    if url.path() != "" && url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("only a scheme, a host and a port (no path or query)".into());
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("a URL with a host name")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(Broker {
        tls,
        host,
        port: url.port().unwrap_or(default_port),
    })
}

fn is_valid_prefix(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('/')
        && !s.ends_with('/')
        && !s.contains("//")
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

/// Reads the platform's public key: a PEM `PUBLIC KEY` holding an Ed25519
/// SubjectPublicKeyInfo, as `openssl pkey -pubout` writes it. Returns the 32 key bytes.
pub fn read_platform_key(path: &Path) -> Result<[u8; 32], String> {
    use rustls::pki_types::SubjectPublicKeyInfoDer;
    use rustls::pki_types::pem::PemObject;
    let spki = SubjectPublicKeyInfoDer::from_pem_file(path)
        .map_err(|e| format!("a PEM \"PUBLIC KEY\" (as `openssl pkey -pubout` writes it) ({e})"))?;
    let der: &[u8] = spki.as_ref();
    match der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(key) if key.len() == 32 => {
            let mut out = [0u8; 32];
            out.copy_from_slice(key);
            Ok(out)
        }
        _ => Err("an Ed25519 public key (this PEM holds another kind of key)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn problems(upstream: &str) -> Vec<String> {
        let text = format!("[device]\nid = \"box-1\"\n\n[upstream]\n{upstream}");
        match Config::parse(&text, Path::new("/etc/classproof/c.toml")) {
            Ok(_) => vec![],
            Err(e) => e.problems(),
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let text = "[device]\nid = \"box-1\"\n\n[upstream]\nurl = \"mqtts://platform.example.cn:8883\"\n\
                    topic_prefix = \"classproof\"\nca_file = \"/etc/classproof/upstream-ca.pem\"\n\
                    client_cert_file = \"/etc/classproof/device.crt\"\nclient_key_file = \"device.key\"\n\
                    platform_key_file = \"/etc/classproof/platform.pub\"\nkeepalive = \"30s\"\n\
                    status_interval = \"60s\"\nbacklog_alarm = \"24h\"\nlive_max = \"30m\"\n";
        let c = Config::parse(text, Path::new("/etc/classproof/c.toml")).unwrap();
        let u = c.upstream.unwrap();
        assert_eq!(u.broker.to_string(), "mqtts://platform.example.cn:8883");
        assert_eq!(
            u.client_key_file.unwrap(),
            PathBuf::from("/etc/classproof/device.key")
        );
        assert_eq!(u.backlog_alarm, Duration::from_secs(86_400));
    }

    #[test]
    fn no_section_means_offline() {
        let c = Config::parse("[device]\nid = \"box-1\"\n", Path::new("c.toml")).unwrap();
        assert!(c.upstream.is_none());
        assert!(UpstreamConfig::summary(None).contains("offline (R7)"));
    }

    #[test]
    fn plaintext_needs_the_explicit_key_and_tls_needs_a_ca() {
        let ps = problems("url = \"mqtt://127.0.0.1:1883\"\n");
        assert_eq!(ps.len(), 1, "{ps:#?}");
        assert!(
            ps[0].contains("upstream.url") && ps[0].contains("insecure_plaintext"),
            "{ps:#?}"
        );
        assert!(problems("url = \"mqtt://127.0.0.1\"\ninsecure_plaintext = true\n").is_empty());
        let ps = problems("url = \"mqtts://127.0.0.1\"\n");
        assert!(ps[0].starts_with("upstream.ca_file: missing"), "{ps:#?}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let ps = problems(
            "url = \"https://x\"\nca_file = \"ca.pem\"\nclient_cert_file = \"c.pem\"\ntopic_prefix = \"a/#\"\n\
             keepalive = \"1s\"\ncolour = 1\n",
        );
        let all = ps.join("\n");
        for key in [
            "upstream.url",
            "upstream.topic_prefix",
            "upstream.client_key_file",
            "upstream.keepalive",
            "upstream.colour",
        ] {
            assert!(all.contains(key), "{key} not reported:\n{all}");
        }
    }

    #[test]
    fn broker_urls() {
        assert_eq!(parse_broker("mqtts://h").unwrap().port, 8883);
        assert_eq!(parse_broker("mqtt://h").unwrap().port, 1883);
        assert_eq!(parse_broker("mqtts://[::1]:9").unwrap().host, "::1");
        assert!(parse_broker("mqtts://u:p@h").is_err());
        assert!(parse_broker("mqtts://h/x").is_err());
    }

    #[test]
    fn platform_key_must_be_an_ed25519_spki() {
        let dir = tempfile::tempdir().unwrap();
        let key = [7u8; 32];
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&key);
        let pem = |der: &[u8]| {
            use std::fmt::Write as _;
            let b64 = base64_encode(der);
            let mut s = String::from("-----BEGIN PUBLIC KEY-----\n");
            let _ = writeln!(s, "{b64}");
            s + "-----END PUBLIC KEY-----\n"
        };
        let good = dir.path().join("p.pub");
        std::fs::write(&good, pem(&der)).unwrap();
        assert_eq!(read_platform_key(&good).unwrap(), key);
        let mut other = der.clone();
        other[8] = 0x71; // Ed448's OID
        std::fs::write(&good, pem(&other)).unwrap();
        assert!(read_platform_key(&good).unwrap_err().contains("Ed25519"));
        std::fs::write(&good, "not a key").unwrap();
        assert!(read_platform_key(&good).unwrap_err().contains("PUBLIC KEY"));
    }

    fn base64_encode(bytes: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
