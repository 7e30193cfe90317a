"""flowfeed.nodes.PipelineNode under torchdata.nodes: through a Loader the pipeline's own batches,
epoch after epoch; a Loader's state taken mid-epoch resumes a fresh one exactly; a loop left
early and the end of the run; Mapper and Prefetcher on top.

torchdata is not a Debian package: these tests run where it is importable (tools/run.sh torch2's
virtual environment pins it and sets FLOWFEED_REQUIRE_TORCHDATA=1, so there a missing package
fails instead of skipping).
"""

import json
import os
import subprocess
import sys
import threading

import pytest

if os.environ.get("FLOWFEED_REQUIRE_TORCHDATA") != "1":
    pytest.importorskip("torchdata",
                        reason="torchdata is not installed (tools/run.sh torch2 has it)")
from torchdata.nodes import Loader, Mapper, Prefetcher  # noqa: E402

import flowfeed  # noqa: E402
from conftest import REPO, photo_overrides  # noqa: E402
from flowfeed.nodes import PipelineNode  # noqa: E402

PHOTOS = REPO / "configs" / "photos.yaml"
BATCHES = 8  # 120 photos in batches of 16


def digest(batch):
    images, labels = batch
    d = flowfeed.BatchDigest()
    d.add_batch(images.numpy(), labels.numpy(), images.shape[0])
    return d.hex()


def uninterrupted(photos, tmp_path, epochs):
    """Each epoch's batch digests, from iterating a Pipeline itself."""
    pipe = flowfeed.Pipeline(PHOTOS, photo_overrides(photos, tmp_path), epochs=epochs)
    return [[digest(b) for b in pipe] for _ in range(epochs)]


def loader(photos, tmp_path, epochs, **extra):
    pipe = flowfeed.Pipeline(PHOTOS, photo_overrides(photos, tmp_path, **extra), epochs=epochs)
    return Loader(PipelineNode(pipe))


def test_through_a_loader_the_batches_are_the_pipelines_bit_for_bit(photos, tmp_path):
    want = uninterrupted(photos, tmp_path, 1)
    node = PipelineNode(flowfeed.Pipeline(PHOTOS, photo_overrides(photos, tmp_path), epochs=1))
    whole = flowfeed.BatchDigest()
    got = []
    for images, labels in Loader(node):
        got.append(digest((images, labels)))
        whole.add_batch(images.numpy(), labels.numpy(), images.shape[0])
    assert got == want[0] and len(got) == BATCHES
    # node.pipeline is the Pipeline that made them: its report's digest is the loop's.
    assert [e["batch_digest"] for e in node.pipeline.stats()["epochs"]] == [whole.hex()]


def test_each_iteration_of_the_loader_is_the_pipelines_next_epoch(photos, tmp_path):
    want = uninterrupted(photos, tmp_path, 2)
    it = loader(photos, tmp_path, 2)
    got = [[digest(b) for b in it] for _ in range(2)]
    assert got == want
    assert got[0] != got[1]  # random crops and flips are drawn per epoch


def test_a_state_taken_mid_epoch_resumes_a_fresh_loader_exactly(photos, tmp_path):
    want = sum(uninterrupted(photos, tmp_path, 2), [])
    first = loader(photos, tmp_path, 2)
    it = iter(first)
    head = [digest(next(it)) for _ in range(3)]
    # As a checkpoint stores it: plain data.
    state = json.loads(json.dumps(first.state_dict()))
    next(it)  # the first loader goes on; the state stays where it was taken
    second = loader(photos, tmp_path, 2, threads=1, **{"cache.path": str(tmp_path / "cache-2")})
    second.load_state_dict(state)
    rest_of_epoch = [digest(b) for b in second]
    following = [digest(b) for b in second]
    assert len(rest_of_epoch) == BATCHES - 3
    assert head + rest_of_epoch + following == want


def test_a_loop_left_early_then_the_next_epoch_whole_then_the_end(photos, tmp_path):
    want = uninterrupted(photos, tmp_path, 2)
    it = loader(photos, tmp_path, 2)
    for step, batch in enumerate(it):
        if step == 2:
            break
    assert [digest(b) for b in it] == want[1]
    with pytest.raises(flowfeed.Error, match="all 2 epochs were delivered"):
        iter(it)


def test_leaving_the_last_epoch_early_leaves_no_epoch_to_start(photos, tmp_path):
    it = loader(photos, tmp_path, 1)
    for step, batch in enumerate(it):
        if step == 1:
            break
    with pytest.raises(flowfeed.Error, match="epoch 1 of 1 was begun and is the last"):
        iter(it)
    assert it.root.pipeline.state_dict()["batch"] == 2  # the pipeline was left as it was


def test_a_pipeline_resumed_before_the_node_was_made_goes_on_from_there(photos, tmp_path):
    want = uninterrupted(photos, tmp_path, 1)[0]
    pipe = flowfeed.Pipeline(PHOTOS, photo_overrides(photos, tmp_path), epochs=1)
    pipe.load_state_dict({"epoch": 0, "position": 5 * 16, "batch": 5})
    assert [digest(b) for b in Loader(PipelineNode(pipe))] == want[5:]


def test_under_a_prefetcher_and_a_mapper_and_resumed_through_them(photos, tmp_path):
    want = sum(uninterrupted(photos, tmp_path, 2), [])

    def composed(pipe):
        # prefetch_factor below the config's prefetch (4), so no batch needs a copy.
        return Loader(Mapper(Prefetcher(PipelineNode(pipe), prefetch_factor=2), digest))

    def pipeline(name):
        # Each its own cache folder: the first loaders' pipelines still run beside the last's.
        return flowfeed.Pipeline(PHOTOS, photo_overrides(photos, tmp_path / name), epochs=2)

    pipe = pipeline("whole")
    whole = composed(pipe)
    assert list(whole) + list(whole) == want
    assert pipe.stats()["python"]["copied_batches"] == 0

    first = composed(pipeline("first"))
    head = list(first)
    it = iter(first)
    head += [next(it) for _ in range(2)]  # into the second epoch
    state = first.state_dict()
    second = composed(pipeline("second"))
    second.load_state_dict(state)
    assert head + list(second) == want


def test_a_reset_from_another_thread_waits_for_the_batch_being_fetched(photos, tmp_path):
    # A Prefetcher fetches on its own thread and resets from the caller's; a reset that went
    # ahead would close the pipeline under the fetch.
    want = uninterrupted(photos, tmp_path, 2)
    pipe = flowfeed.Pipeline(PHOTOS, photo_overrides(photos, tmp_path), epochs=2)
    node = PipelineNode(pipe)
    head = [digest(next(node)) for _ in range(2)]
    fetching, release = threading.Event(), threading.Event()
    fetch = pipe._next

    def held_fetch():  # the fetch in progress, held until the test lets it go
        if not release.is_set():
            fetching.set()
            release.wait(timeout=60)
        return fetch()

    pipe._next = held_fetch
    got = []
    fetcher = threading.Thread(target=lambda: got.append(digest(next(node))))
    resetter = threading.Thread(target=node.reset)
    fetcher.start()
    assert fetching.wait(timeout=60)
    resetter.start()
    resetter.join(timeout=0.5)
    assert resetter.is_alive(), "reset() went ahead while a batch was being fetched"
    release.set()
    fetcher.join(timeout=60)
    resetter.join(timeout=60)
    assert head + got == want[0][:3]
    # The reset came after that batch: it dropped the rest of epoch 1, and epoch 2 is whole.
    assert [digest(b) for b in node] == want[1]


def test_importing_flowfeed_does_not_import_torchdata():
    code = "import sys, flowfeed; print('torchdata' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env=os.environ)
    assert out.stdout.strip() == "False"
