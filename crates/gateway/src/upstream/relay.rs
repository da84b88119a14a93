//! What the HTTP adapters share: one reqwest client per upstream, the mapping of
//! transport failures to [`UpstreamError`], and which upstream response headers are
//! passed on to the client.

use std::time::Duration;

use http::{HeaderMap, HeaderName, header};

use super::UpstreamError;
use super::setting_error::SettingError;
use crate::tls::Tls;

/// A client for one upstream, trusting what `tls` says. The request timeout is applied
/// per call by the adapter (a stream's body may legitimately take longer than its first
/// byte), so only the connect timeout is set here. Redirects are not followed: an
/// upstream that redirects is misconfigured, and following it could send the API key
/// elsewhere.
pub(crate) fn client(
    section: &str,
    timeout: Duration,
    tls: &Tls,
) -> Result<reqwest::Client, SettingError> {
    tls.client_builder()
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| SettingError::new(section, format!("cannot build the HTTP client: {e}")))
}

/// The `Authorization: Bearer` value for an upstream's API key, marked sensitive so it
/// never shows in debug output.
pub(crate) fn bearer(
    section: &str,
    api_key: Option<&str>,
) -> Result<Option<http::HeaderValue>, SettingError> {
    let Some(key) = api_key else {
        return Ok(None);
    };
    let mut value = http::HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
        SettingError::new(
            section,
            "api_key contains characters not allowed in a header",
        )
    })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// Checks that `url` is an absolute http(s) URL.
pub(crate) fn check_url(section: &str, url: &str) -> Result<reqwest::Url, SettingError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| SettingError::new(section, format!("url {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(SettingError::new(
            section,
            format!("url {url:?} must start with http:// or https://"),
        ));
    }
    Ok(parsed)
}

/// A transport failure as the gateway reports it (502/504 with a full refund).
pub(crate) fn transport_error(e: reqwest::Error, timeout: Duration) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout(timeout)
    } else {
        UpstreamError::Unreachable(describe(e))
    }
}

/// The whole chain of causes of a transport failure, without the URL (it may carry
/// credentials in its userinfo, path or query): reqwest's own text alone ("error sending
/// request") does not say that the certificate was refused. A refused certificate gets a
/// hint at the setting that fixes it.
pub(crate) fn describe(e: reqwest::Error) -> String {
    use std::error::Error as _;
    let top = e.without_url();
    let mut text = top.to_string();
    let mut source = top.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    if certificate_refused(&top) {
        text.push_str(
            " (TLS: the server's certificate is not trusted; if it is issued by a private CA, \
             set [tls] ca_file to that CA's PEM)",
        );
    }
    text
}

/// Whether rustls refused the peer's certificate somewhere in `e`'s chain of causes. An
/// `io::Error` hides the error it wraps from `source()` (it answers with that error's own
/// source), so it is opened with `get_ref`.
fn certificate_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return matches!(tls, rustls::Error::InvalidCertificate(_));
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && certificate_refused(inner)
        {
            return true;
        }
        cause = err.source();
    }
    false
}

/// Response headers worth passing on: everything except hop-by-hop and framing headers
/// (the gateway re-frames the body) and cookies (the upstream has no business with the
/// client's session).
pub(crate) fn pass_headers(upstream: &HeaderMap) -> HeaderMap {
    const DROP: [HeaderName; 9] = [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::SET_COOKIE,
        header::UPGRADE,
        header::TRAILER,
        header::TE,
        header::DATE,
    ];
    let mut out = HeaderMap::new();
    for (name, value) in upstream {
        let keep = !DROP.contains(name)
            && name.as_str() != "keep-alive"
            && !name.as_str().starts_with("proxy-");
        if keep {
            out.append(name.clone(), value.clone());
        }
    }
    out
}
