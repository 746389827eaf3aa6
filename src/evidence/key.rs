//! The device key: an Ed25519 key pair (ring) that signs checkpoints of the log.
//!
//! The private key lives in `{data_dir}/keys/device.key` (mode 0600, directory 0700), created
//! on first start; the public key is also written to `keys/device.pub` for convenience. The
//! signer ([`DeviceKey`]) and the verifier ([`PublicKey`]) are separate types, and the private
//! key's text form says that it is private (as Go's `sumdb/note` does), so neither is mistaken
//! for the other. Rotation (docs/evidence.md, "Rotating the key") writes the new key to
//! `device.key.new` first; [`load`] finishes or drops an interrupted rotation.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use thiserror::Error;

/// Directory of the key files inside the data dir.
pub const KEY_DIR: &str = "keys";
/// The private key file.
pub const PRIVATE_FILE: &str = "device.key";
/// A rotation in progress (see [`load`]).
pub const PRIVATE_NEW_FILE: &str = "device.key.new";
/// The public key file (informational; the database and the log are authoritative).
pub const PUBLIC_FILE: &str = "device.pub";

/// First line of the private key file.
const PRIVATE_HEADER: &str =
    "PRIVATE KEY: classproof device ed25519 v1 (keep secret; never copy off the box)";
/// Prefix of the public key's text form.
pub const PUBLIC_PREFIX: &str = "ed25519:";

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a classproof device key ({why})")]
    Malformed { path: PathBuf, why: String },
    #[error("could not generate a key: the system random source failed")]
    Random,
    #[error(
        "{value:?}: expected a public key \"ed25519:\" followed by 64 hex digits (or a file holding one)"
    )]
    BadPublic { value: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A public key: what verifiers hold.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// `ed25519:` followed by 64 lowercase hex digits.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", hex::encode(self.0))
    }

    /// The fingerprint: the first 16 bytes of SHA-256 of the raw 32-byte key, as 32 hex
    /// digits. Checkpoints name their key by it; technicians read it out for registration.
    pub fn fingerprint(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.0);
        hex::encode(&d.as_ref()[..16])
    }

    /// Parses the text form (the `ed25519:` prefix may be left out).
    pub fn parse(s: &str) -> Result<PublicKey, KeyError> {
        let t = s.trim();
        let h = t.strip_prefix(PUBLIC_PREFIX).unwrap_or(t);
        let mut out = [0u8; 32];
        if h.len() != 64 || hex::decode_to_slice(h.to_ascii_lowercase(), &mut out).is_err() {
            return Err(KeyError::BadPublic { value: s.to_string() });
        }
        Ok(PublicKey(out))
    }

    /// A key given on the command line: the text form itself, or a file holding it as its
    /// first non-empty line that starts with `ed25519:` (e.g. `device.pub`, a bundle's
    /// `pubkey.txt`).
    pub fn from_arg(arg: &str) -> Result<PublicKey, KeyError> {
        if let Ok(k) = PublicKey::parse(arg) {
            return Ok(k);
        }
        let path = Path::new(arg);
        let text = fs::read_to_string(path).map_err(|_| KeyError::BadPublic { value: arg.into() })?;
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(PUBLIC_PREFIX))
            .ok_or_else(|| KeyError::BadPublic { value: arg.into() })
            .and_then(PublicKey::parse)
    }

    /// Checks an Ed25519 signature of `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0).verify(msg, sig).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// The signer. Its private half never leaves this type: no `Debug` of the secret, no text
/// form but the key file.
pub struct DeviceKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceKey({})", self.public.fingerprint())
    }
}

impl DeviceKey {
    /// A new random key and its PKCS#8 document (what the key file stores).
    pub fn generate() -> Result<(DeviceKey, Vec<u8>), KeyError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Random)?;
        let pkcs8 = doc.as_ref().to_vec();
        let key = DeviceKey::from_pkcs8(&pkcs8).map_err(|_| KeyError::Random)?;
        Ok((key, pkcs8))
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Result<DeviceKey, String> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| e.to_string())?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(DeviceKey {
            pair,
            public: PublicKey(public),
        })
    }

    pub fn public(&self) -> PublicKey {
        self.public
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(msg).as_ref());
        out
    }
}

/// Paths of the key files for a data dir.
pub fn private_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_DIR).join(PRIVATE_FILE)
}

fn key_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_DIR)
}

/// Loads the device key, creating it if there is none yet; `true` when it was created now.
/// `current`: as for [`load`].
pub fn load_or_create(data_dir: &Path, current: Option<&str>) -> Result<(DeviceKey, bool), KeyError> {
    let path = private_path(data_dir);
    if path.exists() {
        return Ok((load(data_dir, current)?, false));
    }
    let (key, pkcs8) = DeviceKey::generate()?;
    write_private(data_dir, PRIVATE_FILE, &pkcs8)?;
    write_public(data_dir, &key.public())?;
    tracing::info!(
        fingerprint = %key.public().fingerprint(),
        file = %path.display(),
        "evidence: created the device key"
    );
    Ok((key, true))
}

/// Loads the device key. `current` is the fingerprint the database names as current, if known:
/// a `device.key.new` with that fingerprint is a rotation that committed but was not renamed
/// yet (finished here); any other `device.key.new` is a rotation that never committed (removed).
pub fn load(data_dir: &Path, current: Option<&str>) -> Result<DeviceKey, KeyError> {
    let dir = key_dir(data_dir);
    let new_path = dir.join(PRIVATE_NEW_FILE);
    let path = dir.join(PRIVATE_FILE);
    if new_path.exists() {
        let new = read_private(&new_path)?;
        if current == Some(new.public().fingerprint().as_str()) {
            fs::rename(&new_path, &path).map_err(io_err(&path))?;
            sync_dir(&dir)?;
            write_public(data_dir, &new.public())?;
            return Ok(new);
        }
        if current.is_some() {
            fs::remove_file(&new_path).map_err(io_err(&new_path))?;
        }
    }
    read_private(&path)
}

fn read_private(path: &Path) -> Result<DeviceKey, KeyError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        // Someone loosened it (a copy, a restore from backup): tighten it again.
        tracing::warn!(file = %path.display(), "evidence: the device key was readable by others; set mode 0600");
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    }
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    let bad = |why: &str| KeyError::Malformed {
        path: path.to_path_buf(),
        why: why.to_string(),
    };
    let mut lines = text.lines();
    if lines.next() != Some(PRIVATE_HEADER) {
        return Err(bad("first line is not the classproof private key header"));
    }
    let body = lines.next().ok_or_else(|| bad("no key line"))?;
    let pkcs8 = hex::decode(body.trim()).map_err(|_| bad("the key line is not hex"))?;
    DeviceKey::from_pkcs8(&pkcs8).map_err(|e| bad(&format!("not an Ed25519 PKCS#8 key: {e}")))
}

/// Writes a private key file with mode 0600 (created so, never widened), durably.
pub fn write_private(data_dir: &Path, name: &str, pkcs8: &[u8]) -> Result<PathBuf, KeyError> {
    let dir = key_dir(data_dir);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_err(&dir))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    writeln!(f, "{PRIVATE_HEADER}\n{}", hex::encode(pkcs8)).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(&dir)?;
    Ok(path)
}

/// Writes `keys/device.pub`.
pub fn write_public(data_dir: &Path, key: &PublicKey) -> Result<(), KeyError> {
    let path = key_dir(data_dir).join(PUBLIC_FILE);
    let text = format!("{}\nfingerprint {}\n", key.to_text(), key.fingerprint());
    fs::write(&path, text).map_err(io_err(&path))
}

fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, created) = load_or_create(dir.path(), None).unwrap();
        assert!(created);
        let mode = fs::metadata(private_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = fs::metadata(dir.path().join(KEY_DIR))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        let (k2, created) = load_or_create(dir.path(), None).unwrap();
        assert!(!created);
        assert_eq!(k1.public(), k2.public());
        let sig = k2.sign(b"hello");
        assert!(k1.public().verify(b"hello", &sig));
        assert!(!k1.public().verify(b"hellO", &sig));
        let text = fs::read_to_string(private_path(dir.path())).unwrap();
        assert!(text.starts_with("PRIVATE KEY"), "{text}");
    }

    #[test]
    fn loosened_permissions_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path(), None).unwrap();
        let p = private_path(dir.path());
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        load(dir.path(), None).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn public_key_text_round_trips_and_rejects_junk() {
        let (k, _) = DeviceKey::generate().unwrap();
        let p = k.public();
        assert_eq!(PublicKey::parse(&p.to_text()).unwrap(), p);
        assert_eq!(PublicKey::parse(&hex::encode(p.0)).unwrap(), p);
        assert_eq!(p.fingerprint().len(), 32);
        assert!(PublicKey::parse("ed25519:1234").is_err());
        assert!(PublicKey::from_arg("/nonexistent/key.pub").is_err());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pubkey.txt");
        fs::write(&f, format!("# the box\n{}\n", p.to_text())).unwrap();
        assert_eq!(PublicKey::from_arg(f.to_str().unwrap()).unwrap(), p);
    }

    #[test]
    fn an_uncommitted_rotation_is_dropped_and_a_committed_one_finished() {
        let dir = tempfile::tempdir().unwrap();
        let (old, _) = load_or_create(dir.path(), None).unwrap();
        let (new, pkcs8) = DeviceKey::generate().unwrap();
        write_private(dir.path(), PRIVATE_NEW_FILE, &pkcs8).unwrap();
        // The database still names the old key: the rotation did not commit.
        let k = load(dir.path(), Some(&old.public().fingerprint())).unwrap();
        assert_eq!(k.public(), old.public());
        assert!(!dir.path().join(KEY_DIR).join(PRIVATE_NEW_FILE).exists());
        // It committed: the new file becomes the key.
        write_private(dir.path(), PRIVATE_NEW_FILE, &pkcs8).unwrap();
        let k = load(dir.path(), Some(&new.public().fingerprint())).unwrap();
        assert_eq!(k.public(), new.public());
        assert_eq!(load(dir.path(), None).unwrap().public(), new.public());
    }
}
