//! What the AWS client reads from outside: the shared config and credentials files
//! (`proc_wrapper::aws::profile::Profiles::parse`), error bodies of failed calls
//! (`error_in_body`), STS answers (`from_sts_xml`) and credential JSON from containers, the
//! instance metadata or a `credential_process` (`from_json`), their expiry times
//! (`time::parse_rfc3339`), and the signer's canonical forms of paths and queries, on
//! arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proc_wrapper::aws::credentials::{from_json, from_sts_xml, xml_text};
use proc_wrapper::aws::error_in_body;
use proc_wrapper::aws::profile::Profiles;
use proc_wrapper::aws::sigv4;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The same text as both files, and split in two at the first NUL.
    let (config, credentials) = text.split_once('\0').unwrap_or((&text, &text));
    let profiles = Profiles::parse(config, credentials);
    for name in profiles.names() {
        let profile = profiles.get(name).expect("a listed profile exists");
        for key in profile.keys() {
            assert_eq!(key, &key.to_ascii_lowercase(), "keys are lowercased");
            assert!(!key.contains('='), "{key:?}");
        }
    }
    let (code, message) = error_in_body(data);
    for part in [code, message].into_iter().flatten() {
        // Decoding (entities, JSON escapes) only shortens; the text is the body as UTF-8.
        assert!(part.len() <= text.len(), "an error part longer than the body");
    }
    if let Ok(creds) = from_sts_xml(&text) {
        assert!(!creds.access_key_id.is_empty() || text.contains("<AccessKeyId></AccessKeyId>"));
    }
    let _ = xml_text(&text, "Credentials");
    if let Ok(json) = serde_json::from_slice(data) {
        let _ = from_json(&json, "fuzz");
    }
    let _ = proc_wrapper::time::parse_rfc3339(&text);
    for settings in [sigv4::Settings::S3, sigv4::Settings::DEFAULT] {
        let path = sigv4::canonical_path(&text, settings);
        assert!(path.is_ascii(), "a canonical path is ASCII: {path:?}");
    }
    let query: Vec<(String, String)> = text
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert!(sigv4::canonical_query(&query).is_ascii());
});
