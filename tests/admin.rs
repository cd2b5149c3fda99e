//! Admin access: bearer token compared in constant time when configured, loopback only
//! otherwise; anything else gets 401/403 with no detail. Peer addresses other than
//! loopback are set through actix's test harness; tokens are also checked over a socket.

mod util;

use actix_web::{App, test};
use util::{get_json, site, start};

const TOKEN: &str = "correct-horse-battery-staple";

async fn status_from(
    peer: &str,
    token: Option<&str>,
    env: &[(&str, &str)],
    path: &str,
) -> (u16, String) {
    let site = site();
    let subsystems = start(site.path(), env).runtime().await;
    let app = test::init_service(App::new().configure(leanserve::configure(&subsystems))).await;
    let mut request = test::TestRequest::get()
        .uri(path)
        .peer_addr(peer.parse().unwrap());
    if let Some(token) = token {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    let response = test::call_service(&app, request.to_request()).await;
    let status = response.status().as_u16();
    let body = test::read_body(response).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[actix_rt::test]
async fn admin_without_token_refuses_non_loopback_peers_with_403() {
    let (status, body) = status_from("10.0.0.7:40000", None, &[], "/admin/supervisor").await;
    assert_eq!(status, 403);
    assert_eq!(body, r#"{"error":"forbidden"}"#, "no detail leaks");
    // Unknown admin paths are refused the same way rather than answered 404.
    assert_eq!(
        status_from("10.0.0.7:40000", None, &[], "/admin/nope")
            .await
            .0,
        403
    );
}

#[actix_rt::test]
async fn admin_without_token_admits_loopback_peers() {
    assert_eq!(
        status_from("127.0.0.1:40000", None, &[], "/admin/supervisor")
            .await
            .0,
        200
    );
    assert_eq!(
        status_from("[::1]:40000", None, &[], "/admin/supervisor")
            .await
            .0,
        200
    );
}

#[actix_rt::test]
async fn admin_with_token_wants_it_from_everyone() {
    let env = [("LEANSERVE_ADMIN_TOKEN", TOKEN)];
    assert_eq!(
        status_from("127.0.0.1:1", None, &env, "/admin/supervisor")
            .await
            .0,
        401
    );
    let (status, body) = status_from("10.0.0.7:1", Some("wrong"), &env, "/admin/supervisor").await;
    assert_eq!(
        (status, body.as_str()),
        (401, r#"{"error":"unauthorized"}"#)
    );
    assert_eq!(
        status_from("10.0.0.7:1", Some(TOKEN), &env, "/admin/supervisor")
            .await
            .0,
        200
    );
}

#[actix_rt::test]
async fn admin_public_routes_need_no_credentials() {
    let env = [("LEANSERVE_ADMIN_TOKEN", TOKEN)];
    assert_eq!(
        status_from("10.0.0.7:1", None, &env, "/health").await.0,
        200
    );
    assert_eq!(status_from("10.0.0.7:1", None, &env, "/ready").await.0, 200);
}

#[actix_rt::test]
async fn admin_token_over_a_real_socket_401_then_200() {
    let site = site();
    let (_subsystems, server) = start(site.path(), &[("LEANSERVE_ADMIN_TOKEN", TOKEN)])
        .serve()
        .await;
    let url = server.url("/admin/supervisor");
    let response = awc::Client::default().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers().get("www-authenticate").unwrap(),
        "Bearer"
    );
    assert_eq!(get_json(&url, Some("nearly-right")).await.0, 401);
    let (status, tree) = get_json(&url, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(tree["name"], "leanserve");
    let (status, process) = get_json(&server.url("/admin/process"), Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(
        process["sample"]["rss_bytes"].as_u64().unwrap() > 0,
        "{process}"
    );
}

#[cfg(not(feature = "chaos"))]
#[actix_rt::test]
async fn admin_chaos_route_does_not_exist_in_a_default_build() {
    let site = site();
    let subsystems = start(site.path(), &[]).runtime().await;
    let app = test::init_service(App::new().configure(leanserve::configure(&subsystems))).await;
    let request = test::TestRequest::post()
        .uri("/admin/chaos/panic/process")
        .peer_addr("127.0.0.1:1".parse().unwrap())
        .to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), 404);
    assert_eq!(subsystems.supervisor_report().children[0].panics, 0);
}
