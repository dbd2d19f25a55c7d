#!/usr/bin/env bash
# The GPU check: one command on a machine with an NVIDIA GPU (its driver installed) and this repository, with
# no network beyond the package registries. It installs what it needs (one environment per Keras backend, in
# parallel: TensorFlow's CUDA build, JAX's and PyTorch's, whose CUDA libraries pin different versions) and,
# within about 8 minutes, prints:
#   - images/s of the served Xception at 299 (features + logits, as the worker runs it) on TensorFlow, JAX and
#     PyTorch, at float32 and float16, batches 16, 64 and 256 (bench/gpu_check.py);
#   - float16's agreement with float32 (max and mean |Δp|) on the 57 real X-rays;
#   - the worker pipeline's figure on the GPU (bench/worker_pipeline.py, 500 images, TensorFlow).
# Without a GPU it stops at once with exit status 2 and says why: nothing here means anything on a CPU.
#
#     bash bench/gpu_check.sh            (GPU_CHECK_DIR: where the environments go, default .gpu-check/)
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
budget=${GPU_CHECK_SECONDS:-480}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! gpus=$(nvidia-smi -L 2>/dev/null) || [ -z "$gpus" ]; then
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi is missing or lists no GPU): nothing to measure." >&2
    echo "gpu_check: run it on a machine with an NVIDIA GPU and its driver; CPU figures come from bench/*.py." >&2
    exit 2
fi
echo "GPU: $gpus"
python=${PYTHON:-python3}
dir=${GPU_CHECK_DIR:-.gpu-check}
mkdir -p "$dir"
left() { echo $(( budget - (SECONDS - started) )); }

deps_of() {  # an optional extra of pyproject.toml (or "" for the base dependencies), one requirement a word
    "$python" -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']
print(' '.join(d.replace(' ', '') for d in (p['optional-dependencies'][sys.argv[1]] if sys.argv[1] else p['dependencies'])))" "$1"
}
base=$(deps_of "")
keras=$(deps_of gpu | tr ' ' '\n' | grep '^keras')
tf=$(deps_of gpu | tr ' ' '\n' | grep '^tensorflow')
jax=$(deps_of backends | tr ' ' '\n' | grep '^jax==' | sed 's/^jax==/jax[cuda12]==/')
torch=$(deps_of backends | tr ' ' '\n' | grep '^torch')
# One environment per backend: the repository's own dependencies, without its CPU-only TensorFlow.
install() {  # name, packages...
    local name=$1; shift
    "$python" -m venv "$dir/$name" &&
    timeout "$install_seconds" "$dir/$name/bin/pip" install -q --disable-pip-version-check "$@" $base &&
    "$dir/$name/bin/pip" install -q --disable-pip-version-check --no-deps -e .
}
install_seconds=$(( $(left) - 200 > 60 ? $(left) - 200 : 60 ))  # the rest is for measuring
echo "installing into $dir/: $tf, $jax, $torch (with $keras), in parallel"
pids=()
for spec in "tensorflow $tf" "jax $jax" "torch $torch"; do
    set -- $spec
    ( install "$1" "$2" "$keras" > "$dir/install-$1.log" 2>&1 ) &
    pids+=($!)
done
installed=()
names=(tensorflow jax torch)
for i in 0 1 2; do
    name=${names[$i]}
    if wait "${pids[$i]}"; then installed+=("$name"); else echo "gpu_check: installing $name failed or ran out of time ($dir/install-$name.log)" >&2; fi
done
echo "installed in $(( SECONDS - started )) s: ${installed[*]:-nothing}"

echo
echo "| backend | GPU | precision | batch | images/s | max |Δp| vs float32 | mean |Δp| |"
echo "|---|---|---|---:|---:|---:|---:|"
status=0
for name in "${installed[@]}"; do
    if [ "$(left)" -lt 60 ]; then echo "gpu_check: out of time before $name" >&2; status=1; continue; fi
    KERAS_BACKEND=$name PYTHONPATH=$PWD TF_CPP_MIN_LOG_LEVEL=2 timeout $(( $(left) > 150 ? 150 : $(left) )) \
        "$dir/$name/bin/python" bench/gpu_check.py 2> "$dir/run-$name.log" || {
            echo "gpu_check: $name did not finish ($dir/run-$name.log):" >&2; tail -3 "$dir/run-$name.log" >&2; status=1; }
done

echo
if [[ " ${installed[*]:-} " == *" tensorflow "* ]] && [ "$(left)" -gt 30 ]; then
    echo "worker pipeline on the GPU (TensorFlow, float32, 500 images):"
    PYTHONPATH=$PWD TF_CPP_MIN_LOG_LEVEL=2 timeout "$(left)" "$dir/tensorflow/bin/python" bench/worker_pipeline.py \
        --images 500 --baseline-images 16 --runtime float32 --batch 64 2> "$dir/pipeline.log" | grep -v '^stored' || {
            echo "gpu_check: the pipeline figure did not finish ($dir/pipeline.log)" >&2; status=1; }
else
    echo "gpu_check: no time or no TensorFlow environment left for the pipeline figure" >&2; status=1
fi
echo "gpu_check: done in $(( SECONDS - started )) s"
exit $status
