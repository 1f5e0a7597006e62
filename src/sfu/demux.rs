//! Classifies datagrams on the shared media port and pulls the server's ICE username
//! fragment out of STUN binding requests, so each datagram reaches its peer in O(1)
//! without trying every peer (RFC 7983 demultiplexing, RFC 8489 message layout).
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

/// What a datagram on the media port carries, from its first byte (RFC 7983).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stun,
    Dtls,
    Rtp,
    Other,
}

/// Classifies a datagram by its first byte.
pub fn classify(buf: &[u8]) -> Kind {
    match buf.first() {
        Some(0..=3) => Kind::Stun,
        Some(20..=63) => Kind::Dtls,
        Some(128..=191) => Kind::Rtp,
        _ => Kind::Other,
    }
}

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// The receiver's ufrag from a STUN message's USERNAME (`"<receiver>:<sender>"`), i.e.
/// the server's own ufrag for a request from a browser. `None` for anything that is not
/// a well-formed STUN message with a username.
pub fn stun_local_ufrag(buf: &[u8]) -> Option<&str> {
    if buf.len() < 20 || buf[0] & 0xC0 != 0 || buf[4..8] != MAGIC_COOKIE {
        return None;
    }
    let body_len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let body = buf.get(20..20 + body_len)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let typ = u16::from_be_bytes([rest[0], rest[1]]);
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        let value = rest.get(4..4 + len)?;
        if typ == ATTR_USERNAME {
            let user = std::str::from_utf8(value).ok()?;
            let (receiver, _sender) = user.split_once(':')?;
            return Some(receiver);
        }
        // Attributes are padded to a multiple of four bytes.
        let padded = 4 + len.div_ceil(4) * 4;
        rest = rest.get(padded..)?;
    }
    None
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test's fake clock starts anywhere
mod tests {
    use super::*;

    fn stun_with_username(user: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A leading attribute with odd length to exercise padding.
        attrs.extend_from_slice(&0x8022u16.to_be_bytes());
        attrs.extend_from_slice(&3u16.to_be_bytes());
        attrs.extend_from_slice(b"abc\0");
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(user.len() as u16).to_be_bytes());
        attrs.extend_from_slice(user.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn finds_receiver_ufrag() {
        let m = stun_with_username("srvUfrag:browser");
        assert_eq!(classify(&m), Kind::Stun);
        assert_eq!(stun_local_ufrag(&m), Some("srvUfrag"));
    }

    #[test]
    fn garbage_is_not_stun() {
        assert_eq!(stun_local_ufrag(&[]), None);
        assert_eq!(stun_local_ufrag(&[0u8; 19]), None);
        assert_eq!(stun_local_ufrag(&[0u8; 40]), None);
        let mut m = stun_with_username("a:b");
        m[3] = 200; // length beyond the buffer
        assert_eq!(stun_local_ufrag(&m), None);
        let m = stun_with_username("nocolon");
        assert_eq!(stun_local_ufrag(&m), None);
    }

    #[test]
    fn classifies_by_first_byte() {
        assert_eq!(classify(&[22, 254, 253]), Kind::Dtls);
        assert_eq!(classify(&[0x80, 96]), Kind::Rtp);
        assert_eq!(classify(&[0xff]), Kind::Other);
        assert_eq!(classify(&[]), Kind::Other);
    }
}
