//! The state key every command opens the store with (`ZOOMCAST_STATE_KEY` or
//! `ZOOMCAST_STATE_KEY_FILE`), and `state new-key` and `state rekey`.

use crate::config::sources::secret;
use crate::config::{Diagnostic, Invalid};
use crate::state::{Keys, StateKey};

use super::{Context, Outcome};

/// The variable holding the state key (or, with `_FILE`, naming a file that holds it).
const KEY_VAR: &str = "ZOOMCAST_STATE_KEY";
/// The variable holding the key `state rekey` stores grants under.
const NEW_KEY_VAR: &str = "ZOOMCAST_NEW_STATE_KEY";

/// Tokens at rest.
#[derive(Debug, clap::Subcommand)]
pub(super) enum StateCommand {
    /// Print a new random state key (base64), for `ZOOMCAST_STATE_KEY_FILE`.
    NewKey,
    /// Store every grant again under a new key, or in plain form.
    ///
    /// The new key is `ZOOMCAST_NEW_STATE_KEY` (or `_FILE`), or none with --plain; the current
    /// key is `ZOOMCAST_STATE_KEY` (or `_FILE`), if any. Run it again with the same keys if it
    /// was interrupted.
    Rekey(RekeyArgs),
}

#[derive(Debug, clap::Args)]
pub(super) struct RekeyArgs {
    /// Store the grants unencrypted instead.
    #[arg(long)]
    plain: bool,
}

/// The keys of the store: sealed with the state key when one is set.
pub(super) fn state_keys(env: &impl Fn(&str) -> Option<String>) -> Result<Keys, Invalid> {
    Ok(key_from(KEY_VAR, env)?.map_or_else(Keys::plain, Keys::sealed))
}

fn key_from(var: &str, env: &impl Fn(&str) -> Option<String>) -> Result<Option<StateKey>, Invalid> {
    let Some(text) = secret(var, env)? else {
        return Ok(None);
    };
    let source = match env(&format!("{var}_FILE")).filter(|f| !f.is_empty()) {
        Some(file) => format!("{var}_FILE ({file})"),
        None => var.to_owned(),
    };
    crate::output::never_show(&format!("state key ({var})"), &text);
    StateKey::parse(&text, &source)
        .map(Some)
        .map_err(|e| Invalid::one(Diagnostic::whole(None, e.to_string())))
}

/// `state new-key`: needs no configuration, nor a usable state key.
pub(super) fn new_key() -> Outcome {
    outln!("{}", StateKey::generate());
    Outcome::Done
}

/// `state rekey`.
pub(super) async fn rekey(ctx: &Context, args: &RekeyArgs) -> anyhow::Result<Outcome> {
    let env = |k: &str| std::env::var(k).ok();
    let old = key_from(KEY_VAR, &env)?;
    let new = key_from(NEW_KEY_VAR, &env)?;
    let needs = |message: &str| {
        Invalid::one(Diagnostic::whole(None, message).help(format!(
            "set {NEW_KEY_VAR}_FILE to a file holding the new key (`zoomcast state new-key`), \
             or give --plain to store the grants unencrypted"
        )))
    };
    match (&new, args.plain) {
        (None, false) => return Err(needs("`state rekey` needs the new key").into()),
        (Some(_), true) => return Err(needs("both a new key and --plain were given").into()),
        _ => {}
    }
    let keys = Keys::rekeying(old, new);
    let how = keys.write_id().map_or_else(
        || "stored in plain form".to_owned(),
        |id| format!("encrypted with state key {id}"),
    );
    // Opening the store writes every grant again under the new key.
    let store = ctx.own_store(keys, "state rekey").await?;
    let count = store.grants()?.all()?.len();
    outln!("{count} grant(s) in {} now {how}", ctx.state_dir.display());
    if args.plain {
        outln!("unset {KEY_VAR} and {KEY_VAR}_FILE before the next command");
    } else {
        outln!("give the new key as {KEY_VAR} (or {KEY_VAR}_FILE) from now on");
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_key_names_its_variable_and_shows_no_part_of_it() {
        let env = |k: &str| (k == KEY_VAR).then(|| "hunter2-not-a-key".to_owned());
        let err = state_keys(&env).unwrap_err().to_string();
        assert!(
            err.contains("ZOOMCAST_STATE_KEY must be 32 random bytes"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let none = |_: &str| None;
        assert!(!state_keys(&none).unwrap().seals());
    }
}
