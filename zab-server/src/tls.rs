//! TLS on the client and admin ports (rustls, on ring): the server's
//! certificate chain and key from PEM files and, with a client CA, client
//! certificates; on the client port a certificate's subject becomes the
//! connection's `x509` identity for ACLs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// TLS settings of a port: `[client_tls]` and `[admin_tls]` in a server's
/// configuration. Relative paths are taken relative to the configuration
/// file.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PortTls {
    /// The server's certificate chain, PEM, leaf first.
    pub cert_file: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CAs whose client certificates are accepted, PEM. Without it, clients
    /// are not asked for a certificate.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Refuse clients without a certificate from `client_ca_file` (by
    /// default a client may connect without one, and has no x509 identity).
    #[serde(default)]
    pub require_client_cert: bool,
}

impl PortTls {
    pub fn resolve_paths(&mut self, dir: &Path) {
        for p in [&mut self.cert_file, &mut self.key_file] {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        if let Some(p) = &mut self.client_ca_file {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }

    /// The acceptor for the client port; an error names the file at fault.
    pub fn acceptor(&self) -> Result<TlsAcceptor, String> {
        let certs = read_certs(&self.cert_file)?;
        let key = PrivateKeyDer::from_pem_file(&self.key_file).map_err(|e| {
            format!(
                "key_file {}: no usable private key: {e}",
                self.key_file.display()
            )
        })?;
        // ring builds with a C compiler alone (aws-lc-rs, rustls' default,
        // needs cmake); it has no post-quantum key exchange, which is why
        // rustls marks it deprecated.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        let builder = match &self.client_ca_file {
            None if self.require_client_cert => {
                return Err("require_client_cert needs client_ca_file".into())
            }
            None => builder.with_no_client_auth(),
            Some(ca_file) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(ca_file)? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("client_ca_file {}: {e}", ca_file.display()))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
                let verifier = if self.require_client_cert {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| format!("client_ca_file: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("certificate and key do not go together: {e}"))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

/// The `x509` identity of a verified client certificate: its subject as
/// RFC 4514 text (`CN=alice,O=Example`), the form ZooKeeper's x509 scheme
/// uses for ACL ids. None if the certificate does not parse.
pub fn subject(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.subject().to_string())
}
