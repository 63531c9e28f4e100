#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (nightly + cargo-fuzz; scripts/setup.sh --fuzz installs them).
#
#   scripts/fuzz.sh --smoke          every target, 30 s each, from the committed seed corpus
#   scripts/fuzz.sh TARGET [SECONDS] one target for SECONDS (default 300)
#
# A crash fails the run and leaves the input under fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --fuzz >/dev/null

targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^ota-fuzz$')

run() {
  local target=$1 seconds=$2 corpus="fuzz/corpus/$1"
  mkdir -p "$corpus"
  # Work on a scratch copy so a run never adds generated inputs to the committed corpus.
  local work; work=$(mktemp -d)
  cp -r "$corpus/." "$work/"
  echo "    fuzzing $target for ${seconds}s"
  local log="$work.log" status=0
  (cd fuzz && cargo +nightly fuzz run --release "$target" "$work" -- \
      -max_total_time="$seconds" -print_final_stats=1) >"$log" 2>&1 || status=$?
  grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$log" | sed 's/^/      /' || true
  if [ "$status" != 0 ]; then
    tail -n 40 "$log" >&2
    rm -rf "$work" "$log"
    echo "fuzz.sh: $target failed (exit $status); the input is under fuzz/artifacts/$target/" >&2
    return 1
  fi
  rm -f "$log"
  rm -rf "$work"
}

if [ "${1:-}" = "--smoke" ]; then
  for t in $targets; do run "$t" 30; done
elif [ -n "${1:-}" ]; then
  run "$1" "${2:-300}"
else
  sed -n '2,7p' "$0"; exit 2
fi
