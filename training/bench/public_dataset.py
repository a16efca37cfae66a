#!/usr/bin/env python3
"""Writes the CSV `nudge train` reads from the Caravan data shipped inside the ISLP package.

Not part of any test run. The data is a real marketing-response set: The Insurance
Company (TIC) benchmark of the CoIL Challenge 2000 (P. van der Putten and M. van
Someren (eds), "CoIL Challenge 2000: The Insurance Company Case", Sentient Machine
Research, Amsterdam, and Leiden Institute of Advanced Computer Science technical report
2000-09), as shipped by the R package ISLR and, as `ISLP/data/Caravan.csv`, by the PyPI
package ISLP (the companion of "An Introduction to Statistical Learning with Python").
5,822 customers, 85 predictors (socio-demographics of the customer's postcode area and
product ownership), and `Purchase` (Yes/No): whether the customer bought a caravan
insurance policy, about 6 % Yes.

The file is read from the installed package (never downloaded here), and the data set
itself is not committed to the repository: its owner's terms are not restated by the
package (see training/RESULTS.md).

    /tmp/pyvenv/bin/pip install --no-deps ISLP     # the data only: no torch etc.
    python3 training/bench/public_dataset.py --out /tmp/caravan.csv
    python3 training/bench/public_dataset.py --categorical --out /tmp/caravan-cat.csv

What it writes: a `customer` id column (c0001 ... in the package's row order, which is
the order nudge splits in: the last 20 % is the holdout), the 85 predictors unchanged,
and `purchased` as 1/0 (nudge also reads Yes/No; 1/0 is what compare_sklearn.py and
nudge agree on without translation). The package's row order is kept: the data has no
time column, so the split is by position, as for any CSV without --time.

With --categorical, the two columns that the data's dictionary defines as nominal
codes rather than ordered bands, MOSTYPE (customer subtype, 41 codes, L0) and MOSHOOFD
(customer main type, 10 codes, L2), are written as text (`t33`, `m8`) so that nudge
types them as categorical and one-hot encodes them (is(MOSTYPE,t33), ...) instead of
reading the code as a number. Every other column is an ordered band or a count and
stays numeric.

It needs only the standard library: the package is located with importlib without
importing it (ISLP's __init__ imports pandas and scikit-learn).
"""

import argparse
import csv
import importlib.util
import os
import sys

# Nominal codes in the data dictionary (L0: customer subtype, L2: customer main type).
CATEGORICAL = {"MOSTYPE": "t", "MOSHOOFD": "m"}
LABEL = "Purchase"


def caravan_path():
    spec = importlib.util.find_spec("ISLP")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the ISLP package is not installed: pip install --no-deps ISLP")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "Caravan.csv")
    if not os.path.exists(path):
        sys.exit(f"ISLP is installed but has no {path}")
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--categorical", action="store_true",
                        help="write MOSTYPE and MOSHOOFD as text levels (categorical in nudge)")
    args = parser.parse_args()
    source = caravan_path()
    with open(source, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    label_at = header.index(LABEL)
    predictors = [name for name in header if name != LABEL]
    positions = [header.index(name) for name in predictors]
    positives = 0
    with open(args.out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer"] + predictors + ["purchased"])
        for number, row in enumerate(rows, start=1):
            label = {"Yes": 1, "No": 0}[row[label_at]]
            positives += label
            cells = []
            for name, position in zip(predictors, positions):
                cell = row[position]
                if args.categorical and name in CATEGORICAL:
                    cell = CATEGORICAL[name] + cell
                cells.append(cell)
            writer.writerow([f"c{number:04d}"] + cells + [label])
    print(f"{source}: {len(rows)} rows, {len(predictors)} predictors, "
          f"{positives} purchased ({positives / len(rows):.2%}) -> {args.out}")


if __name__ == "__main__":
    main()
