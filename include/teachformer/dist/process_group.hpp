// A process group over LibTorch's own distributed engine (c10d): a TCPStore rendezvous hosted by rank 0, Gloo
// collectives on CPU tensors, NCCL on CUDA tensors where the LibTorch build has it. c10d and Gloo headers stay in
// src/dist; this header is free of them. Every failure (a peer that never comes, a peer that dies, a timeout)
// becomes a DistributedError naming this rank and the rendezvous address.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <torch/types.h>

#include "teachformer/dist/world.hpp"

namespace torch::nn {
class Module;
}

namespace teachformer::dist {

/// Process-group settings.
struct ProcessGroupOptions {
  /// "gloo", "nccl" or "auto" (NCCL for a CUDA device when available, else Gloo).
  std::string backend = "auto";
  /// How long a rendezvous or a collective may wait for the other ranks before failing. Default 5 minutes.
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  /// Device of the tensors the collectives see (CPU for Gloo).
  c10::Device device{c10::kCPU};
};

/// An in-flight collective.
class PendingCollective {
 public:
  PendingCollective() = default;
  /// Waits for completion; DistributedError on failure.
  void wait();
  /// True when there is something to wait for.
  bool valid() const { return bool(impl_); }

 private:
  friend class ProcessGroup;
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

/// A joined process group.
class ProcessGroup {
 public:
  /// Joins the job described by `world`: rank 0 hosts the TCPStore at master_addr:master_port, every rank connects
  /// within `options.timeout`. DistributedError naming the address for a bad host or port, a port in use, or peers
  /// that do not come in time.
  static std::shared_ptr<ProcessGroup> connect(const WorldInfo& world, const ProcessGroupOptions& options = {});
  ~ProcessGroup();

  int rank() const;
  int size() const;
  const WorldInfo& world() const;
  /// "gloo" or "nccl".
  std::string backend() const;

  /// Sums `tensor` over ranks in place, asynchronously (the tensor must stay alive until wait()).
  PendingCollective allreduce_sum_async(torch::Tensor tensor);
  /// Sums in place and waits.
  void allreduce_sum(torch::Tensor tensor);
  /// Copies rank `root`'s tensor into every rank's `tensor` (same shape and dtype everywhere).
  void broadcast(torch::Tensor tensor, int root = 0);
  /// Every rank's `tensor` (same shape everywhere), in rank order.
  std::vector<torch::Tensor> allgather(const torch::Tensor& tensor);
  /// Waits until every rank has arrived.
  void barrier();

  /// The failure message used for `what` going wrong: "rank R/W (ADDR:PORT): <what>: <detail>".
  std::string failure(const std::string& what, const std::string& detail) const;

 private:
  struct Impl;
  explicit ProcessGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Sums a few scalars over ranks (e.g. validation Dice sums and case counts) and returns the sums.
std::vector<double> allreduce_sum(ProcessGroup& group, const std::vector<double>& values);

/// Copies rank 0's values of every tensor into every rank (coalesced into one buffer per dtype), e.g. a model's
/// parameters and buffers at the start of training.
void broadcast_tensors(ProcessGroup& group, const std::vector<torch::Tensor>& tensors, int root = 0);

/// DDP's start: copies rank `root`'s parameters and buffers of `module` into every rank (broadcast_tensors).
void broadcast_module(ProcessGroup& group, const torch::nn::Module& module, int root = 0);

}  // namespace teachformer::dist
