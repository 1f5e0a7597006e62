//! Reading a certificate back: its names, validity, issuer and fingerprints, for the
//! reuse-or-reissue decision, the expiry warnings, the install page and `lanrelay
//! certs`. Parsing only; nothing here trusts or verifies anything.

use std::net::IpAddr;

use rustls::pki_types::{pem::PemObject, CertificateDer};
use time::OffsetDateTime;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::Certificate;

/// Warn, and re-issue lanrelay's own server certificate, this long before it expires.
pub const RENEW_BEFORE: time::Duration = time::Duration::days(30);

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject's common name (or the whole subject when it has none).
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses from the subject alternative names, as written.
    pub names: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub is_ca: bool,
    /// SHA-256 of the DER encoding, `AB:CD:…` (what browsers and phones show).
    pub sha256: String,
    /// SHA-1 of the DER encoding (the "thumbprint" Windows shows).
    pub sha1: String,
}

/// Why a certificate could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("no PEM certificate found")]
    NoCertificate,
    #[error("not a valid X.509 certificate: {0}")]
    Der(#[from] x509_cert::der::Error),
}

/// The DER certificates of a PEM file, in order (the first is the end entity).
pub fn pem_certificates(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

/// Summarises the first certificate of a PEM file.
pub fn summarize_pem(pem: &str) -> Result<CertSummary, InspectError> {
    let first = pem_certificates(pem)
        .into_iter()
        .next()
        .ok_or(InspectError::NoCertificate)?;
    summarize(&first)
}

/// Summarises one DER certificate.
pub fn summarize(der: &[u8]) -> Result<CertSummary, InspectError> {
    let cert = Certificate::from_der(der)?;
    let tbs = cert.tbs_certificate();
    let mut names = Vec::new();
    if let Some((_, san)) = tbs.get_extension::<SubjectAltName>()? {
        for name in san.0 {
            match name {
                GeneralName::DnsName(dns) => names.push(dns.as_str().to_string()),
                GeneralName::IpAddress(ip) => {
                    if let Some(ip) = ip_from_bytes(ip.as_bytes()) {
                        names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let is_ca = tbs
        .get_extension::<BasicConstraints>()?
        .is_some_and(|(_, bc)| bc.ca);
    let validity = tbs.validity();
    Ok(CertSummary {
        subject: display_name(tbs.subject()),
        issuer: display_name(tbs.issuer()),
        names,
        not_before: to_datetime(validity.not_before.to_unix_duration()),
        not_after: to_datetime(validity.not_after.to_unix_duration()),
        is_ca,
        sha256: fingerprint(&aws_lc_rs::digest::SHA256, der),
        sha1: fingerprint(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der),
    })
}

/// The DER SubjectPublicKeyInfo of a certificate, to match it with a private key.
pub fn spki_der(cert: &[u8]) -> Result<Vec<u8>, InspectError> {
    use x509_cert::der::Encode;
    let cert = Certificate::from_der(cert)?;
    Ok(cert.tbs_certificate().subject_public_key_info().to_der()?)
}

/// Whether `key_pem` (PKCS#8, as lanrelay writes keys) is the key of `cert`.
pub fn key_matches(cert: &[u8], key_pem: &str) -> bool {
    use rcgen::PublicKeyData;
    match (rcgen::KeyPair::from_pem(key_pem), spki_der(cert)) {
        (Ok(key), Ok(spki)) => key.subject_public_key_info() == spki,
        _ => false,
    }
}

/// The names in `wanted` that the certificate does not cover (IP addresses compared
/// as addresses, DNS names without regard to case; no wildcards: lanrelay never
/// issues them, and a custom wildcard certificate is simply reported as missing).
pub fn missing_names(summary: &CertSummary, wanted: &[String]) -> Vec<String> {
    wanted
        .iter()
        .filter(|w| !summary.names.iter().any(|n| same_name(n, w)))
        .cloned()
        .collect()
}

fn same_name(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

/// How soon a certificate expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// More than [`RENEW_BEFORE`] left.
    Fine {
        days: i64,
    },
    /// Within [`RENEW_BEFORE`]: time to renew.
    Soon {
        days: i64,
    },
    Expired,
}

/// Where `not_after` stands at `now`.
pub fn expiry(not_after: OffsetDateTime, now: OffsetDateTime) -> Expiry {
    let left = not_after - now;
    if left <= time::Duration::ZERO {
        Expiry::Expired
    } else if left <= RENEW_BEFORE {
        Expiry::Soon {
            days: left.whole_days(),
        }
    } else {
        Expiry::Fine {
            days: left.whole_days(),
        }
    }
}

/// `2026-12-27 10:04 UTC`.
pub fn format_date(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// Upper-case hex bytes joined by colons.
fn fingerprint(alg: &'static aws_lc_rs::digest::Algorithm, der: &[u8]) -> String {
    aws_lc_rs::digest::digest(alg, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The common name, else the RFC 4514 form of the whole name.
fn display_name(name: &Name) -> String {
    match name.common_name() {
        Ok(Some(cn)) => cn.value().into_owned(),
        _ => name.to_string(),
    }
}

fn to_datetime(since_epoch: std::time::Duration) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + since_epoch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str], days: i64) -> (String, OffsetDateTime) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test leaf");
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(days);
        let key = rcgen::KeyPair::generate().unwrap();
        (params.self_signed(&key).unwrap().pem(), now)
    }

    #[test]
    fn reads_names_dates_and_fingerprints() {
        let (pem, now) = cert(&["localhost", "box.local", "192.0.2.7", "2001:db8::7"], 90);
        let s = summarize_pem(&pem).unwrap();
        assert_eq!(s.subject, "test leaf");
        assert_eq!(
            s.names,
            ["localhost", "box.local", "192.0.2.7", "2001:db8::7"]
        );
        assert!(!s.is_ca);
        assert_eq!(s.sha256.len(), 32 * 3 - 1);
        assert_eq!(s.sha1.len(), 20 * 3 - 1);
        assert!(s.sha256.chars().all(|c| c == ':' || c.is_ascii_hexdigit()));
        assert!(
            (s.not_after - (now + time::Duration::days(90))).abs() < time::Duration::seconds(2)
        );
        assert_eq!(expiry(s.not_after, now), Expiry::Fine { days: 89 });
        assert!(matches!(
            summarize_pem("nothing here"),
            Err(InspectError::NoCertificate)
        ));
    }

    #[test]
    fn missing_names_compare_addresses_and_case() {
        let (pem, _) = cert(&["Box.Local", "2001:db8::7"], 90);
        let s = summarize_pem(&pem).unwrap();
        let wanted = ["box.local", "2001:DB8:0::7", "192.0.2.8", "other"].map(String::from);
        assert_eq!(missing_names(&s, &wanted), ["192.0.2.8", "other"]);
    }

    #[test]
    fn expiry_thresholds() {
        let now = OffsetDateTime::now_utc();
        let d = time::Duration::days;
        assert_eq!(expiry(now + d(31), now), Expiry::Fine { days: 31 });
        assert_eq!(expiry(now + d(30), now), Expiry::Soon { days: 30 });
        assert_eq!(expiry(now + d(2), now), Expiry::Soon { days: 2 });
        assert_eq!(expiry(now - d(1), now), Expiry::Expired);
        assert_eq!(
            format_date(
                time::Date::from_calendar_date(2026, time::Month::March, 4)
                    .unwrap()
                    .with_hms(5, 6, 0)
                    .unwrap()
                    .assume_utc()
            ),
            "2026-03-04 05:06 UTC"
        );
    }
}
