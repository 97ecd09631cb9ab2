//! Access to the `moto_server` that `tests/run.sh` starts: the variables that point
//! `proc_wrapper` at it, and blocking helpers that create secrets, parameters and objects.
//!
//! Tests that need AWS call [`Moto::connect`], which fails the test (never skips it) when
//! `PROC_WRAPPER_TEST_MOTO_URL` is unset or the server does not answer.

use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::primitives::ByteStream;

/// The region the tests use.
pub const REGION: &str = "us-east-2";

/// A connection to moto.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    rt: tokio::runtime::Runtime,
    sm: aws_sdk_secretsmanager::Client,
    ssm: aws_sdk_ssm::Client,
    s3: aws_sdk_s3::Client,
}

impl Moto {
    /// Connects to the moto_server of `tests/run.sh`; panics with instructions if there is
    /// none.
    pub fn connect() -> Self {
        let endpoint = std::env::var("PROC_WRAPPER_TEST_MOTO_URL").unwrap_or_else(|_| {
            panic!(
                "PROC_WRAPPER_TEST_MOTO_URL is not set: run the tests with tests/run.sh, which \
                 starts moto_server"
            )
        });
        let addr = endpoint.trim_start_matches("http://");
        if std::net::TcpStream::connect(addr).is_err() {
            panic!("moto_server is not reachable at {endpoint}");
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("UNWRAP: a runtime can be built");
        let sdk = rt.block_on(
            aws_config::defaults(BehaviorVersion::latest())
                .http_client(https_client())
                .region(Region::new(REGION))
                .endpoint_url(&endpoint)
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    "testing", "testing", None, None, "tests",
                ))
                .load(),
        );
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        Self {
            sm: aws_sdk_secretsmanager::Client::new(&sdk),
            ssm: aws_sdk_ssm::Client::new(&sdk),
            s3,
            endpoint,
            rt,
        }
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

    /// Creates a string secret; returns its ARN.
    pub fn secret_string(&self, name: &str, value: &str) -> String {
        self.rt
            .block_on(
                self.sm
                    .create_secret()
                    .name(name)
                    .secret_string(value)
                    .send(),
            )
            .expect("UNWRAP: moto creates the secret")
            .arn
            .expect("UNWRAP: a created secret has an ARN")
    }

    /// Creates a binary secret; returns its ARN.
    pub fn secret_binary(&self, name: &str, value: &[u8]) -> String {
        self.rt
            .block_on(
                self.sm
                    .create_secret()
                    .name(name)
                    .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(value))
                    .send(),
            )
            .expect("UNWRAP: moto creates the secret")
            .arn
            .expect("UNWRAP: a created secret has an ARN")
    }

    /// Creates an SSM parameter (`String`, `StringList` or `SecureString`).
    pub fn parameter(&self, name: &str, value: &str, kind: &str) {
        self.rt
            .block_on(
                self.ssm
                    .put_parameter()
                    .name(name)
                    .value(value)
                    .r#type(aws_sdk_ssm::types::ParameterType::from(kind))
                    .overwrite(true)
                    .send(),
            )
            .expect("UNWRAP: moto stores the parameter");
    }

    /// Creates a bucket (if needed) and an object with a content type.
    pub fn object(&self, bucket: &str, key: &str, body: &str, content_type: &str) {
        self.rt.block_on(async {
            let _ = self
                .s3
                .create_bucket()
                .bucket(bucket)
                .create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                            REGION,
                        ))
                        .build(),
                )
                .send()
                .await;
            self.s3
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from(body.as_bytes().to_vec()))
                .content_type(content_type)
                .send()
                .await
                .expect("UNWRAP: moto stores the object");
        });
    }
}

/// The HTTP client of the SDK clients that set up moto: rustls with ring.
fn https_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
