"""tools/chromium_gpu.py's pieces that run without a browser: the parts' reader, the program
interpreter's patch and the adapter's classification."""

import hashlib
import importlib.util
import shutil
import struct
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "chromium_gpu.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("chromium_gpu", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def interp_of(path):
    data = Path(path).read_bytes()
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        ph = data[phoff + i * phentsize: phoff + (i + 1) * phentsize]
        if struct.unpack_from("<I", ph, 0)[0] == 3:
            off, = struct.unpack_from("<Q", ph, 8)
            size, = struct.unpack_from("<Q", ph, 32)
            return data[off:off + size].split(b"\0")[0].decode()
    return None


def test_joined_reads_parts_as_one_file_and_hashes_them(tool, tmp_path):
    blob = bytes(range(256)) * 1000
    paths = []
    for i, lo in enumerate(range(0, len(blob), 70001)):
        paths.append(tmp_path / f"p{i:02d}")
        paths[-1].write_bytes(blob[lo:lo + 70001])
    joined = tool.Joined(paths)
    got = b"".join(iter(lambda: joined.read(4096), b""))
    assert got == blob and joined.hash.hexdigest() == hashlib.sha256(blob).hexdigest()


def test_set_interpreter_rewrites_pt_interp_in_place(tool, tmp_path):
    src = shutil.which("true")
    if src is None or interp_of(src) is None:
        pytest.skip("no dynamically linked ELF64 'true' here")
    exe = tmp_path / "true"
    shutil.copy(src, exe)
    old = interp_of(exe)
    tool.set_interpreter(exe, tool.INTERP)
    assert interp_of(exe) == tool.INTERP
    tool.set_interpreter(exe, old)
    assert interp_of(exe) == old
    with pytest.raises(ValueError):
        tool.set_interpreter(exe, "/" + "x" * 200)


def test_real_gpu_means_a_hardware_adapter(tool):
    assert tool.is_real_gpu({"vendor": "nvidia", "architecture": "hopper", "description": "NVIDIA H200"})
    assert not tool.is_real_gpu({"vendor": "google", "architecture": "swiftshader"})
    assert not tool.is_real_gpu({"vendor": "mesa", "description": "llvmpipe (LLVM 15.0.6, 256 bits)"})
    assert not tool.is_real_gpu({"vendor": "nvidia", "is_fallback": True})
    assert not tool.is_real_gpu(None) and not tool.is_real_gpu({"vendor": "", "architecture": ""})
