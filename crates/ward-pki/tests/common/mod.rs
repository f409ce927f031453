//! Shared helpers for the integration tests: real TLS over 127.0.0.1.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ProtocolVersion;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
pub const DAY: Duration = Duration::from_secs(24 * 3600);
const STEP: Duration = Duration::from_secs(10);

/// What the client saw.
#[derive(Debug)]
pub struct ClientView {
    pub version: Option<ProtocolVersion>,
    pub alpn: Option<Vec<u8>>,
    /// The chain the server presented.
    pub server_chain: Vec<CertificateDer<'static>>,
    pub reply: Vec<u8>,
}

/// What the server saw.
#[derive(Debug)]
pub struct ServerView {
    /// The chain the client presented (empty without client auth).
    pub client_chain: Vec<CertificateDer<'static>>,
    pub received: Vec<u8>,
}

/// Outcome of one connection attempt, as seen by both sides.
pub struct Outcome {
    pub client: Result<ClientView, String>,
    pub server: Result<ServerView, String>,
}

/// Runs a TLS server on 127.0.0.1:0 for one connection that records the
/// client's certificates and echoes "pong:" + the 4 bytes it reads, and a
/// client that connects with `server_name`, sends "ping" and reads the reply.
pub async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> Outcome {
    let listener = TcpListener::bind(SocketAddr::from((LOCALHOST, 0)))
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let acceptor = TlsAcceptor::from(server);
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let client_chain = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        let mut reply = b"pong:".to_vec();
        reply.extend_from_slice(&buf);
        tls.write_all(&reply).await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(ServerView {
            client_chain,
            received: buf.to_vec(),
        })
    });

    let name = ServerName::try_from(server_name.to_owned()).expect("server name");
    let client_result = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut tls = TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        let version = conn.protocol_version();
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        let server_chain = conn.peer_certificates().map(<[_]>::to_vec).unwrap_or_default();
        tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        tls.read_to_end(&mut reply).await.map_err(|e| e.to_string())?;
        Ok(ClientView {
            version,
            alpn,
            server_chain,
            reply,
        })
    };
    let client = tokio::time::timeout(STEP, client_result)
        .await
        .unwrap_or_else(|_| Err("client timed out".to_owned()));
    let server = match tokio::time::timeout(STEP, server_task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(format!("server task failed: {join}")),
        Err(_) => Err("server timed out".to_owned()),
    };
    Outcome { client, server }
}

/// Parses a PEM private key.
pub fn key_der(pem: &str) -> rustls::pki_types::PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("private key PEM")
}
