#!/usr/bin/env bash
# Run commands on the lent GPU machine (it reaches no registry): install the wheels carried in
# .whl/ (fetched here by tools/fetch_gpu_wheels.sh), unpack Vulkan's loader carried in .gl/
# (for the webgpu backend on the GPU's own Vulkan driver), link the shared test data carried in
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
if ls .gl/*.deb >/dev/null 2>&1; then  # Vulkan's loader and libglvnd, which the NVIDIA ICD needs
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
if [ -z "${VK_DRIVER_FILES:-}" ]; then  # the NVIDIA driver's Vulkan manifest, where the image keeps it
    for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
               /etc/vulkan/icd.d/nvidia_icd.json; do
        [ -f "$icd" ] && { export VK_DRIVER_FILES=$icd; break; }
    done
fi
if [ -d .shared ] && [ ! -e ../shared ]; then
    ln -s "$PWD/.shared" ../shared 2>/dev/null || echo "gpu_run: could not link ../shared; compat tests will skip"
fi
export PYTHONUNBUFFERED=1
exec "$@"
