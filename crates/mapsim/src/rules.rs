//! Row rules shared by Sync Leads and Bulk Import: email validity and the `partial-import` fault.

use crate::faults::{PartialImportFault, mix};

/// What the rules say about one row.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Verdict {
    /// The row is rejected (import failure / sync skipped with 1003).
    pub(crate) fail: Option<String>,
    /// The row is written but flagged (import warning).
    pub(crate) warn: Option<String>,
}

/// Whether `email` looks like an address (one `@`, something on both sides, a dot in the domain).
pub(crate) fn valid_email(email: &str) -> bool {
    let e = email.trim();
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !domain.contains('@') && !e.contains(' ')
        }
        None => false,
    }
}

/// Applies the rules to a row with `email` (if the row has one) and `key` (its lookup value).
pub(crate) fn check(
    partial: Option<&PartialImportFault>,
    seed: u64,
    email: Option<&str>,
    key: &str,
) -> Verdict {
    let mut v = Verdict::default();
    if let Some(e) = email.filter(|e| !e.trim().is_empty())
        && !valid_email(e)
    {
        v.warn = Some("Invalid email address".to_owned());
    }
    let Some(p) = partial else { return v };
    if let Some(e) = email {
        let domain = e
            .trim()
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase());
        if let Some(d) = domain
            && p.blocked_domains.iter().any(|b| b.eq_ignore_ascii_case(&d))
        {
            v.fail = Some(format!("Email domain '{d}' is blocked"));
            return v;
        }
    }
    let mut h: u64 = seed ^ 0x7061_7274;
    for b in key.trim().bytes() {
        h = mix(h ^ u64::from(b.to_ascii_lowercase()));
    }
    if h % 1000 < u64::from(p.fail_permille) {
        v.fail = Some("Rejected by data validation rule".to_owned());
    }
    v
}
