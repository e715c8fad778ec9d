"""sukiyaki.matrix indexing against the original Sushi2's MATLAB-made cases.

The 60 cases of ``shared/compat/sushi2-indexing`` (see ``shared/compat/README.md``) give MATLAB
statements (``y = x(...)``, or ``z = x; z(...) = y``) and MATLAB's results as .npy files. The
statements are parsed by a tiny parser of index expressions (numbers, ``end``, ``end-k``,
``a:b``, ``a:s:b``, ``[4 6 5]``), never evaluated. Values are compared as single; cases with
``indexing_error.npy == 1`` (MATLAB raised, or the assignment would have grown z) must raise.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

import sukiyaki.matrix as M

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CORPUS = SHARED / "compat" / "sushi2-indexing"
if not (CORPUS / "cases.json").is_file():
    pytest.skip(f"Sushi2 compatibility corpus not found at {CORPUS}", allow_module_level=True)
CASES = json.loads((CORPUS / "cases.json").read_text())
ERRORS = (IndexError, ValueError, TypeError)

_GET = re.compile(r"^y = x\((.*)\);$")
_SET = re.compile(r"^z\((.*)\) = y;$")
_NUMBER = re.compile(r"^[+-]?\d+$")
_END = re.compile(r"^end(?:([+-])(\d+))?$")


def parse_scalar(tok):
    """A number or an end expression (``end``, ``end-4``, ``end+0``)."""
    tok = tok.strip()
    if _NUMBER.match(tok):
        return int(tok)
    m = _END.match(tok)
    if m:
        k = int(m.group(2) or 0) * (-1 if m.group(1) == "-" else 1)
        return M.END if k == 0 else M.END + k
    raise ValueError(f"cannot parse index token {tok!r}")


def parse_sub(text):
    """One subscript: ``[4 6 5]``, ``a:b``, ``a:s:b``, a number or an end expression."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return [int(t) for t in text[1:-1].split()]
    if text == ":":
        return ":"
    if ":" in text:
        return M.colon(*[parse_scalar(p) for p in text.split(":")])
    return parse_scalar(text)


def parse_subs(text):
    """The subscripts between the parentheses (no commas occur inside brackets)."""
    return [parse_sub(p) for p in text.split(",")]


def load(case, name):
    return np.load(CORPUS / case / f"{name}.npy")


def to_matrix(a):
    return M.array(np.asarray(a, dtype=np.float32))


def check(got, want, what):
    want = np.asarray(want, dtype=np.float32)
    assert tuple(got.shape) == tuple(want.shape), f"{what}: size {got.shape}, expected {want.shape}"
    assert np.array_equal(np.asarray(got.to_numpy(), dtype=np.float32), want), (
        f"{what}: values differ\n got {got.to_numpy()}\nwant {want}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_sushi2_indexing(name):
    statements = CASES[name]["statement"]
    x = to_matrix(load(name, "x"))
    error = bool(load(name, "indexing_error").ravel()[0])
    if name.startswith("nd_range_get"):
        subs = parse_subs(_GET.match(statements[0]).group(1))
        if error:
            with pytest.raises(ERRORS):
                x.get(*subs)
            return
        check(x.get(*subs), load(name, "y"), f"{name} {statements[0]}")
        return
    subs = parse_subs(_SET.match(statements[-1]).group(1))
    y = load(name, "y")
    value = float(y.ravel()[0]) if name.startswith("nd_range_set_scalar") else to_matrix(y)
    if error:
        with pytest.raises(ERRORS):
            x.set(*subs, value)
        return
    assert x.set(*subs, value) is None
    check(x, load(name, "z"), f"{name} {statements[-1]}")


def test_parser():
    assert parse_sub("[4 6 5]") == [4, 6, 5]
    assert parse_sub(":") == ":"
    assert parse_scalar("7") == 7
    for tok in ("end", "end-4", "end+0", "end+2"):
        parse_scalar(tok)
    with pytest.raises(ValueError):
        parse_scalar("x")
    assert len(parse_subs("end-4:0:end-8,[3 4 2 1 5],1")) == 3
