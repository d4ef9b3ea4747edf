#!/usr/bin/env bash
# One GPU session in one command: the environment, the CUDA tests, then the benchmark suite.
#
#   bash benchmarks/gpu.sh                  # from the repository root, on a machine with a GPU
#
# Runs from the source tree with the machine's own python3 and torch (nothing is installed).
# Each step gets a time limit, all within BUDGET seconds (default 540), so that a slow or stuck
# step cannot take the others' time. Logs and the suite's JSON go to $OUT (default
# benchmarks/results). Environment: PYTHON, BUDGET, ITEMS (per workload, default 50000), REPEAT,
# WORKERS, POST_WORKERS, and STEPS, the steps to run (default all: "tests transport bench profile").
# Output goes to files, not through a pipe: Inductor's compile workers outlive the suite and would
# hold a pipe (and the script) open.
set -u
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/results}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONPATH="$PWD:$PWD/runtime${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
start=$SECONDS
budget=${BUDGET:-540}
# The limit for the next step: at most $1 seconds, and never past the budget.
limit() { local left=$((budget - (SECONDS - start))); ((left < 1)) && left=1; echo $((left < $1 ? left : $1)); }
step() { echo; echo "=== $1 (at ${SECONDS}s, limit $2s)"; }
steps=" ${STEPS:-tests transport bench profile} "
wanted() { [[ $steps == *" $1 "* ]]; }

step environment 30
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
timeout -k 5 30 "$py" -c "import sys, torch, platform; print(platform.python_version(), torch.__version__, torch.cuda.get_device_name(), torch.get_num_threads(), 'threads')"

# Python >= 3.12 warns when a multi-threaded process forks (CUDA and torch start threads; the
# DataLoader workers fork): not an error of the code under test.
pytest_args=(-q -p no:cacheprovider -W "ignore:This process:DeprecationWarning")
if wanted tests; then
t=$(limit 120); step "CUDA tests" "$t"
timeout -k 10 "$t" "$py" -m pytest "${pytest_args[@]}" tests/e2e/test_cuda.py \
    tests/unit/padl_runtime/test_executor.py::test_cuda_outputs_match_cpu_outputs \
    >"$out/cuda_tests.log" 2>&1
grep -E "^(E |FAILED|ERROR)|passed|failed" "$out/cuda_tests.log" | tail -n 40
fi

# Cheap, and the figure behind the by-value threshold on this machine's CPU.
if wanted transport; then
t=$(limit 40); step "transport: a batch from a DataLoader worker, shared memory vs by value" "$t"
timeout -k 5 "$t" "$py" -m benchmarks.transport --workers "${WORKERS:-8}" --batches 300 --repeat 2 \
    >"$out/transport.log" 2>&1
cat "$out/transport.log"
fi

# Every eval_apply also with the post stage in worker processes (POST_WORKERS, a comma list).
# One count keeps the steps within budget: on the H200, 4 beat or matched 2 on image, text and
# tabular; on tiny 2 did better (POST_WORKERS=2,4 runs both).
bench=(-m benchmarks --device cuda --size full --batch-size 256 --workers "${WORKERS:-8}"
       --items "${ITEMS:-50000}" --repeat "${REPEAT:-2}" --latency-calls 500
       --post-workers "${POST_WORKERS:-4}")
if wanted bench; then
# One workload per step, so that a slow build cannot eat the others' time; the cheapest first.
# The image workload is the one the stage-boundary move is for: its export and AOTInductor builds
# move normalise, while TorchScript cannot (vmap), so it is left out there. Text's export keeps
# the fused TransformerEncoderLayer kernel, as TorchScript does.
for spec in "tiny eager,torchscript 80" "text eager,export,torchscript 120" \
            "image eager,export,aoti 170" "tabular eager,torchscript 80"; do
    read -r workload backends cap <<<"$spec"
    t=$(limit "$cap"); step "benchmark: $workload ($backends)" "$t"
    timeout -k 10 "$t" "$py" "${bench[@]}" --workloads "$workload" --backends "$backends" \
        --json "$out/gpu_$workload.json" >"$out/bench_$workload.log" 2>&1
    grep -v Warning "$out/bench_$workload.log" | grep -E "alone|limit|loop|eval_apply|MISSED|met" \
        | cut -c1-150
done
fi
if wanted profile; then
for workload in ${PROFILE:-text}; do
t=$(limit 60); step "profile: $workload, main process" "$t"
timeout -k 10 "$t" "$py" -m benchmarks.hotspots --workload "$workload" --device cuda \
    --workers "${WORKERS:-8}" --items 20000 --backend torchscript \
    >"$out/profile_$workload.log" 2>&1
grep -v Warning "$out/profile_$workload.log" | head -n 80
done
fi
echo; echo "=== done at ${SECONDS}s"
