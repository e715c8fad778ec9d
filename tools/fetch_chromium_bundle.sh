#!/usr/bin/env bash
# Build, here, a self-contained headless Chromium for the lent GPU machine (it reaches no registry
# and has no browser, no node, no Playwright), for tools/chromium_gpu.py to unpack and run there.
#
# Everything goes into one archive, .chromium/bundle.tar.xz (git-ignored), which is split into
# parts of < PART_MIB MiB (default 46) in separate folders .chromium/a/, .chromium/b/, ... so that
# each part can be carried in its own device call (64 MiB a call, the tracked tree included).
# The archive holds:
#   chromium/         this machine's /usr/lib/chromium (less the Vulkan validation layer and the mock
#                     ICD), lib/ with every shared library ldd resolves for it and its .so files except
#                     glibc's core (libc, libm, libdl, libpthread, librt, libresolv, ld-linux, ...),
#                     plus some that Chromium dlopens (libpci, libglvnd's), fonts/ and fonts.conf, and
#                     glibc/: this machine's glibc, for a machine whose glibc is older than GLIBC_NEEDED
#   site/             Playwright (cp312, manylinux x86_64) and its dependencies, unpacked from their
#                     wheels (a wheel is a zip; its files are the installed package)
#   web/pyodide/0.27.7/            the offline Pyodide the benchmark's page boots
#   web/node_modules/...           only the files benchmarks/browser_speed.py serves (ConvNetJS,
#                                  TF.js 4.22 with its wasm and webgpu backends)
# It also npm-installs @tensorflow/tfjs-backend-webgpu@4.22.0 into benchmarks/.node_modules.
#
#   tools/fetch_chromium_bundle.sh        # then see the usage note at the top of tools/chromium_gpu.py
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${CHROMIUM_DIR:-/usr/lib/chromium}
PART_MIB=${PART_MIB:-46}
PLAYWRIGHT=${PLAYWRIGHT:-playwright==1.65.2}
PYODIDE=${PYODIDE:-../shared/pyodide/0.27.7}
NODE_MODULES=benchmarks/.node_modules/node_modules
grep -qx '/.chromium/' .git/info/exclude 2>/dev/null || echo '/.chromium/' >> .git/info/exclude
rm -rf .chromium
STAGE=.chromium/stage
mkdir -p "$STAGE/chromium/lib" "$STAGE/chromium/fonts" "$STAGE/site" "$STAGE/web" .chromium/wheels

echo "== Chromium from $SRC ($("$SRC/chromium" --version 2>/dev/null || echo '?'))"
(cd "$SRC" && tar --exclude='libVkLayer_khronos_validation.so*' --exclude='libVkICD_mock_icd.so*' \
    --exclude='*.TOC' -cf - .) | tar -C "$STAGE/chromium" -xf -

echo "== shared libraries (ldd closure, glibc's core left out)"
glibc_core='^(libc|libm|libmvec|libdl|libpthread|librt|libresolv|libutil|libanl|libnsl|libBrokenLocale|libthread_db|libnss_[a-z0-9]+)\.so|^ld-linux'
extra=(libGLdispatch.so.0 libGLX.so.0 libEGL.so.1 libGL.so.1 libOpenGL.so.0 libGLESv2.so.2 libwayland-client.so.0
       libxcb-dri3.so.0 libva.so.2 libva-drm.so.2)
tmpdeb=$(mktemp -d)
(cd "$tmpdeb" && apt-get download libpci3 >/dev/null 2>&1 && dpkg -x libpci3_*.deb x) \
    && cp -L "$tmpdeb"/x/usr/lib/x86_64-linux-gnu/libpci.so.3 "$STAGE/chromium/lib/" \
    || echo "   (libpci3 not fetched: GPU info collection falls back to what Vulkan/GL report)"
for name in "${extra[@]}"; do
    for d in /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu; do
        [ -e "$d/$name" ] && { cp -L "$d/$name" "$STAGE/chromium/lib/"; break; }
    done
done
libs_of() {  # the resolved libraries of the ELF files given
    for f in "$@"; do ldd "$f" 2>/dev/null | awk '/=> \//{print $3}'; done | sort -u
}
elves=("$STAGE/chromium/chromium" "$STAGE/chromium/chrome_crashpad_handler" "$STAGE"/chromium/*.so*)
for round in 1 2 3; do  # the libraries' own needs (ldd lists them already; a second round catches dlopen'd extras)
    for lib in $(libs_of "${elves[@]}" "$STAGE"/chromium/lib/*.so*); do
        base=$(basename "$lib")
        [[ $base =~ $glibc_core ]] && continue
        [ -e "$STAGE/chromium/lib/$base" ] || cp -L "$lib" "$STAGE/chromium/lib/$base"
    done
done
missing=$(LD_LIBRARY_PATH="$STAGE/chromium/lib" ldd "$STAGE/chromium/chromium" "$STAGE"/chromium/lib/*.so* 2>/dev/null \
          | grep 'not found' | sort -u || true)
[ -z "$missing" ] || { echo "unresolved: $missing"; exit 1; }
glibc_max=$(for f in "$STAGE/chromium/chromium" "$STAGE/chromium/chrome_crashpad_handler" "$STAGE"/chromium/*.so* \
            "$STAGE"/chromium/lib/*.so*; do objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_2\.[0-9]*'; done \
            | sort -t. -k2 -n -u | tail -1)
echo "   $(ls "$STAGE/chromium/lib" | wc -l) libraries, $(du -sh "$STAGE/chromium/lib" | cut -f1); newest glibc symbol needed: $glibc_max"
echo "$glibc_max" > "$STAGE/chromium/GLIBC_NEEDED"
# this machine's glibc itself, used there only when that machine's is older than the above (chromium_gpu.py
# then points the binaries' program interpreter at this ld.so): it runs with any older-built library
mkdir -p "$STAGE/chromium/glibc"
for name in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libmvec.so.1 libdl.so.2 libpthread.so.0 librt.so.1 libresolv.so.2 \
            libutil.so.1 libanl.so.1 libnss_files.so.2 libnss_dns.so.2; do
    cp -L "/lib/x86_64-linux-gnu/$name" "$STAGE/chromium/glibc/" 2>/dev/null || echo "   (no $name)"
done
ldd --version | head -1 > "$STAGE/chromium/glibc/VERSION"

echo "== fonts (DejaVu) and a fonts.conf that names only them"
for f in DejaVuSans.ttf DejaVuSans-Bold.ttf DejaVuSansMono.ttf DejaVuSerif.ttf; do
    [ -f "/usr/share/fonts/truetype/dejavu/$f" ] && cp "/usr/share/fonts/truetype/dejavu/$f" "$STAGE/chromium/fonts/"
done
cat > "$STAGE/chromium/fonts.conf.in" <<'EOF'
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <dir>@ROOT@/fonts</dir>
  <cachedir>@ROOT@/fontcache</cachedir>
  <alias><family>sans-serif</family><prefer><family>DejaVu Sans</family></prefer></alias>
  <alias><family>serif</family><prefer><family>DejaVu Serif</family></prefer></alias>
  <alias><family>monospace</family><prefer><family>DejaVu Sans Mono</family></prefer></alias>
</fontconfig>
EOF

echo "== $PLAYWRIGHT and its dependencies (cp312, manylinux x86_64), unpacked into site/"
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_28_x86_64 --platform any -d .chromium/wheels "$PLAYWRIGHT"
for w in .chromium/wheels/*.whl; do python3 -m zipfile -e "$w" "$STAGE/site/"; done
chmod -R u+rwX,go+rX "$STAGE/site"
find "$STAGE/site" -path '*/driver/node' -exec chmod +x {} +
ls .chromium/wheels

echo "== @tensorflow/tfjs-backend-webgpu@4.22.0 into benchmarks/.node_modules"
[ -f "$NODE_MODULES/@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js" ] \
    || npm install --no-audit --no-fund --prefix benchmarks/.node_modules @tensorflow/tfjs-backend-webgpu@4.22.0
echo "   benchmarks/.node_modules: $(du -sh benchmarks/.node_modules | cut -f1) (too big to carry whole: web/ holds the served files)"

echo "== web/: Pyodide ($PYODIDE) and the files browser_speed.py serves"
mkdir -p "$STAGE/web/pyodide"
cp -rL "$PYODIDE" "$STAGE/web/pyodide/0.27.7"
chmod -R u+w "$STAGE/web/pyodide"
for f in convnetjs/build/convnet.js @tensorflow/tfjs/dist/tf.min.js \
         @tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js @tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm \
         @tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm \
         @tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm \
         @tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js; do
    if [ -f "$NODE_MODULES/$f" ]; then
        mkdir -p "$STAGE/web/node_modules/$(dirname "$f")" && cp "$NODE_MODULES/$f" "$STAGE/web/node_modules/$f"
    else
        echo "   missing $NODE_MODULES/$f (its rows will say 'not available')"
    fi
done
du -sh "$STAGE"/*

echo "== packing (tar | xz -9 -T2) and splitting into ${PART_MIB} MiB parts"
tar -C "$STAGE" -cf - chromium site web | xz -9 -T2 -c > .chromium/bundle.tar.xz
split -b "${PART_MIB}M" -d -a 2 .chromium/bundle.tar.xz .chromium/bundle.tar.xz.part
letters=(a b c d e f g h)
i=0
total=$(sha256sum .chromium/bundle.tar.xz | cut -d' ' -f1)
nparts=$(ls .chromium/bundle.tar.xz.part* | wc -l)
for p in .chromium/bundle.tar.xz.part*; do
    dir=.chromium/${letters[$i]}
    mkdir -p "$dir"
    mv "$p" "$dir/"
    (cd "$dir" && sha256sum "$(basename "$p")" > SHA256SUMS && echo "$total  bundle.tar.xz parts=$nparts" > BUNDLE_SHA256)
    i=$((i + 1))
done
rm -f .chromium/bundle.tar.xz
rm -rf "$STAGE"
echo "== parts (carry each folder in its own call; see tools/chromium_gpu.py)"
for d in .chromium/?/; do echo "   $d $(du -b "$d" | cut -f1) bytes ($(du -sh "$d" | cut -f1))"; done
