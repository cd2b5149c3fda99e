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
//! ([`Certificates::reload_if_changed`]). Registered with the runtime
//! (`Runtime::certificates`), each listener's certificates report the time left before
//! the leaf expires (`tls_cert_expiry_seconds`) and the renewals that could not be used
//! (`tls_reload_failures_total`), which the default alerts watch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::metrics::{Collector, Kind, Source};

/// The PEM files of one listener's certificate chain and private key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The chain in `cert` (PEM, leaf first) and the leaf's key in `key` (PEM).
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        TlsFiles {
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// Why a listener's TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{key} ({}): {reason}", path.display())]
#[non_exhaustive]
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
    /// The pair in use, and the file bytes it came from (to tell a change).
    current: RwLock<Loaded>,
    /// Reloads whose files could not be used, since start.
    reload_failures: AtomicU64,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    contents: Contents,
    /// The leaf's notAfter, in seconds since the Unix epoch.
    not_after: i64,
}

impl Certificates {
    /// Loads `files` (whose configuration keys are `keys`, for errors).
    pub fn load(
        files: &TlsFiles,
        keys: (&'static str, &'static str),
    ) -> Result<Arc<Certificates>, TlsError> {
        let loaded = load(files, keys, read_both(files, keys)?)?;
        Ok(Arc::new(Certificates {
            files: files.clone(),
            keys,
            current: RwLock::new(loaded),
            reload_failures: AtomicU64::new(0),
        }))
    }

    /// Loads the files again when their bytes changed: `Ok(true)` when the new pair is
    /// presented from now on, `Ok(false)` when nothing changed, and an error (the old
    /// pair staying in use) when the new files cannot be used, a half-written renewal
    /// included. Each error counts in `tls_reload_failures_total`; files left broken
    /// count again at every reload until they are fixed.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let reloaded = self.reload();
        if reloaded.is_err() {
            self.reload_failures.fetch_add(1, Relaxed);
        }
        reloaded
    }

    fn reload(&self) -> Result<bool, TlsError> {
        let contents = read_both(&self.files, self.keys)?;
        if contents
            == self
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contents
        {
            return Ok(false);
        }
        let loaded = load(&self.files, self.keys, contents)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = loaded;
        Ok(true)
    }

    /// When the certificate in use stops being valid (its leaf's notAfter).
    pub fn not_after(&self) -> SystemTime {
        let seconds = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .not_after;
        match u64::try_from(seconds) {
            Ok(after) => UNIX_EPOCH + std::time::Duration::from_secs(after),
            Err(_) => UNIX_EPOCH - std::time::Duration::from_secs(seconds.unsigned_abs()),
        }
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
                .key,
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

/// The pair in `contents` (read from `files`): the certificate chain and key, checked to
/// belong together, and the leaf's expiry.
fn load(
    files: &TlsFiles,
    keys: (&'static str, &'static str),
    contents: Contents,
) -> Result<Loaded, TlsError> {
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
    let not_after = not_after(&chain[0]).ok_or_else(|| {
        fail(
            cert_key,
            &files.cert,
            "its first certificate is not an X.509 certificate (no validity found)".into(),
        )
    })?;
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
    Ok(Loaded {
        key: Arc::new(certified),
        contents,
        not_after,
    })
}

fn pem_reason(error: &rustls::pki_types::pem::Error) -> String {
    match error {
        rustls::pki_types::pem::Error::Io(io) => format!("cannot read it: {io}"),
        other => format!("not valid PEM: {other:?}"),
    }
}

/// The listener a pair of configuration keys belongs to: `server` for
/// `server.tls_cert`, `admin` for `admin.tls_cert`.
fn listener(keys: (&'static str, &'static str)) -> &'static str {
    keys.0
        .split_once('.')
        .map_or(keys.0, |(listener, _)| listener)
}

/// The listeners' certificates as a metrics source.
pub(crate) struct Listeners(pub(crate) Vec<Arc<Certificates>>);

impl Source for Listeners {
    fn collect(&self, out: &mut Collector) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() as i64);
        let left: Vec<(String, f64)> = self
            .0
            .iter()
            .map(|certificates| {
                let not_after = certificates
                    .current
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .not_after;
                (
                    listener(certificates.keys).to_owned(),
                    (not_after - now) as f64,
                )
            })
            .collect();
        // The alert watches the soonest expiry; each listener's has its own name.
        if let Some(soonest) = left.iter().map(|(_, left)| *left).reduce(f64::min) {
            out.json_only("tls_cert_expiry_seconds", soonest);
        }
        out.labelled(
            "tls_cert_expiry_seconds",
            "Seconds until the listener's certificate expires (negative once expired).",
            Kind::Gauge,
            "listener",
            left,
            |listener| Some(format!("tls_cert_expiry_seconds_{listener}")),
        );
        let failures: Vec<(String, f64)> = self
            .0
            .iter()
            .map(|certificates| {
                (
                    listener(certificates.keys).to_owned(),
                    certificates.reload_failures.load(Relaxed) as f64,
                )
            })
            .collect();
        out.json_only(
            "tls_reload_failures_total",
            failures.iter().map(|(_, n)| n).sum(),
        );
        out.labelled(
            "tls_reload_failures_total",
            "Certificate reloads whose new files could not be used (the old pair stayed).",
            Kind::Counter,
            "listener",
            failures,
            |listener| Some(format!("tls_reload_failures_{listener}_total")),
        );
    }
}

/// The notAfter of a DER certificate, in seconds since the Unix epoch (RFC 5280 4.1:
/// Certificate, TBSCertificate, then Validity after the optional version, the serial
/// number, the signature algorithm and the issuer).
fn not_after(der: &[u8]) -> Option<i64> {
    let (certificate, _) = der_sequence(der)?;
    let (tbs, _) = der_sequence(certificate)?;
    let mut fields = tbs;
    if fields.first() == Some(&0xa0) {
        fields = der_element(fields)?.2;
    }
    for _ in 0..3 {
        fields = der_element(fields)?.2;
    }
    let (validity, _) = der_sequence(fields)?;
    let (_, _, after_not_before) = der_element(validity)?;
    let (tag, time, _) = der_element(after_not_before)?;
    der_time(tag, time)
}

/// The contents of a SEQUENCE at the start of `input`, and what follows it.
fn der_sequence(input: &[u8]) -> Option<(&[u8], &[u8])> {
    match der_element(input)? {
        (0x30, contents, rest) => Some((contents, rest)),
        _ => None,
    }
}

/// The element at the start of `input`: its tag, its contents and what follows it
/// (single-byte tags and definite lengths, as DER has them).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let length = bytes
            .iter()
            .fold(0usize, |length, byte| (length << 8) | usize::from(*byte));
        (length, rest)
    };
    (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950-2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`)
/// as seconds since the Unix epoch.
fn der_time(tag: u8, time: &[u8]) -> Option<i64> {
    let digits = time.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(digits.get(range)?).ok()?.parse().ok()
    };
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let year = number(0..2)?;
            (if year >= 50 { 1900 + year } else { 2000 + year }, 2)
        }
        (0x18, 14) => (number(0..4)?, 4),
        _ => return None,
    };
    let field = |index: usize| number(rest + 2 * index..rest + 2 * index + 2);
    let (month, day) = (field(0)?, field(1)?);
    let (hour, minute, second) = (field(2)?, field(3)?, field(4)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(not_after: (i32, u8, u8)) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn tls_not_after_reads_utc_and_generalized_times() {
        // rcgen writes UTCTime up to 2049 and GeneralizedTime from 2050 on.
        assert_eq!(not_after(&certificate((2027, 1, 2))), Some(1_798_848_000));
        assert_eq!(not_after(&certificate((2049, 12, 31))), Some(2_524_521_600));
        assert_eq!(not_after(&certificate((2050, 3, 1))), Some(2_529_705_600));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn tls_not_after_refuses_what_is_not_a_certificate() {
        let good = certificate((2030, 6, 1));
        assert_eq!(not_after(&[]), None);
        assert_eq!(not_after(&good[..good.len() / 2]), None, "truncated");
        assert_eq!(not_after(b"0\x03abc"), None);
        assert_eq!(der_time(0x17, b"2701021200Z"), None, "too short");
        assert_eq!(der_time(0x17, b"271302000000Z"), None, "month 13");
        assert_eq!(der_time(0x17, b"270102000000+0100"), None, "not UTC");
        assert_eq!(der_time(0x18, b"20270102000000Z"), Some(1_798_848_000));
    }

    #[test]
    fn tls_listeners_report_expiry_and_failed_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let in_ten_days = SystemTime::now() + std::time::Duration::from_secs(10 * 86_400);
        params.not_after = in_ten_days.into();
        let pair = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&cert, params.self_signed(&pair).unwrap().pem()).unwrap();
        std::fs::write(&key, pair.serialize_pem()).unwrap();
        let files = TlsFiles { cert, key };
        let certificates = Certificates::load(&files, ("admin.tls_cert", "admin.tls_key")).unwrap();
        std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\nbroken").unwrap();
        assert!(certificates.reload_if_changed().is_err());
        assert!(certificates.reload_if_changed().is_err(), "still broken");
        let mut out = Collector::default();
        Listeners(vec![certificates]).collect(&mut out);
        let flat = out.flat();
        let left = flat["tls_cert_expiry_seconds"];
        assert!(
            (10.0 * 86_400.0 - 60.0..=10.0 * 86_400.0).contains(&left),
            "{left}"
        );
        assert_eq!(flat["tls_cert_expiry_seconds_admin"], left);
        assert_eq!(flat["tls_reload_failures_total"], 2.0);
        assert_eq!(flat["tls_reload_failures_admin_total"], 2.0);
    }
}
