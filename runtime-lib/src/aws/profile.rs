//! The shared AWS configuration and credentials files (`~/.aws/config`, `~/.aws/credentials`),
//! read the way the AWS CLI and SDKs read them: `AWS_CONFIG_FILE` and
//! `AWS_SHARED_CREDENTIALS_FILE` move them, `AWS_PROFILE` picks the profile.

use std::collections::HashMap;
use std::path::PathBuf;

/// One profile's settings, keys in lowercase.
pub(crate) type Profile = HashMap<String, String>;

/// The profiles of both files (for a key set in both, the credentials file wins), and the
/// `[services NAME]` sections of the config file.
#[derive(Debug, Default, Clone)]
pub struct Profiles {
    profiles: HashMap<String, Profile>,
    /// Each services section's settings, keyed `service.setting` (`s3.endpoint_url`).
    services: HashMap<String, Profile>,
}

/// The profile to use: `AWS_PROFILE`, else `AWS_DEFAULT_PROFILE`, else `default`; and whether
/// it was chosen explicitly (then it must exist).
pub(crate) fn selected() -> (String, bool) {
    for var in ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"] {
        if let Some(name) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
            return (name.trim().to_owned(), true);
        }
    }
    ("default".to_owned(), false)
}

fn file_path(var: &str, default_name: &str) -> Option<PathBuf> {
    let home = || std::env::var_os("HOME").map(PathBuf::from);
    match std::env::var(var).ok().filter(|v| !v.is_empty()) {
        Some(p) => match p.strip_prefix("~/") {
            Some(rest) => home().map(|h| h.join(rest)),
            None => Some(PathBuf::from(p)),
        },
        None => home().map(|h| h.join(".aws").join(default_name)),
    }
}

/// The section a line of a shared file belongs to.
enum Section {
    /// A profile's settings.
    Profile(String),
    /// A `[services NAME]` section of the config file.
    Services(String),
    /// Any other kind of section (`[sso-session x]`), skipped.
    Other,
}

/// Parses INI text. In the config file, sections are `[default]`, `[profile NAME]` and
/// `[services NAME]` (other kinds of section, such as `[sso-session x]`, are skipped); in the
/// credentials file they are `[NAME]`. Indented lines are sub-settings of the setting above
/// them (`s3 =` then `  endpoint_url = ...`): kept as `s3.endpoint_url` in services sections,
/// skipped in profiles.
fn parse(
    text: &str,
    config_file: bool,
    into: &mut HashMap<String, Profile>,
    services: &mut HashMap<String, Profile>,
) {
    let mut current = Section::Other;
    let mut parent: Option<String> = None;
    for line in text.lines() {
        let indented = line.starts_with([' ', '\t']);
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if !indented
            && let Some(section) = line
                .strip_prefix('[')
                .and_then(|l| l.split_once(']'))
                .map(|(s, _)| s.trim())
        {
            let named = |kind: &str| {
                section
                    .strip_prefix(kind)
                    .filter(|rest| rest.starts_with([' ', '\t']))
                    .map(|rest| rest.trim().to_owned())
            };
            current = if !config_file || section == "default" {
                Section::Profile(section.to_owned())
            } else if let Some(name) = named("profile") {
                Section::Profile(name)
            } else if let Some(name) = named("services") {
                Section::Services(name)
            } else {
                Section::Other
            };
            parent = None;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        let value = value
            .find(" #")
            .or_else(|| value.find(" ;"))
            .map_or(value, |i| value[..i].trim_end());
        match (&current, indented) {
            (Section::Profile(name), false) => {
                into.entry(name.clone())
                    .or_default()
                    .insert(key.clone(), value.to_owned());
            }
            (Section::Services(name), true) => {
                if let Some(service) = &parent {
                    services
                        .entry(name.clone())
                        .or_default()
                        .insert(format!("{service}.{key}"), value.to_owned());
                }
                continue;
            }
            _ => {}
        }
        if !indented {
            parent = Some(key);
        }
    }
}

impl Profiles {
    /// Reads both files; a missing file counts as empty.
    pub fn load() -> Self {
        let read = |path: Option<PathBuf>| {
            path.and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default()
        };
        Self::parse(
            &read(file_path("AWS_CONFIG_FILE", "config")),
            &read(file_path("AWS_SHARED_CREDENTIALS_FILE", "credentials")),
        )
    }

    /// The profiles of a config file's text and a credentials file's text.
    pub fn parse(config: &str, credentials: &str) -> Self {
        let mut profiles = HashMap::new();
        let mut services = HashMap::new();
        parse(config, true, &mut profiles, &mut services);
        parse(credentials, false, &mut profiles, &mut services);
        Self { profiles, services }
    }

    /// The settings of the `[services NAME]` section, keyed `service.setting`.
    pub fn services(&self, name: &str) -> Option<&Profile> {
        self.services.get(name.trim())
    }

    /// The names of the profiles.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    /// The profile named `name`.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_files_the_credentials_file_winning() {
        let mut p = HashMap::new();
        let mut services = HashMap::new();
        parse(
            "[default]\nregion = eu-west-1\naws_access_key_id = FROMCONFIG\n\
             [profile dev] # comment\nrole_arn=arn:aws:iam::1:role/r\nsource_profile = default\n\
             s3 =\n  max_concurrent_requests = 20\n[sso-session x]\nsso_region = us-east-1\n\
             [profileless]\nregion = nowhere\n",
            true,
            &mut p,
            &mut services,
        );
        parse(
            "[default]\naws_access_key_id = AKID ; inline\naws_secret_access_key = SECRET\n",
            false,
            &mut p,
            &mut services,
        );
        let profiles = Profiles {
            profiles: p,
            services,
        };
        let d = profiles.get("default").expect("default profile");
        assert_eq!(d["region"], "eu-west-1");
        assert_eq!(d["aws_access_key_id"], "AKID");
        assert_eq!(d["aws_secret_access_key"], "SECRET");
        let dev = profiles.get("dev").expect("dev profile");
        assert_eq!(dev["source_profile"], "default");
        assert!(!dev.contains_key("max_concurrent_requests"));
        assert!(profiles.get("x").is_none());
        assert!(profiles.get("profileless").is_none());
    }

    #[test]
    fn services_sections_hold_endpoints_per_service() {
        let profiles = Profiles::parse(
            "[profile dev]\nservices = local\nendpoint_url = http://global:1\n\
             [services local]\nsecrets_manager =\n  endpoint_url = http://sm:2 # comment\n\
             s3 =\n\tendpoint_url = http://s3:3\n  addressing_style = path\n\
             [profile after]\nregion = x\n",
            "",
        );
        let local = profiles.services("local").expect("the services section");
        assert_eq!(local["secrets_manager.endpoint_url"], "http://sm:2");
        assert_eq!(local["s3.endpoint_url"], "http://s3:3");
        assert_eq!(local["s3.addressing_style"], "path");
        assert!(!local.contains_key("endpoint_url"));
        let dev = profiles.get("dev").expect("dev");
        assert_eq!(dev["services"], "local");
        assert_eq!(dev["endpoint_url"], "http://global:1");
        assert_eq!(profiles.get("after").expect("after")["region"], "x");
        assert!(profiles.get("local").is_none());
    }
}
