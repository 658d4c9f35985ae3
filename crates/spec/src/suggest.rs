//! "Did you mean …?" suggestions for misspelt names.

/// Whether `a` and `b` can score 0.6 or more: an edit distance is at least the difference in
/// length, so names of very different lengths are skipped without comparing them.
fn may_be_close(a: usize, b: usize) -> bool {
    let (short, long) = if a < b { (a, b) } else { (b, a) };
    (long - short) * 5 <= long * 2
}

fn closest_counted<'a, I>(input: &str, candidates: I, budget: &mut usize) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let input_lower = input.to_ascii_lowercase();
    let input_len = input_lower.chars().count();
    let mut best: Option<(f64, &'a str)> = None;
    for candidate in candidates {
        if !may_be_close(input_len, candidate.chars().count()) {
            continue;
        }
        if *budget == 0 {
            // Out of comparisons: no hint rather than a partial one.
            return None;
        }
        *budget -= 1;
        let score =
            strsim::normalized_damerau_levenshtein(&input_lower, &candidate.to_ascii_lowercase());
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, candidate));
        }
    }
    best.filter(|(score, _)| *score >= 0.6).map(|(_, c)| c)
}

/// The candidate closest to `input`, if it is close enough to be a plausible typo.
pub fn closest<'a, I>(input: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut unlimited = usize::MAX;
    closest_counted(input, candidates, &mut unlimited)
}

fn hint(found: Option<&str>) -> String {
    match found {
        Some(c) => format!(", did you mean `{c}`?"),
        None => String::new(),
    }
}

/// `, did you mean `x`?` or nothing.
pub fn did_you_mean<'a, I>(input: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    hint(closest(input, candidates))
}

/// "Did you mean" with a ceiling on the work done for one file: a file with thousands of
/// unknown names among thousands of candidates costs at most `limit` name comparisons in
/// all, after which its messages carry no hint.
#[derive(Debug, Clone)]
pub struct Suggester {
    left: usize,
    made: usize,
}

impl Suggester {
    /// Name comparisons allowed for one file.
    pub const PER_FILE: usize = 50_000;

    pub fn new(limit: usize) -> Self {
        Self {
            left: limit,
            made: 0,
        }
    }

    /// `, did you mean `x`?` or nothing, within the budget.
    pub fn did_you_mean<'a, I>(&mut self, input: &str, candidates: I) -> String
    where
        I: IntoIterator<Item = &'a str>,
    {
        let before = self.left;
        let found = closest_counted(input, candidates, &mut self.left);
        self.made += before - self.left;
        hint(found)
    }

    /// Comparisons made so far.
    pub fn comparisons(&self) -> usize {
        self.made
    }
}

impl Default for Suggester {
    fn default() -> Self {
        Self::new(Self::PER_FILE)
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

    #[test]
    fn the_budget_bounds_the_comparisons_and_far_lengths_cost_none() {
        let ids: Vec<String> = (0..1_000).map(|i| format!("task_{i:04}")).collect();
        let mut s = Suggester::new(2_500);
        assert_eq!(
            s.did_you_mean("task_0O01", ids.iter().map(String::as_str)),
            ", did you mean `task_0001`?"
        );
        // Names of very different lengths are not compared at all.
        s.did_you_mean(
            "a_name_much_longer_than_any_id",
            ids.iter().map(String::as_str),
        );
        assert_eq!(s.comparisons(), 1_000);
        for _ in 0..10 {
            s.did_you_mean("task_9x99", ids.iter().map(String::as_str));
        }
        assert_eq!(s.comparisons(), 2_500, "stops at its limit");
        assert_eq!(
            s.did_you_mean("task_0O01", ids.iter().map(String::as_str)),
            ""
        );
    }
}
