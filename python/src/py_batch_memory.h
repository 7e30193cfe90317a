// py_batch_memory.h: batch memory handed out by a Python function, so that a Python consumer
// that copies to a GPU has batches collated straight into page-locked memory it allocated with
// torch (`torch.empty(n, dtype=torch.uint8, pin_memory=True)`): no second copy into pinned
// memory per batch. The module links no LibTorch and no CUDA; torch does the allocating.
//
// The function takes a byte count and returns an object with `data_ptr()`, `numel()` and
// `element_size()` (a torch tensor) of at least that many bytes; the block lives as long as that object, which the
// pipeline holds while the batch buffer exists. Allocations are rare: the pipeline reuses its
// batch buffers, so there are about prefetch + 2 of them, grown only for a larger batch.
//
// Threads: Allocate() runs on the pipeline's batching thread and takes the GIL for the call (the
// Python side waits for batches with the GIL released). The function and the blocks are
// released under the GIL from whichever thread drops them last; once the interpreter is
// finalising they are left to the process's exit instead.
// Failure: an exception from the function, or a block too small, is thrown as
// std::runtime_error naming the batch memory; the pipeline stops with it as an internal error
// of the batcher, raised by the next next().
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "flowfeed/batch_memory.h"

namespace flowfeed::python {

// `name` is what reports call the memory ("cuda pinned").
std::shared_ptr<BatchAllocator> PythonBatchMemory(pybind11::function allocate, std::string name);

}  // namespace flowfeed::python
