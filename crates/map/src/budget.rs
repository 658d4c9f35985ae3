//! Daily API-call budgets per environment: Drover's own backstop under the vendor quota.

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Duration as ChronoDuration, FixedOffset, NaiveDate, Utc};
use futures_util::future::BoxFuture;

use crate::error::thousands;

/// The budget refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the daily MAP API budget of {} calls for environment {environment} is used up ({} spent)",
    thousands(*.budget),
    thousands(*.used)
)]
pub struct BudgetExhausted {
    /// The environment whose budget is spent.
    pub environment: String,
    /// Calls allowed per day.
    pub budget: u64,
    /// Calls already spent today.
    pub used: u64,
    /// When the budget resets, if known.
    pub resets_at: Option<DateTime<Utc>>,
}

/// A daily budget of API calls, asked before every counted API call (identity calls are free).
/// The engine implements it on Postgres, shared by every worker of an environment.
pub trait CallBudget: Send + Sync + fmt::Debug {
    /// Takes `calls` from today's budget, or refuses without taking anything.
    fn spend(&self, calls: u32) -> BoxFuture<'_, Result<(), BudgetExhausted>>;
}

/// No budget at all (every call allowed).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

impl CallBudget for Unlimited {
    fn spend(&self, _calls: u32) -> BoxFuture<'_, Result<(), BudgetExhausted>> {
        Box::pin(async { Ok(()) })
    }
}

/// An in-process budget for tests and standalone use. Days start at midnight US Central Standard
/// Time (UTC−6), like Marketo's quota.
#[derive(Debug)]
pub struct MemoryBudget {
    environment: String,
    daily_limit: u64,
    offset: FixedOffset,
    state: Mutex<(NaiveDate, u64)>,
}

impl MemoryBudget {
    /// A budget of `daily_limit` calls per day for `environment`.
    pub fn new(environment: impl Into<String>, daily_limit: u64) -> Self {
        // UTC−6 is always a valid offset.
        let offset = FixedOffset::west_opt(6 * 3600).unwrap_or_else(|| Utc.fix());
        Self {
            environment: environment.into(),
            daily_limit,
            offset,
            state: Mutex::new((Utc::now().with_timezone(&offset).date_naive(), 0)),
        }
    }

    /// Calls spent today.
    pub fn used(&self) -> u64 {
        let today = self.today();
        self.state
            .lock()
            .map(|s| if s.0 == today { s.1 } else { 0 })
            .unwrap_or(0)
    }

    fn today(&self) -> NaiveDate {
        Utc::now().with_timezone(&self.offset).date_naive()
    }

    fn next_reset(&self, today: NaiveDate) -> Option<DateTime<Utc>> {
        let midnight = (today + ChronoDuration::days(1)).and_hms_opt(0, 0, 0)?;
        midnight
            .and_local_timezone(self.offset)
            .single()
            .map(|t| t.with_timezone(&Utc))
    }
}

use chrono::Offset as _;

impl CallBudget for MemoryBudget {
    fn spend(&self, calls: u32) -> BoxFuture<'_, Result<(), BudgetExhausted>> {
        let today = self.today();
        let result = match self.state.lock() {
            Ok(mut state) => {
                if state.0 != today {
                    *state = (today, 0);
                }
                let want = state.1 + u64::from(calls);
                if want > self.daily_limit {
                    Err(BudgetExhausted {
                        environment: self.environment.clone(),
                        budget: self.daily_limit,
                        used: state.1,
                        resets_at: self.next_reset(today),
                    })
                } else {
                    state.1 = want;
                    Ok(())
                }
            }
            Err(_) => Ok(()),
        };
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_past_the_limit() {
        let b = MemoryBudget::new("dev", 3);
        assert!(b.spend(2).await.is_ok());
        assert!(b.spend(1).await.is_ok());
        let err = b.spend(1).await.expect_err("over budget");
        assert_eq!(err.used, 3);
        assert_eq!(b.used(), 3);
        assert!(err.resets_at.is_some_and(|t| t > Utc::now()));
    }
}
