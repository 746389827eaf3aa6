//! TLS for the broker connection: rustls on ring (TOOLCHAIN.md), the CA pinned from
//! `ca_file` (no system roots: the provincial platform names its own CA), and the device's
//! client certificate for mutual TLS. Every error names the file it is about.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use thiserror::Error;

use super::config::UpstreamConfig;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("upstream.{key} {path}: {why}")]
    File {
        key: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error("upstream: mqtts:// needs upstream.ca_file")]
    NoCa,
    #[error("upstream.client_cert_file {cert} / client_key_file {key}: {why}")]
    ClientAuth {
        cert: PathBuf,
        key: PathBuf,
        why: String,
    },
}

static PROVIDER: Once = Once::new();

/// Installs rustls' ring provider as the process default, once; before any client is built
/// (otherwise rustls panics when it looks for one).
pub fn install_provider() {
    PROVIDER.call_once(|| {
        // Err: a provider is already installed (by another part of the process); that is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn file_err(key: &'static str, path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        key,
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

fn certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    std::fs::metadata(path).map_err(|e| file_err(key, path, format!("cannot read: {e}")))?;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(key, path, format!("not PEM certificates: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(key, path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(file_err(key, path, "no \"CERTIFICATE\" in this PEM file"));
    }
    Ok(certs)
}

/// The rustls client configuration from the files named in `[upstream]`, read now.
pub fn client_config(cfg: &UpstreamConfig) -> Result<Arc<ClientConfig>, TlsError> {
    install_provider();
    let ca = cfg.ca_file.as_deref().ok_or(TlsError::NoCa)?;
    let mut roots = RootCertStore::empty();
    for c in certs("ca_file", ca)? {
        roots
            .add(c)
            .map_err(|e| file_err("ca_file", ca, format!("not a usable CA certificate: {e}")))?;
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let config = match (&cfg.client_cert_file, &cfg.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain = certs("client_cert_file", cert)?;
            std::fs::metadata(key)
                .map_err(|e| file_err("client_key_file", key, format!("cannot read: {e}")))?;
            let der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| file_err("client_key_file", key, format!("not a PEM private key: {e}")))?;
            builder
                .with_client_auth_cert(chain, der)
                .map_err(|e| TlsError::ClientAuth {
                    cert: cert.clone(),
                    key: key.clone(),
                    why: e.to_string(),
                })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
