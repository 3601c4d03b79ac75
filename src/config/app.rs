//! The apps' identities: `zoomcast.toml` (top-level keys for the app called `default`,
//! `[apps.NAME]` tables for more) with the environment (`ZOOM_*`) winning for `default`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

use super::diagnostic::{Diagnostic, Invalid};
use super::plan::Plan;
use super::sources::{self, ENV_KEYS, STRING_KEYS};
use crate::token::{ClientSecret, WebhookSecret};

/// The name of the app used when a job names none.
pub const DEFAULT_APP: &str = "default";
/// The default of `keepalive_days`.
pub const DEFAULT_KEEPALIVE_DAYS: u32 = 30;
/// The largest `keepalive_days`.
pub const MAX_KEEPALIVE_DAYS: u32 = 365;
/// Where `auth login` listens by default, and the redirect URI to register.
pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:4199/oauth/callback";

/// One app's keys as written (in the file or the environment); all optional until used.
#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    client_id: Option<String>,
    client_secret: Option<String>,
    account_id: Option<String>,
    robot_jid: Option<String>,
    redirect_uri: Option<String>,
    oauth_url: Option<String>,
    api_url: Option<String>,
    webhook_secret_token: Option<String>,
    keepalive_days: Option<u32>,
    plan: Option<String>,
    welcome: Option<String>,
    install_redirect: Option<String>,
    public_url: Option<String>,
    client_secret_file: Option<String>,
    webhook_secret_token_file: Option<String>,
    install_accounts: Option<RawInstallAccounts>,
}

/// `install_accounts` as written: `"any"` or a list of account ids.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
enum RawInstallAccounts {
    Word(String),
    List(Vec<String>),
}

/// `zoomcast.toml`: the default app's keys at the top, more apps under `[apps.NAME]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    client_id: Option<String>,
    client_secret: Option<String>,
    account_id: Option<String>,
    robot_jid: Option<String>,
    redirect_uri: Option<String>,
    oauth_url: Option<String>,
    api_url: Option<String>,
    webhook_secret_token: Option<String>,
    keepalive_days: Option<u32>,
    plan: Option<String>,
    welcome: Option<String>,
    install_redirect: Option<String>,
    public_url: Option<String>,
    client_secret_file: Option<String>,
    webhook_secret_token_file: Option<String>,
    install_accounts: Option<RawInstallAccounts>,
    #[serde(default)]
    apps: BTreeMap<String, RawApp>,
}

impl RawApp {
    /// The app's plan, `keepalive_days` and `install_accounts`, checked; a problem is what is
    /// wrong and the fix.
    fn settings(
        &self,
        name: &str,
    ) -> Result<(Option<Plan>, u32, InstallAccounts), (String, String)> {
        let plan = match self.plan.as_deref() {
            None => None,
            Some(text) => Some(text.parse::<Plan>().map_err(|()| {
                (
                    format!(
                        "plan `{}` is not a Zoom plan",
                        crate::output::clean(text, 40)
                    ),
                    super::help::plan(name),
                )
            })?),
        };
        let keepalive_days = self.keepalive_days.unwrap_or(DEFAULT_KEEPALIVE_DAYS);
        if keepalive_days > MAX_KEEPALIVE_DAYS {
            return Err((
                format!("keepalive_days = {keepalive_days} is out of range"),
                format!(
                    "write 0 (never) to {MAX_KEEPALIVE_DAYS}; Zoom's refresh tokens lapse after \
                     about 90 days unused"
                ),
            ));
        }
        let install_accounts =
            InstallAccounts::read(self.install_accounts.as_ref()).ok_or_else(|| {
                (
                "install_accounts is neither \"any\" nor a list of Zoom account ids".to_owned(),
                "write install_accounts = \"any\", or a list such as [\"AbCdEfGhIj\"] (the ids \
                 `zoomcast auth status` shows)"
                    .to_owned(),
            )
            })?;
        Ok((plan, keepalive_days, install_accounts))
    }

    /// Registers the app's secrets as never to be shown ([`crate::output::never_show`]).
    fn never_show_secrets(&self, name: &str) {
        let secrets = [
            ("client secret", &self.client_secret),
            ("webhook secret", &self.webhook_secret_token),
        ];
        for (what, value) in secrets {
            if let Some(value) = value {
                crate::output::never_show(&format!("{what} of app `{name}`"), value);
            }
        }
    }

    /// Replaces `${VAR}` references in every text setting (`prefix` names the app's table in
    /// errors).
    fn expand_references(
        &mut self,
        prefix: &str,
        config: &Path,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), Invalid> {
        for key in STRING_KEYS {
            if let Some(value) = self.field(key).as_deref() {
                let setting = format!("{prefix}{key}");
                *self.field(key) = Some(sources::expand(value, &setting, config, env)?);
            }
        }
        for (secret, file) in sources::SECRET_FILE_KEYS {
            let Some(path) = self.field(file).take() else {
                continue;
            };
            let (secret_setting, file_setting) =
                (format!("{prefix}{secret}"), format!("{prefix}{file}"));
            if self.field(secret).is_some() {
                return Err(Invalid::one(
                    Diagnostic::whole(
                        Some(config),
                        format!("both {secret_setting} and {file_setting} are set"),
                    )
                    .help(format!("keep one: {file} names a file holding the secret")),
                ));
            }
            *self.field(secret) = Some(sources::secret_file(&file_setting, Path::new(&path))?);
        }
        Ok(())
    }

    fn field(&mut self, key: &str) -> &mut Option<String> {
        match key {
            "client_id" => &mut self.client_id,
            "client_secret" => &mut self.client_secret,
            "account_id" => &mut self.account_id,
            "robot_jid" => &mut self.robot_jid,
            "redirect_uri" => &mut self.redirect_uri,
            "oauth_url" => &mut self.oauth_url,
            "api_url" => &mut self.api_url,
            "webhook_secret_token" => &mut self.webhook_secret_token,
            "plan" => &mut self.plan,
            "welcome" => &mut self.welcome,
            "install_redirect" => &mut self.install_redirect,
            "public_url" => &mut self.public_url,
            "client_secret_file" => &mut self.client_secret_file,
            "webhook_secret_token_file" => &mut self.webhook_secret_token_file,
            _ => unreachable!("ENV_KEYS and the demo name only RawApp fields"),
        }
    }
}

/// One app, resolved: everything needed to authorize and send.
#[derive(Clone)]
pub struct AppConfig {
    /// `default` or the `[apps.NAME]` name.
    pub name: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: ClientSecret,
    /// The account to post in, when configured (otherwise the grant's).
    pub account_id: Option<String>,
    /// The bot's JID, required to send.
    pub robot_jid: Option<String>,
    /// The redirect URI registered with the app.
    pub redirect_uri: Url,
    /// Base of the OAuth endpoints.
    pub oauth_url: Url,
    /// Base of `/v2`.
    pub api_url: Url,
    /// The webhook secret token.
    pub webhook_secret: Option<WebhookSecret>,
    /// The scheduler refreshes a grant not refreshed for this many days (0: never), so that a
    /// rarely running job never finds it expired (Zoom's refresh tokens expire unused).
    pub keepalive_days: u32,
    /// The account's Zoom plan, when configured: its documented rate limits are where the
    /// limiters start.
    pub plan: Option<Plan>,
    /// The text `serve` answers a bot installation with (Zoom's dynamic welcome message).
    pub welcome: Option<String>,
    /// Where `serve` sends the browser after an install (default: the chatbot in Zoom).
    pub install_redirect: Option<Url>,
    /// Which accounts may install the app through `serve`'s `/install`.
    pub install_accounts: InstallAccounts,
}

/// Which Zoom accounts may install an app through `/install` (`install_accounts`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum InstallAccounts {
    /// Any account (`"any"`, the default).
    #[default]
    Any,
    /// Only these account ids.
    Only(Vec<String>),
}

impl InstallAccounts {
    /// The setting as written (absent: any); `None` when it is neither `"any"` nor a list of
    /// account ids.
    fn read(raw: Option<&RawInstallAccounts>) -> Option<Self> {
        match raw {
            None => Some(Self::Any),
            Some(RawInstallAccounts::Word(word)) => (word == "any").then_some(Self::Any),
            Some(RawInstallAccounts::List(ids)) => ids
                .iter()
                .all(|id| crate::user::is_account_id(id))
                .then(|| Self::Only(ids.clone())),
        }
    }

    /// Whether `account` may install the app.
    pub fn allows(&self, account: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(accounts) => accounts.iter().any(|a| a == account),
        }
    }
}

impl fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppConfig")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("robot_jid", &self.robot_jid)
            .field("oauth_url", &self.oauth_url.as_str())
            .field("api_url", &self.api_url.as_str())
            .finish_non_exhaustive()
    }
}

/// Every configured app, merged from the file and the environment.
#[derive(Clone)]
pub struct Config {
    apps: BTreeMap<String, RawApp>,
    source: Option<PathBuf>,
    /// Apps whose `${VAR}` references or secret files failed: the problems, reported when the
    /// app is used, so that commands needing no app (`history` in a shell beside the service,
    /// which lacks its `CREDENTIALS_DIRECTORY`) still work.
    broken: BTreeMap<String, Vec<Diagnostic>>,
}

/// Refuses an `[apps.NAME]` whose name cannot be part of an address or a file name.
fn check_app_names(path: &Path, apps: &BTreeMap<String, RawApp>) -> Result<(), Invalid> {
    let Some(bad) = apps.keys().find(|name| !crate::user::is_name(name)) else {
        return Ok(());
    };
    Err(Invalid::one(
        Diagnostic::whole(
            Some(path),
            format!(
                "[apps.{}] is not an app name zoomcast can use",
                crate::output::clean(bad, 80)
            ),
        )
        .help(
            "name apps with 1 to 64 letters, digits, - and _: the name is part of the app's \
             addresses (/apps/NAME) and of its grant files",
        ),
    ))
}

/// The default app's settings the environment gives, each cleared in `default` (with the
/// secret file the file may name for it): the environment wins over the file, and a setting it
/// gives is read from neither.
fn env_overrides(
    default: &mut RawApp,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<(&'static str, String)>, Invalid> {
    let mut overrides = Vec::new();
    for (var, key) in ENV_KEYS {
        let value = if sources::SECRET_VARS.contains(&var) {
            sources::secret(var, env)?
        } else {
            env(var).filter(|v| !v.is_empty())
        };
        if let Some(value) = value {
            *default.field(key) = None;
            for (_, file) in sources::SECRET_FILE_KEYS.iter().filter(|(k, _)| *k == key) {
                *default.field(file) = None;
            }
            overrides.push((key, value));
        }
    }
    Ok(overrides)
}

impl Config {
    /// Where browsers reach the default app's server (`public_url`), e.g.
    /// `https://zoomcast.example.com`: the prefix of the links `console-link` prints.
    pub fn public_url(&self) -> Result<Option<Url>, Invalid> {
        let Ok(raw) = self.raw(DEFAULT_APP) else {
            return Ok(None);
        };
        raw.public_url
            .as_deref()
            .map(|text| {
                browser_url(text).map_err(|why| {
                    Invalid::one(
                        Diagnostic::whole(self.source.as_deref(), format!("public_url {why}"))
                            .help(
                                "write the https:// address browsers reach `zoomcast serve` at, \
                                 such as https://zoomcast.example.com",
                            ),
                    )
                })
            })
            .transpose()
    }

    /// The file read, if one was.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Reads `path` (an explicit `--config` must exist; a default one may be absent) and lays
    /// `env` over the default app.
    pub fn load(
        path: &Path,
        explicit: bool,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Invalid> {
        let raw = match std::fs::read_to_string(path) {
            Ok(text) => parse(path, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => RawConfig::default(),
            Err(e) => {
                return Err(Invalid::one(
                    Diagnostic::whole(Some(path), format!("cannot read the config file: {e}"))
                        .help("pass an existing file to --config, or leave it out"),
                ));
            }
        };
        let mut apps = raw.apps;
        check_app_names(path, &apps)?;
        let mut default = RawApp {
            client_id: raw.client_id,
            client_secret: raw.client_secret,
            account_id: raw.account_id,
            robot_jid: raw.robot_jid,
            redirect_uri: raw.redirect_uri,
            oauth_url: raw.oauth_url,
            api_url: raw.api_url,
            webhook_secret_token: raw.webhook_secret_token,
            keepalive_days: raw.keepalive_days,
            plan: raw.plan,
            welcome: raw.welcome,
            install_redirect: raw.install_redirect,
            public_url: raw.public_url,
            client_secret_file: raw.client_secret_file,
            webhook_secret_token_file: raw.webhook_secret_token_file,
            install_accounts: raw.install_accounts,
        };
        let overrides = env_overrides(&mut default, &env)?;
        apps.insert(DEFAULT_APP.to_owned(), default);
        // `${VAR}` references and secret files: a problem is the app's, reported when it is used.
        let mut broken = BTreeMap::new();
        for (name, app) in &mut apps {
            let prefix = if name == DEFAULT_APP {
                String::new()
            } else {
                format!("[apps.{name}] ")
            };
            if let Err(invalid) = app.expand_references(&prefix, path, &env) {
                broken.insert(name.clone(), invalid.diagnostics);
            }
        }
        let default = apps.get_mut(DEFAULT_APP).expect("inserted above");
        for (key, value) in overrides {
            *default.field(key) = Some(value);
        }
        for (name, app) in &apps {
            app.never_show_secrets(name);
        }
        Ok(Self {
            apps,
            source: path.exists().then(|| path.to_owned()),
            broken,
        })
    }

    /// A configuration with only an empty `default` app (the demo fills it in with `set`).
    pub fn empty() -> Self {
        Self {
            apps: BTreeMap::from([(DEFAULT_APP.to_owned(), RawApp::default())]),
            source: None,
            broken: BTreeMap::new(),
        }
    }

    /// True when an app of that name is configured (`default` always is).
    pub fn has_app(&self, name: &str) -> bool {
        self.apps.contains_key(name)
    }

    /// The names of every configured app.
    pub fn app_names(&self) -> impl Iterator<Item = &str> {
        self.apps.keys().map(String::as_str)
    }

    /// Overrides one key of one app (the demo points the default app at its emulator).
    pub fn set(&mut self, app: &str, key: &str, value: &str) {
        let raw = self.apps.entry(app.to_owned()).or_default();
        *raw.field(key) = Some(value.to_owned());
        raw.never_show_secrets(app);
    }

    /// The settings of app `name` as written, if it is configured and its references and
    /// secret files resolved.
    fn raw(&self, name: &str) -> Result<&RawApp, Invalid> {
        if let Some(diagnostics) = self.broken.get(name) {
            return Err(Invalid {
                diagnostics: diagnostics.clone(),
            });
        }
        self.apps.get(name).ok_or_else(|| {
            Invalid::one(
                Diagnostic::whole(
                    self.source.as_deref(),
                    format!("no app called `{name}` is configured"),
                )
                .help(format!(
                    "add an [apps.{name}] table with client_id and client_secret to zoomcast.toml"
                )),
            )
        })
    }

    /// Resolves one app, or says which required key is missing and where to set it.
    pub fn app(&self, name: &str) -> Result<AppConfig, Invalid> {
        let raw = self.raw(name)?;
        let missing = |key: &str, var: &str| {
            let help = if name == DEFAULT_APP {
                format!("set {var}, or `{key}` in zoomcast.toml")
            } else {
                format!("set `{key}` in the [apps.{name}] table of zoomcast.toml")
            };
            Invalid::one(
                Diagnostic::whole(self.source.as_deref(), format!("app `{name}` has no {key}"))
                    .help(help),
            )
        };
        // A problem with one of this app's settings, with its fix.
        let problem = |message: String, help: String| {
            Invalid::one(
                Diagnostic::whole(self.source.as_deref(), format!("app `{name}`: {message}"))
                    .help(help),
            )
        };
        let url = |key: &str, value: Option<&String>, default: &str| {
            let text = value.map_or(default, String::as_str);
            zoom_url(text).map_err(|why| {
                problem(
                    format!("{key} `{}` {why}", crate::output::clean(text, 100)),
                    "write an https URL such as https://zoom.us (plain http only for localhost \
                     or 127.0.0.1, such as the emulator)"
                        .into(),
                )
            })
        };
        let (plan, keepalive_days, install_accounts) = raw
            .settings(name)
            .map_err(|(message, help)| problem(message, help))?;
        Ok(AppConfig {
            name: name.to_owned(),
            install_accounts,
            client_id: raw
                .client_id
                .clone()
                .ok_or_else(|| missing("client_id", "ZOOM_CLIENT_ID"))?,
            client_secret: raw
                .client_secret
                .clone()
                .map(ClientSecret::new)
                .ok_or_else(|| missing("client_secret", "ZOOM_CLIENT_SECRET"))?,
            account_id: raw.account_id.clone(),
            robot_jid: raw.robot_jid.clone(),
            redirect_uri: url(
                "redirect_uri",
                raw.redirect_uri.as_ref(),
                DEFAULT_REDIRECT_URI,
            )?,
            oauth_url: url("oauth_url", raw.oauth_url.as_ref(), "https://zoom.us")?,
            api_url: url("api_url", raw.api_url.as_ref(), "https://api.zoom.us")?,
            webhook_secret: raw.webhook_secret_token.clone().map(WebhookSecret::new),
            keepalive_days,
            plan,
            welcome: raw.welcome.clone(),
            install_redirect: raw
                .install_redirect
                .as_deref()
                .map(|text| {
                    browser_url(text).map_err(|why| {
                        problem(
                            format!("install_redirect {why}"),
                            "write the https:// address to send installers to".to_owned(),
                        )
                    })
                })
                .transpose()?,
        })
    }
}

/// A URL to send a browser to: `https` or `http`.
fn browser_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("is not a URL: {e}"))?;
    if matches!(url.scheme(), "https" | "http") {
        Ok(url)
    } else {
        Err(format!(
            "is a {} URL; browsers are sent to https",
            url.scheme()
        ))
    }
}

/// A URL zoomcast may send secrets to: `https`, or plain `http` to this machine only (the
/// emulator, a local proxy); anything else would put the client secret on the wire in clear
/// or to no server at all.
fn zoom_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err("has no host".into()),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(
            "is plain http to another machine, which would send the client \
                       secret unencrypted"
                .into(),
        ),
        other => Err(format!(
            "has the scheme `{other}:`; only https (and http to localhost) work"
        )),
    }
}

/// The config file holds secrets, so its diagnostics never echo a value: the echoed line keeps
/// only its key, and any value quoted in the message is replaced.
fn parse(path: &Path, text: &str) -> Result<RawConfig, Invalid> {
    toml::from_str(text).map_err(|e| {
        let message = redact_values(text, e.message());
        let d = match e.span() {
            Some(span) => {
                let mut d = Diagnostic::at(path, text, span, message);
                if let Some(loc) = &mut d.location {
                    match loc.text.find('=') {
                        // The start of the line is shown: keep its key.
                        Some(eq) if !loc.text.starts_with('…') => {
                            loc.text = format!("{}= [value hidden]", &loc.text[..eq]);
                        }
                        // A window into a long line may start inside a value.
                        _ => {
                            loc.text = "[line hidden]".into();
                            loc.column = 1;
                        }
                    }
                    loc.width = loc
                        .width
                        .min(loc.text.chars().count().saturating_sub(loc.column - 1))
                        .max(1);
                }
                d
            }
            None => Diagnostic::whole(Some(path), message),
        };
        Invalid::one(d.help(
            "the keys are client_id, client_secret, account_id, robot_jid, redirect_uri, \
             oauth_url, api_url, webhook_secret_token, keepalive_days, plan, welcome, \
             install_redirect, install_accounts, public_url, client_secret_file, webhook_secret_token_file, \
             and [apps.NAME] tables of the same",
        ))
    })
}

/// `message` with every value written in `source` (the right side of each `key = value`)
/// replaced by `[value hidden]`.
fn redact_values(source: &str, message: &str) -> String {
    let mut out = message.to_owned();
    for line in source.lines() {
        if let Some((_, value)) = line.split_once('=') {
            let value = value.trim().trim_matches(['"', '\'']);
            if value.len() >= 3 {
                out = out.replace(value, "[value hidden]");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str, env: &[(&str, &str)]) -> Result<Config, Invalid> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zoomcast.toml");
        std::fs::write(&path, file).unwrap();
        Config::load(&path, true, |k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn environment_wins_for_the_default_app() {
        let file = "client_id = \"from-file\"\nclient_secret = \"s\"\nrobot_jid = \"bot@xmpp\"\n\
                    [apps.other]\nclient_id = \"other-id\"\nclient_secret = \"o\"\n";
        let config = load(
            file,
            &[
                ("ZOOM_CLIENT_ID", "from-env"),
                ("ZOOM_API_URL", "http://127.0.0.1:9"),
            ],
        )
        .unwrap();
        let app = config.app("default").unwrap();
        assert_eq!(app.client_id, "from-env");
        assert_eq!(app.robot_jid.as_deref(), Some("bot@xmpp"));
        assert_eq!(app.api_url.as_str(), "http://127.0.0.1:9/");
        assert_eq!(app.oauth_url.as_str(), "https://zoom.us/");
        assert_eq!(app.redirect_uri.as_str(), DEFAULT_REDIRECT_URI);
        let other = config.app("other").unwrap();
        assert_eq!(other.client_id, "other-id");
        assert_eq!(other.api_url.as_str(), "https://api.zoom.us/");
    }

    #[test]
    fn an_app_name_that_cannot_be_a_path_is_refused() {
        for name in ["\"../x\"", "\"a b\"", "\"\""] {
            let file = format!("[apps.{name}]\nclient_id = \"i\"\nclient_secret = \"s\"\n");
            let err = load(&file, &[]).err().unwrap().to_string();
            assert!(err.contains("is not an app name zoomcast can use"), "{err}");
            assert!(err.contains("letters, digits, - and _"), "{err}");
        }
        assert!(load("[apps.team-2_b]\nclient_id = \"i\"\n", &[]).is_ok());
    }

    #[test]
    fn an_apps_secrets_may_come_from_files_named_in_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ops-secret"), "from-a-file\n").unwrap();
        std::fs::write(dir.path().join("ops-webhook"), "hook-secret\n").unwrap();
        let creds = dir.path().to_str().unwrap();
        let file = "[apps.ops]\nclient_id = \"i\"\n\
                    client_secret_file = \"${CREDENTIALS_DIRECTORY}/ops-secret\"\n\
                    webhook_secret_token_file = \"${CREDENTIALS_DIRECTORY}/ops-webhook\"\n";
        let config = load(file, &[("CREDENTIALS_DIRECTORY", creds)]).unwrap();
        let ops = config.app("ops").unwrap();
        assert_eq!(ops.client_secret.expose(), "from-a-file");
        assert_eq!(ops.webhook_secret.unwrap().expose(), "hook-secret");

        let both = format!("{file}client_secret = \"s\"\n");
        let err = load(&both, &[("CREDENTIALS_DIRECTORY", creds)])
            .unwrap()
            .app("ops")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("both [apps.ops] client_secret and [apps.ops] client_secret_file are set"),
            "{err}"
        );
        // Only the app's own use fails: the other apps, and commands needing none, still work.
        let env = [
            ("CREDENTIALS_DIRECTORY", "/nonexistent"),
            ("ZOOM_CLIENT_ID", "i"),
            ("ZOOM_CLIENT_SECRET", "s"),
        ];
        let without = load(file, &env).unwrap();
        assert!(without.app("default").is_ok());
        let missing = without.app("ops").unwrap_err().to_string();
        assert!(
            missing.contains("[apps.ops] client_secret_file: /nonexistent/ops-secret"),
            "{missing}"
        );
    }

    #[test]
    fn the_environment_wins_over_a_secret_file_without_reading_it() {
        let file = "client_id = \"i\"\nclient_secret_file = \"/nonexistent/secret\"\n";
        let config = load(file, &[("ZOOM_CLIENT_SECRET", "from-env")]).unwrap();
        assert_eq!(
            config.app("default").unwrap().client_secret.expose(),
            "from-env"
        );
        assert!(load(file, &[]).unwrap().app("default").is_err());
    }

    #[test]
    fn missing_secret_names_the_variable_and_debug_hides_it() {
        let config = load("client_id = \"x\"\n", &[]).unwrap();
        let err = config.app("default").unwrap_err().to_string();
        assert!(err.contains("app `default` has no client_secret"), "{err}");
        assert!(err.contains("set ZOOM_CLIENT_SECRET"), "{err}");
        let config = load(
            "",
            &[("ZOOM_CLIENT_ID", "i"), ("ZOOM_CLIENT_SECRET", "hush")],
        )
        .unwrap();
        assert!(!format!("{:?}", config.app("default").unwrap()).contains("hush"));
    }

    #[test]
    fn unknown_key_reports_line_and_column_but_never_the_value() {
        let err = load("client_id = \"x\"\nclient_secrt = \"hush-hush\"\n", &[])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("zoomcast.toml:2:1"), "{err}");
        assert!(err.contains("unknown field `client_secrt`"), "{err}");
        assert!(err.contains("2 | client_secrt = [value hidden]"), "{err}");
        assert!(!err.contains("hush-hush"), "{err}");
        let long = format!("client_secret = \"{}=tail\" x\n", "s3cr3t".repeat(30));
        let err = load(&long, &[]).err().unwrap().to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
        let err = load("client_secret = 12345678\n", &[])
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("12345678"), "{err}");
        let err = load("client_secret = \"unterminated-secret\n", &[])
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("unterminated-secret"), "{err}");
    }
}
