"""The examples in the package's docstrings run and print what they say."""

import doctest
import importlib
import pkgutil

import pytest

import sukiyaki

MODULES = sorted(m.name for m in pkgutil.walk_packages(sukiyaki.__path__, "sukiyaki.")
                 if not m.name.endswith("__main__"))


#: Modules that import an optional dependency (an extra) when loaded.
OPTIONAL = {f"sukiyaki.backends.cuda.{m}": ("cupy", "sukiyaki[cuda]") for m in ("backend", "blas", "graph")}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    if name in OPTIONAL:
        package, extra = OPTIONAL[name]
        pytest.importorskip(package, reason=f"{name} imports {package}, absent here (pip install '{extra}')")
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
