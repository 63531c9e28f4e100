#!/usr/bin/env bash
# Over-the-air update, bad signature and rollback of example-psoc6 in QEMU: see ../run-ota.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/../run-ota.sh" psoc6 "$@"
