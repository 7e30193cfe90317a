"""Fixtures of the Python module's tests: the flowfeed program, the repository, small real data.

Run by ctest (test Python.pytest), which sets FLOWFEED_BIN and PYTHONPATH to the build folder;
by hand: PYTHONPATH=build/python FLOWFEED_BIN=build/flowfeed python3 -m pytest python/tests
"""

import json
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session")
def flowfeed_bin():
    path = os.environ.get("FLOWFEED_BIN", str(REPO / "build" / "flowfeed"))
    if not os.access(path, os.X_OK):
        pytest.fail(f"FLOWFEED_BIN={path} is not the flowfeed program (build it first)")
    return path


@pytest.fixture(scope="session")
def build_dir(flowfeed_bin):
    """The build folder: the program's, with plugins/ and test_plugins/ beside it."""
    return pathlib.Path(flowfeed_bin).parent


@pytest.fixture(scope="session")
def photos(tmp_path_factory, flowfeed_bin):
    """120 JPEGs in class folders, cut from Debian's photographs (seeded: the same every run)."""
    out = tmp_path_factory.mktemp("data") / "photos"
    subprocess.run([flowfeed_bin, "dataset", "photos", "--out", str(out), "--count", "120",
                    "--seed", "7"], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def fashion_mnist():
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"{FASHION_MNIST} is missing (Debian package dataset-fashion-mnist)")
    return FASHION_MNIST


def photo_overrides(photos, tmp_path, **extra):
    """configs/photos.yaml on the test's photos, batches of 16, its cache in tmp_path."""
    o = {"source.root": str(photos), "cache.path": str(tmp_path / "cache"), "batch.size": 16}
    o.update(extra)
    return o


def cli_digests(flowfeed_bin, config, overrides, epochs, tmp_path):
    """The per-epoch batch_digest `flowfeed bench` reports for the config and overrides."""
    report = tmp_path / "cli-report.json"
    cmd = [flowfeed_bin, "bench", str(config), "--epochs", str(epochs), "--report", str(report)]
    for key, value in overrides.items():
        # A fresh cache folder for the CLI, so that it runs as cold as the Python side.
        if key == "cache.path":
            value = str(tmp_path / "cli-cache")
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    subprocess.run(cmd, check=True, capture_output=True)
    return [e["batch_digest"] for e in json.loads(report.read_text())["epochs"]]
