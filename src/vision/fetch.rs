//! `classproof models fetch` and `models verify`: install the manifest's model files into a
//! folder, each checked by sha256.
//!
//! Invariants:
//! - a file is installed only after its sha256 matched the manifest; it appears under its final
//!   name by an atomic rename of a fully written, fsynced temporary file in the same folder, so
//!   a crash or a failed download never leaves a half file under the real name;
//! - a file already in place with the right sha256 is left alone (fetch is idempotent and cheap:
//!   it only hashes);
//! - a local mirror (byte-identical copies, e.g. ../shared/models on a box without internet) is
//!   tried before the upstream URLs; every source is checked the same way.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ring::digest::{Context, SHA256};
use thiserror::Error;

use super::manifest::ModelSpec;

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "model {name} ({file}): no source gave the expected file (sha256 {sha256}, {bytes} bytes); tried:\n  {}",
        tried.join("\n  ")
    )]
    NotFound {
        name: String,
        file: String,
        sha256: String,
        bytes: u64,
        tried: Vec<String>,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How a model got into place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The file was already there with the right sha256.
    AlreadyInstalled,
    /// Copied from the mirror folder.
    FromMirror(PathBuf),
    /// Downloaded from this URL.
    Downloaded(String),
}

/// What `verify` found for one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Ok,
    Missing,
    /// Present with other bytes.
    Mismatch {
        sha256: String,
        bytes: u64,
    },
}

/// sha256 (lowercase hex) and size of a file.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        ctx.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(ctx.finish().as_ref()), n))
}

/// Checks the installed copy of one model.
pub fn verify(spec: &ModelSpec, dir: &Path) -> Result<Verified, FetchError> {
    let path = dir.join(&spec.file);
    match sha256_file(&path) {
        Ok((sha, _)) if sha == spec.sha256 => Ok(Verified::Ok),
        Ok((sha256, bytes)) => Ok(Verified::Mismatch { sha256, bytes }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Verified::Missing),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// Installs one model into `dir`: kept if already right, else from `mirror`, else from its URLs.
pub fn fetch(spec: &ModelSpec, dir: &Path, mirror: Option<&Path>) -> Result<Fetched, FetchError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let dest = dir.join(&spec.file);
    let mut tried = Vec::new();
    match verify(spec, dir)? {
        Verified::Ok => return Ok(Fetched::AlreadyInstalled),
        Verified::Missing => {}
        Verified::Mismatch { sha256, .. } => tried.push(format!(
            "{} (installed copy has sha256 {sha256}; replacing it)",
            dest.display()
        )),
    }
    if let Some(mirror) = mirror {
        let src = mirror.join(&spec.file);
        match File::open(&src) {
            Ok(f) => match install(spec, dir, f) {
                Ok(()) => return Ok(Fetched::FromMirror(src)),
                Err(why) => tried.push(format!("{}: {why}", src.display())),
            },
            Err(e) => tried.push(format!("{}: {e}", src.display())),
        }
    }
    if !spec.urls.is_empty() {
        match http_client() {
            Ok(client) => {
                for url in &spec.urls {
                    tracing::info!(model = %spec.name, %url, "downloading");
                    let resp = client
                        .get(url)
                        .send()
                        .and_then(|r| r.error_for_status())
                        .map_err(|e| error_chain(&e));
                    match resp.and_then(|r| install(spec, dir, r)) {
                        Ok(()) => return Ok(Fetched::Downloaded(url.clone())),
                        Err(why) => tried.push(format!("{url}: {why}")),
                    }
                }
            }
            Err(e) => tried.push(format!("(no HTTP client: {e})")),
        }
    }
    Err(FetchError::NotFound {
        name: spec.name.clone(),
        file: spec.file.clone(),
        sha256: spec.sha256.clone(),
        bytes: spec.bytes,
        tried,
    })
}

/// An error with its causes ("error sending request" alone does not say why).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s += &format!(": {text}");
        }
        cause = c.source();
    }
    s
}

fn http_client() -> Result<reqwest::blocking::Client, reqwest::Error> {
    // The ring provider for rustls (TOOLCHAIN.md); a second install (by another room, or an
    // earlier call) is refused harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(900))
        .user_agent(concat!("classproof/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Streams `src` into a temporary file beside the destination, checks size and sha256, then
/// renames it into place. Returns why it was refused otherwise (the temporary file is removed).
fn install(spec: &ModelSpec, dir: &Path, src: impl Read) -> Result<(), String> {
    let tmp = dir.join(format!(".{}.part-{}", spec.file, std::process::id()));
    let result = write_checked(spec, &tmp, src).and_then(|()| {
        fs::rename(&tmp, dir.join(&spec.file)).map_err(|e| format!("cannot rename into place: {e}"))?;
        // The rename is durable once the folder is synced.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| e.to_string())
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_checked(spec: &ModelSpec, tmp: &Path, src: impl Read) -> Result<(), String> {
    let mut out = File::create(tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    let mut head = Vec::new();
    // Read at most one byte more than expected: a larger answer is wrong anyway.
    let mut src = src.take(spec.bytes + 1);
    loop {
        let k = src.read(&mut buf).map_err(|e| format!("read failed: {e}"))?;
        if k == 0 {
            break;
        }
        if head.len() < 64 {
            head.extend_from_slice(&buf[..k.min(64)]);
        }
        ctx.update(&buf[..k]);
        out.write_all(&buf[..k])
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        n += k as u64;
    }
    let sha = hex::encode(ctx.finish().as_ref());
    if sha != spec.sha256 {
        let what = if head.starts_with(b"version https://git-lfs") {
            " (a Git LFS pointer, not the model)".to_string()
        } else if n > spec.bytes {
            format!(" (more than the expected {} bytes)", spec.bytes)
        } else {
            String::new()
        };
        return Err(format!("got {n} bytes with sha256 {sha}{what}"));
    }
    out.sync_all()
        .map_err(|e| format!("cannot sync {}: {e}", tmp.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::manifest::Manifest;

    /// A manifest entry for a small made-up file, with no URLs (no network in unit tests).
    fn spec_for(bytes: &[u8]) -> ModelSpec {
        let mut spec = Manifest::embedded().unwrap().model[0].clone();
        spec.name = "toy".into();
        spec.file = "toy.onnx".into();
        spec.sha256 = hex::encode(ring::digest::digest(&SHA256, bytes).as_ref());
        spec.bytes = bytes.len() as u64;
        spec.urls.clear();
        spec
    }

    #[test]
    fn fetch_from_mirror_is_checked_atomic_and_idempotent() {
        let mirror = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spec = spec_for(b"model bytes");
        fs::write(mirror.path().join("toy.onnx"), b"model bytes").unwrap();

        assert_eq!(verify(&spec, dir.path()).unwrap(), Verified::Missing);
        let got = fetch(&spec, dir.path(), Some(mirror.path())).unwrap();
        assert_eq!(got, Fetched::FromMirror(mirror.path().join("toy.onnx")));
        assert_eq!(verify(&spec, dir.path()).unwrap(), Verified::Ok);
        // Second run: nothing to do, even without the mirror.
        assert_eq!(fetch(&spec, dir.path(), None).unwrap(), Fetched::AlreadyInstalled);
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["toy.onnx"]);
    }

    #[test]
    fn a_wrong_copy_is_refused_with_the_places_tried_and_the_expected_sha256() {
        let mirror = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spec = spec_for(b"model bytes");
        fs::write(mirror.path().join("toy.onnx"), b"other bytes").unwrap();
        let e = fetch(&spec, dir.path(), Some(mirror.path())).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("model toy (toy.onnx)"), "{msg}");
        assert!(msg.contains(&spec.sha256), "{msg}");
        assert!(
            msg.contains(&mirror.path().join("toy.onnx").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("got 11 bytes with sha256"), "{msg}");
        assert!(!dir.path().join("toy.onnx").exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temporary file left"
        );
    }

    #[test]
    fn a_corrupted_installed_copy_is_replaced() {
        let mirror = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spec = spec_for(b"model bytes");
        fs::write(mirror.path().join("toy.onnx"), b"model bytes").unwrap();
        fs::write(dir.path().join("toy.onnx"), b"model bytez").unwrap();
        assert!(matches!(
            verify(&spec, dir.path()).unwrap(),
            Verified::Mismatch { bytes: 11, .. }
        ));
        fetch(&spec, dir.path(), Some(mirror.path())).unwrap();
        assert_eq!(fs::read(dir.path().join("toy.onnx")).unwrap(), b"model bytes");
    }

    /// A one-shot HTTP server on loopback answering every request with `body`.
    fn serve_once(body: Vec<u8>) -> String {
        use std::io::BufRead;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                let mut reader = io::BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            }
        });
        format!("http://127.0.0.1:{port}/toy.onnx")
    }

    #[test]
    fn downloads_are_checked_and_the_next_url_is_tried() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec_for(b"model bytes");
        let wrong = serve_once(b"<html>not found</html>".to_vec());
        let right = serve_once(b"model bytes".to_vec());
        spec.urls = vec![wrong.clone(), right.clone()];
        assert_eq!(
            fetch(&spec, dir.path(), None).unwrap(),
            Fetched::Downloaded(right)
        );
        assert_eq!(fs::read(dir.path().join("toy.onnx")).unwrap(), b"model bytes");

        let dir = tempfile::tempdir().unwrap();
        spec.urls = vec!["http://127.0.0.1:9/toy.onnx".into()];
        let msg = fetch(&spec, dir.path(), None).unwrap_err().to_string();
        assert!(
            msg.contains("http://127.0.0.1:9/toy.onnx: error sending request"),
            "{msg}"
        );
        assert!(
            msg.to_lowercase().contains("connect"),
            "the cause is shown: {msg}"
        );
    }

    #[test]
    fn git_lfs_pointers_are_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec_for(&[7u8; 200]);
        let why = install(
            &spec,
            dir.path(),
            &b"version https://git-lfs.github.com/spec/v1\noid sha256:0"[..],
        )
        .unwrap_err();
        assert!(why.contains("Git LFS pointer"), "{why}");
    }
}
