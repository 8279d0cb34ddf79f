#include "teachformer/dist/world.hpp"

#include <gtest/gtest.h>

#include <map>

#include "teachformer/core/error.hpp"
#include "test_checks.hpp"

namespace teachformer::dist {
namespace {

using teachformer::test::message_of;

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(World, NoVariablesMeansASingleProcess) {
  const auto w = world_from_environment(env_of({}));
  EXPECT_EQ(w.world_size, 1);
  EXPECT_EQ(w.rank, 0);
  EXPECT_FALSE(w.distributed());
  EXPECT_EQ(w.source, "single");
}

TEST(World, TorchrunVariablesAreRead) {
  const auto w = world_from_environment(env_of({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"},
                                                {"LOCAL_WORLD_SIZE", "4"}, {"MASTER_ADDR", "node07"},
                                                {"MASTER_PORT", "29511"}}));
  EXPECT_EQ(w.rank, 3);
  EXPECT_EQ(w.world_size, 8);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_world_size, 4);
  EXPECT_EQ(w.master_addr, "node07");
  EXPECT_EQ(w.master_port, 29511);
  EXPECT_EQ(w.source, "torchrun");
  EXPECT_TRUE(w.distributed());
}

TEST(World, SlurmVariablesAreReadWithTheFirstHostAsMaster) {
  const auto w = world_from_environment(env_of({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
                                                {"SLURM_NTASKS_PER_NODE", "4(x2)"},
                                                {"SLURM_JOB_NODELIST", "gpu[03-04]"}}));
  EXPECT_EQ(w.rank, 5);
  EXPECT_EQ(w.world_size, 8);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_world_size, 4);
  EXPECT_EQ(w.master_addr, "gpu03");
  EXPECT_EQ(w.master_port, kDefaultMasterPort);
  EXPECT_EQ(w.source, "slurm");
}

TEST(World, TorchrunWinsOverSlurm) {
  const auto w = world_from_environment(env_of({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"},
                                                {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}}));
  EXPECT_EQ(w.source, "torchrun");
  EXPECT_EQ(w.world_size, 2);
}

TEST(World, BadValuesAreOneLineErrorsNamingTheVariable) {
  EXPECT_NE(message_of([] { world_from_environment(env_of({{"WORLD_SIZE", "two"}})); }).find("WORLD_SIZE"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              world_from_environment(env_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}));
            }).find("rank 2 is outside [0, 2)"),
            std::string::npos);
  EXPECT_NE(message_of([] { world_from_environment(env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}})); }).find("MASTER_ADDR"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              world_from_environment(
                  env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}}));
            }).find("MASTER_PORT"),
            std::string::npos);
  EXPECT_THROW(world_from_environment(env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}})), InvalidArgument);
}

TEST(World, FirstSlurmHostOfEveryNodeListForm) {
  EXPECT_EQ(first_slurm_host("node[03-05,9],gpu1"), "node03");
  EXPECT_EQ(first_slurm_host("a,b"), "a");
  EXPECT_EQ(first_slurm_host("c7"), "c7");
  EXPECT_EQ(first_slurm_host("rack1-n[12,14]"), "rack1-n12");
  EXPECT_EQ(first_slurm_host("n[1-2]-ib"), "n1-ib");
  EXPECT_THROW(first_slurm_host(""), InvalidArgument);
  EXPECT_THROW(first_slurm_host("node[03"), InvalidArgument);
  EXPECT_THROW(first_slurm_host("node[a-b]"), InvalidArgument);
}

TEST(World, FreeLocalPortIsBindable) {
  const int port = free_local_port();
  EXPECT_GT(port, 0);
  EXPECT_LT(port, 65536);
}

}  // namespace
}  // namespace teachformer::dist
