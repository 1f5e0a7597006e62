//! The machine's addresses: which to advertise in ICE candidates and print as URLs.

use std::net::{IpAddr, SocketAddr};

/// The addresses other devices on the LAN can reach this machine at: non-loopback,
/// non-link-local IPv4 and global (or unique-local) IPv6, in a stable order.
pub fn lan_addresses() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| usable_lan_ip(*ip))
        .collect();
    out.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    out.dedup();
    out
}

fn usable_lan_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
        IpAddr::V6(v6) => {
            let seg0 = v6.segments()[0];
            let link_local = seg0 & 0xffc0 == 0xfe80;
            !v6.is_loopback() && !v6.is_unspecified() && !link_local && !v6.is_multicast()
        }
    }
}

/// The addresses to advertise: the configured ones, else a concrete listen address,
/// else the machine's LAN addresses, else loopback (so a lone machine still works).
pub fn advertise_addresses(
    configured: &[IpAddr],
    media: SocketAddr,
    https: SocketAddr,
) -> Vec<IpAddr> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    for a in [media, https] {
        if !a.ip().is_unspecified() {
            return vec![a.ip()];
        }
    }
    let lan = lan_addresses();
    if lan.is_empty() {
        return vec![IpAddr::from([127, 0, 0, 1])];
    }
    lan
}

/// `https://IP:PORT/` with IPv6 in brackets.
pub fn https_url(ip: IpAddr, port: u16) -> String {
    format!("https://{}/", SocketAddr::new(ip, port))
}

/// The machine's host name, if it has one.
pub fn hostname() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim();
    (!h.is_empty()).then(|| h.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_and_concrete_addresses_win() {
        let any: SocketAddr = "0.0.0.0:8443".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(advertise_addresses(&[ip], any, any), vec![ip]);
        assert_eq!(advertise_addresses(&[], lo, any), vec![lo.ip()]);
        assert_eq!(advertise_addresses(&[], any, lo), vec![lo.ip()]);
        assert!(!advertise_addresses(&[], any, any).is_empty());
    }

    #[test]
    fn lan_filter() {
        assert!(usable_lan_ip("192.168.1.4".parse().unwrap()));
        assert!(!usable_lan_ip("127.0.0.1".parse().unwrap()));
        assert!(!usable_lan_ip("169.254.3.3".parse().unwrap()));
        assert!(!usable_lan_ip("fe80::1".parse().unwrap()));
        assert!(usable_lan_ip("2001:db8::5".parse().unwrap()));
        assert_eq!(
            https_url("::1".parse().unwrap(), 8443),
            "https://[::1]:8443/"
        );
    }
}
