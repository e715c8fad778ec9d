#!/usr/bin/env bash
# Run commands on the lent GPU machine (it reaches no registry): install the wheels carried in
# .whl/ (fetched here by tools/fetch_gpu_wheels.sh), link the shared test data carried in
# .shared/ where the tests look for it (../shared), then run the arguments as one command.
#
#   tools/gpu_run.sh python3 tools/cuda_check.py
#   tools/gpu_run.sh python3 -m pytest -q -k cuda tests
set -uo pipefail
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_run: installing the carried wheels failed"; exit 1; }
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
if [ -d .shared ] && [ ! -e ../shared ]; then
    ln -s "$PWD/.shared" ../shared 2>/dev/null || echo "gpu_run: could not link ../shared; compat tests will skip"
fi
export PYTHONUNBUFFERED=1
exec "$@"
