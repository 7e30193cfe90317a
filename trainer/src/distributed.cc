// The c10d process group behind the trainer's Communicator (distributed.h).
#include "distributed.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>

#if FLOWFEED_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace flowfeed {

#if FLOWFEED_WITH_GLOO

namespace {

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

bool IsLoopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

class GlooCommunicator final : public Communicator {
 public:
  explicit GlooCommunicator(const DistributedOptions& o)
      : options_(o),
        timeout_(std::chrono::milliseconds(int64_t(o.timeout_seconds * 1000))) {}

  Status Connect() {
    const std::string where = options_.master_addr + ":" + std::to_string(options_.master_port);
    try {
      c10d::TCPStoreOptions so;
      so.port = uint16_t(options_.master_port);
      so.isServer = options_.rank == 0;
      so.numWorkers = size_t(options_.world_size);
      so.waitWorkers = true;
      so.timeout = timeout_;
      store_ = c10::make_intrusive<c10d::TCPStore>(options_.master_addr, so);
    } catch (const std::exception& e) {
      return Status::IoError("distributed: rank " + std::to_string(options_.rank) +
                             " could not meet the other " + std::to_string(options_.world_size - 1) +
                             " ranks at " + where + " within " + Seconds() + ": " +
                             FirstLine(e.what()));
    }
    try {
      auto po = c10d::ProcessGroupGloo::Options::create(timeout_);
      // The address the ranks reach each other on: loopback for a one-host run on loopback;
      // the interface named by GLOO_SOCKET_IFNAME (as in PyTorch); else this host's name.
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (ifname && *ifname)
        po->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (IsLoopback(options_.master_addr))
        po->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        po->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      po->threads = 2;
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, options_.rank,
                                                           options_.world_size, po);
    } catch (const std::exception& e) {
      return Status::IoError("distributed: rank " + std::to_string(options_.rank) +
                             " could not meet the other " + std::to_string(options_.world_size - 1) +
                             " ranks at " + where + " within " + Seconds() +
                             " (building the Gloo group): " + FirstLine(e.what()));
    }
    return Status::Ok();
  }

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }
  std::string backend() const override { return "gloo"; }

  Status Broadcast(std::vector<torch::Tensor>& tensors, const std::string& what) override {
    return Run(what, [&] {
      for (torch::Tensor& t : tensors) {
        std::vector<at::Tensor> one{t};
        Wait(group_->broadcast(one));
      }
    });
  }

  Status AllReduceSum(std::vector<torch::Tensor>& tensors, const std::string& what,
                      int64_t bucket_bytes) override {
    return Run(what, [&] {
      size_t begin = 0;
      while (begin < tensors.size()) {
        // A bucket: consecutive tensors of one dtype up to bucket_bytes (at least one).
        size_t end = begin + 1;
        int64_t bytes = tensors[begin].numel() * int64_t(tensors[begin].element_size());
        while (end < tensors.size() && tensors[end].scalar_type() == tensors[begin].scalar_type() &&
               bytes + tensors[end].numel() * int64_t(tensors[end].element_size()) <= bucket_bytes) {
          bytes += tensors[end].numel() * int64_t(tensors[end].element_size());
          ++end;
        }
        std::vector<torch::Tensor> flat_parts;
        for (size_t i = begin; i < end; ++i) flat_parts.push_back(tensors[i].reshape({-1}));
        std::vector<at::Tensor> flat{torch::cat(flat_parts)};
        Wait(group_->allreduce(flat));
        int64_t at = 0;
        for (size_t i = begin; i < end; ++i) {
          const int64_t n = tensors[i].numel();
          tensors[i].copy_(flat[0].narrow(0, at, n).view_as(tensors[i]));
          at += n;
        }
        begin = end;
      }
    });
  }

  Status AllReduceSum(std::vector<double>* values, const std::string& what) override {
    if (values->empty()) return Status::Ok();
    return Run(what, [&] {
      std::vector<at::Tensor> t{torch::from_blob(values->data(), {int64_t(values->size())},
                                                 torch::kFloat64)
                                    .clone()};
      Wait(group_->allreduce(t));
      std::memcpy(values->data(), t[0].data_ptr<double>(), values->size() * sizeof(double));
    });
  }

 private:
  std::string Seconds() const {
    return std::to_string(int64_t(options_.timeout_seconds)) + " s";
  }

  template <typename W>
  void Wait(const W& work) {
    work->wait(timeout_);
  }

  template <typename F>
  Status Run(const std::string& what, F&& body) {
    try {
      body();
    } catch (const std::exception& e) {
      return Status::IoError("distributed: " + what + " failed on rank " +
                             std::to_string(options_.rank) + " of " +
                             std::to_string(options_.world_size) +
                             " (another rank exited, or did not answer within " + Seconds() +
                             "): " + FirstLine(e.what()));
    }
    return Status::Ok();
  }

  DistributedOptions options_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};

}  // namespace

bool HaveGloo() { return true; }

Result<std::unique_ptr<Communicator>> Communicator::Create(const DistributedOptions& options) {
  if (options.backend == "nccl")
    return Status::Unsupported("distributed.backend: nccl is not built into this flowfeed "
                               "(only gloo); use backend: gloo or auto");
  auto c = std::make_unique<GlooCommunicator>(options);
  FLOWFEED_RETURN_IF_ERROR(c->Connect());
  return std::unique_ptr<Communicator>(std::move(c));
}

#else  // !FLOWFEED_WITH_GLOO

bool HaveGloo() { return false; }

Result<std::unique_ptr<Communicator>> Communicator::Create(const DistributedOptions& options) {
  return Status::Unsupported(
      "distributed: WORLD_SIZE is " + std::to_string(options.world_size) +
      ", but this flowfeed was built without c10d's Gloo backend (install libgloo-dev and "
      "reconfigure, or use a LibTorch that ships Gloo)");
}

#endif

}  // namespace flowfeed
