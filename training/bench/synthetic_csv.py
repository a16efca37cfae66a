#!/usr/bin/env python3
"""Writes a synthetic CSV for timing `nudge train` against scikit-learn.

Not part of any test run. Columns: `customer` (an id), `converted` (the label),
`n00`..`n59` (numbers), `b0`, `b1` (true/false) and `plan` (one of 4 levels,
with a rare fifth that falls in the "other" bucket): 64 features after
encoding. The label is drawn from a logistic model of a fixed, known weight
vector, with about 10 % positives (10.6 % with the defaults).

    python3 training/bench/synthetic_csv.py --rows 1000000 --out /tmp/synthetic-1m.csv
"""

import argparse
import csv

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    weights = rng.normal(0.0, 0.3, size=60)
    plans = np.array(["starter", "pro", "team", "enterprise", "legacy"])
    plan_weights = {"starter": -0.4, "pro": 0.3, "team": 0.5, "enterprise": 0.8, "legacy": 0.0}
    header = ["customer", "converted"] + [f"n{i:02d}" for i in range(60)] + ["b0", "b1", "plan"]
    chunk = 100_000
    with open(args.out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for start in range(0, args.rows, chunk):
            rows = min(chunk, args.rows - start)
            numbers = rng.normal(0.0, 1.0, size=(rows, 60))
            b0 = rng.random(rows) < 0.3
            b1 = rng.random(rows) < 0.6
            plan = plans[rng.choice(5, size=rows, p=[0.4, 0.3, 0.15, 0.149, 0.001])]
            logit = (
                -3.6
                + numbers @ weights
                + 0.7 * b0
                - 0.4 * b1
                + np.vectorize(plan_weights.get)(plan)
            )
            label = rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))
            cells = np.round(numbers, 4).astype(str)
            for row in range(rows):
                writer.writerow(
                    [f"c{start + row}", int(label[row])]
                    + list(cells[row])
                    + ["true" if b0[row] else "false", "true" if b1[row] else "false", plan[row]]
                )


if __name__ == "__main__":
    main()
