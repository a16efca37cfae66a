//! The layers of [`Config::load`]: the TOML file, then the `NUDGE_*`
//! environment and `--set` flags overlaid on its document, each variable
//! mapped to its key by name, so a new setting needs no code here.

use super::{Config, ConfigError};

/// The prefix of every environment variable of nudge.
pub const ENV_PREFIX: &str = "NUDGE_";

/// `NUDGE_*` variables that are not settings: the file's path, the
/// options of the client subcommands (the same binary), and the browser
/// tests' (set in CI while the server runs).
const NOT_SETTINGS: [&str; 10] = [
    "NUDGE_CONFIG",
    "NUDGE_SERVER",
    "NUDGE_TOKEN",
    "NUDGE_CA_CERT",
    "NUDGE_CLIENT_CERT",
    "NUDGE_CLIENT_KEY",
    "NUDGE_BROWSER_TESTS",
    "NUDGE_CHROMIUM",
    "NUDGE_CHROMIUM_LOG",
    "NUDGE_REDIS_TESTS",
];

/// The tables of [`Config`]: `NUDGE_ACTORS_ARBITERS` is `actors.arbiters`, a
/// name that starts with no section is a top-level key.
pub(super) const SECTIONS: [&str; 10] = [
    "actors", "limits", "auth", "tls", "storage", "grpc", "models", "journeys", "web", "cluster",
];

/// The environment variable of a setting: `actors.max_live_customers` →
/// `NUDGE_ACTORS_MAX_LIVE_CUSTOMERS`.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

/// The setting of a `NUDGE_*` variable (the part after the prefix), as a key
/// path: `ACTORS_MAX_LIVE_CUSTOMERS` → `["actors", "max_live_customers"]`.
pub(super) fn key_of_env(suffix: &str) -> Vec<String> {
    let lower = suffix.to_ascii_lowercase();
    for section in SECTIONS {
        if let Some(key) = lower
            .strip_prefix(section)
            .and_then(|rest| rest.strip_prefix('_'))
        {
            return vec![section.to_owned(), key.to_owned()];
        }
    }
    vec![lower]
}

/// `doc` with `value` at `path`, creating the tables on the way.
fn insert(doc: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((last, sections)) = path.split_last() else {
        return;
    };
    let mut table = doc;
    for section in sections {
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            // A path through a scalar (`--set budget_ms.x=1`): `value_for`
            // refuses it before it gets here, on a document of its own.
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(inner) = entry else {
            return;
        };
        table = inner;
    }
    table.insert(last.clone(), value);
}

/// The TOML value of `raw` for the setting at `path`: the value `raw` spells
/// (`50`, `true`, `[1, 2]`) if the setting takes it, else the string `raw`
/// itself (`127.0.0.1:50051`, `/etc/nudge/catalog.toml`, `0042` as a token).
/// Each candidate is tried on a document that sets only this key, so the
/// error is about this value alone.
fn value_for(path: &[String], raw: &str) -> Result<toml::Value, String> {
    let spelled = raw
        .parse::<toml::Value>()
        .ok()
        .filter(|value| !value.is_str());
    let mut first_error = None;
    for candidate in spelled
        .into_iter()
        .chain([toml::Value::String(raw.to_owned())])
    {
        let mut doc = toml::Table::new();
        insert(&mut doc, path, candidate.clone());
        match doc.try_into::<Config>() {
            Ok(_) => return Ok(candidate),
            Err(error) => {
                first_error.get_or_insert_with(|| error.message().trim().to_owned());
            }
        }
    }
    Err(first_error.unwrap_or_default())
}

/// Where an overlaid value came from.
enum Origin {
    /// A `NUDGE_*` variable.
    Env(String),
    /// A `--set key=value` flag.
    Set(String),
}

impl Origin {
    fn error(self, message: String) -> ConfigError {
        match self {
            Origin::Env(variable) => ConfigError::Env { variable, message },
            Origin::Set(setting) => ConfigError::Set { setting, message },
        }
    }
}

/// The `NUDGE_*` variables of this process, for [`Config::load`]; an error
/// names a variable whose value is not UTF-8.
pub fn environment() -> Result<Vec<(String, String)>, ConfigError> {
    let mut variables = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        let value = value.into_string().map_err(|_| ConfigError::Env {
            variable: name.to_owned(),
            message: "the value is not UTF-8".to_owned(),
        })?;
        variables.push((name.to_owned(), value));
    }
    Ok(variables)
}

impl Config {
    /// The configuration from its layers: the defaults, the TOML file at
    /// `file`, the `NUDGE_*` variables in `env` (other names are ignored, so
    /// the whole environment may be passed), and `sets`, the `--set key=value`
    /// flags in order. Not yet validated: the caller applies its typed flags,
    /// then calls [`Config::validate`].
    ///
    /// `NUDGE_AUTH_TOKEN` or `NUDGE_AUTH_TOKEN_FILE` (or `--set` of either)
    /// replaces both `auth.token` and `auth.token_file` of the file.
    pub fn load<N, V>(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (N, V)>,
        sets: &[(String, String)],
    ) -> Result<Self, ConfigError>
    where
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let mut doc = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                // Parsed as a `Config` first, for errors with the file's lines.
                let parse_error = |message| ConfigError::Parse {
                    path: path.to_owned(),
                    message,
                };
                Self::from_toml(&text).map_err(parse_error)?;
                text.parse::<toml::Table>()
                    .map_err(|error| parse_error(error.message().to_owned()))?
            }
            None => toml::Table::new(),
        };
        let mut overlays: Vec<(Origin, Vec<String>, String)> = Vec::new();
        for (name, value) in env {
            let name = name.as_ref();
            let Some(suffix) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if NOT_SETTINGS.contains(&name) {
                continue;
            }
            overlays.push((
                Origin::Env(name.to_owned()),
                key_of_env(suffix),
                value.as_ref().to_owned(),
            ));
        }
        // Whatever order the environment lists them in.
        overlays.sort_by(|a, b| a.1.cmp(&b.1));
        for (setting, value) in sets {
            let path = setting.split('.').map(str::to_owned).collect();
            overlays.push((Origin::Set(setting.clone()), path, value.clone()));
        }
        let overrides_token = overlays
            .iter()
            .any(|(_, path, _)| path == &["auth", "token"] || path == &["auth", "token_file"]);
        if overrides_token && let Some(toml::Value::Table(auth)) = doc.get_mut("auth") {
            auth.remove("token");
            auth.remove("token_file");
        }
        for (origin, path, raw) in overlays {
            let value = value_for(&path, &raw).map_err(|message| origin.error(message))?;
            insert(&mut doc, &path, value);
        }
        doc.try_into::<Config>()
            .map_err(|error| ConfigError::Parse {
                path: file.map_or_else(
                    || std::path::PathBuf::from("(environment and flags)"),
                    std::path::Path::to_owned,
                ),
                message: error.message().trim().to_owned(),
            })
    }

    /// Defaults overlaid with TOML text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|error| {
            let line = error
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(line) => format!("line {line}: {}", error.message()),
                None => error.message().to_owned(),
            }
        })
    }
}
