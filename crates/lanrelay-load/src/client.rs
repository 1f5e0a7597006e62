//! Client connections to the server under test: the lanrelay signaling WebSocket over
//! TLS, and a minimal HTTP/1.1 client (one request per connection, over TLS or plain
//! TCP) for `/healthz` and for Janus's HTTP API.
//!
//! The load generator talks to servers on this machine with self-signed certificates,
//! so TLS accepts any certificate: it only needs encryption to be like a browser's,
//! not authentication.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::LoadError;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A TLS client configuration that accepts any server certificate.
pub fn tls_any_cert() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens the signaling WebSocket at `base` (`https://HOST:PORT`).
pub async fn connect_ws(base: &str, tls: &Arc<rustls::ClientConfig>) -> Result<Ws, LoadError> {
    let url = format!("{}/ws", base.trim_end_matches('/')).replacen("https://", "wss://", 1);
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        url,
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(tls.clone())),
    )
    .await
    .map_err(|e| LoadError::Signaling(format!("WebSocket: {e}")))?;
    Ok(ws)
}

/// An HTTP response: status and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// One HTTP/1.1 request on its own connection (`Connection: close`). `url` is
/// `http://` or `https://`; `body` makes it a JSON POST.
pub async fn request(
    url: &str,
    body: Option<&str>,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Response, LoadError> {
    request_as(url, body, None, tls).await
}

/// [`request`] with the bearer token `token` (the operator's).
pub async fn request_as(
    url: &str,
    body: Option<&str>,
    token: Option<&str>,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Response, LoadError> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let bad = || LoadError::Http(format!("bad URL {url}"));
    let (secure, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(authority)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:{}", if secure { 443 } else { 80 })
    };
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| LoadError::Http(format!("connect {addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let head = match body {
        Some(b) => format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\n{auth}Connection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            b.len()
        ),
        None => format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n{auth}Connection: close\r\n\r\n"),
    };
    if secure {
        let name = ServerName::try_from(host.to_string()).map_err(|_| bad())?;
        let tls = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| LoadError::Http(format!("TLS {addr}: {e}")))?;
        exchange(tls, &head, body).await
    } else {
        exchange(tcp, &head, body).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    head: &str,
    body: Option<&str>,
) -> Result<Response, LoadError> {
    let io = |e: std::io::Error| LoadError::Http(e.to_string());
    s.write_all(head.as_bytes()).await.map_err(io)?;
    if let Some(b) = body {
        s.write_all(b.as_bytes()).await.map_err(io)?;
    }
    s.flush().await.map_err(io)?;
    let mut buf = Vec::new();
    // A TLS peer that closes without close_notify still gave us the whole response.
    if let Err(e) = s.read_to_end(&mut buf).await {
        if buf.is_empty() {
            return Err(io(e));
        }
    }
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> Result<Response, LoadError> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| LoadError::Http("truncated HTTP response".into()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| LoadError::Http("no HTTP status".into()))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Response { status, body })
}

/// Decodes a chunked body (sizes in hex, each chunk followed by CRLF).
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "abcde"));
        assert!(parse_response(b"garbage").is_err());
    }
}
