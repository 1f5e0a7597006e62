//! The names a server certificate must cover: every address and name a device may use
//! to reach this machine (LAN addresses, loopback, the host name, `HOST.local`,
//! `localhost`, and what `--advertise`/`--hostname` add).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The subject alternative names for the server certificate: DNS names first (in the
/// order given, lower case, without duplicates), then IP addresses (sorted).
///
/// `machine` is the machine's host name; `hostnames` come from `--hostname`; `ips`
/// are the addresses the server is reachable at.
pub fn server_names(machine: Option<&str>, hostnames: &[String], ips: &[IpAddr]) -> Vec<String> {
    let mut dns: Vec<String> = vec!["localhost".into()];
    if let Some(h) = machine.filter(|h| is_dns_name(h)) {
        let h = h.to_ascii_lowercase();
        // mDNS answers for the first label: "box.lan" is reached as "box.local".
        let first = h.split('.').next().unwrap_or(&h).to_string();
        dns.push(h);
        dns.push(format!("{first}.local"));
    }
    dns.extend(
        hostnames
            .iter()
            .filter(|h| is_dns_name(h))
            .map(|h| h.to_ascii_lowercase()),
    );
    let mut out: Vec<String> = Vec::new();
    for d in dns {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    let mut ips = ips.to_vec();
    ips.extend([
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ]);
    ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    ips.dedup();
    out.extend(ips.iter().map(IpAddr::to_string));
    out
}

/// The addresses to put in the server certificate: the advertised ones, plus the
/// HTTPS listen address when it is concrete, else every LAN address of the machine
/// (the HTTPS port is reachable on all of them).
pub fn reachable_ips(https: SocketAddr, advertised: &[IpAddr], lan: &[IpAddr]) -> Vec<IpAddr> {
    let mut ips = advertised.to_vec();
    if https.ip().is_unspecified() {
        ips.extend_from_slice(lan);
    } else {
        ips.push(https.ip());
    }
    ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    ips.dedup();
    ips
}

/// A DNS name lanrelay accepts: ASCII letters, digits, '-' and '.', labels of 1–63
/// characters not starting or ending with '-', at most 253 characters.
pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_and_address_once() {
        let ips: Vec<IpAddr> = ["192.0.2.4", "2001:db8::4", "127.0.0.1"]
            .map(|s| s.parse().unwrap())
            .to_vec();
        let names = server_names(Some("Box.lan"), &["relay.example.org".into()], &ips);
        assert_eq!(
            names,
            [
                "localhost",
                "box.lan",
                "box.local",
                "relay.example.org",
                "127.0.0.1",
                "192.0.2.4",
                "::1",
                "2001:db8::4"
            ]
        );
        // A host name that is not a DNS name is left out rather than failing.
        assert_eq!(
            server_names(Some("my_box"), &[], &[]),
            ["localhost", "127.0.0.1", "::1"]
        );
        assert_eq!(
            server_names(Some("box"), &["box.local".into()], &[])[..3],
            ["localhost", "box", "box.local"]
        );
    }

    #[test]
    fn reachable_addresses_follow_the_listen_address() {
        let lan: Vec<IpAddr> = vec!["192.0.2.4".parse().unwrap(), "fd00::4".parse().unwrap()];
        let adv: Vec<IpAddr> = vec!["198.51.100.1".parse().unwrap()];
        let any: SocketAddr = "0.0.0.0:8443".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert_eq!(reachable_ips(any, &adv, &lan), [lan[0], adv[0], lan[1]]);
        assert_eq!(reachable_ips(lo, &[lo.ip()], &lan), [lo.ip()]);
    }

    #[test]
    fn dns_names() {
        for ok in ["localhost", "a", "box.local", "x-1.example.org"] {
            assert!(is_dns_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a..b",
            "box.local.",
            "a b",
            "a_b",
            "ä.de",
            "a/b",
            &"x".repeat(64),
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }
}
