"""Smoke test of benchmarks/matrix_ops.py: it runs, prints every task line and a ratio column.

Timings are not asserted (this machine is shared and noisy); only the report's shape is.
"""

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "matrix_ops.py"
TASK_LINES = {
    "T1": "add 1000x1000 + 1000x1000",
    "T2": "log of 1000x1000",
    "T3": "mtimes 1000x100 * 100x10",
    "T4": "mtimes 1000x1000 * 1000x1000",
    "T5": "plus 1x1 + 1x1",
    "T6": "get of a scalar element",
    "T7": "sum 1000x1000 along dim 1",
}


def test_matrix_ops_quick_prints_every_task_and_ratio(tmp_path):
    out_json = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out_json)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = [ln for ln in lines if ln.startswith("task") and "ratio" in ln]
    assert header, "no table header with a ratio column:\n" + proc.stdout
    for task, label in TASK_LINES.items():
        rows = [ln for ln in lines if ln.startswith(f"{task} {label}")]
        assert rows, f"no line for {task} ({label}):\n" + proc.stdout
        for row in rows:
            assert "numpy/cpu" in row or "/resident" in row or "/with transfer" in row, row
            assert re.search(r"\s\d+\.\d{3}\s", row), f"no ratio in: {row}"
            assert re.search(r"\s(PASS|FAIL|info)\s", row), f"no result in: {row}"
    assert "machine:" in proc.stdout and "BLAS:" in proc.stdout
    assert out_json.is_file()


def test_matrix_ops_rejects_bad_repeats():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--repeats", "0"], capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and "--repeats must be at least 1" in proc.stderr
