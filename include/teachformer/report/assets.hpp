// The report's web assets: the page template (web/report/template/) and the libraries installed by
// `npm ci` in web/report/ (NiiVue, Vega, Vega-Lite, vega-embed; puppeteer-core for --png and the browser tests).
// Found at run time without node: TEACHFORMER_WEB_DIR, else the source tree's web/report recorded at build time.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace teachformer::report {

/// One library file copied into every report.
struct LibraryFile {
  /// Path under node_modules/ ("vega/build/vega.min.js").
  std::string source;
  /// npm package that ships it ("vega").
  std::string package;
};

/// The libraries a report loads, in <script> order.
const std::vector<LibraryFile>& report_libraries();

/// The web assets folder (holds template/, tools/, package.json, node_modules/).
struct WebAssets {
  std::filesystem::path root;
  std::filesystem::path template_dir() const { return root / "template"; }
  std::filesystem::path node_modules() const { return root / "node_modules"; }
  std::filesystem::path tools_dir() const { return root / "tools"; }
};

/// TEACHFORMER_WEB_DIR when set, else the web/report folder of the source tree this binary was built from.
std::filesystem::path web_assets_dir();

/// The assets, checked: template files and every library file present. Throws IoError "report: ... missing; install
/// them with `bash scripts/install_deps.sh` (Node.js + npm ci in web/report)" otherwise.
WebAssets locate_web_assets();

/// Copies the library files into `lib_dir` with a NOTICE.txt (package, version, licence; licence texts where the
/// packages ship them).
void copy_libraries(const WebAssets& assets, const std::filesystem::path& lib_dir);

/// The Chromium executable: TEACHFORMER_CHROMIUM, else the first of chromium, chromium-browser, google-chrome found
/// on PATH; empty when none.
std::filesystem::path find_chromium();

}  // namespace teachformer::report
