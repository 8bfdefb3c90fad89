#!/usr/bin/env bash
# A change's cost in CPU µs/request, on a machine whose speed drifts: the appgw of two trees
# benchmarked at the same time, their workers sharing one CPU and the load on the other, so
# that whatever slows the machine slows both alike (two identical trees agree within 1-2 µs,
# where runs one after the other differ by up to 30 %).
#
#   bench/paired.sh BEFORE_TREE AFTER_TREE        # e.g. a `git worktree` of the old commit
#
# BENCH_CASES (default ka-small,ka-64k; any of bench.py's cases), ROUNDS (default 3),
# BENCH_SECONDS (default 15).
# Absolute figures are about twice a lone run's (one core for two); compare the pair.
set -euo pipefail
before=$(cd "$1" && pwd)
after=$(cd "$2" && pwd)
python=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}  # absolute: each tree is entered below
for round in $(seq "${ROUNDS:-3}"); do
  for tree in "$before" "$after"; do
    (
      cd "$tree"
      BENCH_CASES=${BENCH_CASES:-ka-small,ka-64k} BENCH_TARGETS=appgw BENCH_REPEATS=1 \
        BENCH_SECONDS=${BENCH_SECONDS:-15} PYTHONPATH="$tree/src" \
        "$python" bench/bench.py 2>&1 | grep -E '^\| [a-z0-9-]+ \| appgw' | sed "s|^|$tree round $round |"
    ) &
  done
  wait
done
