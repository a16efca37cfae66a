//! One test per validation error path of `catalog/compile.rs`: each builds a
//! small catalog from a valid minimal base, breaks one thing, and asserts the
//! problem's field path, its line (where the compiler reports one) and the key
//! words of its message.
//!
//! The line is that of the offending value — the key, or the element of a
//! list — not of its table's header; only a missing value (a scoped cap
//! without its target) is reported on its table's line.

use nudge_models::catalog::{Catalog, CatalogProblem};

/// A valid minimal catalog. Tests append tables to it (TOML allows `[[actions]]`
/// and `[placements.x]` anywhere after other tables).
const BASE: &str = r#"[catalog]
name = "validation"

[channels.in_app]

[channels.email]
consent = "opt_in"

[[actions]]
id = "tip"
channel = "in_app"
category = "tips"

[[actions]]
id = "promo_mail"
channel = "email"
category = "promo"

[placements.home]
channels = ["in_app"]
"#;

/// The base with `extra` appended.
fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

/// The 1-based line of the last occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> u32 {
    let offset = text
        .rfind(needle)
        .unwrap_or_else(|| panic!("'{needle}' is not in the text"));
    u32::try_from(text[..offset].matches('\n').count() + 1).expect("few lines")
}

/// Every problem of a catalog that must be refused.
fn problems(text: &str) -> Vec<CatalogProblem> {
    match Catalog::from_toml(text) {
        Ok(_) => panic!("the catalog should be refused:\n{text}"),
        Err(problems) => {
            assert!(!problems.0.is_empty(), "refused with no problem");
            problems.0
        }
    }
}

/// The one problem of a catalog that must be refused for exactly one reason.
fn only_problem(text: &str) -> CatalogProblem {
    let mut found = problems(text);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one problem, got {found:#?}\nin:\n{text}"
    );
    found.remove(0)
}

/// Asserts a problem's field, line and message words.
#[track_caller]
fn assert_problem(problem: &CatalogProblem, field: &str, line: Option<u32>, words: &[&str]) {
    assert_eq!(problem.field, field, "field of {problem:?}");
    assert_eq!(problem.line, line, "line of {problem:?}");
    for word in words {
        assert!(
            problem.message.contains(word),
            "message of {problem:?} should mention '{word}'"
        );
    }
}

/// Asserts the catalog has exactly one problem, with this field, line and words.
#[track_caller]
fn assert_only(text: &str, field: &str, line: Option<u32>, words: &[&str]) {
    let problem = only_problem(text);
    assert_problem(&problem, field, line, words);
}

/// A complete extra action on `in_app` whose body is `fields`.
fn action(fields: &str) -> String {
    format!("\n[[actions]]\nid = \"extra\"\nchannel = \"in_app\"\ncategory = \"tips\"\n{fields}\n")
}

/// A complete extra placement `extra` whose body is `fields`.
fn placement(fields: &str) -> String {
    format!("\n[placements.extra]\n{fields}\n")
}

/// A cap whose body is `fields`.
fn cap(fields: &str) -> String {
    format!("\n[[caps]]\n{fields}\n")
}

#[test]
fn the_base_catalog_is_valid() {
    let catalog = Catalog::from_toml(BASE).expect("the base is valid");
    let summary = catalog.summary();
    assert_eq!(
        (summary.actions, summary.placements, summary.channels),
        (2, 1, 2)
    );
    assert!(
        summary.version.starts_with("sha-"),
        "an unversioned catalog is named by its hash: {}",
        summary.version
    );
    // Each helper's output is valid when filled in correctly.
    Catalog::from_toml(&with(&action(""))).expect("a plain extra action is valid");
    Catalog::from_toml(&with(&placement("channels = [\"in_app\", \"email\"]")))
        .expect("a plain extra placement is valid");
    Catalog::from_toml(&with(&cap("scope = \"total\"\nlimit = 3\nwindow = \"7d\"")))
        .expect("a plain cap is valid");
}

// ── The file itself ─────────────────────────────────────────────────────────

#[test]
fn a_toml_syntax_error_names_its_line() {
    let text = with("\n[[actions]]\nid = \"unterminated\nchannel = \"in_app\"\n");
    assert_only(
        &text,
        "(file)",
        Some(line_of(&text, "id = \"unterminated")),
        &["string"],
    );
}

#[test]
fn an_unknown_field_is_refused_on_its_line() {
    let text = with(&action("chanel = \"email\""));
    assert_only(
        &text,
        "(file)",
        Some(line_of(&text, "chanel =")),
        &["unknown field `chanel`", "expected one of", "`channel`"],
    );
    // Closed tables everywhere: the header, a channel, a placement, a cap,
    // the levers and the top level.
    for (text, typo) in [
        (BASE.replace("name = ", "nmae = "), "nmae"),
        (with("\n[channels.push]\nconsnet = \"opt_in\"\n"), "consnet"),
        (
            with(&placement("channels = [\"in_app\"]\nslot = 2")),
            "slot",
        ),
        (
            with(&cap(
                "scope = \"total\"\nlimit = 3\nwindow = \"7d\"\nwindow_days = 7",
            )),
            "window_days",
        ),
        (with("\n[levers]\ncategory = { tips = 2.0 }\n"), "category"),
        (with("\n[[action]]\nid = \"x\"\n"), "action"),
    ] {
        let problem = only_problem(&text);
        assert_problem(
            &problem,
            "(file)",
            Some(line_of(&text, typo)),
            &[&format!("unknown field `{typo}`")],
        );
    }
}

#[test]
fn an_unknown_enumeration_value_is_refused_on_its_line() {
    for (extra, value) in [
        ("\n[channels.sms]\nconsent = \"maybe\"\n", "maybe"),
        (
            &cap("scope = \"planet\"\nlimit = 3\nwindow = \"7d\""),
            "planet",
        ),
        (
            &placement("channels = [\"in_app\"]\nexploration = { method = \"ucb\" }"),
            "ucb",
        ),
    ] {
        let text = with(extra);
        assert_only(
            &text,
            "(file)",
            Some(line_of(&text, value)),
            &[&format!("unknown variant `{value}`")],
        );
    }
}

#[test]
fn a_missing_required_field_is_refused_at_its_table() {
    let text = with("\n[[actions]]\nid = \"extra\"\nchannel = \"in_app\"\n");
    assert_only(
        &text,
        "(file)",
        Some(line_of(&text, "[[actions]]")),
        &["missing field `category`"],
    );
    let text = BASE.replace("name = \"validation\"\n", "");
    assert_only(&text, "(file)", Some(1), &["missing field `name`"]);
}

#[test]
fn an_empty_catalog_name_is_refused() {
    let text = BASE.replace("name = \"validation\"", "name = \"  \"");
    assert_only(
        &text,
        "catalog.name",
        Some(line_of(&text, "name = \"  \"")),
        &["must not be empty"],
    );
}

#[test]
fn a_bad_catalog_timezone_is_refused() {
    let text = BASE.replace(
        "name = \"validation\"",
        "name = \"validation\"\ntimezone = \"Mars/Olympus_Mons\"",
    );
    assert_only(
        &text,
        "catalog.timezone",
        Some(line_of(&text, "timezone = ")),
        &["'Mars/Olympus_Mons'", "IANA timezone"],
    );
    let paris = BASE.replace(
        "name = \"validation\"",
        "name = \"validation\"\ntimezone = \"Europe/Paris\"",
    );
    let catalog = Catalog::from_toml(&paris).expect("a real timezone is valid");
    assert_eq!(catalog.default_timezone, chrono_tz::Europe::Paris);
}

#[test]
fn a_catalog_without_channels_is_refused() {
    let text = BASE
        .replace("[channels.in_app]\n", "")
        .replace("[channels.email]\nconsent = \"opt_in\"\n", "");
    let found = problems(&text);
    let problem = found
        .iter()
        .find(|problem| problem.field == "channels")
        .unwrap_or_else(|| panic!("no `channels` problem in {found:#?}"));
    assert_problem(problem, "channels", None, &["no [channels.<id>]"]);
}

#[test]
fn a_catalog_without_actions_is_refused() {
    let text = "[catalog]\nname = \"empty\"\n\n[channels.in_app]\n\n[placements.home]\nchannels = [\"in_app\"]\n";
    assert_only(text, "actions", None, &["no [[actions]]"]);
}

#[test]
fn a_catalog_without_placements_is_refused() {
    let text = BASE.replace("[placements.home]\nchannels = [\"in_app\"]\n", "");
    assert_only(&text, "placements", None, &["no [placements.<id>]"]);
}

// ── Channels ────────────────────────────────────────────────────────────────

#[test]
fn bad_quiet_hours_are_refused_for_each_end() {
    for (start, end, bad) in [
        ("25:00", "08:00", vec!["start"]),
        ("21:00", "8:00", vec!["end"]),
        ("21:60", "24:00", vec!["start", "end"]),
        ("ab:cd", "0800", vec!["start", "end"]),
    ] {
        let text = with(&format!(
            "\n[channels.push]\nquiet_hours = {{ start = \"{start}\", end = \"{end}\" }}\n"
        ));
        let found = problems(&text);
        assert_eq!(found.len(), bad.len(), "{start}–{end}: {found:#?}");
        for (problem, which) in found.iter().zip(bad) {
            let value = if which == "start" { start } else { end };
            assert_problem(
                problem,
                &format!("channels.push.quiet_hours.{which}"),
                Some(line_of(&text, "quiet_hours = ")),
                &[&format!("'{value}'"), "not a time like 21:00"],
            );
        }
    }
    // Written as a table, each end is reported on its own line.
    let text =
        with("\n[channels.push]\n\n[channels.push.quiet_hours]\nstart = \"21:60\"\nend = \"8\"\n");
    let found = problems(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_problem(
        &found[0],
        "channels.push.quiet_hours.start",
        Some(line_of(&text, "start = ")),
        &["'21:60'"],
    );
    assert_problem(
        &found[1],
        "channels.push.quiet_hours.end",
        Some(line_of(&text, "end = ")),
        &["'8'"],
    );
    let fine = with("\n[channels.push]\nquiet_hours = { start = \"00:00\", end = \"23:59\" }\n");
    Catalog::from_toml(&fine).expect("00:00–23:59 is valid");
}

#[test]
fn a_channel_id_with_bad_characters_is_refused() {
    let text = with("\n[channels.\"push notifications\"]\n");
    assert_only(
        &text,
        "channels.push notifications",
        Some(line_of(&text, "[channels.\"push notifications\"]")),
        &["'push notifications'", "not a valid id"],
    );
}

// ── Actions ─────────────────────────────────────────────────────────────────

#[test]
fn an_action_id_with_bad_characters_is_refused() {
    let long = "x".repeat(129);
    for id in ["has space", "é", "", "semi;colon", long.as_str()] {
        let text = with(&format!(
            "\n[[actions]]\nid = \"{id}\"\nchannel = \"in_app\"\ncategory = \"tips\"\n"
        ));
        assert_only(
            &text,
            "actions[2].id",
            Some(line_of(&text, &format!("id = \"{id}\""))),
            &[&format!("'{id}'"), "not a valid id", "1..=128"],
        );
    }
    let longest = "y".repeat(128);
    let text = with(&format!(
        "\n[[actions]]\nid = \"{longest}\"\nchannel = \"in_app\"\ncategory = \"tips\"\n"
    ));
    Catalog::from_toml(&text).expect("128 characters of allowed id are valid");
    let text = with("\n[[actions]]\nid = \"Aa0_-.:\"\nchannel = \"in_app\"\ncategory = \"tips\"\n");
    Catalog::from_toml(&text).expect("every allowed character is valid");
}

#[test]
fn a_duplicate_action_id_points_at_the_first_definition() {
    let copy = "\n[[actions]]\nid = \"tip\"\nchannel = \"in_app\"\ncategory = \"tips\"\n";
    let text = with(&format!("{copy}{copy}"));
    // Every line here is that of an `id = "tip"`.
    let first = line_of(BASE, "id = \"tip\"");
    let found = problems(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    let second_line = line_of(&with(copy), "id = \"tip\"");
    let third_line = line_of(&text, "id = \"tip\"");
    assert_problem(
        &found[0],
        "actions[2].id",
        Some(second_line),
        &[
            "duplicate action id 'tip'",
            &format!("first defined on line {first}"),
        ],
    );
    // The third copy still names the first definition, not the second.
    assert_problem(
        &found[1],
        "actions[3].id",
        Some(third_line),
        &[
            "duplicate action id 'tip'",
            &format!("first defined on line {first}"),
        ],
    );
}

#[test]
fn duplicates_written_on_one_line_are_still_reported() {
    // Top-level keys come before the first table header.
    let text = "actions = [{ id = \"a\", channel = \"in_app\", category = \"c\" }, { id = \"a\", channel = \"in_app\", category = \"c\" }]\n\n[catalog]\nname = \"inline\"\n\n[channels.in_app]\n\n[placements.home]\nchannels = [\"in_app\"]\n";
    assert_only(
        text,
        "actions[1].id",
        Some(1),
        &["duplicate action id 'a'", "first defined on line 1"],
    );
}

#[test]
fn an_action_on_an_undeclared_channel_is_refused() {
    let text = with("\n[[actions]]\nid = \"sms_nudge\"\nchannel = \"sms\"\ncategory = \"tips\"\n");
    assert_only(
        &text,
        "actions[2].channel",
        Some(line_of(&text, "channel = \"sms\"")),
        &["channel 'sms'", "not declared in [channels]"],
    );
}

#[test]
fn a_bad_channel_in_a_long_action_is_reported_on_its_own_line() {
    // The channel is the fifth key: its line, not the `[[actions]]` header's.
    let text = with(concat!(
        "\n[[actions]]\n",
        "id = \"fax_reminder\"\n",
        "name = \"Fax reminder\"\n",
        "category = \"tips\"\n",
        "value = 2.0\n",
        "# Marketing asked for fax.\n",
        "channel = \"fax\"\n",
        "rule = \"true\"\n",
    ));
    let header = line_of(&text, "[[actions]]");
    let channel = line_of(&text, "channel = \"fax\"");
    assert_eq!(channel, header + 6, "the test's own layout");
    let problem = only_problem(&text);
    assert_problem(
        &problem,
        "actions[2].channel",
        Some(channel),
        &["channel 'fax'", "not declared in [channels]"],
    );
    assert_ne!(problem.line, Some(header), "not the header's line");
    assert_eq!(
        problem.to_string(),
        format!("line {channel}: actions[2].channel: channel 'fax' is not declared in [channels]")
    );
}

#[test]
fn an_empty_category_is_refused() {
    let text = with("\n[[actions]]\nid = \"extra\"\nchannel = \"in_app\"\ncategory = \" \"\n");
    assert_only(
        &text,
        "actions[2].category",
        Some(line_of(&text, "category = \" \"")),
        &["must not be empty"],
    );
}

#[test]
fn a_negative_or_nan_value_is_refused() {
    for (value, shown) in [("-1.5", "-1.5"), ("nan", "NaN"), ("inf", "inf")] {
        let text = with(&action(&format!("value = {value}")));
        assert_only(
            &text,
            "actions[2].value",
            Some(line_of(&text, "value = ")),
            &[shown, "finite number ≥ 0"],
        );
    }
    Catalog::from_toml(&with(&action("value = 0.0"))).expect("a zero value is valid");
}

#[test]
fn a_non_positive_action_lever_is_refused() {
    for (lever, shown) in [("0.0", "0"), ("-2.0", "-2"), ("nan", "NaN"), ("inf", "inf")] {
        let text = with(&action(&format!("lever = {lever}")));
        assert_only(
            &text,
            "actions[2].lever",
            Some(line_of(&text, "lever = ")),
            &[shown, "must be a positive number"],
        );
    }
}

#[test]
fn a_bad_valid_from_is_refused() {
    let text = with(&action("valid_from = \"tomorrow\""));
    assert_only(
        &text,
        "actions[2].valid_from",
        Some(line_of(&text, "valid_from = ")),
        &["'tomorrow'", "RFC 3339"],
    );
}

#[test]
fn a_bad_valid_until_is_refused() {
    let text = with(&action("valid_until = \"2026-12-01\""));
    assert_only(
        &text,
        "actions[2].valid_until",
        Some(line_of(&text, "valid_until = ")),
        &["'2026-12-01'", "RFC 3339"],
    );
}

#[test]
fn a_valid_until_not_after_valid_from_is_refused() {
    for until in ["2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"] {
        let text = with(&action(&format!(
            "valid_from = \"2026-12-01T00:00:00Z\"\nvalid_until = \"{until}\""
        )));
        assert_only(
            &text,
            "actions[2].valid_until",
            Some(line_of(&text, "valid_until = ")),
            &["is not after valid_from", "2026-12-01T00:00:00"],
        );
    }
    let text = with(&action(
        "valid_from = \"2026-12-01T00:00:00+01:00\"\nvalid_until = \"2026-12-01T00:00:00Z\"",
    ));
    Catalog::from_toml(&text).expect("offsets are honoured: +01:00 midnight is before Z midnight");
}

#[test]
fn a_bad_cooldown_is_refused() {
    for (field, value, words) in [
        ("cooldown", "7", vec!["'7'", "no unit"]),
        ("cooldown", "7y", vec!["'7y'", "unknown unit 'y'"]),
        ("dismiss_cooldown", "0d", vec!["'0d'", "longer than zero"]),
        ("dismiss_cooldown", "99999w", vec!["'99999w'", "ten years"]),
    ] {
        let text = with(&action(&format!("{field} = \"{value}\"")));
        assert_only(
            &text,
            &format!("actions[2].{field}"),
            Some(line_of(&text, &format!("{field} = "))),
            &words,
        );
    }
}

#[test]
fn a_zero_budget_is_refused() {
    let text = with(&action("budget = 0"));
    assert_only(
        &text,
        "actions[2].budget",
        Some(line_of(&text, "budget = 0")),
        &["at least 1", "active = false"],
    );
    let text = with(&action("budget = -1"));
    assert_only(&text, "(file)", Some(line_of(&text, "budget = -1")), &[]);
}

#[test]
fn an_invalid_cel_rule_is_refused() {
    let text = with(&action("rule = \"profile.count_7d.login >=\""));
    assert_only(
        &text,
        "actions[2].rule",
        Some(line_of(&text, "rule = ")),
        &["invalid CEL rule", "Syntax error"],
    );
    let text = with(&action("rule = \"  \""));
    assert_only(
        &text,
        "actions[2].rule",
        Some(line_of(&text, "rule = ")),
        &["invalid CEL rule", "rule is empty"],
    );
}

// ── Placements ──────────────────────────────────────────────────────────────

#[test]
fn a_placement_id_with_bad_characters_is_refused() {
    let text = with("\n[placements.\"home/banner\"]\nchannels = [\"in_app\"]\n");
    assert_only(
        &text,
        "placements.home/banner",
        Some(line_of(&text, "[placements.\"home/banner\"]")),
        &["'home/banner'", "not a valid id"],
    );
}

#[test]
fn a_placement_on_an_unknown_channel_is_refused() {
    let text = with(&placement("channels = [\"in_app\", \"fax\"]"));
    assert_only(
        &text,
        "placements.extra.channels",
        Some(line_of(&text, "channels = [\"in_app\", \"fax\"]")),
        &["channel 'fax'", "not declared in [channels]"],
    );
    // In a list written over several lines, the offending element's line.
    let text = with(&placement("channels = [\n  \"in_app\",\n  \"fax\",\n]"));
    assert_only(
        &text,
        "placements.extra.channels",
        Some(line_of(&text, "\"fax\"")),
        &["channel 'fax'", "not declared in [channels]"],
    );
}

#[test]
fn a_placement_without_channels_is_refused() {
    let text = with(&placement("channels = []"));
    assert_only(
        &text,
        "placements.extra.channels",
        Some(line_of(&text, "channels = []")),
        &["at least one channel"],
    );
}

#[test]
fn placement_slots_must_be_between_1_and_50() {
    for slots in [0, 51, 1_000] {
        let text = with(&placement(&format!(
            "channels = [\"in_app\"]\nslots = {slots}"
        )));
        assert_only(
            &text,
            "placements.extra.slots",
            Some(line_of(&text, "slots = ")),
            &[&slots.to_string(), "between 1 and 50"],
        );
    }
    for slots in [1, 50] {
        let text = with(&placement(&format!(
            "channels = [\"in_app\"]\nslots = {slots}"
        )));
        Catalog::from_toml(&text).expect("1 and 50 slots are valid");
    }
}

#[test]
fn a_placement_fallback_to_an_unknown_action_is_refused() {
    let text = with(&placement(
        "channels = [\"in_app\"]\nfallback = [\"tip\", \"ghost\"]",
    ));
    assert_only(
        &text,
        "placements.extra.fallback",
        Some(line_of(&text, "fallback = ")),
        &["action 'ghost'", "not in [[actions]]"],
    );
    let text = with(&placement(
        "channels = [\"in_app\"]\nfallback = [\n  \"tip\",\n  \"ghost\",\n]",
    ));
    assert_only(
        &text,
        "placements.extra.fallback",
        Some(line_of(&text, "\"ghost\"")),
        &["action 'ghost'", "not in [[actions]]"],
    );
}

#[test]
fn a_placement_fallback_on_a_channel_it_does_not_allow_is_refused() {
    let text = with(&placement(
        "channels = [\"in_app\"]\nfallback = [\"promo_mail\"]",
    ));
    assert_only(
        &text,
        "placements.extra.fallback",
        Some(line_of(&text, "fallback = ")),
        &["action 'promo_mail'", "channel 'email'", "does not allow"],
    );
}

#[test]
fn a_bad_context_weight_is_refused() {
    for (weight, shown) in [("0.0", "0"), ("-1.0", "-1"), ("nan", "NaN"), ("inf", "inf")] {
        let text = with(&placement(&format!(
            "channels = [\"in_app\"]\ncontext_weights = {{ tips = {weight} }}"
        )));
        assert_only(
            &text,
            "placements.extra.context_weights.tips",
            Some(line_of(&text, "context_weights = ")),
            &[shown, "must be a positive number"],
        );
    }
}

#[test]
fn an_epsilon_outside_0_1_is_refused() {
    for (epsilon, shown) in [("1.5", "1.5"), ("-0.1", "-0.1"), ("nan", "NaN")] {
        let text = with(&placement(&format!(
            "channels = [\"in_app\"]\nexploration = {{ method = \"epsilon\", epsilon = {epsilon} }}"
        )));
        assert_only(
            &text,
            "placements.extra.exploration.epsilon",
            Some(line_of(&text, "exploration = ")),
            &[shown, "between 0 and 1"],
        );
    }
    // Written as a table, the line of `epsilon` itself.
    let text = with(
        "\n[placements.extra]\nchannels = [\"in_app\"]\n\n[placements.extra.exploration]\nmethod = \"epsilon\"\nepsilon = 1.5\n",
    );
    assert_only(
        &text,
        "placements.extra.exploration.epsilon",
        Some(line_of(&text, "epsilon = 1.5")),
        &["1.5", "between 0 and 1"],
    );
    for epsilon in ["0.0", "1.0"] {
        let text = with(&placement(&format!(
            "channels = [\"in_app\"]\nexploration = {{ method = \"epsilon\", epsilon = {epsilon} }}"
        )));
        Catalog::from_toml(&text).expect("the bounds are valid");
    }
}

#[test]
fn a_non_positive_temperature_is_refused() {
    for (temperature, shown) in [("0.0", "0"), ("-1.0", "-1"), ("inf", "inf"), ("nan", "NaN")] {
        let text = with(&placement(&format!(
            "channels = [\"in_app\"]\nexploration = {{ method = \"softmax\", temperature = {temperature} }}"
        )));
        assert_only(
            &text,
            "placements.extra.exploration.temperature",
            Some(line_of(&text, "exploration = ")),
            &[shown, "must be a positive number"],
        );
    }
}

// ── Caps ────────────────────────────────────────────────────────────────────

#[test]
fn a_cap_with_a_zero_limit_is_refused() {
    let text = with(&cap("scope = \"total\"\nlimit = 0\nwindow = \"7d\""));
    assert_only(
        &text,
        "caps[0].limit",
        Some(line_of(&text, "limit = 0")),
        &["at least 1"],
    );
}

#[test]
fn a_cap_with_a_bad_window_is_refused() {
    let text = with(&cap("scope = \"total\"\nlimit = 3\nwindow = \"a week\""));
    assert_only(
        &text,
        "caps[0].window",
        Some(line_of(&text, "window = \"a week\"")),
        &["'a week'"],
    );
}

#[test]
fn a_scoped_cap_without_its_target_is_refused() {
    // The target is missing, so the cap's table is the place to add it.
    for scope in ["channel", "action", "category"] {
        let text = with(&cap(&format!(
            "scope = \"{scope}\"\nlimit = 3\nwindow = \"7d\""
        )));
        assert_only(
            &text,
            &format!("caps[0].{scope}"),
            Some(line_of(&text, "[[caps]]")),
            &[&format!("scope '{scope}' needs `{scope} = \"...\"`")],
        );
    }
}

#[test]
fn a_cap_on_an_unknown_channel_is_refused() {
    let text = with(&cap(
        "scope = \"channel\"\nchannel = \"fax\"\nlimit = 3\nwindow = \"7d\"",
    ));
    assert_only(
        &text,
        "caps[0].channel",
        Some(line_of(&text, "channel = \"fax\"")),
        &["channel 'fax'", "not declared in [channels]"],
    );
}

#[test]
fn a_cap_on_an_unknown_action_is_refused() {
    let text = with(&cap(
        "scope = \"action\"\naction = \"ghost\"\nlimit = 3\nwindow = \"7d\"",
    ));
    assert_only(
        &text,
        "caps[0].action",
        Some(line_of(&text, "action = \"ghost\"")),
        &["action 'ghost'", "not in [[actions]]"],
    );
}

#[test]
fn a_cap_on_an_unknown_category_is_refused() {
    let text = with(&cap(
        "scope = \"category\"\ncategory = \"upsell\"\nlimit = 3\nwindow = \"7d\"",
    ));
    assert_only(
        &text,
        "caps[0].category",
        Some(line_of(&text, "category = \"upsell\"")),
        &["no action has category 'upsell'"],
    );
}

#[test]
fn caps_are_numbered_by_position() {
    let text = with(&format!(
        "{}{}",
        cap("scope = \"total\"\nlimit = 3\nwindow = \"7d\""),
        cap("scope = \"total\"\nlimit = 0\nwindow = \"7d\"")
    ));
    assert_only(
        &text,
        "caps[1].limit",
        Some(line_of(&text, "limit = 0")),
        &["at least 1"],
    );
}

// ── Blackouts, levers, segments ─────────────────────────────────────────────

#[test]
fn a_blackout_with_a_bad_date_is_refused() {
    // On one line and one date a line: each bad date on its own line.
    for dates in [
        "[\"2026-12-25\", \"2026-13-01\", \"25/12/2026\"]",
        "[\n  \"2026-12-25\",\n  \"2026-13-01\",\n  \"25/12/2026\",\n]",
    ] {
        let text = with(&format!(
            "\n[[blackouts]]\nname = \"xmas\"\ndates = {dates}\n"
        ));
        let found = problems(&text);
        assert_eq!(found.len(), 2, "{found:#?}");
        for (problem, date) in found.iter().zip(["2026-13-01", "25/12/2026"]) {
            assert_problem(
                problem,
                "blackouts[0].dates",
                Some(line_of(&text, &format!("\"{date}\""))),
                &[&format!("'{date}'"), "not a date like 2026-12-25"],
            );
        }
    }
}

#[test]
fn a_blackout_on_an_unknown_channel_is_refused() {
    let text = with("\n[[blackouts]]\ndates = [\"2026-12-25\"]\nchannels = [\"email\", \"fax\"]\n");
    assert_only(
        &text,
        "blackouts[0].channels",
        Some(line_of(&text, "channels = [\"email\", \"fax\"]")),
        &["channel 'fax'", "not declared in [channels]"],
    );
}

#[test]
fn a_bad_category_lever_is_refused() {
    for (lever, shown) in [("0.0", "0"), ("-1.0", "-1"), ("nan", "NaN"), ("inf", "inf")] {
        let text = with(&format!("\n[levers.categories]\ntips = {lever}\n"));
        assert_only(
            &text,
            "levers.categories.tips",
            Some(line_of(&text, "tips = ")),
            &[shown, "must be a positive number"],
        );
    }
    let text = with("\n[levers.categories]\ntips = 1.5\n");
    let catalog = Catalog::from_toml(&text).expect("a positive lever is valid");
    let tip = catalog.action("tip").expect("declared");
    assert_eq!(catalog.lever(tip), 1.5);
}

#[test]
fn a_segment_with_an_empty_name_is_refused() {
    let text = with("\n[[segments]]\nname = \"\"\nrule = \"true\"\nactions = [\"tip\"]\n");
    assert_only(
        &text,
        "segments[0].name",
        Some(line_of(&text, "name = \"\"")),
        &["must not be empty"],
    );
}

#[test]
fn a_segment_with_an_unknown_action_is_refused() {
    let text =
        with("\n[[segments]]\nname = \"new\"\nrule = \"true\"\nactions = [\"tip\", \"ghost\"]\n");
    assert_only(
        &text,
        "segments[0].actions",
        Some(line_of(&text, "actions = [\"tip\", \"ghost\"]")),
        &["action 'ghost'", "not in [[actions]]"],
    );
}

#[test]
fn a_segment_with_a_bad_rule_is_refused() {
    let text =
        with("\n[[segments]]\nname = \"new\"\nrule = \"profile.plan ==\"\nactions = [\"tip\"]\n");
    assert_only(
        &text,
        "segments[0].rule",
        Some(line_of(&text, "rule = \"profile.plan ==\"")),
        &["invalid CEL rule"],
    );
}

// ── Everything at once ──────────────────────────────────────────────────────

#[test]
fn every_problem_in_a_file_is_reported_together() {
    let text = with(&format!(
        "{}{}{}{}{}",
        "\n[[actions]]\nid = \"extra\"\nchannel = \"fax\"\ncategory = \"tips\"\n",
        placement("channels = [\"in_app\"]\nslots = 0"),
        cap("scope = \"action\"\naction = \"ghost\"\nlimit = 0\nwindow = \"7d\""),
        "\n[[blackouts]]\ndates = [\"someday\"]\n",
        "\n[levers.categories]\ntips = 0.0\n",
    ))
    .replace(
        "name = \"validation\"",
        "name = \"validation\"\ntimezone = \"Nowhere\"",
    );
    let found = problems(&text);
    let fields: Vec<&str> = found.iter().map(|problem| problem.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "catalog.timezone",
            "actions[2].channel",
            "placements.extra.slots",
            "caps[0].limit",
            "caps[0].action",
            "blackouts[0].dates",
            "levers.categories.tips",
        ],
        "{found:#?}"
    );
    let lines: Vec<Option<u32>> = found.iter().map(|problem| problem.line).collect();
    assert_eq!(
        lines,
        [
            "timezone = ",
            "channel = \"fax\"",
            "slots = 0",
            "limit = 0",
            "action = \"ghost\"",
            "dates = ",
            "tips = 0.0",
        ]
        .map(|needle| Some(line_of(&text, needle))),
        "{found:#?}"
    );
    // The error's text lists them all, each with its line.
    let error = Catalog::from_toml(&text).expect_err("refused").to_string();
    assert_eq!(error.matches("; ").count(), found.len() - 1, "{error}");
    assert!(
        error.starts_with("line 3: catalog.timezone: 'Nowhere'"),
        "the timezone's line comes first: {error}"
    );
    assert!(
        error.contains(&format!(
            "line {}: actions[2].channel: channel 'fax'",
            found[1].line.expect("has a line")
        )),
        "{error}"
    );
    // The domain error wraps them.
    let wrapped = nudge_models::Error::from(Catalog::from_toml(&text).expect_err("refused"));
    assert!(wrapped.to_string().starts_with("invalid catalog: "));
}

/// A journey `j` triggered by `login`, with `head` lines in its table and
/// `steps` (TOML `[[journeys.steps]]` tables) after it.
fn journey(head: &str, steps: &str) -> String {
    with(&format!(
        "\n[[journeys]]\nid = \"j\"\ntrigger = {{ event = \"login\" }}\n{head}\n{steps}"
    ))
}

/// One `[[journeys.steps]]` table with this body.
fn step(body: &str) -> String {
    format!("\n[[journeys.steps]]\n{body}\n")
}

#[test]
fn a_valid_journey_compiles_with_its_channels_and_references() {
    let text = journey(
        "priority = 3\ngoals = [{ event = \"purchase\", when = \"event.amount > 10.0\" }]",
        &[
            step("id = \"hello\"\nsend = { action = \"promo_mail\" }\non_blocked = \"bye\""),
            step("id = \"pause\"\nwait = \"2d\""),
            step("id = \"check\"\nbranch = [{ when = \"profile.count_7d.login > 2\", goto = \"bye\" }]\nelse = \"end\""),
            step("id = \"bye\"\nsend = { placement = \"home\" }"),
        ]
        .concat(),
    );
    let catalog = Catalog::from_toml(&text).expect("valid");
    let journey = &catalog.journeys[0];
    assert_eq!(
        (journey.id.as_ref(), journey.version, journey.priority),
        ("j", 1, 3)
    );
    assert_eq!(
        journey
            .channels
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["email", "in_app"]
    );
    assert_eq!(journey.steps.len(), 4);
    assert_eq!(catalog.journey_policy.max_concurrent, 3, "the default");
}

#[test]
fn a_step_reference_must_name_a_step_of_its_journey() {
    let text = journey("", &step("id = \"a\"\nwait = \"1d\"\nnext = \"nowhere\""));
    assert_only(
        &text,
        "journeys[0].steps[0].next",
        Some(line_of(&text, "next = \"nowhere\"")),
        &["'nowhere'", "not a step", "a"],
    );
}

#[test]
fn a_cycle_of_steps_without_a_wait_is_refused() {
    let text = journey(
        "",
        &[
            step("id = \"a\"\nsend = { action = \"tip\" }"),
            step("id = \"b\"\nupdate = { seen = true }\nnext = \"a\""),
        ]
        .concat(),
    );
    assert_only(
        &text,
        "journeys[0].steps",
        Some(line_of(&text, "[[journeys]]")),
        &["a → b → a", "without a `wait`"],
    );
    // Through a wait it is a loop a run can live in.
    let waiting = journey(
        "",
        &[
            step("id = \"a\"\nsend = { action = \"tip\" }"),
            step("id = \"b\"\nwait = \"7d\"\nnext = \"a\""),
        ]
        .concat(),
    );
    Catalog::from_toml(&waiting).expect("a cycle through a wait is valid");
}

#[test]
fn a_step_does_exactly_one_thing() {
    let text = journey(
        "",
        &step("id = \"a\"\nwait = \"1d\"\nsend = { action = \"tip\" }"),
    );
    assert_only(
        &text,
        "journeys[0].steps[0]",
        Some(line_of(&text, "[[journeys.steps]]")),
        &["send and wait"],
    );
    let text = journey("", &step("id = \"a\""));
    assert_only(
        &text,
        "journeys[0].steps[0]",
        Some(line_of(&text, "[[journeys.steps]]")),
        &["needs one of"],
    );
}

#[test]
fn a_send_names_a_known_action_or_placement() {
    let text = journey("", &step("id = \"a\"\nsend = { action = \"ghost\" }"));
    assert_only(
        &text,
        "journeys[0].steps[0].send.action",
        Some(line_of(&text, "send = ")),
        &["'ghost'", "not an action"],
    );
    let text = journey(
        "",
        &step("id = \"a\"\nsend = { action = \"tip\", placement = \"home\" }"),
    );
    assert_only(
        &text,
        "journeys[0].steps[0].send",
        Some(line_of(&text, "send = ")),
        &["one `action` or one `placement`"],
    );
}

#[test]
fn journey_rules_read_only_their_variables() {
    let text = journey(
        "",
        &step("id = \"a\"\nbranch = [{ when = \"context.page == 'home'\", goto = \"end\" }]"),
    );
    assert_only(
        &text,
        "journeys[0].steps[0].branch[0].when",
        Some(line_of(&text, "branch = ")),
        &["reads context", "profile"],
    );
    let text = with(
        "\n[[journeys]]\nid = \"j\"\ntrigger = { event = \"login\", when = \"action.value > 1.0\" }\n[[journeys.steps]]\nid = \"a\"\nwait = \"1d\"\n",
    );
    assert_only(
        &text,
        "journeys[0].trigger.when",
        Some(line_of(&text, "trigger = ")),
        &["reads action", "profile and event"],
    );
}

#[test]
fn keys_that_belong_to_another_kind_of_step_are_refused() {
    let text = journey("", &step("id = \"a\"\nwait = \"1d\"\nelse = \"end\""));
    assert_only(
        &text,
        "journeys[0].steps[0].else",
        Some(line_of(&text, "[[journeys.steps]]")),
        &["only a branch step"],
    );
}

#[test]
fn ids_durations_times_and_weights_are_checked() {
    let text = journey(
        "reentry_after = \"soon\"",
        &[
            step("id = \"a\"\nwait_until = \"25:00\""),
            step("id = \"a\"\nsplit = [{ weight = 0, goto = \"end\" }, { weight = 1, goto = \"end\" }]"),
            step("id = \"end\"\nexit = true"),
        ]
        .concat(),
    );
    let found = problems(&text);
    let fields: Vec<&str> = found.iter().map(|problem| problem.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "journeys[0].reentry_after",
            "journeys[0].steps[1].id",
            "journeys[0].steps[2].id",
            "journeys[0].steps[0].wait_until",
            "journeys[0].steps[1].split[0].weight",
        ],
        "{found:#?}"
    );
    assert!(found[2].message.contains("reserved"));
    assert!(found[3].message.contains("09:00"));
}

#[test]
fn two_journeys_may_not_share_an_id_and_the_policy_is_bounded() {
    let text = format!(
        "{}\n[[journeys]]\nid = \"j\"\ntrigger = {{ event = \"login\" }}\n[[journeys.steps]]\nid = \"a\"\nwait = \"1d\"\n\n[journey_policy]\nmax_concurrent = 0\n",
        journey("", &step("id = \"a\"\nwait = \"1d\""))
    );
    let found = problems(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_problem(
        &found[0],
        "journey_policy.max_concurrent",
        Some(line_of(&text, "max_concurrent")),
        &["1..=100"],
    );
    assert_problem(
        &found[1],
        "journeys[1].id",
        Some(line_of(&text, "id = \"j\"")),
        &["journeys[0]"],
    );
}

#[test]
fn a_sends_failover_names_actions_on_other_channels_and_only_with_an_action() {
    let valid = journey(
        "",
        &step("id = \"a\"\nsend = { action = \"tip\", failover = [\"promo_mail\"] }"),
    );
    let catalog = Catalog::from_toml(&valid).expect("valid");
    assert_eq!(
        catalog
            .placement("journey/j")
            .map(|placement| placement.fallback.clone()),
        Some(vec!["tip".to_owned(), "promo_mail".to_owned()]),
        "the failover actions can go without a model too"
    );

    let unknown = journey(
        "",
        &step("id = \"a\"\nsend = { action = \"tip\", failover = [\"fax_blast\"] }"),
    );
    assert_only(
        &unknown,
        "journeys[0].steps[0].send.failover[0]",
        Some(line_of(&unknown, "failover")),
        &["'fax_blast'", "not an action"],
    );
    let same_channel = journey(
        "",
        &step("id = \"a\"\nsend = { action = \"promo_mail\", failover = [\"promo_mail\"] }"),
    );
    assert_only(
        &same_channel,
        "journeys[0].steps[0].send.failover[0]",
        Some(line_of(&same_channel, "failover")),
        &["on email", "another channel"],
    );
    let with_placement = journey(
        "",
        &step("id = \"a\"\nsend = { placement = \"home\", failover = [\"promo_mail\"] }"),
    );
    assert_only(
        &with_placement,
        "journeys[0].steps[0].send.failover",
        Some(line_of(&with_placement, "failover")),
        &["placement", "goes with `action`"],
    );
}
