//! What `lanrelay` prints when it starts: the URLs to open, a QR code for each one a
//! phone can reach (scan it with the camera), and where a device installs lanrelay's
//! certificate authority so the page opens without a warning.

use std::fmt::Write;

use crate::qr;

/// What the banner shows.
pub(crate) struct Banner<'a> {
    /// The HTTPS URLs of the web app.
    pub(crate) urls: &'a [String],
    /// The install page on the plain-HTTP helper (empty when it is off).
    pub(crate) trust_urls: &'a [String],
    /// Whether lanrelay's own CA issues the certificate (else `--cert` is in use).
    pub(crate) own_ca: bool,
    /// Colour the QR codes black on white with ANSI escapes (a terminal).
    pub(crate) ansi: bool,
}

impl Banner<'_> {
    pub(crate) fn render(&self) -> String {
        let mut out = String::from("lanrelay is running. Open one of these on each device:\n");
        for u in self.urls {
            let _ = writeln!(out, "  {u}");
        }
        for u in self.urls.iter().filter(|u| !is_local(u)) {
            if let Ok(code) = qr::terminal(u, self.ansi) {
                let _ = writeln!(out, "\nScan with a phone's camera to open {u}");
                out.push_str(&code);
            }
        }
        if self.own_ca {
            match self.trust_urls.iter().find(|u| !is_local(u)) {
                Some(t) => {
                    let _ = writeln!(
                        out,
                        "\nFirst visit from a device? So that the page opens without a \
                         certificate warning, install lanrelay's certificate on it from\n  {t}"
                    );
                    if let Ok(code) = qr::terminal(t, self.ansi) {
                        out.push_str(&code);
                    }
                }
                None => match self.trust_urls.first() {
                    Some(t) => {
                        let _ = writeln!(
                            out,
                            "\nTo open the page without a certificate warning, install \
                             lanrelay's certificate: {t}"
                        );
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            "\nTo open the page without a certificate warning, install \
                             lanrelay's certificate: open /trust on one of the URLs above."
                        );
                    }
                },
            }
        }
        out
    }
}

/// A URL only this machine can open (loopback or localhost).
fn is_local(url: &str) -> bool {
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_codes_for_lan_urls_only() {
        let urls = [
            "https://192.0.2.2:8443/".to_string(),
            "https://[fd00::2]:8443/".to_string(),
            "https://localhost:8443/".to_string(),
        ];
        let trust = [
            "http://192.0.2.2:8080/trust".to_string(),
            "http://127.0.0.1:8080/trust".to_string(),
        ];
        let out = Banner {
            urls: &urls,
            trust_urls: &trust,
            own_ca: true,
            ansi: false,
        }
        .render();
        assert!(out.starts_with(
            "lanrelay is running. Open one of these on each device:\n  https://192.0.2.2:8443/\n"
        ));
        assert!(out.contains("Scan with a phone's camera to open https://192.0.2.2:8443/"));
        assert!(out.contains("Scan with a phone's camera to open https://[fd00::2]:8443/"));
        assert!(!out.contains("to open https://localhost"));
        assert!(out.contains("from\n  http://192.0.2.2:8080/trust\n"));
        assert!(out.contains('▀'));
        // On loopback only (the tests): no QR codes, one line about the CA.
        let out = Banner {
            urls: &["https://127.0.0.1:4000/".to_string()],
            trust_urls: &["http://127.0.0.1:4001/trust".to_string()],
            own_ca: true,
            ansi: false,
        }
        .render();
        assert!(!out.contains('▀'), "{out}");
        assert!(out.contains("certificate: http://127.0.0.1:4001/trust"));
        assert!(is_local("https://[::1]:1/") && !is_local("https://[fd00::1]:1/"));
    }
}
