//! Who may use the admin surface (`/admin/*`, `/debug/*`, the monitoring data).
//!
//! With a token configured, a request must carry `Authorization: Bearer <token>`, from
//! wherever it comes; the comparison takes the same time wherever the first difference
//! is (the length of the token is not secret). Without a token, only local peers are let
//! in (loopback addresses and Unix-socket connections), so a fresh install is never open
//! to the network; the configuration refuses a non-local admin listener without a
//! token, and the serving listener does not carry the admin routes at all (a reverse
//! proxy on the same host connects from loopback).

use std::net::IpAddr;

/// Where a request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Ip(IpAddr),
    /// A connection over a Unix socket (its file's permissions chose who may connect).
    UnixSocket,
    /// Not known: treated as remote.
    Unknown,
}

/// The verdict for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// A token is configured and the request's credentials are missing or wrong: 401.
    Unauthorized,
    /// No token is configured and the peer is not local: 403.
    Forbidden,
}

/// Decides access from the configured token, the peer and the request's
/// `Authorization` header value.
pub fn admin_access(token: Option<&str>, peer: Peer, authorization: Option<&[u8]>) -> Access {
    match token {
        Some(token) => {
            let presented = authorization.and_then(|value| value.strip_prefix(b"Bearer "));
            match presented {
                Some(presented) if constant_time_eq(presented, token.as_bytes()) => Access::Granted,
                _ => Access::Unauthorized,
            }
        }
        None => match peer {
            Peer::Ip(ip) if ip.is_loopback() || is_mapped_loopback(ip) => Access::Granted,
            Peer::UnixSocket => Access::Granted,
            Peer::Ip(_) | Peer::Unknown => Access::Forbidden,
        },
    }
}

/// `::ffff:127.0.0.1`, as a dual-stack listener reports IPv4 loopback peers.
fn is_mapped_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        IpAddr::V4(_) => false,
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: Peer = Peer::Ip(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    const REMOTE: Peer = Peer::Ip(IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3)));

    fn ip(text: &str) -> Peer {
        Peer::Ip(text.parse().unwrap())
    }

    #[test]
    fn auth_without_token_admits_only_local_peers() {
        assert_eq!(admin_access(None, LOOPBACK, None), Access::Granted);
        assert_eq!(admin_access(None, ip("::1"), None), Access::Granted);
        assert_eq!(
            admin_access(None, ip("::ffff:127.0.0.1"), None),
            Access::Granted
        );
        assert_eq!(admin_access(None, Peer::UnixSocket, None), Access::Granted);
        assert_eq!(admin_access(None, REMOTE, None), Access::Forbidden);
        assert_eq!(
            admin_access(None, ip("::ffff:10.0.0.1"), None),
            Access::Forbidden
        );
        assert_eq!(admin_access(None, Peer::Unknown, None), Access::Forbidden);
        // A header does not open the door when no token is configured.
        assert_eq!(
            admin_access(None, REMOTE, Some(b"Bearer x")),
            Access::Forbidden
        );
    }

    #[test]
    fn auth_with_token_needs_the_exact_bearer_token_from_anywhere() {
        let token = Some("s3cret");
        assert_eq!(
            admin_access(token, REMOTE, Some(b"Bearer s3cret")),
            Access::Granted
        );
        assert_eq!(admin_access(token, LOOPBACK, None), Access::Unauthorized);
        assert_eq!(
            admin_access(token, Peer::UnixSocket, None),
            Access::Unauthorized,
            "a configured token is needed on a Unix socket too"
        );
        for wrong in [
            &b"Bearer s3cres"[..],
            b"Bearer s3cret ",
            b"bearer s3cret",
            b"s3cret",
            b"Bearer ",
            b"Basic s3cret",
        ] {
            assert_eq!(
                admin_access(token, REMOTE, Some(wrong)),
                Access::Unauthorized,
                "{wrong:?}"
            );
        }
    }

    #[test]
    fn auth_constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
