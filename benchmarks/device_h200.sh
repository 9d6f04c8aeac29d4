#!/usr/bin/env bash
# The GPU rows of BENCHMARKS.md, in one call of a lent GPU machine (the project's device tool; one H200, whose
# image has torch but not this project's data dependencies): the anchor comparison (bench_anchor.py, bf16),
# play frames/s (bench_play.py, the named presets and `paper` at 384x640), and the whole quickstart on CUDA.
#
#   Wheels for what the image lacks, for its Python 3.12, into .whl/ (ignored by git): the project's
#   zarr numcodecs donfig google-crc32c webdataset braceexpand crafter opensimplex ruamel.yaml ruamel.yaml.clib
#   minatar lpips starlette uvicorn websockets av pytz, and dreamer4==0.20.2 with the dependencies the image does
#   not hold (benchmarks/bench_anchor.py names the anchor); then, on the machine:
#   bash benchmarks/device_h200.sh OUTDIR
#
# Each part has its own time limit, so one that fails or overruns leaves the others' results in OUTDIR.
set -uo pipefail
out=${1:?usage: bash benchmarks/device_h200.sh OUTDIR}
minutes=${QUICKSTART_MINUTES:-3.5}
parts=${PARTS:-anchor play quickstart}  # a subset reruns only those
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch, platform; print("torch", torch.__version__, "python", platform.python_version(), torch.cuda.get_device_name())'
  echo "$(nproc) CPUs"; } > "$out/bench.log" 2>&1

[[ $parts == *anchor* ]] && timeout 100 python3 benchmarks/bench_anchor.py --device cuda --bf16 --rounds 3 --steps-per-round 3 \
    --tokenizer-batch 16 --tokenizer-frames 8 --dynamics-batch 64 --out "$out/anchor.md" >> "$out/bench.log" 2>&1
echo "anchor exit $?" >> "$out/bench.log"
if [[ $parts == *play* ]]; then  # one process per preset: one that overruns leaves the others' rows
  for preset in quickstart quickstart:crafter micro tiny small base; do
    timeout 35 python3 benchmarks/bench_play.py --device cuda --presets $preset --contexts 8 32 64 --frames 16 \
        --rounds 3 >> "$out/play.md" 2>> "$out/bench.log"
    echo "play $preset exit $?" >> "$out/bench.log"
  done
  timeout 90 python3 benchmarks/bench_play.py --device cuda --presets paper --contexts 32 192 --frames 8 --rounds 2 \
      >> "$out/play.md" 2>> "$out/bench.log"
  echo "play paper exit $?" >> "$out/bench.log"
fi
[[ $parts == *quickstart* ]] || exit 0

start=$(date +%s)
timeout 260 python3 -c 'import sys; from cli.train import main; sys.argv[0] = "dreamer-train"; main()' \
    quickstart --out /tmp/qs --minutes "$minutes" --device cuda > "$out/quickstart.log" 2>&1
echo "quickstart exit $? after $(( $(date +%s) - start )) s" >> "$out/quickstart.log"
tar czf "$out/quickstart.tgz" --exclude='store' --exclude='raw' --exclude='*.pt' -C /tmp qs 2>/dev/null
# the store and each stage's newest checkpoint (under 16 MiB a file), to look at on a CPU afterwards
newest() { for stage in "$@"; do (cd /tmp && ls qs/$stage/checkpoints/*.pt 2>/dev/null | sort | tail -1); done; }
tar czf "$out/world.tgz" -C /tmp $(newest tokenizer phase1) 2>/dev/null
tar czf "$out/agents.tgz" -C /tmp $(newest phase2 phase3) 2>/dev/null
tar czf "$out/store.tgz" -C /tmp qs/store 2>/dev/null
ls -la "$out"
