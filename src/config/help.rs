//! Where each app setting is set and what to set it to: the help text of errors about settings,
//! wherever they are found (loading the configuration, a run, a report).

/// What to check when every send of `app` is refused with Zoom's `code` for "Not authorized."
pub fn account_id(app: &str, code: i64) -> String {
    let setting = app_setting(app, "ZOOM_ACCOUNT_ID", "account_id");
    format!(
        "Zoom answers {code} to every send when the account is not one the chatbot is installed \
         in (check the job's `account` and {setting}, or install the app in that account), and \
         to a recipient who has left the account or has not added a user-managed chatbot (use \
         an admin-managed app)"
    )
}

/// Where the robot JID of `app` is set, and where to find the right value.
pub fn robot_jid(app: &str) -> String {
    let setting = app_setting(app, "ZOOM_ROBOT_JID", "robot_jid");
    format!("set {setting} to the app's Bot JID (Marketplace: your app, Features, Chatbot)")
}

/// What `plan` of `app` may be, and where it is set.
pub fn plan(app: &str) -> String {
    let setting = app_setting(app, "ZOOM_PLAN (or `plan` in zoomcast.toml)", "plan");
    format!(
        "set {setting} to free, pro or business (Business and up), or leave it out to learn the \
         limits from Zoom's 429s"
    )
}

/// Where a user sets `key` of `app`: the environment variable `env` for the default app, its
/// table in `zoomcast.toml` for the others.
fn app_setting(app: &str, env: &str, key: &str) -> String {
    if app == super::DEFAULT_APP {
        env.to_owned()
    } else {
        format!("{key} in the [apps.{app}] table of zoomcast.toml")
    }
}
