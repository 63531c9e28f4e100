#!/usr/bin/env bash
# Installs what the tests need, and says what it installs. Safe to run again: it only adds what
# is missing. With --fuzz it also makes sure a nightly toolchain and cargo-fuzz are there.
# With --qemu it installs Debian's qemu-system-arm and mosquitto for the emulated board examples
# (examples/run-qemu.sh); the unit-test path needs neither.
set -euo pipefail

need_fuzz=0
need_qemu=0
for arg in "$@"; do
  case "$arg" in
    --fuzz) need_fuzz=1 ;;
    --qemu) need_qemu=1 ;;
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

# pal-psoc6's imgtool interoperability tests sign MCUboot images with MCUboot's imgtool (PyPI),
# installed into a virtual environment under target/ (ignored by git; `cargo clean` removes it
# and the next run installs it again), never into the user's site-packages. scripts/test.sh puts
# its bin/ first on PATH and sets IMGTOOL; the tests also find it there on their own.
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools_venv=${OTA_TOOLS_VENV:-$root_dir/target/tools-venv}
if ! "$tools_venv/bin/imgtool" version >/dev/null 2>&1; then
  command -v python3 >/dev/null 2>&1 ||
    { echo "setup.sh: python3 is missing; it is needed for imgtool (pal-psoc6's tests)" >&2; exit 1; }
  say "installing imgtool from PyPI into $tools_venv (MCUboot image signing, for pal-psoc6's tests)"
  rm -rf "$tools_venv"
  python3 -m venv "$tools_venv" ||
    { echo "setup.sh: 'python3 -m venv' failed; install the venv module (Debian: sudo apt-get install" \
        "python3-venv) and re-run" >&2; exit 1; }
  "$tools_venv/bin/python" -m pip install --quiet --disable-pip-version-check imgtool ||
    { echo "setup.sh: 'pip install imgtool' into $tools_venv failed (network or PyPI?)" >&2; exit 1; }
fi
say "imgtool $("$tools_venv/bin/imgtool" version) in $tools_venv"

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
# Debian packages: mosquitto always (ota-tool's end-to-end tests run a real broker); with --qemu
# also qemu-system-arm and mosquitto-clients for the emulated board examples.
missing=()
{ command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } || missing+=(mosquitto)
if [ "$need_qemu" = 1 ]; then
  command -v qemu-system-arm >/dev/null 2>&1 || missing+=(qemu-system-arm)
  command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: missing ${missing[*]}; install them (Debian: sudo apt-get update &&" \
      "sudo apt-get install -y ${missing[*]}) or run this script as root on a Debian-like system" >&2
    exit 1
  fi
  say "installing ${missing[*]} with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$need_qemu" = 1 ]; then
  say "qemu: $(qemu-system-arm --version | head -n1)"
fi
say "tools ready: $(rustc --version)"
