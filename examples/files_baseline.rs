//! The benchmark baseline: a plain actix-files `Files` server, nothing else.
//!
//! `cargo run --release --example files_baseline -- <root> <addr> [workers]`
//! (used by `bench/http.sh`).

use actix_web::{App, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let root = args.next().unwrap_or_else(|| "static".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8090".into());
    let workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(2);
    HttpServer::new(move || App::new().service(actix_files::Files::new("/", &root)))
        .workers(workers)
        // As leanserve's binary does: actix-files streams a body in several writes, and
        // with Nagle's algorithm the last of them waits for the client's delayed ACK (40 ms).
        .tcp_nodelay(true)
        .bind(addr)?
        .run()
        .await
}
