//! The form-fill timer (`--form-fills-every 30s`, off by default): a fill every interval, made
//! up from the seed. Three in four are new visitors (name, country from every region, company
//! and title all made up, so the payload's country and segment vary); one in four is a lead
//! already in the database filling the form again with only its email, which updates that
//! lead. The timer does not wait for the webhook: each delivery runs on its own, so a slow
//! receiver delays no fill (as Marketo's trigger campaigns do not queue behind a webhook).

use std::sync::Arc;

use crate::data;
use crate::delivery;
use crate::forms::{self, FormFill};
use crate::state::AppState;

/// Runs until the sandbox shuts down, following interval changes at once.
pub(crate) async fn run(state: Arc<AppState>) {
    let mut every = state.hooks.watch_every();
    let mut tick: u64 = 0;
    loop {
        let interval = *every.borrow_and_update();
        let wait = async {
            match interval {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wait => {
                tick += 1;
                fill_once(&state, tick);
            }
            changed = every.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = state.shutdown.cancelled() => return,
        }
    }
}

/// One timed fill: applied now, its delivery sent in the background.
fn fill_once(state: &Arc<AppState>, tick: u64) {
    let fill = timed_fill(state, tick);
    let applied = match forms::apply(state, &fill) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "the timed form fill was refused");
            return;
        }
    };
    let state = state.clone();
    tokio::spawn(async move {
        let o = applied.outcome;
        delivery::deliver(
            &state,
            &o.fill_id,
            o.lead_id,
            applied.payload.to_string().into_bytes(),
        )
        .await;
    });
}

/// The fill of tick `tick`: a returning lead (its email only) one time in four, when the
/// chosen seeded lead has a usable address; otherwise a new visitor.
fn timed_fill(state: &AppState, tick: u64) -> FormFill {
    let store = state.read_store();
    let generator = store.generator();
    let seeded = u64::from(store.seeded());
    if seeded > 0 && generator.fill_choice(tick, 0, 4) == 0 {
        let id = u32::try_from(1 + generator.fill_choice(tick, 1, seeded)).unwrap_or(1);
        let email = store.get(id).and_then(|lead| match &lead[data::EMAIL] {
            data::Value::Str(e) if e.contains('@') && !e.trim().contains(' ') => {
                Some(e.trim().to_owned())
            }
            _ => None,
        });
        if let Some(email) = email {
            return FormFill {
                email: Some(email),
                ..FormFill::default()
            };
        }
    }
    FormFill::default()
}
