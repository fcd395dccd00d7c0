//! TLS for the HTTP API (optional): the server side from `http.tls-cert` and `http.tls-key`,
//! the client side (the CLI, and roles calling each other) trusting `http.tls-ca` on top of the
//! public roots.
//!
//! Gossip does not need this: it has its own authentication and encryption
//! ([`crate::security`]). TLS here protects what travels over HTTP: admin tokens, key rotation
//! requests and the log events themselves.
//!
//! A node serving TLS advertises its HTTP address as `https://host:port` in its membership
//! metadata, so every peer knows which scheme to use without a cluster-wide switch; a plain
//! `host:port` means `http://`. [`base_url`] turns either form into a URL base.
//!
//! Both sides use rustls on the ring provider (the one `reqwest` is built with), chosen
//! explicitly rather than through a process-wide default.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up. The caller names the config key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong (I/O or PEM).
        reason: String,
    },
    /// The certificate file has no certificate in it.
    #[error("{0}: no CERTIFICATE block in it")]
    NoCertificate(PathBuf),
    /// rustls refused the certificate and key (e.g. they do not match).
    #[error("rustls refused the certificate and key: {0}")]
    Rustls(#[from] rustls::Error),
    /// reqwest refused a CA certificate.
    #[error("{path}: not a usable CA certificate: {reason}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// reqwest's reason.
        reason: String,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The server configuration from a PEM certificate chain (leaf first) and a PEM private key
/// (PKCS#8, PKCS#1 or SEC1). Read once at start: a bad file stops the node before it binds.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let pem_error = |path: &Path, e: rustls::pki_types::pem::Error| TlsError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_path_buf()));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| pem_error(key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client builder that also trusts the CA certificates in `ca` (a PEM bundle), for clusters
/// whose certificates come from a private CA or are self-signed.
pub fn client(ca: Option<&Path>, timeout: Duration) -> Result<reqwest::ClientBuilder, TlsError> {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(path) = ca {
        let certs =
            reqwest::Certificate::from_pem_bundle(&read(path)?).map_err(|e| TlsError::Ca {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate(path.to_path_buf()));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

/// The URL base for an address as members advertise it or users type it: `https://h:p` and
/// `http://h:p` stay as they are, a bare `h:p` is plain HTTP. No trailing slash.
pub fn base_url(addr: &str) -> String {
    let addr = addr.trim_end_matches('/');
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_keeps_a_scheme_and_defaults_to_http() {
        assert_eq!(base_url("10.0.0.1:8080"), "http://10.0.0.1:8080");
        assert_eq!(base_url("https://h:8443/"), "https://h:8443");
        assert_eq!(base_url("http://h:1"), "http://h:1");
    }

    #[test]
    fn bad_files_are_named() {
        let dir = std::env::temp_dir().join(format!("vigil-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let err = server_config(&missing, &missing).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a pem\n").unwrap();
        let err = server_config(&empty, &empty).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate(_)), "{err}");

        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert_pem = dir.join("cert.pem");
        let other_key = dir.join("other-key.pem");
        std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
        std::fs::write(&other_key, other.signing_key.serialize_pem()).unwrap();
        let err = server_config(&cert_pem, &other_key).unwrap_err();
        assert!(matches!(err, TlsError::Rustls(_)), "{err}");

        let key_pem = dir.join("key.pem");
        std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
        server_config(&cert_pem, &key_pem).unwrap();
        client(Some(&cert_pem), Duration::from_secs(1))
            .unwrap()
            .build()
            .unwrap();
        let err = client(Some(&empty), Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("empty.pem"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
