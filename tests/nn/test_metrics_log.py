"""The trainer's JSON-lines metrics log (``Trainer(metrics_log=...)``, ``sukiyaki train --log``)."""

import io
import json
from pathlib import Path

import numpy as np
import pytest

from sukiyaki.cli import main
from sukiyaki.data import load_mnist
from sukiyaki.nn import Net
from sukiyaki.nn.train import Trainer, make_optimizer

LENET = Path(__file__).resolve().parents[2] / "sukiyaki" / "nets" / "lenet.json"


@pytest.fixture(scope="module")
def small_test(tmp_path_factory):
    """The first 100 test digits: as in-memory arrays and as an .npz for --data."""
    x, t = load_mnist(split="test")
    path = tmp_path_factory.mktemp("data") / "test100.npz"
    np.savez(path, images=x[..., :100], labels=t[0, :100])
    return (x[..., :100], t[:, :100]), str(path)


def trainer(small_test, **kw):
    net = Net(str(LENET), seed=0, data_sources={"d_test": small_test[0]})
    kw.setdefault("iterations", 12)
    return Trainer(net, make_optimizer("momentum_sgd", lr=0.01), batch_size=16, progress=False, log=None,
                   read_every=5, **kw)


def read_lines(path):
    lines = Path(path).read_text().splitlines()
    return [json.loads(line) for line in lines]  # every line is one JSON object


def check_records(records, iterations, val_at):
    losses = [r for r in records if "loss" in r]
    vals = [r for r in records if "validation" in r]
    assert len(losses) + len(vals) == len(records)
    assert [r["iteration"] for r in losses] == list(iterations)  # one per iteration, increasing
    for r in losses:
        assert set(r) == {"iteration", "loss", "images_per_s", "time"}
        assert np.isfinite(r["loss"]) and r["loss"] > 0 and r["images_per_s"] > 0 and r["time"] > 1.6e9
    assert [r["iteration"] for r in vals] == list(val_at)
    for r in vals:
        assert set(r["validation"]) == {"accuracy", "loss"} and 0 <= r["validation"]["accuracy"] <= 1
    its = [r["iteration"] for r in records]
    assert its == sorted(its)  # validation lines come after the losses of their iteration


def test_trainer_writes_loss_and_validation_lines(small_test, tmp_path):
    path = tmp_path / "runs" / "metrics.jsonl"  # the folder is created
    tr = trainer(small_test, val_cycle=5, metrics_log=str(path))
    assert not path.exists()  # opened when training starts
    tr.train()
    records = read_lines(path)
    check_records(records, range(1, 13), [5, 10, 12])
    assert records[-1]["validation"] == {k: v for k, v in tr.history[-1].items() if k not in ("iteration", "images")}


def test_log_is_appended_and_flushed_per_line(small_test, tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"note": "an earlier run"}\n')
    buf = io.StringIO()
    flushes = []
    buf.flush = lambda: flushes.append(buf.getvalue().count("\n"))
    trainer(small_test, iterations=4, val_cycle=None, metrics_log=buf).train()
    assert flushes == [1, 2, 3, 4]  # a flush after every line
    assert [json.loads(line)["iteration"] for line in buf.getvalue().splitlines()] == [1, 2, 3, 4]
    trainer(small_test, iterations=3, val_cycle=None, metrics_log=path).train()
    lines = path.read_text().splitlines()
    assert lines[0] == '{"note": "an earlier run"}' and len(lines) == 4  # appended, not replaced


def test_no_log_without_the_option(small_test, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer(small_test, iterations=2, val_cycle=None).train()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["folder", "file-as-folder"])
def test_bad_log_path_is_refused_before_training(small_test, tmp_path, bad):
    target = tmp_path if bad == "folder" else tmp_path / "f" / "metrics.jsonl"
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="metrics_log"):
        trainer(small_test, metrics_log=str(target))
    assert not (tmp_path / "f").read_text()


def test_log_that_is_neither_path_nor_file_is_refused(small_test):
    with pytest.raises(ValueError, match="metrics_log must be a path or a file object, got int"):
        trainer(small_test, metrics_log=42)


def test_cli_log(small_test, tmp_path, capsys):
    path = tmp_path / "lenet.jsonl"
    rc = main(["train", "lenet", "--iterations", "6", "--val-cycle", "3", "--batch-size", "16", "--no-progress",
               "--data", f"d_test={small_test[1]}", "--out-dir", str(tmp_path), "--log", str(path)])
    assert rc == 0, capsys.readouterr().err
    check_records(read_lines(path), range(1, 7), [3, 6])


def test_cli_bad_log_exits_2_naming_the_option(small_test, tmp_path, capsys):
    (tmp_path / "f").write_text("")
    rc = main(["train", "lenet", "--iterations", "2", "--no-progress", "--out-dir", str(tmp_path),
               "--log", str(tmp_path / "f" / "metrics.jsonl")])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err.startswith("sukiyaki train: error: --log ") and "is not a folder" in err and len(err.splitlines()) == 1
