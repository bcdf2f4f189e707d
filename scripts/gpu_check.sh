#!/usr/bin/env bash
# One device call: versions, the Triton tests on the compiled kernels, the GPU benchmark.
# Usage (on a CUDA machine, repository root):
#   OUT=/tmp/out bash scripts/gpu_check.sh [tests] [conformance] [bench] [quick] [grid] [cpu16] [modern]
# tests: tests/kernels/test_triton.py on the compiled kernels (second-order gradients included);
# conformance: the presets against torch.nn's cuDNN on torch's module_db samples, every backend,
# and the cuDNN weight flattening (tests/layers/test_module_db.py -m gpu); bench: benchmarks/bench_triton.py
# (quick: bf16 only); grid: `rnnkit bench --device cuda` at the issue's shape and on its grid;
# cpu16: issue 21's CPU targets at 1, 4 and 16 threads on the machine's 16 cores, training,
# B=1 inference and auto's small-batch LSTM rule (the compiled loops are built first, so the
# timed run does not include the build; under 10 minutes); modern: the LRU, RG-LRU, S6, sLSTM,
# mLSTM and the Griffin/Mamba blocks on CUDA against the CPU (tests/cells/test_modern_cuda.py),
# then their speed beside cuDNN at one shape (`rnnkit bench --device cuda`).
set -u
OUT=${OUT:-/tmp/rnnkit_gpu}; mkdir -p "$OUT"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
# pyproject's addopts without its pytest-xdist options: the device's Python may lack xdist, and
# these runs are one file each on one GPU
ADDOPTS="-ra --import-mode=importlib"
steps=${*:-tests bench}
nvidia-smi -L
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
if [[ " $steps " == *" tests "* ]]; then
  timeout "${TEST_S:-270}" python3 -m pytest -q -p no:cacheprovider -o "addopts=$ADDOPTS" --tb=short -rs \
    tests/kernels/test_triton.py 2>&1 | tee "$OUT/tests_triton.log" | tail -60
fi
if [[ " $steps " == *" conformance "* ]]; then
  timeout "${CONF_S:-240}" python3 -m pytest -q -p no:cacheprovider -o "addopts=$ADDOPTS" --tb=short -rs -m gpu \
    tests/layers/test_module_db.py 2>&1 | tee "$OUT/tests_conformance.log" | tail -40
fi
if [[ " $steps " == *" bench "* ]]; then
  extra=""; [[ " $steps " == *" quick "* ]] && extra="--quick"
  timeout "${BENCH_S:-270}" python3 benchmarks/bench_triton.py $extra \
    --json "$OUT/triton_gpu.json" 2>"$OUT/bench_triton.err"
  tail -5 "$OUT/bench_triton.err"
fi
if [[ " $steps " == *" grid "* ]]; then
  timeout "${GRID_S:-120}" python3 -m rnnkit bench --device cuda --backends auto --clock wall \
    --shapes 32,100,128,256 --repeats 15 --out "$OUT/bench_cuda_target.json" 2>&1 | tail -25
  timeout "${GRID_S:-300}" python3 -m rnnkit bench --device cuda --backends auto --clock wall \
    --repeats 5 --out "$OUT/bench_cuda_grid.json" 2>&1 | tail -5
fi
if [[ " $steps " == *" cpu16 "* ]]; then
  python3 -c "from rnnkit.kernels import compiled; assert compiled.ext() is not None" || exit 1
  timeout "${CPU16_S:-270}" python3 -m rnnkit bench --backends auto --clock wall \
    --cells lstm,gru,ln_lstm,ln_gru,lstm_zoneout,lstm_rec_dropout,lstm_weight_drop \
    --shapes '32,100,128,256;128,100,128,512' --threads 1,4,16 --repeats 3 \
    --no-memory --out "$OUT/bench_cpu16_matrix.json" 2>&1 | tail -40
  timeout "${CPU16_S:-210}" python3 -m rnnkit bench --backends auto --clock wall \
    --cells qrnn,sru,indrnn,mingru,minlstm \
    --shapes '32,100,128,256;128,100,128,512;32,1000,128,512' --threads 1,4,16 --repeats 3 \
    --no-memory --out "$OUT/bench_cpu16_elementwise.json" 2>&1 | tail -40
  timeout "${CPU16_S:-60}" python3 benchmarks/bench_streaming.py --threads 1,4,16 --repeats 5 \
    --json "$OUT/streaming_cpu16.json" 2>&1 | grep seq
  # auto's small-batch LSTM inference rule (B <= 4 above one thread) at 4 and 16 threads
  timeout "${CPU16_S:-45}" python3 benchmarks/bench_lstm_auto.py --threads 4,16 --batches 1,2,4,8 \
    --proj-batches "" --rounds 3 --json "$OUT/lstm_auto_cpu16.json" 2>&1 | tail -8
fi
if [[ " $steps " == *" modern "* ]]; then
  timeout "${MODERN_S:-180}" python3 -m pytest -q -p no:cacheprovider -o "addopts=$ADDOPTS" --tb=short -rs \
    tests/cells/test_modern_cuda.py 2>&1 | tee "$OUT/tests_modern_cuda.log" | tail -20
  timeout "${MODERN_S:-180}" python3 -m rnnkit bench --device cuda --backends auto --clock wall \
    --cells gru,lru,rglru,s6,slstm,mlstm --shapes '32,1000,128,256' --repeats 5 --no-memory \
    --out "$OUT/bench_cuda_modern.json" 2>&1 | tail -12
fi
