//! The Rust Lambda handler wrapper (`proc_wrapper::lambda::handler`) as a tower service, with
//! the values of a `lambda_runtime::Context`, against the fake API server. (Under the Lambda
//! simulator, with and without the extension: `extension/tests/lambda.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lambda_runtime::tower::{Layer, Service, ServiceExt};
use lambda_runtime::{Context, LambdaEvent, service_fn};
use proc_wrapper::lambda::handler::CloudReactorLayer;
use procwrapper_tests::fake_api::{API_KEY, FakeApi};
use serde_json::{Value, json};

fn env(api: &FakeApi) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_FUNCTION_NAME", "do_it_now"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "3.3.7"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096"),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_rust"),
        ("AWS_REGION", "us-east-2"),
        ("PROC_WRAPPER_API_BASE_URL", api.url.as_str()),
        ("PROC_WRAPPER_API_KEY", API_KEY),
        (
            "PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME",
            "stage",
        ),
        ("PROC_WRAPPER_SEND_INPUT_VALUE", "TRUE"),
        ("PROC_WRAPPER_LAMBDA_EXTENSION", "FALSE"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A context as the runtime builds it, with a Cognito identity and a mobile client context.
fn context() -> Context {
    serde_json::from_value(json!({
        "request_id": "SOME-REQ_ID",
        "deadline": 0,
        "invoked_function_arn": "arn:aws:lambda:us-east-2:123456789012:function:funky",
        "xray_trace_id": "894diemsggt",
        "client_context": {
            "client": {
                "installation_id": "i-1", "app_title": "Boxer", "app_version_name": "1.0",
                "app_version_code": "765", "app_package_name": "boxer-765"
            },
            "custom": {}, "environment": {}
        },
        "identity": {"identity_id": "cog-id", "identity_pool_id": "cog-pool"},
        "tenant_id": null,
        "env_config": {
            "function_name": "do_it_now", "memory": 4096, "version": "3.3.7",
            "log_stream": "colorado-river", "log_group": "muh_log_group"
        }
    }))
    .expect("a valid context")
}

async fn call<S>(service: &mut S, payload: Value) -> Result<Value, lambda_runtime::Error>
where
    S: Service<LambdaEvent<Value>, Response = Value, Error = lambda_runtime::Error>,
{
    service
        .ready()
        .await?
        .call(LambdaEvent::new(payload, context()))
        .await
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_context_becomes_the_runtime_metadata_of_one_request() {
    let api = FakeApi::start();
    let mut service =
        CloudReactorLayer::with_env(env(&api)).layer(service_fn(
            |e: LambdaEvent<Value>| async move {
                Ok::<_, lambda_runtime::Error>(json!({"got": e.payload}))
            },
        ));
    let out = rt().block_on(call(&mut service, json!({"n": 1}))).unwrap();
    assert_eq!(out, json!({"got": {"n": 1}}));
    let reqs = api.requests();
    assert_eq!(reqs.len(), 1, "one request per invocation: {reqs:#?}");
    let b = &reqs[0].body;
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(b["status"], "SUCCEEDED");
    assert_eq!(b["input_value"], json!({"n": 1}));
    assert_eq!(b["output_value"], json!({"got": {"n": 1}}));
    assert_eq!(b["task"]["name"], "do_it_now");
    assert_eq!(b["task"]["passive"], true);
    assert_eq!(b["task"]["run_environment"]["name"], "stage");
    assert_eq!(b["embedded_mode"], false);
    assert_eq!(b["execution_method_type"], "AWS Lambda");
    assert_eq!(b["allocated_memory_mb"], 4096);
    let d = &b["execution_method_details"];
    assert_eq!(d["aws_request_id"], "SOME-REQ_ID");
    assert_eq!(
        d["function_arn"],
        "arn:aws:lambda:us-east-2:123456789012:function:funky"
    );
    assert_eq!(d["function_version"], "3.3.7");
    assert_eq!(d["runtime_id"], "AWS_Lambda_rust");
    assert_eq!(
        d["cognito_identity"],
        json!({"id": "cog-id", "pool_id": "cog-pool"})
    );
    assert_eq!(
        d["client_context"]["client"]["app_package_name"],
        "boxer-765"
    );
    let settings = &b["infrastructure_settings"];
    assert_eq!(settings["network"]["region"], "us-east-2");
    assert_eq!(settings["xray"]["trace_id"], "894diemsggt");
    assert_eq!(settings["logging"]["options"]["group"], "muh_log_group");
    assert_eq!(settings["logging"]["options"]["stream"], "colorado-river");
    assert!(b["other_runtime_metadata"]["aws_lambda"]["duration_ms"].is_number());
}

#[test]
fn errors_fail_the_execution_and_reach_the_runtime_unchanged() {
    let api = FakeApi::start();
    let mut service =
        CloudReactorLayer::with_env(env(&api)).layer(service_fn(
            |_: LambdaEvent<Value>| async move {
                Err::<Value, lambda_runtime::Error>("no such row".into())
            },
        ));
    let err = rt().block_on(call(&mut service, json!({}))).unwrap_err();
    assert_eq!(err.to_string(), "no such row");
    let b = &api.requests()[0].body;
    assert_eq!(b["status"], "FAILED");
    assert!(b.get("output_value").is_none());
    assert_eq!(
        b["other_runtime_metadata"]["aws_lambda"]["error_message"],
        "no such row"
    );
}

#[test]
fn a_cloudreactor_started_execution_is_updated_and_sampling_is_bypassed() {
    let api = FakeApi::start();
    let mut vars = env(&api);
    vars.push((
        "PROC_WRAPPER_API_MANAGED_PROBABILITY".into(),
        "0.000000001".into(),
    ));
    let mut service =
        CloudReactorLayer::with_env(vars).layer(service_fn(|_: LambdaEvent<Value>| async move {
            Ok::<_, lambda_runtime::Error>(json!(69))
        }));
    let input = json!({
        "original_input_value": {"n": 1},
        "cloudreactor_context": {"proc_wrapper_params": {"task_execution": {"uuid": "UUID-FROM-INPUT"}}}
    });
    assert_eq!(rt().block_on(call(&mut service, input)).unwrap(), json!(69));
    // Sampled out (probability 1e-9) without a known execution: nothing is sent.
    assert_eq!(
        rt().block_on(call(&mut service, json!({}))).unwrap(),
        json!(69)
    );
    let reqs = api.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0].method, "PATCH");
    assert_eq!(reqs[0].path, "/api/v1/task_executions/UUID-FROM-INPUT/");
    assert_eq!(reqs[0].body["status"], "SUCCEEDED");
    assert!(reqs[0].body.get("task").is_none());
}
