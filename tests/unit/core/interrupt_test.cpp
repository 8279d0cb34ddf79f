#include "teachformer/core/interrupt.hpp"

#include <signal.h>

#include <gtest/gtest.h>

namespace teachformer {
namespace {

TEST(StopRequest, ASignalAsksForAStopWithoutEndingTheProcess) {
  install_stop_handlers();
  clear_stop_request();
  EXPECT_FALSE(stop_requested());
  EXPECT_NO_THROW(throw_if_stop_requested("nothing"));
  ::raise(SIGTERM);  // with the handler installed this only records the request
  EXPECT_TRUE(stop_requested());
  EXPECT_EQ(stop_signal(), SIGTERM);
  try {
    throw_if_stop_requested("checkpoint written at step 4");
    ADD_FAILURE() << "no Interrupted";
  } catch (const Interrupted& e) {
    EXPECT_EQ(e.signal(), SIGTERM);
    EXPECT_EQ(e.exit_status(), 143);
    EXPECT_STREQ(e.what(), "interrupted by SIGTERM; checkpoint written at step 4");
  }
  clear_stop_request();
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGUSR1, SIG_DFL);
}

TEST(StopRequest, ExitStatusFollowsTheShellsConvention) {
  EXPECT_EQ(Interrupted(SIGINT, "").exit_status(), 130);
  EXPECT_EQ(Interrupted(SIGUSR1, "").exit_status(), 138);
  EXPECT_EQ(signal_name(SIGUSR1), "SIGUSR1");
}

// A second signal ends the process at once, with 128 + its number.
TEST(StopRequestDeathTest, SecondSignalStopsAtOnce) {
  EXPECT_EXIT(
      {
        install_stop_handlers();
        ::raise(SIGINT);
        ::raise(SIGINT);
        std::abort();  // not reached
      },
      ::testing::ExitedWithCode(130), "second signal");
}

}  // namespace
}  // namespace teachformer
