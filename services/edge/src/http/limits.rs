//! The rate-limit layer: keys each request by its signed-in user, or else by client IP, takes a
//! token from the route class's bucket, and reports the bucket in `RateLimit-*` headers on every
//! answer (429s add `Retry-After`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

use super::error::ApiError;
use super::extract::auth::Credentials;
use crate::rate_limit::{Class, Decision};
use crate::state::AppState;

static LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Layer state: the app and the class of the routes it wraps.
pub type LimitState = (Arc<AppState>, Class);

/// The layer (`route_layer(from_fn_with_state((state, class), limit))`).
pub async fn limit(
    State((state, class)): State<LimitState>,
    request: Request,
    next: Next,
) -> Response {
    // The auth class is keyed by address only: a token (valid, expired or revoked) must not
    // buy a fresh budget of sign-in attempts.
    let subject = match request.extensions().get::<Credentials>() {
        Some(Credentials::Valid(token)) if class != Class::Auth => {
            format!("user:{}", token.user_id)
        }
        _ => {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip());
            match peer {
                Some(peer) => format!(
                    "ip:{}",
                    client_ip(peer, request.headers(), &state.trusted_proxies)
                ),
                None => "ip:unknown".to_owned(),
            }
        }
    };
    let decision = state.limiter.check(class, &subject).await;
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        tracing::info!(
            class = class.as_str(),
            retry_after_ms = decision.retry_after.as_millis() as u64,
            "rate limited"
        );
        ApiError::RateLimited {
            retry_after: decision.retry_after,
        }
        .into_response()
    };
    if decision.backend != crate::rate_limit::Backend::Off {
        set_headers(response.headers_mut(), &decision);
    }
    response
}

fn set_headers(headers: &mut HeaderMap, decision: &Decision) {
    let reset = decision.reset_after.as_secs() + u64::from(decision.reset_after.subsec_nanos() > 0);
    headers.insert(LIMIT.clone(), HeaderValue::from(decision.limit));
    headers.insert(REMAINING.clone(), HeaderValue::from(decision.remaining));
    headers.insert(RESET.clone(), HeaderValue::from(reset));
}

/// The client's address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most address in `X-Forwarded-For` that is not itself a trusted proxy. Addresses a
/// client writes into the header itself are never believed past the first untrusted hop.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let mut client = peer;
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", xff.parse().expect("header"));
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        assert_eq!(
            client_ip(ip("203.0.113.9"), &headers("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        // The client forged "6.6.6.6"; the proxy appended the real address.
        let xff = headers("6.6.6.6, 198.51.100.7, 10.1.2.3");
        assert_eq!(
            client_ip(ip("10.0.0.5"), &xff, &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn garbage_in_the_header_stops_the_walk() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        assert_eq!(
            client_ip(ip("10.0.0.5"), &headers("nonsense"), &trusted),
            ip("10.0.0.5")
        );
    }
}
