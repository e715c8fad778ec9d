#!/usr/bin/env bash
# Download, here, the wheels the lent GPU machine lacks (its Python is 3.12, x86-64, and it
# reaches no registry), into .whl/ (ignored by git; carried with the run): cuDNN's Python
# frontend, which CuPy 14 no longer wraps, and wgpu (the webgpu backend) with its dependencies;
# and Vulkan's loader (libvulkan1, a Debian package) into .gl/, which gpu_run.sh unpacks there.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl 'nvidia-cudnn-frontend==1.32.0'
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl 'wgpu==0.31.1' cffi pycparser rendercanvas
grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo '/.gl/' >> .git/info/exclude
mkdir -p .gl /tmp/amd64/partial
apt_amd64='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
# shellcheck disable=SC2086
apt-get $apt_amd64 update >/dev/null && (cd .gl && apt-get $apt_amd64 download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
# the tests' shared data (../shared does not travel): compat cases and the MNIST sample
grep -qx '/.shared/' .git/info/exclude 2>/dev/null || echo '/.shared/' >> .git/info/exclude
mkdir -p .shared && cp -r ../shared/compat ../shared/data .shared/
