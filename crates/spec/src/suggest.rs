//! "Did you mean …?" suggestions for misspelt names.

/// The candidate closest to `input`, if it is close enough to be a plausible typo.
pub fn closest<'a, I>(input: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let input_lower = input.to_ascii_lowercase();
    let mut best: Option<(f64, &'a str)> = None;
    for candidate in candidates {
        let score =
            strsim::normalized_damerau_levenshtein(&input_lower, &candidate.to_ascii_lowercase());
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, candidate));
        }
    }
    best.filter(|(score, _)| *score >= 0.6).map(|(_, c)| c)
}

/// `, did you mean `x`?` or nothing.
pub fn did_you_mean<'a, I>(input: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    match closest(input, candidates) {
        Some(c) => format!(", did you mean `{c}`?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["depends_on", "description", "trigger_rule"];
        assert_eq!(closest("dependson", keys), Some("depends_on"));
        assert_eq!(closest("trigger_rules", keys), Some("trigger_rule"));
        assert_eq!(closest("zzz", keys), None);
        assert_eq!(
            closest("retires", ["retry_delay", "retries", "return"]),
            Some("retries")
        );
    }
}
