#!/usr/bin/env python3
"""The Python peer of `nudge-bench load`: the obvious alternative to nudge.

A grpcio server wrapping a scikit-learn model, on nudge's own proto
(`nudge.v1`), doing the work nudge does for the load bench's synthetic
catalog (see README.md): per-customer profile and contact ledger in process
memory, hard filters and frequency caps, a 64-feature matrix per decision,
`LogisticRegression.predict_proba`, P·V·L·C ranking with 5 % epsilon
exploration, and the served actions recorded in the ledger.

    python peer_server.py --listen 127.0.0.1:50151 [--workers 10]

Serves nudge.v1.Decisions/Decide and ReportOutcome, nudge.v1.Events/Track and
grpc.health.v1.Health/Check. Nothing is written to disk: a restart forgets
everything.
"""

from __future__ import annotations

import argparse
import collections
import logging
import math
import os
import random
import signal
import sys
import threading
import time
import uuid
from concurrent import futures
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "gen")
PROTO = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))


def ensure_stubs() -> None:
    """Generates the nudge.v1 stubs into ./gen when missing or older than the
    protos (what gen.sh does), and puts ./gen on the import path."""
    proto_dir = os.path.join(PROTO, "nudge", "v1")
    protos = sorted(
        os.path.join(proto_dir, name) for name in os.listdir(proto_dir) if name.endswith(".proto")
    )
    marker = os.path.join(GEN, "nudge", "v1", "events_pb2_grpc.py")
    newest = max(os.path.getmtime(path) for path in protos)
    if not os.path.exists(marker) or os.path.getmtime(marker) < newest:
        import importlib.resources

        from grpc_tools import protoc

        os.makedirs(GEN, exist_ok=True)
        well_known = str(importlib.resources.files("grpc_tools") / "_proto")
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO}",
                f"-I{well_known}",
                f"--python_out={GEN}",
                f"--grpc_python_out={GEN}",
                *protos,
            ]
        )
        if status != 0:
            sys.exit(f"protoc failed ({status}) generating stubs from {PROTO}")
    if GEN not in sys.path:
        sys.path.insert(0, GEN)


ensure_stubs()

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from nudge.v1 import decisions_pb2, decisions_pb2_grpc  # noqa: E402
from nudge.v1 import events_pb2, events_pb2_grpc  # noqa: E402

# --------------------------------------------------------------------------
# The synthetic catalog (models/src/synthetic.rs, `catalog_toml(true)`).
# --------------------------------------------------------------------------

CATALOG_VERSION = "synthetic-1"
MODEL_VERSION = "sklearn-logreg-1"
PLACEMENT = "feed"
SLOTS = 3
EPSILON = 0.05
CATEGORIES = ["onboarding", "activation", "upsell", "retention", "education", "winback"]
EVENTS = [
    "page_view",
    "pricing_page_view",
    "login",
    "feature_activated",
    "invite_sent",
    "report_created",
    "integration_connected",
    "payment_failed",
    "support_ticket_opened",
    "email_opened",
    "seat_limit_reached",
    "search",
]
LEVERS = {"retention": 1.2, "education": 0.8}  # [levers.categories]
CONTEXT_WEIGHTS = {"upsell": 1.3}  # the placement's context_weights

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
COUNTER_HORIZON_HOURS = 30 * 24  # event counters keep 30 days of hourly buckets
LEDGER_HORIZON_MS = 7 * DAY_MS  # the longest cap window and the dismiss cooldown
COOLDOWN_MS = DAY_MS
DISMISS_COOLDOWN_MS = 7 * DAY_MS
MAX_DAYS = 365.0  # day-valued features are capped here
NEVER_DAYS = 3_650.0  # days since an event never seen (before the cap)
RECENT_EVENT_IDS = 1_024  # event ids remembered per customer for de-duplication
RATIONALE_SIZE = 3

# Caps: (limit, window) per channel, across channels, and per category.
CHANNEL_CAPS = {"in_app": (5, 7 * DAY_MS), "content": (10, 7 * DAY_MS)}
TOTAL_CAP = (12, 7 * DAY_MS)
CATEGORY_CAPS = {"upsell": (3, 7 * DAY_MS)}

R = decisions_pb2  # FilterReason values
OUTCOME_BITS = {
    R.OUTCOME_IMPRESSION: 1,
    R.OUTCOME_CLICK: 2,
    R.OUTCOME_CONVERSION: 4,
    R.OUTCOME_DISMISS: 8,
    R.OUTCOME_DELIVERED: 16,
    R.OUTCOME_FAILED: 32,
}


# The catalog's eligibility rules (synthetic.rs RULES, one on every fifth
# action), as Python predicates over the rule variables of a decision.
def _rule_login(v):  # profile.count_7d.login >= 1
    return v["count_7d"].get("login", 0) >= 1


def _rule_plan(v):  # has(profile.plan) && profile.plan != "enterprise"
    return "plan" in v["attributes"] and v["attributes"]["plan"] != "enterprise"


def _rule_reports(v):  # profile.days_since_signup < 400.0 && profile.count_30d.report_created > 0
    return v["days_since_signup"] < 400.0 and v["count_30d"].get("report_created", 0) > 0


def _rule_payment(v):  # profile.days_since_payment_failed > 1.0
    return v["days_since_payment_failed"] > 1.0


def _rule_clicks(v):  # engagement.in_app.click_rate < 0.9 || profile.count_7d.search > 2
    return v["click_rate_in_app"] < 0.9 or v["count_7d"].get("search", 0) > 2


RULES = [_rule_login, _rule_plan, _rule_reports, _rule_payment, _rule_clicks]


class Action:
    __slots__ = ("index", "id", "channel", "category", "value", "vlc", "rule", "payload")

    def __init__(self, index: int):
        self.index = index
        self.id = f"action_{index:02d}"
        self.channel = "content" if index % 3 == 0 else "in_app"
        self.category = CATEGORIES[index % len(CATEGORIES)]
        self.value = 1.0 + (index % 7) * 3.5
        # P·V·L·C without the P: value × category lever × placement context weight.
        self.vlc = (
            self.value * LEVERS.get(self.category, 1.0) * CONTEXT_WEIGHTS.get(self.category, 1.0)
        )
        self.rule = RULES[(index // 5) % len(RULES)] if index % 5 == 0 else None
        self.payload = {"title": f"Action {index}"}


ACTIONS = [Action(index) for index in range(50)]
ACTIONS_BY_ID = {action.id: action for action in ACTIONS}

# --------------------------------------------------------------------------
# Features (models/src/synthetic.rs `model_artifact`: the same 64 specs).
#
# Customer terms are computed once per decision into a vector C; action terms
# are a static 50 × 17 matrix S; a candidate's row is C[:25], S[action] and
# 22 crosses S[action, s] × C[c].
# --------------------------------------------------------------------------

# C: the customer and context terms.
C_NAMES = (
    [f"count({e},7d)" for e in EVENTS[:8]]  # 0..7
    + [f"log_count({e},30d)" for e in EVENTS[:8]]  # 8..15
    + [
        "days_since(login)",  # 16
        "days_since(feature_activated)",  # 17
        "tenure_days",  # 18
        "is(plan,trial)",  # 19
        "is(plan,pro)",  # 20
        "attr(seats)",  # 21
        "click_rate(in_app)",  # 22
        "ctx_is(device,mobile)",  # 23
        "ctx(hour)",  # 24
        "count(integration_connected,30d)",  # 25
        "count(support_ticket_opened,30d)",  # 26
        "log_count(page_view,7d)",  # 27
    ]
    + [f"count({e},1d)" for e in EVENTS[:8]]  # 28..35
)
C_INDEX = {name: index for index, name in enumerate(C_NAMES)}
# S: the action terms.
S_NAMES = (
    ["channel(in_app)", "channel(content)", "action_value"]
    + [f"category({c})" for c in CATEGORIES]
    + [f"action(action_{i:02d})" for i in range(8)]
)
S_INDEX = {name: index for index, name in enumerate(S_NAMES)}
CROSSES = [
    ("category(upsell)", "count(pricing_page_view,7d)"),
    ("category(upsell)", "is(plan,trial)"),
    ("category(upsell)", "attr(seats)"),
    ("category(onboarding)", "tenure_days"),
    ("category(onboarding)", "is(plan,trial)"),
    ("category(activation)", "days_since(feature_activated)"),
    ("category(activation)", "count(integration_connected,30d)"),
    ("category(retention)", "days_since(login)"),
    ("category(retention)", "count(support_ticket_opened,30d)"),
    ("category(education)", "log_count(report_created,30d)"),
    ("category(winback)", "days_since(login)"),
    ("channel(in_app)", "ctx_is(device,mobile)"),
    ("channel(in_app)", "click_rate(in_app)"),
    ("channel(content)", "log_count(page_view,7d)"),
] + [("category(upsell)", f"count({e},1d)") for e in EVENTS[:8]]
CROSS_S = np.array([S_INDEX[s] for s, _ in CROSSES])
CROSS_C = np.array([C_INDEX[c] for _, c in CROSSES])
CUSTOMER_COLUMNS = 25  # C[:25] are features 0..24
FEATURE_NAMES = (
    C_NAMES[:CUSTOMER_COLUMNS] + S_NAMES + [f"{s} * {c}" for s, c in CROSSES]
)
FEATURES = len(FEATURE_NAMES)
assert FEATURES == 64, FEATURES

STATIC = np.zeros((len(ACTIONS), len(S_NAMES)))
for _action in ACTIONS:
    STATIC[_action.index, S_INDEX[f"channel({_action.channel})"]] = 1.0
    STATIC[_action.index, S_INDEX["action_value"]] = _action.value
    STATIC[_action.index, S_INDEX[f"category({_action.category})"]] = 1.0
    if _action.index < 8:
        STATIC[_action.index, S_INDEX[f"action({_action.id})"]] = 1.0


def feature_matrix(customer_terms: np.ndarray, rows: list[int]) -> np.ndarray:
    """The len(rows) × 64 feature matrix of the candidates `rows`."""
    static = STATIC[rows]
    matrix = np.empty((len(rows), FEATURES))
    matrix[:, :CUSTOMER_COLUMNS] = customer_terms[:CUSTOMER_COLUMNS]
    matrix[:, CUSTOMER_COLUMNS : CUSTOMER_COLUMNS + len(S_NAMES)] = static
    matrix[:, CUSTOMER_COLUMNS + len(S_NAMES) :] = static[:, CROSS_S] * customer_terms[CROSS_C]
    return matrix


def fit_model(seed: int = 7) -> LogisticRegression:
    """A LogisticRegression fitted on random customers × random actions built
    with `feature_matrix`, labelled by a fixed linear rule (nudge's synthetic
    weights on standardized features): realistic shapes and propensities, no
    meaning."""
    rng = np.random.default_rng(seed)
    samples = 4_000
    terms = np.zeros((samples, len(C_NAMES)))
    terms[:, 0:8] = rng.poisson(2.0, (samples, 8))
    terms[:, 8:16] = np.log1p(rng.poisson(6.0, (samples, 8)))
    terms[:, 16:18] = np.minimum(rng.exponential(20.0, (samples, 2)), MAX_DAYS)
    terms[:, 18] = rng.uniform(0.0, MAX_DAYS, samples)
    plan = rng.integers(0, 3, samples)
    terms[:, 19] = plan == 0
    terms[:, 20] = plan == 1
    terms[:, 21] = rng.integers(0, 50, samples)
    terms[:, 22] = rng.beta(2.0, 8.0, samples)
    terms[:, 23] = rng.integers(0, 2, samples)
    terms[:, 24] = rng.integers(0, 24, samples)
    terms[:, 25:27] = rng.poisson(1.0, (samples, 2))
    terms[:, 27] = np.log1p(rng.poisson(3.0, samples))
    terms[:, 28:36] = rng.poisson(0.3, (samples, 8))
    actions = rng.integers(0, len(ACTIONS), samples)
    matrix = np.vstack([feature_matrix(terms[i], [int(actions[i])]) for i in range(samples)])
    weights = np.array([((index * 37 % 19) - 9.0) / 40.0 for index in range(FEATURES)])
    spread = matrix.std(axis=0)
    standardized = (matrix - matrix.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    logits = standardized @ (weights * 4.0) - 2.0
    labels = rng.random(samples) < 1.0 / (1.0 + np.exp(-logits))
    # Fitted on the standardized matrix (lbfgs converges in a few dozen
    # iterations there, instead of thousands on the raw columns), then the
    # scaling is folded into the coefficients so that the model takes the raw
    # features, as served.
    model = LogisticRegression(max_iter=1_000)
    model.fit(standardized, labels)
    scale = np.where(spread > 0, spread, 1.0)
    model.coef_ = model.coef_ / scale
    model.intercept_ = model.intercept_ - model.coef_ @ matrix.mean(axis=0)
    return model


# --------------------------------------------------------------------------
# Customer state, in process memory.
# --------------------------------------------------------------------------


class EventStats:
    """Hourly buckets of one event name over the last 30 days, and recency."""

    __slots__ = ("buckets", "last_seen")

    def __init__(self):
        self.buckets: dict[int, int] = {}
        self.last_seen: int | None = None

    def record(self, at: int, now: int) -> None:
        if self.last_seen is None or at > self.last_seen:
            self.last_seen = at
        oldest_kept = now // HOUR_MS - COUNTER_HORIZON_HOURS + 1
        hour = at // HOUR_MS
        if hour >= oldest_kept:
            self.buckets[hour] = self.buckets.get(hour, 0) + 1
        for stale in [h for h in self.buckets if h < oldest_kept]:
            del self.buckets[stale]

    def windows(self, now: int) -> tuple[int, int, int]:
        """Occurrences within 1, 7 and 30 days of `now`, to the hour."""
        current = now // HOUR_MS
        day = week = month = 0
        for hour, count in self.buckets.items():
            age = current - hour
            if age < COUNTER_HORIZON_HOURS:
                month += count
                if age < 7 * 24:
                    week += count
                    if age < 24:
                        day += count
        return day, week, month


class Contact:
    """One entry of the contact ledger."""

    __slots__ = (
        "decision_id",
        "action",
        "at",
        "released",
        "dismissed_at",
        "reward",
        "outcomes",
    )

    def __init__(self, decision_id: str, action: Action, at: int):
        self.decision_id = decision_id
        self.action = action
        self.at = at
        self.released = False
        self.dismissed_at: int | None = None
        self.reward = 0.0
        self.outcomes = 0


class Customer:
    """Everything known about one customer. `lock` serializes its calls, so
    caps are exact under concurrency (as nudge's per-customer actor does)."""

    __slots__ = (
        "lock",
        "events",
        "attributes",
        "first_seen",
        "last_seen",
        "engagement",
        "ledger",
        "recent_ids",
        "recent_set",
    )

    def __init__(self):
        self.lock = threading.Lock()
        self.events: dict[str, EventStats] = {}
        self.attributes: dict[str, tuple[object, int]] = {}  # name -> (value, set_at)
        self.first_seen: int | None = None
        self.last_seen: int | None = None
        # channel -> [sends, impressions, clicks, conversions, dismisses, failures]
        self.engagement: dict[str, list[int]] = {}
        self.ledger: list[Contact] = []  # oldest first
        self.recent_ids: collections.deque[str] = collections.deque()
        self.recent_set: set[str] = set()

    def track(self, event_id: str, name: str, at: int, properties: dict, now: int) -> bool:
        """Applies an event; False if its id was seen before."""
        if event_id in self.recent_set:
            return False
        if len(self.recent_ids) >= RECENT_EVENT_IDS:
            self.recent_set.discard(self.recent_ids.popleft())
        self.recent_ids.append(event_id)
        self.recent_set.add(event_id)
        stats = self.events.get(name)
        if stats is None:
            stats = self.events[name] = EventStats()
        stats.record(at, now)
        if self.first_seen is None or at < self.first_seen:
            self.first_seen = at
        if self.last_seen is None or at > self.last_seen:
            self.last_seen = at
        if name == "identify":
            for key, value in properties.items():
                current = self.attributes.get(key)
                if current is None or at >= current[1]:
                    self.attributes[key] = (value, at)
        return True

    def engagement_of(self, channel: str) -> list[int]:
        counts = self.engagement.get(channel)
        if counts is None:
            counts = self.engagement[channel] = [0, 0, 0, 0, 0, 0]
        return counts

    def click_rate(self, channel: str) -> float:
        counts = self.engagement.get(channel)
        if counts is None:
            return 0.0
        shown = counts[1] if counts[1] > 0 else counts[0]
        return counts[2] / shown if shown else 0.0

    def attribute(self, name: str):
        entry = self.attributes.get(name)
        return None if entry is None else entry[0]

    def days_since(self, name: str, now: int) -> float:
        stats = self.events.get(name)
        if stats is None or stats.last_seen is None:
            return NEVER_DAYS
        return max((now - stats.last_seen) / DAY_MS, 0.0)

    def tenure_days(self, now: int) -> float:
        signup = self.attribute("signup_at")
        start = None
        if isinstance(signup, str):
            try:
                start = int(datetime.fromisoformat(signup).timestamp() * 1000)
            except ValueError:
                start = None
        elif isinstance(signup, float):
            start = int(signup)
        if start is None:
            start = self.first_seen
        return 0.0 if start is None else max((now - start) / DAY_MS, 0.0)


def as_number(value) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return value
    return 0.0


def python_value(value) -> object:
    """A nudge.v1.Value as str, float or bool (None if unset)."""
    kind = value.WhichOneof("kind")
    return None if kind is None else getattr(value, kind)


def millis(timestamp) -> int:
    return timestamp.seconds * 1000 + timestamp.nanos // 1_000_000


def now_millis() -> int:
    return time.time_ns() // 1_000_000


# --------------------------------------------------------------------------
# The state: every customer, in a dict.
# --------------------------------------------------------------------------


class State:
    def __init__(self, model: LogisticRegression, score_with: str = "predict_proba"):
        self.model = model
        self.coefficients = model.coef_[0]
        self.intercept = float(model.intercept_[0])
        self.customers: dict[str, Customer] = {}
        self.propensities = (
            self._numpy_propensities if score_with == "numpy" else self._sklearn_propensities
        )

    def _sklearn_propensities(self, matrix: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(matrix)[:, 1]

    def _numpy_propensities(self, matrix: np.ndarray) -> np.ndarray:
        # The same numbers without scikit-learn's per-call input validation.
        return 1.0 / (1.0 + np.exp(-(matrix @ self.coefficients + self.intercept)))

    def customer(self, customer_id: str) -> Customer:
        customer = self.customers.get(customer_id)
        if customer is None:
            # setdefault is atomic under the GIL: two threads get the same one.
            customer = self.customers.setdefault(customer_id, Customer())
        return customer


def abort(context, code, message):
    context.abort(code, message)  # raises


class DecisionsServicer(decisions_pb2_grpc.DecisionsServicer):
    def __init__(self, state: State):
        self.state = state

    def Decide(self, request, context):
        started = time.perf_counter_ns()
        if not request.customer_id or len(request.customer_id.encode()) > 256:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "customer_id: 1..=256 bytes")
        if request.placement != PLACEMENT:
            abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"placement: unknown placement '{request.placement}'",
            )
        if request.candidate_action_ids:
            unknown = [a for a in request.candidate_action_ids if a not in ACTIONS_BY_ID]
            if unknown:
                abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"candidate_action_ids: unknown actions {unknown}",
                )
            candidates = [ACTIONS_BY_ID[a] for a in dict.fromkeys(request.candidate_action_ids)]
        else:
            candidates = ACTIONS
        limit = request.limit or SLOTS
        context_values = {key: python_value(value) for key, value in request.context.items()}
        now = now_millis()
        customer = self.state.customer(request.customer_id)
        decision_id = "" if request.dry_run else uuid.uuid4().hex
        with customer.lock:
            served, filtered = self._decide(
                customer, candidates, limit, context_values, now, decision_id, request.dry_run
            )
        counts = collections.Counter(reason for _, reason, _, _, _ in filtered)
        response = decisions_pb2.DecideResponse(
            decision_id=decision_id,
            served=served,
            filtered_counts=[
                decisions_pb2.ReasonCount(reason=reason, count=count)
                for reason, count in sorted(counts.items())
            ],
            model_version=MODEL_VERSION,
            variant="default",
            fallback=False,
            catalog_version=CATALOG_VERSION,
            request_id=request.request_id,
            dry_run=request.dry_run,
        )
        if request.explain:
            response.filtered.extend(
                decisions_pb2.FilteredCandidate(
                    action_id=action_id,
                    reason=reason,
                    message=message,
                    score=score,
                    propensity=propensity,
                )
                for action_id, reason, message, score, propensity in filtered
            )
        response.server_time_us = (time.perf_counter_ns() - started) // 1_000
        return response

    def _decide(self, customer, candidates, limit, context_values, now, decision_id, dry_run):
        """Filters, scores, ranks and selects under the customer's lock;
        records the served actions unless `dry_run`. Returns the served
        actions and the filtered candidates (id, reason, message, score, p)."""
        # The ledger within its horizon, and what it says about caps and cooldowns.
        horizon = now - LEDGER_HORIZON_MS
        if customer.ledger and customer.ledger[0].at < horizon:
            customer.ledger = [c for c in customer.ledger if c.at >= horizon]
        per_channel = collections.Counter()
        per_category = collections.Counter()
        total = 0
        last_served: dict[str, int] = {}
        last_dismissed: dict[str, int] = {}
        for contact in customer.ledger:
            action = contact.action
            if not contact.released:
                if now - contact.at < CHANNEL_CAPS[action.channel][1]:
                    per_channel[action.channel] += 1
                if now - contact.at < TOTAL_CAP[1]:
                    total += 1
                if action.category in CATEGORY_CAPS and (
                    now - contact.at < CATEGORY_CAPS[action.category][1]
                ):
                    per_category[action.category] += 1
                if contact.at > last_served.get(action.id, -1):
                    last_served[action.id] = contact.at
            if contact.dismissed_at is not None and contact.dismissed_at > last_dismissed.get(
                action.id, -1
            ):
                last_dismissed[action.id] = contact.dismissed_at

        # Window counts of every event the customer has, once.
        windows = {name: stats.windows(now) for name, stats in customer.events.items()}
        zero = (0, 0, 0)
        click_rate = customer.click_rate("in_app")
        tenure = customer.tenure_days(now)
        plan = customer.attribute("plan")

        # The customer and context terms (C).
        terms = np.empty(len(C_NAMES))
        for index, event in enumerate(EVENTS[:8]):
            day, week, month = windows.get(event, zero)
            terms[index] = week
            terms[8 + index] = math.log1p(month)
            terms[28 + index] = day
        terms[16] = min(customer.days_since("login", now), MAX_DAYS)
        terms[17] = min(customer.days_since("feature_activated", now), MAX_DAYS)
        terms[18] = min(tenure, MAX_DAYS)
        terms[19] = 1.0 if plan == "trial" else 0.0
        terms[20] = 1.0 if plan == "pro" else 0.0
        terms[21] = as_number(customer.attribute("seats"))
        terms[22] = click_rate
        terms[23] = 1.0 if context_values.get("device") == "mobile" else 0.0
        terms[24] = as_number(context_values.get("hour"))
        terms[25] = windows.get("integration_connected", zero)[2]
        terms[26] = windows.get("support_ticket_opened", zero)[2]
        terms[27] = math.log1p(windows.get("page_view", zero)[1])

        rule_vars = None

        # Hard filters, in nudge's order: cooldowns, rule, caps.
        filtered = []
        survivors: list[Action] = []
        for action in candidates:
            served_at = last_served.get(action.id)
            if served_at is not None and now - served_at < COOLDOWN_MS:
                filtered.append((action.id, R.FILTER_REASON_COOLDOWN, "served within 1d", 0.0, 0.0))
                continue
            dismissed_at = last_dismissed.get(action.id)
            if dismissed_at is not None and now - dismissed_at < DISMISS_COOLDOWN_MS:
                filtered.append(
                    (action.id, R.FILTER_REASON_COOLDOWN, "dismissed within 7d", 0.0, 0.0)
                )
                continue
            if action.rule is not None:
                if rule_vars is None:
                    rule_vars = {
                        "count_7d": {name: w[1] for name, w in windows.items()},
                        "count_30d": {name: w[2] for name, w in windows.items()},
                        "attributes": {k: v for k, (v, _) in customer.attributes.items()},
                        "days_since_signup": tenure,
                        "days_since_payment_failed": customer.days_since("payment_failed", now),
                        "click_rate_in_app": click_rate,
                    }
                if not action.rule(rule_vars):
                    filtered.append(
                        (action.id, R.FILTER_REASON_NOT_ELIGIBLE, "rule is false", 0.0, 0.0)
                    )
                    continue
            blocked = capped(action, per_channel, total, per_category)
            if blocked is not None:
                filtered.append((action.id, blocked[0], blocked[1], 0.0, 0.0))
                continue
            survivors.append(action)

        served = []
        if not survivors:
            return served, filtered

        # Score: predict_proba on the survivors' 64-feature matrix.
        matrix = feature_matrix(terms, [action.index for action in survivors])
        propensities = self.state.propensities(matrix)
        pool = [
            (float(p) * action.vlc, float(p), action, row)
            for row, (p, action) in enumerate(zip(propensities, survivors))
        ]
        pool.sort(key=lambda entry: (-entry[0], entry[2].id))

        # Fill the slots one at a time under epsilon exploration, re-checking
        # the caps the serves so far used up.
        rng = random.Random()
        while len(served) < limit:
            kept = []
            for entry in pool:
                blocked = capped(entry[2], per_channel, total, per_category)
                if blocked is None:
                    kept.append(entry)
                else:
                    filtered.append((entry[2].id, blocked[0], blocked[1], entry[0], entry[1]))
            pool = kept
            if not pool:
                break
            index = rng.randrange(len(pool)) if rng.random() < EPSILON else 0
            probability = EPSILON / len(pool) + (1.0 - EPSILON if index == 0 else 0.0)
            priority, propensity, action, row = pool.pop(index)
            per_channel[action.channel] += 1
            per_category[action.category] += 1
            total += 1
            contributions = matrix[row] * self.state.coefficients
            top = np.argsort(-np.abs(contributions))[:RATIONALE_SIZE]
            served.append(
                decisions_pb2.ServedAction(
                    action_id=action.id,
                    channel=action.channel,
                    category=action.category,
                    rank=len(served) + 1,
                    score=priority,
                    propensity=propensity,
                    selection_probability=probability,
                    confidence=0.0,  # no per-action evidence, as nudge's synthetic model
                    value=action.value,
                    rationale=[
                        decisions_pb2.Contribution(
                            feature=FEATURE_NAMES[i],
                            value=float(matrix[row, i]),
                            contribution=float(contributions[i]),
                            text=FEATURE_NAMES[i],
                        )
                        for i in top
                    ],
                    payload=action.payload,
                )
            )
            if not dry_run:
                customer.ledger.append(Contact(decision_id, action, now))
                customer.engagement_of(action.channel)[0] += 1
        message = f"ranked below the limit of {limit}"
        for priority, propensity, action, _ in pool:
            filtered.append(
                (action.id, R.FILTER_REASON_RANKED_BELOW_LIMIT, message, priority, propensity)
            )
        return served, filtered

    def ReportOutcome(self, request, context):
        if not request.customer_id:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "customer_id: must not be empty")
        bit = OUTCOME_BITS.get(request.outcome)
        if bit is None:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "outcome: must be set")
        at = millis(request.timestamp) if request.HasField("timestamp") else now_millis()
        customer = self.state.customers.get(request.customer_id)
        not_found = (
            f"decision '{request.decision_id}' did not serve action "
            f"'{request.action_id}' to this customer"
        )
        if customer is None:
            abort(context, grpc.StatusCode.NOT_FOUND, not_found)
        with customer.lock:
            contact = next(
                (
                    c
                    for c in reversed(customer.ledger)
                    if c.decision_id == request.decision_id and c.action.id == request.action_id
                ),
                None,
            )
            if contact is None:
                abort(context, grpc.StatusCode.NOT_FOUND, not_found)
            if contact.outcomes & bit:
                return decisions_pb2.ReportOutcomeResponse(applied=False, slot_released=False)
            contact.outcomes |= bit
            if request.HasField("reward"):
                contact.reward += request.reward
            released = False
            if request.outcome == R.OUTCOME_DISMISS:
                contact.dismissed_at = at
            elif request.outcome == R.OUTCOME_FAILED and not contact.released:
                contact.released = True
                released = True
            engagement = customer.engagement_of(contact.action.channel)
            slot = {
                R.OUTCOME_IMPRESSION: 1,
                R.OUTCOME_CLICK: 2,
                R.OUTCOME_CONVERSION: 3,
                R.OUTCOME_DISMISS: 4,
                R.OUTCOME_FAILED: 5,
            }.get(request.outcome)
            if slot is not None:
                engagement[slot] += 1
        return decisions_pb2.ReportOutcomeResponse(applied=True, slot_released=released)


def capped(action: Action, per_channel, total: int, per_category):
    """The cap that blocks `action` given the contacts counted so far, or None."""
    limit, _ = CHANNEL_CAPS[action.channel]
    if per_channel[action.channel] >= limit:
        return (
            R.FILTER_REASON_CAP_CHANNEL,
            f"{action.channel} cap {limit} per 7d reached",
        )
    if total >= TOTAL_CAP[0]:
        return (R.FILTER_REASON_CAP_TOTAL, f"total cap {TOTAL_CAP[0]} per 7d reached")
    category_cap = CATEGORY_CAPS.get(action.category)
    if category_cap is not None and per_category[action.category] >= category_cap[0]:
        return (
            R.FILTER_REASON_CAP_CATEGORY,
            f"{action.category} cap {category_cap[0]} per 7d reached",
        )
    return None


class EventsServicer(events_pb2_grpc.EventsServicer):
    def __init__(self, state: State):
        self.state = state

    def Track(self, request, context):
        if not request.customer_id or len(request.customer_id.encode()) > 256:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "event.customer_id: 1..=256 bytes")
        if not request.event_id:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "event.event_id: must not be empty")
        if not request.name:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "event.name: must not be empty")
        now = now_millis()
        at = millis(request.timestamp) if request.HasField("timestamp") else now
        properties = (
            {key: python_value(value) for key, value in request.properties.items()}
            if request.name == "identify"
            else {}
        )
        customer = self.state.customer(request.customer_id)
        with customer.lock:
            applied = customer.track(request.event_id, request.name, at, properties, now)
        return events_pb2.TrackResponse(duplicate=not applied)


def parse_listen(text: str) -> str:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, e.g. 127.0.0.1:50151")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--listen", type=parse_listen, default="127.0.0.1:50151", help="HOST:PORT to serve on"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=10,
        help="ThreadPoolExecutor threads that run the handlers (default 10; see README)",
    )
    parser.add_argument(
        "--score-with",
        choices=["predict_proba", "numpy"],
        default="predict_proba",
        help="predict_proba: the fitted model's predict_proba (default); numpy: the same "
        "logistic function of its coefficients in plain numpy, without scikit-learn's "
        "per-call overhead",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    fitted = time.perf_counter()
    state = State(fit_model(), args.score_with)
    logging.info(
        "model %s fitted in %.1f s: %d features over %d actions",
        MODEL_VERSION,
        time.perf_counter() - fitted,
        FEATURES,
        len(ACTIONS),
    )

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.workers),
        # Refuse a port another server holds (grpcio sets SO_REUSEPORT by
        # default, which would let two servers share it silently).
        options=[("grpc.so_reuseport", 0)],
    )
    decisions_pb2_grpc.add_DecisionsServicer_to_server(DecisionsServicer(state), server)
    events_pb2_grpc.add_EventsServicer_to_server(EventsServicer(state), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", "nudge.v1.Decisions", "nudge.v1.Events"):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    try:
        server.add_insecure_port(args.listen)
    except RuntimeError as error:
        sys.exit(f"cannot listen on {args.listen}: {error}")
    server.start()
    logging.info(
        "serving on %s (pid %d, %d worker threads, scoring with %s)",
        args.listen,
        os.getpid(),
        args.workers,
        args.score_with,
    )

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    logging.info("stopping: %d customers in memory, all forgotten", len(state.customers))
    server.stop(grace=2).wait()


if __name__ == "__main__":
    main()
