//! Runtime metadata (§5 of the reference behaviour): what the wrapper can tell the API server
//! about where the Task runs.
//!
//! This module detects the execution method from the environment. Without a recognised
//! environment the method is `Unknown`, with the host name as the only detail.

use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::secrets::merge::merge;

/// Metadata of the runtime environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeMetadata {
    /// `AWS ECS`, `AWS Lambda`, `AWS CodeBuild`, `AWS EC2` or `Unknown`.
    pub execution_method_type: String,
    /// `AWS` or `Unknown`.
    pub infrastructure_type: String,
    /// Execution-level fields besides the two types (`execution_method_details`,
    /// `infrastructure_settings`, `allocated_cpu_units`, ...).
    pub execution: Map<String, Value>,
    /// Task-level fields besides the two types (`execution_method_capability_details`, ...).
    pub task: Map<String, Value>,
    /// Addresses of the host running the Task.
    pub host_addresses: Vec<String>,
    /// Names of the host running the Task.
    pub host_names: Vec<String>,
}

/// The host name of this machine (`uname -n`).
pub fn node_name() -> Option<String> {
    nix::sys::utsname::uname()
        .ok()
        .and_then(|u| u.nodename().to_str().map(str::to_owned))
}

impl RuntimeMetadata {
    /// Metadata of an unrecognised environment.
    pub fn unknown() -> Self {
        Self {
            execution_method_type: "Unknown".into(),
            infrastructure_type: "Unknown".into(),
            host_names: node_name().into_iter().collect(),
            ..Self::default()
        }
    }

    /// Detects the environment; `execution_method_type` forces the type.
    pub fn detect(config: &Config) -> Self {
        let mut m = Self::unknown();
        if let Some(t) = &config.task.execution_method_type {
            m.execution_method_type.clone_from(t);
            if t != "Unknown" {
                m.infrastructure_type = "AWS".into();
            }
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

    /// Fields for the Task Execution, with `--execution-method-props` merged into
    /// `execution_method_details`.
    pub fn execution_fields(&self, config: &Config) -> Map<String, Value> {
        let mut f = self.execution.clone();
        f.insert(
            "execution_method_type".into(),
            json!(self.execution_method_type),
        );
        f.insert(
            "infrastructure_type".into(),
            json!(self.infrastructure_type),
        );
        if let Some(props) = &config.task.execution_method_props {
            let details = f
                .entry("execution_method_details")
                .or_insert_with(|| Value::Object(Map::new()));
            // Merging objects with DEEP cannot fail.
            let _ = merge(
                details,
                Value::Object(props.clone()),
                crate::config::MergeStrategy::Deep,
            );
        }
        f
    }

    /// Fields for the Task object of the creation request.
    pub fn task_fields(&self, _config: &Config) -> Map<String, Value> {
        let mut f = self.task.clone();
        f.insert(
            "execution_method_type".into(),
            json!(self.execution_method_type),
        );
        f.insert(
            "infrastructure_type".into(),
            json!(self.infrastructure_type),
        );
        f
    }
}
