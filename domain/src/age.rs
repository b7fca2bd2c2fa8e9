//! The age gate (P27): the minimum age to use the service by country. A sign-up records only
//! that the person meets the minimum age of their country, never a birth date.
//!
//! 13 by default (COPPA in the US, the UK's Age Appropriate Design Code); the EU member states'
//! ages under GDPR Art. 8 where they differ; others where national law sets a higher age.

/// The minimum age by ISO 3166-1 alpha-2 country code, where it is not 13.
const MINIMUM_AGES: &[(&str, u8)] = &[
    // GDPR Art. 8 national ages.
    ("AT", 14),
    ("BG", 14),
    ("CY", 14),
    ("CZ", 15),
    ("DE", 16),
    ("ES", 14),
    ("FR", 15),
    ("GR", 15),
    ("HR", 16),
    ("HU", 16),
    ("IE", 16),
    ("IT", 14),
    ("LT", 14),
    ("LU", 16),
    ("NL", 16),
    ("PL", 16),
    ("RO", 16),
    ("SI", 15),
    ("SK", 16),
    // Elsewhere.
    ("CN", 14),
    ("KR", 14),
    ("IN", 18),
];

/// The default minimum age.
pub const DEFAULT_MINIMUM_AGE: u8 = 13;

/// The minimum age in `country` (ISO 3166-1 alpha-2, any case), or `None` for a code that is
/// not two ASCII letters.
pub fn minimum_age(country: &str) -> Option<u8> {
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let country = country.to_ascii_uppercase();
    Some(
        MINIMUM_AGES
            .iter()
            .find(|(c, _)| *c == country)
            .map(|(_, age)| *age)
            .unwrap_or(DEFAULT_MINIMUM_AGE),
    )
}

/// Whole years between `birth_date` and `today`.
pub fn age_on(birth_date: chrono::NaiveDate, today: chrono::NaiveDate) -> i32 {
    use chrono::Datelike;
    let mut years = today.year() - birth_date.year();
    if (today.month(), today.day()) < (birth_date.month(), birth_date.day()) {
        years -= 1;
    }
    years
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_thirteen_and_eu_states_have_their_own() {
        assert_eq!(minimum_age("US"), Some(13));
        assert_eq!(minimum_age("pk"), Some(13));
        assert_eq!(minimum_age("DE"), Some(16));
        assert_eq!(minimum_age("fr"), Some(15));
        assert_eq!(minimum_age("DEU"), None);
        assert_eq!(minimum_age("1A"), None);
    }

    #[test]
    fn age_counts_whole_years_up_to_the_birthday() {
        let d = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
        assert_eq!(age_on(d("2010-06-15"), d("2026-06-14")), 15);
        assert_eq!(age_on(d("2010-06-15"), d("2026-06-15")), 16);
    }
}
