#!/usr/bin/env bash
# The project's test command (the README's "run the tests"). It checks for and installs what it
# needs, then runs, in order: formatting, clippy, unit/property/scenario tests, no_std builds for
# both Cortex-M targets, docs, the emulated firmware under QEMU (with mosquitto) and its size
# report (scripts/size-report.sh), and a bounded fuzz smoke run of every fuzz target.
#
#   scripts/test.sh            everything
#   scripts/test.sh --no-fuzz  skip the fuzz smoke run (no nightly toolchain needed)
#   scripts/test.sh --no-qemu  skip the emulated firmware (no qemu-system-arm or mosquitto needed)
#
# Exit status is non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ=1
QEMU=1
for arg in "$@"; do
  case "$arg" in
    --no-fuzz) FUZZ=0 ;;
    --no-qemu) QEMU=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\ntest.sh: %s\n' "$*" >&2; exit 1; }

# --- what the run needs -------------------------------------------------------------------
step "checking tools"
command -v cargo >/dev/null || die "cargo is missing: install Rust with rustup (https://rustup.rs) and re-run"
command -v rustup >/dev/null || die "rustup is missing: the no_std targets are installed through it"
setup_args=()
[ "$FUZZ" = 1 ] && setup_args+=(--fuzz)
[ "$QEMU" = 1 ] && setup_args+=(--qemu)
bash scripts/setup.sh "${setup_args[@]}"
# setup.sh installs imgtool into this virtual environment (pal-psoc6's tests, the PSoC 6 and TF-M example runners).
tools_venv=${OTA_TOOLS_VENV:-$PWD/target/tools-venv}
export PATH="$tools_venv/bin:$PATH"
export IMGTOOL="$tools_venv/bin/imgtool"

# The no_std library crates and the features their embedded builds use.
NO_STD_CRATES=(
  "ota-core:"
  "mcuboot-format:"
  "ota-pal-traits:sim,conformance"
  "ota-expresslink:"
  "pal-psoc6:"
  "pal-psoc6:sim"
  "pal-same54:"
  "pal-same54:sim"
  "pal-tfm:"
  "pal-tfm:sim,ffi"
  "pal-traveo:"
  "pal-traveo:sim"
)
EMBEDDED_TARGETS=(thumbv7em-none-eabihf thumbv8m.main-none-eabihf)

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo test (unit, property and scenario tests)"
cargo test --workspace --all-features

step "no_std builds for ${EMBEDDED_TARGETS[*]}"
for entry in "${NO_STD_CRATES[@]}"; do
  crate=${entry%%:*}; features=${entry#*:}
  for target in "${EMBEDDED_TARGETS[@]}"; do
    echo "    $crate ($target${features:+, features $features})"
    cargo build --quiet -p "$crate" --target "$target" ${features:+--features "$features"}
  done
done

step "cargo doc (warnings are errors)"
cargo doc --workspace --no-deps --all-features --quiet
# Board crates link their `sim` items: the docs must also build without the features.
for crate in mcuboot-format pal-psoc6 pal-same54 pal-tfm pal-traveo; do
  cargo doc --no-deps -p "$crate" --quiet
done

if [ "$QEMU" = 1 ]; then
  step "emulated firmware (examples/, its own workspace): fmt, clippy, host tests, QEMU runs"
  (
    cd examples
    cargo fmt --all -- --check
    cargo clippy --release -p qemu-hello -p qemu-mps2 -p example-psoc6 -p example-same54 \
      -- -D warnings
    cargo clippy --release -p example-traveo --no-default-features --features mps2-an500 -- -D warnings
    cargo clippy --release -p qemu-hello --no-default-features --features mps2-an505 \
      --target thumbv8m.main-none-eabihf -- -D warnings
    cargo clippy --release -p example-tfm --target thumbv8m.main-none-eabihf -- -D warnings
    # Apart: agent-min and agent-min-mqtt turn qemu-mps2's panic handler off, the others keep it.
    cargo clippy --release -p agent-min -- -D warnings
    cargo clippy --release -p agent-min-mqtt -- -D warnings
    cargo clippy --release -p example-ccm-host -- -D warnings
    cargo test -p qemu-mps2 --features mps2-an386 --target x86_64-unknown-linux-gnu
    ./run-qemu.sh
    MACHINE=mps3-an547 ./run-qemu.sh
    ./psoc6/run.sh
    ./tfm/run.sh
    ./same54/run.sh
    ./traveo/run.sh
    ./ccm-host/run.sh
    # Builds every example firmware and runs agent-min to idle; fails on a failed build or run,
    # judges no sizes. SIZES.md is only rewritten by running the script by hand.
    ../scripts/size-report.sh --no-write
  )
fi

if [ "$FUZZ" = 1 ]; then
  step "fuzz smoke run (bounded; see scripts/fuzz.sh for long runs)"
  bash scripts/fuzz.sh --smoke
fi

printf '\nall checks passed\n'
