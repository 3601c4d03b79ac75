//! Where a setting's value comes from besides the file itself: the environment (the default
//! app's `ZOOM_*` variables, [`ENV_KEYS`]), `${VAR}` references in
//! `zoomcast.toml` (replaced by the environment variable), and, for a secret, a file named by
//! `VAR_FILE` (systemd's `LoadCredential`, a Kubernetes Secret volume) instead of `VAR`. A
//! secret given both ways is an error naming both; a file's content is never shown.

use std::path::Path;

use super::diagnostic::{Diagnostic, Invalid};

/// Every text setting of an app.
pub const STRING_KEYS: [&str; 14] = [
    "client_id",
    "client_secret",
    "account_id",
    "robot_jid",
    "redirect_uri",
    "oauth_url",
    "api_url",
    "webhook_secret_token",
    "plan",
    "welcome",
    "install_redirect",
    "public_url",
    "client_secret_file",
    "webhook_secret_token_file",
];

/// The secrets of an app that `zoomcast.toml` may name a file for instead (`client_secret_file
/// = "${CREDENTIALS_DIRECTORY}/ops-secret"`), with the key that names the file.
pub const SECRET_FILE_KEYS: [(&str, &str); 2] = [
    ("client_secret", "client_secret_file"),
    ("webhook_secret_token", "webhook_secret_token_file"),
];

/// The environment variables of the default app, with the `RawApp` field each one sets.
pub const ENV_KEYS: [(&str, &str); 9] = [
    ("ZOOM_CLIENT_ID", "client_id"),
    ("ZOOM_CLIENT_SECRET", "client_secret"),
    ("ZOOM_ACCOUNT_ID", "account_id"),
    ("ZOOM_ROBOT_JID", "robot_jid"),
    ("ZOOM_REDIRECT_URI", "redirect_uri"),
    ("ZOOM_OAUTH_URL", "oauth_url"),
    ("ZOOM_API_URL", "api_url"),
    ("ZOOM_WEBHOOK_SECRET", "webhook_secret_token"),
    ("ZOOM_PLAN", "plan"),
];

/// The settings that are secrets, by environment variable: each also has a `_FILE` form.
pub const SECRET_VARS: [&str; 2] = ["ZOOM_CLIENT_SECRET", "ZOOM_WEBHOOK_SECRET"];

/// `value` with each `${NAME}` replaced by environment variable `NAME`; `key` (`[apps.x]
/// client_secret`) names the setting in the error when one is not set.
pub fn expand(
    value: &str,
    key: &str,
    config: &Path,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, Invalid> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        let plausible =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plausible {
            out.push_str(&rest[start..=start + 2 + end]);
        } else if let Some(found) = env(name) {
            out.push_str(&found);
        } else {
            return Err(Invalid::one(
                Diagnostic::whole(
                    Some(config),
                    format!("{key} refers to ${{{name}}}, which is not set in the environment"),
                )
                .help(format!("set {name}, or write the value itself")),
            ));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The secret in `var`, or in the file `var_FILE` names (its trailing newline dropped);
/// `None` when neither is set. Both set is an error naming both.
pub fn secret(var: &str, env: &impl Fn(&str) -> Option<String>) -> Result<Option<String>, Invalid> {
    let file_var = format!("{var}_FILE");
    let direct = env(var).filter(|v| !v.is_empty());
    let file = env(&file_var).filter(|v| !v.is_empty());
    match (direct, file) {
        (Some(_), Some(_)) => Err(Invalid::one(
            Diagnostic::whole(None, format!("both {var} and {file_var} are set")).help(format!(
                "keep one: {file_var} names a file holding the secret"
            )),
        )),
        (direct, None) => Ok(direct),
        (None, Some(path)) => secret_file(&file_var, Path::new(&path)).map(Some),
    }
}

/// The secret in the file `path`, which `var` (a variable or setting) names; its trailing
/// newline dropped.
pub fn secret_file(var: &str, path: &Path) -> Result<String, Invalid> {
    let problem = |what: String| {
        Invalid::one(
            Diagnostic::whole(None, format!("{var}: {}: {what}", path.display())).help(format!(
                "point {var} at a readable file holding only the secret"
            )),
        )
    };
    let text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(problem("the file is empty".to_owned()));
    }
    if secret.contains('\n') {
        return Err(problem("the file holds more than one line".to_owned()));
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn references_are_replaced_and_a_missing_one_is_named() {
        let path = Path::new("zoomcast.toml");
        let vars = env(&[("SECRET", "s3"), ("HOST", "bot.example.com")]);
        assert_eq!(
            expand("${SECRET}", "client_secret", path, &vars).unwrap(),
            "s3"
        );
        assert_eq!(
            expand(
                "https://${HOST}/oauth/callback",
                "redirect_uri",
                path,
                &vars
            )
            .unwrap(),
            "https://bot.example.com/oauth/callback"
        );
        assert_eq!(
            expand("${ not a ref } $5", "welcome", path, &vars).unwrap(),
            "${ not a ref } $5"
        );
        let err = expand("${NOPE}", "[apps.ops] client_secret", path, &vars)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[apps.ops] client_secret refers to ${NOPE}, which is not set"),
            "{err}"
        );
    }

    #[test]
    fn a_secret_comes_from_its_variable_or_its_file_never_both() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-file\n").unwrap();
        let path = file.to_str().unwrap();
        let from_file = env(&[("ZOOM_CLIENT_SECRET_FILE", path)]);
        assert_eq!(
            secret("ZOOM_CLIENT_SECRET", &from_file).unwrap().as_deref(),
            Some("from-file")
        );
        let both = env(&[
            ("ZOOM_CLIENT_SECRET", "x"),
            ("ZOOM_CLIENT_SECRET_FILE", path),
        ]);
        let err = secret("ZOOM_CLIENT_SECRET", &both).unwrap_err().to_string();
        assert!(
            err.contains("both ZOOM_CLIENT_SECRET and ZOOM_CLIENT_SECRET_FILE are set"),
            "{err}"
        );
        std::fs::write(&file, "").unwrap();
        let err = secret("ZOOM_CLIENT_SECRET", &from_file)
            .unwrap_err()
            .to_string();
        assert!(err.contains("the file is empty"), "{err}");
        let missing = env(&[("ZOOM_WEBHOOK_SECRET_FILE", "/nonexistent/secret")]);
        assert!(secret("ZOOM_WEBHOOK_SECRET", &missing).is_err());
        assert_eq!(secret("ZOOM_WEBHOOK_SECRET", &env(&[])).unwrap(), None);
    }
}
