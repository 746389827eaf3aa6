//! Log set-up: `tracing` to stderr, level from `RUST_LOG` (default `info`). Under systemd
//! (`$JOURNAL_STREAM` set) straight to the journal instead, each event's fields as journal
//! fields of the same name in capitals (`camera` → `CAMERA=`, `session` → `SESSION=`, `kind` →
//! `KIND=`), so that `journalctl -u classproof CAMERA=front` works (issue 12).
//!
//! R15: never log a full ID-card number or a face template; use [`mask_id_number`].

use tracing_subscriber::EnvFilter;

/// Installs the stderr subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journal) = tracing_journald::layer()
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let journal = journal
            .with_field_prefix(None)
            .with_syslog_identifier("classproof".into());
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(journal)
            .try_init();
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Masks an ID-card number for logs, reports and the UI (R15): the first 6 and last 4
/// characters stay, the rest become `*`. Short values are masked entirely but for the last one.
pub fn mask_id_number(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    let n = chars.len();
    if n >= 12 {
        chars
            .iter()
            .enumerate()
            .map(|(i, c)| if i < 6 || i >= n - 4 { *c } else { '*' })
            .collect()
    } else {
        chars
            .iter()
            .enumerate()
            .map(|(i, c)| if i + 1 == n { *c } else { '*' })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_are_masked() {
        // R15
        assert_eq!(mask_id_number("410105199001011234"), "410105********1234");
        assert_eq!(mask_id_number("12345"), "****5");
    }
}
