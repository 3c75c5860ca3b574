//! Where profiles come from: the built-in `profiles.toml` and a user's
//! profile file (`[[profile]]` tables), parsed with the line and column of
//! any error, merged (a file's profile replaces a built-in one of its name)
//! and looked up by name.

use serde::Deserialize;

use super::profile::{BUILTIN_PROFILES, ConfigError, Profile};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    profile: Vec<Profile>,
}

/// Parse a profiles document (`[[profile]]` tables) read from `file`.
pub fn parse_profiles(text: &str, file: &str) -> Result<Vec<Profile>, ConfigError> {
    let parsed: ProfileFile = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_column(text, s.start));
        ConfigError::Parse { file: file.to_string(), line, column, message: e.message().to_string() }
    })?;
    for p in &parsed.profile {
        p.validate()?;
    }
    Ok(parsed.profile)
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The built-in profiles, in the order they are documented.
pub fn builtin_profiles() -> Vec<Profile> {
    // The shipped file is checked by a unit test; a parse failure here is a
    // build defect, not user input.
    parse_profiles(BUILTIN_PROFILES, "profiles.toml").unwrap_or_default()
}

/// The built-in profiles plus those of a profile file (which replace built-in
/// ones of the same name), in listing order.
pub fn all_profiles(file: Option<(&str, &str)>) -> Result<Vec<Profile>, ConfigError> {
    let mut all = builtin_profiles();
    if let Some((text, name)) = file {
        for p in parse_profiles(text, name)? {
            match all.iter_mut().find(|q| q.name == p.name) {
                Some(q) => *q = p,
                None => all.push(p),
            }
        }
    }
    Ok(all)
}

/// Pick a profile: by `name` if given; else the only profile of the file if
/// it has exactly one; else `light`. `file` is (text, path).
pub fn select_profile(name: Option<&str>, file: Option<(&str, &str)>) -> Result<Profile, ConfigError> {
    let all = all_profiles(file)?;
    let name = match (name, file) {
        (Some(n), _) => n.to_string(),
        (None, Some((text, path))) => match parse_profiles(text, path)?.as_slice() {
            [only] => only.name.clone(),
            _ => "light".to_string(),
        },
        (None, None) => "light".to_string(),
    };
    match all.iter().find(|p| p.name == name) {
        Some(p) => Ok(p.clone()),
        None => Err(ConfigError::UnknownProfile {
            name,
            known: all.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Look a built-in profile up by name.
pub fn find_profile(name: &str) -> Result<Profile, ConfigError> {
    select_profile(Some(name), None)
}
