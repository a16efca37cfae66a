//! `[[scores]]`, `[[tiers]]` and `[score_policy]` into [`Scores`], and the
//! check that every rule naming `profile.scores.<id>` or
//! `profile.tiers.<id>` names one the catalog declares.

use super::Checker;
use crate::catalog::file::{CatalogFile, ClvDef, FormulaDef, ScoreDef, TierDef};
use crate::catalog::rule::Rule;
use crate::features::FeatureSpec;
use crate::scores::definitions::{
    Band, Clv, Formula, ScoreDefinition, ScoreKind, ScorePolicy, Scores, Tier, unscorable,
};
use crate::scores::reads::{ProfileReads, named_scores};
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;
use toml::Spanned;

/// Most terms a formula may have.
const MAX_FORMULA_TERMS: usize = 256;
/// Longest CLV horizon, in months.
const MAX_CLV_MONTHS: u32 = 240;

/// The scores, tiers and policy of the file.
pub(super) fn compile_scores(
    checker: &mut Checker<'_>,
    env: &Arc<cel::Env>,
    file: &CatalogFile,
) -> Scores {
    let mut scores = Scores {
        cel_env: Some(crate::catalog::rule::RuleEnv(env.clone())),
        ..Scores::default()
    };
    let mut fingerprint_text = String::new();
    for (position, def) in file.scores.iter().enumerate() {
        let field = format!("scores[{position}]");
        let before = checker.problems.len();
        let definition = compile_score(checker, &field, &def.span(), def.get_ref(), &scores);
        if checker.problems.len() == before
            && let Some(definition) = definition
        {
            fingerprint_text.push_str(&format!("{definition:?};"));
            scores.definitions.push(definition);
        }
    }
    let mut tier_ids = BTreeSet::new();
    for (position, def) in file.tiers.iter().enumerate() {
        let field = format!("tiers[{position}]");
        if let Some(tier) = compile_tier(checker, env, &field, def.get_ref(), &scores) {
            if !tier_ids.insert(tier.id.clone()) {
                checker.report(
                    format!("{field}.id"),
                    Some(&def.get_ref().id.span()),
                    format!("tier '{}' is declared twice", tier.id),
                );
                continue;
            }
            fingerprint_text.push_str(&format!("{tier:?};"));
            scores.tiers.push(tier);
        }
    }
    let policy = &file.score_policy;
    let defaults = ScorePolicy::default();
    scores.policy = ScorePolicy {
        max_age: checker
            .span_field("score_policy.max_age", policy.max_age.as_ref())
            .unwrap_or(defaults.max_age),
        min_interval: checker
            .span_field("score_policy.min_interval", policy.min_interval.as_ref())
            .unwrap_or(defaults.min_interval),
    };
    fingerprint_text.push_str(&format!("{:?}", scores.policy));
    scores.reads = reads_of(&scores);
    scores.fingerprint = crate::hash::fnv1a(fingerprint_text.bytes());
    scores
}

/// What the formulas, lifetime values and tier rules read.
fn reads_of(scores: &Scores) -> ProfileReads {
    let mut reads = ProfileReads::default();
    for definition in &scores.definitions {
        match &definition.kind {
            ScoreKind::Formula(formula) => {
                for (spec, _) in &formula.terms {
                    reads.merge(&ProfileReads::of_feature(spec));
                }
            }
            ScoreKind::Clv(clv) => reads.merge(&ProfileReads::of_feature(&clv.value)),
            ScoreKind::Model => {}
        }
    }
    for band in scores.tiers.iter().flat_map(|tier| &tier.bands) {
        if let Some(rule) = &band.when {
            reads.merge(&ProfileReads::of_rule(rule));
        }
    }
    reads
}

fn compile_score(
    checker: &mut Checker<'_>,
    field: &str,
    span: &Range<usize>,
    def: &ScoreDef,
    earlier: &Scores,
) -> Option<ScoreDefinition> {
    let id = def.id.get_ref();
    checker.check_id(&format!("{field}.id"), &def.id.span(), id);
    if earlier.definition(id).is_some() {
        checker.report(
            format!("{field}.id"),
            Some(&def.id.span()),
            format!("score '{id}' is declared twice"),
        );
    }
    let kinds = [
        def.formula.is_some(),
        def.model.is_some(),
        def.clv.is_some(),
    ];
    if kinds.iter().filter(|given| **given).count() != 1 {
        checker.report(
            field,
            Some(span),
            format!("score '{id}' needs exactly one of `formula`, `model = true` and `clv`"),
        );
        return None;
    }
    let kind = if let Some(formula) = &def.formula {
        ScoreKind::Formula(compile_formula(checker, field, formula, earlier)?)
    } else if let Some(model) = &def.model {
        if !*model.get_ref() {
            checker.report(
                format!("{field}.model"),
                Some(&model.span()),
                "write `model = true` for a score a loaded model computes, or remove the score",
            );
            return None;
        }
        ScoreKind::Model
    } else {
        let clv = def.clv.as_ref()?;
        ScoreKind::Clv(compile_clv(
            checker,
            &format!("{field}.clv"),
            clv.get_ref(),
            earlier,
        )?)
    };
    Some(ScoreDefinition {
        id: id.clone(),
        description: def.description.clone(),
        kind,
    })
}

/// A feature a score may read: it parses, reads only the profile, and
/// reads only scores declared before.
fn score_feature(
    checker: &mut Checker<'_>,
    field: &str,
    text: &Spanned<String>,
    earlier: &Scores,
) -> Option<FeatureSpec> {
    let spec = match FeatureSpec::parse(text.get_ref()) {
        Ok(spec) => spec,
        Err(error) => {
            checker.report(field, Some(&text.span()), error.to_string());
            return None;
        }
    };
    if let Some(problem) = unscorable(&spec, &|id| earlier.definition(id).is_some()) {
        checker.report(field, Some(&text.span()), problem);
        return None;
    }
    Some(spec)
}

fn compile_formula(
    checker: &mut Checker<'_>,
    field: &str,
    def: &Spanned<FormulaDef>,
    earlier: &Scores,
) -> Option<Formula> {
    let formula = def.get_ref();
    let field = format!("{field}.formula");
    let terms_list = formula.terms.get_ref();
    if terms_list.is_empty() || terms_list.len() > MAX_FORMULA_TERMS {
        checker.report(
            format!("{field}.terms"),
            Some(&formula.terms.span()),
            format!(
                "{} terms given, 1..={MAX_FORMULA_TERMS} allowed",
                terms_list.len()
            ),
        );
        return None;
    }
    let mut terms = Vec::new();
    for (position, term) in terms_list.iter().enumerate() {
        let term_field = format!("{field}.terms[{position}]");
        let term = term.get_ref();
        let weight = *term.weight.get_ref();
        if !weight.is_finite() {
            checker.report(
                format!("{term_field}.weight"),
                Some(&term.weight.span()),
                format!("{weight} is not a finite number"),
            );
        }
        if let Some(spec) = score_feature(
            checker,
            &format!("{term_field}.feature"),
            &term.feature,
            earlier,
        ) {
            terms.push((spec, weight));
        }
    }
    let finite =
        |checker: &mut Checker<'_>, name: &str, value: Option<&Spanned<f64>>, default: f64| {
            match value {
                Some(value) if !value.get_ref().is_finite() => {
                    checker.report(
                        format!("{field}.{name}"),
                        Some(&value.span()),
                        format!("{} is not a finite number", value.get_ref()),
                    );
                    default
                }
                Some(value) => *value.get_ref(),
                None => default,
            }
        };
    let bias = finite(checker, "bias", formula.bias.as_ref(), 0.0);
    let min = finite(checker, "min", formula.min.as_ref(), f64::NEG_INFINITY);
    let max = finite(checker, "max", formula.max.as_ref(), f64::INFINITY);
    if min >= max {
        checker.report(
            format!("{field}.max"),
            Some(&def.span()),
            format!("max ({max}) must be above min ({min})"),
        );
        return None;
    }
    Some(Formula {
        bias,
        terms,
        min,
        max,
    })
}

fn compile_clv(
    checker: &mut Checker<'_>,
    field: &str,
    def: &ClvDef,
    earlier: &Scores,
) -> Option<Clv> {
    let value = score_feature(checker, &format!("{field}.value"), &def.value, earlier);
    let churn = def.churn.as_ref().map(|churn| {
        if earlier.definition(churn.get_ref()).is_none() {
            checker.report(
                format!("{field}.churn"),
                Some(&churn.span()),
                format!(
                    "score '{}' is not declared before this one",
                    churn.get_ref()
                ),
            );
        }
        churn.get_ref().clone()
    });
    let probability =
        |checker: &mut Checker<'_>, name: &str, value: Option<&Spanned<f64>>, default: f64| {
            let Some(value) = value else { return default };
            if !(0.0..1.0).contains(value.get_ref()) {
                checker.report(
                    format!("{field}.{name}"),
                    Some(&value.span()),
                    format!("{} must be at least 0 and below 1", value.get_ref()),
                );
            }
            *value.get_ref()
        };
    let default_churn = probability(checker, "default_churn", def.default_churn.as_ref(), 0.03);
    let discount = probability(checker, "discount", def.discount.as_ref(), 0.0);
    let months = match &def.months {
        Some(months) if !(1..=MAX_CLV_MONTHS).contains(months.get_ref()) => {
            checker.report(
                format!("{field}.months"),
                Some(&months.span()),
                format!("{} must be 1..={MAX_CLV_MONTHS}", months.get_ref()),
            );
            12
        }
        Some(months) => *months.get_ref(),
        None => 12,
    };
    Some(Clv {
        value: value?,
        churn,
        default_churn,
        months,
        discount,
    })
}

fn compile_tier(
    checker: &mut Checker<'_>,
    env: &cel::Env,
    field: &str,
    def: &TierDef,
    scores: &Scores,
) -> Option<Tier> {
    let before = checker.problems.len();
    let id = def.id.get_ref();
    checker.check_id(&format!("{field}.id"), &def.id.span(), id);
    if let Some(score) = &def.score
        && scores.definition(score.get_ref()).is_none()
    {
        checker.report(
            format!("{field}.score"),
            Some(&score.span()),
            format!("score '{}' is not declared in [[scores]]", score.get_ref()),
        );
    }
    let bands_list = def.bands.get_ref();
    if bands_list.is_empty() {
        checker.report(
            format!("{field}.bands"),
            Some(&def.bands.span()),
            "a tier needs at least one band",
        );
    }
    let mut bands: Vec<Band> = Vec::new();
    let mut catch_all: Option<String> = None;
    for (position, band) in bands_list.iter().enumerate() {
        let band_field = format!("{field}.bands[{position}]");
        let band = band.get_ref();
        let name = band.name.get_ref();
        checker.check_id(&format!("{band_field}.name"), &band.name.span(), name);
        if bands.iter().any(|known| known.name == *name) {
            checker.report(
                format!("{band_field}.name"),
                Some(&band.name.span()),
                format!("band '{name}' appears twice in tier '{id}'"),
            );
        }
        if let Some(earlier) = &catch_all {
            checker.report(
                format!("{band_field}.name"),
                Some(&band.name.span()),
                format!("band '{name}' is never reached: band '{earlier}' before it always holds"),
            );
        }
        if let Some(min) = &band.min {
            if def.score.is_none() {
                checker.report(
                    format!("{band_field}.min"),
                    Some(&min.span()),
                    format!("`min` compares the tier's score, and tier '{id}' has no `score`"),
                );
            }
            if !min.get_ref().is_finite() {
                checker.report(
                    format!("{band_field}.min"),
                    Some(&min.span()),
                    format!("{} is not a finite number", min.get_ref()),
                );
            }
        }
        let when = band.when.as_ref().and_then(|source| {
            tier_rule(
                checker,
                env,
                &format!("{band_field}.when"),
                source,
                scores,
                &bands_tiers(scores),
            )
        });
        if band.min.is_none() && band.when.is_none() {
            catch_all = Some(name.clone());
        }
        bands.push(Band {
            name: name.clone(),
            min: band.min.as_ref().map(|min| *min.get_ref()),
            when,
        });
    }
    (checker.problems.len() == before).then(|| Tier {
        id: id.clone(),
        score: def.score.as_ref().map(|score| score.get_ref().clone()),
        bands,
    })
}

/// The tiers a band's rule may read: the ones declared before its tier.
fn bands_tiers(scores: &Scores) -> BTreeSet<String> {
    scores.tiers.iter().map(|tier| tier.id.clone()).collect()
}

/// A band's rule: over `profile` only, naming declared scores and earlier
/// tiers.
fn tier_rule(
    checker: &mut Checker<'_>,
    env: &cel::Env,
    field: &str,
    source: &Spanned<String>,
    scores: &Scores,
    tiers: &BTreeSet<String>,
) -> Option<Rule> {
    let rule = checker.rule(env, field, source)?;
    let other: Vec<String> = rule
        .variables()
        .into_iter()
        .filter(|variable| variable != "profile")
        .collect();
    if !other.is_empty() {
        checker.report(
            field,
            Some(&source.span()),
            format!(
                "reads {}, which a tier's rule does not have (it has profile)",
                other.join(", ")
            ),
        );
        return None;
    }
    check_names(checker, field, source, &rule, scores, tiers);
    Some(rule)
}

/// Reports the scores and tiers `rule` names that are not declared.
fn check_names(
    checker: &mut Checker<'_>,
    field: &str,
    source: &Spanned<String>,
    rule: &Rule,
    scores: &Scores,
    tiers: &BTreeSet<String>,
) {
    let Some((named_scores, named_tiers)) = named_scores(rule) else {
        return;
    };
    for id in named_scores {
        if scores.definition(&id).is_none() {
            checker.report(
                field,
                Some(&source.span()),
                format!("profile.scores.{id}: no score '{id}' is declared in [[scores]]"),
            );
        }
    }
    for id in named_tiers {
        if !tiers.contains(&id) {
            checker.report(
                field,
                Some(&source.span()),
                format!("profile.tiers.{id}: no tier '{id}' is declared in [[tiers]] before it"),
            );
        }
    }
}

/// Checks the scores and tiers named by the file's other rules: action
/// eligibility, segments, and journeys' entry conditions, branches and
/// event conditions.
pub(super) fn check_rule_names(
    checker: &mut Checker<'_>,
    env: &cel::Env,
    file: &CatalogFile,
    scores: &Scores,
) {
    let tiers: BTreeSet<String> = scores.tiers.iter().map(|tier| tier.id.clone()).collect();
    let mut sources: Vec<(String, &Spanned<String>)> = Vec::new();
    for (position, action) in file.actions.iter().enumerate() {
        if let Some(rule) = &action.get_ref().rule {
            sources.push((format!("actions[{position}].rule"), rule));
        }
    }
    for (position, segment) in file.segments.iter().enumerate() {
        sources.push((
            format!("segments[{position}].rule"),
            &segment.get_ref().rule,
        ));
    }
    for (position, journey) in file.journeys.iter().enumerate() {
        let journey = journey.get_ref();
        let field = format!("journeys[{position}]");
        if let Some(entry) = &journey.entry {
            sources.push((format!("{field}.entry"), entry));
        }
        for (step_position, step) in journey.steps.iter().enumerate() {
            let Some(cases) = &step.get_ref().branch else {
                continue;
            };
            for (case_position, case) in cases.get_ref().iter().enumerate() {
                sources.push((
                    format!("{field}.steps[{step_position}].branch[{case_position}].when"),
                    &case.get_ref().when,
                ));
            }
        }
    }
    for (field, source) in sources {
        // A rule that does not compile is reported where it is compiled.
        if let Ok(rule) = Rule::compile(env, source.get_ref()) {
            check_names(checker, &field, source, &rule, scores, &tiers);
        }
    }
}
