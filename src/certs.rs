//! The HTTPS certificate: loaded from the certificate directory, or generated with
//! rcgen on first start (private key readable by the owner only) and reused afterwards.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::info;

/// Errors while loading or creating certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate directory {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("generating the certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A certificate chain and its private key, PEM encoded.
#[derive(Debug, Clone)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_path: PathBuf,
}

pub const CERT_FILE: &str = "server.crt";
pub const KEY_FILE: &str = "server.key";

/// Loads `server.crt`/`server.key` from `dir`, creating them if absent. The generated
/// certificate names `localhost`, the loopback addresses, the host name and `ips`.
pub fn load_or_generate(
    dir: &Path,
    ips: &[IpAddr],
    hostname: Option<&str>,
) -> Result<CertPair, CertError> {
    let io = |e| CertError::Io(dir.to_path_buf(), e);
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    if cert_path.exists() && key_path.exists() {
        return Ok(CertPair {
            cert_pem: fs::read_to_string(&cert_path).map_err(io)?,
            key_pem: fs::read_to_string(&key_path).map_err(io)?,
            cert_path,
        });
    }
    fs::create_dir_all(dir).map_err(io)?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Some(h) = hostname {
        names.push(h.to_string());
        names.push(format!("{h}.local"));
    }
    names.extend(ips.iter().map(IpAddr::to_string));
    names.sort();
    names.dedup();
    let mut params = rcgen::CertificateParams::new(names.clone())?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("lanrelay {}", hostname.unwrap_or("server")),
    );
    // Browsers refuse leaf certificates valid for more than 398 days.
    let now = time_now();
    params.not_before = now - rcgen_days(1);
    params.not_after = now + rcgen_days(397);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write_private(&key_path, key.serialize_pem().as_bytes()).map_err(io)?;
    fs::write(&cert_path, cert.pem()).map_err(io)?;
    info!(path = %cert_path.display(), ?names, "generated a TLS certificate");
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_path,
    })
}

/// Writes a file only its owner can read (mode 0600), replacing any old one.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn rcgen_days(n: i64) -> time::Duration {
    time::Duration::days(n)
}
