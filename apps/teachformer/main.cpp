// teachformer: multimodal 3D segmentation by multi-teacher knowledge distillation.
#include <CLI/CLI.hpp>

#include "common.hpp"
#include "commands.inc"
#include "teachformer/core/runtime.hpp"
#include "teachformer/version.hpp"

int main(int argc, char** argv) {
  teachformer::init_process(argc, argv);
  using namespace teachformer::app;
  CLI::App app{"TeachFormer: multimodal 3D medical image segmentation by multi-teacher knowledge distillation"};
  app.set_version_flag("--version", std::string("teachformer ") + teachformer::kVersion);
  app.require_subcommand(1);
  app.fallthrough();
  app.get_formatter()->column_width(34);
  auto& g = global_options();
  g.argv.assign(argv, argv + argc);
  app.add_option("--threads", g.threads, "Intra-op CPU threads (0 = all cores)")->capture_default_str();
  app.add_flag("-q,--quiet", g.quiet, "No progress bars or periodic progress lines");
  app.add_option("--log-level", g.log_level, "trace, debug, info, warn, error or off")->capture_default_str();
  register_all_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "usage error: %s (see teachformer --help)\n", e.what());
    return kUsageError;
  }
  return command_exit_code();
}
