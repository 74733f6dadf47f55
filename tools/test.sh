#!/usr/bin/env bash
# Run every test: set-up, then nbdev-test over all notebooks and pytest tests/ side by side.
#
#   bash tools/test.sh                  # default: skips `#| slow` cells and @pytest.mark.slow
#   bash tools/test.sh --slow           # (or --all) runs the slow ones too (and `#| cuda` cells on a GPU)
#   bash tools/test.sh -k site -x       # any other argument goes to pytest
#   bash tools/test.sh --no-nbs         # pytest only        (--no-pytest: notebooks only)
#
# Environment:
#   PYTEST_ARGS="..."        extra pytest arguments (added before the command-line ones)
#   NBDEV_TEST_ARGS="..."    extra nbdev-test arguments, e.g. "--file-glob 0[0-3]*"
#   VAE_BOOK_NB_WORKERS=N    nbdev-test workers (default 1, all cores to torch; see tools/README.md)
#   VAE_BOOK_SKIP_SETUP=1    don't run tools/setup.sh first
#   VAE_BOOK_TEST_SERIAL=1   run nbdev-test, then pytest (default: side by side, one torch thread
#                            each, when both run on a machine with 2+ cores; see tools/README.md)
# Exit status is non-zero when either part fails; a summary is printed last.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

slow=0; run_nbs=1; run_pytest=1; pytest_args=()
for a in "$@"; do
  case "$a" in
    --slow|--all) slow=1 ;;
    --no-nbs) run_nbs=0 ;;
    --no-pytest) run_pytest=0 ;;
    -h|--help) sed -n '2,14p' "$ROOT/tools/test.sh"; exit 0 ;;
    *) pytest_args+=("$a") ;;
  esac
done

if [ "${VAE_BOOK_SKIP_SETUP:-0}" != 1 ]; then
  bash tools/setup.sh || { echo "[test] set-up failed" >&2; exit 2; }
fi
VENV="${VAE_BOOK_VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV"
unset PYTHONHOME

export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYDEVD_DISABLE_FILE_VALIDATION=1

declare -A status secs
order=()
step() {  # step NAME CMD...   (STEP_LABEL overrides the echoed command)
  local name="$1"; shift
  order+=("$name")
  echo; echo "=== $name: ${STEP_LABEL:-$*}"
  local t0=$SECONDS
  "$@"; local rc=$?
  secs[$name]=$((SECONDS - t0)); status[$name]=$rc
  return $rc
}

if [ -f tools/make_readme.py ]; then
  step readme python tools/make_readme.py --check
fi

if [ "$run_nbs" = 1 ]; then
  workers="${VAE_BOOK_NB_WORKERS:-1}"  # measured: 1 worker x 2 threads beat 2 x 1 (tools/README.md)
  nb_args=(--n-workers "$workers" --timing)
  if [ "$slow" = 1 ]; then  # `#| cuda` cells too when there is a GPU
    if python -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null
    then nb_args+=(--flags "slow cuda"); else nb_args+=(--flags slow); fi
  fi
  # shellcheck disable=SC2206
  [ -n "${NBDEV_TEST_ARGS:-}" ] && nb_args+=(${NBDEV_TEST_ARGS})
  # several workers: one BLAS/torch thread each, so they do not oversubscribe the cores
  threads="${OMP_NUM_THREADS:-$([ "$workers" -gt 1 ] && echo 1 || nproc)}"
fi

# Side by side: nbdev-test in the background and pytest in the foreground, one torch thread
# each (measured: 627 s in a row on 2 cores -> see tools/README.md). Serial otherwise.
parallel=0
if [ "$run_nbs" = 1 ] && [ "$run_pytest" = 1 ] && [ "${VAE_BOOK_TEST_SERIAL:-0}" != 1 ] \
   && [ "$(nproc)" -ge 2 ]; then
  parallel=1; threads="${OMP_NUM_THREADS:-1}"
  NB_LOG="$(mktemp "${TMPDIR:-/tmp}/vae_book_nbdev.XXXXXX")"
  echo; echo "=== nbdev-test (in the background, one torch thread): nbdev-test ${nb_args[*]}"
  nb_t0=$SECONDS
  env OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" OMP_WAIT_POLICY=PASSIVE \
    nbdev-test "${nb_args[@]}" > "$NB_LOG" 2>&1 &
  nb_pid=$!
  export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
elif [ "$run_nbs" = 1 ]; then
  step nbdev-test env OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" \
    nbdev-test "${nb_args[@]}"
fi

PYTEST_LOG="$(mktemp "${TMPDIR:-/tmp}/vae_book_pytest.XXXXXX")"
if [ "$run_pytest" = 1 ]; then
  m_args=()
  [ "$slow" = 0 ] && m_args=(-m "not slow")
  # shellcheck disable=SC2206
  extra=(${PYTEST_ARGS:-})
  # pipefail: the pipeline's status is pytest's
  STEP_LABEL="python -m pytest tests/ ${m_args[*]:+-m \"${m_args[1]}\"} ${extra[*]} ${pytest_args[*]}" \
  step pytest bash -c 'set -o pipefail; python -m pytest tests/ "$@" 2>&1 | tee "$0"' "$PYTEST_LOG" \
    "${m_args[@]}" "${extra[@]}" "${pytest_args[@]}"
  # exit 5 = nothing collected (e.g. a -k that matches nothing): not a failure of the code
  if [ "${status[pytest]}" = 5 ]; then echo "[test] pytest collected no tests"; status[pytest]=0; fi
fi

if [ "$parallel" = 1 ]; then  # collect the background nbdev-test
  wait "$nb_pid"; nb_rc=$?
  echo; echo "=== nbdev-test (ran alongside pytest):"; cat "$NB_LOG"; rm -f "$NB_LOG"
  order=(nbdev-test "${order[@]}"); status[nbdev-test]=$nb_rc; secs[nbdev-test]=$((SECONDS - nb_t0))
fi

echo
echo "=================================== summary ==================================="
fail=0
for n in "${order[@]}"; do
  r=${status[$n]}
  if [ "$r" = 0 ]; then word=ok; else word="FAILED (exit $r)"; fail=1; fi
  printf '%-12s %-18s %5ss\n' "$n" "$word" "${secs[$n]}"
done
[ "$slow" = 1 ] && echo "(slow tests included)" || echo "(slow tests skipped; --slow runs them)"
# keep pytest's own closing line last, so logs and CI show it at the end
if [ "$run_pytest" = 1 ]; then
  last="$(grep -E '^=+ .*(passed|failed|error|skipped|deselected|no tests ran).* =+$' "$PYTEST_LOG" | tail -n 1)"
  [ -n "$last" ] && echo "$last"
fi
rm -f "$PYTEST_LOG"
exit $fail
