"""flowfeed.Pipeline as a torchdata.nodes source (torchdata 0.11): one node epoch per pipeline
epoch, the pipeline's (images, labels) batches as items, its state_dict() as the node's state.

    import flowfeed
    from flowfeed.nodes import PipelineNode
    from torchdata.nodes import Loader

    pipe = flowfeed.Pipeline("configs/photos.yaml", epochs=10)
    loader = Loader(PipelineNode(pipe))
    for epoch in range(pipe.epochs):
        for images, labels in loader:    # the same batches as iterating pipe itself
            ...
    checkpoint["data"] = loader.state_dict()   # Loader.load_state_dict() resumes exactly there

Needs torchdata; `import flowfeed` does not import this module. docs/python.md walks through it.
"""

import threading

from torchdata.nodes import BaseNode

from . import Error

__all__ = ["PipelineNode"]


class PipelineNode(BaseNode):
    """A torchdata.nodes source over a flowfeed.Pipeline. `next()` returns the pipeline's next
    (images, labels) and raises StopIteration at the end of each pipeline epoch; the reset that
    follows (Loader does one per iteration) starts the next. `pipeline` is the Pipeline, for
    stats(), live() and epoch_table().

    reset(state), with a state from get_state() (the pipeline's state_dict()), resumes exactly
    there, mid-epoch included, as Pipeline.load_state_dict() does; it raises ValueError for a
    state of another batch size or past the run's epochs.

    reset() without a state starts a whole epoch, and the pipeline's epoch counter never goes
    back. If this node handed out batches of the epoch in progress (a loop left it early), the
    rest of that epoch is dropped and the next one starts, with the batches an uninterrupted run
    gives in it (torchdata's SamplerWrapper also moves on to the next epoch). Dropping the rest
    closes and reopens the pipeline, so stats() covers the epochs from there on, as after
    Pipeline.close(). Otherwise the pipeline goes on where it stands: at the start of its next
    epoch, or at the point its own load_state_dict() set before the node was made.

    When no epoch is left to start, reset() raises flowfeed.Error, as iterating a Pipeline
    whose epochs were all delivered does: construct the Pipeline with epochs= covering the loop.

    Thread-safety: next(), reset() and get_state() may come from different threads (a
    Prefetcher calls next() from its own thread and reset() from yours); a lock serializes them,
    so a reset waits for a batch being fetched. Do not iterate `pipeline` yourself meanwhile.
    Errors of the pipeline (flowfeed.SampleError, ...) come out of next() unchanged.
    """

    def __init__(self, pipeline):
        super().__init__()
        self.pipeline = pipeline
        self._lock = threading.Lock()
        self._batches = None  # the pipeline's epoch iterator, made by reset()
        self._delivered = False  # a batch of the epoch in progress was handed out

    def reset(self, initial_state=None):
        super().reset(initial_state)
        with self._lock:
            self._batches = None
            if initial_state is not None:
                self.pipeline.load_state_dict(initial_state)
            elif self._delivered:
                self._drop_the_rest_of_the_epoch()
            self._delivered = False
            self._batches = self.pipeline.epoch()

    def _drop_the_rest_of_the_epoch(self):
        state = self.pipeline.state_dict()
        following = state["epoch"] + 1
        if following >= self.pipeline.epochs:
            raise Error(f"reset(): epoch {state['epoch'] + 1} of {self.pipeline.epochs} was begun "
                        "and is the last, so no whole epoch is left to start (pass epochs= for "
                        "more)")
        self.pipeline.load_state_dict(dict(state, epoch=following, position=0, batch=0))

    def next(self):
        with self._lock:
            if self._batches is None:
                raise Error("PipelineNode: the last reset() failed (its error above); reset again")
            try:
                batch = next(self._batches)
            except StopIteration:
                self._delivered = False
                raise
            self._delivered = True
            return batch

    def get_state(self):
        with self._lock:
            return self.pipeline.state_dict()
