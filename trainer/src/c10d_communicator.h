// c10d_communicator.h (internal): the Communicator of distributed.h over one c10d process group,
// whichever backend it is. distributed.cc instantiates it for Gloo, nccl_communicator.cc (built
// only against a CUDA LibTorch with c10d NCCL) for NCCL; the rendezvous, the bucketing and the
// error messages are the same for both.
//
// Tensors may live anywhere: each collective runs on copies on the group's device (the CPU for
// Gloo, the rank's GPU for NCCL) and writes the results back into the caller's tensors, so the
// trainer hands over its gradients where they are and the backend decides where they travel
// from. Threads, ownership and failures: distributed.h.
#pragma once

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "distributed.h"

namespace flowfeed {

inline std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

template <class Group>
class C10dCommunicator final : public Communicator {
 public:
  // Makes the group over the rendezvous store: (store, rank, world size, timeout) -> group.
  using MakeGroup = std::function<c10::intrusive_ptr<Group>(
      const c10::intrusive_ptr<c10d::Store>&, int, int, std::chrono::milliseconds)>;

  // `device`: where the collectives run. `host_waits`: each collective's wait blocks the host
  // with the options' timeout (Gloo); otherwise the wait only orders the current CUDA stream
  // after the collective and the backend's own watchdog enforces the timeout (NCCL: a host
  // wait per step would undo the copy-ahead).
  C10dCommunicator(const DistributedOptions& o, std::string backend, torch::Device device,
                   bool host_waits)
      : options_(o),
        backend_(std::move(backend)),
        device_(device),
        host_waits_(host_waits),
        timeout_(std::chrono::milliseconds(int64_t(o.timeout_seconds * 1000))) {}

  // Rank 0 serves the TCPStore, every rank connects to it, then the group is built.
  Status Connect(const MakeGroup& make_group) {
    const std::string where = options_.master_addr + ":" + std::to_string(options_.master_port);
    const std::string who = "distributed: rank " + std::to_string(options_.rank) +
                            " could not meet the other " +
                            std::to_string(options_.world_size - 1) + " ranks at " + where +
                            " within " + Seconds();
    try {
      c10d::TCPStoreOptions so;
      so.port = uint16_t(options_.master_port);
      so.isServer = options_.rank == 0;
      so.numWorkers = size_t(options_.world_size);
      so.waitWorkers = true;
      so.timeout = timeout_;
      store_ = c10::make_intrusive<c10d::TCPStore>(options_.master_addr, so);
    } catch (const std::exception& e) {
      return Status::IoError(who + ": " + FirstLine(e.what()));
    }
    try {
      group_ = make_group(store_, options_.rank, options_.world_size, timeout_);
    } catch (const std::exception& e) {
      return Status::IoError(who + " (building the " + backend_ + " group): " +
                             FirstLine(e.what()));
    }
    return Status::Ok();
  }

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }
  std::string backend() const override { return backend_; }

  Status Broadcast(std::vector<torch::Tensor>& tensors, const std::string& what) override {
    return Run(what, [&] {
      for (torch::Tensor& t : tensors) {
        std::vector<at::Tensor> one{t.to(device_).contiguous()};
        Wait(group_->broadcast(one));
        if (!one[0].is_same(t)) t.copy_(one[0]);
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
        int64_t bytes = Bytes(tensors[begin]);
        while (end < tensors.size() &&
               tensors[end].scalar_type() == tensors[begin].scalar_type() &&
               bytes + Bytes(tensors[end]) <= bucket_bytes) {
          bytes += Bytes(tensors[end]);
          ++end;
        }
        std::vector<torch::Tensor> flat_parts;
        for (size_t i = begin; i < end; ++i) flat_parts.push_back(tensors[i].reshape({-1}));
        std::vector<at::Tensor> flat{torch::cat(flat_parts).to(device_)};
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
      std::vector<at::Tensor> t{
          torch::from_blob(values->data(), {int64_t(values->size())}, torch::kFloat64)
              .to(device_, /*non_blocking=*/false, /*copy=*/true)};
      Wait(group_->allreduce(t));
      const torch::Tensor host = t[0].to(torch::kCPU).contiguous();
      std::memcpy(values->data(), host.data_ptr<double>(), values->size() * sizeof(double));
    });
  }

 private:
  static int64_t Bytes(const torch::Tensor& t) { return t.numel() * int64_t(t.element_size()); }

  std::string Seconds() const { return std::to_string(int64_t(options_.timeout_seconds)) + " s"; }

  // Gloo's wait returns when the collective is done; NCCL's (without a timeout) makes the
  // current CUDA stream wait for it, so what the stream runs next (the copies back) sees the
  // result.
  template <typename W>
  void Wait(const W& work) {
    if (host_waits_)
      work->wait(timeout_);
    else
      work->wait();
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
  std::string backend_;
  torch::Device device_;
  bool host_waits_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<Group> group_;
};

}  // namespace flowfeed
