//! Outgoing HTTPS: which certificate authorities the gateway trusts when it calls an
//! `https://` upstream, the moderation service or the chain's JSON-RPC node.
//!
//! TLS is always compiled in (rustls on aws-lc-rs, the stack alloy's transport already
//! uses). By default the platform's roots are trusted (through
//! `rustls-platform-verifier`: the system store on Linux, the OS verifier on macOS and
//! Windows). `[tls] ca_file` adds a private CA (a PEM file of one or more certificates)
//! to them, or replaces them with `platform_roots = false`. Every outgoing client of the
//! gateway is built by [`Tls::client_builder`], so the setting applies to all of them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `[tls]` in `gateway.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// A PEM file of CA certificates to trust for `https://` upstreams, the moderation
    /// service and the chain RPC (a private CA). Relative to the config file.
    pub ca_file: Option<PathBuf>,
    /// Trust the platform's roots too (default `true`). `false` trusts only `ca_file`.
    pub platform_roots: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            ca_file: None,
            platform_roots: true,
        }
    }
}

/// Why the TLS settings cannot be used. [`TlsError::code`] is stable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The CA file cannot be read.
    #[error("cannot read the CA file {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The CA file holds no usable PEM certificate.
    #[error("the CA file {path} holds no PEM certificate ({message})")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Nothing would be trusted.
    #[error("platform_roots = false needs a ca_file: nothing would be trusted")]
    NoRoots,
}

impl TlsError {
    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            TlsError::Unreadable { .. } => "tls_ca_unreadable",
            TlsError::BadPem { .. } => "tls_ca_invalid",
            TlsError::NoRoots => "tls_no_roots",
        }
    }
}

/// Loaded TLS settings: what every outgoing client of the gateway trusts. The default
/// trusts the platform's roots only.
#[derive(Clone, Debug)]
pub struct Tls {
    extra_roots: Vec<reqwest::Certificate>,
    platform_roots: bool,
}

impl Default for Tls {
    fn default() -> Self {
        Self {
            extra_roots: Vec::new(),
            platform_roots: true,
        }
    }
}

impl Tls {
    /// Reads the CA file of `config`, if any.
    pub fn load(config: &TlsConfig) -> Result<Self, TlsError> {
        let extra_roots = match &config.ca_file {
            Some(path) => read_pem(path)?,
            None if !config.platform_roots => return Err(TlsError::NoRoots),
            None => Vec::new(),
        };
        Ok(Self {
            extra_roots,
            platform_roots: config.platform_roots,
        })
    }

    /// Trusts the certificates of the PEM text `pem` in addition to the platform's roots
    /// (tests, and callers without a file).
    pub fn with_ca_pem(pem: &[u8]) -> Result<Self, TlsError> {
        Ok(Self {
            extra_roots: parse_pem(Path::new("<pem>"), pem)?,
            platform_roots: true,
        })
    }

    /// How many private CA certificates are trusted.
    pub fn extra_roots(&self) -> usize {
        self.extra_roots.len()
    }

    /// A client builder trusting these roots: the one place the gateway's outgoing HTTP
    /// clients start from (each caller adds its own timeouts and pooling).
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder().tls_backend_rustls();
        let roots = self.extra_roots.iter().cloned();
        if self.platform_roots {
            builder.tls_certs_merge(roots)
        } else {
            builder.tls_certs_only(roots)
        }
    }

    /// A client for the chain's JSON-RPC node with these roots (alloy's transport runs on
    /// the same reqwest), or `None` when the platform's defaults apply unchanged.
    pub fn rpc_client(&self) -> Result<Option<reqwest::Client>, reqwest::Error> {
        if self.extra_roots.is_empty() && self.platform_roots {
            return Ok(None);
        }
        self.client_builder().build().map(Some)
    }
}

fn read_pem(path: &Path) -> Result<Vec<reqwest::Certificate>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    parse_pem(path, &bytes)
}

fn parse_pem(path: &Path, bytes: &[u8]) -> Result<Vec<reqwest::Certificate>, TlsError> {
    let bad = |message: String| TlsError::BadPem {
        path: path.to_owned(),
        message,
    };
    let certs = reqwest::Certificate::from_pem_bundle(bytes).map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(
            "expected one or more -----BEGIN CERTIFICATE----- blocks".into(),
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_roots_and_an_empty_pem_are_refused() {
        let e = Tls::load(&TlsConfig {
            ca_file: None,
            platform_roots: false,
        })
        .expect_err("nothing trusted");
        assert_eq!(e.code(), "tls_no_roots");
        let e = Tls::with_ca_pem(b"not a certificate").expect_err("no PEM");
        assert_eq!(e.code(), "tls_ca_invalid");
        let e = Tls::load(&TlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            platform_roots: true,
        })
        .expect_err("no file");
        assert_eq!(e.code(), "tls_ca_unreadable");
    }

    #[test]
    fn the_default_builds_a_client() {
        let tls = Tls::default();
        assert!(tls.rpc_client().expect("client").is_none());
        tls.client_builder()
            .build()
            .expect("client with the platform's roots");
    }
}
