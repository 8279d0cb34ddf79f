#include "teachformer/report/assets.hpp"

#include <cstdlib>
#include <sstream>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"

#ifndef TF_WEB_REPORT_DIR
#define TF_WEB_REPORT_DIR ""
#endif

namespace teachformer::report {
namespace {
const char* kInstall = "install them with `bash scripts/install_deps.sh` (Node.js, Chromium, npm ci in web/report)";

fs::path find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (!path) return {};
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    const fs::path p = fs::path(dir) / name;
    if (!dir.empty() && fs::exists(p) && !fs::is_directory(p)) return p;
  }
  return {};
}
}  // namespace

const std::vector<LibraryFile>& report_libraries() {
  static const std::vector<LibraryFile> libs{
      {"@niivue/niivue/dist/niivue.umd.js", "@niivue/niivue"},
      {"vega/build/vega.min.js", "vega"},
      {"vega-lite/build/vega-lite.min.js", "vega-lite"},
      {"vega-embed/build/vega-embed.min.js", "vega-embed"},
  };
  return libs;
}

fs::path web_assets_dir() {
  if (const char* env = std::getenv("TEACHFORMER_WEB_DIR"); env && *env) return fs::path(env);
  return fs::path(TF_WEB_REPORT_DIR);
}

WebAssets locate_web_assets() {
  WebAssets a{web_assets_dir()};
  TF_CHECK(!a.root.empty() && fs::exists(a.template_dir() / "index.html"), IoError,
           "report: the page template is missing (expected '", (a.template_dir() / "index.html").string(),
           "'; set TEACHFORMER_WEB_DIR to the web/report folder of a TeachFormer source tree)");
  for (const auto& lib : report_libraries())
    TF_CHECK(fs::exists(a.node_modules() / lib.source), IoError, "report: the web libraries are not installed ('",
             (a.node_modules() / lib.source).string(), "' is missing); ", kInstall);
  return a;
}

void copy_libraries(const WebAssets& assets, const fs::path& lib_dir) {
  fs::create_directories(lib_dir);
  std::ostringstream notice;
  notice << "Libraries copied into this report from npm packages:\n\n";
  for (const auto& lib : report_libraries()) {
    const fs::path src = assets.node_modules() / lib.source;
    fs::copy_file(src, lib_dir / src.filename(), fs::copy_options::overwrite_existing);
    const fs::path pkg_dir = assets.node_modules() / lib.package;
    const Json pkg = read_json(pkg_dir / "package.json");
    notice << lib.package << " " << pkg.value("version", "?") << " (" << pkg.value("license", "see package") << "): "
           << src.filename().string() << "\n";
    for (const char* name : {"LICENSE", "LICENSE.md", "LICENSE.txt"})
      if (fs::exists(pkg_dir / name)) {
        notice << "\n" << read_file(pkg_dir / name) << "\n";
        break;
      }
    notice << "\n";
  }
  write_file_atomic(lib_dir / "NOTICE.txt", notice.str());
}

fs::path find_chromium() {
  if (const char* env = std::getenv("TEACHFORMER_CHROMIUM"); env && *env) return fs::path(env);
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"})
    if (auto p = find_on_path(name); !p.empty()) return p;
  return {};
}

}  // namespace teachformer::report
