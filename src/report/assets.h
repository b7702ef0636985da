// The plotting library the report inlines: the minified UMD builds of vega,
// vega-lite and vega-embed from tools/node_modules (scripts/setup installs
// them), embedded at build time so that the binary writes self-contained
// pages wherever it runs. Empty strings when the build did not find them.
#pragma once

namespace autoprec::report {

extern const char* const kVegaJs;
extern const char* const kVegaLiteJs;
extern const char* const kVegaEmbedJs;

}  // namespace autoprec::report
