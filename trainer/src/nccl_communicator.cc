// The NCCL Communicator (distributed.h), for ranks that train on a GPU. Compiled only against a
// CUDA LibTorch whose headers have c10d's ProcessGroupNCCL and with nccl.h found
// (trainer/CMakeLists.txt: FLOWFEED_WITH_NCCL); distributed.cc says it is not built otherwise.
//
// The collectives run on the rank's GPU (its LOCAL_RANK, chosen by the trainer), on NCCL's own
// stream, ordered after the current stream's work and before what the current stream runs
// next; the host does not wait for them. A rank that stops answering is caught by NCCL's
// watchdog after `distributed.timeout_seconds`, which ends the process with its message.
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "c10d_communicator.h"

namespace flowfeed {

bool HaveNccl() { return true; }

Result<std::unique_ptr<Communicator>> CreateNcclCommunicator(const DistributedOptions& options,
                                                             const torch::Device& device) {
  using Nccl = c10d::ProcessGroupNCCL;
  auto c = std::make_unique<C10dCommunicator<Nccl>>(options, "nccl", device,
                                                    /*host_waits=*/false);
  FLOWFEED_RETURN_IF_ERROR(c->Connect([](const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                         int size, std::chrono::milliseconds timeout) {
    auto po = Nccl::Options::create();
    po->timeout = timeout;
    return c10::make_intrusive<Nccl>(store, rank, size, po);
  }));
  return std::unique_ptr<Communicator>(std::move(c));
}

}  // namespace flowfeed
