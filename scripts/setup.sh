#!/usr/bin/env bash
# Installs what the tests need, and says what it installs. Safe to run again: it only adds what
# is missing. With --fuzz it also makes sure a nightly toolchain and cargo-fuzz are there.
set -euo pipefail

need_fuzz=0
for arg in "$@"; do
  case "$arg" in
    --fuzz) need_fuzz=1 ;;
    *) echo "setup.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

say() { printf '    %s\n' "$*"; }

installed_targets=$(rustup target list --installed)
for t in thumbv7em-none-eabihf thumbv8m.main-none-eabihf; do
  if ! grep -qx "$t" <<<"$installed_targets"; then
    say "installing rust target $t"
    rustup target add "$t"
  fi
done

installed_components=$(rustup component list --installed)
for c in clippy rustfmt; do
  if ! grep -q "^$c" <<<"$installed_components"; then
    say "installing rustup component $c"
    rustup component add "$c"
  fi
done

if [ "$need_fuzz" = 1 ]; then
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    say "installing the nightly toolchain (cargo-fuzz needs it)"
    rustup toolchain install nightly --profile minimal
  fi
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    say "installing cargo-fuzz from crates.io"
    cargo install --locked cargo-fuzz
  fi
fi
# The ota-tool integration tests run a real MQTT broker (Debian's mosquitto).
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing mosquitto (the ota-tool integration tests need an MQTT broker)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
  else
    echo "setup.sh: mosquitto is missing; install it with: sudo apt-get update && sudo apt-get install -y mosquitto" >&2
    exit 1
  fi
fi

say "tools ready: $(rustc --version)"
