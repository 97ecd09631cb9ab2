//! Merging fetched configuration (`--config-merge-strategy`): the six strategies of the
//! original.

use serde_json::Value;

use super::SecretError;
use crate::config::MergeStrategy;

/// Merges `src` into `dest` with `strategy`. Only the typesafe strategies can fail, on a
/// type clash, naming the key path.
pub fn merge(dest: &mut Value, src: Value, strategy: MergeStrategy) -> Result<(), SecretError> {
    merge_at(dest, src, strategy, "", true)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

fn merge_at(
    dest: &mut Value,
    src: Value,
    strategy: MergeStrategy,
    path: &str,
    top: bool,
) -> Result<(), SecretError> {
    use MergeStrategy::{Additive, Deep, Shallow, TypesafeAdditive, TypesafeReplace};
    match (dest, src) {
        (Value::Object(d), Value::Object(s)) if top || strategy != Shallow => {
            for (k, v) in s {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match d.get_mut(&k) {
                    Some(existing) if strategy != Shallow => {
                        merge_at(existing, v, strategy, &child, false)?;
                    }
                    _ => {
                        d.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(d), Value::Array(s)) if strategy == Deep => {
            let mut s = s.into_iter();
            for existing in d.iter_mut() {
                match s.next() {
                    Some(v) => merge_at(existing, v, strategy, path, false)?,
                    None => break,
                }
            }
            d.extend(s);
        }
        (Value::Array(d), Value::Array(s)) if matches!(strategy, Additive | TypesafeAdditive) => {
            d.extend(s);
        }
        (d, s) => {
            if matches!(strategy, TypesafeReplace | TypesafeAdditive)
                && !d.is_null()
                && kind(d) != kind(&s)
            {
                return Err(SecretError::Invalid(format!(
                    "cannot merge a {} into the {} at '{path}' with a typesafe merge strategy",
                    kind(&s),
                    kind(d)
                )));
            }
            // Every other case (including REPLACE for lists) replaces the destination.
            *d = s;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(a: Value, b: Value, s: MergeStrategy) -> Value {
        let mut a = a;
        merge(&mut a, b, s).unwrap();
        a
    }

    #[test]
    fn strategies() {
        let a = json!({"d": {"h": 26, "w": 66}, "l": [1, {"x": 1}], "k": 1});
        let b = json!({"d": {"h": 23}, "l": [2], "n": true});
        assert_eq!(
            merged(a.clone(), b.clone(), MergeStrategy::Shallow),
            json!({"d": {"h": 23}, "l": [2], "k": 1, "n": true})
        );
        assert_eq!(
            merged(a.clone(), b.clone(), MergeStrategy::Replace),
            json!({"d": {"h": 23, "w": 66}, "l": [2], "k": 1, "n": true})
        );
        assert_eq!(
            merged(a.clone(), b.clone(), MergeStrategy::Deep),
            json!({"d": {"h": 23, "w": 66}, "l": [2, {"x": 1}], "k": 1, "n": true})
        );
        assert_eq!(
            merged(a.clone(), b.clone(), MergeStrategy::Additive),
            json!({"d": {"h": 23, "w": 66}, "l": [1, {"x": 1}, 2], "k": 1, "n": true})
        );
        assert_eq!(
            merged(json!({"l": [1]}), json!({"l": [2, 3]}), MergeStrategy::Deep),
            json!({"l": [2, 3]})
        );
    }

    #[test]
    fn typesafe_strategies_reject_type_changes() {
        let mut a = json!({"d": {"h": 26}});
        let err = merge(
            &mut a,
            json!({"d": {"h": "x"}}),
            MergeStrategy::TypesafeReplace,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("'d.h'"), "{err}");
        assert!(
            merge(
                &mut a,
                json!({"d": {"h": 1}}),
                MergeStrategy::TypesafeAdditive
            )
            .is_ok()
        );
        // Deep lets the source win on a type clash.
        assert_eq!(
            merged(json!({"a": 1}), json!({"a": [1]}), MergeStrategy::Deep),
            json!({"a": [1]})
        );
    }
}
