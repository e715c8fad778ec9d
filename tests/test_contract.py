"""The backend contract is enforced: opaque arrays, registration checks, layering of the code."""

import ast
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import sukiyaki.matrix as M
from sukiyaki.backends import BACKEND_MODULES, available_backends, get_backend, register_backend
from sukiyaki.backends.base import ARRAY_PROTOCOL, NN_PRIMITIVES, PRIMITIVES

PACKAGE = Path(__file__).resolve().parents[1] / "sukiyaki"
needs_strict = pytest.mark.skipif("strict" not in available_backends(), reason="strict test backend absent")


@needs_strict
def test_strict_arrays_expose_only_the_metadata_protocol():
    from sukiyaki.backends.strict.backend import ContractError

    A = M.array([[1, 2], [3, 4]], device="strict")
    x = A.data
    assert (x.shape, x.dtype, x.nbytes) == ((2, 2), np.dtype(np.float32), 16)
    assert set(ARRAY_PROTOCOL) == {"shape", "dtype", "nbytes"}
    with pytest.raises(ContractError, match="opaque"):
        np.asarray(x)
    with pytest.raises(TypeError):
        np.add(x, 1)
    with pytest.raises(TypeError):
        x + 1
    with pytest.raises(TypeError):
        x[0]
    with pytest.raises(ContractError):
        bool(x)
    with pytest.raises(ContractError):
        iter(x)
    for attr in ("flags", "base", "T", "reshape", "strides", "__dlpack__"):
        with pytest.raises(AttributeError):
            getattr(x, attr)


@needs_strict
def test_strict_refuses_host_arrays_where_native_ones_belong():
    from sukiyaki.backends.strict.backend import ContractError

    be = get_backend("strict")
    x = be.from_numpy(np.ones((2, 2), np.float32))
    with pytest.raises(ContractError, match=r"binary\['add'\] got a host numpy array .* upload it with from_numpy"):
        be.binary["add"](x, np.ones((2, 2), np.float32))
    with pytest.raises(ContractError, match="take_linear got a host numpy array"):
        be.take_linear(x, np.array([0, 1]))


@needs_strict
def test_strict_counts_and_locates_transfers():
    be = get_backend("strict")
    be.reset_counts()
    A = M.ones(3, 3, device="strict")
    B = M.exp(A) @ A + 1
    assert be.downloads == 0
    B.to_numpy()
    float(M.sum(M.sum(B)))
    assert be.downloads == 2
    assert all(where.startswith("sukiyaki/matrix/") or where.startswith("tests/") for _, where in be.download_log)


@needs_strict
def test_strict_results_are_checked_to_be_column_major(monkeypatch):
    from sukiyaki.backends.strict.backend import ContractError, StrictBackend

    be = StrictBackend()
    monkeypatch.setattr(be._np, "transpose", lambda x, axes: np.ascontiguousarray(np.transpose(x, axes)))
    from sukiyaki.backends.strict import backend as strict_module

    be.transpose = strict_module._checked(be._np.transpose, "transpose")
    x = be.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(ContractError, match="not column-major"):
        be.transpose(x, (1, 0))


def test_numpy_primitives_return_column_major_storage():
    be = get_backend("numpy")
    x = be.from_numpy(np.arange(12, dtype=np.float32).reshape(3, 4))
    row = be.from_numpy(np.arange(4, dtype=np.float32).reshape(1, 4))
    col = be.from_numpy(np.arange(3, dtype=np.float32).reshape(3, 1))
    outs = [be.binary["add"](col, row), be.transpose(x, (1, 0)), be.matmul(x, x, trans_y=True),
            be.matmul(x, x, trans_x=True), be.concat([x, x], 1), be.tile(x, (2, 1)),
            be.reduce("sum", x, 1), be.where(be.binary["gt"](x, 3.0), x, 0.0), be.cumulative("cumsum", x, 1),
            be.from_numpy(np.ones((3, 4), order="C")), be.view(be.reshape(x, (12,)), 2, (2, 3))]
    for out in outs:
        assert out.flags.f_contiguous


def test_a_backend_lacking_primitives_is_refused_at_registration(monkeypatch):
    class Partial:
        name, is_gpu = "partial", False
        binary, unary = {}, {}

        def from_numpy(self, a):
            return a

    module = types.ModuleType("partial_backend")
    module.create = Partial
    monkeypatch.setitem(sys.modules, "partial_backend", module)
    monkeypatch.setitem(BACKEND_MODULES, "partial", "partial_backend")
    with pytest.raises(TypeError, match=r"backend 'partial' cannot be registered: it lacks to_numpy, item.*binary\['add'\].*nn\.conv2d_forward"):
        get_backend("partial")


def test_register_backend_adds_a_backend_found_elsewhere(monkeypatch):
    module = types.ModuleType("numpy_again")
    module.create = lambda: type(get_backend("numpy"))()
    monkeypatch.setitem(sys.modules, "numpy_again", module)
    monkeypatch.setattr("sukiyaki.backends.BACKEND_MODULES", dict(BACKEND_MODULES))
    register_backend("again", "numpy_again")
    assert M.ones(2, device="again").device == "numpy"  # the same class, registered under another name
    with pytest.raises(ValueError, match="backend name must be an identifier"):
        register_backend("not a name", "x")


def test_every_backend_here_has_every_primitive():
    for name in available_backends():
        be = get_backend(name)
        for p in PRIMITIVES:
            assert callable(getattr(be, p)), (name, p)
        for p in NN_PRIMITIVES:
            assert callable(getattr(be.nn, p)), (name, p)


# ---------------------------------------------------------------- layering of the code


def _imports(path):
    """(module names imported anywhere in the file, those imported inside functions)."""
    tree = ast.parse(path.read_text())
    top, inner = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and sub.module:
                    inner.add(sub.module)
                elif isinstance(sub, ast.Import):
                    inner.update(a.name for a in sub.names)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module)
            top.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            top.update(a.name for a in node.names)
    return top, inner


def test_matrix_modules_form_no_import_cycle():
    folder = PACKAGE / "matrix"
    mods = {p.stem: p for p in folder.glob("*.py") if p.stem != "__init__"}
    graph = {}
    for name, path in mods.items():
        top, inner = _imports(path)
        assert not {m for m in inner if m.startswith("sukiyaki.matrix")}, f"matrix/{name}.py imports inside a function"
        graph[name] = {m.split(".")[2] for m in top if m.startswith("sukiyaki.matrix.") and m.split(".")[2] in mods} - {name}
    state = {}

    def visit(n, stack):
        state[n] = "open"
        for m in graph[n]:
            assert state.get(m) != "open", f"import cycle: {' -> '.join(stack + [n, m])}"
            if m not in state:
                visit(m, stack + [n])
        state[n] = "done"

    for n in graph:
        if n not in state:
            visit(n, [])


def test_nn_reaches_backends_only_through_the_ops_facade():
    """No layer, optimizer or network code touches a backend, a native array or an op table
    directly; only sukiyaki/nn/ops.py does, and no nn code imports a particular backend."""
    offenders = []
    for path in (PACKAGE / "nn").rglob("*.py"):
        text = path.read_text()
        rel = path.relative_to(PACKAGE.parent)
        for needle in ("._backend", "binary[", "unary[", "sukiyaki.backends.numpy", "sukiyaki.backends.strict"):
            if needle in text and path.name != "ops.py":
                offenders.append(f"{rel}: {needle}")
        if "._data" in text and path.name != "ops.py":
            offenders.append(f"{rel}: ._data")
    assert not offenders, offenders
