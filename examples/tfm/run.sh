#!/usr/bin/env bash
# Update and rollback of example-tfm in QEMU through its host-played bootloader: see ../run-boot.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/../run-boot.sh" tfm "$@"
