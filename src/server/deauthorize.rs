//! `app_deauthorized`: an account removed the app. The Marketplace requires its data deleted
//! at once, so before Zoom gets its answer: the account's grant of the app (in the store, the
//! grant file and memory; other accounts' grants stay), the account's opt-outs, the per-recipient details of the
//! app's runs in that account (their summaries stay: counts, times, no person), and the
//! account's cached lookups. A run left unfinished is closed, never resumed: its
//! journal is gone. The deletion is logged with counts only.

use chrono::Utc;
use serde::Deserialize;

use super::Server;
use crate::delivery::AppEngine;
use crate::state::off_workers;
use crate::state::{RunRecord, RunStatus, StateError, UNIDENTIFIED};
use crate::user::is_account_id;

/// `app_deauthorized`'s payload, the fields zoomcast uses.
#[derive(Debug, Deserialize)]
pub(super) struct Deauthorized {
    account_id: String,
    client_id: String,
}

/// Why the event deleted nothing.
pub(super) enum NotErased {
    /// The event is about another app (another client id).
    OtherApp,
    /// The state could not be changed.
    State(anyhow::Error),
}

/// Deletes what the account left behind.
pub(super) async fn handle(
    server: &Server,
    app: &AppEngine,
    event: Deauthorized,
) -> Result<(), NotErased> {
    if event.client_id != app.app.client_id {
        tracing::warn!(
            "app `{}`: a deauthorization for another client id was ignored",
            app.app.name
        );
        return Err(NotErased::OtherApp);
    }
    erase(server, app, &event.account_id)
        .await
        .map_err(NotErased::State)
}

async fn erase(server: &Server, app: &AppEngine, account: &str) -> anyhow::Result<()> {
    let name = &app.app.name;
    let store = &server.store;
    let grant = forget_grant(app, account).await?;
    let optouts = store.optouts()?.forget_account(name, account).await?;
    let (runs, deliveries, jids) = (store.runs()?, store.deliveries()?, store.jids()?);
    // The runs are closed (durably) before their journals go: a run whose journal is gone must
    // never be resumed, which would send to every recipient again.
    let listed = runs.clone();
    let mut closed = off_workers(move || listed.list(None)).await?;
    closed.retain(|record| {
        // A run of an earlier release recorded no account: then the app had one, and it is
        // counted as this account's.
        record.app == *name && record.account.as_deref().is_none_or(|a| a == account)
    });
    let reason = format!(
        "closed: account {account} removed the app, and its per-recipient details were deleted"
    );
    for record in &mut closed {
        close(record, &reason);
    }
    runs.put_all(&closed).await?;
    let ids: Vec<_> = closed.iter().map(|record| record.id).collect();
    let (pruning, account_id) = (deliveries.clone(), account.to_owned());
    let (entries, cached) = off_workers(move || {
        let entries = ids
            .into_iter()
            .map(|id| pruning.prune(id))
            .sum::<Result<usize, _>>()?;
        Ok::<_, StateError>((entries, jids.forget_account(&account_id)?))
    })
    .await?;
    deliveries.flush().await?;
    tracing::info!(
        "app `{name}`: account {account} removed the app; deleted {} grant, {optouts} opt-outs, \
         the per-recipient details of {} runs ({entries} entries) and {cached} cached lookups",
        u8::from(grant),
        closed.len(),
    );
    Ok(())
}

/// Deletes the account's grant, in the store, the grant file and memory; and a login's grant
/// whose account was never learned, since it may be this account's (it cannot send, so no other
/// account loses anything it can use). Whether the account had one.
async fn forget_grant(app: &AppEngine, account: &str) -> anyhow::Result<bool> {
    app.clients.tokens(UNIDENTIFIED).forget().await?;
    if !is_account_id(account) {
        return Ok(false); // no grant is stored under a name that is not an account id
    }
    Ok(app.clients.tokens(account).forget().await?)
}

/// Marks a run's details deleted; an unfinished run is closed for good.
fn close(record: &mut RunRecord, reason: &str) {
    record.details_pruned = true;
    if record.status.is_unfinished() {
        record.status = RunStatus::Closed(reason.to_owned());
        record.finished_at.get_or_insert_with(Utc::now);
    }
}
