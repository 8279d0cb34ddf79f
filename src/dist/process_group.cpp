#include "teachformer/dist/process_group.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <cstdlib>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(TF_WITH_GLOO)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(TF_WITH_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::dist {
namespace {

std::string first_line(const std::string& text) {
  const auto nl = text.find('\n');
  return nl == std::string::npos ? text : text.substr(0, nl);
}

bool is_loopback(const std::string& host) {
  if (host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1") return true;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res) return false;
  const auto* in = reinterpret_cast<const sockaddr_in*>(res->ai_addr);
  const bool loop = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  ::freeaddrinfo(res);
  return loop;
}

#if defined(TF_WITH_GLOO)
// The local address peers reach this rank's Gloo pairs at: the interface named by GLOO_SOCKET_IFNAME (as PyTorch
// reads it), loopback for a single-machine job, else the address the host name resolves to.
std::shared_ptr<::gloo::transport::Device> gloo_device(const WorldInfo& world) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (is_loopback(world.master_addr)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}
#endif

}  // namespace

struct PendingCollective::Impl {
  c10::intrusive_ptr<c10d::Work> work;
  std::string context;
};

void PendingCollective::wait() {
  if (!impl_) return;
  try {
    impl_->work->wait();
  } catch (const std::exception& e) {
    const std::string context = impl_->context;
    impl_.reset();
    TF_THROW(DistributedError, context, ": ", first_line(e.what()),
             " (a peer rank died, hung or timed out; see its own error)");
  }
  impl_.reset();
}

struct ProcessGroup::Impl {
  WorldInfo world;
  ProcessGroupOptions options;
  c10::intrusive_ptr<c10d::Store> store;
#if defined(TF_WITH_GLOO)
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#endif
#if defined(TF_WITH_NCCL)
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif

  template <class F>
  c10::intrusive_ptr<c10d::Work> run(F&& f) {
#if defined(TF_WITH_NCCL)
    if (nccl) return f(*nccl);
#endif
#if defined(TF_WITH_GLOO)
    if (gloo) return f(*gloo);
#endif
    TF_THROW(InternalError, "process group without a backend");
  }
};

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;

std::shared_ptr<ProcessGroup> ProcessGroup::connect(const WorldInfo& world, const ProcessGroupOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->world = world;
  impl->options = options;
  const std::string where = world.master_addr + ":" + std::to_string(world.master_port);
  const auto context = [&](const std::string& what) {
    return "rank " + std::to_string(world.rank) + "/" + std::to_string(world.world_size) + " (" + where + "): " + what;
  };
  std::string backend = options.backend;
  if (backend == "auto") backend = options.device.is_cuda() ? "nccl" : "gloo";
  TF_CHECK(backend == "gloo" || backend == "nccl", InvalidArgument, "distributed backend must be gloo, nccl or auto, got '",
           options.backend, "'");
#if !defined(TF_WITH_GLOO)
  TF_CHECK(backend != "gloo", InvalidArgument, "this build of TeachFormer has no Gloo (install libgloo-dev and rebuild), "
           "so distributed training on CPUs is not available");
#endif
#if !defined(TF_WITH_NCCL)
  TF_CHECK(backend != "nccl", InvalidArgument, "this build of TeachFormer has no NCCL (build against a CUDA LibTorch with "
           "-DTEACHFORMER_WITH_CUDA=ON), so the nccl backend is not available; use gloo");
#endif
  try {
    c10d::TCPStoreOptions so;
    so.port = uint16_t(world.master_port);
    so.isServer = world.rank == 0;
    so.numWorkers = size_t(world.world_size);
    so.waitWorkers = true;
    so.timeout = options.timeout;
    impl->store = c10::make_intrusive<c10d::TCPStore>(world.master_addr, so);
  } catch (const std::exception& e) {
    TF_THROW(DistributedError, context("cannot join the rendezvous store"), ": ", first_line(e.what()),
             world.rank == 0 ? " (is the port in use, or did the other ranks not start within the timeout?)"
                             : " (check MASTER_ADDR/MASTER_PORT and that rank 0 is running)");
  }
  try {
#if defined(TF_WITH_GLOO)
    if (backend == "gloo") {
      auto go = c10d::ProcessGroupGloo::Options::create(options.timeout);
      go->devices.push_back(gloo_device(world));
      go->threads = 2;
      impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, world.rank, world.world_size, go);
    }
#endif
#if defined(TF_WITH_NCCL)
    if (backend == "nccl") {
      auto no = c10d::ProcessGroupNCCL::Options::create();
      no->timeout = options.timeout;
      impl->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, world.rank, world.world_size, no);
    }
#endif
  } catch (const std::exception& e) {
    TF_THROW(DistributedError, context("cannot connect the " + backend + " process group"), ": ",
             first_line(e.what()));
  }
  return std::shared_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

int ProcessGroup::rank() const { return impl_->world.rank; }
int ProcessGroup::size() const { return impl_->world.world_size; }
const WorldInfo& ProcessGroup::world() const { return impl_->world; }
std::string ProcessGroup::backend() const {
#if defined(TF_WITH_NCCL)
  if (impl_->nccl) return "nccl";
#endif
  return "gloo";
}

std::string ProcessGroup::failure(const std::string& what, const std::string& detail) const {
  const auto& w = impl_->world;
  return "rank " + std::to_string(w.rank) + "/" + std::to_string(w.world_size) + " (" + w.master_addr + ":" +
         std::to_string(w.master_port) + "): " + what + (detail.empty() ? "" : ": " + detail);
}

PendingCollective ProcessGroup::allreduce_sum_async(torch::Tensor tensor) {
  PendingCollective p;
  p.impl_ = std::make_shared<PendingCollective::Impl>();
  p.impl_->context = failure("all-reduce failed", "");
  try {
    std::vector<at::Tensor> ts{std::move(tensor)};
    p.impl_->work = impl_->run([&](auto& pg) { return pg.allreduce(ts, c10d::AllreduceOptions()); });
  } catch (const std::exception& e) {
    TF_THROW(DistributedError, failure("all-reduce failed", first_line(e.what())));
  }
  return p;
}

void ProcessGroup::allreduce_sum(torch::Tensor tensor) { allreduce_sum_async(std::move(tensor)).wait(); }

void ProcessGroup::broadcast(torch::Tensor tensor, int root) {
  PendingCollective p;
  p.impl_ = std::make_shared<PendingCollective::Impl>();
  p.impl_->context = failure("broadcast failed", "");
  try {
    std::vector<at::Tensor> ts{std::move(tensor)};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    p.impl_->work = impl_->run([&](auto& pg) { return pg.broadcast(ts, o); });
  } catch (const std::exception& e) {
    TF_THROW(DistributedError, failure("broadcast failed", first_line(e.what())));
  }
  p.wait();
}

std::vector<torch::Tensor> ProcessGroup::allgather(const torch::Tensor& tensor) {
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < size(); ++r) outputs[0].push_back(torch::empty_like(tensor));
  std::vector<at::Tensor> inputs{tensor.contiguous()};
  PendingCollective p;
  p.impl_ = std::make_shared<PendingCollective::Impl>();
  p.impl_->context = failure("all-gather failed", "");
  try {
    p.impl_->work = impl_->run([&](auto& pg) { return pg.allgather(outputs, inputs, c10d::AllgatherOptions()); });
  } catch (const std::exception& e) {
    TF_THROW(DistributedError, failure("all-gather failed", first_line(e.what())));
  }
  p.wait();
  return outputs[0];
}

void ProcessGroup::barrier() {
  // An all-reduce of one value: a barrier that every backend runs the same way (NCCL's barrier needs a device).
  allreduce_sum(torch::zeros({1}, torch::TensorOptions().device(impl_->options.device)));
}

std::vector<double> allreduce_sum(ProcessGroup& group, const std::vector<double>& values) {
  auto t = torch::tensor(values, torch::kDouble);
  if (group.backend() == "nccl") t = t.to(torch::kCUDA);
  group.allreduce_sum(t);
  t = t.cpu();
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

void broadcast_module(ProcessGroup& group, const torch::nn::Module& module, int root) {
  std::vector<torch::Tensor> state = module.parameters();
  for (const auto& b : module.buffers()) state.push_back(b);
  broadcast_tensors(group, state, root);
}

void broadcast_tensors(ProcessGroup& group, const std::vector<torch::Tensor>& tensors, int root) {
  std::map<c10::ScalarType, std::vector<torch::Tensor>> by_type;
  for (const auto& t : tensors)
    if (t.defined() && t.numel() > 0) by_type[t.scalar_type()].push_back(t);
  torch::NoGradGuard no_grad;
  for (auto& [type, list] : by_type) {
    std::vector<torch::Tensor> flat;
    for (const auto& t : list) flat.push_back(t.detach().reshape({-1}));
    auto buffer = torch::cat(flat);
    group.broadcast(buffer, root);
    int64_t offset = 0;
    for (auto& t : list) {
      const int64_t n = t.numel();
      t.detach().copy_(buffer.narrow(0, offset, n).view(t.sizes()));
      offset += n;
    }
  }
}

}  // namespace teachformer::dist
