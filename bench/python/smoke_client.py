#!/usr/bin/env python3
"""Checks that a server answers the calls of `nudge-bench load` well formed:
health Check, Track (with de-duplication), Decide (3 served, caps and
cooldowns across decisions), ReportOutcome (applied once) and the errors of
bad requests. Works against the Python peer and against `nudge serve` on the
synthetic catalog.

    python smoke_client.py --target 127.0.0.1:50151
"""

from __future__ import annotations

import argparse
import sys
import uuid

from peer_server import ensure_stubs

ensure_stubs()

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from nudge.v1 import common_pb2, decisions_pb2, decisions_pb2_grpc  # noqa: E402
from nudge.v1 import events_pb2, events_pb2_grpc  # noqa: E402


def check(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"FAILED: {message}")
    print(f"ok: {message}")


def expect_code(call, code: grpc.StatusCode, message: str) -> None:
    try:
        call()
    except grpc.RpcError as error:
        check(error.code() == code, f"{message} -> {error.code().name}")
        return
    check(False, f"{message} -> OK, expected {code.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="127.0.0.1:50151")
    args = parser.parse_args()
    channel = grpc.insecure_channel(args.target)
    grpc.channel_ready_future(channel).result(timeout=10)
    health = health_pb2_grpc.HealthStub(channel)
    decisions = decisions_pb2_grpc.DecisionsStub(channel)
    events = events_pb2_grpc.EventsStub(channel)

    answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    check(answer.status == health_pb2.HealthCheckResponse.SERVING, "Check: SERVING")

    customer = f"smoke-{uuid.uuid4().hex[:8]}"
    identify = events_pb2.Event(
        customer_id=customer,
        event_id="e-identify",
        name="identify",
        properties={
            "plan": common_pb2.Value(string_value="trial"),
            "seats": common_pb2.Value(number_value=12.0),
        },
    )
    check(not events.Track(identify, timeout=5).duplicate, "Track identify: applied")
    check(events.Track(identify, timeout=5).duplicate, "Track identify again: duplicate")
    names = ["login", "pricing_page_view", "report_created", "search"] * 3
    duplicates = sum(
        events.Track(
            events_pb2.Event(customer_id=customer, event_id=f"e-{index}", name=name), timeout=5
        ).duplicate
        for index, name in enumerate(names)
    )
    check(duplicates == 0, f"Track {len(names)} behavioural events: all applied")
    expect_code(
        lambda: events.Track(events_pb2.Event(customer_id=customer, name="login"), timeout=5),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Track without event_id",
    )

    def decide(**extra):
        return decisions.Decide(
            decisions_pb2.DecideRequest(
                customer_id=customer,
                placement="feed",
                context={
                    "device": common_pb2.Value(string_value="mobile"),
                    "hour": common_pb2.Value(number_value=14.0),
                },
                **extra,
            ),
            timeout=5,
        )

    first = decide(explain=True)
    check(len(first.decision_id) > 0, f"Decide: decision_id {first.decision_id}")
    check(len(first.served) == 3, f"Decide: 3 served {[s.action_id for s in first.served]}")
    check(not first.fallback, "Decide: not a fallback")
    check(first.model_version != "", f"Decide: model_version {first.model_version}")
    check([s.rank for s in first.served] == [1, 2, 3], "Decide: ranks 1, 2, 3")
    for served in first.served:
        check(
            served.action_id.startswith("action_")
            and served.channel in ("in_app", "content")
            and 0.0 < served.propensity < 1.0
            and served.score > 0.0
            and served.value >= 1.0
            and 0.0 < served.selection_probability <= 1.0,
            f"Decide: {served.action_id} {served.channel}/{served.category} "
            f"p={served.propensity:.3f} score={served.score:.3f} value={served.value}",
        )
    counted = sum(count.count for count in first.filtered_counts)
    check(counted + 3 == 50, f"Decide: {counted} filtered + 3 served = 50 candidates")
    check(len(first.filtered) == counted, "Decide explain: every filtered candidate listed")

    second = decide()
    again = {s.action_id for s in first.served} & {s.action_id for s in second.served}
    check(not again, "Decide again: the first decision's actions are on their 1-day cooldown")

    dry = decide(dry_run=True)
    check(dry.decision_id == "" and dry.dry_run, "Decide dry run: no decision id")

    served = first.served[0]
    outcome = decisions_pb2.ReportOutcomeRequest(
        customer_id=customer,
        decision_id=first.decision_id,
        action_id=served.action_id,
        outcome=decisions_pb2.OUTCOME_CLICK,
    )
    check(decisions.ReportOutcome(outcome, timeout=5).applied, "ReportOutcome click: applied")
    check(
        not decisions.ReportOutcome(outcome, timeout=5).applied,
        "ReportOutcome click again: not applied",
    )
    outcome.action_id = "action_49" if served.action_id != "action_49" else "action_48"
    expect_code(
        lambda: decisions.ReportOutcome(outcome, timeout=5),
        grpc.StatusCode.NOT_FOUND,
        "ReportOutcome for an action the decision did not serve",
    )

    # Caps: 12 per 7 days in total, in_app 5, content 10. Keep deciding until
    # nothing is served; no more than 5 in_app and 12 in all may have been.
    decisions_made = [first, second]
    for _ in range(10):
        decisions_made.append(decide())
    served_all = [s for d in decisions_made for s in d.served]
    in_app = sum(1 for s in served_all if s.channel == "in_app")
    upsell = sum(1 for s in served_all if s.category == "upsell")
    check(
        len(served_all) == 12 and in_app <= 5 and upsell <= 3,
        f"caps: {len(served_all)} served in all, {in_app} in_app, {upsell} upsell",
    )
    last = decisions_made[-1]
    reasons = {decisions_pb2.FilterReason.Name(c.reason): c.count for c in last.filtered_counts}
    check(len(last.served) == 0, f"capped customer: nothing served ({reasons})")

    expect_code(
        lambda: decisions.Decide(
            decisions_pb2.DecideRequest(customer_id=customer, placement="nowhere"), timeout=5
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Decide on an unknown placement",
    )
    print("all good")


if __name__ == "__main__":
    main()
