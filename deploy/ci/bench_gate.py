#!/usr/bin/env python3
"""bench_gate.py - the CI's benchmark gate: fails when the image's throughput
dropped more than 10% below a recorded baseline.

Both inputs are `vigil bench --json` objects (the baseline recorded once per
runner kind, the current one measured from the image under test).  The
throughput is batch x 1000 / median_ms, in runs per second; the median, not
the minimum, so one lucky run does not set the bar.  The two runs must be
comparable (same model file name, batch and threads), else the gate refuses
to judge (exit 2).

The threshold is inclusive: a drop of exactly 10% passes, anything more
fails.  Numbers are compared exactly (the JSON decimals as fractions), so
"exactly 10%" means exactly, not whatever float rounding makes of it.

    bench_gate.py BASELINE.json CURRENT.json [--max-drop 0.10]
    exit 0: pass, 1: throughput dropped too far, 2: not comparable / bad input
"""
import argparse
import decimal
import json
import sys
from fractions import Fraction


def load(path):
    with open(path) as f:
        return json.load(f, parse_float=decimal.Decimal)


def throughput(run):
    """Runs per second as an exact fraction."""
    median = Fraction(run["median_ms"])
    if median <= 0:
        raise ValueError(f"median_ms {run['median_ms']} is not positive")
    return Fraction(int(run["batch"])) * 1000 / median


def judge(baseline, current, max_drop):
    """(passed, message).  Raises ValueError when the runs are not comparable."""
    for key in ("batch", "threads"):
        if baseline.get(key) != current.get(key):
            raise ValueError(f"{key} differs: baseline {baseline.get(key)}, current {current.get(key)}")
    name = lambda run: str(run.get("model", "")).rsplit("/", 1)[-1]  # noqa: E731
    if name(baseline) != name(current):
        raise ValueError(f"model differs: baseline {name(baseline)}, current {name(current)}")
    base, now = throughput(baseline), throughput(current)
    drop = 1 - now / base
    line = (f"throughput {float(now):.3f}/s against baseline {float(base):.3f}/s: "
            f"{'drop' if drop >= 0 else 'gain'} {abs(float(drop)) * 100:.2f}% (limit {float(max_drop) * 100:g}%)")
    return drop <= max_drop, line


def main():
    ap = argparse.ArgumentParser(description="fail when vigil bench throughput drops more than --max-drop")
    ap.add_argument("baseline")
    ap.add_argument("current")
    ap.add_argument("--max-drop", default="0.10", help="largest allowed fractional drop, inclusive (default 0.10)")
    args = ap.parse_args()
    try:
        passed, line = judge(load(args.baseline), load(args.current), Fraction(args.max_drop))
    except (OSError, ValueError, KeyError, TypeError, decimal.InvalidOperation) as e:
        print(f"bench gate: cannot judge: {e}", file=sys.stderr)
        return 2
    print(f"bench gate: {'PASS' if passed else 'FAIL'}: {line}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
