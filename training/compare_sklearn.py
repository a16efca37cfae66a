#!/usr/bin/env python3
"""Compare `nudge train` with scikit-learn's LogisticRegression on the same data.

Not part of any test run: a check a person runs by hand.

How to run it
-------------
1. Train with nudge, e.g.

       nudge train --csv customers.csv --label converted --time signed_up --out model-dir

2. In a Python environment with scikit-learn (>= 1.2) and numpy:

       python3 -m venv /tmp/pyvenv && /tmp/pyvenv/bin/pip install scikit-learn
       /tmp/pyvenv/bin/python training/compare_sklearn.py \
           --csv customers.csv --label converted --time signed_up --report model-dir/report.json

   Give the same --label / --time / --action / --id / --ignore as to `nudge train`.

What it does
------------
- Reads the CSV and orders the rows as nudge does: by --time (RFC 3339 or whole
  seconds since 1970), ties and rows without --time in file order.
- Splits them as nudge does: the newest `holdout` fraction (from report.json) is the
  holdout; the rows before it are the fitting rows.
- Encodes the columns with nudge's own encoding, read from report.json's feature
  list: attr(x) is the number (true/false as 1/0, empty as 0), is(x,L) is 1 when the
  cell is L, is_none_of(x,A|B) is 1 when the cell is set and none of them,
  action(ID) is 1 when the --action cell is ID. Both libraries fit the same columns.
- Standardizes with the fitting rows' mean and population standard deviation (a
  constant column keeps scale 1), as nudge does.
- Fits LogisticRegression (lbfgs, L2) with C = 1 / (alpha * fitting rows), the L2
  strength nudge chose on its validation slice (nudge's alpha is per row on the mean
  log loss; scikit-learn's C multiplies the summed loss). With --own-grid it instead
  chooses C on the validation slice from the same grid, by validation log loss,
  fitting every training row (nudge's grid uses at most report.json's `grid_rows`
  of them, evenly spaced: see its `grid_sample`).
  With nudge's --balance it weights positives by the same whole-number ratio and
  applies the same intercept correction (-ln ratio).
- Prints both holdout AUCs and log losses (nudge's from report.json, as the artifact
  scores them), both fit times, and the largest difference between the two models'
  holdout probabilities (nudge's computed from model.json beside report.json).

Differences: scikit-learn's lbfgs stops on its own tolerance (1e-8 here) and linfa's
once the gradient of the mean loss is below 1e-6 (at most 300 iterations), so
probabilities agree closely but not exactly (within 1e-6 on synthetic files of 5,000
and 250,000 rows; within 5e-6 on 1,000,000 rows, where nudge's final fit starts
from its grid solution). Times are not comparable one to one: nudge's fit time is
measured inside `nudge train` (a release build is the fair comparison), scikit-learn's
around `fit` only.
"""

import argparse
import csv
import json
import math
import os
import sys
import time
from datetime import datetime

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

LABELS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def parse_time(text):
    text = text.strip()
    try:
        return int(text) * 1000
    except ValueError:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def parse_number(cell, kind):
    cell = cell.strip()
    if cell == "":
        return 0.0
    if kind == "boolean":
        return 1.0 if cell.lower() == "true" else 0.0
    return float(cell)


def split_spec(spec):
    """`is(plan,pro)` -> ("is", ["plan", "pro"])."""
    name, rest = spec.split("(", 1)
    return name.strip(), [arg.strip() for arg in rest[:-1].split(",")]


def encode(rows, header, features, kinds, action_column):
    position = {name: index for index, name in enumerate(header)}
    x = np.zeros((len(rows), len(features)))
    for column, spec in enumerate(features):
        term, args = split_spec(spec)
        for row_index, row in enumerate(rows):
            if term == "attr":
                x[row_index, column] = parse_number(row[position[args[0]]], kinds[args[0]])
            elif term == "is":
                x[row_index, column] = float(row[position[args[0]]].strip() == args[1])
            elif term == "is_none_of":
                cell = row[position[args[0]]].strip()
                x[row_index, column] = float(cell != "" and cell not in args[1].split("|"))
            elif term == "action":
                x[row_index, column] = float(row[position[action_column]].strip() == args[0])
            else:
                sys.exit(f"compare_sklearn.py does not know the feature term of '{spec}'")
    return x


def standardize(fitting):
    mean = fitting.mean(axis=0)
    scale = fitting.std(axis=0)
    scale[~(scale > 1e-12)] = 1.0
    return mean, scale


def fit(x, y, alpha, ratio):
    weights = np.where(y, float(ratio), 1.0)
    rows = weights.sum()
    model = LogisticRegression(C=1.0 / (alpha * rows), solver="lbfgs", max_iter=1000, tol=1e-8)
    started = time.perf_counter()
    model.fit(x, y, sample_weight=weights)
    elapsed = time.perf_counter() - started
    model.intercept_ = model.intercept_ - math.log(ratio)
    return model, elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--time")
    parser.add_argument("--action")
    parser.add_argument("--id")
    parser.add_argument("--ignore", action="append", default=[])
    parser.add_argument("--report", required=True, help="nudge's report.json")
    parser.add_argument("--own-grid", action="store_true",
                        help="choose C on the validation slice instead of using nudge's alpha")
    args = parser.parse_args()

    with open(args.report) as file:
        report = json.load(file)
    with open(args.csv, newline="") as file:
        reader = csv.reader(file)
        header = next(reader)
        rows = list(reader)
    if args.time:
        at = header.index(args.time)
        rows.sort(key=lambda row: parse_time(row[at]))  # stable: ties keep file order
    label_at = header.index(args.label)
    y = np.array([LABELS[row[label_at].strip().lower()] for row in rows])
    features = [feature["feature"] for feature in report["features"]]
    kinds = {column["name"]: column["kind"] for column in report["columns"]}
    x = encode(rows, header, features, kinds, args.action)

    holdout_rows = report["rows"]["holdout"]
    validation_rows = report["rows"]["validation"]
    fitting_end = len(rows) - holdout_rows
    train_end = fitting_end - validation_rows
    ratio = report["balance"]["oversampling"]

    alpha = report["alpha"]
    grid_seconds = 0.0
    if args.own_grid:
        mean, scale = standardize(x[:train_end])
        best = None
        for candidate in report["options"]["alphas"]:
            model, elapsed = fit((x[:train_end] - mean) / scale, y[:train_end], candidate, ratio)
            grid_seconds += elapsed
            probabilities = model.predict_proba((x[train_end:fitting_end] - mean) / scale)[:, 1]
            loss = log_loss(y[train_end:fitting_end], probabilities, labels=[False, True])
            if best is None or loss < best[0] or (loss == best[0] and candidate > best[1]):
                best = (loss, candidate)
        alpha = best[1]

    mean, scale = standardize(x[:fitting_end])
    model, fit_seconds = fit((x[:fitting_end] - mean) / scale, y[:fitting_end], alpha, ratio)
    holdout = x[fitting_end:]
    sklearn_probabilities = model.predict_proba((holdout - mean) / scale)[:, 1]
    truth = y[fitting_end:]

    with open(os.path.join(os.path.dirname(args.report), "model.json")) as file:
        artifact = json.load(file)
    if artifact["features"] != features:
        sys.exit("model.json and report.json disagree on the features")
    logits = holdout @ np.array(artifact["weights"]) + artifact["intercept"]
    nudge_probabilities = 1.0 / (1.0 + np.exp(-logits))

    timings = report["timings_ms"]
    print(f"rows: {len(rows)} ({train_end} training, {validation_rows} validation, "
          f"{holdout_rows} holdout); {len(features)} features; alpha {alpha} "
          f"(C = {1.0 / (alpha * (fitting_end + (ratio - 1) * int(y[:fitting_end].sum()))):.6g})")
    print(f"holdout auc:      nudge {report['auc']:.5f}   scikit-learn "
          f"{roc_auc_score(truth, sklearn_probabilities):.5f}")
    print(f"holdout log loss: nudge {report['log_loss']:.5f}   scikit-learn "
          f"{log_loss(truth, sklearn_probabilities, labels=[False, True]):.5f}")
    print(f"final fit:        nudge {timings['fit'] / 1e3:.3f} s   scikit-learn {fit_seconds:.3f} s")
    if args.own_grid:
        print(f"grid:             nudge {timings['grid'] / 1e3:.3f} s   scikit-learn {grid_seconds:.3f} s")
    difference = np.abs(nudge_probabilities - sklearn_probabilities).max()
    print(f"largest holdout probability difference: {difference:.2e}")
    if abs(roc_auc_score(truth, nudge_probabilities) - report["auc"]) > 1e-9:
        sys.exit("model.json does not reproduce report.json's auc")


if __name__ == "__main__":
    main()
