//! Runtime metadata (README "Reporting to CloudReactor", "Runtime metadata"): what the wrapper
//! can tell the API server about where the Task runs.
//!
//! This module detects the execution method from the environment: AWS ECS (task metadata
//! endpoint v4/v3), AWS CodeBuild (its variables), or a forced type. Without a recognised
//! environment the method is `Unknown`, with the host name as the only detail. A metadata
//! endpoint that cannot be read is logged and reported as `Unknown`; it never stops a run.

use serde_json::{Map, Value, json};
use tracing::warn;

use crate::config::table as T;
use crate::config::{Config, ContainerConfig};
use crate::secrets::merge::merge;

/// How the Task is run, as the API names it (`execution_method_type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExecutionMethod {
    /// An ECS task.
    #[serde(rename = "AWS ECS")]
    AwsEcs,
    /// A Lambda function.
    #[serde(rename = "AWS Lambda")]
    AwsLambda,
    /// A CodeBuild build.
    #[serde(rename = "AWS CodeBuild")]
    AwsCodeBuild,
    /// An EC2 instance.
    #[serde(rename = "AWS EC2")]
    AwsEc2,
    /// Anything else.
    #[default]
    Unknown,
}

impl ExecutionMethod {
    /// Every method.
    pub const ALL: [Self; 5] = [
        Self::AwsEcs,
        Self::AwsLambda,
        Self::AwsCodeBuild,
        Self::AwsEc2,
        Self::Unknown,
    ];

    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwsEcs => "AWS ECS",
            Self::AwsLambda => "AWS Lambda",
            Self::AwsCodeBuild => "AWS CodeBuild",
            Self::AwsEc2 => "AWS EC2",
            Self::Unknown => "Unknown",
        }
    }

    /// The method of an API name (exactly as the API spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The infrastructure the method runs on.
    pub(crate) fn infrastructure(self) -> Infrastructure {
        match self {
            Self::Unknown => Infrastructure::Unknown,
            _ => Infrastructure::Aws,
        }
    }
}

impl std::fmt::Display for ExecutionMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the Task runs (`infrastructure_type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub enum Infrastructure {
    /// Amazon Web Services.
    #[serde(rename = "AWS")]
    Aws,
    /// Anything else.
    #[default]
    Unknown,
}

/// Metadata of the runtime environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeMetadata {
    /// How the Task is run.
    pub execution_method_type: ExecutionMethod,
    /// Where it runs.
    pub infrastructure_type: Infrastructure,
    /// Execution-level fields besides the two types (`execution_method_details`,
    /// `infrastructure_settings`, `allocated_cpu_units`, ...).
    pub execution: Map<String, Value>,
    /// Task-level fields besides the two types (`execution_method_capability_details`, ...).
    pub task: Map<String, Value>,
    /// Addresses of the host running the Task.
    pub host_addresses: Vec<String>,
    /// Names of the host running the Task.
    pub host_names: Vec<String>,
    /// ECS sidecar mode: the wrapper watches another container, whose status this metadata
    /// reports.
    pub is_execution_status_source: bool,
    /// The exit code of the watched container, once it exited (sidecar mode).
    pub exit_code: Option<i32>,
    /// Variables the wrapped process gets about where it runs (ECS: the container names and
    /// whether the wrapper is a sidecar).
    pub child_env: Vec<(String, String)>,
}

/// The host name of this machine (`uname -n`).
pub(crate) fn node_name() -> Option<String> {
    nix::sys::utsname::uname()
        .ok()
        .and_then(|u| u.nodename().to_str().map(str::to_owned))
}

impl RuntimeMetadata {
    /// Metadata of an unrecognised environment.
    pub fn unknown() -> Self {
        Self {
            execution_method_type: ExecutionMethod::Unknown,
            infrastructure_type: Infrastructure::Unknown,
            host_names: node_name().into_iter().collect(),
            ..Self::default()
        }
    }

    /// Detects the environment from the process environment; `execution_method_type`
    /// forces the type.
    pub async fn detect(config: &Config) -> Self {
        Self::detect_with(config, &|k| std::env::var(k).ok()).await
    }

    /// Detects the environment from a variable lookup.
    pub(crate) async fn detect_with(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Self {
        let forced = config.task.execution_method_type;
        let ecs_uri =
            env("ECS_CONTAINER_METADATA_URI_V4").or_else(|| env("ECS_CONTAINER_METADATA_URI"));
        if forced.is_none_or(|t| t == ExecutionMethod::AwsCodeBuild)
            && let Some(m) = codebuild(env)
        {
            return m;
        }
        if forced.is_none_or(|t| t == ExecutionMethod::AwsEcs)
            && let Some(uri) = ecs_uri
        {
            match ecs(&uri, config).await {
                Ok(m) => return m,
                Err(e) => warn!("cannot read the ECS task metadata from {uri}: {e}"),
            }
        }
        if forced == Some(ExecutionMethod::AwsEc2) {
            if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                warn!("AWS EC2 metadata is disabled (AWS_EC2_METADATA_DISABLED)");
            } else {
                let endpoint = env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                    .unwrap_or_else(|| "http://169.254.169.254".to_owned());
                match ec2(&endpoint).await {
                    Ok(m) => return m,
                    Err(e) => warn!("cannot read the EC2 instance metadata from {endpoint}: {e}"),
                }
            }
        }
        let mut m = Self::unknown();
        if let Some(t) = forced {
            m.execution_method_type = t;
            m.infrastructure_type = t.infrastructure();
        }
        m
    }

    /// The host name to report: the first known address or name, else the node name.
    pub fn hostname(&self) -> Option<String> {
        self.host_addresses
            .iter()
            .chain(&self.host_names)
            .next()
            .cloned()
            .or_else(node_name)
    }

    /// `fields` with the two types added, and each extra deep-merged into the object at its
    /// key.
    fn typed(
        &self,
        fields: &Map<String, Value>,
        extras: &[(&str, Option<&Value>)],
    ) -> Map<String, Value> {
        let mut f = fields.clone();
        f.insert(
            "execution_method_type".into(),
            json!(self.execution_method_type),
        );
        f.insert(
            "infrastructure_type".into(),
            json!(self.infrastructure_type),
        );
        for (key, extra) in extras {
            if let Some(extra) = extra {
                let slot = f.entry(*key).or_insert_with(|| Value::Object(Map::new()));
                // Merging with DEEP cannot fail.
                let _ = merge(slot, (*extra).clone(), crate::config::MergeStrategy::Deep);
            }
        }
        f
    }

    /// Fields for updates of the Task Execution (the final one, and those after a refresh):
    /// the metadata alone, as 6.0.2 sends it (`--execution-method-props` only go with the
    /// creation).
    pub(crate) fn update_fields(&self) -> Map<String, Value> {
        self.typed(&self.execution, &[])
    }

    /// Fields for the creation of the Task Execution, with `--execution-method-props` merged
    /// into `execution_method_details`.
    pub(crate) fn execution_fields(&self, config: &Config) -> Map<String, Value> {
        let props = config
            .task
            .execution_method_props
            .clone()
            .map(Value::Object);
        self.typed(
            &self.execution,
            &[("execution_method_details", props.as_ref())],
        )
    }

    /// Fields for the Task object of the creation request, with the
    /// `execution_method_capability_details` and `infrastructure_settings` of
    /// `--auto-create-task-props` merged in.
    pub(crate) fn task_fields(&self, config: &Config) -> Map<String, Value> {
        let props = config.task.auto_create_task_props.as_ref();
        let get = |key: &str| props.and_then(|p| p.get(key));
        self.typed(
            &self.task,
            &[
                (
                    "execution_method_capability_details",
                    get("execution_method_capability_details"),
                ),
                ("infrastructure_settings", get("infrastructure_settings")),
            ],
        )
    }
}

fn obj(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Map<String, Value> {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// What is known about one AWS Lambda invocation, for the metadata 6.0.2 builds from a Lambda
/// context: from the `lambda_runtime` context in a handler, or from the INVOKE event in the
/// extension.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LambdaInvocation {
    /// The request id (`aws_request_id`).
    pub request_id: String,
    /// The ARN the function was invoked with.
    pub function_arn: String,
    /// The X-Ray trace header, if any.
    pub trace_id: Option<String>,
    /// The log group, when known (the runtime knows it; an extension does not).
    pub log_group: Option<String>,
    /// The log stream, when known (only the runtime knows it).
    pub log_stream: Option<String>,
    /// `{"id": ..., "pool_id": ...}` of the Cognito identity, if any.
    pub cognito_identity: Option<Value>,
    /// `{"client": {...}}` of the mobile client context, if any.
    pub client_context: Option<Value>,
    /// More `execution_method_details` (the extension adds `cold_start`, `deadline_at`,
    /// `account_id`, `handler`).
    pub extra_details: Map<String, Value>,
}

impl RuntimeMetadata {
    /// AWS Lambda metadata of one invocation, with the fields 6.0.2 sends, and the function's
    /// settings read from `env` (`AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`,
    /// `AWS_REGION`, ...).
    pub fn lambda(env: &dyn Fn(&str) -> Option<String>, invocation: &LambdaInvocation) -> Self {
        let v = |k: &str| env(k).map_or(Value::Null, Value::String);
        let memory =
            env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|m| m.trim().parse::<u64>().ok());
        let region = v("AWS_REGION");
        let mut common = Map::new();
        for (key, value) in [
            ("runtime_id", v("AWS_EXECUTION_ENV")),
            ("function_name", v("AWS_LAMBDA_FUNCTION_NAME")),
            ("function_version", v("AWS_LAMBDA_FUNCTION_VERSION")),
            ("init_type", v("AWS_LAMBDA_INITIALIZATION_TYPE")),
            ("dotnet_prejit", v("AWS_LAMBDA_DOTNET_PREJIT")),
            ("function_memory_mb", json!(memory)),
            ("time_zone_name", v("TZ")),
            ("function_arn", json!(invocation.function_arn)),
        ] {
            common.insert(key.to_owned(), value);
        }
        let mut details = common.clone();
        details.insert("aws_request_id".into(), json!(invocation.request_id));
        details.insert(
            "cognito_identity".into(),
            invocation.cognito_identity.clone().unwrap_or(Value::Null),
        );
        details.insert(
            "client_context".into(),
            invocation.client_context.clone().unwrap_or(Value::Null),
        );
        details.extend(invocation.extra_details.clone());
        let trace_id = invocation
            .trace_id
            .clone()
            .or_else(|| env("_X_AMZN_TRACE_ID"));
        let mut settings = Map::new();
        settings.insert("network".into(), json!({ "region": region }));
        settings.insert(
            "xray".into(),
            json!({ "trace_id": trace_id, "context_missing": v("AWS_XRAY_CONTEXT_MISSING") }),
        );
        let log_group = invocation
            .log_group
            .clone()
            .or_else(|| env("AWS_LAMBDA_LOG_GROUP_NAME"));
        if let Some(group) = log_group {
            let stream = invocation
                .log_stream
                .clone()
                .or_else(|| env("AWS_LAMBDA_LOG_STREAM_NAME"));
            settings.insert(
                "logging".into(),
                json!({
                    "driver": "awslogs",
                    "options": {"group": group, "region": region, "stream": stream},
                }),
            );
        }
        let mut execution = obj([
            ("allocated_memory_mb", json!(memory)),
            ("infrastructure_settings", Value::Object(settings.clone())),
        ]);
        let mut task = execution.clone();
        execution.insert("execution_method_details".into(), Value::Object(details));
        task.insert(
            "execution_method_capability_details".into(),
            Value::Object(common),
        );
        Self {
            execution_method_type: ExecutionMethod::AwsLambda,
            infrastructure_type: Infrastructure::Aws,
            execution,
            task,
            ..Self::default()
        }
    }
}

/// AWS CodeBuild, detected by `CODEBUILD_BUILD_ARN`, as in 6.0.2.
fn codebuild(env: &dyn Fn(&str) -> Option<String>) -> Option<RuntimeMetadata> {
    let build_arn = env("CODEBUILD_BUILD_ARN")?;
    let v = |k: &str| env(k).map_or(Value::Null, Value::String);
    let project_arn = build_arn
        .rsplit_once(':')
        .map_or(build_arn.as_str(), |(p, _)| p)
        .to_owned();
    let region = v("AWS_REGION");
    let capability = obj([
        ("build_arn", json!(project_arn)),
        ("build_image", v("CODEBUILD_BUILD_IMAGE")),
        ("batch_identifier", v("CODEBUILD_BATCH_BUILD_IDENTIFIER")),
        ("source_repo_url", v("CODEBUILD_SOURCE_REPO_URL")),
        ("source_version", v("CODEBUILD_SOURCE_VERSION")),
        ("kms_key_id", v("CODEBUILD_KMS_KEY_ID")),
        ("initiator", v("CODEBUILD_INITIATOR")),
    ]);
    let webhook = obj([
        ("actor_account_id", v("CODEBUILD_WEBHOOK_ACTOR_ACCOUNT_ID")),
        ("base_ref", v("CODEBUILD_WEBHOOK_BASE_REF")),
        ("event", v("CODEBUILD_WEBHOOK_EVENT")),
        ("merge_commit", v("CODEBUILD_WEBHOOK_MERGE_COMMIT")),
        ("prev_commit", v("CODEBUILD_WEBHOOK_PREV_COMMIT")),
        ("head_ref", v("CODEBUILD_WEBHOOK_HEAD_REF")),
        ("trigger", v("CODEBUILD_WEBHOOK_TRIGGER")),
    ]);
    let mut details = capability.clone();
    details.extend(obj([
        ("build_arn", json!(build_arn)),
        ("build_id", v("CODEBUILD_BUILD_ID")),
        (
            "batch_build_identifier",
            v("CODEBUILD_BATCH_BUILD_IDENTIFIER"),
        ),
        ("public_build_url", v("CODEBUILD_PUBLIC_BUILD_URL")),
        (
            "resolved_source_version",
            v("CODEBUILD_RESOLVED_SOURCE_VERSION"),
        ),
        ("src_dir", v("CODEBUILD_SRC_DIR")),
        (
            "build_number",
            env("CODEBUILD_BUILD_NUMBER")
                .and_then(|n| n.parse::<i64>().ok())
                .map_or(Value::Null, Value::from),
        ),
        (
            "build_succeeding",
            env("CODEBUILD_BUILD_SUCCEEDING").map_or(Value::Null, |s| json!(s == "1")),
        ),
        ("start_time", v("CODEBUILD_START_TIME")),
    ]));
    if !webhook.is_empty() {
        details.insert("webhook".into(), Value::Object(webhook));
    }
    let network = json!({"region": region});
    let mut infra_task = obj([("region", region.clone()), ("network", network.clone())]);
    let mut infra_exec = infra_task.clone();
    if !region.is_null() {
        infra_task.insert(
            "logging".into(),
            json!({"driver": "awslogs", "options": {"region": region}}),
        );
        infra_exec.insert(
            "logging".into(),
            json!({"driver": "awslogs", "options": obj([("region", region.clone()), ("stream", v("CODEBUILD_LOG_PATH"))])}),
        );
    }
    Some(RuntimeMetadata {
        execution_method_type: ExecutionMethod::AwsCodeBuild,
        infrastructure_type: Infrastructure::Aws,
        execution: obj([
            ("execution_method_details", Value::Object(details)),
            ("infrastructure_settings", Value::Object(infra_exec)),
        ]),
        task: obj([
            (
                "execution_method_capability_details",
                Value::Object(capability),
            ),
            ("infrastructure_settings", Value::Object(infra_task)),
        ]),
        host_addresses: Vec::new(),
        host_names: node_name().into_iter().collect(),
        is_execution_status_source: false,
        exit_code: None,
        child_env: Vec::new(),
    })
}

/// AWS EC2, from the instance metadata service (IMDSv2), only when forced with
/// `--execution_method_type "AWS EC2"`, as in 6.0.2.
async fn ec2(endpoint: &str) -> Result<RuntimeMetadata, MetadataError> {
    let client = http_client(std::time::Duration::from_secs(5))?;
    let base = endpoint.trim_end_matches('/');
    let token_url = format!("{base}/latest/api/token");
    let unreachable = |e: reqwest::Error| MetadataError::Unreachable {
        url: token_url.clone(),
        reason: e.to_string(),
    };
    let response = client
        .put(&token_url)
        .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
        .send()
        .await
        .map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(MetadataError::Status {
            url: token_url,
            status: response.status().as_u16(),
        });
    }
    let token = response.text().await.map_err(unreachable)?;
    let get = |path: &'static str| {
        let client = &client;
        let token = &token;
        async move {
            let r = client
                .get(format!("{base}/latest/meta-data/{path}"))
                .header("X-aws-ec2-metadata-token", token)
                .send()
                .await
                .ok()?;
            if !r.status().is_success() {
                return None;
            }
            r.text().await.ok()
        }
    };
    let instance_id = get("instance-id")
        .await
        .ok_or(MetadataError::NoInstanceId)?;
    let text = |v: Option<String>| v.map_or(Value::Null, Value::String);
    let az = get("placement/availability-zone").await;
    let region = get("placement/region").await.or_else(|| {
        az.as_ref()
            .filter(|a| a.len() > 1)
            .map(|a| a[..a.len() - 1].to_owned())
    });
    let mac = get("mac").await;
    let local_ip = get("local-ipv4").await;
    let hostname = get("local-hostname").await;
    let common = obj([
        ("ami_id", text(get("ami-id").await)),
        ("ami_manifest_path", text(get("ami-manifest-path").await)),
        ("instance_type", text(get("instance-type").await)),
        ("reservation_id", text(get("reservation-id").await)),
    ]);
    let mut details = common.clone();
    details.extend(obj([
        ("ami_launch_index", text(get("ami-launch-index").await)),
        ("instance_id", json!(instance_id)),
        (
            "instance_life_cycle",
            text(get("instance-life-cycle").await),
        ),
        ("kernel_id", text(get("kernel-id").await)),
    ]));
    let network_task = obj([("region", json!(region))]);
    let mut network_exec = network_task.clone();
    network_exec.extend(obj([
        ("availability_zone", json!(az)),
        ("mac_address", json!(mac)),
    ]));
    let mut execution = obj([
        ("execution_method_details", Value::Object(details)),
        ("infrastructure_settings", json!({"network": network_exec})),
    ]);
    if let Some(ip) = &local_ip {
        execution.insert("ip_v4_addresses".into(), json!([ip]));
    }
    Ok(RuntimeMetadata {
        execution_method_type: ExecutionMethod::AwsEc2,
        infrastructure_type: Infrastructure::Aws,
        execution,
        task: obj([
            ("execution_method_capability_details", Value::Object(common)),
            ("infrastructure_settings", json!({"network": network_task})),
        ]),
        host_addresses: local_ip.into_iter().collect(),
        host_names: hostname.into_iter().collect(),
        is_execution_status_source: false,
        exit_code: None,
        child_env: Vec::new(),
    })
}

/// Why runtime metadata could not be read. Detection logs it as a warning and goes on
/// with less metadata: the run never fails for it.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be created: {0}")]
    Client(String),
    /// The endpoint could not be reached, or its answer not read.
    #[error("{url} is unreachable: {reason}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The endpoint answered with an error status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The answer was not JSON.
    #[error("{url}: the answer is not JSON: {reason}")]
    NotJson {
        /// The URL asked.
        url: String,
        /// The parser's message.
        reason: String,
    },
    /// A document is JSON but not shaped as the endpoint documents it.
    #[error("unexpected {what}: {reason}")]
    Document {
        /// Which document.
        what: &'static str,
        /// The deserializer's message.
        reason: String,
    },
    /// The instance metadata service does not name the instance.
    #[error("the instance metadata has no instance-id")]
    NoInstanceId,
    /// Sidecar mode, but the main container cannot be told from the others.
    #[error("sidecar mode needs the main container's name")]
    NoMainContainer,
}

fn http_client(timeout: std::time::Duration) -> Result<reqwest::Client, MetadataError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| MetadataError::Client(e.to_string()))
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, MetadataError> {
    let unreachable = |e: reqwest::Error| MetadataError::Unreachable {
        url: url.to_owned(),
        reason: e.to_string(),
    };
    let response = client
        .get(url)
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(MetadataError::Status {
            url: url.to_owned(),
            status: response.status().as_u16(),
        });
    }
    let body = response.bytes().await.map_err(unreachable)?;
    serde_json::from_slice(&body).map_err(|e| MetadataError::NotJson {
        url: url.to_owned(),
        reason: e.to_string(),
    })
}

/// The limits of an ECS task or container (`CPU` in vCPUs for a task, units for a container).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
struct EcsLimits {
    #[serde(rename = "CPU")]
    cpu: Option<serde_json::Number>,
    #[serde(rename = "Memory")]
    memory: Option<serde_json::Number>,
}

/// One network of an ECS container (task metadata v4).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct EcsNetwork {
    network_mode: Option<String>,
    #[serde(rename = "IPv4SubnetCIDRBlock")]
    ip_v4_subnet_cidr_block: Option<String>,
    domain_name_servers: Option<Vec<String>>,
    domain_name_search_list: Option<Vec<String>>,
    #[serde(rename = "PrivateDNSName")]
    private_dns_name: Option<String>,
    subnet_gateway_ipv4_address: Option<String>,
    #[serde(rename = "IPv4Addresses")]
    ip_v4_addresses: Option<Vec<String>>,
    #[serde(rename = "MACAddress")]
    mac_address: Option<String>,
}

/// An ECS container, as the task metadata endpoint describes it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct EcsContainer {
    docker_id: Option<String>,
    name: Option<String>,
    docker_name: Option<String>,
    image: Option<String>,
    #[serde(rename = "ImageID")]
    image_id: Option<String>,
    labels: Option<Map<String, Value>>,
    #[serde(rename = "ContainerARN")]
    container_arn: Option<String>,
    limits: EcsLimits,
    networks: Vec<EcsNetwork>,
    log_driver: Option<String>,
    log_options: Option<Map<String, Value>>,
    exit_code: Option<i64>,
}

/// An ECS task, as the task metadata endpoint describes it (`{uri}/task`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct EcsTask {
    cluster: Option<String>,
    #[serde(rename = "TaskARN")]
    task_arn: Option<String>,
    family: Option<String>,
    revision: Option<String>,
    limits: EcsLimits,
    availability_zone: Option<String>,
    launch_type: Option<String>,
    containers: Vec<EcsContainer>,
}

fn document<T: serde::de::DeserializeOwned>(
    what: &'static str,
    v: &Value,
) -> Result<T, MetadataError> {
    serde_json::from_value(v.clone()).map_err(|e| MetadataError::Document {
        what,
        reason: e.to_string(),
    })
}

/// AWS ECS, from the task metadata endpoint (v4 or v3), with the fields 6.0.2 sends.
async fn ecs(uri: &str, config: &Config) -> Result<RuntimeMetadata, MetadataError> {
    let client = http_client(std::time::Duration::from_secs(60))?;
    let uri = uri.trim_end_matches('/');
    let task = get_json(&client, &format!("{uri}/task")).await?;
    let parsed: EcsTask = document("ECS task metadata", &task)?;
    let current = match parsed.containers.len() {
        1 => task["Containers"][0].clone(),
        _ => get_json(&client, uri).await?,
    };
    ecs_from_documents(&task, &current, config)
}

impl EcsTask {
    /// The task definition's ARN, from the task's ARN, family and revision.
    fn definition_arn(&self) -> Option<String> {
        let arn = self.task_arn.as_deref().unwrap_or_default();
        arn.split_once(":task/").map(|(prefix, _)| {
            format!(
                "{prefix}:task-definition/{}:{}",
                self.family.as_deref().unwrap_or_default(),
                self.revision.as_deref().unwrap_or_default()
            )
        })
    }

    /// The task's CPU in units (the endpoint gives vCPUs; 1 vCPU is 1024 units).
    #[allow(clippy::cast_possible_truncation)]
    fn cpu_units(&self) -> Option<i64> {
        self.limits
            .cpu
            .as_ref()
            .and_then(serde_json::Number::as_f64)
            .map(|c| (c * 1024.0).round() as i64)
    }

    fn memory_mb(&self) -> Option<i64> {
        self.limits
            .memory
            .as_ref()
            .and_then(serde_json::Number::as_i64)
    }

    /// The region: the availability zone without its last character (`us-east-2b`), else
    /// the region of the cluster's ARN.
    fn region(&self) -> Option<String> {
        let az = self.availability_zone.as_deref();
        az.and_then(|a| a.char_indices().last().filter(|(i, _)| *i > 0))
            .and_then(|(i, _)| az.map(|a| a[..i].to_owned()))
            .or_else(|| {
                self.cluster
                    .as_deref()
                    .and_then(|c| crate::secrets::aws::region_of_arn(c).map(str::to_owned))
            })
    }

    /// The main and the monitor container (in sidecar mode, the one watched and the one
    /// watching; otherwise the main one and the current one).
    fn roles<'a>(
        &'a self,
        current: &'a EcsContainer,
        c: &ContainerConfig,
        sidecar: bool,
    ) -> Result<(&'a EcsContainer, &'a EcsContainer), MetadataError> {
        let containers = &self.containers;
        let find = |name: &str| containers.iter().find(|x| x.name.as_deref() == Some(name));
        let main_named = c.main_container_name.as_deref().and_then(find);
        if !sidecar {
            return Ok((main_named.unwrap_or(current), current));
        }
        let monitor = c
            .monitor_container_name
            .as_deref()
            .and_then(find)
            .unwrap_or(current);
        let main = match main_named {
            Some(m) => m,
            None if containers.len() == 2 => containers
                .iter()
                .find(|x| x.name != monitor.name)
                .unwrap_or(current),
            None => return Err(MetadataError::NoMainContainer),
        };
        Ok((main, monitor))
    }
}

impl EcsContainer {
    /// The container as the API takes it: every key, null when unknown, as 6.0.2 sends it.
    fn to_json(&self) -> Value {
        json!({
            "docker_id": self.docker_id,
            "name": self.name,
            "docker_name": self.docker_name,
            "image_name": self.image,
            "image_id": self.image_id,
            "labels": self.labels,
            "container_arn": self.container_arn,
            "cpu_units": self.limits.cpu,
            "memory_mb": self.limits.memory,
        })
    }

    /// Its log driver and options, the options without the driver's prefix and with `_`
    /// for `-` (`awslogs-group` is `group`).
    fn logging(&self) -> Option<Value> {
        let driver = self.log_driver.as_deref()?;
        let prefix = format!("{driver}-");
        let options: Map<String, Value> = self
            .log_options
            .iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.strip_prefix(&prefix).unwrap_or(k).replace('-', "_"),
                    v.clone(),
                )
            })
            .collect();
        Some(json!({"driver": driver, "options": options}))
    }
}

impl EcsNetwork {
    /// The network as the API takes it; the execution's also has the addresses.
    fn to_json(&self, execution: bool) -> Value {
        let mut n = obj([
            ("network_mode", json!(self.network_mode)),
            (
                "ip_v4_subnet_cidr_block",
                json!(self.ip_v4_subnet_cidr_block),
            ),
            ("dns_servers", json!(self.domain_name_servers)),
            ("dns_search_list", json!(self.domain_name_search_list)),
            ("private_dns_name", json!(self.private_dns_name)),
            (
                "subnet_gateway_ip_v4_address",
                json!(self.subnet_gateway_ipv4_address),
            ),
        ]);
        if execution {
            n.extend(obj([
                ("ip_v4_addresses", json!(self.ip_v4_addresses)),
                ("mac_address", json!(self.mac_address)),
            ]));
        }
        Value::Object(n)
    }
}

/// Builds ECS metadata from the task and current-container documents (the JSON of the task
/// metadata endpoint); a document that is not shaped like one is an error.
pub fn ecs_from_documents(
    task: &Value,
    current: &Value,
    config: &Config,
) -> Result<RuntimeMetadata, MetadataError> {
    let task: EcsTask = document("ECS task metadata", task)?;
    let current: EcsContainer = if current.is_null() {
        EcsContainer::default()
    } else {
        document("ECS container metadata", current)?
    };
    let c = &config.container;
    let sidecar = c.sidecar_container_mode.unwrap_or_else(|| {
        matches!((&c.main_container_name, &c.monitor_container_name), (Some(a), Some(b)) if a != b)
    });
    let (main, monitor) = task.roles(&current, c, sidecar)?;
    let (cpu_units, memory) = (task.cpu_units(), task.memory_mb());
    let mut capability = obj([
        ("task_definition_arn", json!(task.definition_arn())),
        ("cluster_arn", json!(task.cluster)),
        ("allocated_cpu_units", json!(cpu_units)),
        ("allocated_memory_mb", json!(memory)),
        ("monitor_container_name", json!(monitor.name)),
        ("main_container_name", json!(main.name)),
        ("main_container_cpu_units", json!(main.limits.cpu)),
        ("main_container_memory_mb", json!(main.limits.memory)),
        (
            "containers",
            Value::Array(task.containers.iter().map(EcsContainer::to_json).collect()),
        ),
    ]);
    if let Some(launch_type) = &task.launch_type {
        capability.insert("launch_type".into(), json!(launch_type));
        capability.insert("supported_launch_types".into(), json!([launch_type]));
    }
    let mut details = obj([(
        "task_arn",
        json!(task.task_arn.as_deref().unwrap_or_default()),
    )]);
    details.extend(capability.clone());
    let main_net = main.networks.first().cloned().unwrap_or_default();
    let (region, az, logging) = (
        task.region(),
        task.availability_zone.as_deref(),
        main.logging(),
    );
    let infra = |execution: bool| {
        let mut net = obj([("region", json!(region))]);
        if execution && let Some(az) = az {
            net.insert("availability_zone".into(), json!(az));
        }
        net.insert("networks".into(), json!([main_net.to_json(execution)]));
        let mut i = obj([("network", Value::Object(net))]);
        if let Some(l) = &logging {
            i.insert("logging".into(), l.clone());
        }
        Value::Object(i)
    };
    let mut execution = obj([
        ("execution_method_details", Value::Object(details)),
        ("infrastructure_settings", infra(true)),
        ("allocated_cpu_units", json!(cpu_units)),
        ("allocated_memory_mb", json!(memory)),
    ]);
    if let Some(ips) = &main_net.ip_v4_addresses {
        execution.insert("ip_v4_addresses".into(), json!(ips));
    }
    let task_fields = obj([
        (
            "execution_method_capability_details",
            Value::Object(capability),
        ),
        ("infrastructure_settings", infra(false)),
        ("allocated_cpu_units", json!(cpu_units)),
        ("allocated_memory_mb", json!(memory)),
    ]);
    Ok(RuntimeMetadata {
        execution_method_type: ExecutionMethod::AwsEcs,
        infrastructure_type: Infrastructure::Aws,
        execution,
        task: task_fields,
        child_env: container_env(main, monitor, sidecar),
        host_addresses: main_net.ip_v4_addresses.clone().unwrap_or_default(),
        host_names: main_net.private_dns_name.iter().cloned().collect(),
        is_execution_status_source: sidecar,
        exit_code: main.exit_code.and_then(|c| i32::try_from(c).ok()),
    })
}

/// What the wrapped process is told about the containers (6.0.2's
/// `monitor_process_env_additions`).
fn container_env(
    main: &EcsContainer,
    monitor: &EcsContainer,
    sidecar: bool,
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(name) = &monitor.name {
        env.push((
            T::MONITOR_CONTAINER_NAME.child_var().to_owned(),
            name.clone(),
        ));
    }
    if let Some(name) = &main.name {
        env.push((T::MAIN_CONTAINER_NAME.child_var().to_owned(), name.clone()));
    }
    env.push((
        T::SIDECAR_CONTAINER_MODE.child_var().to_owned(),
        crate::child_env::bool_text(sidecar).to_owned(),
    ));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../tests/fixtures/ecs/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn config(vars: &[(&str, &str)]) -> Config {
        crate::config::from_pairs(vars)
    }

    #[test]
    fn ecs_metadata_from_the_fixtures() {
        let m = ecs_from_documents(
            &fixture("task.json"),
            &fixture("container.json"),
            &config(&[]),
        )
        .unwrap();
        assert_eq!(m.execution_method_type, ExecutionMethod::AwsEcs);
        let d = &m.execution["execution_method_details"];
        assert_eq!(
            d["task_definition_arn"],
            "arn:aws:ecs:us-east-2:012345678910:task-definition/nginx:5"
        );
        assert_eq!(d["cluster_arn"], "default");
        assert_eq!(d["allocated_cpu_units"], 256);
        assert_eq!(d["allocated_memory_mb"], 512);
        assert_eq!(d["main_container_name"], "nginx-curl");
        assert_eq!(d["main_container_cpu_units"], 256);
        assert_eq!(d["containers"][1]["name"], "nginx-curl");
        assert_eq!(d["launch_type"], "FARGATE");
        let net = &m.execution["infrastructure_settings"]["network"];
        assert_eq!(net["region"], "us-east-2");
        assert_eq!(net["availability_zone"], "us-east-2b");
        assert_eq!(net["networks"][0]["network_mode"], "awsvpc");
        assert_eq!(
            net["networks"][0]["ip_v4_subnet_cidr_block"],
            "192.0.2.0/24"
        );
        assert_eq!(net["networks"][0]["mac_address"], "0a:de:f6:10:51:e5");
        let log = &m.execution["infrastructure_settings"]["logging"];
        assert_eq!(log["options"]["create_group"], "true");
        assert_eq!(log["options"]["group"], "/ecs/containerlogs");
        assert_eq!(
            log["options"]["stream"],
            "ecs/curl/cd189a933e5849daa93386466019ab50"
        );
        let task_net = &m.task["infrastructure_settings"]["network"];
        assert!(task_net.get("availability_zone").is_none());
        assert!(task_net["networks"][0].get("mac_address").is_none());
        assert_eq!(m.host_addresses, ["192.0.2.3"]);
        assert_eq!(m.host_names, ["ip-10-0-0-222.us-west-2.compute.internal"]);
        assert!(
            m.task["execution_method_capability_details"]
                .get("task_arn")
                .is_none()
        );
    }

    #[test]
    fn auto_create_props_are_merged_into_the_task_metadata() {
        let c = config(&[(
            "PROC_WRAPPER_AUTO_CREATE_TASK_PROPS",
            r#"{"execution_method_capability_details": {"tags": {"a": "b"}}}"#,
        )]);
        let m = ecs_from_documents(&fixture("task.json"), &fixture("container.json"), &c).unwrap();
        let cap = &m.task_fields(&c)["execution_method_capability_details"];
        assert_eq!(cap["tags"]["a"], "b");
        assert_eq!(cap["cluster_arn"], "default");
    }

    #[test]
    fn sidecar_mode_watches_the_other_container() {
        let c = config(&[
            ("PROC_WRAPPER_MAIN_CONTAINER_NAME", "nginx-curl"),
            ("PROC_WRAPPER_MONITOR_CONTAINER_NAME", "~internal~ecs~pause"),
        ]);
        let m = ecs_from_documents(&fixture("task.json"), &fixture("pause_container.json"), &c)
            .unwrap();
        let d = &m.execution["execution_method_details"];
        assert_eq!(d["main_container_name"], "nginx-curl");
        assert_eq!(d["monitor_container_name"], "~internal~ecs~pause");
        assert!(m.is_execution_status_source);
        let mut task = fixture("task.json");
        task["Containers"][1]["ExitCode"] = 255.into();
        let m = ecs_from_documents(&task, &fixture("pause_container.json"), &c).unwrap();
        assert_eq!(m.exit_code, Some(255));
    }

    /// Found by the `ecs_metadata` fuzz target: a zone ending in a multi-byte character
    /// made the region slicing panic.
    #[test]
    fn a_non_ascii_availability_zone_does_not_panic() {
        let config = crate::config::from_pairs(&[]);
        for az in ["\u{e9}", "us-east-\u{3e7}", "x", ""] {
            let task = json!({"AvailabilityZone": az});
            let _ = ecs_from_documents(&task, &json!({}), &config);
        }
    }

    #[test]
    fn lambda_from_the_environment_and_the_context() {
        // The values of the original's test_aws_lambda_runtime_metadata
        // (tests/runtime_metadata_test.py of Python proc_wrapper 6.0.2).
        let env = |k: &str| {
            Some(
                match k {
                    "AWS_LAMBDA_FUNCTION_NAME" => "do_it_now",
                    "AWS_LAMBDA_FUNCTION_VERSION" => "3.3.7",
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => "4096",
                    "AWS_EXECUTION_ENV" => "AWS_Lambda_python3.9",
                    "AWS_LAMBDA_INITIALIZATION_TYPE" => "on-demand",
                    "AWS_REGION" => "us-east-2",
                    "TZ" => "America/Los_Angeles",
                    "AWS_LAMBDA_LOG_GROUP_NAME" => "muh_log_group",
                    "AWS_LAMBDA_LOG_STREAM_NAME" => "colorado-river",
                    "_X_AMZN_TRACE_ID" => "894diemsggt",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let inv = LambdaInvocation {
            request_id: "SOME-REQ_ID".into(),
            function_arn: "arn:aws:lambda:us-east-2:123456789012:function:funky".into(),
            ..LambdaInvocation::default()
        };
        let m = RuntimeMetadata::lambda(&env, &inv);
        let config = crate::config::from_pairs(&[]);
        let e = m.execution_fields(&config);
        assert_eq!(e["execution_method_type"], "AWS Lambda");
        assert_eq!(e["infrastructure_type"], "AWS");
        assert_eq!(e["allocated_memory_mb"], 4096);
        let d = &e["execution_method_details"];
        assert_eq!(d["function_name"], "do_it_now");
        assert_eq!(d["function_version"], "3.3.7");
        assert_eq!(d["function_memory_mb"], 4096);
        assert_eq!(d["function_arn"], inv.function_arn.as_str());
        assert_eq!(d["runtime_id"], "AWS_Lambda_python3.9");
        assert_eq!(d["init_type"], "on-demand");
        assert_eq!(d["dotnet_prejit"], Value::Null);
        assert_eq!(d["time_zone_name"], "America/Los_Angeles");
        assert_eq!(d["aws_request_id"], "SOME-REQ_ID");
        let s = &e["infrastructure_settings"];
        assert_eq!(s["network"]["region"], "us-east-2");
        assert_eq!(s["xray"]["trace_id"], "894diemsggt");
        assert_eq!(s["xray"]["context_missing"], Value::Null);
        assert_eq!(s["logging"]["options"]["group"], "muh_log_group");
        assert_eq!(s["logging"]["options"]["stream"], "colorado-river");
        let t = m.task_fields(&config);
        assert_eq!(
            t["execution_method_capability_details"]["function_name"],
            "do_it_now"
        );
        assert!(
            t["execution_method_capability_details"]
                .get("aws_request_id")
                .is_none()
        );
        assert_eq!(t["allocated_memory_mb"], 4096);
    }

    #[test]
    fn codebuild_from_the_environment() {
        let env = |k: &str| {
            match k {
                "CODEBUILD_BUILD_ARN" => {
                    Some("arn:aws:codebuild:us-west-2:123456789012:build/proj:b1")
                }
                "CODEBUILD_BUILD_NUMBER" => Some("7"),
                "CODEBUILD_BUILD_SUCCEEDING" => Some("1"),
                "AWS_REGION" => Some("us-west-2"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let m = codebuild(&env).unwrap();
        assert_eq!(m.execution_method_type, ExecutionMethod::AwsCodeBuild);
        assert_eq!(
            m.task["execution_method_capability_details"]["build_arn"],
            "arn:aws:codebuild:us-west-2:123456789012:build/proj"
        );
        let d = &m.execution["execution_method_details"];
        assert_eq!(d["build_number"], 7);
        assert_eq!(d["build_succeeding"], true);
        assert_eq!(
            m.execution["infrastructure_settings"]["network"]["region"],
            "us-west-2"
        );
    }
}
