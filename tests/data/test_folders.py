"""Tests for sukiyaki.data.folders (skipped without Pillow)."""

import numpy as np
import pytest

from sukiyaki.data.folders import list_image_folder, load_image_folder

try:
    from PIL import Image
except ImportError:  # pragma: no cover - depends on the environment
    Image = None

needs_pil = pytest.mark.skipif(Image is None, reason="Pillow not installed: pip install pillow")


def write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def folder(tmp_path):
    """root/{cat,ant,bee}: classes sorted -> ant=0, bee=1, cat=2."""
    rng = np.random.default_rng(0)
    imgs = {}
    layout = {"cat": ["b.png", "a.png"], "ant": ["z.png"], "bee": ["m.png", "n.bmp"]}
    for cls, names in layout.items():
        for name in names:
            arr = rng.integers(0, 256, (6, 5, 3)).astype(np.uint8)  # h=6, w=5
            write(tmp_path / cls / name, arr)
            imgs[(cls, name)] = arr
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    return tmp_path, imgs


@needs_pil
def test_classes_sorted_and_order(folder):
    root, imgs = folder
    classes, files = list_image_folder(root)
    assert classes == ["ant", "bee", "cat"]
    assert [(f.parent.name, f.name, k) for f, k in files] == [
        ("ant", "z.png", 0), ("bee", "m.png", 1), ("bee", "n.bmp", 1),
        ("cat", "a.png", 2), ("cat", "b.png", 2)]


@needs_pil
def test_load_exact_size(folder):
    root, imgs = folder
    x, t, classes = load_image_folder(root, size=(6, 5), resize=False)
    assert x.shape == (6, 5, 3, 5) and x.dtype == np.uint8 and x.flags.f_contiguous
    assert t.shape == (1, 5) and t.dtype == np.int32 and t.tolist() == [[0, 1, 1, 2, 2]]
    assert np.array_equal(x[:, :, :, 3], imgs[("cat", "a.png")])  # h = image rows
    assert np.array_equal(x[:, :, :, 2], imgs[("bee", "n.bmp")])


@needs_pil
def test_resize_and_grayscale(folder):
    root, _ = folder
    x, t, _ = load_image_folder(root, size=(8, 10), channels=1)
    assert x.shape == (8, 10, 1, 5)


@needs_pil
def test_size_mismatch_names_file(folder):
    root, _ = folder
    with pytest.raises(ValueError, match=r"z\.png.*\(6, 5\), expected \(7, 5\)"):
        load_image_folder(root, size=(7, 5), resize=False)


@needs_pil
def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image_folder(tmp_path / "none", size=(4, 4))
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_image_folder(tmp_path, size=(4, 4))
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png.*cannot be read"):
        load_image_folder(tmp_path, size=(4, 4))
    with pytest.raises(ValueError, match="channels"):
        load_image_folder(tmp_path, size=(4, 4), channels=2)


def test_missing_pillow_message(monkeypatch, tmp_path):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("no PIL")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install sukiyaki\[images\]"):
        load_image_folder(tmp_path, size=(4, 4))
