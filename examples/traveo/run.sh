#!/usr/bin/env bash
# Over-the-air update, bad signature and rollback of example-traveo in QEMU: see ../run-ota.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/../run-ota.sh" traveo "$@"
