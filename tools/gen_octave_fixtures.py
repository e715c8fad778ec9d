"""Generate MATLAB-semantics fixtures for sukiyaki.matrix with GNU Octave.

The cases are structured data (an op name and argument specs), never Octave source: the
generator turns each case into Octave statements, runs them all in one Octave script
(each case in its own try/catch), and writes what Octave returned to
``tests/matrix/fixtures/octave_cases.json``, which ``tests/matrix/test_octave_fixtures.py``
replays against the library. Inputs are small integers or halves drawn from a fixed seed,
so single-precision results are exact.

Argument specs (the same encoding is read by the test):
    {"m": {"size": [...], "klass": "single", "data": [...]}}  a matrix, column-major data
    3, 2.5                     a plain number (in a subscript: a scalar index)
    ":"                        the magic colon (subscripts only)
    null                       Octave's [] placeholder, e.g. max(x, [], dim)
    {"v": [4, 6, 5]}           a row index vector (a Python list on the test side)
    {"vc": [4, 6, 5]}          a column index vector
    {"colon": [a, b]}, {"colon": [a, s, b]}   a:b and a:s:b; a, b may be end specs
    {"end": k}                 end - k (k = 0 is end; k < 0 is end + |k|)
    {"mask": {"size": [...], "data": [0/1 ...]}}   a logical mask
Data values NaN, Inf, -Inf are the strings "NaN", "Inf", "-Inf".

Ops: "get" (args x, subs...), "set_scalar" / "set_matrix" (args x, subs..., value: ``z = x;
z(subs) = value``), and MATLAB functions called with the args in order ("var" is
``M.variance`` on the Python side; reshape's -1 is Octave's []). Each record holds "expect"
(one entry per output: size, klass, data, and "values_only": true for Octave doubles such
as indices, whose class we do not copy) or "error": true. An assignment that would grow z
is recorded as an error with "note": "grow": the library never grows a matrix. Errors keep
Octave's message in "octave_error" (for people; the test ignores it).

Left out on purpose, where Octave 7 differs or may differ from MATLAB: mean of an empty
0xN or 1x0 matrix without dim (Octave 0x1 and 1x0, MATLAB NaN(1,N) and NaN; given with the
dim instead), any/all of NaN (MATLAB ignores NaN), find(0) (Octave 0x0, MATLAB 1x0), a 0x0
index on a vector (Octave 0x0). Octave 7 returns var/std of an empty single as double: those
outputs are values_only like the indices.

Usage:
    python tools/gen_octave_fixtures.py            # rewrite the fixture file
    python tools/gen_octave_fixtures.py --check    # exit 1 when the file is out of date
"""

import argparse
import json
import math
import random
import subprocess
import sys
import tempfile
from pathlib import Path

SEED = 20170501
ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "matrix" / "fixtures" / "octave_cases.json"
#: Keys that may differ between Octave versions without changing semantics.
VOLATILE_KEYS = ("octave_error",)

rng = random.Random(SEED)


# --------------------------------------------------------------------------- specs
def norm_size(size):
    """MATLAB size: at least 2 entries, trailing singletons dropped."""
    size = [int(s) for s in size] + [1] * max(0, 2 - len(size))
    while len(size) > 2 and size[-1] == 1:
        size.pop()
    return size


def numel(size):
    return math.prod(size)


def num(v):
    """JSON-friendly number: an int when integral."""
    if isinstance(v, str):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def mat(size, data=None, kind="int"):
    """A matrix spec of a given size; data drawn by ``kind`` when not given."""
    size = norm_size(size)
    n = numel(size)
    if data is None:
        data = draw(n, kind)
    assert len(data) == n, (size, len(data))
    return {"m": {"size": size, "klass": "single", "data": [num(v) for v in data]}}


def draw(n, kind="int"):
    """n random values: 'int' -9..9, 'half' halves in -5..5, 'perm' distinct 1..n,
    'small' -3..3, 'pos' 1..9, 'tie' 0..3, 'zero' mostly nonzero with some zeros."""
    if kind == "perm":
        return rng.sample(range(1, n + 1), n)
    if kind == "int":
        return [rng.randint(-9, 9) for _ in range(n)]
    if kind == "half":
        return [rng.randint(-10, 10) / 2 for _ in range(n)]
    if kind == "small":
        return [rng.randint(-3, 3) for _ in range(n)]
    if kind == "pos":
        return [rng.randint(1, 9) for _ in range(n)]
    if kind == "tie":
        return [rng.randint(0, 3) for _ in range(n)]
    if kind == "zero":
        return [0 if rng.random() < 0.3 else rng.randint(-3, 3) or 1 for _ in range(n)]
    raise ValueError(kind)


def mask(size, data=None):
    size = norm_size(size)
    if data is None:
        data = [rng.randint(0, 1) for _ in range(numel(size))]
    return {"mask": {"size": size, "data": data}}


def end(k=0):
    return {"end": k}


def colon(*parts):
    return {"colon": list(parts)}


# ------------------------------------------------------------------ Octave source
def oct_num(v):
    if isinstance(v, str):
        return {"NaN": "NaN", "Inf": "Inf", "-Inf": "-Inf"}[v]
    return repr(v) if isinstance(v, float) else str(v)


def oct_data(size, data, klass):
    fn = "logical" if klass == "logical" else klass
    if not data:
        return f"{fn}(zeros([{' '.join(map(str, size))}]))"
    vals = " ".join(oct_num(v) for v in data)
    return f"{fn}(reshape([{vals}], [{' '.join(map(str, size))}]))"


def oct_expr(a):
    """Octave expression of an argument spec."""
    if a is None:
        return "[]"
    if isinstance(a, str):
        if a != ":":
            raise ValueError(f"unknown string arg {a!r}")
        return ":"
    if isinstance(a, (int, float)):
        return oct_num(a)
    (key, val), = a.items()
    if key == "m":
        return oct_data(val["size"], val["data"], val["klass"])
    if key == "mask":
        return oct_data(val["size"], val["data"], "logical")
    if key == "v":
        return "[" + " ".join(oct_num(v) for v in val) + "]" if val else "zeros(1,0)"
    if key == "vc":
        return "[" + "; ".join(oct_num(v) for v in val) + "]" if val else "zeros(0,1)"
    if key == "end":
        return "end" if val == 0 else (f"end-{val}" if val > 0 else f"end+{-val}")
    if key == "colon":
        return ":".join(f"({oct_expr(p)})" for p in val)
    raise ValueError(f"unknown arg spec {a!r}")


def oct_statements(case):
    """Octave statements computing a case's outputs into r1..rk (or z for set ops)."""
    op, args, k = case["op"], case["args"], case.get("nargout", 1)
    if op == "get":
        subs = ", ".join(oct_expr(s) for s in args[1:])
        return f"A1 = {oct_expr(args[0])};\nr1 = A1({subs});\n"
    if op in ("set_scalar", "set_matrix"):
        subs = ", ".join(oct_expr(s) for s in args[1:-1])
        value = args[-1]
        vexpr = oct_expr(value) if isinstance(value, dict) else f"single({oct_num(value)})"
        return (f"A1 = {oct_expr(args[0])};\nV = {vexpr};\nz = A1;\nz({subs}) = V;\n"
                "if ~isequal(size(z), size(A1)), grow = 1; end\nr1 = z;\n")
    call_args = []
    for a in args:
        if op == "reshape" and isinstance(a, int) and a == -1:
            call_args.append("[]")
        else:
            call_args.append(oct_expr(a))
    outs = ", ".join(f"r{i + 1}" for i in range(k))
    return f"[{outs}] = {op}({', '.join(call_args)});\n"


SCRIPT_HEAD = r"""1;
function emit(fid, v)
  fprintf(fid, '@out %s', class(v));
  fprintf(fid, ' %d', size(v));
  fprintf(fid, '\n');
  if numel(v) > 0
    fprintf(fid, '%.17g ', double(v(:)));
  end
  fprintf(fid, '\n');
end
"""


def octave_script(cases, out_path):
    parts = [SCRIPT_HEAD, f"fid = fopen('{out_path}', 'w');\n"]
    for i, case in enumerate(cases):
        k = case.get("nargout", 1)
        emits = "".join(f"emit(fid, r{j + 1});\n" for j in range(k))
        parts.append(
            f"fprintf(fid, '@case {i}\\n');\ngrow = 0;\ntry\n{oct_statements(case)}"
            f"if grow, fprintf(fid, '@grow\\n'); else\n{emits}end\n"
            "catch err\nfprintf(fid, '@err %s\\n', strrep(err.message, \"\\n\", ' '));\nend\n")
    parts.append("fprintf(fid, '@done\\n');\nfclose(fid);\n")
    return "".join(parts)


def parse_value(tok):
    if tok in ("NaN", "Inf", "-Inf"):
        return tok
    if tok == "-NaN":
        return "NaN"
    return num(float(tok))


def parse_results(text, n):
    """Octave's result file -> list of per-case dicts (expect / error)."""
    lines = text.split("\n")
    if "@done" not in lines:
        raise RuntimeError("Octave did not finish the script")
    results, cur, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("@case "):
            cur = {"expect": []}
            results.append(cur)
        elif line.startswith("@err "):
            cur.pop("expect", None)
            cur.update({"error": True, "octave_error": line[5:].strip()})
        elif line == "@grow":
            cur.pop("expect", None)
            cur.update({"error": True, "note": "grow"})
        elif line.startswith("@out "):
            fields = line.split()
            klass, size = fields[1], [int(s) for s in fields[2:]]
            data = [parse_value(t) for t in lines[i + 1].split()]
            i += 1
            out = {"size": size, "klass": klass, "data": data}
            if klass == "double":
                out["values_only"] = True
            cur["expect"].append(out)
        i += 1
    if len(results) != n:
        raise RuntimeError(f"expected {n} results from Octave, got {len(results)}")
    return results


def run_octave(cases):
    with tempfile.TemporaryDirectory() as tmp:
        script, out = Path(tmp) / "cases.m", Path(tmp) / "results.txt"
        script.write_text(octave_script(cases, out))
        subprocess.run(["octave", "--no-gui", "--quiet", "--no-window-system", "--no-init-file",
                        str(script)], check=True, capture_output=True, timeout=600)
        text = out.read_text()
        ver = subprocess.run(["octave", "--no-gui", "--quiet", "--no-window-system",
                              "--no-init-file", "--eval", "disp(version())"],
                             check=True, capture_output=True, text=True).stdout.strip()
    return parse_results(text, len(cases)), ver


# ------------------------------------------------------------------------ cases
class Cases:
    """Accumulates case records with readable, unique ids: <op>_<tag>_<nn>."""

    def __init__(self):
        self.items, self.counters = [], {}

    def add(self, op, tag, args, nargout=1):
        key = f"{op}_{tag}" if tag else op
        self.counters[key] = self.counters.get(key, 0) + 1
        self.items.append({"id": f"{key}_{self.counters[key]:02d}", "op": op, "args": args,
                           "nargout": nargout})


def sz(size):
    return "x".join(map(str, size))


def resolve(p, extent):
    """Number of an end spec or a number, with end = extent."""
    return extent - p["end"] if isinstance(p, dict) else p


def count(sub, extent):
    """How many indices a subscript selects (for sizing assigned values)."""
    if isinstance(sub, (int, float)) or (isinstance(sub, dict) and "end" in sub):
        return 1
    if sub == ":":
        return extent
    (key, val), = sub.items()
    if key in ("v", "vc"):
        return len(val)
    if key == "m":
        return numel(val["size"])
    if key == "mask":
        return sum(val["data"])
    a, *s, b = [resolve(p, extent) for p in val]
    step = s[0] if s else 1
    return 0 if step == 0 else max(0, math.floor((b - a) / step) + 1)


def region(size, subs):
    """Size of x(subs) for n >= 2 subscripts (the last spans the remaining dims)."""
    n = len(subs)
    ext = list(size) + [1] * max(0, n - len(size))
    ext = ext[:n - 1] + [numel(ext[n - 1:])]
    return [count(s, e) for s, e in zip(subs, ext)]


def lin_patterns(size, full=True):
    """(tag, subs) pairs of one-subscript (linear) indexing on x of ``size``; a core
    subset unless ``full``."""
    n, vec = numel(size), len(size) == 2 and 1 in size
    k = rng.randint(2, n - 1)
    core = [("lin_scalar", [k]), ("lin_end", [end(1)]), ("lin_colon", [":"]),
            ("lin_range", [colon(end(), -2, 1)]),
            ("lin_vec", [{"v": [rng.randint(1, n) for _ in range(4)]}]),
            ("lin_vcol", [{"vc": [rng.randint(1, n) for _ in range(3)]}]),
            ("lin_mat", [mat([2, 3], [rng.randint(1, n) for _ in range(6)])]),
            ("lin_mask", [mask(size)]), ("lin_mask", [mask([1, n])]),
            ("lin_empty", [{"vc": []}]), ("lin_empty", [colon(3, 2)]),
            ("lin_err", [n + 1]), ("lin_err", [0])]
    if not full:
        return core
    pats = core + [("lin_scalar", [n]), ("lin_end", [end()]),
                   ("lin_range", [colon(2, min(5, n))]), ("lin_range", [colon(1, 2, n)]),
                   ("lin_range", [colon(end(2), end())]), ("lin_range", [colon(end(1), -1, 2)]),
                   ("lin_mat", [mat([2, 2], [rng.randint(1, n) for _ in range(4)])]),
                   ("lin_empty", [{"v": []}]), ("lin_empty", [mask(size, [0] * n)]),
                   ("lin_err", [1.5]), ("lin_err", [{"v": [1, n + 1]}]), ("lin_err", [end(-1)]),
                   ("lin_err", [-1]), ("lin_err", [colon(0, 2)])]
    if not vec:  # a 0x0 index on a vector differs between Octave and MATLAB
        pats.append(("lin_empty", [mat([0, 0])]))
    return pats


def sub_patterns(size):
    """(tag, subs) pairs with two or more subscripts on x of ``size``."""
    r, c, nd = size[0], size[1], len(size)
    rest = numel(size[1:])
    rows = {"v": [rng.randint(1, r) for _ in range(3)]}
    pats = [("sub_scalar", [rng.randint(1, r), rng.randint(1, c)] + [1] * (nd - 2)),
            ("sub_scalar", [end(), end()] + [end()] * (nd - 2)),
            ("sub_colon", [":", rng.randint(1, c)] + [":"] * (nd - 2)),
            ("sub_colon", [rng.randint(1, r)] + [":"] * (nd - 1)),
            ("sub_colon", [":"] * nd),
            ("sub_range", [colon(1, min(2, r)), colon(2, c)] + [1] * (nd - 2)),
            ("sub_range", [colon(end(), -1, 1), ":"] + [end()] * (nd - 2)),
            ("sub_range", [colon(1, 2, r), colon(end(1), end())] + [":"] * (nd - 2)),
            ("sub_vec", [rows, {"v": [c, 1, c]}] + [1] * (nd - 2)),
            ("sub_vec", [{"vc": [r, 1]}, {"v": [1, c]}] + [":"] * (nd - 2)),
            ("sub_vec", [rows, ":"] + [{"v": [size[2], 1]}] if nd > 2 else [rows, ":"]),
            ("sub_mask", [mask([r, 1]), ":"] + [":"] * (nd - 2)),
            ("sub_mask", [":", mask([1, c])] + [1] * (nd - 2)),
            ("sub_empty", [":", {"v": []}] + [":"] * (nd - 2)),
            ("sub_empty", [colon(3, 2), ":"] + [1] * (nd - 2)),
            ("sub_empty", [colon(end(), 1, end(1)), 1] + [1] * (nd - 2)),
            ("sub_more", list(rng.randint(1, s) for s in size) + [1]),
            ("sub_more", [":"] * nd + [1, 1]),
            ("sub_err", [r + 1, 1] + [1] * (nd - 2)),
            ("sub_err", [1, c + 1] + [1] * (nd - 2)),
            ("sub_err", [0, 1] + [1] * (nd - 2)),
            ("sub_err", [1, 1.5] + [1] * (nd - 2)),
            ("sub_err", [1, 1] + [1] * (nd - 2) + [2]),
            ("sub_err", [end(-1), ":"] + [1] * (nd - 2)),
            ("sub_err", [{"v": [1, r + 1]}, 1] + [1] * (nd - 2))]
    if r > 2:
        pats.append(("sub_mask", [mask([1, 2], [0, 1]), ":"] + [1] * (nd - 2)))  # short mask
        pats.append(("sub_err", [mask([1, r + 1], [0] * r + [1]), 1] + [1] * (nd - 2)))
    if nd > 2:
        pats += [("sub_fewer", [rng.randint(1, r), rng.randint(c + 1, rest)]),
                 ("sub_fewer", [":", end()]), ("sub_fewer", [end(), ":"]),
                 ("sub_fewer", [colon(1, r), colon(end(2), end())]),
                 ("sub_fewer", [{"v": [r, 1]}, {"v": [rest, 1, c + 1]}]),
                 ("sub_err", [1, rest + 1])]
    if nd > 3:
        pats += [("sub_fewer", [":", 2, {"v": [numel(size[2:]), 1]}]),
                 ("sub_fewer", [1, ":", end(1)])]
    return pats


def vec_patterns(size):
    """(tag, subs) pairs with two subscripts on a row or column vector."""
    n = numel(size)
    if size[0] == 1:
        return [("vec_sub", [1, rng.randint(1, n)]), ("vec_sub", [1, ":"]),
                ("vec_sub", [":", end()]),
                ("vec_sub", [1, colon(2, 4)]), ("vec_sub", [1, {"v": [3, 1, 3]}]),
                ("vec_sub", [1, colon(end(), -2, 1)]), ("vec_sub", [":", mask([1, n])]),
                ("vec_err", [2, 1]), ("vec_err", [1, n + 1])]
    return [("vec_sub", [rng.randint(1, n), 1]), ("vec_sub", [":", 1]), ("vec_sub", [end(), ":"]),
            ("vec_sub", [{"v": [2, 4, 1]}, 1]), ("vec_sub", [colon(end(), -2, 1), 1]),
            ("vec_sub", [{"vc": [1, 2]}, ":"]), ("vec_err", [1, 2]), ("vec_err", [n + 1, 1])]


def rand_sub(extent):
    """A random subscript for a dimension of ``extent`` (>= 1), errors left out."""
    r = rng.randrange(9)
    if r == 0:
        return rng.randint(1, extent)
    if r == 1:
        return ":"
    if r == 2:
        return colon(rng.randint(1, extent), rng.randint(1, extent))
    if r == 3:
        return colon(rng.randint(1, extent), rng.choice([-2, -1, 2, 3]), rng.randint(1, extent))
    if r == 4:
        return end(rng.randint(0, extent - 1))
    if r == 5:
        return colon(end(rng.randint(0, extent - 1)), rng.choice([-1, 1]), rng.choice([1, end()]))
    if r == 6:
        return {"v": [rng.randint(1, extent) for _ in range(rng.randint(1, 4))]}
    if r == 7:
        return {"vc": [rng.randint(1, extent) for _ in range(rng.randint(1, 3))]}
    return mask([1, extent])


def rand_subs(size):
    nd = len(size)
    n = rng.choice([1, nd, nd, nd, max(2, nd - 1), nd + 1])
    ext = list(size) + [1] * max(0, n - nd)
    ext = ext[:n - 1] + [numel(ext[n - 1:])]
    return [rand_sub(e) for e in ext]


GET_SHAPES = [[3, 4], [3, 4, 2], [2, 3, 2, 2], [1, 6], [5, 1]]
FULL_LIN = ([3, 4], [3, 4, 2])
RAND_SHAPES = [[3, 4], [4, 5], [3, 4, 2], [2, 3, 4], [2, 3, 2, 2], [1, 6], [5, 1], [4, 1, 3]]


def build_get(cs):
    for size in GET_SHAPES:
        vec = len(size) == 2 and 1 in size
        pats = lin_patterns(size, size in FULL_LIN)
        more = vec_patterns(size) if vec else sub_patterns(size)
        pats += more if len(size) < 4 else rng.sample(more, 16)
        for tag, subs in pats:
            cs.add("get", f"{tag}_{sz(size)}", [mat(size, kind="perm")] + subs)
    cs.add("get", "scalar_x", [mat([1, 1], [7]), {"v": [1, 1, 1]}])
    cs.add("get", "scalar_x", [mat([1, 1], [7]), {"vc": [1, 1]}])
    cs.add("get", "scalar_x", [mat([1, 1], [7]), mat([2, 2], [1, 1, 1, 1])])
    cs.add("get", "scalar_x", [mat([1, 1], [7]), 1, 1, 1])
    cs.add("get", "scalar_x", [mat([1, 1], [7]), mask([1, 1], [1])])
    cs.add("get", "scalar_x_err", [mat([1, 1], [7]), 2])
    cs.add("get", "empty_x", [mat([0, 3]), ":", 2])
    cs.add("get", "empty_x", [mat([0, 3]), ":"])
    cs.add("get", "empty_x", [mat([3, 0]), 2, ":"])
    cs.add("get", "empty_x_err", [mat([0, 3]), 1])
    for _ in range(16):
        size = rng.choice(RAND_SHAPES)
        cs.add("get", f"rand_{sz(size)}", [mat(size, kind="perm")] + rand_subs(size))


def value_for(size, subs, variant):
    """The value assigned in a set_matrix case: a matrix of the indexed region's size
    ('exact'), another shape with the same elements ('reshaped'), or a wrong one."""
    if len(subs) == 1:
        n = count(subs[0], numel(size))
        shapes = {"exact": [1, n], "reshaped": [n, 1], "wrong": [1, n + 1]}
    else:
        reg = region(size, subs)
        nonsingle = [d for d in reg if d != 1]
        other = [s for s in ([1] + nonsingle, nonsingle + [1], [1, 1] + nonsingle)
                 if norm_size(s) != norm_size(reg)]
        shapes = {"exact": reg, "reshaped": other[0] if other and len(nonsingle) < 2 else None,
                  "wrong": [d + (i == 0) for i, d in enumerate(reg)],
                  "permuted": list(reversed(reg)) if len(set(nonsingle)) > 1 else None}
    shape = shapes.get(variant)
    if shape is None:
        return None
    m = numel(shape)
    return mat(shape, [-v for v in rng.sample(range(1, m + 1), m)])


SET_SHAPES = [[3, 4], [3, 4, 2], [1, 6], [5, 1], [2, 3, 2, 2]]


def build_set(cs):
    for size in SET_SHAPES:
        vec = len(size) == 2 and 1 in size
        pats = lin_patterns(size) + (vec_patterns(size) if vec else sub_patterns(size))
        rng.shuffle(pats)
        for tag, subs in pats[:10 if len(size) < 4 else 6]:
            tag = tag.replace("_err", "_bad")
            cs.add("set_scalar", f"{tag}_{sz(size)}",
                   [mat(size, kind="perm")] + subs + [rng.randint(-10, 10) / 2 - 20])
        good = [(t, s) for t, s in pats if "err" not in t and "empty" not in t]
        for variant in ("exact", "reshaped", "wrong", "permuted"):
            for tag, subs in good[: {"exact": 7, "reshaped": 4}.get(variant, 2)]:
                v = value_for(size, subs, variant)
                if v is not None:
                    cs.add("set_matrix", f"{variant}_{tag}_{sz(size)}",
                           [mat(size, kind="perm")] + subs + [v])
    x = [3, 4]
    grow = [[4, 1], [1, 5], [13], [":", 5], [end(-1), 1], [{"v": [1, 14]}], [3, 4, 2]]
    for subs in grow:
        cs.add("set_scalar", "grow", [mat(x, kind="perm")] + subs + [-1])
    for subs in [[4, ":"], [colon(11, 14)]]:
        v = value_for(x, subs, "exact")
        cs.add("set_matrix", "grow", [mat(x, kind="perm")] + subs + [v])
    cs.add("set_matrix", "repeat", [mat(x, kind="perm"), {"v": [2, 5, 2]},
                                    mat([1, 3], [-1, -2, -3])])
    cs.add("set_matrix", "repeat", [mat(x, kind="perm"), {"v": [1, 1]}, {"v": [2, 2]},
                                    mat([2, 2], [-1, -2, -3, -4])])
    cs.add("set_scalar", "repeat", [mat(x, kind="perm"), {"v": [4, 4, 4]}, -2])
    cs.add("set_matrix", "lin_mat", [mat(x, kind="perm"), mat([2, 2], [1, 5, 9, 12]),
                                     mat([2, 2], [-1, -2, -3, -4])])
    cs.add("set_matrix", "lin_mat", [mat(x, kind="perm"), mat([2, 2], [1, 5, 9, 12]),
                                     mat([1, 4], [-1, -2, -3, -4])])
    cs.add("set_matrix", "lin_colon", [mat(x, kind="perm"), ":", mat([2, 6], draw(12))])
    cs.add("set_matrix", "lin_colon_wrong", [mat(x, kind="perm"), ":", mat([2, 5], draw(10))])
    cs.add("set_matrix", "mask", [mat(x, kind="perm"), mask(x, [1, 0, 0] * 4),
                                  mat([4, 1], [-1, -2, -3, -4])])
    cs.add("set_matrix", "mask_wrong", [mat(x, kind="perm"), mask(x, [1, 0, 0] * 4),
                                        mat([1, 3], [-1, -2, -3])])
    cs.add("set_matrix", "sub_colon_wrong", [mat(x, kind="perm"), ":", ":", mat([2, 6], draw(12))])
    cs.add("set_matrix", "sub_colon", [mat(x, kind="perm"), 1, ":", mat([4, 1], draw(4))])
    cs.add("set_matrix", "nd_region", [mat(x, kind="perm"), colon(1, 2), colon(1, 3),
                                       mat([1, 2, 3], draw(6))])
    cs.add("set_matrix", "nd_region", [mat([3, 4, 2], kind="perm"), 1, ":", ":",
                                       mat([4, 2], draw(8))])
    cs.add("set_matrix", "scalar_matrix", [mat(x, kind="perm"), ":", 2, mat([1, 1], [-5])])


def build_shape(cs):
    x34, x342 = mat([3, 4], kind="perm"), mat([3, 4, 2], kind="perm")
    for sizes in ([2, 6], [4, 3], [12, 1], [1, 12], [2, 2, 3], [2, -1], [-1, 3, 2], [2, 6, 1],
                  [1, 1, 12], [2, -1, 1]):
        cs.add("reshape", "2d", [x34] + sizes)
    for sizes in ([5, -1], [2, 5], [-1, -1]):
        cs.add("reshape", "err", [x34] + sizes)
    for sizes in ([4, 6], [24, 1], [2, -1], [6, 2, 2], [3, 8]):
        cs.add("reshape", "nd", [x342] + sizes)
    cs.add("reshape", "empty", [mat([0, 3]), 3, 0])
    cs.add("reshape", "empty", [mat([0, 3]), 0, 3, 2])
    cs.add("reshape", "empty", [mat([0, 3]), 1, 0])
    for order in ([2, 1], [1, 2], [3, 1, 2], [1, 3, 2], [2, 1, 3]):
        cs.add("permute", "2d", [x34, {"v": order}])
    for order in ([1, 2, 3], [1, 3, 2], [2, 1, 3], [2, 3, 1], [3, 1, 2], [3, 2, 1], [4, 3, 2, 1]):
        cs.add("permute", "3d", [x342, {"v": order}])
    for x, order in ((x34, [1, 1]), (x34, [1, 3]), (x342, [1, 2]), (x342, [1, 2, 4])):
        cs.add("permute", "err", [x, {"v": order}])
    x4 = mat([2, 3, 2, 2], kind="perm")
    for order in ([4, 3, 2, 1], [2, 4, 1, 3]):
        cs.add("permute", "4d", [x4, {"v": order}])
    cs.add("permute", "row", [mat([1, 5], kind="perm"), {"v": [3, 2, 1]}])
    for order in ([2, 3, 1], [3, 1, 2], [4, 1, 2, 3]):
        cs.add("ipermute", "3d", [x342, {"v": order}])
    cs.add("ipermute", "err", [x342, {"v": [2, 1]}])
    for size in ([3, 4], [1, 5], [5, 1], [1, 1], [0, 3]):
        cs.add("transpose", sz(size), [mat(size, kind="perm")])
    cs.add("transpose", "err", [x342])
    for size in ([1, 1, 3], [1, 3], [3, 1], [2, 1, 3], [1, 1, 1, 4], [1, 2, 1, 3], [3, 4, 2],
                 [1, 1], [1, 0, 3], [2, 1, 1, 3]):
        cs.add("squeeze", sz(size), [mat(size, kind="perm")])
    x23 = mat([2, 3], kind="perm")
    for reps in ([2, 3], [1, 1, 2], [3, 1], [2], [1, 2, 1, 2], [0, 2], [1, 1]):
        cs.add("repmat", "2d", [x23] + reps)
    cs.add("repmat", "3d", [mat([2, 1, 2], kind="perm"), 2, 2])
    cs.add("repmat", "row", [mat([1, 3], kind="perm"), 3, 1])
    a, b = mat([2, 3], kind="perm"), mat([2, 3], kind="int")
    for dim in (1, 2, 3, 4):
        cs.add("cat", f"dim{dim}", [dim, a, b])
    cs.add("cat", "three", [2, a, mat([2, 1]), mat([2, 2])])
    cs.add("cat", "three", [1, a, mat([1, 3]), mat([3, 3])])
    cs.add("cat", "3d", [3, x342, mat([3, 4])])
    cs.add("cat", "3d", [1, x342, mat([1, 4, 2])])
    cs.add("cat", "err", [1, a, mat([2, 4])])
    cs.add("cat", "err", [3, a, mat([3, 2])])
    cs.add("cat", "empty", [1, a, mat([0, 3])])
    cs.add("cat", "empty", [2, a, mat([0, 0])])
    cs.add("cat", "single", [2, a])
    cs.add("horzcat", "2", [a, mat([2, 2])])
    cs.add("horzcat", "3", [mat([3, 1]), mat([3, 2]), mat([3, 1])])
    cs.add("horzcat", "3d", [mat([2, 1, 2]), mat([2, 3, 2])])
    cs.add("horzcat", "scalars", [mat([1, 1]), mat([1, 1]), mat([1, 1])])
    cs.add("horzcat", "empty", [a, mat([0, 0])])
    cs.add("horzcat", "empty", [mat([2, 0]), a])
    cs.add("horzcat", "err", [a, mat([3, 3])])
    cs.add("vertcat", "2", [a, mat([1, 3])])
    cs.add("vertcat", "3", [mat([1, 2]), mat([2, 2]), mat([1, 2])])
    cs.add("vertcat", "3d", [mat([1, 3, 2]), mat([2, 3, 2])])
    cs.add("vertcat", "empty", [mat([0, 0]), a])
    cs.add("vertcat", "empty", [mat([0, 3]), a])
    cs.add("vertcat", "err", [a, mat([1, 2])])
    cs.add("vertcat", "err", [mat([1, 3, 2]), a])


def first_nonsingleton(size):
    return next((i + 1 for i, s in enumerate(size) if s != 1), 1)


def mean_integral(size, dim):
    """Integers -4..4 whose means along ``dim`` are integers (exact var/std)."""
    data = [rng.randint(-4, 4) for _ in range(numel(size))]
    if dim > len(size) or size[dim - 1] <= 1:
        return data
    n, stride = size[dim - 1], numel(size[:dim - 1])
    for i in range(numel(size)):
        if (i // stride) % n == 0:
            idx = [i + j * stride for j in range(n)]
            data[idx[-1]] -= sum(data[j] for j in idx) % n
    return data


RED_SHAPES = [([3, 4], (None, 1, 2, 3)), ([2, 3, 2], (None, 1, 2, 3)), ([1, 5], (None, 1, 2)),
              ([4, 1], (None, 1, 2)), ([2, 1, 3], (None, 2, 3)), ([1, 1, 3], (None, 3)),
              ([1, 1], (None,))]
RED_KIND = {"sum": "half", "prod": "small", "mean": "half", "max": "tie", "min": "tie",
            "any": "zero", "all": "zero", "cumsum": "half"}
EMPTY_SHAPES = [[0, 3], [3, 0], [0, 0], [1, 0], [0, 3, 2]]


def red_args(op, x, dim):
    if op in ("max", "min"):
        return [x] if dim is None else [x, None, dim]
    if op in ("var", "std"):
        return [x] if dim is None else [x, 0, dim]
    return [x] if dim is None else [x, dim]


def build_reductions(cs):
    for op in ("sum", "prod", "mean", "max", "min", "any", "all", "cumsum", "var", "std"):
        k = 2 if op in ("max", "min") else 1
        for size, dims in RED_SHAPES:
            for dim in dims:
                if op in ("var", "std"):
                    x = mat(size, mean_integral(size, dim or first_nonsingleton(size)))
                else:
                    x = mat(size, kind=RED_KIND[op])
                cs.add(op, f"{sz(size)}_{'dim' + str(dim) if dim else 'default'}",
                       red_args(op, x, dim), k)
        for size in EMPTY_SHAPES:
            if op == "mean" and size not in ([0, 0], [3, 0]):
                # Octave 7's mean(zeros(0,n)) is 0x1 and mean(zeros(1,0)) 1x0; MATLAB's are
                # NaN(1,n) and NaN: give the dim, where Octave agrees with MATLAB
                dim = first_nonsingleton(size)
                cs.add(op, f"empty_{sz(size)}_dim{dim}", red_args(op, mat(size), dim), k)
                continue
            cs.add(op, f"empty_{sz(size)}", red_args(op, mat(size), None), k)
        cs.add(op, "empty_0x3_dim2", red_args(op, mat([0, 3]), 2), k)
    nan = "NaN"
    for op in ("max", "min"):
        cs.add(op, "nan", [mat([1, 5], [nan, 1, 3, 3, nan])], 2)
        cs.add(op, "nan", [mat([2, 3], [nan, nan, 2, nan, 1, 1])], 2)
        cs.add(op, "nan", [mat([3, 2], [1, nan, 1, "-Inf", nan, "Inf"]), None, 2], 2)
        cs.add(op, "ties", [mat([3, 3], [2, 2, 1, 1, 1, 1, 0, 3, 3]), None, 1], 2)
        cs.add(op, "ties", [mat([3, 3], [2, 2, 1, 1, 1, 1, 0, 3, 3]), None, 2], 2)
        cs.add(op, "nargout1", [mat([3, 4], kind="int")], 1)
        cs.add(op, "nargout1", [mat([3, 4], kind="int"), None, 2], 1)
    cs.add("sum", "nan", [mat([2, 3], [1, nan, 2, 3, "Inf", "-Inf"])])
    cs.add("cumsum", "nan", [mat([3, 2], [1, nan, 2, 3, "Inf", 1])])
    cs.add("prod", "inf", [mat([2, 2], [0, "Inf", 2, "-Inf"])])
    for op in ("var", "std"):
        cs.add(op, "w1", [mat([4, 3], mean_integral([4, 3], 1)), 1])
        cs.add(op, "w1", [mat([4, 3], mean_integral([4, 3], 2)), 1, 2])
        cs.add(op, "w1", [mat([1, 1], [3]), 1])
        cs.add(op, "bad_w", [mat([4, 3], mean_integral([4, 3], 1)), 2])


def build_find(cs):
    for size, data in (([1, 6], [0, 3, 0, 0, 1, 2]), ([6, 1], [1, 0, 0, 2, 0, 3]),
                       ([3, 4], None), ([2, 3, 2], None), ([1, 4], [0, 0, 0, 0]),
                       ([3, 3], [0] * 9), ([0, 0], []), ([1, 0], []), ([0, 3], []),
                       ([1, 1], [5]), ([1, 3], ["NaN", 0, 1])):  # find(0): 0x0 here, 1x0 in MATLAB
        cs.add("find", sz(size), [mat(size, data, kind="zero")])
    s34, s342 = {"v": [3, 4]}, {"v": [3, 4, 2]}
    for tag, args in (("scalar", [s34, 2, 3]), ("row", [s34, {"v": [1, 2, 3]}, {"v": [4, 3, 2]}]),
                      ("col", [s34, {"vc": [3, 1]}, {"vc": [1, 4]}]),
                      ("mat", [s34, mat([2, 2], [1, 2, 3, 1]), mat([2, 2], [4, 4, 1, 2])]),
                      ("3d", [s342, 2, 3, 2]),
                      ("3d", [s342, {"v": [1, 3]}, {"v": [4, 1]}, {"v": [2, 1]}]),
                      ("err", [s34, 4, 1]), ("err", [s34, 1, 5]), ("err", [s34, 0, 1]),
                      ("err", [s34, {"v": [1, 2]}, {"v": [1, 2, 3]}]), ("err", [s342, 1, 1, 3])):
        cs.add("sub2ind", tag, args)
    for tag, args, k in (("2d", [s34, 7], 2), ("2d", [s34, {"v": [1, 5, 12]}], 2),
                         ("2d", [s34, {"vc": [2, 11]}], 2), ("3d", [s342, {"v": [5, 20, 24]}], 3),
                         ("3d_span", [s342, {"v": [5, 20, 24]}], 2), ("nargout1", [s34, 9], 1),
                         ("mat", [s34, mat([2, 2], [1, 6, 8, 12])], 2), ("extra", [s34, 11], 3),
                         ("err", [s34, 13], 2), ("err", [s34, 0], 2)):
        cs.add("ind2sub", tag, args, k)


def build_elementwise(cs):
    for op in ("floor", "ceil", "fix", "round", "sign", "abs"):
        cs.add(op, "3x4", [mat([3, 4], kind="half")])
        cs.add(op, "halves", [mat([1, 8], [-2.5, -1.5, -0.5, 0, 0.5, 1.5, 2.5, -3])])
        cs.add(op, "special", [mat([1, 3], ["NaN", "Inf", "-Inf"])])
        cs.add(op, "empty", [mat([0, 3])])
    pairs = [("same", [3, 4], [3, 4]), ("col_row", [3, 1], [1, 4]),
             ("3d_row", [2, 3, 2], [1, 3]), ("3d_expand", [2, 1, 2], [1, 3]),
             ("scalar_mat", [1, 1], [2, 3]), ("empty", [0, 3], [1, 3]),
             ("err", [3, 2], [2, 3]), ("err", [3, 4], [1, 3])]
    for op in ("plus", "minus", "times", "rdivide", "ldivide", "power", "max", "min"):
        for tag, sa, sb in pairs:
            if op == "power":
                a, b = mat(sa, kind="half"), mat(sb, [rng.randint(0, 3) for _ in range(numel(sb))])
            elif op in ("rdivide", "ldivide"):
                a, b = mat(sa, kind="int"), mat(sb, kind="pos")
                if op == "ldivide":
                    a, b = b, a
            else:
                a, b = mat(sa, kind="half"), mat(sb, kind="half")
            cs.add(op, tag, [a, b])
        cs.add(op, "number", [mat([2, 3], kind="pos"), 2])
        cs.add(op, "number", [3, mat([2, 3], kind="pos")])
    cs.add("rdivide", "zero", [mat([1, 4], [1, -2, 0, 3]), mat([1, 4], [0, 0, 0, 2])])
    cs.add("ldivide", "zero", [mat([1, 4], [0, 0, 0, 2]), mat([1, 4], [1, -2, 0, 3])])
    cs.add("power", "roots", [mat([1, 6], [0, 1, 4, 9, 2.25, 16]), 0.5])
    cs.add("power", "negexp", [mat([1, 6], [1, 2, 4, 0.5, -2, 0]), -1])
    cs.add("power", "negbase", [mat([1, 4], [-2, -1.5, -3, -1]), mat([1, 4], [2, 3, 0, 1])])
    for op in ("max", "min"):
        cs.add(op, "nan", [mat([1, 4], ["NaN", 1, "NaN", 2]), mat([1, 4], [2, "NaN", "NaN", 1])])
        cs.add(op, "nan", [mat([2, 2], [1, "NaN", 3, 4]), 2])
    for tag, sa, sb in (("2x3_3x4", [2, 3], [3, 4]), ("row_col", [1, 3], [3, 1]),
                        ("col_row", [3, 1], [1, 3]), ("square", [3, 3], [3, 3]),
                        ("empty_inner", [2, 0], [0, 3]), ("empty_outer", [0, 3], [3, 2]),
                        ("err", [2, 3], [2, 3]), ("err_3d", [2, 3, 2], [3, 2])):
        cs.add("mtimes", tag, [mat(sa, kind="small"), mat(sb, kind="small")])
    cs.add("mtimes", "scalar", [2, mat([2, 3], kind="small")])
    cs.add("mtimes", "scalar", [mat([1, 1], [-2]), mat([2, 3], kind="small")])


INFO_SHAPES = [[1, 1], [1, 5], [5, 1], [3, 4], [2, 3, 2], [0, 0], [1, 0], [0, 3], [1, 1, 3]]


def build_info(cs):
    for size in INFO_SHAPES:
        x = mat(size, kind="pos")
        cs.add("size", sz(size), [x])
        for op in ("numel", "ndims", "length", "isempty", "isrow", "iscolumn", "isvector",
                   "isscalar"):
            cs.add(op, sz(size), [x])
    for size, dims in (([3, 4], (1, 2, 3)), ([2, 3, 2], (3, 4)), ([0, 3], (1, 2)),
                       ([2, 3, 1, 2], (3, 4, 5))):
        if dims[0] == 3 and len(size) == 4:
            cs.add("size", sz(size), [mat(size, kind="pos")])
            cs.add("ndims", sz(size), [mat(size, kind="pos")])
        for d in dims:
            cs.add("size", f"{sz(size)}_dim{d}", [mat(size, kind="pos"), d])


def build_cases():
    """Every case, in a fixed order (the random draws depend on it)."""
    cs = Cases()
    for part in (build_get, build_set, build_shape, build_reductions, build_find,
                 build_elementwise, build_info):
        part(cs)
    return cs.items


def generate(path=FIXTURE):
    """Build the cases, run Octave, write the fixture file; returns the document."""
    rng.seed(SEED)
    cases = build_cases()
    ids = [c["id"] for c in cases]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise RuntimeError(f"duplicate case ids: {sorted(dup)}")
    results, version = run_octave(cases)
    records = []
    for case, res in zip(cases, results):
        rec = {"id": case["id"], "op": case["op"], "args": case["args"],
               "nargout": case.get("nargout", 1)}
        rec.update(res)
        records.append(rec)
    doc = {"generator": "tools/gen_octave_fixtures.py", "octave_version": version,
           "seed": SEED, "count": len(records), "cases": records}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(dumps(doc))
    return doc


def dumps(doc):
    """One case per line, so that diffs stay readable."""
    head = {k: v for k, v in doc.items() if k != "cases"}
    body = ",\n".join(json.dumps(c, separators=(",", ":")) for c in doc["cases"])
    head_txt = json.dumps(head, indent=1)[:-2]
    return f'{head_txt},\n "cases": [\n{body}\n]}}\n'


def comparable(doc):
    """The cases with version-dependent keys removed."""
    return [{k: v for k, v in c.items() if k not in VOLATILE_KEYS} for c in doc["cases"]]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(FIXTURE), help="fixture file to write")
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing")
    a = ap.parse_args(argv)
    if a.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = generate(Path(tmp) / "fresh.json")
        old = json.loads(Path(a.out).read_text())
        if comparable(old) != comparable(fresh):
            print(f"{a.out} is out of date; rerun tools/gen_octave_fixtures.py")
            return 1
        print(f"{a.out} is up to date ({fresh['count']} cases)")
        return 0
    doc = generate(a.out)
    counts = {}
    for c in doc["cases"]:
        counts[c["op"]] = counts.get(c["op"], 0) + 1
    print(f"wrote {doc['count']} cases to {a.out} (Octave {doc['octave_version']})")
    print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
