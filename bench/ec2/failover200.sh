#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# 200-table failover through EC2's ReplaceRoute bucket (DESIGN "Defaults and targets": as fast
# as EC2's mutating bucket allows, <= 33 s, no RequestLimitExceeded). Runs the moto
# integration test that drives 200 ReplaceRoute calls through ec2::Client and the lab's EC2
# proxy emulating EC2's per-API bucket (50 burst, 5/s refill), `--reps` times, and prints each
# run's figure; exits non-zero when a run misses the target (the test asserts it).
#   bench/ec2/failover200.sh [--reps N] [path/to/ec2_moto_test]
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=1
if [[ "${1:-}" == "--reps" ]]; then
  reps=$2
  shift 2
fi
bin=${1:-build/bin/ec2_moto_test}
[[ -x "$bin" ]] || { echo "failover200: $bin not built (scripts/build --target ec2_moto_test)" >&2; exit 2; }
rc=0
for ((i = 1; i <= reps; i++)); do
  out=$("$bin" --gtest_filter='MotoTest.FailoverOf200Tables*' 2>&1) || rc=1
  grep -E '^200-table failover' <<<"$out" || { echo "$out" | tail -20; rc=1; }
done
exit $rc
