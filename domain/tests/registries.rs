//! Every event enum's registry of stored types (`DomainEvent::VERSIONS`) lists each of its
//! types once, at a version from 1, one entry per variant (as serde names them).

use domain::DomainEvent;

#[test]
fn every_event_enum_lists_each_of_its_types_once_in_its_registry() {
    fn check<E: DomainEvent>() {
        let name = std::any::type_name::<E>();
        let mut types: Vec<&str> = E::VERSIONS.iter().map(|(t, _)| *t).collect();
        assert!(E::VERSIONS.iter().all(|(_, v)| *v >= 1), "{name}: versions start at 1");
        types.sort();
        types.dedup();
        assert_eq!(types.len(), E::VERSIONS.len(), "{name}: a type listed twice");
        // One event type per variant; that each variant's type is the one listed is checked
        // on the golden fixtures (tests/tests/event_fixtures.rs).
        assert_eq!(
            E::VERSIONS.len(),
            domain::versions::stored_variants::<E>().len(),
            "{name}: one entry per variant"
        );
    }
    check::<domain::account::AccountEvent>();
    check::<domain::artist::ArtistEvent>();
    check::<domain::billing::BillingEvent>();
    check::<domain::billing::PeriodEvent>();
    check::<domain::campaign::CampaignEvent>();
    check::<domain::connection::ConnectionEvent>();
    check::<domain::consent::ConsentEvent>();
    check::<domain::disclosure::DisclosureEvent>();
    check::<domain::policy::PolicyEvent>();
    check::<domain::privacy::PrivacyEvent>();
    check::<domain::privacy::SubjectEvent>();
    check::<domain::retention::RetentionEvent>();
    check::<domain::spend::SpendEvent>();
}
