#include "teachformer/dist/process_group.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <future>
#include <thread>

#include "teachformer/core/error.hpp"
#include "teachformer/dist/gradient_reducer.hpp"
#include "teachformer/dist/world.hpp"

namespace teachformer::dist {
namespace {

WorldInfo world(int rank, int size, int port) {
  WorldInfo w;
  w.rank = rank;
  w.world_size = size;
  w.local_rank = rank;
  w.local_world_size = size;
  w.master_addr = "127.0.0.1";
  w.master_port = port;
  w.source = "test";
  return w;
}

ProcessGroupOptions quick(double seconds = 20) {
  ProcessGroupOptions o;
  o.backend = "gloo";
  o.timeout = std::chrono::milliseconds(int64_t(seconds * 1000));
  return o;
}

// Runs fn(rank) on `size` threads, each a rank of one group on a free local port.
void run_ranks(int size, const std::function<void(ProcessGroup&, int)>& fn) {
  const int port = free_local_port();
  std::vector<std::future<void>> done;
  for (int r = 0; r < size; ++r)
    done.push_back(std::async(std::launch::async, [=] {
      auto g = ProcessGroup::connect(world(r, size, port), quick());
      fn(*g, r);
    }));
  for (auto& d : done) d.get();
}

TEST(ProcessGroup, AllReduceBroadcastAllGatherAndBarrierOverGloo) {
  run_ranks(2, [](ProcessGroup& g, int rank) {
    EXPECT_EQ(g.size(), 2);
    EXPECT_EQ(g.rank(), rank);
    EXPECT_EQ(g.backend(), "gloo");
    auto t = torch::full({3}, double(rank + 1), torch::kFloat);
    g.allreduce_sum(t);
    EXPECT_TRUE(torch::equal(t, torch::full({3}, 3.0, torch::kFloat)));
    auto b = torch::full({2}, rank == 0 ? 7.0 : -1.0, torch::kFloat);
    g.broadcast(b, 0);
    EXPECT_TRUE(torch::equal(b, torch::full({2}, 7.0, torch::kFloat)));
    const auto all = g.allgather(torch::full({1}, double(10 * rank), torch::kFloat));
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[1].item<float>(), 10.0f);
    EXPECT_EQ(allreduce_sum(g, {1.0, double(rank)}), (std::vector<double>{2.0, 1.0}));
    g.barrier();
  });
}

// The ranks run as threads of one process and share torch's global generator, so every model is made here, on
// the test's thread, before the ranks start.
TEST(ProcessGroup, BroadcastTensorsCopiesRankZerosParameters) {
  std::vector<torch::nn::Linear> models;
  for (int rank = 0; rank < 2; ++rank) {
    torch::manual_seed(uint64_t(rank));
    models.push_back(torch::nn::Linear(4, 3));
  }
  torch::manual_seed(0);
  const auto reference = torch::nn::Linear(4, 3);
  ASSERT_FALSE(torch::equal(models[1]->weight, reference->weight));
  run_ranks(2, [&](ProcessGroup& g, int rank) {
    auto lin = models[size_t(rank)];
    std::vector<torch::Tensor> params;
    for (const auto& p : lin->parameters()) params.push_back(p);
    broadcast_tensors(g, params, 0);
    EXPECT_TRUE(torch::equal(lin->weight, reference->weight));
    EXPECT_TRUE(torch::equal(lin->bias, reference->bias));
  });
}

// Two ranks, each with its own sample: after the reducer every rank holds the gradient of the mean loss over both
// samples, as one process with both samples would compute it.
TEST(GradientReducer, EqualsTheGradientOfTheWholeBatch) {
  torch::manual_seed(3);
  auto reference = torch::nn::Sequential(torch::nn::Linear(8, 16), torch::nn::ReLU(), torch::nn::Linear(16, 2));
  const auto x = torch::randn({2, 8});
  const auto y = torch::randn({2, 2});
  torch::nn::functional::mse_loss(reference->forward(x), y).backward();
  std::vector<torch::Tensor> expected;
  for (const auto& p : reference->parameters()) expected.push_back(p.grad().clone());

  std::vector<torch::nn::Sequential> models;
  for (int rank = 0; rank < 2; ++rank) {
    torch::manual_seed(3);
    models.push_back(
        torch::nn::Sequential(torch::nn::Linear(8, 16), torch::nn::ReLU(), torch::nn::Linear(16, 2)));
  }
  run_ranks(2, [&](ProcessGroup& g, int rank) {
    auto model = models[size_t(rank)];
    std::vector<torch::Tensor> params;
    for (const auto& p : model->parameters()) params.push_back(p);
    GradientReducerOptions o;
    o.bucket_bytes = 256;  // several buckets
    o.first_bucket_bytes = 64;
    auto group = std::shared_ptr<ProcessGroup>(&g, [](ProcessGroup*) {});
    GradientReducer reducer(group, params, o);
    EXPECT_GT(reducer.buckets(), 1u);
    EXPECT_EQ(reducer.bytes_per_step(), int64_t((8 * 16 + 16 + 16 * 2 + 2) * 4));
    for (int step = 0; step < 2; ++step) {
      model->zero_grad();
      reducer.prepare();
      torch::nn::functional::mse_loss(model->forward(x.narrow(0, rank, 1)), y.narrow(0, rank, 1)).backward();
      reducer.finish();
      for (size_t i = 0; i < params.size(); ++i)
        EXPECT_TRUE(torch::allclose(params[i].grad(), expected[i], 1e-5, 1e-6)) << "parameter " << i;
    }
  });
}

TEST(ProcessGroup, APeerThatNeverComesFailsWithinTheTimeoutNamingTheAddress) {
  const int port = free_local_port();
  const auto t0 = std::chrono::steady_clock::now();
  try {
    ProcessGroup::connect(world(0, 2, port), quick(1.5));
    FAIL() << "connect should fail";
  } catch (const DistributedError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("rank 0/2"), std::string::npos) << m;
    EXPECT_NE(m.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << m;
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30.0);
}

TEST(ProcessGroup, AnUnreachableMasterIsAOneLineError) {
  WorldInfo w = world(1, 2, free_local_port());  // nobody listens there
  try {
    ProcessGroup::connect(w, quick(1.0));
    FAIL() << "connect should fail";
  } catch (const DistributedError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_NE(m.find("MASTER_ADDR"), std::string::npos) << m;
  }
}

TEST(ProcessGroup, APeerThatLeavesMakesTheOtherRankFail) {
  const int port = free_local_port();
  std::promise<void> left;
  auto peer = std::async(std::launch::async, [&] {
    auto g = ProcessGroup::connect(world(1, 2, port), quick(10));
    g.reset();  // the process group goes away: its connections close
    left.set_value();
  });
  auto g = ProcessGroup::connect(world(0, 2, port), quick(10));
  left.get_future().wait();
  peer.get();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(g->allreduce_sum(torch::ones({4})), DistributedError);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 15.0);
}

}  // namespace
}  // namespace teachformer::dist
