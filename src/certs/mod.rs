//! TLS for the HTTPS server. By default lanrelay runs a small certificate authority
//! of its own ([`authority`], kept in the certs directory) and serves a server
//! certificate issued by it for every name and address the server is reached by
//! ([`names`]). Devices trust the CA once (the install page at `/trust` explains how),
//! and keep trusting the server certificates issued later: a new one is issued on
//! start when the addresses changed or expiry is near. With `--cert/--key` the given
//! files are served instead and no CA is made. [`reload`] swaps in changed files
//! without a restart; [`command`] is `lanrelay certs`.

pub mod authority;
pub mod command;
mod files;
pub mod inspect;
pub mod mobileconfig;
pub mod names;
pub mod reload;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;
use tracing::{info, warn};

pub use authority::Authority;
use inspect::{CertSummary, Expiry};

/// The server certificate chain, in the certs directory.
pub const CERT_FILE: &str = "server.crt";
/// The server certificate's private key (mode 0600).
pub const KEY_FILE: &str = "server.key";
/// lanrelay's CA certificate: what devices install.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The CA's private key (mode 0600).
pub const CA_KEY_FILE: &str = "ca.key";

/// Errors while loading or creating certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{0}")]
    Unusable(String),
}

impl CertError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        CertError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Where the server certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Issued by lanrelay's own CA, all kept in this directory.
    LocalCa { dir: PathBuf },
    /// A certificate chain and key of one's own (`--cert`, `--key`).
    Files { cert: PathBuf, key: PathBuf },
}

impl Source {
    /// The files the server certificate and its key are read from.
    pub fn leaf_paths(&self) -> (PathBuf, PathBuf) {
        match self {
            Source::LocalCa { dir } => (dir.join(CERT_FILE), dir.join(KEY_FILE)),
            Source::Files { cert, key } => (cert.clone(), key.clone()),
        }
    }
}

/// What the server certificate must cover.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// DNS names and IP addresses, see [`names::server_names`].
    pub names: Vec<String>,
    /// The machine's host name, for the certificates' common names.
    pub hostname: Option<String>,
}

/// The TLS material the HTTPS server starts with.
pub struct Tls {
    /// lanrelay's CA, when it issues the server certificate.
    pub ca: Option<Arc<Authority>>,
    /// The server certificate chain (PEM) and its key.
    pub cert_pem: String,
    pub key_pem: String,
    pub summary: CertSummary,
}

impl Tls {
    /// The PEM a client should trust: the CA certificate, else the served chain.
    pub fn trust_pem(&self) -> &str {
        match &self.ca {
            Some(ca) => &ca.cert_pem,
            None => &self.cert_pem,
        }
    }
}

/// Loads the server certificate, creating the CA and (re-)issuing the server
/// certificate when needed.
pub fn prepare(source: &Source, wanted: &Wanted, now: OffsetDateTime) -> Result<Tls, CertError> {
    let (cert_path, key_path) = source.leaf_paths();
    let Source::LocalCa { dir } = source else {
        let cert_pem = read(&cert_path)?;
        let key_pem = read(&key_path)?;
        let summary = inspect::summarize_pem(&cert_pem).map_err(|e| CertError::Invalid {
            path: cert_path.clone(),
            reason: e.to_string(),
        })?;
        log_expiry(&summary, &cert_path, now);
        let missing = inspect::missing_names(&summary, &wanted.names);
        if !missing.is_empty() {
            info!(
                path = %cert_path.display(),
                ?missing,
                "the certificate does not name every address of this machine; devices must use one of its names"
            );
        }
        return Ok(Tls {
            ca: None,
            cert_pem,
            key_pem,
            summary,
        });
    };

    let ca = Arc::new(Authority::load_or_create(
        dir,
        wanted.hostname.as_deref(),
        now,
    )?);
    match inspect::expiry(ca.summary.not_after, now) {
        Expiry::Fine { .. } => {}
        Expiry::Soon { .. } | Expiry::Expired => warn!(
            until = %inspect::format_date(ca.summary.not_after),
            "lanrelay's CA expires soon: remove {} and {} and restart to create a new one \
             (devices then have to trust the new CA)",
            dir.join(CA_CERT_FILE).display(),
            dir.join(CA_KEY_FILE).display()
        ),
    }
    match reusable(&ca, &cert_path, &key_path, &wanted.names, now) {
        Ok((cert_pem, key_pem, summary)) => Ok(Tls {
            ca: Some(ca),
            cert_pem,
            key_pem,
            summary,
        }),
        Err(reason) => {
            let issued = ca.issue(&wanted.names, wanted.hostname.as_deref(), now)?;
            Authority::write(&issued, &cert_path, &key_path)?;
            let summary =
                inspect::summarize_pem(&issued.cert_pem).map_err(|e| CertError::Invalid {
                    path: cert_path.clone(),
                    reason: e.to_string(),
                })?;
            info!(
                path = %cert_path.display(),
                names = ?summary.names,
                until = %inspect::format_date(summary.not_after),
                "issued a new server certificate from lanrelay's CA: {reason}"
            );
            Ok(Tls {
                ca: Some(ca),
                cert_pem: issued.cert_pem,
                key_pem: issued.key_pem,
                summary,
            })
        }
    }
}

/// The existing server certificate, if it can be served as it is; else why not.
fn reusable(
    ca: &Authority,
    cert_path: &Path,
    key_path: &Path,
    wanted: &[String],
    now: OffsetDateTime,
) -> Result<(String, String, CertSummary), String> {
    let (Ok(cert_pem), Ok(key_pem)) = (
        std::fs::read_to_string(cert_path),
        std::fs::read_to_string(key_path),
    ) else {
        return Err("there was none".into());
    };
    let leaf = inspect::pem_certificates(&cert_pem)
        .into_iter()
        .next()
        .ok_or("the old one could not be read")?;
    let summary = inspect::summarize(&leaf).map_err(|e| format!("the old one is invalid: {e}"))?;
    if let Expiry::Soon { .. } | Expiry::Expired = inspect::expiry(summary.not_after, now) {
        return Err(format!(
            "the old one expires on {}",
            inspect::format_date(summary.not_after)
        ));
    }
    if ca.verify(&leaf, "localhost", now).is_err() {
        return Err("the old one was not issued by this CA".into());
    }
    if !inspect::key_matches(&leaf, &key_pem) {
        return Err(format!("{} does not match it", key_path.display()));
    }
    let missing = inspect::missing_names(&summary, wanted);
    if !missing.is_empty() {
        return Err(format!(
            "the old one does not cover {} (the addresses or names changed)",
            missing.join(", ")
        ));
    }
    Ok((cert_pem, key_pem, summary))
}

/// Logs a warning when a certificate expires within [`inspect::RENEW_BEFORE`].
pub fn log_expiry(summary: &CertSummary, path: &Path, now: OffsetDateTime) {
    let until = inspect::format_date(summary.not_after);
    match inspect::expiry(summary.not_after, now) {
        Expiry::Fine { .. } => {}
        Expiry::Soon { days } => warn!(
            path = %path.display(),
            %until,
            "the TLS certificate expires in {days} days: renew it (lanrelay reloads the file when it changes)"
        ),
        Expiry::Expired => warn!(
            path = %path.display(),
            %until,
            "the TLS certificate has EXPIRED: browsers refuse it; renew it (lanrelay reloads the file when it changes)"
        ),
    }
}

fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|e| CertError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let d = std::env::temp_dir().join(format!(
            "lanrelay-prepare-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn wanted(names: &[&str]) -> Wanted {
        Wanted {
            names: names.iter().map(|s| s.to_string()).collect(),
            hostname: Some("box".into()),
        }
    }

    #[test]
    fn reuses_then_reissues_on_new_names_and_near_expiry() {
        let dir = temp("reissue");
        let source = Source::LocalCa { dir: dir.clone() };
        let now = OffsetDateTime::now_utc();
        let first = prepare(&source, &wanted(&["localhost", "192.0.2.1"]), now).unwrap();
        let ca_pem = first.trust_pem().to_string();
        let again = prepare(&source, &wanted(&["localhost", "192.0.2.1"]), now).unwrap();
        assert_eq!(again.cert_pem, first.cert_pem, "reused");
        // Fewer names are still covered.
        let fewer = prepare(&source, &wanted(&["localhost"]), now).unwrap();
        assert_eq!(fewer.cert_pem, first.cert_pem, "reused");
        let moved = prepare(&source, &wanted(&["localhost", "192.0.2.2"]), now).unwrap();
        assert_ne!(moved.cert_pem, first.cert_pem, "re-issued");
        assert_eq!(moved.trust_pem(), ca_pem, "same CA");
        assert_eq!(moved.summary.names, ["localhost", "192.0.2.2"]);
        let later = now + authority::LEAF_LIFETIME - time::Duration::days(10);
        let renewed = prepare(&source, &wanted(&["localhost", "192.0.2.2"]), later).unwrap();
        assert_ne!(renewed.cert_pem, moved.cert_pem, "renewed before expiry");
        assert_eq!(renewed.trust_pem(), ca_pem);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_old_self_signed_certificate_is_replaced() {
        let dir = temp("upgrade");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join(CERT_FILE), cert.pem()).unwrap();
        std::fs::write(dir.join(KEY_FILE), key.serialize_pem()).unwrap();
        let source = Source::LocalCa { dir: dir.clone() };
        let tls = prepare(&source, &wanted(&["localhost"]), OffsetDateTime::now_utc()).unwrap();
        assert_ne!(tls.cert_pem, cert.pem());
        assert_eq!(tls.summary.issuer, "lanrelay CA on box");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn custom_files_are_served_as_they_are() {
        let dir = temp("custom");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["relay.example.org".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let source = Source::Files { cert: c, key: k };
        let tls = prepare(&source, &wanted(&["localhost"]), OffsetDateTime::now_utc()).unwrap();
        assert!(tls.ca.is_none());
        assert_eq!(tls.trust_pem(), cert.pem());
        assert!(!dir.join(CA_CERT_FILE).exists(), "no CA is made");
        let missing = Source::Files {
            cert: dir.join("nope.pem"),
            key: dir.join("k.pem"),
        };
        assert!(matches!(
            prepare(&missing, &wanted(&[]), OffsetDateTime::now_utc()),
            Err(CertError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
