"""A wheel of the running sukiyaki, built in memory (what the browser installs with micropip).

The package is pure Python (DESIGN.md, decision 1), so its wheel is a zip of the package
folder as it is installed here, plus a ``.dist-info`` folder: ``METADATA`` (name, version,
the numpy requirement), ``WHEEL`` (``py3-none-any``, purelib) and ``RECORD`` (the sha256 and
size of every file, as PEP 376/427 write them). Package data goes along: the bundled MNIST
digits (``*.gz``), network definitions and fixtures (``*.json``), kernels (``*.cu``,
``*.wgsl``), pages and scripts (``*.html``, ``*.js``). Byte code and caches stay out. Entries
are sorted and dated 1980-01-01, so the same tree gives the same bytes; the result is cached
once per process (:func:`sukiyaki_wheel`).

Example:
    >>> name, data = sukiyaki_wheel()
    >>> name.startswith("sukiyaki-") and name.endswith("-py3-none-any.whl")
    True
"""

import base64
import hashlib
import io
import zipfile
from pathlib import Path

import sukiyaki

#: File name patterns that go into the wheel (the package's code and its data).
INCLUDE = ("*.py", "*.json", "*.gz", "*.cu", "*.wgsl", "*.html", "*.js", "*.css")
#: Folders never included.
EXCLUDE_DIRS = {"__pycache__"}
_DATE = (1980, 1, 1, 0, 0, 0)
_cache = {}


def _record_hash(data):
    """``sha256=<urlsafe base64, no padding>`` as RECORD writes it."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _package_files(root):
    """(path inside the wheel, path on disk) of every file of the package to ship, sorted."""
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root.parent)
        if not path.is_file() or EXCLUDE_DIRS.intersection(rel.parts):
            continue
        if any(path.match(p) for p in INCLUDE):
            files.append((rel.as_posix(), path))
    return files


def _metadata(name, version):
    return (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            "Summary: A MATLAB-like n-d matrix library and deep-learning platform that runs wherever "
            "Python runs, browsers included\n"
            "Requires-Python: >=3.11\nRequires-Dist: numpy>=1.26\n").encode("utf-8")


def build_wheel(root=None, name="sukiyaki", version=None):
    """Build the wheel of a pure-Python package folder.

    Args:
        root: the package folder (default: the running sukiyaki's).
        name: the distribution name.
        version: its version (default: ``sukiyaki.__version__``).
    Returns:
        (file name, bytes), e.g. ``("sukiyaki-0.1.0-py3-none-any.whl", b"PK...")``.
    Raises:
        ValueError when the folder holds no ``__init__.py``.
    """
    root = Path(root if root is not None else Path(sukiyaki.__file__).parent).resolve()
    if not (root / "__init__.py").is_file():
        raise ValueError(f"build_wheel: {root} is not a Python package folder (no __init__.py)")
    version = version or sukiyaki.__version__
    dist_info = f"{name}-{version}.dist-info"
    entries = [(arc, path.read_bytes()) for arc, path in _package_files(root)]
    entries.append((f"{dist_info}/METADATA", _metadata(name, version)))
    entries.append((f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: sukiyaki.web.wheel\n"
                                          b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    record = "".join(f"{arc},{_record_hash(data)},{len(data)}\n" for arc, data in entries)
    record += f"{dist_info}/RECORD,,\n"
    entries.append((f"{dist_info}/RECORD", record.encode("utf-8")))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arc, data in entries:
            info = zipfile.ZipInfo(arc, date_time=_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return f"{name}-{version}-py3-none-any.whl", buf.getvalue()


def sukiyaki_wheel():
    """(file name, bytes) of the running sukiyaki's wheel, built on the first call of the process."""
    if "wheel" not in _cache:
        _cache["wheel"] = build_wheel()
    return _cache["wheel"]
