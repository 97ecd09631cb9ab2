//! Access to the `moto_server` that `tests/run.sh` starts: the variables that point
//! `proc_wrapper` at it, and blocking helpers that create secrets, parameters and objects (requests signed
//! with proc_wrapper's own SigV4 signer, as moto expects signed requests).
//!
//! Tests that need AWS call [`Moto::connect`], which fails the test (never skips it) when
//! `PROC_WRAPPER_TEST_MOTO_URL` is unset or the server does not answer.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use base64::Engine;
use proc_wrapper::aws::credentials::Credentials;
use proc_wrapper::aws::sigv4;
use serde_json::{Value, json};

/// The region the tests use.
pub const REGION: &str = "us-east-2";

/// An IAM policy that allows everything.
const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// A connection to moto.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Moto {
    /// Connects to the moto_server of `tests/run.sh`; panics with instructions if there is
    /// none.
    pub fn connect() -> Self {
        Self::connect_to("PROC_WRAPPER_TEST_MOTO_URL")
    }

    /// Connects to the second moto_server of `tests/run.sh`, whose IAM authentication a test
    /// may turn on ([`Moto::reset_auth`]); panics with instructions if there is none.
    pub fn connect_iam() -> Self {
        Self::connect_to("PROC_WRAPPER_TEST_MOTO_IAM_URL")
    }

    fn connect_to(var: &str) -> Self {
        let endpoint = std::env::var(var).unwrap_or_else(|_| {
            panic!("{var} is not set: run the tests with tests/run.sh, which starts moto_server")
        });
        let addr = endpoint.trim_start_matches("http://");
        if std::net::TcpStream::connect(addr).is_err() {
            panic!("moto_server is not reachable at {endpoint}");
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("UNWRAP: a runtime can be built");
        Self {
            endpoint,
            rt,
            http: reqwest::Client::new(),
        }
    }

    /// Sets moto's IAM authentication (`/moto-api/reset-auth`): after `unchecked` more
    /// requests (`inf`: never), every request must be signed by the keys of an IAM user moto
    /// knows, and moto checks the signature (recomputed with botocore's signer).
    pub fn reset_auth(&self, unchecked: &str) {
        let url = format!("{}/moto-api/reset-auth", self.endpoint);
        let body = unchecked.to_owned();
        let status = self.rt.block_on(async {
            let response = self
                .http
                .post(url)
                .body(body)
                .send()
                .await
                .expect("UNWRAP: moto answers");
            response.status().as_u16()
        });
        assert_eq!(status, 200, "moto-api/reset-auth");
    }

    /// An IAM query call (`Action=...`); panics unless it succeeds; returns the XML.
    fn iam_call(&self, pairs: &[(&str, &str)]) -> String {
        let body = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", sigv4::uri_encode(v, false)))
            .chain(std::iter::once("Version=2010-05-08".to_owned()))
            .collect::<Vec<_>>()
            .join("&");
        let (status, text) = self.send(
            "iam",
            "POST",
            "/",
            &[("content-type", "application/x-www-form-urlencoded")],
            body.into_bytes(),
        );
        assert!((200..300).contains(&status), "IAM: HTTP {status}: {text}");
        text
    }

    /// Creates IAM role `name`, which anyone may assume and which is allowed everything;
    /// returns its ARN.
    pub fn iam_role(&self, name: &str) -> String {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;
        let xml = self.iam_call(&[
            ("Action", "CreateRole"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", trust),
        ]);
        self.iam_call(&[
            ("Action", "PutRolePolicy"),
            ("RoleName", name),
            ("PolicyName", "everything"),
            ("PolicyDocument", ALLOW_ALL),
        ]);
        proc_wrapper::aws::credentials::xml_text(&xml, "Arn")
            .unwrap_or_else(|| panic!("CreateRole answered no Arn: {xml}"))
    }

    /// Creates IAM user `name`, allowed everything, and returns its access key and secret.
    pub fn iam_user(&self, name: &str) -> (String, String) {
        let call = |pairs: &[(&str, &str)]| self.iam_call(pairs);
        call(&[("Action", "CreateUser"), ("UserName", name)]);
        call(&[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", "everything"),
            ("PolicyDocument", ALLOW_ALL),
        ]);
        let xml = call(&[("Action", "CreateAccessKey"), ("UserName", name)]);
        let field = |tag: &str| {
            proc_wrapper::aws::credentials::xml_text(&xml, tag)
                .unwrap_or_else(|| panic!("CreateAccessKey answered no {tag}: {xml}"))
        };
        (field("AccessKeyId"), field("SecretAccessKey"))
    }

    /// Variables that point a `proc_wrapper` process at moto, with dummy credentials.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// A name no other test uses.
    pub fn unique(prefix: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Sends a request signed for `service` with the dummy credentials; returns the status
    /// and the body.
    fn send(
        &self,
        service: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, String) {
        let url = reqwest::Url::parse(&format!("{}{path}", self.endpoint))
            .expect("UNWRAP: a valid moto URL");
        let (host, query) = sigv4::host_and_query(&url);
        let creds = Credentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: None,
            expires: None,
        };
        let signed = sigv4::sign(
            &sigv4::Request {
                method,
                host: &host,
                path: url.path(),
                query: &query,
                headers,
                payload: &body,
            },
            sigv4::Scope {
                region: REGION,
                service,
                time: SystemTime::now(),
            },
            &creds,
            sigv4::Settings::for_service(service),
        );
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("UNWRAP: a method");
        let mut request = self.http.request(method, url).body(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        for (k, v) in signed {
            request = request.header(k, v);
        }
        self.rt.block_on(async {
            let response = request.send().await.expect("UNWRAP: moto answers");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        })
    }

    /// A JSON-protocol call (`target` is `secretsmanager.CreateSecret`, ...); panics unless
    /// it succeeds.
    fn json_call(&self, service: &str, target: &str, body: &Value) -> Value {
        let (status, text) = self.send(
            service,
            "POST",
            "/",
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", target),
            ],
            body.to_string().into_bytes(),
        );
        assert!(
            (200..300).contains(&status),
            "{target}: HTTP {status}: {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn create_secret(&self, body: &Value) -> String {
        self.json_call("secretsmanager", "secretsmanager.CreateSecret", body)["ARN"]
            .as_str()
            .expect("UNWRAP: a created secret has an ARN")
            .to_owned()
    }

    /// Creates a string secret; returns its ARN.
    pub fn secret_string(&self, name: &str, value: &str) -> String {
        self.create_secret(&json!({"Name": name, "SecretString": value}))
    }

    /// Creates a binary secret; returns its ARN.
    pub fn secret_binary(&self, name: &str, value: &[u8]) -> String {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        self.create_secret(&json!({"Name": name, "SecretBinary": encoded}))
    }

    /// Creates an SSM parameter (`String`, `StringList` or `SecureString`).
    pub fn parameter(&self, name: &str, value: &str, kind: &str) {
        self.json_call(
            "ssm",
            "AmazonSSM.PutParameter",
            &json!({"Name": name, "Value": value, "Type": kind, "Overwrite": true}),
        );
    }

    /// Creates a bucket (if needed) and an object with a content type.
    pub fn object(&self, bucket: &str, key: &str, body: &str, content_type: &str) {
        let config = format!(
            "<CreateBucketConfiguration><LocationConstraint>{REGION}</LocationConstraint>\
             </CreateBucketConfiguration>"
        );
        // An existing bucket answers 409, which is fine.
        let _ = self.send("s3", "PUT", &format!("/{bucket}"), &[], config.into_bytes());
        // A key with `.` or `..` segments travels with its slashes encoded, which the URL
        // parser leaves alone (it would remove the segments) and moto decodes.
        let dot_segment = key.split('/').any(|s| s == "." || s == "..");
        let path = format!("/{bucket}/{}", sigv4::uri_encode(key, !dot_segment));
        let (status, text) = self.send(
            "s3",
            "PUT",
            &path,
            &[("content-type", content_type)],
            body.as_bytes().to_vec(),
        );
        assert!(
            (200..300).contains(&status),
            "PutObject: HTTP {status}: {text}"
        );
    }
}
