//! AWS credentials, found in the order of the AWS SDKs' default chain: environment
//! variables, the shared files' profile (static keys, `credential_process`, an assumed role
//! or a web identity), a web identity from the environment (EKS), container credentials
//! (ECS, EKS Pod Identity) and the EC2 instance metadata service ([`super::imds`]).
//!
//! A source that is configured but fails stops the search with its error, as in the SDKs;
//! a source that is not configured passes to the next. Temporary credentials are fetched
//! again `REFRESH_MARGIN` before they expire; if that fails (an instance metadata outage),
//! the ones held are used until they expire, as the SDKs do.

use std::time::{Duration, SystemTime};

use serde_json::Value;
use tracing::warn;

use super::Aws;
use super::profile::Profile;
use crate::time::parse_rfc3339;

/// A set of AWS credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AKIA...` or `ASIA...`.
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
    /// When temporary credentials expire.
    pub expires: Option<SystemTime>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .field("expires", &self.expires)
            .finish()
    }
}

/// Credentials are fetched again this long before they expire.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// The timeout of one container credentials request.
const CONTAINER_TIMEOUT: Duration = Duration::from_secs(5);
/// How deep `source_profile` chains may go.
const MAX_PROFILE_CHAIN: usize = 5;
/// The address of ECS container credentials for `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`.
const ECS_CREDENTIALS_HOST: &str = "http://169.254.170.2";

impl Credentials {
    /// Whether these should be fetched again.
    pub(crate) fn stale(&self) -> bool {
        self.expires
            .is_some_and(|e| e <= SystemTime::now() + REFRESH_MARGIN)
    }

    /// Whether these have expired.
    pub fn expired(&self) -> bool {
        self.expires.is_some_and(|e| e <= SystemTime::now())
    }
}

/// An expiry time (RFC 3339, any UTC offset, as botocore reads it); `Err` names `source`.
fn expiry(text: Option<String>, source: &str) -> Result<Option<SystemTime>, String> {
    match text.filter(|t| !t.trim().is_empty()) {
        None => Ok(None),
        Some(t) => parse_rfc3339(&t).map(Some).ok_or_else(|| {
            format!("{source} gave an Expiration that is not an RFC 3339 time: '{t}'")
        }),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_true(name: &str) -> bool {
    env(name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Credentials from a JSON object with `AccessKeyId`, `SecretAccessKey`, `Token` or
/// `SessionToken`, and `Expiration` (container credentials, IMDS, `credential_process`).
pub fn from_json(v: &Value, source: &str) -> Result<Credentials, String> {
    let field = |name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
    let (Some(access_key_id), Some(secret_access_key)) =
        (field("AccessKeyId"), field("SecretAccessKey"))
    else {
        let detail = field("Message")
            .or_else(|| field("Code"))
            .unwrap_or_default();
        return Err(
            format!("{source} returned no AccessKeyId and SecretAccessKey {detail}")
                .trim_end()
                .to_owned(),
        );
    };
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token: field("Token").or_else(|| field("SessionToken")),
        expires: expiry(field("Expiration"), source)?,
    })
}

/// The text of the first `<tag>...</tag>` of an XML document, entities decoded.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// Credentials from the `<Credentials>` element of an STS answer.
pub fn from_sts_xml(xml: &str) -> Result<Credentials, String> {
    let creds = xml_text(xml, "Credentials")
        .ok_or_else(|| "the STS answer has no Credentials element".to_owned())?;
    let field =
        |name: &str| xml_text(&creds, name).ok_or_else(|| format!("the STS answer has no {name}"));
    Ok(Credentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: field("SecretAccessKey")?,
        session_token: Some(field("SessionToken")?),
        expires: expiry(xml_text(&creds, "Expiration"), "the STS answer")?,
    })
}

fn from_env() -> Result<Option<Credentials>, String> {
    let id = env("AWS_ACCESS_KEY_ID").or_else(|| env("AWS_ACCESS_KEY"));
    let secret = env("AWS_SECRET_ACCESS_KEY").or_else(|| env("AWS_SECRET_KEY"));
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Some(Credentials {
            access_key_id,
            secret_access_key,
            session_token: env("AWS_SESSION_TOKEN"),
            expires: None,
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into()),
        (None, Some(_)) => Err("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into()),
    }
}

fn session_name() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("proc_wrapper-{secs}")
}

impl Aws {
    /// The credentials to sign with, fetched on first use and again when they near expiry.
    pub(super) async fn credentials(&self) -> Result<Credentials, String> {
        let mut cached = self.credentials.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| !c.stale()) {
            return Ok(c.clone());
        }
        match self.find_credentials().await {
            Ok(creds) => {
                *cached = Some(creds.clone());
                Ok(creds)
            }
            // A refresh that fails keeps the credentials held until they expire.
            Err(e) => match cached.as_ref().filter(|c| !c.expired()) {
                Some(held) => {
                    let left = held
                        .expires
                        .and_then(|x| x.duration_since(SystemTime::now()).ok())
                        .map_or(0, |d| d.as_secs());
                    warn!(
                        "AWS credentials could not be refreshed ({e}); using the current ones, \
                         which expire in {left} s"
                    );
                    Ok(held.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn find_credentials(&self) -> Result<Credentials, String> {
        let mut tried = Vec::new();
        if let Some(c) = from_env()? {
            return Ok(c);
        }
        tried.push("environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");
        let (name, explicit) = super::profile::selected();
        match self.profiles().get(&name) {
            Some(profile) => {
                if let Some(c) = self.profile_credentials(&name, profile, 0).await? {
                    return Ok(c);
                }
            }
            None if explicit => {
                return Err(format!(
                    "the AWS profile '{name}' (AWS_PROFILE) is not in the shared config or \
                     credentials files"
                ));
            }
            None => {}
        }
        tried.push("the shared config and credentials files (~/.aws)");
        if let (Some(token_file), Some(role)) =
            (env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN"))
        {
            let session = env("AWS_ROLE_SESSION_NAME").unwrap_or_else(session_name);
            return self
                .assume_role_with_web_identity(&token_file, &role, &session)
                .await;
        }
        tried.push("a web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN)");
        if let Some(c) = self.container_credentials().await? {
            return Ok(c);
        }
        tried.push("container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI)");
        if env_true("AWS_EC2_METADATA_DISABLED") {
            tried.push("the EC2 instance metadata service (disabled by AWS_EC2_METADATA_DISABLED)");
        } else {
            match self.imds_credentials().await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    return Err(format!(
                        "no AWS credentials found; tried {}, and the EC2 instance metadata \
                         service: {e}",
                        tried.join(", ")
                    ));
                }
            }
        }
        Err(format!(
            "no AWS credentials found; tried {}",
            tried.join(", ")
        ))
    }

    /// Credentials of a profile: static keys, `credential_process`, `role_arn` with
    /// `source_profile`, `credential_source` or `web_identity_token_file`. `Ok(None)` when the
    /// profile holds none of these.
    fn profile_credentials<'a>(
        &'a self,
        name: &'a str,
        profile: &'a Profile,
        depth: usize,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<Credentials>, String>> + Send + 'a>,
    > {
        Box::pin(async move {
            if depth > MAX_PROFILE_CHAIN {
                return Err(format!(
                    "the AWS profile '{name}': source_profile chains deeper than {MAX_PROFILE_CHAIN}"
                ));
            }
            let get = |k: &str| profile.get(k).filter(|v| !v.is_empty()).cloned();
            if let Some(role) = get("role_arn") {
                let session = get("role_session_name").unwrap_or_else(session_name);
                if let Some(token_file) = get("web_identity_token_file") {
                    return self
                        .assume_role_with_web_identity(&token_file, &role, &session)
                        .await
                        .map(Some);
                }
                let source = if let Some(src) = get("source_profile") {
                    let src_profile = self.profiles().get(&src).ok_or_else(|| {
                        format!("the AWS profile '{name}' names source_profile '{src}', which does not exist")
                    })?;
                    // A profile naming itself as its source uses its own static keys.
                    let src_profile = if src == name {
                        let mut own = src_profile.clone();
                        own.remove("role_arn");
                        std::borrow::Cow::Owned(own)
                    } else {
                        std::borrow::Cow::Borrowed(src_profile)
                    };
                    self.profile_credentials(&src, &src_profile, depth + 1)
                        .await?
                        .ok_or_else(|| format!("the AWS profile '{src}' (source_profile of '{name}') holds no credentials"))?
                } else if let Some(kind) = get("credential_source") {
                    match kind.as_str() {
                        "Environment" => from_env()?.ok_or_else(|| {
                            format!("the AWS profile '{name}' has credential_source Environment, but AWS_ACCESS_KEY_ID is not set")
                        })?,
                        "EcsContainer" => self.container_credentials().await?.ok_or_else(|| {
                            format!("the AWS profile '{name}' has credential_source EcsContainer, but no container credentials are configured")
                        })?,
                        "Ec2InstanceMetadata" => self.imds_credentials().await?,
                        other => {
                            return Err(format!(
                                "the AWS profile '{name}' has an unknown credential_source '{other}'"
                            ));
                        }
                    }
                } else {
                    return Err(format!(
                        "the AWS profile '{name}' has role_arn but neither source_profile nor credential_source"
                    ));
                };
                return self
                    .assume_role(
                        &source,
                        &role,
                        &session,
                        get("external_id"),
                        get("duration_seconds"),
                    )
                    .await
                    .map(Some);
            }
            if let (Some(id), Some(secret)) =
                (get("aws_access_key_id"), get("aws_secret_access_key"))
            {
                return Ok(Some(Credentials {
                    access_key_id: id,
                    secret_access_key: secret,
                    session_token: get("aws_session_token"),
                    expires: None,
                }));
            }
            if let Some(command) = get("credential_process") {
                return credential_process(name, &command).await.map(Some);
            }
            if get("sso_start_url").is_some() || get("sso_session").is_some() {
                return Err(format!(
                    "the AWS profile '{name}' uses IAM Identity Center (SSO), which proc_wrapper \
                     does not support; export credentials to the environment instead \
                     (aws configure export-credentials --format env)"
                ));
            }
            if get("login_session").is_some() {
                return Err(format!(
                    "the AWS profile '{name}' uses a console login session (login_session, from \
                     aws login), which proc_wrapper does not support; export credentials to the \
                     environment instead (aws configure export-credentials --format env)"
                ));
            }
            Ok(None)
        })
    }

    /// STS `AssumeRoleWithWebIdentity` (unsigned), with the token read from `token_file`.
    async fn assume_role_with_web_identity(
        &self,
        token_file: &str,
        role: &str,
        session: &str,
    ) -> Result<Credentials, String> {
        let token = tokio::fs::read_to_string(token_file)
            .await
            .map_err(|e| format!("cannot read the web identity token file '{token_file}': {e}"))?;
        let params = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role),
            ("RoleSessionName", session),
            ("WebIdentityToken", token.trim()),
        ];
        let xml = self
            .sts(&params, None)
            .await
            .map_err(|e| format!("STS AssumeRoleWithWebIdentity for {role} failed: {e}"))?;
        from_sts_xml(&xml)
    }

    /// STS `AssumeRole`, signed with `source`.
    async fn assume_role(
        &self,
        source: &Credentials,
        role: &str,
        session: &str,
        external_id: Option<String>,
        duration: Option<String>,
    ) -> Result<Credentials, String> {
        let mut params = vec![
            ("Action", "AssumeRole"),
            ("Version", "2011-06-15"),
            ("RoleArn", role),
            ("RoleSessionName", session),
        ];
        if let Some(id) = &external_id {
            params.push(("ExternalId", id));
        }
        if let Some(d) = &duration {
            params.push(("DurationSeconds", d));
        }
        let xml = self
            .sts(&params, Some(source))
            .await
            .map_err(|e| format!("STS AssumeRole for {role} failed: {e}"))?;
        from_sts_xml(&xml)
    }

    /// Container credentials: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (ECS) or
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` with the token of
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
    async fn container_credentials(&self) -> Result<Option<Credentials>, String> {
        let url = if let Some(relative) = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            format!("{ECS_CREDENTIALS_HOST}{relative}")
        } else if let Some(full) = env("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            check_full_uri(&full)?;
            full
        } else {
            return Ok(None);
        };
        let token = match env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
            Some(path) => Some(
                tokio::fs::read_to_string(&path)
                    .await
                    .map_err(|e| {
                        format!("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE '{path}': {e}")
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => env("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        };
        let what = "the container credentials endpoint";
        let http = self.http().map_err(|e| e.to_string())?;
        let mut last = String::new();
        for attempt in 1..=super::imds::ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(super::imds::retry_delay(attempt - 1)).await;
            }
            let mut request = http.get(&url).timeout(CONTAINER_TIMEOUT);
            if let Some(token) = &token {
                request = request.header("Authorization", token);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = format!("{what} ({url}) is unreachable: {e}");
                    continue;
                }
            };
            let status = response.status();
            let body = match super::read_capped(response, 64 * 1024).await {
                Ok(b) => b,
                Err(e) => {
                    last = format!("{what} ({url}): {e}");
                    continue;
                }
            };
            if !status.is_success() {
                last = format!("{what} ({url}) answered HTTP {status}");
                if super::imds::retryable_status(status.as_u16()) {
                    continue;
                }
                return Err(last);
            }
            let json: Value = serde_json::from_slice(&body)
                .map_err(|e| format!("{what} ({url}) answered with invalid JSON: {e}"))?;
            return from_json(&json, what).map(Some);
        }
        Err(format!("{last} (after {} attempts)", super::imds::ATTEMPTS))
    }

    /// The instance profile's credentials from the instance metadata service.
    async fn imds_credentials(&self) -> Result<Credentials, String> {
        let list = "/latest/meta-data/iam/security-credentials/";
        let role = self.imds_get(list).await?;
        let role = role
            .lines()
            .next()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| "the instance has no IAM instance profile".to_owned())?;
        let text = self.imds_get(&format!("{list}{role}")).await?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| format!("the instance metadata credentials are not JSON: {e}"))?;
        from_json(&json, "the EC2 instance metadata service")
    }
}

/// As in the SDKs, `AWS_CONTAINER_CREDENTIALS_FULL_URI` must be HTTPS, or plain HTTP to a
/// loopback address or to the ECS or EKS Pod Identity agent (169.254.170.2, 169.254.170.23,
/// fd00:ec2::23): the authorization token and the credentials never cross a network in clear.
fn check_full_uri(uri: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(uri)
        .map_err(|e| format!("AWS_CONTAINER_CREDENTIALS_FULL_URI '{uri}' is not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .ok();
    let agent = |ip: std::net::IpAddr| {
        ip.is_loopback()
            || ip == std::net::Ipv4Addr::new(169, 254, 170, 2)
            || ip == std::net::Ipv4Addr::new(169, 254, 170, 23)
            || ip == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23)
    };
    let allowed = match url.scheme() {
        "https" => !host.is_empty(),
        "http" => ip.map_or(host.eq_ignore_ascii_case("localhost"), agent),
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI '{uri}' must use HTTPS, or HTTP to a loopback \
             address or the ECS/EKS credentials agent"
        ))
    }
}

/// Runs a profile's `credential_process` through `sh -c`, as the AWS CLI does on Unix, and
/// reads its JSON output.
async fn credential_process(profile: &str, command: &str) -> Result<Credentials, String> {
    let output = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .map_err(|e| {
            format!("the credential_process of AWS profile '{profile}' did not start: {e}")
        })?;
    if !output.status.success() {
        return Err(format!(
            "the credential_process of AWS profile '{profile}' failed ({})",
            output.status
        ));
    }
    let json: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        format!("the credential_process of AWS profile '{profile}' printed invalid JSON: {e}")
    })?;
    from_json(
        &json,
        &format!("the credential_process of AWS profile '{profile}'"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_uris_must_not_cross_a_network_in_clear() {
        for ok in [
            "http://127.0.0.1:8080/creds",
            "http://localhost/creds",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
            "http://[::1]:9/creds",
            "https://creds.example.com/x",
        ] {
            assert!(check_full_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.5/creds",
            "http://example.com/creds",
            "file:///etc/passwd",
            "nonsense",
        ] {
            let err = check_full_uri(bad).expect_err(bad);
            assert!(err.contains("AWS_CONTAINER_CREDENTIALS_FULL_URI"), "{err}");
        }
    }

    #[test]
    fn debug_redacts_the_secrets() {
        let c = Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "VERYSECRET".into(),
            session_token: Some("TOKENSECRET".into()),
            expires: None,
        };
        let text = format!("{c:?}");
        assert!(text.contains("AKID"));
        assert!(
            !text.contains("VERYSECRET") && !text.contains("TOKENSECRET"),
            "{text}"
        );
    }

    #[test]
    fn parses_sts_answers() {
        let xml = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>\
            <Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>s&amp;k</SecretAccessKey>\
            <SessionToken>tok</SessionToken><Expiration>2026-11-27T10:00:00Z</Expiration>\
            </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
        let c = from_sts_xml(xml).expect("credentials");
        assert_eq!(c.access_key_id, "ASIA1");
        assert_eq!(c.secret_access_key, "s&k");
        assert_eq!(c.session_token.as_deref(), Some("tok"));
        assert!(c.expires.is_some());
        assert!(c.stale(), "a time in the past is stale");
        assert!(from_sts_xml("<Error><Code>AccessDenied</Code></Error>").is_err());
    }

    #[test]
    fn parses_container_and_imds_answers() {
        let v = serde_json::json!({
            "Code": "Success", "AccessKeyId": "ASIA2", "SecretAccessKey": "sk",
            "Token": "t", "Expiration": "2099-01-01T00:00:00Z"
        });
        let c = from_json(&v, "test").expect("credentials");
        assert_eq!(c.session_token.as_deref(), Some("t"));
        assert!(!c.stale());
        let err = from_json(&serde_json::json!({"Message": "denied"}), "the endpoint")
            .expect_err("no keys");
        assert!(err.contains("denied"), "{err}");
    }
}
