// --version and --help for every sring tool: the release and the ABI it
// speaks, or the usage text.
#pragma once

#include <cstdio>
#include <string_view>

#include "sring/sring_abi.h"
#include "sring/sring_version.h"

namespace sring::cli {

inline void print_version(std::string_view tool) {
  std::printf("%.*s %s (sring ABI %d.%d)\n", static_cast<int>(tool.size()), tool.data(), SRING_VERSION,
              SRING_ABI_VERSION_MAJOR, SRING_ABI_VERSION_MINOR);
}

// --help (-h) or --version anywhere on the command line wins over every
// other option: prints the usage text or the version and returns true (the
// tool then exits 0 without parsing the rest).
inline bool answered_help_or_version(int argc, char** argv, std::string_view tool, std::string_view usage) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view option = argv[i];
    if (option == "--help" || option == "-h") {
      std::fwrite(usage.data(), 1, usage.size(), stdout);
      return true;
    }
    if (option == "--version") {
      print_version(tool);
      return true;
    }
  }
  return false;
}

}  // namespace sring::cli
