//! The documented maxima of money and count fields, checked where a value enters the domain, so
//! that every sum of them stays far inside `i64`: a single reading, budget or plan amount above
//! them is refused with the field named, never stored, and never overflows a total.
//!
//! `MAX_MICROS` is 10^15 micros, one billion units of any currency for one campaign and day (or
//! one budget or plan amount): no real campaign reaches it. `MAX_COUNT` is 10^12 (a trillion
//! impressions, clicks, … in one day). A sum of 9,000 maximal values still fits in `i64`; totals
//! computed in Rust saturate or use `i128` beyond that, and the read models' SQL sums split each
//! value so that no database sum can overflow.

/// The largest money amount in micros one reading, budget or plan amount may carry (10^15).
pub const MAX_MICROS: i64 = 1_000_000_000_000_000;

/// The largest count (impressions, reach, clicks, …) one reading may carry (10^12).
pub const MAX_COUNT: i64 = 1_000_000_000_000;

/// Sums `values` without overflow: saturating at `i64::MIN`/`i64::MAX`.
pub fn saturating_sum(values: impl IntoIterator<Item = i64>) -> i64 {
    let total: i128 = values.into_iter().map(i128::from).sum();
    clamp_i128(total)
}

/// `value` clamped into `i64`.
pub fn clamp_i128(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_saturate_instead_of_wrapping() {
        assert_eq!(saturating_sum([i64::MAX, i64::MAX]), i64::MAX);
        assert_eq!(saturating_sum([i64::MIN, -1]), i64::MIN);
        assert_eq!(saturating_sum([MAX_MICROS, MAX_MICROS]), 2 * MAX_MICROS);
        assert_eq!(saturating_sum([]), 0);
    }
}
