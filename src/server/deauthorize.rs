//! `app_deauthorized`: an account removed the app. The Marketplace requires its data deleted
//! at once, so before Zoom gets its answer: the app's grant (when it is that account's, in the
//! store, the grant file and memory), the account's opt-outs, the per-recipient details of the
//! app's runs in that account (their summaries stay: counts, times, no person), and the
//! account's cached lookups. A run left unfinished is closed, never resumed: its
//! journal is gone. The deletion is logged with counts only.

use chrono::Utc;
use serde::Deserialize;

use super::Server;
use crate::delivery::{AppEngine, off_workers};
use crate::state::{RunRecord, RunStatus, StateError};

/// `app_deauthorized`'s payload, the fields zoomcast uses.
#[derive(Debug, Deserialize)]
pub(super) struct Deauthorized {
    account_id: String,
    client_id: String,
}

/// What was deleted.
#[derive(Debug, Default)]
struct Erased {
    grant: bool,
    optouts: usize,
    runs: usize,
    deliveries: usize,
    cached: usize,
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
    let name = &app.app.name;
    if event.client_id != app.app.client_id {
        tracing::warn!("app `{name}`: a deauthorization for another client id was ignored");
        return Err(NotErased::OtherApp);
    }
    let account = &event.account_id;
    let failed = |e: anyhow::Error| NotErased::State(e);
    let store = server.engines.store();
    let mut erased = Erased {
        grant: app
            .engine
            .tokens
            .forget_account(account)
            .await
            .map_err(|e| failed(e.into()))?,
        ..Erased::default()
    };
    erased.optouts = (async { store.optouts()?.forget_account(name, account).await })
        .await
        .map_err(|e: StateError| failed(e.into()))?;
    let (runs, deliveries, jids) = (
        store.runs().map_err(|e| failed(e.into()))?,
        store.deliveries().map_err(|e| failed(e.into()))?,
        store.jids().map_err(|e| failed(e.into()))?,
    );
    let (app_name, account_id) = (name.clone(), account.clone());
    let reason = format!(
        "closed: account {account} removed the app, and its per-recipient details were deleted"
    );
    // The runs are closed (durably) before their journals go: a run whose journal is gone must
    // never be resumed, which would send to every recipient again.
    let listed = runs.clone();
    let mut changed = off_workers(move || listed.list(None))
        .await
        .map_err(|e| failed(e.into()))?;
    changed.retain(|record| {
        // A run of an earlier release recorded no account: then the app had one, and it is
        // counted as this account's.
        record.app == app_name && record.account.as_deref().is_none_or(|a| a == account_id)
    });
    for record in &mut changed {
        close(record, &reason);
    }
    runs.put_all(&changed).await.map_err(|e| failed(e.into()))?;
    let ids: Vec<_> = changed.iter().map(|record| record.id).collect();
    let (pruning, cached_account) = (deliveries.clone(), account.clone());
    let (entries, cached) = off_workers(move || {
        let mut entries = 0;
        for id in ids {
            entries += pruning.prune(id)?;
        }
        Ok::<_, StateError>((entries, jids.forget_account(&cached_account)?))
    })
    .await
    .map_err(|e| failed(e.into()))?;
    deliveries.flush().await.map_err(|e| failed(e.into()))?;
    erased.runs = changed.len();
    erased.deliveries = entries;
    erased.cached = cached;
    tracing::info!(
        "app `{name}`: account {account} removed the app; deleted {} grant, {} opt-outs, the \
         per-recipient details of {} runs ({} entries) and {} cached lookups",
        u8::from(erased.grant),
        erased.optouts,
        erased.runs,
        erased.deliveries,
        erased.cached
    );
    Ok(())
}

/// Marks a run's details deleted; an unfinished run is closed for good.
fn close(record: &mut RunRecord, reason: &str) {
    record.details_pruned = true;
    if record.status.is_unfinished() {
        record.status = RunStatus::Closed(reason.to_owned());
        record.finished_at.get_or_insert_with(Utc::now);
    }
}
