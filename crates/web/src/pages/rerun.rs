//! "Rerun failed tasks" on a failed run's page.

use axum::extract::{Path, State};
use axum::response::Redirect;
use serde::Deserialize;

use super::{back, parse_run};
use crate::WebState;
use crate::auth::CsrfForm;
use crate::error::PageError;

/// The form carries nothing but its CSRF token.
#[derive(Debug, Deserialize)]
pub(crate) struct Empty {}

pub(crate) async fn rerun_failed(
    State(state): State<WebState>,
    Path(run): Path<String>,
    form: CsrfForm<Empty>,
) -> Result<Redirect, PageError> {
    let id = parse_run(&run)?;
    state.ops().rerun_failed(&form.user.actor, id).await?;
    Ok(back(&format!("/runs/{id}"), "rerun"))
}
