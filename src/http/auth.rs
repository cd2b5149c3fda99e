//! Who may use the admin routes (`/admin/*`, `/debug/*`).
//!
//! With a token configured, a request must carry `Authorization: Bearer <token>`; the
//! comparison takes the same time wherever the first difference is (the length of the
//! token is not secret). Without a token, only loopback peers are let in, so a fresh
//! install is never open to the network.

use std::net::IpAddr;

/// The verdict for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// A token is configured and the request's credentials are missing or wrong: 401.
    Unauthorized,
    /// No token is configured and the peer is not on loopback: 403.
    Forbidden,
}

/// Decides access from the configured token, the peer's address and the request's
/// `Authorization` header value.
pub fn admin_access(
    token: Option<&str>,
    peer: Option<IpAddr>,
    authorization: Option<&[u8]>,
) -> Access {
    match token {
        Some(token) => {
            let presented = authorization.and_then(|value| value.strip_prefix(b"Bearer "));
            match presented {
                Some(presented) if constant_time_eq(presented, token.as_bytes()) => Access::Granted,
                _ => Access::Unauthorized,
            }
        }
        None if peer.is_some_and(|ip| ip.is_loopback() || is_mapped_loopback(ip)) => {
            Access::Granted
        }
        None => Access::Forbidden,
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

    const LOOPBACK: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    const REMOTE: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3)));

    #[test]
    fn auth_without_token_admits_only_loopback() {
        assert_eq!(admin_access(None, LOOPBACK, None), Access::Granted);
        assert_eq!(
            admin_access(None, Some("::1".parse().unwrap()), None),
            Access::Granted
        );
        assert_eq!(
            admin_access(None, Some("::ffff:127.0.0.1".parse().unwrap()), None),
            Access::Granted
        );
        assert_eq!(admin_access(None, REMOTE, None), Access::Forbidden);
        assert_eq!(
            admin_access(None, Some("::ffff:10.0.0.1".parse().unwrap()), None),
            Access::Forbidden
        );
        assert_eq!(admin_access(None, None, None), Access::Forbidden);
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
