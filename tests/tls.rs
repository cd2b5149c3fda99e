//! HTTPS on the listeners, over real sockets against the `leanserve` binary, with
//! certificates made in the test (rcgen: a CA and a leaf for localhost and 127.0.0.1):
//! HTTP/1.1 and HTTP/2 chosen by ALPN, TLS 1.2 and 1.3, a cleartext request to the TLS
//! port answered with no HTTP, the admin listener's own certificate with its token, and
//! every bad certificate or key stopping start-up with exit code 2 naming its key.

mod util;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use actix_web::http::Version;
use rustls::pki_types::CertificateDer;

/// A CA and a leaf it signed, as PEM files in a folder of their own.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();
        // A key of another certificate, for the mismatch.
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.path().join("other-key.pem"), other.serialize_pem()).unwrap();
        Pki {
            ca: ca.der().clone(),
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A client trusting `ca`, offering `alpn` and the TLS `versions`.
fn client(
    ca: &CertificateDer<'static>,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> awc::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(Arc::new(config)))
        .finish()
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Starts the binary with TLS from `pki` on the serving listener (and `env`); answers
/// the process, its URLs and the site.
fn start(
    pki: &Pki,
    env: &[(&str, &str)],
) -> (std::process::Child, String, String, tempfile::TempDir) {
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
    let mut vars = vec![
        ("LEANSERVE_TLS_CERT", cert.as_str()),
        ("LEANSERVE_TLS_KEY", key.as_str()),
    ];
    vars.extend_from_slice(env);
    util::spawn_server(&vars)
}

fn stop(mut child: std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[actix_rt::test]
async fn tls_serves_http1_and_h2_as_alpn_chooses() {
    let pki = Pki::new();
    let (child, url, _admin, _site) = start(&pki, &[]);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let url = url.replace("127.0.0.1", "localhost");
    for (alpn, versions, version) in [
        (&[&b"h2"[..], b"http/1.1"][..], BOTH, Version::HTTP_2),
        (&[&b"http/1.1"[..]][..], BOTH, Version::HTTP_11),
        (&[][..], BOTH, Version::HTTP_11),
        (
            &[&b"h2"[..]][..],
            &[&rustls::version::TLS12][..],
            Version::HTTP_2,
        ),
        (
            &[&b"h2"[..]][..],
            &[&rustls::version::TLS13][..],
            Version::HTTP_2,
        ),
    ] {
        let client = client(&pki.ca, alpn, versions);
        let mut response = client
            .get(format!("{url}/app.css"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{alpn:?}: {e}"));
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), version, "{alpn:?} {versions:?}");
        assert_eq!(response.body().await.unwrap(), "body { color: teal }");
        // Ranges and validators as over cleartext HTTP/1.1.
        let etag = response.headers().get("etag").unwrap().clone();
        let range = client
            .get(format!("{url}/app.css"))
            .insert_header(("Range", "bytes=0-3"))
            .send()
            .await
            .unwrap()
            .body()
            .await
            .unwrap();
        assert_eq!(range, "body");
        let revalidated = client
            .get(format!("{url}/app.css"))
            .insert_header(("If-None-Match", etag))
            .send()
            .await
            .unwrap();
        assert_eq!(revalidated.status(), 304);
        assert_eq!(revalidated.version(), version);
    }
    stop(child);
}

#[test]
fn tls_a_cleartext_request_to_the_tls_port_gets_no_http_answer() {
    let pki = Pki::new();
    let (child, url, _admin, _site) = start(&pki, &[]);
    let addr = url.trim_start_matches("https://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /app.css HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1")
            && !answer.windows(4).any(|w| w == b"body"),
        "a plaintext answer: {:?}",
        String::from_utf8_lossy(&answer)
    );
    stop(child);
}

#[actix_rt::test]
async fn tls_the_admin_listener_takes_its_own_certificate_and_its_token() {
    let pki = Pki::new();
    let admin_pki = Pki::new();
    let (cert, key) = (admin_pki.path("cert.pem"), admin_pki.path("key.pem"));
    let (child, _url, admin, _site) = start(
        &pki,
        &[
            ("LEANSERVE_ADMIN_TLS_CERT", &cert),
            ("LEANSERVE_ADMIN_TLS_KEY", &key),
            ("LEANSERVE_ADMIN_TOKEN", "s3cret-token"),
        ],
    );
    assert!(admin.starts_with("https://127.0.0.1:"), "{admin}");
    let admin = admin.replace("127.0.0.1", "localhost");
    let trusting = client(&admin_pki.ca, &[b"h2", b"http/1.1"], BOTH);
    let refused = trusting
        .get(format!("{admin}/admin/cache"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let allowed = trusting
        .get(format!("{admin}/admin/cache"))
        .insert_header(("Authorization", "Bearer s3cret-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.version(), Version::HTTP_2);
    // The serving listener's CA does not vouch for the admin listener's certificate.
    let other = client(&pki.ca, &[b"http/1.1"], BOTH);
    assert!(
        other
            .get(format!("{admin}/admin/cache"))
            .send()
            .await
            .is_err()
    );
    stop(child);
}

/// Runs the binary with `env` (the test profile) and answers its exit code and stderr.
fn refused(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let site = util::site();
    let output = util::leanserve(
        &["--env", "test", "--root", site.path().to_str().unwrap()],
        env,
    )
    .output()
    .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn tls_bad_certificates_and_keys_stop_start_up_naming_the_key() {
    let pki = Pki::new();
    std::fs::write(
        pki.dir.path().join("garbage.pem"),
        "not a pem file at all\n",
    )
    .unwrap();
    let missing = Path::new("/nonexistent/cert.pem").display().to_string();
    let (cert, key, other, garbage) = (
        pki.path("cert.pem"),
        pki.path("key.pem"),
        pki.path("other-key.pem"),
        pki.path("garbage.pem"),
    );
    for (label, env, named, says) in [
        (
            "missing certificate",
            vec![
                ("LEANSERVE_TLS_CERT", missing.as_str()),
                ("LEANSERVE_TLS_KEY", key.as_str()),
            ],
            "server.tls_cert",
            "cannot read it",
        ),
        (
            "not a certificate",
            vec![
                ("LEANSERVE_TLS_CERT", garbage.as_str()),
                ("LEANSERVE_TLS_KEY", key.as_str()),
            ],
            "server.tls_cert",
            "no PEM certificate",
        ),
        (
            "not a key",
            vec![
                ("LEANSERVE_TLS_CERT", cert.as_str()),
                ("LEANSERVE_TLS_KEY", garbage.as_str()),
            ],
            "server.tls_key",
            "no PEM private key",
        ),
        (
            "another certificate's key",
            vec![
                ("LEANSERVE_TLS_CERT", cert.as_str()),
                ("LEANSERVE_TLS_KEY", other.as_str()),
            ],
            "server.tls_key",
            "does not belong",
        ),
        (
            "a certificate without its key",
            vec![("LEANSERVE_TLS_CERT", cert.as_str())],
            "server.tls_key",
            "since server.tls_cert is set",
        ),
        (
            "a key without its certificate",
            vec![("LEANSERVE_ADMIN_TLS_KEY", key.as_str())],
            "admin.tls_cert",
            "since admin.tls_key is set",
        ),
        (
            "TLS on an admin Unix socket",
            vec![
                ("LEANSERVE_ADMIN_BIND", "unix:/tmp/leanserve-tls-test.sock"),
                ("LEANSERVE_ADMIN_TLS_CERT", cert.as_str()),
                ("LEANSERVE_ADMIN_TLS_KEY", key.as_str()),
            ],
            "admin.tls_cert",
            "a Unix socket has no TLS",
        ),
    ] {
        let (code, stderr) = refused(&env);
        assert_eq!(code, Some(2), "{label}: {stderr}");
        assert!(stderr.contains(named), "{label}: {stderr}");
        assert!(stderr.contains(says), "{label}: {stderr}");
    }
}
