"""Metrics out of `flowfeed train` and `flowfeed bench`: TensorBoard event files read with
TensorBoard's own reader, JSON Lines and CSV, each checked against the run's JSON report.

TensorBoard is not a Debian package: its test runs where the `tensorboard` package is importable
(tools/run.sh torch2's virtual environment pins it and sets FLOWFEED_REQUIRE_TENSORBOARD=1, so
there a missing package fails instead of skipping).
"""

import csv
import json
import os
import subprocess

import pytest

from conftest import REPO, photo_overrides


def need_tensorboard():
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError:
        if os.environ.get("FLOWFEED_REQUIRE_TENSORBOARD") == "1":
            raise
        pytest.skip("the tensorboard package is not installed (tools/run.sh torch2 has it)")
    return event_accumulator


def scalars(event_accumulator, folder):
    """{tag: [(step, value), ...]} of every scalar in the folder's event files."""
    acc = event_accumulator.EventAccumulator(
        str(folder), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def train_run(tmp_path_factory, flowfeed_bin, fashion_mnist):
    """Two epochs of configs/fashion_mnist.yaml on 1,024 samples (8 steps each), every log on."""
    out = tmp_path_factory.mktemp("train")
    cmd = [flowfeed_bin, "train", str(REPO / "configs/fashion_mnist.yaml"), "--epochs", "2",
           "--set", "source.limit=1024", "--set", "eval.source.limit=500",
           "--set", f"checkpoint={out / 'ck.pt'}", "--report", str(out / "report.json"),
           "--tensorboard", str(out / "tb"), "--jsonl", str(out / "m.jsonl"),
           "--csv", str(out / "csv")]
    subprocess.run(cmd, check=True, capture_output=True)
    report = json.loads((out / "report.json").read_text())
    lines = [json.loads(line) for line in (out / "m.jsonl").read_text().splitlines()]
    return out, report, lines


def test_jsonl_has_a_run_line_then_every_step_and_epoch(train_run):
    out, report, lines = train_run
    assert lines[0]["kind"] == "run" and "--jsonl" in lines[0]["command_line"]
    steps = [r for r in lines if r["kind"] == "step"]
    epochs = [r for r in lines if r["kind"] == "epoch"]
    assert [r["global_step"] for r in steps] == list(range(1, 17))
    assert [(r["epoch"], r["step"]) for r in steps[6:10]] == [(1, 7), (1, 8), (2, 1), (2, 2)]
    assert [r["epoch"] for r in epochs] == [1, 2]
    for e, rep in zip(epochs, report["epochs"]):
        trainer = rep["trainer"]
        assert e["loss"] == pytest.approx(trainer["loss"], rel=1e-12)
        assert e["accuracy"] == pytest.approx(trainer["accuracy"], rel=1e-12)
        assert e["eval_accuracy"] == pytest.approx(rep["eval"]["accuracy"], rel=1e-12)
        assert e["samples"] == 1024 and e["steps"] == 8
        # The steps' figures add up to their epoch's.
        mine = [s for s in steps if s["epoch"] == e["epoch"]]
        assert sum(s["samples"] for s in mine) == e["samples"]
        assert sum(s["loss"] * s["samples"] for s in mine) / e["samples"] == pytest.approx(e["loss"])
        assert sum(s["data_wait_seconds"] for s in mine) == pytest.approx(
            trainer["data_wait_seconds"], abs=1e-9)
        assert 0 <= e["data_wait_share"] <= 1
        assert any(k.startswith("stage_") for k in e)
    # The schedule: warm-up then cosine, as the report's epoch-end rates say.
    assert steps[-1]["lr"] == pytest.approx(report["epochs"][-1]["trainer"]["lr"])


def test_csv_rows_are_the_jsonl_records(train_run):
    out, _, lines = train_run
    with open(out / "csv/steps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [r for r in lines if r["kind"] == "step"]
    assert len(rows) == len(steps) == 16
    for row, rec in zip(rows, steps):
        assert int(row["global_step"]) == rec["global_step"]
        assert float(row["loss"]) == rec["loss"]  # shortest round-trip text both ways
        assert float(row["lr"]) == rec["lr"]
    with open(out / "csv/epochs.csv", newline="") as f:
        epochs = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in epochs] == [1, 2]
    assert float(epochs[1]["eval_accuracy"]) == [r for r in lines if r["kind"] == "epoch"][1][
        "eval_accuracy"]


def test_tensorboard_reads_the_training_run(train_run):
    event_accumulator = need_tensorboard()
    out, report, lines = train_run
    tb = scalars(event_accumulator, out / "tb")
    for tag in ["step/loss", "step/lr", "step/samples_per_second", "step/data_wait_share",
                "epoch/accuracy", "epoch/eval_accuracy", "epoch/samples_per_second",
                "epoch/data_wait_share"]:
        assert tag in tb, f"{tag} not among {sorted(tb)}"
    steps = [r for r in lines if r["kind"] == "step"]
    assert [s for s, _ in tb["step/loss"]] == list(range(1, 17))
    for (_, value), rec in zip(tb["step/loss"], steps):
        assert value == pytest.approx(rec["loss"], rel=1e-6)  # float32 in the event file
    assert [s for s, _ in tb["epoch/eval_accuracy"]] == [1, 2]
    for (_, value), rep in zip(tb["epoch/eval_accuracy"], report["epochs"]):
        assert value == pytest.approx(rep["eval"]["accuracy"], rel=1e-6)
    assert any(tag.startswith("epoch/stage_") for tag in tb)


def test_tensorboard_reads_a_bench_run_with_its_cache_hit_rate(tmp_path, flowfeed_bin, photos):
    event_accumulator = need_tensorboard()
    cmd = [flowfeed_bin, "bench", str(REPO / "configs/photos.yaml"), "--epochs", "2",
           "--tensorboard", str(tmp_path / "tb"), "--report", str(tmp_path / "r.json")]
    for key, value in photo_overrides(photos, tmp_path).items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    subprocess.run(cmd, check=True, capture_output=True)
    report = json.loads((tmp_path / "r.json").read_text())
    tb = scalars(event_accumulator, tmp_path / "tb")
    # The first epoch fills the cache, the second is served from it.
    assert tb["epoch/cache_hit_rate"] == [(1, 0.0), (2, 1.0)]
    for (_, value), rep in zip(tb["epoch/pipeline_samples_per_second"], report["epochs"]):
        assert value == pytest.approx(rep["samples_per_second"], rel=1e-6)
    # Each epoch's decode time is the report's (the fused decode runs every epoch here, since the
    # cache keeps the encoded files, so the two epochs' times are not ordered: no comparison).
    decode = [v for _, v in tb["epoch/stage_decode_seconds"]]
    report_decode = [e["stages"]["decode"]["busy_seconds"] for e in report["epochs"]]
    assert decode == pytest.approx(report_decode, rel=1e-6)
    assert all(v > 0 for v in decode)


def test_a_metrics_folder_that_cannot_be_made_stops_before_the_run(tmp_path, flowfeed_bin,
                                                                   photos):
    (tmp_path / "file").write_text("x")
    cmd = [flowfeed_bin, "bench", str(REPO / "configs/photos.yaml"), "--epochs", "1",
           "--csv", str(tmp_path / "file" / "csv"), "--set", f"source.root={photos}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2
    assert "--csv" in r.stderr and str(tmp_path / "file" / "csv") in r.stderr
    assert "epoch 1" not in r.stdout


def test_python_pipeline_writes_its_epochs_beside_the_users_summary_writer(tmp_path, photos):
    import flowfeed

    pipe = flowfeed.Pipeline(REPO / "configs/photos.yaml", photo_overrides(photos, tmp_path),
                             epochs=2, tensorboard=tmp_path / "tb", jsonl=tmp_path / "m.jsonl",
                             csv=tmp_path / "csv")
    for _ in range(pipe.epochs):
        for _images, _labels in pipe:
            pass
    report = pipe.stats()
    epochs = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in epochs] == ["run", "epoch", "epoch"]
    assert [r["cache_hit_rate"] for r in epochs[1:]] == [0, 1]
    for rec, rep in zip(epochs[1:], report["epochs"]):
        assert rec["samples"] == rep["samples"]
        assert rec["pipeline_samples_per_second"] == pytest.approx(rep["samples_per_second"])
    with open(tmp_path / "csv/epochs.csv", newline="") as f:
        assert [int(r["batches"]) for r in csv.DictReader(f)] == [
            e["batches"] for e in report["epochs"]]

    event_accumulator = need_tensorboard()
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp_path / "tb"))
    writer.add_scalar("train/loss", 0.5, 1)
    writer.close()
    tb = scalars(event_accumulator, tmp_path / "tb")
    assert tb["train/loss"] == [(1, 0.5)]
    assert [s for s, _ in tb["epoch/pipeline_wait_share"]] == [1, 2]
    assert tb["epoch/cache_hit_rate"] == [(1, 0.0), (2, 1.0)]


def test_python_metrics_folder_that_cannot_be_made_is_a_clear_error(tmp_path, photos):
    import flowfeed

    (tmp_path / "file").write_text("x")
    with pytest.raises(flowfeed.Error, match="--tensorboard: .*file/tb"):
        flowfeed.Pipeline(REPO / "configs/photos.yaml", {"source.root": str(photos)},
                          tensorboard=tmp_path / "file" / "tb")


def test_a_resumed_training_continues_its_logs(tmp_path, flowfeed_bin, fashion_mnist):
    def train(epochs, *extra):
        cmd = [flowfeed_bin, "train", str(REPO / "configs/fashion_mnist.yaml"), "--epochs",
               str(epochs), "--set", "source.limit=512", "--set", "eval.source.limit=100",
               "--set", f"checkpoint={tmp_path / 'ck.pt'}", "--jsonl", str(tmp_path / "m.jsonl"),
               "--csv", str(tmp_path / "csv"), *extra]
        subprocess.run(cmd, check=True, capture_output=True)

    train(1)
    train(2, "--resume", str(tmp_path / "ck.pt"))
    lines = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in lines].count("run") == 2
    steps = [r["global_step"] for r in lines if r["kind"] == "step"]
    assert steps == list(range(1, 9))  # 4 steps an epoch; the second run goes on counting
    with open(tmp_path / "csv/epochs.csv", newline="") as f:
        assert [(r["epoch"], r["global_step"]) for r in csv.DictReader(f)] == [("1", "4"),
                                                                               ("2", "8")]
