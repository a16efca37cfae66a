//! The `is_none_of` term: the "other" bucket of a one-hot that training
//! writes for rare and unseen levels of a categorical attribute.

use super::*;
use crate::profile::{Event, IDENTIFY_EVENT};

const NOW: Timestamp = Timestamp(1_795_435_200_000);

/// A profile whose attributes were set by one `identify` event.
fn profile_with(attributes: &[(&str, AttrValue)]) -> Profile {
    let mut profile = Profile::default();
    let event = Event {
        event_id: "e1".to_owned(),
        name: IDENTIFY_EVENT.to_owned(),
        timestamp: NOW,
        properties: attributes
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect(),
    };
    profile.apply_event(&event, NOW);
    profile
}

fn customer_value(spec: &str, profile: &Profile) -> f64 {
    let features = FeatureSet::parse(&[spec]).expect("the spec parses");
    let context = BTreeMap::new();
    let input = FeatureInput {
        profile,
        context: &context,
        now: NOW,
    };
    features.customer_factors(&input)[0]
}

#[test]
fn is_none_of_parses_and_writes_back_canonically() {
    let spec = FeatureSpec::parse("is_none_of( plan , pro| starter |enterprise )").expect("parses");
    assert_eq!(spec.text(), "is_none_of(plan,pro|starter|enterprise)");
    assert_eq!(
        spec.terms(),
        &[Term::IsNoneOf {
            name: "plan".to_owned(),
            values: vec![
                "pro".to_owned(),
                "starter".to_owned(),
                "enterprise".to_owned()
            ],
        }]
    );
    assert!(!spec.terms()[0].is_action_term());
    let single = FeatureSpec::parse("is_none_of(plan,pro)").expect("one value is a list too");
    assert_eq!(single.text(), "is_none_of(plan,pro)");
}

#[test]
fn is_none_of_refuses_missing_or_empty_values() {
    for (text, expected) in [
        (
            "is_none_of(plan)",
            "'is_none_of' takes 2 argument(s), got 1",
        ),
        ("is_none_of(plan,pro,starter)", "got 3"),
        (
            "is_none_of(plan,pro||starter)",
            "empty value in 'pro||starter'",
        ),
        ("is_none_of(plan,pro|)", "empty value"),
        ("is_none_of(plan,)", "empty argument"),
    ] {
        let error = FeatureSpec::parse(text)
            .expect_err("must be refused")
            .to_string();
        assert!(
            error.contains(expected),
            "'{error}' should mention '{expected}'"
        );
    }
}

#[test]
fn is_none_of_is_one_only_for_a_set_attribute_outside_the_list() {
    let spec = "is_none_of(plan,pro|starter)";
    assert_eq!(
        customer_value(spec, &profile_with(&[("plan", "trial".into())])),
        1.0
    );
    assert_eq!(
        customer_value(spec, &profile_with(&[("plan", "pro".into())])),
        0.0
    );
    assert_eq!(
        customer_value(spec, &profile_with(&[("plan", "starter".into())])),
        0.0
    );
    // Missing: neither a listed level nor "other".
    assert_eq!(customer_value(spec, &profile_with(&[])), 0.0);
    assert_eq!(
        customer_value(spec, &profile_with(&[("seats", 3.0.into())])),
        0.0
    );
    // Values match as `is` matches them: a number by its value, a boolean by its text.
    let numbers = "is_none_of(seats,5|10)";
    assert_eq!(
        customer_value(numbers, &profile_with(&[("seats", 10.0.into())])),
        0.0
    );
    assert_eq!(
        customer_value(numbers, &profile_with(&[("seats", 7.0.into())])),
        1.0
    );
    let flags = "is_none_of(vip,true)";
    assert_eq!(
        customer_value(flags, &profile_with(&[("vip", true.into())])),
        0.0
    );
    assert_eq!(
        customer_value(flags, &profile_with(&[("vip", false.into())])),
        1.0
    );
}

#[test]
fn is_none_of_is_the_complement_of_the_one_hot_for_a_set_attribute() {
    let levels = ["pro", "starter", "enterprise"];
    let mut specs: Vec<String> = levels
        .iter()
        .map(|level| format!("is(plan,{level})"))
        .collect();
    specs.push(format!("is_none_of(plan,{})", levels.join("|")));
    let features = FeatureSet::parse(&specs).expect("parses");
    let context = BTreeMap::new();
    for plan in ["pro", "starter", "enterprise", "trial", "free"] {
        let profile = profile_with(&[("plan", plan.into())]);
        let input = FeatureInput {
            profile: &profile,
            context: &context,
            now: NOW,
        };
        let sum: f64 = features.customer_factors(&input).iter().sum();
        assert_eq!(
            sum, 1.0,
            "exactly one of the one-hot columns is set for {plan}"
        );
    }
}

#[test]
fn is_none_of_is_described_in_words() {
    let catalog = crate::catalog::Catalog::from_toml(crate::demo::CATALOG_TOML).expect("demo");
    let action = &catalog.actions[0];
    let context = BTreeMap::new();
    let spec = FeatureSpec::parse("is_none_of(plan,pro|starter)").expect("parses");
    for (profile, expected) in [
        (
            profile_with(&[("plan", "trial".into())]),
            "plan is none of pro, starter",
        ),
        (
            profile_with(&[("plan", "pro".into())]),
            "plan is one of pro, starter or not set",
        ),
    ] {
        let input = FeatureInput {
            profile: &profile,
            context: &context,
            now: NOW,
        };
        assert_eq!(spec.describe(&input, action), expected);
    }
}

#[test]
fn features_naming_what_the_catalog_lacks_are_listed() {
    let catalog = crate::catalog::Catalog::from_toml(crate::demo::CATALOG_TOML).expect("demo");
    let model = crate::model::Model::from_json(crate::demo::MODEL_JSON.as_bytes()).expect("demo");
    assert_eq!(
        catalog.unknown_features(model.features()),
        Vec::<String>::new(),
        "the demo model fits the demo catalog"
    );
    let features = FeatureSet::parse(&[
        "count(login,7d)",
        "category(teleport) * is(plan,pro)",
        "click_rate(pigeon)",
        "action(nope)",
    ])
    .expect("parses");
    assert_eq!(
        catalog.unknown_features(&features),
        [
            "category(teleport) (in category(teleport) * is(plan,pro))",
            "click_rate(pigeon) (in click_rate(pigeon))",
            "action(nope) (in action(nope))",
        ]
    );
}
