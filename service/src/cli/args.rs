//! The arguments of each client subcommand, the enum names they accept, and the
//! gRPC requests they build.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use nudge_proto::v1::{
    ConsentState, DecideRequest, Event, ExportDecisionsRequest, ForgetRequest, GetProfileRequest,
    ReloadCatalogRequest, ReportOutcomeRequest, SetConsentRequest, SuppressRequest,
    SuppressionReason, UnsuppressRequest,
};
use prost_types::Timestamp;

use nudge_models::ledger::OutcomeKind;

use super::export::ExportFormat;
use super::names::rfc3339;
use super::parse::{
    KeyValue, TimeBound, into_map, parse_finite, parse_interval, parse_key_value, parse_time_bound,
    parse_timestamp,
};

/// Arguments of `nudge decide`.
#[derive(Debug, Clone, clap::Args)]
pub struct DecideArgs {
    /// The customer to decide for.
    #[arg(long, value_name = "ID")]
    pub customer: String,
    /// The placement id from the catalog, e.g. home_banner.
    #[arg(long, value_name = "P")]
    pub placement: String,
    /// A request context entry, visible to rules as context.KEY (repeatable).
    /// true/false is a bool, a number is a number, else a string; KEY:s=VALUE
    /// forces a string.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub context: Vec<KeyValue>,
    /// Only consider this action (repeatable). Default: every active action the
    /// placement allows.
    #[arg(long = "candidate", value_name = "ACTION_ID")]
    pub candidates: Vec<String>,
    /// How many actions to serve; 0 means the placement's number of slots.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub limit: u32,
    /// List every candidate not served with its reason, instead of counts.
    #[arg(long)]
    pub explain: bool,
    /// Evaluate everything but record nothing (no cap slot, no ledger entry).
    #[arg(long)]
    pub dry_run: bool,
}

impl DecideArgs {
    /// The `Decide` request these arguments describe.
    pub fn request(&self) -> anyhow::Result<DecideRequest> {
        Ok(DecideRequest {
            customer_id: self.customer.clone(),
            placement: self.placement.clone(),
            context: into_map(&self.context, "--context")?,
            candidate_action_ids: self.candidates.clone(),
            limit: self.limit,
            dry_run: self.dry_run,
            explain: self.explain,
            request_id: String::new(),
        })
    }
}

/// Arguments of `nudge track`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrackArgs {
    /// The customer the event is about.
    #[arg(long, value_name = "ID")]
    pub customer: String,
    /// The event name, e.g. page_view; "identify" sets profile attributes.
    #[arg(long, value_name = "NAME")]
    pub event: String,
    /// The event's idempotency key. Default: a fresh UUID v4.
    #[arg(long = "id", value_name = "EVENT_ID")]
    pub event_id: Option<String>,
    /// An event property (repeatable), typed like --context of decide.
    #[arg(long = "prop", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub props: Vec<KeyValue>,
    /// When it happened, RFC 3339 (e.g. 2024-05-01T10:00:00Z). Default: now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    pub at: Option<Timestamp>,
}

impl TrackArgs {
    /// The event to track; a missing id or time is filled with a fresh UUID v4
    /// and the current time.
    pub fn event(&self) -> anyhow::Result<Event> {
        Ok(Event {
            customer_id: self.customer.clone(),
            event_id: self
                .event_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            name: self.event.clone(),
            timestamp: Some(
                self.at
                    .unwrap_or_else(|| Timestamp::from(std::time::SystemTime::now())),
            ),
            properties: into_map(&self.props, "--prop")?,
        })
    }
}

/// Arguments of `nudge outcome`.
#[derive(Debug, Clone, clap::Args)]
pub struct OutcomeArgs {
    /// The customer the decision was about.
    #[arg(long, value_name = "ID")]
    pub customer: String,
    /// The decision id returned by decide.
    #[arg(long, value_name = "ID")]
    pub decision: String,
    /// The served action the outcome is about.
    #[arg(long, value_name = "ID")]
    pub action: String,
    /// What happened.
    #[arg(long, value_parser = outcome_parser())]
    pub outcome: OutcomeKind,
    /// Optional reward, e.g. the revenue of a conversion.
    #[arg(long, value_name = "X", value_parser = parse_finite, allow_negative_numbers = true)]
    pub reward: Option<f64>,
    /// For a journey's dispatch: the attempt the outcome is about (its
    /// dispatch id).
    #[arg(long, value_name = "ID")]
    pub dispatch: Option<String>,
}

impl OutcomeArgs {
    /// The `ReportOutcome` request; the server stamps the time.
    pub fn request(&self) -> ReportOutcomeRequest {
        ReportOutcomeRequest {
            customer_id: self.customer.clone(),
            decision_id: self.decision.clone(),
            action_id: self.action.clone(),
            outcome: crate::convert::outcome_to_proto(self.outcome) as i32,
            reward: self.reward,
            timestamp: None,
            dispatch_id: self.dispatch.clone().unwrap_or_default(),
        }
    }
}

/// Arguments of `nudge consent`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsentArgs {
    /// The customer whose consent is recorded.
    #[arg(long, value_name = "ID")]
    pub customer: String,
    /// A channel declared in the catalog, e.g. sms.
    #[arg(long, value_name = "C")]
    pub channel: String,
    /// The customer's choice for the channel.
    #[arg(long, value_enum)]
    pub state: ConsentArg,
}

impl ConsentArgs {
    /// The `SetConsent` request.
    pub fn request(&self) -> SetConsentRequest {
        SetConsentRequest {
            customer_id: self.customer.clone(),
            channel: self.channel.clone(),
            state: ConsentState::from(self.state) as i32,
        }
    }
}

/// Arguments of `nudge suppress`.
#[derive(Debug, Clone, clap::Args)]
pub struct SuppressArgs {
    /// The customer to suppress.
    #[arg(long, value_name = "ID")]
    pub customer: String,
    /// The channel to suppress. Default: every channel.
    #[arg(long, value_name = "C")]
    pub channel: Option<String>,
    /// Why the customer is suppressed.
    #[arg(long, value_enum)]
    pub reason: SuppressionReasonArg,
    /// A free-text note, e.g. a ticket number.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

impl SuppressArgs {
    /// The `Suppress` request.
    pub fn request(&self) -> SuppressRequest {
        SuppressRequest {
            customer_id: self.customer.clone(),
            channel: self.channel.clone().unwrap_or_default(),
            reason: SuppressionReason::from(self.reason) as i32,
            note: self.note.clone().unwrap_or_default(),
        }
    }
}

/// Arguments of `nudge unsuppress`.
#[derive(Debug, Clone, clap::Args)]
pub struct UnsuppressArgs {
    /// The customer whose suppression to lift.
    #[arg(long, value_name = "ID")]
    pub customer: String,
    /// The channel whose suppression to lift. Default: the all-channel one.
    #[arg(long, value_name = "C")]
    pub channel: Option<String>,
    /// The reason to lift. Default: every reason on that channel.
    #[arg(long, value_enum)]
    pub reason: Option<SuppressionReasonArg>,
}

impl UnsuppressArgs {
    /// The `Unsuppress` request.
    pub fn request(&self) -> UnsuppressRequest {
        UnsuppressRequest {
            customer_id: self.customer.clone(),
            channel: self.channel.clone().unwrap_or_default(),
            reason: self
                .reason
                .map_or(SuppressionReason::Unspecified, SuppressionReason::from)
                as i32,
        }
    }
}

/// Arguments of `nudge profile`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProfileArgs {
    /// The customer whose live profile to show.
    #[arg(value_name = "ID")]
    pub customer: String,
}

impl ProfileArgs {
    /// The `GetProfile` request.
    pub fn request(&self) -> GetProfileRequest {
        GetProfileRequest {
            customer_id: self.customer.clone(),
        }
    }
}

/// Arguments of `nudge forget`.
#[derive(Debug, Clone, clap::Args)]
pub struct ForgetArgs {
    /// The customer to erase: state, consent, suppressions, contacts, and
    /// their decisions and outcomes in the decision log.
    #[arg(value_name = "ID")]
    pub customer: String,
}

impl ForgetArgs {
    /// The `Forget` request.
    pub fn request(&self) -> ForgetRequest {
        ForgetRequest {
            customer_id: self.customer.clone(),
        }
    }
}

/// Arguments of `nudge export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The file to write. It appears only once complete: rows go to a
    /// temporary file beside it, renamed over FILE at the end.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Only decisions made at or after TIME: RFC 3339
    /// (2026-11-01T00:00:00Z), a date (2026-11-01, midnight UTC) or an age
    /// (7d, 12h: that long before now). Default: the oldest logged.
    #[arg(long, value_name = "TIME", value_parser = parse_time_bound)]
    pub since: Option<TimeBound>,
    /// Only decisions made before TIME (same forms as --since). Default: now.
    #[arg(long, value_name = "TIME", value_parser = parse_time_bound)]
    pub until: Option<TimeBound>,
    /// The file format. Default: from the extension of FILE (.jsonl or
    /// .ndjson: jsonl), else parquet.
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,
    /// Read the decision log from this data directory (of a stopped server,
    /// or a copy of one) instead of asking the running server.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Export the event log instead: every applied event, customer by
    /// customer, numbered from 1 (--since/--until bound the time each was
    /// applied). `nudge train --events` replays it for point-in-time
    /// features.
    #[arg(long)]
    pub events: bool,
}

impl ExportArgs {
    /// The `ExportDecisions` request, with ages counted back from `now`;
    /// refuses an empty range.
    pub fn request(&self, now: DateTime<Utc>) -> anyhow::Result<ExportDecisionsRequest> {
        let since = self.since.map(|bound| bound.resolve(now));
        let until = self.until.map(|bound| bound.resolve(now));
        if let (Some(since), Some(until)) = (&since, &until)
            && (since.seconds, since.nanos) >= (until.seconds, until.nanos)
        {
            anyhow::bail!(
                "--since {} is not before --until {}: the range is empty",
                rfc3339(since),
                rfc3339(until)
            );
        }
        Ok(ExportDecisionsRequest { since, until })
    }

    /// The format to write: `--format`, else the one FILE's extension names.
    pub fn format(&self) -> ExportFormat {
        self.format
            .unwrap_or_else(|| ExportFormat::from_path(&self.out))
    }
}

/// Arguments of `nudge reload`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReloadArgs {
    /// The catalog TOML file to load. Default: the server re-reads the file it
    /// was started with.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

impl ReloadArgs {
    /// The `ReloadCatalog` request, with the file's text (empty without a file).
    pub fn request(&self) -> anyhow::Result<ReloadCatalogRequest> {
        let toml = match &self.file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("could not read catalog file {}", path.display()))?,
            None => String::new(),
        };
        if self.file.is_some() && toml.trim().is_empty() {
            anyhow::bail!(
                "catalog file {} is empty; run `nudge reload` without FILE to make the server re-read its own file",
                self.file
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display()
            );
        }
        Ok(ReloadCatalogRequest { toml })
    }
}

/// Arguments of `nudge stats`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatsArgs {
    /// Print one snapshot and exit, even on a terminal. Without a terminal
    /// (a pipe, a file) or with --json, one snapshot is all it prints anyway.
    #[arg(long)]
    pub once: bool,
    /// Seconds between two refreshes of the live view, e.g. 1 or 0.5.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_interval)]
    pub interval: Duration,
}

impl Default for StatsArgs {
    fn default() -> Self {
        Self {
            once: false,
            interval: Duration::from_secs(1),
        }
    }
}

impl StatsArgs {
    /// Whether to redraw live: text for a terminal, without `--once`.
    pub fn live(&self, json: bool, terminal: bool) -> bool {
        terminal && !json && !self.once
    }
}

/// The parser of an outcome on the command line: one of the domain's
/// outcome kinds by name, each listed with its meaning in `--help`.
fn outcome_parser() -> impl clap::builder::TypedValueParser<Value = OutcomeKind> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
    PossibleValuesParser::new(
        OutcomeKind::ALL.map(|kind| PossibleValue::new(kind.name()).help(kind.meaning())),
    )
    .try_map(|name| {
        OutcomeKind::from_name(&name).ok_or_else(|| format!("'{name}' is not an outcome"))
    })
}

/// A consent state as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsentArg {
    /// The customer opted in to the channel.
    #[value(alias = "opted_in")]
    OptedIn,
    /// The customer opted out of the channel.
    #[value(alias = "opted_out")]
    OptedOut,
    /// Forget the choice: the channel's catalog default applies.
    Unset,
}

impl From<ConsentArg> for ConsentState {
    fn from(arg: ConsentArg) -> Self {
        match arg {
            ConsentArg::OptedIn => Self::OptedIn,
            ConsentArg::OptedOut => Self::OptedOut,
            ConsentArg::Unset => Self::Unspecified,
        }
    }
}

/// A suppression reason as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SuppressionReasonArg {
    /// Messages to the customer bounced.
    Bounce,
    /// The customer complained.
    Complaint,
    /// A legal hold.
    Legal,
    /// Suppressed by hand.
    Manual,
}

impl From<SuppressionReasonArg> for SuppressionReason {
    fn from(arg: SuppressionReasonArg) -> Self {
        match arg {
            SuppressionReasonArg::Bounce => Self::Bounce,
            SuppressionReasonArg::Complaint => Self::Complaint,
            SuppressionReasonArg::Legal => Self::Legal,
            SuppressionReasonArg::Manual => Self::Manual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn enum_names_parse() {
        use clap::builder::TypedValueParser as _;
        let command = clap::Command::new("nudge");
        let parse = |text: &str| outcome_parser().parse_ref(&command, None, text.as_ref());
        assert_eq!(parse("click").ok(), Some(OutcomeKind::Click));
        assert!(parse("clicked").is_err());
        for kind in OutcomeKind::ALL {
            assert_eq!(parse(kind.name()).ok(), Some(kind), "every kind parses");
        }
        assert_eq!(
            ConsentArg::from_str("opted-in", false),
            Ok(ConsentArg::OptedIn)
        );
        assert_eq!(
            ConsentArg::from_str("opted_out", false),
            Ok(ConsentArg::OptedOut)
        );
        assert_eq!(ConsentArg::from_str("unset", false), Ok(ConsentArg::Unset));
        assert_eq!(
            SuppressionReasonArg::from_str("legal", false),
            Ok(SuppressionReasonArg::Legal)
        );
    }

    #[test]
    fn enum_args_map_to_proto_codes() {
        assert_eq!(
            crate::convert::outcome_to_proto(OutcomeKind::Failed),
            nudge_proto::v1::Outcome::Failed
        );
        assert_eq!(
            ConsentState::from(ConsentArg::Unset),
            ConsentState::Unspecified
        );
        assert_eq!(
            SuppressionReason::from(SuppressionReasonArg::Complaint),
            SuppressionReason::Complaint
        );
        let lift_all = UnsuppressArgs {
            customer: "c".into(),
            channel: None,
            reason: None,
        };
        let request = lift_all.request();
        assert_eq!(request.reason, SuppressionReason::Unspecified as i32);
        assert_eq!(request.channel, "");
    }

    #[test]
    fn track_fills_id_and_time() {
        let args = TrackArgs {
            customer: "c-1".into(),
            event: "page_view".into(),
            event_id: None,
            props: vec![parse_key_value("page=pricing").expect("valid")],
            at: None,
        };
        let event = args.event().expect("valid event");
        assert!(uuid::Uuid::parse_str(&event.event_id).is_ok());
        assert!(event.timestamp.is_some());
        assert_eq!(event.properties.len(), 1);
    }

    #[test]
    fn stats_is_live_only_as_text_on_a_terminal() {
        let args = StatsArgs::default();
        assert!(args.live(false, true));
        assert!(!args.live(true, true), "--json prints one snapshot");
        assert!(!args.live(false, false), "not a terminal: one snapshot");
        let once = StatsArgs {
            once: true,
            ..StatsArgs::default()
        };
        assert!(!once.live(false, true));
    }

    #[test]
    fn export_resolves_bounds_and_refuses_an_empty_range() {
        let now = DateTime::<Utc>::from_timestamp(1_793_491_200 + 7 * 86_400, 0)
            .expect("valid test time");
        let args = ExportArgs {
            data_dir: None,
            out: PathBuf::from("decisions.parquet"),
            since: Some(parse_time_bound("7d").expect("an age")),
            until: Some(parse_time_bound("2026-11-08").expect("a date")),
            format: None,
            events: false,
        };
        let request = args.request(now).expect("a valid range");
        assert_eq!(request.since.map(|t| t.seconds), Some(1_793_491_200));
        assert_eq!(
            request.until.map(|t| t.seconds),
            Some(1_793_491_200 + 7 * 86_400)
        );
        let open = ExportArgs {
            since: None,
            until: None,
            ..args.clone()
        };
        assert_eq!(
            open.request(now).expect("no bounds"),
            ExportDecisionsRequest::default()
        );
        let backwards = ExportArgs {
            since: Some(parse_time_bound("2026-11-08").expect("a date")),
            until: Some(parse_time_bound("2026-11-01").expect("a date")),
            ..args.clone()
        };
        let err = backwards.request(now).expect_err("empty range");
        assert!(
            err.to_string()
                .contains("--since 2026-11-08T00:00:00Z is not before --until"),
            "{err}"
        );
        assert_eq!(args.format(), ExportFormat::Parquet);
        let jsonl = ExportArgs {
            out: PathBuf::from("out/decisions.ndjson"),
            ..args.clone()
        };
        assert_eq!(jsonl.format(), ExportFormat::Jsonl);
        let forced = ExportArgs {
            format: Some(ExportFormat::Parquet),
            ..jsonl
        };
        assert_eq!(forced.format(), ExportFormat::Parquet);
    }

    #[test]
    fn forget_names_the_customer() {
        let request = ForgetArgs {
            customer: "c-9".into(),
        }
        .request();
        assert_eq!(request.customer_id, "c-9");
    }

    #[test]
    fn reload_without_file_sends_empty_toml() {
        let request = ReloadArgs { file: None }
            .request()
            .expect("no file to read");
        assert!(request.toml.is_empty());
        let missing = ReloadArgs {
            file: Some(PathBuf::from("/definitely/not/here.toml")),
        };
        let err = missing.request().expect_err("file is missing");
        assert!(
            err.to_string().contains("/definitely/not/here.toml"),
            "{err}"
        );
    }
}
