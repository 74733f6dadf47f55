#!/usr/bin/env bash
# Open the book in JupyterLab (sets everything up first).
#
#   bash tools/lab.sh                                   # opens a browser tab
#   bash tools/lab.sh --no-browser --ip=127.0.0.1 --port=8888
#
# Extra arguments go to `jupyter lab`. As root, --allow-root is added for you.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash tools/setup.sh
VENV="${VAE_BOOK_VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV"
extra=()
if [ "$(id -u)" = 0 ] && [[ " $* " != *" --allow-root "* ]]; then extra+=(--allow-root); fi
exec jupyter lab nbs/ "${extra[@]}" "$@"
