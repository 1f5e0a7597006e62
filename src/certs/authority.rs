//! lanrelay's local certificate authority. Created once in the certs directory
//! (`ca.crt`, and `ca.key` readable by the owner only), valid for ten years and named
//! after the host ("lanrelay CA on HOST") so people recognise it in their device's
//! settings. It issues the server certificate; a device that trusts the CA keeps
//! trusting every server certificate issued later, e.g. after a new DHCP lease.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use time::{Duration, OffsetDateTime};
use x509_cert::der::{Decode, Tag, Tagged};

use super::files::{write_private, write_public};
use super::inspect::{self, CertSummary};
use super::{CertError, CA_CERT_FILE, CA_KEY_FILE};

/// How long the CA is valid: long, so devices trust it once.
pub const CA_LIFETIME: Duration = Duration::days(3650);
/// How long a server certificate is valid, counted from its (backdated) start.
/// Browsers refuse leaf certificates valid for more than 398 days.
pub const LEAF_LIFETIME: Duration = Duration::days(397);
/// Server certificates start a day early, for devices whose clock is behind.
const BACKDATE: Duration = Duration::days(1);

/// The CA: its certificate, and the key that signs server certificates.
pub struct Authority {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    pub summary: CertSummary,
    issuer: Issuer<'static, KeyPair>,
}

/// A freshly issued server certificate and its key, PEM encoded.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Authority {
    /// Loads `ca.crt`/`ca.key` from `dir`, or creates them when neither exists.
    pub fn load_or_create(
        dir: &Path,
        hostname: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Self, CertError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let cert_pem = super::read(&cert_path)?;
                let key_pem = super::read(&key_path)?;
                Self::from_pem(&cert_pem, &key_pem).map_err(|reason| CertError::Invalid {
                    path: cert_path,
                    reason,
                })
            }
            (false, false) => Self::create(dir, hostname, now),
            (true, false) => Err(CertError::Unusable(format!(
                "{} exists but {} does not: restore the key, or remove both to create a \
                 new CA (devices then have to trust the new one)",
                cert_path.display(),
                key_path.display()
            ))),
            (false, true) => Err(CertError::Unusable(format!(
                "{} exists but {} does not: restore the certificate, or remove both to \
                 create a new CA (devices then have to trust the new one)",
                key_path.display(),
                cert_path.display()
            ))),
        }
    }

    /// Creates a new CA and writes it to `dir`.
    pub fn create(
        dir: &Path,
        hostname: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Self, CertError> {
        std::fs::create_dir_all(dir).map_err(|e| CertError::io(dir, e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            match hostname {
                Some(h) => format!("lanrelay CA on {h}"),
                None => "lanrelay CA".to_string(),
            },
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, "lanrelay");
        params.distinguished_name.push(
            DnType::OrganizationalUnitName,
            format!("created {}", now.date()),
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_LIFETIME;
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let key_path = dir.join(CA_KEY_FILE);
        let cert_path = dir.join(CA_CERT_FILE);
        write_private(&key_path, key.serialize_pem().as_bytes())
            .map_err(|e| CertError::io(&key_path, e))?;
        write_public(&cert_path, cert.pem().as_bytes())
            .map_err(|e| CertError::io(&cert_path, e))?;
        let summary = inspect::summarize(cert.der()).map_err(|e| CertError::Invalid {
            path: cert_path.clone(),
            reason: e.to_string(),
        })?;
        tracing::info!(
            path = %cert_path.display(),
            name = %summary.subject,
            sha256 = %summary.sha256,
            "created lanrelay's certificate authority"
        );
        Ok(Authority {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            summary,
            issuer: Issuer::new(params, key),
        })
    }

    /// A CA from its PEM certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let cert_der = inspect::pem_certificates(cert_pem)
            .into_iter()
            .next()
            .ok_or("no certificate in the file")?;
        let summary = inspect::summarize(&cert_der).map_err(|e| e.to_string())?;
        if !summary.is_ca {
            return Err("not a CA certificate".into());
        }
        let key = KeyPair::from_pem(key_pem).map_err(|e| format!("the key: {e}"))?;
        if key.subject_public_key_info()
            != inspect::spki_der(&cert_der).map_err(|e| e.to_string())?
        {
            return Err("the key does not belong to the certificate".into());
        }
        // The issuer name in the server certificates must equal the CA's subject byte
        // for byte, so rebuild it with the same attribute types and string kinds.
        let mut params = CertificateParams::default();
        params.distinguished_name = subject_of(&cert_der)?;
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Ok(Authority {
            cert_pem: cert_pem.to_string(),
            cert_der,
            summary,
            issuer: Issuer::new(params, key),
        })
    }

    /// Issues a server certificate for `names` (DNS names and IP addresses), with a
    /// new key, valid from a day before `now` for [`LEAF_LIFETIME`].
    pub fn issue(
        &self,
        names: &[String],
        hostname: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Issued, CertError> {
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            match hostname {
                Some(h) => format!("lanrelay on {h}"),
                None => "lanrelay".to_string(),
            },
        );
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        // A new serial each time: Firefox refuses two certificates with the same
        // issuer and serial.
        params.serial_number = Some(random_serial());
        params.not_before = now - BACKDATE;
        params.not_after = params.not_before + LEAF_LIFETIME;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Checks that `leaf` chains to this CA and is valid for `name` at `now`, as a
    /// browser that trusts the CA would.
    pub fn verify(
        &self,
        leaf: &CertificateDer<'_>,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert_der.clone())?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        verifier.verify_server_cert(
            leaf,
            &[],
            &name,
            &[],
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs)),
        )?;
        Ok(())
    }

    /// Writes an issued certificate to `cert_path`/`key_path` (the key first, mode
    /// 0600).
    pub fn write(issued: &Issued, cert_path: &Path, key_path: &Path) -> Result<(), CertError> {
        write_private(key_path, issued.key_pem.as_bytes())
            .map_err(|e| CertError::io(key_path, e))?;
        write_public(cert_path, issued.cert_pem.as_bytes()).map_err(|e| CertError::io(cert_path, e))
    }
}

/// 16 random bytes, positive as a DER integer.
fn random_serial() -> SerialNumber {
    let mut b: [u8; 16] = rand::random();
    b[0] &= 0x7f;
    b[0] |= 0x01;
    SerialNumber::from_slice(&b)
}

/// The certificate's subject as an rcgen name with the same encoding.
fn subject_of(cert: &[u8]) -> Result<DistinguishedName, String> {
    let cert = x509_cert::Certificate::from_der(cert).map_err(|e| e.to_string())?;
    let mut dn = DistinguishedName::new();
    for attr in cert.tbs_certificate().subject().iter() {
        let oid: Vec<u64> = attr.oid.arcs().map(u64::from).collect();
        let text = std::str::from_utf8(attr.value.value())
            .map_err(|_| "the CA's name is not text")?
            .to_string();
        let value = match attr.value.tag() {
            Tag::Utf8String => DnValue::Utf8String(text),
            Tag::PrintableString => DnValue::PrintableString(
                text.try_into()
                    .map_err(|_| "the CA's name is not a printable string")?,
            ),
            other => {
                return Err(format!(
                    "the CA's name uses an unsupported string type {other}"
                ))
            }
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> std::path::PathBuf {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let d =
            std::env::temp_dir().join(format!("lanrelay-ca-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn created_then_loaded_issues_verifiable_certificates() {
        let dir = temp("roundtrip");
        let now = OffsetDateTime::now_utc();
        let created = Authority::load_or_create(&dir, Some("box"), now).unwrap();
        assert_eq!(created.summary.subject, "lanrelay CA on box");
        assert!(created.summary.is_ca);
        let days = (created.summary.not_after - now).whole_days();
        assert!((3649..=3650).contains(&days), "{days}");
        let loaded = Authority::load_or_create(&dir, Some("other"), now).unwrap();
        assert_eq!(loaded.cert_pem, created.cert_pem, "the CA is reused");

        let names: Vec<String> = ["localhost", "box.local", "192.0.2.3", "2001:db8::3"]
            .map(String::from)
            .to_vec();
        let issued = loaded.issue(&names, Some("box"), now).unwrap();
        let leaf = inspect::pem_certificates(&issued.cert_pem).remove(0);
        for n in &names {
            created.verify(&leaf, n, now).unwrap();
        }
        assert!(created.verify(&leaf, "192.0.2.99", now).is_err());
        assert!(created.verify(&leaf, "example.com", now).is_err());
        let s = inspect::summarize(&leaf).unwrap();
        assert_eq!(s.issuer, "lanrelay CA on box");
        assert_eq!(s.not_after - s.not_before, LEAF_LIFETIME);
        assert!(created
            .verify(&leaf, "localhost", now + LEAF_LIFETIME)
            .is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lone_ca_file_is_an_error_not_a_new_ca() {
        let dir = temp("lone");
        let now = OffsetDateTime::now_utc();
        Authority::create(&dir, None, now).unwrap();
        std::fs::remove_file(dir.join(CA_KEY_FILE)).unwrap();
        assert!(matches!(
            Authority::load_or_create(&dir, None, now),
            Err(CertError::Unusable(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_key_of_another_ca_is_refused() {
        let (a, b) = (temp("a"), temp("b"));
        let now = OffsetDateTime::now_utc();
        let ca_a = Authority::create(&a, None, now).unwrap();
        Authority::create(&b, None, now).unwrap();
        let other_key = std::fs::read_to_string(b.join(CA_KEY_FILE)).unwrap();
        assert!(Authority::from_pem(&ca_a.cert_pem, &other_key).is_err());
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::remove_dir_all(&b).unwrap();
    }
}
