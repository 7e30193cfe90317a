// The c10d process group behind the trainer's Communicator (distributed.h): which backend a run
// gets, and the Gloo group (the NCCL one is nccl_communicator.cc's).
#include "distributed.h"

#include <cstdlib>

#if FLOWFEED_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "c10d_communicator.h"
#endif

namespace flowfeed {

#if FLOWFEED_WITH_GLOO

namespace {

bool IsLoopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

Result<std::unique_ptr<Communicator>> CreateGloo(const DistributedOptions& options) {
  using Gloo = c10d::ProcessGroupGloo;
  auto c = std::make_unique<C10dCommunicator<Gloo>>(options, "gloo", torch::Device(torch::kCPU),
                                                     /*host_waits=*/true);
  const std::string master = options.master_addr;
  FLOWFEED_RETURN_IF_ERROR(c->Connect([&](const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                          int size, std::chrono::milliseconds timeout) {
    auto po = Gloo::Options::create(timeout);
    // The address the ranks reach each other on: loopback for a one-host run on loopback;
    // the interface named by GLOO_SOCKET_IFNAME (as in PyTorch); else this host's name.
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname && *ifname)
      po->devices.push_back(Gloo::createDeviceForInterface(ifname));
    else if (IsLoopback(master))
      po->devices.push_back(Gloo::createDeviceForHostname("127.0.0.1"));
    else
      po->devices.push_back(Gloo::createDefaultDevice());
    po->threads = 2;
    return c10::make_intrusive<Gloo>(store, rank, size, po);
  }));
  return std::unique_ptr<Communicator>(std::move(c));
}

}  // namespace

bool HaveGloo() { return true; }

#else

bool HaveGloo() { return false; }

#endif

#if !FLOWFEED_WITH_NCCL
bool HaveNccl() { return false; }

Result<std::unique_ptr<Communicator>> CreateNcclCommunicator(const DistributedOptions&,
                                                             const torch::Device&) {
  return Status::Unsupported("distributed.backend: nccl is not built into this flowfeed (it "
                             "needs a CUDA LibTorch with c10d's NCCL backend)");
}
#endif

std::string ChooseBackend(const std::string& wanted, const torch::Device& device) {
  if (wanted != "auto") return wanted;
  return device.is_cuda() && HaveNccl() ? "nccl" : "gloo";
}

Result<std::unique_ptr<Communicator>> Communicator::Create(const DistributedOptions& options,
                                                           const torch::Device& device) {
  const std::string backend = ChooseBackend(options.backend, device);
  if (backend == "nccl") {
    if (!HaveNccl()) return CreateNcclCommunicator(options, device);  // says it is not built
    if (!device.is_cuda())
      return Status::InvalidArgument("distributed.backend: nccl carries CUDA tensors, but this "
                                     "rank trains on " + device.str() +
                                     " (use backend: gloo or auto, or device: cuda)");
    return CreateNcclCommunicator(options, device);
  }
#if FLOWFEED_WITH_GLOO
  return CreateGloo(options);
#else
  return Status::Unsupported(
      "distributed: WORLD_SIZE is " + std::to_string(options.world_size) +
      ", but this flowfeed was built without c10d's Gloo backend (install libgloo-dev and "
      "reconfigure, or use a LibTorch that ships Gloo)" +
      (HaveNccl() ? std::string("; NCCL is built: train on CUDA with backend auto or nccl")
                  : std::string()));
#endif
}

}  // namespace flowfeed
