//! `lanrelay certs`: shows the CA's fingerprint (to compare with what a phone shows)
//! and the server certificate's names and expiry; `--renew` issues a new server
//! certificate from the same CA. Nothing is created without `--renew`.

use std::fmt::Write;
use std::path::Path;

use time::OffsetDateTime;

use super::inspect::{self, CertSummary, Expiry};
use super::{Authority, CertError, Source, Wanted, CA_CERT_FILE, CA_KEY_FILE};

/// Runs the command and returns its report.
pub fn run(
    source: &Source,
    wanted: &Wanted,
    renew: bool,
    now: OffsetDateTime,
) -> Result<String, CertError> {
    let (cert_path, key_path) = source.leaf_paths();
    let mut out = String::new();
    match source {
        Source::Files { .. } => {
            if renew {
                return Err(CertError::Unusable(format!(
                    "--renew works with lanrelay's own CA; {} is your own certificate \
                     (--cert): renew it with the tool that issued it, lanrelay reloads it",
                    cert_path.display()
                )));
            }
            let _ = writeln!(
                out,
                "lanrelay serves your own certificate (--cert); it has no CA of its own."
            );
        }
        Source::LocalCa { dir } => {
            let ca_path = dir.join(CA_CERT_FILE);
            let ca = if renew {
                let ca = Authority::load_or_create(dir, wanted.hostname.as_deref(), now)?;
                let issued = ca.issue(&wanted.names, wanted.hostname.as_deref(), now)?;
                Authority::write(&issued, &cert_path, &key_path)?;
                let _ = writeln!(
                    out,
                    "Issued a new server certificate (a running lanrelay loads it within seconds).\n"
                );
                ca
            } else if ca_path.exists() || dir.join(CA_KEY_FILE).exists() {
                Authority::load_or_create(dir, wanted.hostname.as_deref(), now)?
            } else {
                let _ = writeln!(
                    out,
                    "No certificate authority in {} yet: lanrelay creates it on its first \
                     start (or run `lanrelay certs --renew` to create it now).",
                    dir.display()
                );
                return Ok(out);
            };
            let _ = writeln!(out, "Certificate authority: {}", ca.summary.subject);
            let _ = writeln!(
                out,
                "  file:      {} (install it on each device: see the /trust page)",
                ca_path.display()
            );
            let _ = writeln!(out, "  SHA-256:   {}", ca.summary.sha256);
            let _ = writeln!(out, "  SHA-1:     {}", ca.summary.sha1);
            let _ = writeln!(out, "  valid:     {}", validity(&ca.summary, now));
            let _ = writeln!(out);
        }
    }
    describe_leaf(&mut out, &cert_path, wanted, now);
    Ok(out)
}

fn describe_leaf(out: &mut String, path: &Path, wanted: &Wanted, now: OffsetDateTime) {
    let _ = writeln!(out, "Server certificate: {}", path.display());
    let summary = match std::fs::read_to_string(path) {
        Err(e) => {
            let _ = writeln!(out, "  cannot be read: {e}");
            return;
        }
        Ok(pem) => match inspect::summarize_pem(&pem) {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(out, "  cannot be read: {e}");
                return;
            }
        },
    };
    let _ = writeln!(out, "  subject:   {}", summary.subject);
    let _ = writeln!(out, "  issued by: {}", summary.issuer);
    let _ = writeln!(out, "  names:     {}", summary.names.join(", "));
    let _ = writeln!(out, "  valid:     {}", validity(&summary, now));
    let _ = writeln!(out, "  SHA-256:   {}", summary.sha256);
    let missing = inspect::missing_names(&summary, &wanted.names);
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "  missing:   {} (restart lanrelay or run `lanrelay certs --renew` to cover them)",
            missing.join(", ")
        );
    }
}

fn validity(s: &CertSummary, now: OffsetDateTime) -> String {
    let until = inspect::format_date(s.not_after);
    match inspect::expiry(s.not_after, now) {
        Expiry::Fine { days } => format!("until {until} ({days} days left)"),
        Expiry::Soon { days } => format!("until {until} (EXPIRES in {days} days)"),
        Expiry::Expired => format!("EXPIRED on {until}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_nothing_new_then_renews_keeping_the_ca() {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let dir = std::env::temp_dir().join(format!("lanrelay-cmd-{}-{nanos}", std::process::id()));
        let source = Source::LocalCa { dir: dir.clone() };
        let wanted = Wanted {
            names: vec!["localhost".into(), "192.0.2.5".into()],
            hostname: Some("box".into()),
        };
        let now = OffsetDateTime::now_utc();
        let out = run(&source, &wanted, false, now).unwrap();
        assert!(out.contains("No certificate authority"), "{out}");
        assert!(!dir.join(CA_CERT_FILE).exists());

        let out = run(&source, &wanted, true, now).unwrap();
        assert!(
            out.contains("Certificate authority: lanrelay CA on box"),
            "{out}"
        );
        assert!(out.contains("names:     localhost, 192.0.2.5"), "{out}");
        assert!(out.contains("days left)"), "{out}");
        let ca = std::fs::read(dir.join(CA_CERT_FILE)).unwrap();
        let leaf = std::fs::read(dir.join(super::super::CERT_FILE)).unwrap();

        let more = Wanted {
            names: vec!["localhost".into(), "192.0.2.6".into()],
            ..wanted.clone()
        };
        let out = run(&source, &more, false, now).unwrap();
        assert!(out.contains("missing:   192.0.2.6"), "{out}");
        run(&source, &more, true, now).unwrap();
        assert_eq!(
            std::fs::read(dir.join(CA_CERT_FILE)).unwrap(),
            ca,
            "same CA"
        );
        assert_ne!(
            std::fs::read(dir.join(super::super::CERT_FILE)).unwrap(),
            leaf
        );
        let files = Source::Files {
            cert: dir.join(super::super::CERT_FILE),
            key: dir.join(super::super::KEY_FILE),
        };
        assert!(run(&files, &more, true, now).is_err());
        assert!(run(&files, &more, false, now)
            .unwrap()
            .contains("your own certificate"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
