//! The iOS/iPadOS configuration profile that installs lanrelay's CA: an XML property
//! list with one `com.apple.security.root` payload holding the DER certificate. Its
//! identifiers and UUIDs are derived from the CA's fingerprint, so downloading it
//! again gives the same profile (iOS then offers to replace, not to add a second).

use base64::Engine;

/// The profile for a CA certificate (`der`) named `name`.
pub fn profile(der: &[u8], name: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let id: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cert_b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let wrapped: Vec<&str> = cert_b64
        .as_bytes()
        .chunks(52)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    let name = xml_escape(name);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PayloadContent</key>
	<array>
		<dict>
			<key>PayloadCertificateFileName</key>
			<string>lanrelay-ca.cer</string>
			<key>PayloadContent</key>
			<data>
			{cert}
			</data>
			<key>PayloadDescription</key>
			<string>Adds the certificate authority of lanrelay, so its pages open without a warning.</string>
			<key>PayloadDisplayName</key>
			<string>{name}</string>
			<key>PayloadIdentifier</key>
			<string>lanrelay.ca.{id}.root</string>
			<key>PayloadType</key>
			<string>com.apple.security.root</string>
			<key>PayloadUUID</key>
			<string>{cert_uuid}</string>
			<key>PayloadVersion</key>
			<integer>1</integer>
		</dict>
	</array>
	<key>PayloadDescription</key>
	<string>Trust {name} for video calls with lanrelay on your local network.</string>
	<key>PayloadDisplayName</key>
	<string>{name}</string>
	<key>PayloadIdentifier</key>
	<string>lanrelay.ca.{id}</string>
	<key>PayloadOrganization</key>
	<string>lanrelay</string>
	<key>PayloadRemovalDisallowed</key>
	<false/>
	<key>PayloadType</key>
	<string>Configuration</string>
	<key>PayloadUUID</key>
	<string>{profile_uuid}</string>
	<key>PayloadVersion</key>
	<integer>1</integer>
</dict>
</plist>
"#,
        cert = wrapped.join("\n\t\t\t"),
        cert_uuid = uuid(der, "certificate"),
        profile_uuid = uuid(der, "profile"),
    )
}

/// A name-based UUID (version 5 layout) from the certificate and a purpose.
fn uuid(der: &[u8], purpose: &str) -> String {
    let mut input = purpose.as_bytes().to_vec();
    input.extend_from_slice(der);
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_certificate_with_stable_identifiers() {
        let der = b"not really a certificate, but bytes all the same".repeat(5);
        let p = profile(&der, "lanrelay CA on a&b");
        assert!(p.contains("<string>com.apple.security.root</string>"));
        assert!(p.contains("<string>lanrelay CA on a&amp;b</string>"));
        assert_eq!(p, profile(&der, "lanrelay CA on a&b"), "stable");
        let data = p
            .split("<data>")
            .nth(1)
            .and_then(|s| s.split("</data>").next())
            .unwrap();
        let b64: String = data.split_whitespace().collect();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(decoded, der);
        let uuids: Vec<&str> = p
            .split("<key>PayloadUUID</key>")
            .skip(1)
            .filter_map(|rest| rest.split("<string>").nth(1)?.split("</string>").next())
            .collect();
        assert_eq!(uuids.len(), 2);
        assert_ne!(uuids[0], uuids[1]);
        for u in uuids {
            assert_eq!(u.len(), 36);
            assert_eq!(&u[14..15], "5", "{u}");
            assert_eq!(u.matches('-').count(), 4);
        }
    }
}
