//! `docker login` (`POST /auth`): checks credentials against a registry the way
//! dockerd does: `GET /v2/`, then, on its challenge, basic auth on `/v2/` or a token
//! request to the `Bearer` realm with the credentials.

use super::RegistryError;
use super::endpoint::{Endpoint, USER_AGENT, endpoints_for_host};
use super::settings::{Credentials, RegistryConfig};

/// The registry host of a login's `serveraddress` (`https://index.docker.io/v1/`,
/// `127.0.0.1:5000`, `https://reg.example/`).
pub fn login_host(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => {
            super::reference::DOCKER_HUB.to_string()
        }
        h => h.to_string(),
    }
}

/// A `key="value"` parameter of a `WWW-Authenticate` header.
fn param(h: &str, key: &str) -> Option<String> {
    let i = h.find(&format!("{key}=\""))?;
    let rest = &h[i + key.len() + 2..];
    Some(rest[..rest.find('"')?].to_string())
}

/// Checks `creds` at the registry `server`; Ok means Docker's "Login Succeeded".
pub async fn login(
    cfg: &RegistryConfig,
    server: &str,
    creds: &Credentials,
) -> Result<(), RegistryError> {
    let Credentials::Basic { username, password } = creds else {
        return Err(RegistryError::InvalidSetting(
            "a login needs a username and a password".into(),
        ));
    };
    let host = login_host(server);
    let eps = endpoints_for_host(cfg, &host).await;
    let mut last = None;
    for ep in &eps {
        match login_at(cfg, ep, username, password).await {
            Ok(()) => return Ok(()),
            Err((e, connect)) if connect => last = Some(e),
            Err((e, _)) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| RegistryError::Unreachable(format!("no endpoint for {host}"))))
}

async fn login_at(
    cfg: &RegistryConfig,
    ep: &Endpoint,
    user: &str,
    pass: &str,
) -> Result<(), (RegistryError, bool)> {
    super::endpoint::ensure_crypto_provider();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(ep.skip_verify)
        .connect_timeout(cfg.timeout)
        .read_timeout(cfg.timeout)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| {
            (
                RegistryError::InvalidSetting(format!("make a registry client: {e}")),
                false,
            )
        })?;
    let base = ep.url();
    let net = |e: reqwest::Error| {
        let connect = e.is_connect();
        (
            RegistryError::Unreachable(format!("login to {base}: {}", super::endpoint::chain(&e))),
            connect,
        )
    };
    let denied = || {
        (
            RegistryError::Denied(format!(
                "login to {base} refused: unauthorized: incorrect username or password"
            )),
            false,
        )
    };
    let r = client
        .get(format!("{base}/v2/"))
        .send()
        .await
        .map_err(net)?;
    if r.status().is_success() {
        // An open registry accepts anyone, as dockerd's login says.
        return Ok(());
    }
    let challenge = r
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let ok = if challenge.to_ascii_lowercase().starts_with("bearer") {
        let realm = param(&challenge, "realm").ok_or_else(|| {
            (
                RegistryError::Invalid(format!(
                    "{base} answered a Bearer challenge without a realm"
                )),
                false,
            )
        })?;
        let mut q = vec![("account", user.to_string())];
        if let Some(s) = param(&challenge, "service") {
            q.push(("service", s));
        }
        client
            .get(&realm)
            .query(&q)
            .basic_auth(user, Some(pass))
            .send()
            .await
            .map_err(net)?
            .status()
            .is_success()
    } else {
        client
            .get(format!("{base}/v2/"))
            .basic_auth(user, Some(pass))
            .send()
            .await
            .map_err(net)?
            .status()
            .is_success()
    };
    if ok { Ok(()) } else { Err(denied()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(login_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(login_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(login_host("http://reg.local:5000/"), "reg.local:5000");
        assert_eq!(
            param(r#"Bearer realm="http://a/token",service="s""#, "service").as_deref(),
            Some("s")
        );
    }
}
