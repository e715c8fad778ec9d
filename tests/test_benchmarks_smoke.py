"""Smoke test of benchmarks/matrix_ops.py: it runs, prints every task line and a ratio column.

Timings are not asserted (this machine is shared and noisy); only the report's shape is.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

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


ACCURACY_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "distributed_accuracy.py"


def test_distributed_accuracy_quick_compares_the_codecs_with_fp32(tmp_path):
    import json

    out_json = tmp_path / "accuracy.json"
    proc = subprocess.run([sys.executable, str(ACCURACY_SCRIPT), "--seeds", "0", "--epochs", "1", "--modes",
                           "fp32,8bit", "--json", str(out_json)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"seed 0 8bit\s+test accuracy \d+\.\d+ %", proc.stdout), proc.stdout
    data = json.loads(out_json.read_text())
    assert [r["mode"] for r in data["runs"]] == ["fp32", "8bit"] and data["summary"]["fp32"]["mean_accuracy"] > 0.8
    assert data["goals"][0]["result"] in ("PASS", "FAIL")


BROWSER_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "browser_speed.py"


def test_browser_speed_quick_prints_every_row_and_goal(tmp_path):
    """benchmarks/browser_speed.py --quick in headless Chromium: ours, WebGPU (measured or 'not
    available' with a reason), ConvNetJS and TF.js rows with ratios, boot, stalls, the five goals."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("browser_speed", BROWSER_SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    missing = bench.missing_basics(Path(__file__).resolve().parents[2] / "shared" / "pyodide" / "0.27.7")
    npm = [why for label, lib, backend in bench.PEERS
           if label in bench.DEFAULT_PEERS and (why := bench.missing_npm(lib, backend))]
    if missing or npm:
        pytest.skip("browser_speed.py needs " + "; ".join(missing + npm[:1]))
    out_json = tmp_path / "browser.json"
    proc = subprocess.run([sys.executable, str(BROWSER_SCRIPT), "--quick", "--json", str(out_json)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    lines = out.splitlines()
    ours = [ln for ln in lines if ln.startswith("ours (numpy, Web Worker)")]
    assert ours and re.search(r"\s\d+\.\d\s", ours[0]), out
    assert any(ln.startswith("ours (WebGPU)") for ln in lines), out
    for label in ("ConvNetJS", "TF.js cpu", "TF.js webgl", "TF.js wasm"):
        row = [ln for ln in lines if ln.startswith(label)]
        assert row, f"no row for {label}:\n{out}"
        assert "not available: " in row[0] or re.search(r"\s\d+\.\d\s+\d+\.\d\d\s", row[0]), row[0]
    assert "ConvNetJS" in out and not [ln for ln in lines if ln.startswith("ConvNetJS") and "not available" in ln]
    assert "boot to the first gradient" in out and "main thread while training" in out
    goals = [ln for ln in lines if re.match(r"\s+(PASS|FAIL|n/a)\s", ln)]
    assert len(goals) == 5, out
    data = json.loads(out_json.read_text())
    assert {"rows", "boot", "stalls", "goals", "machine", "versions", "chromium"} <= set(data)
    assert 0 < data["boot"]["boot_s"] < 120 and data["rows"]["ours (numpy, Web Worker)"]["images_per_s"] > 0


def test_conv_layers_quick_prints_every_pass_beside_pytorch(tmp_path):
    """benchmarks/conv_layers.py (Figure 4) on the CPU: a line per layer, three passes, ours and PyTorch's."""
    pytest.importorskip("torch", reason="the Figure 4 benchmark's peer is PyTorch (the test extra)")
    out_json = tmp_path / "conv.json"
    script = SCRIPT.parent / "conv_layers.py"
    proc = subprocess.run([sys.executable, str(script), "--device", "numpy", "--batch", "1", "--size", "28",
                           "--quick", "--json", str(out_json)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "forward ours" in proc.stdout and "weight grad ours" in proc.stdout, proc.stdout
    import json

    layers = json.loads(out_json.read_text())["layers"]
    assert [r["layer"] for r in layers] == ["conv1_2", "conv3_3", "conv5_2"]
    for r in layers:
        for p in ("forward", "input grad", "weight grad"):
            assert r[p]["ours_ms"] > 0 and r[p]["torch_ms"] > 0, r
        assert re.search(rf"^{r['layer']}\s+{r['side']}x{r['side']}x{r['in']}(\s+\d+\.\d+){{9}}$", proc.stdout, re.M)
