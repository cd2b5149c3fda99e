//! TLS for a listener (rustls with ring): a certificate chain and its private key, read
//! from PEM files, into the server configuration a listener binds with.
//!
//! - Protocols: TLS 1.3 and 1.2 only, with rustls' cipher suites (no CBC, no RSA key
//!   exchange); a client offering only TLS 1.0 or 1.1 gets a handshake failure.
//! - ALPN offers `h2` then `http/1.1`: a client that speaks HTTP/2 gets it, any other
//!   gets HTTP/1.1 (actix-web serves both on the one listener).
//! - The server chooses the cipher suite, in rustls' order (AES-256-GCM first).
//! - Session resumption: rustls' in-memory session cache (TLS 1.2 and 1.3) and
//!   stateless tickets with rotating keys.
//! - Keys: PKCS#8, or PKCS#1 (RSA) or SEC1 (EC), as PEM. The key must belong to the first
//!   certificate of the chain.
//!
//! Every failure names the configuration key whose file is at fault, so the binary can
//! stop with exit code 2 naming it. [`Certificates`] holds a listener's pair, presents it
//! at every handshake and swaps in renewed files
//! ([`Certificates::reload_if_changed`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The PEM files of one listener's certificate chain and private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key.
    pub key: PathBuf,
}

/// Why a listener's TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{key} ({}): {reason}", path.display())]
pub struct TlsError {
    /// The configuration key naming the file at fault (`server.tls_cert`, ...).
    pub key: &'static str,
    /// The file it names.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// The server configuration presenting whatever `certificates` holds at each handshake.
fn config_for(certificates: Arc<Certificates>) -> Result<Arc<ServerConfig>, TlsError> {
    // ring: it builds with a C compiler alone (aws-lc-rs, rustls' default, wants cmake,
    // which these machines lack). It has no post-quantum hybrid key exchange: clients that
    // offer X25519MLKEM768 agree on X25519 instead.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let fail = |error: rustls::Error| TlsError {
        key: certificates.keys.0,
        path: certificates.files.cert.clone(),
        reason: error.to_string(),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(fail)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&certificates) as Arc<dyn ResolvesServerCert>);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's order of cipher suites, not the client's (rustls lists the strongest
    // first): testssl rates letting the client choose HIGH.
    config.ignore_client_order = true;
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(fail)?;
    Ok(Arc::new(config))
}

/// A listener's certificate and key, as last loaded from its files, presented at every
/// new handshake; [`Certificates::reload_if_changed`] swaps in renewed files, and open
/// connections keep what they negotiated.
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    keys: (&'static str, &'static str),
    /// The certified key, and the file bytes it came from (to tell a change).
    current: RwLock<(Arc<CertifiedKey>, Contents)>,
}

impl Certificates {
    /// Loads `files` (whose configuration keys are `keys`, for errors).
    pub fn load(
        files: &TlsFiles,
        keys: (&'static str, &'static str),
    ) -> Result<Arc<Certificates>, TlsError> {
        let contents = read_both(files, keys)?;
        let key = certified_key(files, keys, &contents)?;
        Ok(Arc::new(Certificates {
            files: files.clone(),
            keys,
            current: RwLock::new((key, contents)),
        }))
    }

    /// Loads the files again when their bytes changed: `Ok(true)` when the new pair is
    /// presented from now on, `Ok(false)` when nothing changed, and an error (the old
    /// pair staying in use) when the new files cannot be used, a half-written renewal
    /// included.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let contents = read_both(&self.files, self.keys)?;
        if contents
            == self
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .1
        {
            return Ok(false);
        }
        let key = certified_key(&self.files, self.keys, &contents)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = (key, contents);
        Ok(true)
    }

    /// The configuration keys of the files.
    pub fn keys(&self) -> (&'static str, &'static str) {
        self.keys
    }

    /// The rustls server configuration a listener binds with
    /// (`HttpServer::bind_rustls_0_23`), presenting these certificates at each handshake.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        config_for(Arc::clone(self))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .0,
        ))
    }
}

/// Both files' bytes: the certificate chain's, the key's (what a change is told by).
type Contents = (Vec<u8>, Vec<u8>);

/// Reads both files, once each.
fn read_both(files: &TlsFiles, keys: (&'static str, &'static str)) -> Result<Contents, TlsError> {
    let read = |path: &Path, key: &'static str| {
        std::fs::read(path).map_err(|error| TlsError {
            key,
            path: path.to_path_buf(),
            reason: format!("cannot read it: {error}"),
        })
    };
    Ok((read(&files.cert, keys.0)?, read(&files.key, keys.1)?))
}

/// The certificate chain and key in `contents` (read from `files`), checked to belong
/// together.
fn certified_key(
    files: &TlsFiles,
    keys: (&'static str, &'static str),
    contents: &Contents,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let (cert_key, key_key) = keys;
    let fail = |key: &'static str, path: &Path, reason: String| TlsError {
        key,
        path: path.to_path_buf(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&contents.0)
        .collect::<Result<_, _>>()
        .map_err(|error| fail(cert_key, &files.cert, pem_reason(&error)))?;
    if chain.is_empty() {
        return Err(fail(
            cert_key,
            &files.cert,
            "no PEM certificate in it".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_slice(&contents.1).map_err(|error| {
        fail(
            key_key,
            &files.key,
            match error {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no PEM private key in it (PKCS#8, RSA or EC)".into()
                }
                other => pem_reason(&other),
            },
        )
    })?;
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, private, &provider).map_err(|error| {
        fail(
            key_key,
            &files.key,
            match error {
                rustls::Error::InconsistentKeys(_) => format!(
                    "the key does not belong to the certificate in {}",
                    files.cert.display()
                ),
                other => format!("not a usable private key: {other}"),
            },
        )
    })?;
    Ok(Arc::new(certified))
}

fn pem_reason(error: &rustls::pki_types::pem::Error) -> String {
    match error {
        rustls::pki_types::pem::Error::Io(io) => format!("cannot read it: {io}"),
        other => format!("not valid PEM: {other:?}"),
    }
}
