//! Many replicas behind a real load balancer: three `leanserve` processes, each serving
//! its own copy of a site (written at different times), behind nginx from Debian's
//! package on loopback. Under steady load, a rolling restart (one replica at a time:
//! SIGTERM, drain and exit, start again, wait for `/ready`) loses no request, and the
//! validators one replica hands out work on the others: `If-None-Match` gets 304 and an
//! `If-Range` resume of a streamed file gets 206.

mod util;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::{Nginx, exit_status, free_port, leanserve, listening};

/// Streamed, not cached: over the `max_file_size` the replicas run with.
const LARGE: usize = 300_000;
const MAX_FILE_SIZE: &str = "65536";

/// The site every replica serves, from a folder of its own, its files written `age` ago.
fn copy_of_site(age: Duration) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let files: [(&str, Vec<u8>); 3] = [
        ("index.html", b"<h1>replicated</h1>".to_vec()),
        ("app.css", "body { color: teal }\n".repeat(200).into_bytes()),
        (
            "video.bin",
            (0..LARGE).map(|i| (i * 7 % 253) as u8).collect(),
        ),
    ];
    for (name, bytes) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(SystemTime::now() - age)
            .unwrap();
    }
    dir
}

/// One replica: a `leanserve` process on a fixed loopback port (kept across restarts,
/// as a load balancer's configuration expects).
struct Replica {
    port: u16,
    root: PathBuf,
    child: Option<Child>,
}

impl Replica {
    fn start(root: &Path) -> Replica {
        let mut replica = Replica {
            port: free_port(),
            root: root.to_owned(),
            child: None,
        };
        replica.spawn();
        replica
    }

    fn spawn(&mut self) {
        let bind = format!("127.0.0.1:{}", self.port);
        let root = self.root.to_str().unwrap().to_owned();
        let args = [
            "--env",
            "test",
            "--bind",
            &bind,
            "--root",
            &root,
            "--set",
            &format!("static_files.max_file_size={MAX_FILE_SIZE}"),
        ];
        let mut child = leanserve(&args, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        listening(&mut child);
        self.child = Some(child);
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// SIGTERM, then waits for the drain and the exit; answers whether it exited 0.
    fn stop(&mut self) -> bool {
        let mut child = self.child.take().expect("running");
        let signalled = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(signalled.success());
        exit_status(&mut child).success()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A response's status and headers (the body is read and dropped), or why there was none.
async fn request(
    addr: SocketAddr,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut text = format!("GET {target} HTTP/1.1\r\nHost: replicas\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    stream
        .write_all(text.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no complete head")?;
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    Ok(Answer {
        status,
        head,
        body_len: response.len() - end - 4,
    })
}

struct Answer {
    status: u16,
    head: String,
    body_len: usize,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

async fn ready(addr: SocketAddr) -> bool {
    matches!(
        request(addr, "/ready", &[]).await,
        Ok(Answer { status: 200, .. })
    )
}

#[actix_rt::test]
async fn replicas_rolling_restart_behind_nginx_loses_no_request() {
    let sites: Vec<_> = (0..3)
        .map(|i| copy_of_site(Duration::from_secs(3_600 * (i + 1))))
        .collect();
    let mut replicas: Vec<_> = sites
        .iter()
        .map(|site| Replica::start(site.path()))
        .collect();
    let urls: Vec<String> = replicas.iter().map(Replica::url).collect();
    let nginx = Nginx::start(&urls.iter().map(String::as_str).collect::<Vec<_>>());
    let balancer: SocketAddr = nginx.url.trim_start_matches("http://").parse().unwrap();
    util::eventually("nginx balances over the replicas", || async {
        ready(balancer).await
    })
    .await;

    // Validators agree: each replica hashes the streamed file, then any replica's tags
    // work on every other.
    let mut etags = Vec::new();
    for replica in &replicas {
        let mut etag = String::new();
        for _ in 0..500 {
            let answer = request(replica.addr(), "/video.bin", &[]).await.unwrap();
            etag = answer.header("etag").unwrap().to_owned();
            if !etag.starts_with("W/") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        etags.push(etag);
    }
    assert!(!etags[0].starts_with("W/"), "{etags:?}");
    assert!(
        etags.iter().all(|e| *e == etags[0]),
        "one tag everywhere: {etags:?}"
    );
    for (from, to) in [(0, 1), (1, 2), (2, 0)] {
        let css = request(replicas[from].addr(), "/app.css", &[])
            .await
            .unwrap();
        let css_etag = css.header("etag").unwrap().to_owned();
        let revalidated = request(
            replicas[to].addr(),
            "/app.css",
            &[("If-None-Match", &css_etag)],
        )
        .await
        .unwrap();
        assert_eq!(revalidated.status, 304, "{css_etag} from {from} on {to}");
        let resumed = request(
            replicas[to].addr(),
            "/video.bin",
            &[("Range", "bytes=100000-"), ("If-Range", &etags[from])],
        )
        .await
        .unwrap();
        assert_eq!(resumed.status, 206, "If-Range from {from} on {to}");
        assert_eq!(resumed.body_len, LARGE - 100_000);
    }

    // Steady load through nginx, from a thread of its own (the restarts below block
    // this one), while the replicas restart one at a time.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(steady_load(balancer, stop, served, failed));
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    for replica in &mut replicas {
        let before = served.load(Ordering::Relaxed);
        assert!(replica.stop(), "a replica drains and exits 0 on SIGTERM");
        replica.spawn();
        let addr = replica.addr();
        util::eventually("the restarted replica is ready", || ready(addr)).await;
        assert!(
            served.load(Ordering::Relaxed) > before,
            "traffic kept flowing"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let (served, failed) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!(
        "rolling restart of 3 replicas in {:?}: {served} requests served, {failed} lost",
        started.elapsed()
    );
    assert_eq!(failed, 0, "no request lost ({served} served)");
}

/// Four clients in a loop through the balancer until `stop`, counting what was served
/// (200) and what was not (any other status, or no response).
async fn steady_load(
    balancer: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) {
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
            tokio::spawn(async move {
                let targets = ["/app.css", "/index.html", "/video.bin"];
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let target = targets[(client + n) % targets.len()];
                    n += 1;
                    match request(balancer, target, &[]).await {
                        Ok(answer) if answer.status == 200 => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(answer) => {
                            eprintln!("{target}: {}", answer.status);
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            eprintln!("{target}: {error}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
}
