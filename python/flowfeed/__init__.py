"""flowfeed from Python: the engine's pipeline as an iterable of torch tensors.

    import flowfeed
    pipe = flowfeed.Pipeline("configs/photos.yaml", overrides={"threads": 4})
    for epoch in range(pipe.epochs):
        for images, labels in pipe:          # one epoch; the same batches as `flowfeed bench`
            ...
        print(pipe.epoch_table())            # where the epoch's time went

Batches are handed out without a copy: the tensors view the pipeline's own batch buffer and
keep it alive; when they are freed the buffer goes back to the pipeline. A pipeline holds a
bounded number of batches (prefetch), so a loop that keeps more than `prefetch + 1` batches'
tensors alive (to log them, say) gets copies from then on, with a warning, instead of a stalled
pipeline. `state_dict()` / `load_state_dict()` resume mid-epoch exactly (the StatefulDataLoader
convention). Errors are exceptions whose message names the file, key, sample or plugin:
ValueError for a bad config or option, FileNotFoundError for a missing file or folder,
flowfeed.SampleError for a sample that failed under `on_error: fail`, flowfeed.Error otherwise.
Ctrl-C raises KeyboardInterrupt while waiting for a batch; the pipeline stays usable.
`flowfeed.install_crash_report()` (opt-in) makes a crashing plugin stage name itself on stderr.

Not thread-safe: one thread iterates a Pipeline (the pipeline's own threads work in the
background, without the GIL). flowfeed.nodes.PipelineNode makes it a torchdata.nodes source
(that module needs torchdata; this one does not). docs/python.md walks through it.
"""

import json
import os
import sys
import warnings

# Plugins loaded from Python resolve the engine's functions from this module: make its symbols
# global before it loads (as the `flowfeed` program exports them).
_flags = sys.getdlopenflags()
sys.setdlopenflags(_flags | os.RTLD_GLOBAL)
try:
    from . import _flowfeed
finally:
    sys.setdlopenflags(_flags)

__version__ = _flowfeed.__version__
Error = _flowfeed.Error
SampleError = _flowfeed.SampleError
BatchDigest = _flowfeed.BatchDigest
# Opt-in (docs/reliability.md, "Crash forensics"): names the stage, plugin and sample a crash or
# an exit() came from; chains to Python's faulthandler when that is on.
install_crash_report = _flowfeed.install_crash_report

__all__ = ["Pipeline", "Error", "SampleError", "BatchDigest", "install_crash_report", "__version__"]


def _flatten(overrides, prefix=""):
    """{"batch": {"size": 8}, "threads": 4} -> ["batch.size=8", "threads=4"] (values as YAML)."""
    out = []
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(_flatten(value, path + "."))
        else:
            # JSON is YAML: strings are quoted, lists and booleans keep their type.
            out.append(f"{path}={json.dumps(value)}")
    return out


def _to_tensor(ref):
    import torch.utils.dlpack

    return torch.utils.dlpack.from_dlpack(ref.__dlpack__())


class _EpochIterator:
    """An epoch's batches. A class rather than a generator: a generator's frame would keep the
    last batch it yielded alive until the next one, one batch more held than the loop holds."""

    def __init__(self, pipe):
        self._pipe = pipe
        self._done = False

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        batch = self._pipe._next()
        if batch is None:
            self._done = True
            raise StopIteration
        return batch


class Pipeline:
    """A flowfeed pipeline: `config` is a YAML file's path or a dict of the same keys.

    overrides: {"key.path": value} or nested dicts, applied like `--set` (checked like the file).
    epochs: how many epochs the pipeline runs (default: the config's).
    plugins: plugin files to load before the config is read (a dict config's own `plugins:`
        entries are loaded too, relative to the current directory).
    device: "cpu", or a CUDA device ("cuda", "cuda:1"): batches are then copied there on a side
        stream, one batch ahead, and handed out as device tensors.
    pin_memory: batches in page-locked memory (faster, asynchronous host-to-device copies);
        implied by a CUDA device. Where torch sees a GPU the pipeline collates straight into
        pinned memory torch allocates (no copy per batch); otherwise each batch is pinned by a
        copy as it is handed out.
    tensorboard, jsonl, csv: write each epoch's pipeline figures (throughput, wait, stage
        times, cache hit rate) as `flowfeed bench --tensorboard/--jsonl/--csv` does: a
        TensorBoard folder (give your SummaryWriter's log_dir to see them beside your loss), a
        JSON Lines file (appended to), a folder for epochs.csv. docs/metrics.md lists the names.
    """

    def __init__(self, config, overrides=None, *, epochs=None, plugins=(), device="cpu",
                 pin_memory=None, tensorboard=None, jsonl=None, csv=None):
        sets = _flatten(overrides or {})
        plugins = [os.fspath(p) for p in plugins]
        if isinstance(config, dict):
            plugins += [os.fspath(p) for p in config.get("plugins", [])]
            text = json.dumps({k: v for k, v in config.items() if k != "plugins"})
            self._impl = _flowfeed._Pipeline("", text, "<dict>", sets, plugins)
            self.config_path = None
        else:
            self._impl = _flowfeed._Pipeline(os.fspath(config), "", "", sets, plugins)
            self.config_path = os.fspath(config)
        if epochs is not None:
            self._impl.set_epochs(int(epochs))
        self._impl.set_command_line(" ".join([os.path.basename(sys.executable)] + sys.argv))
        if tensorboard or jsonl or csv:
            self._impl.set_metrics(*(os.fspath(p) if p else "" for p in (tensorboard, jsonl, csv)))
        self.device = str(device)
        self._cuda = self.device.startswith("cuda")
        self.pin_memory = self._cuda if pin_memory is None else bool(pin_memory)
        if self.pin_memory:
            self._pin_batches_at_birth()
        self._stream = None
        self._ahead = None  # device path: the batch taken ahead, and the resume point after it
        # The resume point: the epoch being delivered, the samples of its order covered, and the
        # batches delivered of it.
        self._epoch = 0
        self._position = 0
        self._batch = 0
        self._warned_copies = False

    def _pin_batches_at_birth(self):
        """Batch buffers from torch's page-locked memory, so the pipeline collates into memory
        the GPU reads by DMA (where torch can pin: a CUDA torch that sees a GPU)."""
        import torch

        if not torch.cuda.is_available():
            return

        def allocate(nbytes):
            return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)

        self._impl.set_batch_memory(allocate, "cuda pinned")

    @property
    def batch_memory(self):
        """Where batches are collated: "heap", or "cuda pinned" (see pin_memory)."""
        return self._impl.batch_memory

    # ---- sizes ----

    @property
    def epochs(self):
        return self._impl.epochs

    @property
    def batch_size(self):
        return self._impl.batch_size

    def __len__(self):
        """Batches per epoch (when no sample is skipped)."""
        return self._impl.batches_per_epoch()

    @property
    def dataset_size(self):
        return self._impl.dataset_size()

    @property
    def num_classes(self):
        return self._impl.num_classes()

    # ---- iteration ----

    def __iter__(self):
        return self.epoch()

    def epoch(self):
        """An iterator of (images, labels) over the rest of the epoch being delivered.

        A loop that stops early and iterates again goes on where it stopped; the next epoch
        starts once this one was consumed. Raises flowfeed.Error once every epoch was delivered.
        """
        if self._epoch >= self.epochs:
            raise Error(f"all {self.epochs} epochs were delivered (pass epochs= for more)")
        if self._cuda:
            return self._device_batches()
        return _EpochIterator(self)

    def _take(self):
        """The next batch (None at the epoch's end) and the resume point after it; the resume
        point of this object is left as it is (the caller moves it when it hands the batch out)."""
        got = self._impl.next()
        if got is None:  # the epoch ended
            return None, (self._epoch + 1, 0, 0)
        images_ref, labels_ref, info = got
        if info["copied"]:
            self._warn_copies()
        images, labels = _to_tensor(images_ref), _to_tensor(labels_ref)
        if self.pin_memory:
            # Born pinned unless the batch is a copy (held past the prefetch window) or torch
            # cannot pin ahead of time; labels live on the heap, and are small.
            if not images.is_pinned():
                images = images.pin_memory()
            labels = labels.pin_memory()
        return (images, labels), (self._epoch, info["end_position"], info["number"] + 1)

    def _next(self):
        batch, after = self._take()
        self._epoch, self._position, self._batch = after
        return batch

    def _warn_copies(self):
        if not self._warned_copies:
            warnings.warn(
                f"flowfeed: {self._impl.held} batches were still held when the next one was "
                f"asked for (prefetch {self._impl.prefetch}); batches are copied from now on, "
                "so the pipeline does not stall. Free them sooner, or raise prefetch.",
                RuntimeWarning, stacklevel=4)
            self._warned_copies = True

    def _device_batches(self):
        import torch

        device = torch.device(self.device)
        if self._stream is None:
            self._stream = torch.cuda.Stream(device=device)

        def start(batch):
            # The copy runs on the side stream while the caller computes on the last batch.
            with torch.cuda.stream(self._stream):
                moved = tuple(t.to(device, non_blocking=True) for t in batch)
                copied = torch.cuda.Event()
                copied.record(self._stream)
            # The host tensors may be the pipeline's own pinned buffers, which it refills once
            # they are dropped: they are kept until the copy has read them (hand_over).
            return [moved, batch, copied]

        def hand_over(started):
            moved, _, copied = started
            current = torch.cuda.current_stream(device)
            current.wait_stream(self._stream)
            for t in moved:
                t.record_stream(current)
            copied.synchronize()  # started a step ago: done by now, as a rule
            started[1] = None
            return moved

        return self._one_ahead(start, hand_over)

    def _one_ahead(self, start, hand_over):
        """The epoch's batches with the next one already taken and `start`ed (its device copy
        under way) while the current one is used; `hand_over` readies a started batch for the
        caller. The resume point follows the batches handed out, not the one taken ahead, so a
        state_dict() taken in the loop resumes with the very next batch the loop would get; and
        the batch taken ahead is kept (self._ahead) for the next loop when this one is left
        early, so leaving a loop loses no batch."""
        while True:
            if self._ahead is None:
                batch, after = self._take()
                self._ahead = (None if batch is None else start(batch), after)
            started, after = self._ahead
            if started is None:  # the epoch's end, seen ahead
                self._ahead = None
                self._epoch, self._position, self._batch = after
                return
            following, following_after = self._take()
            self._ahead = (None if following is None else start(following), following_after)
            self._epoch, self._position, self._batch = after
            yield hand_over(started)
            del started  # the host tensors may go once their copy is ordered

    # ---- resume ----

    def state_dict(self):
        """Where the next batch starts: restore with load_state_dict() on a pipeline of the same
        config (any thread count), and it yields the batches this one would have yielded next."""
        return {"epoch": self._epoch, "position": self._position, "batch": self._batch,
                "epochs": self.epochs, "batch_size": self.batch_size,
                "version": __version__}

    def load_state_dict(self, state):
        if state.get("batch_size", self.batch_size) != self.batch_size:
            raise ValueError(f"state_dict: batch_size {state['batch_size']} differs from the "
                             f"config's {self.batch_size}")
        epoch, position, batch = int(state["epoch"]), int(state["position"]), int(state["batch"])
        if epoch >= self.epochs:
            raise ValueError(f"state_dict: epoch {epoch} is past the run's {self.epochs} epochs")
        self._impl.set_start(epoch, position, batch)
        self._epoch, self._position, self._batch = epoch, position, batch
        self._ahead = None

    # ---- what it measured ----

    def stats(self):
        """The run's report (finished epochs) as a dict: the JSON `flowfeed bench --report` writes,
        plus "python": the batches copied because the loop held too many."""
        report = json.loads(self._impl.report_json())
        report["python"] = {"copied_batches": self._impl.copies,
                            "copy_threshold": self._impl.copy_threshold}
        return report

    def live(self):
        """The epoch in progress: samples and batches so far, seconds, cache hits, stage times."""
        return self._impl.live()

    def epoch_table(self):
        """The last finished epoch's stage table, as `flowfeed bench` prints it."""
        return self._impl.epoch_table()

    def close(self):
        """Stops the pipeline's threads now (batches still held stay valid). Iterating again
        reopens it where it stopped, as load_state_dict(state_dict()) would."""
        self._impl.close()
        self._ahead = None  # the reopened pipeline produces it again, from the resume point
        if self._epoch < self.epochs:
            self._impl.set_start(self._epoch, self._position, self._batch)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
