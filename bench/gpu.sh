#!/usr/bin/env bash
# The GPU benchmarks in one command: training speed (bench/speed.py) and the k=5000 test NLL
# (bench/nll.py) on CUDA, with the training data resident on the GPU (`fit`'s default there).
#
#   bash bench/gpu.sh              # on a machine with CUDA: writes bench/results/speed_cuda.json and
#                                  # bench/results/nll_<dataset>_cuda.json
#   bash bench/gpu.sh --dry-run    # the plumbing anywhere: CPU, tiny sizes, records in a temp folder
#
# Environment: DATASET (default fashion: the speed reference loop needs a torchvision dataset),
# OUT (records folder), VAE_BOOK_DATA (where the data are; carry it to a machine without network),
# PYTHON (default python).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python}"
DATASET="${DATASET:-fashion}"
dry=0
case "${1:-}" in
  --dry-run) dry=1 ;;
  "") ;;
  -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
  *) echo "bench/gpu.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac

if [ "$dry" = 0 ]; then
  "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' || {
    echo "bench/gpu.sh: no CUDA device here; 'bash bench/gpu.sh --dry-run' checks the plumbing" >&2; exit 2; }
  dev=cuda; OUT="${OUT:-bench/results}"
  speed=(--epochs 3 --repeats 3 --fit book,fast,fast-bf16 --iw-n 1000)
  nll=(--dataset "$DATASET" --epochs 10)
else
  dev=cpu; OUT="${OUT:-$(mktemp -d)}"
  speed=(--epochs 1 --repeats 1 --fit book --iw-n 20 --iw-k 50 --threads 1)
  nll=(--dataset digits --epochs 1 --k 20 --n-test 100 --threads 1)
fi
mkdir -p "$OUT"
echo "== bench/gpu.sh on $dev: records in $OUT"
[ "$dev" = cuda ] && { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true; }
"$PY" bench/speed.py --device "$dev" --dataset "$DATASET" "${speed[@]}" --out "$OUT/speed_$dev.json"
ds="${nll[1]}"
"$PY" bench/nll.py --device "$dev" "${nll[@]}" --quiet --out "$OUT/nll_${ds}_$dev.json"
echo "== wrote $OUT/speed_$dev.json and $OUT/nll_${ds}_$dev.json"
