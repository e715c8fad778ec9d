"""sukiyaki.matrix against MATLAB semantics, as recorded by GNU Octave.

Each case of ``fixtures/octave_cases.json`` (made by ``tools/gen_octave_fixtures.py``, whose
docstring describes the encoding) is replayed through the library: sizes must match
exactly, values exactly (float32, NaN equal to NaN), the klass too unless the output is
marked ``values_only`` (Octave doubles such as indices). Cases where Octave raised, or
where an assignment would have grown the matrix, must raise IndexError, ValueError or
TypeError.
"""

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

import sukiyaki.matrix as M

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "octave_cases.json"
GENERATOR = ROOT / "tools" / "gen_octave_fixtures.py"
CASES = json.loads(FIXTURE.read_text())["cases"]
ERRORS = (IndexError, ValueError, TypeError)
#: Case ops that are not a function of the same name in sukiyaki.matrix.
RENAMED = {"var": "variance"}


# ----------------------------------------------------------------- interpreter
def decode(values):
    return np.array([float(v) for v in values], dtype=np.float64)


def build(spec, klass):
    dtype = np.bool_ if klass == "logical" else np.float32
    data = decode(spec["data"]).astype(dtype)
    return M.array(data.reshape(spec["size"], order="F"), klass=klass)


def end_expr(k):
    return M.END if k == 0 else M.END - k


def arg(a):
    """The Python value of an argument spec."""
    if a is None or isinstance(a, (int, float, str)):
        return a
    (key, val), = a.items()
    if key == "m":
        return build(val, val["klass"])
    if key == "mask":
        return build(val, "logical")
    if key == "v":  # an empty list is left out: x.get([]) may read as MATLAB's 0x0 []
        return list(val) if val else M.array(np.zeros((1, 0), dtype=np.float32))
    if key == "vc":
        return M.array(np.array(val, dtype=np.float32).reshape(len(val), 1), klass="single")
    if key == "end":
        return end_expr(val)
    if key == "colon":
        return M.colon(*[arg(p) for p in val])
    raise ValueError(f"unknown argument spec {a!r}")


def run(case):
    """Run a case through the library; returns its outputs as a tuple."""
    op, k = case["op"], case["nargout"]
    args = [arg(a) for a in case["args"]]
    if op == "get":
        return (args[0].get(*args[1:]),)
    if op in ("set_scalar", "set_matrix"):
        z = args[0]
        assert z.set(*args[1:]) is None, "set must modify in place and return None"
        return (z,)
    fn = getattr(M, RENAMED.get(op, op))
    if (op in ("max", "min") and k == 2) or op == "ind2sub":
        return tuple(fn(*args, nargout=k))
    return (fn(*args),)


def as_array(value):
    """(size, float64 values in column-major order, klass or None) of an output."""
    if isinstance(value, M.Matrix):
        a = np.asarray(value.to_numpy())
        assert tuple(a.shape) == tuple(value.shape), (
            f"to_numpy() shape {a.shape} differs from .shape {value.shape}")
        return list(value.shape), a.astype(np.float64).ravel(order="F"), value.klass
    if isinstance(value, (bool, np.bool_)):
        return [1, 1], np.array([float(value)]), "logical"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return [1, 1], np.array([float(value)]), None
    if isinstance(value, (tuple, list)):  # size(A) as a tuple of ints
        return [1, len(value)], np.array([float(v) for v in value]), None
    raise AssertionError(f"unexpected output type {type(value).__name__}: {value!r}")


def describe(case):
    return f"{case['id']}: {case['op']} args={json.dumps(case['args'])[:400]}"


def test_fixture_file_is_sane():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert len(CASES) >= 400
    assert FIXTURE.stat().st_size < 2_000_000


def test_fixtures_up_to_date():
    if shutil.which("octave") is None:
        pytest.skip("GNU Octave not installed")
    spec = importlib.util.spec_from_file_location("gen_octave_fixtures", GENERATOR)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = gen.generate(Path(tmp) / "octave_cases.json")
    committed = json.loads(FIXTURE.read_text())
    assert gen.comparable(committed) == gen.comparable(fresh), (
        "tests/matrix/fixtures/octave_cases.json is out of date: "
        "run python tools/gen_octave_fixtures.py")


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case):
    if case.get("error"):
        why = " (Octave grows the matrix; the library must not)" if case.get("note") else ""
        with pytest.raises(ERRORS):
            run(case)
            pytest.fail(f"no error raised{why}")
        return
    got = run(case)
    assert len(got) == len(case["expect"]), f"{len(got)} outputs, expected {len(case['expect'])}"
    for i, (value, want) in enumerate(zip(got, case["expect"])):
        size, data, klass = as_array(value)
        where = f"output {i + 1} of {describe(case)}"
        assert size == want["size"], f"size {size}, expected {want['size']}; {where}"
        expected = decode(want["data"])
        # compare as float32: the library's single results must equal Octave's bit for bit
        ok = np.array_equal(data.astype(np.float32), expected.astype(np.float32), equal_nan=True)
        assert ok, f"values {data.tolist()}, expected {expected.tolist()}; {where}"
        if not want.get("values_only"):
            assert klass == want["klass"], f"klass {klass}, expected {want['klass']}; {where}"
