#!/usr/bin/env bash
# System packages the test suite needs, installed from Debian's packages when missing:
# headless Chromium + its driver (the chat page's browser tests) and a C++ compiler with the
# Python headers (mlxk's CPU kernels compile on first use). Nothing to do where they are present;
# where apt-get is not available, say what is missing and go on (the affected tests say why).
set -euo pipefail

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v g++ >/dev/null || missing+=(g++)
python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || missing+=(python3-dev)
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v apt-get >/dev/null || { [ -n "$SUDO" ] && ! command -v sudo >/dev/null; }; then
    echo "system_deps: please install: ${missing[*]}" >&2
    exit 0
fi
echo "system_deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
