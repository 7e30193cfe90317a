"""The Python module against the CLI and against itself: same batches, zero-copy lifetime,
holding batches past the prefetch window, resume, sizes, GIL."""

import gc
import json
import threading
import time

import pytest
import torch

import flowfeed
from conftest import REPO, cli_digests, photo_overrides

PHOTOS = REPO / "configs" / "photos.yaml"
FMNIST = REPO / "configs" / "fashion_mnist.yaml"


def epoch_digests(pipe, epochs):
    """Per-epoch BatchDigest of the tensors a loop received, and their batch count."""
    out = []
    for _ in range(epochs):
        d = flowfeed.BatchDigest()
        for images, labels in pipe:
            d.add_batch(images.numpy(), labels.numpy(), images.shape[0])
        out.append(d.hex())
    return out


def test_same_batches_as_the_cli(photos, tmp_path, flowfeed_bin):
    overrides = photo_overrides(photos, tmp_path)
    pipe = flowfeed.Pipeline(PHOTOS, overrides, epochs=2)
    got = epoch_digests(pipe, 2)
    # The tensors the loop saw, the engine's own digest, and the CLI's run all agree.
    assert got == [e["batch_digest"] for e in pipe.stats()["epochs"]]
    assert got == cli_digests(flowfeed_bin, PHOTOS, overrides, 2, tmp_path)
    assert got[0] != got[1]  # epochs differ: random crops and flips are drawn per epoch


def test_idx_source_and_uint8_nhwc(fashion_mnist, tmp_path, flowfeed_bin):
    overrides = {"source.limit": 1000, "batch.size": 100, "batch.layout": "nhwc",
                 "batch.dtype": "uint8", "pipeline": [{"type": "random_horizontal_flip"}]}
    pipe = flowfeed.Pipeline(FMNIST, overrides, epochs=1)
    images, labels = next(iter(pipe))
    assert images.dtype == torch.uint8 and tuple(images.shape) == (100, 28, 28, 1)
    assert labels.dtype == torch.int64 and 0 <= int(labels.min()) and int(labels.max()) < 10
    del images, labels
    rest = epoch_digests(pipe, 1)  # the rest of the epoch: 9 batches
    assert len(rest) == 1 and len(pipe) == 10


def test_dict_config_equals_the_file(photos, tmp_path):
    config = {
        "seed": 3, "epochs": 1,
        "source": {"type": "image_folder", "root": str(photos)},
        "pipeline": [{"type": "decode"}, {"type": "resize", "size": 64},
                     {"type": "center_crop", "size": 56}],
        "batch": {"size": 10, "dtype": "uint8"},
    }
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(config))
    assert epoch_digests(flowfeed.Pipeline(config), 1) == epoch_digests(flowfeed.Pipeline(path), 1)
    # Nested overrides are `--set` paths.
    pipe = flowfeed.Pipeline(config, {"batch": {"size": 12}})
    assert pipe.batch_size == 12 and len(pipe) == 10  # 120 samples


def test_tensors_view_the_batch_and_give_it_back(photos, tmp_path):
    pipe = flowfeed.Pipeline(PHOTOS, photo_overrides(photos, tmp_path, **{"batch.dtype": "uint8"}),
                             epochs=1)
    it = iter(pipe)
    images, labels = next(it)
    assert pipe._impl.held == 1
    first_address = images.data_ptr()
    del images
    assert pipe._impl.held == 1  # labels still hold the batch
    del labels
    gc.collect()
    assert pipe._impl.held == 0
    # The freed buffer is recycled: a later batch is handed out in the same memory, no copy.
    seen = set()
    for images, _ in it:
        seen.add(images.data_ptr())
    assert first_address in seen
    assert pipe._impl.copies == 0


def test_a_loop_that_keeps_every_batch_gets_copies_not_a_stall(photos, tmp_path, flowfeed_bin):
    overrides = photo_overrides(photos, tmp_path, prefetch=1, **{"batch.size": 4})
    pipe = flowfeed.Pipeline(PHOTOS, overrides, epochs=1)
    kept = []
    finished = threading.Event()

    def run():
        with pytest.warns(RuntimeWarning, match="copied from now on"):
            for images, labels in pipe:
                kept.append((images, labels))  # as a loop that logs its inputs would
        finished.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=120)
    assert finished.is_set(), "the pipeline stalled while the loop held its batches"
    assert len(kept) == 30
    copies = pipe.stats()["python"]["copied_batches"]
    assert 0 < copies < 30
    # Kept tensors are intact, copies or not: the same digest as the CLI's.
    d = flowfeed.BatchDigest()
    for images, labels in kept:
        d.add_batch(images.numpy(), labels.numpy(), images.shape[0])
    assert [d.hex()] == cli_digests(flowfeed_bin, PHOTOS, overrides, 1, tmp_path)


def test_resume_mid_epoch_gives_the_batches_that_would_have_come(photos, tmp_path):
    overrides = photo_overrides(photos, tmp_path)
    whole = []  # every batch's digest over two epochs, uninterrupted
    a = flowfeed.Pipeline(PHOTOS, overrides, epochs=2)
    for _ in range(2):
        for images, labels in a:
            whole.append(flowfeed_digest(images, labels))
    b = flowfeed.Pipeline(PHOTOS, overrides, epochs=2)
    head = []
    it = iter(b)
    for images, labels in it:
        head.append(flowfeed_digest(images, labels))
        if len(head) == 3:
            break
    state = b.state_dict()
    assert state["epoch"] == 0 and state["batch"] == 3 and state["position"] == 48
    b.close()
    c = flowfeed.Pipeline(PHOTOS, dict(overrides, threads=1), epochs=2)
    c.load_state_dict(state)
    tail = []
    for _ in range(2):
        for images, labels in c:
            tail.append(flowfeed_digest(images, labels))
    assert head + tail == whole


def test_one_batch_ahead_resumes_after_the_batch_handed_out(photos, tmp_path):
    """device="cuda" takes batch k+1 (and starts its copy) while the loop has batch k: the
    resume point must follow k, and a loop left early must not lose k+1. The same bookkeeping,
    run here on the CPU with no copy."""
    overrides = photo_overrides(photos, tmp_path)
    whole = []
    a = flowfeed.Pipeline(PHOTOS, overrides, epochs=2)
    for _ in range(2):
        for images, labels in a:
            whole.append(flowfeed_digest(images, labels))

    def ahead(pipe, taken):
        return pipe._one_ahead(lambda batch: taken.append(1) or batch, lambda t: t)

    b = flowfeed.Pipeline(PHOTOS, overrides, epochs=2)
    taken, got = [], []
    for images, labels in ahead(b, taken):
        got.append(flowfeed_digest(images, labels))
        assert len(taken) == len(got) + 1  # the next one is already taken
        if len(got) == 3:
            break
    state = b.state_dict()
    assert (state["epoch"], state["batch"], state["position"]) == (0, 3, 48)
    head = list(got)
    # Left early and iterated again: it goes on with batch 4, the one taken ahead.
    for _ in range(2):
        for images, labels in ahead(b, taken):
            got.append(flowfeed_digest(images, labels))
        # At each epoch's end the resume point is the next epoch's start.
        assert b.state_dict()["batch"] == 0
    assert got == whole

    c = flowfeed.Pipeline(PHOTOS, overrides, epochs=2)
    c.load_state_dict(state)
    tail = []
    for _ in range(2):
        for images, labels in ahead(c, []):
            tail.append(flowfeed_digest(images, labels))
    assert head + tail == whole


def flowfeed_digest(images, labels):
    d = flowfeed.BatchDigest()
    d.add_batch(images.numpy(), labels.numpy(), images.shape[0])
    return d.hex()


def test_sizes_epochs_and_the_end(photos, tmp_path):
    pipe = flowfeed.Pipeline(PHOTOS, photo_overrides(photos, tmp_path), epochs=1)
    classes = sum(1 for d in photos.iterdir() if d.is_dir())
    assert len(pipe) == 8 and pipe.dataset_size == 120 and pipe.num_classes == classes
    assert sum(1 for _ in pipe) == 8
    with pytest.raises(flowfeed.Error, match="all 1 epochs were delivered"):
        next(iter(pipe))
    assert pipe.epoch_table().startswith("epoch 1: 120 samples")


def test_the_gil_is_released_while_waiting(photos, tmp_path):
    # One thread decoding full-size photos: the loop waits for every batch.
    pipe = flowfeed.Pipeline(PHOTOS, photo_overrides(photos, tmp_path, threads=1,
                                                     **{"cache.mode": "off"}), epochs=1)
    ticks = 0
    stop = threading.Event()

    def count():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    for _ in pipe:
        pass
    stop.set()
    t.join()
    waited = pipe.stats()["epochs"][0]["consumer_wait_seconds"]
    assert waited > 0.05
    # Another Python thread ran while the loop waited in C++: with the GIL held there it could
    # not tick at all during the waits (ticks of 1 ms; a quarter of them is plenty of margin).
    assert ticks > 0.25 * waited * 1000, (ticks, waited)


def test_the_report_says_what_produced_it(photos, tmp_path):
    pipe = flowfeed.Pipeline(PHOTOS, photo_overrides(photos, tmp_path), epochs=1)
    for _ in pipe:
        pass
    p = pipe.stats()["provenance"]
    assert p["flowfeed_version"] == flowfeed.__version__
    assert p["config_path"] == str(PHOTOS)
    assert "size: 16" in p["resolved_config"]  # the override, as the run read it
    assert p["command_line"].startswith("python")
    assert {"oneTBB", "OpenCV", "libjpeg-turbo"} <= set(p["libraries"])


def test_close_then_iterate_goes_on_where_it_stopped(photos, tmp_path):
    overrides = photo_overrides(photos, tmp_path)
    whole = [flowfeed_digest(x, y) for x, y in flowfeed.Pipeline(PHOTOS, overrides, epochs=1)]
    pipe = flowfeed.Pipeline(PHOTOS, overrides, epochs=1)
    it = iter(pipe)
    head = [flowfeed_digest(*next(it)) for _ in range(5)]
    pipe.close()
    tail = [flowfeed_digest(x, y) for x, y in pipe]
    assert head + tail == whole


# ---- batch memory: batches collated into memory the consumer's allocate function gives ----

def test_batches_are_collated_into_the_memory_given(fashion_mnist):
    overrides = {"source.limit": 600, "batch.size": 100}
    blocks = []

    def allocate(nbytes):
        blocks.append(torch.empty(nbytes, dtype=torch.uint8))
        return blocks[-1]

    pipe = flowfeed.Pipeline(FMNIST, overrides, epochs=2)
    assert pipe.batch_memory == "heap"
    pipe._impl.set_batch_memory(allocate, "test blocks")
    assert pipe.batch_memory == "test blocks"
    got = []
    for _ in range(2):
        d = flowfeed.BatchDigest()
        for images, labels in pipe:
            start = images.data_ptr()
            end = start + images.numel() * images.element_size()
            assert any(b.data_ptr() <= start and end <= b.data_ptr() + b.numel() for b in blocks)
            d.add_batch(images.numpy(), labels.numpy(), images.shape[0])
        got.append(d.hex())
    assert 0 < len(blocks) < 12  # 12 batches, in buffers the pipeline reuses
    assert got == epoch_digests(flowfeed.Pipeline(FMNIST, overrides, epochs=2), 2)


def test_batch_memory_failures_are_named(fashion_mnist):
    overrides = {"source.limit": 200, "batch.size": 100}
    short = flowfeed.Pipeline(FMNIST, overrides, epochs=1)
    short._impl.set_batch_memory(lambda n: torch.empty(n - 1, dtype=torch.uint8), "short")
    with pytest.raises(flowfeed.Error, match="batch memory 'short': asked for 313600 bytes"):
        list(short)

    def refuse(nbytes):
        raise MemoryError("no page-locked memory left")

    failing = flowfeed.Pipeline(FMNIST, overrides, epochs=1)
    failing._impl.set_batch_memory(refuse, "pinned")
    with pytest.raises(flowfeed.Error, match="batch memory 'pinned'.*no page-locked memory left"):
        list(failing)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch")
def test_cuda_batches_are_born_pinned(fashion_mnist):
    overrides = {"source.limit": 600, "batch.size": 100}
    pipe = flowfeed.Pipeline(FMNIST, overrides, epochs=1, device="cuda")
    assert pipe.batch_memory == "cuda pinned"
    on_gpu = [(x.cpu(), y.cpu()) for x, y in pipe]
    on_cpu = [(x.clone(), y.clone()) for x, y in flowfeed.Pipeline(FMNIST, overrides, epochs=1)]
    assert len(on_gpu) == len(on_cpu) == 6
    for (x, y), (a, b) in zip(on_gpu, on_cpu):
        assert torch.equal(x, a) and torch.equal(y, b)
