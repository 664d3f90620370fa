//! TLS for a client's connections (rustls, on ring): the CA that signed the
//! servers' certificates, and optionally this client's own certificate,
//! whose subject is its `x509` identity for ACLs.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// How to reach servers over TLS. Each server's certificate must be signed
/// by the CA and name the host the client dials (a DNS name, or an IP
/// address as an IP subject alternative name).
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// From PEM: the CA certificates to trust, and this client's
    /// certificate chain and private key if it has one.
    pub fn from_pem(ca: &[u8], identity: Option<(&[u8], &[u8])>) -> Result<Tls, String> {
        let mut roots = RootCertStore::empty();
        let cas = certs(ca, "CA")?;
        for cert in cas {
            roots
                .add(cert)
                .map_err(|e| format!("CA certificate: {e}"))?;
        }
        // ring builds with a C compiler alone (aws-lc-rs, rustls' default,
        // needs cmake); it has no post-quantum key exchange, which is why
        // rustls marks it deprecated.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => {
                let key = PrivateKeyDer::from_pem_slice(key)
                    .map_err(|e| format!("client key: no usable private key: {e}"))?;
                builder
                    .with_client_auth_cert(certs(chain, "client certificate")?, key)
                    .map_err(|e| format!("client certificate and key: {e}"))?
            }
        };
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// [`Tls::from_pem`] from files.
    pub fn from_files(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Tls, String> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let ca = read(ca)?;
        match identity {
            None => Tls::from_pem(&ca, None),
            Some((cert, key)) => Tls::from_pem(&ca, Some((&read(cert)?, &read(key)?))),
        }
    }

    /// Runs the TLS handshake on `tcp` for the server dialled as `name`
    /// (`host:port`).
    pub async fn connect(
        &self,
        name: &str,
        tcp: tokio::net::TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
        let host = name.rsplit_once(':').map_or(name, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let server = ServerName::try_from(host.to_string())
            .map_err(|e| format!("{name}: not a host name for TLS: {e}"))?;
        self.connector
            .connect(server, tcp)
            .await
            .map_err(|e| format!("{name}: TLS handshake: {e}"))
    }
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no certificate in it"));
    }
    Ok(certs)
}
