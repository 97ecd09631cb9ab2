//! The shared AWS configuration and credentials files (`~/.aws/config`, `~/.aws/credentials`),
//! read the way the AWS CLI and SDKs read them: `AWS_CONFIG_FILE` and
//! `AWS_SHARED_CREDENTIALS_FILE` move them, `AWS_PROFILE` picks the profile.

use std::collections::HashMap;
use std::path::PathBuf;

/// One profile's settings, keys in lowercase.
pub type Profile = HashMap<String, String>;

/// The profiles of both files; for a key set in both, the credentials file wins.
#[derive(Debug, Default, Clone)]
pub struct Profiles {
    profiles: HashMap<String, Profile>,
}

/// The profile to use: `AWS_PROFILE`, else `AWS_DEFAULT_PROFILE`, else `default`; and whether
/// it was chosen explicitly (then it must exist).
pub fn selected() -> (String, bool) {
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

/// Parses INI text. In the config file, sections are `[default]` and `[profile NAME]`
/// (other kinds of section, such as `[sso-session x]`, are skipped); in the credentials
/// file they are `[NAME]`. Indented lines (sub-settings) are skipped.
fn parse(text: &str, config_file: bool, into: &mut HashMap<String, Profile>) {
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(section) = line
            .strip_prefix('[')
            .and_then(|l| l.split_once(']'))
            .map(|(s, _)| s)
        {
            let section = section.trim();
            current = if !config_file || section == "default" {
                Some(section.to_owned())
            } else {
                section
                    .strip_prefix("profile")
                    .filter(|rest| rest.starts_with([' ', '\t']))
                    .map(|rest| rest.trim().to_owned())
            };
            continue;
        }
        let (Some(profile), Some((key, value))) = (&current, line.split_once('=')) else {
            continue;
        };
        let value = value.trim();
        let value = value
            .find(" #")
            .or_else(|| value.find(" ;"))
            .map_or(value, |i| value[..i].trim_end());
        into.entry(profile.clone())
            .or_default()
            .insert(key.trim().to_ascii_lowercase(), value.to_owned());
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
        parse(config, true, &mut profiles);
        parse(credentials, false, &mut profiles);
        Self { profiles }
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
        parse(
            "[default]\nregion = eu-west-1\naws_access_key_id = FROMCONFIG\n\
             [profile dev] # comment\nrole_arn=arn:aws:iam::1:role/r\nsource_profile = default\n\
             s3 =\n  max_concurrent_requests = 20\n[sso-session x]\nsso_region = us-east-1\n\
             [profileless]\nregion = nowhere\n",
            true,
            &mut p,
        );
        parse(
            "[default]\naws_access_key_id = AKID ; inline\naws_secret_access_key = SECRET\n",
            false,
            &mut p,
        );
        let profiles = Profiles { profiles: p };
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
}
