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


DIST_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "distributed_scaling.py"


def test_distributed_scaling_quick_prints_tables_and_goals(tmp_path):
    import json

    out_json = tmp_path / "scaling.json"
    proc = subprocess.run(
        [sys.executable, str(DIST_SCRIPT), "--quick", "--json", str(out_json)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "machine:" in out and "cores" in out
    assert "A. Real compute" in out and "cannot pass" in out
    for sc in ("P", "L"):
        assert f"B. Simulated, scenario {sc}" in out, out
    lines = out.splitlines()
    for mode in ("fp32", "8bit", "block8", "local"):
        rows = [ln for ln in lines if re.match(rf"{mode}\s+[12]\s+\d", ln)]
        assert len(rows) == 4, f"{mode}: expected 2 worker counts x 2 scenarios:\n{out}"
        for row in rows:
            assert re.search(r"\s\d+\.\d{2}\s", row), f"no speed-up or ratio in: {row}"
    assert "link bound" in out or "bound =" in out
    goals = [ln for ln in lines if re.match(r"\s+(PASS|FAIL|n/a)\s", ln)]
    assert len(goals) == 5, out
    data = json.loads(out_json.read_text())
    assert data["quick"] and data["real"] and set(data["simulated"]) == {"P", "L"}
    assert {"date", "machine", "versions", "goals", "run_s"} <= set(data)

