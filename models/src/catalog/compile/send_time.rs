//! `[send_time]` into [`SendTimeSettings`]: its channels declared, its
//! window and prior strength in range.

use super::Checker;
use crate::catalog::Channel;
use crate::catalog::file::CatalogFile;
use crate::send_time::best::MAX_SEARCH;
use crate::send_time::estimate::SendTimePolicy;
use crate::send_time::settings::SendTimeSettings;
use std::collections::BTreeMap;

/// The file's `[send_time]`, if it has one.
pub(super) fn compile_send_time(
    checker: &mut Checker<'_>,
    file: &CatalogFile,
    channels: &BTreeMap<String, Channel>,
) -> Option<SendTimeSettings> {
    let def = file.send_time.as_ref()?;
    let table = def.span();
    let def = def.get_ref();
    let mut settings = SendTimeSettings {
        channels: Vec::new(),
        engagement_events: def
            .engagement_events
            .iter()
            .map(|event| event.get_ref().clone())
            .collect(),
        policy: SendTimePolicy::default(),
    };
    if def.channels.get_ref().is_empty() {
        checker.report(
            "send_time.channels",
            Some(&def.channels.span()),
            "name the outbound channels that get a suggested send time, e.g. [\"email\", \"push\"]",
        );
    }
    for (position, channel) in def.channels.get_ref().iter().enumerate() {
        let id = channel.get_ref();
        if !channels.contains_key(id) {
            checker.report(
                format!("send_time.channels[{position}]"),
                Some(&channel.span()),
                format!("channel '{id}' is not declared in [channels]"),
            );
        }
        settings.channels.push(id.clone());
    }
    for (position, event) in def.engagement_events.iter().enumerate() {
        if event.get_ref().trim().is_empty() {
            checker.report(
                format!("send_time.engagement_events[{position}]"),
                Some(&event.span()),
                "must not be empty",
            );
        }
    }
    if let Some(window) = checker.span_field("send_time.window", def.window.as_ref()) {
        if window.millis() <= 0 || window > MAX_SEARCH {
            checker.report(
                "send_time.window",
                def.window.as_ref().map(|window| window.span()).as_ref(),
                format!("must be more than 0 and at most {MAX_SEARCH}"),
            );
        }
        settings.policy.window = window;
    }
    if let Some(strength) = &def.prior_strength {
        settings.policy.prior_strength = *strength.get_ref();
    }
    if let Err(message) = settings.policy.validate() {
        let span = def
            .prior_strength
            .as_ref()
            .map_or(table, |strength| strength.span());
        checker.report("send_time.prior_strength", Some(&span), message);
    }
    Some(settings)
}
