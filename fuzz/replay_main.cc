// Runs a fuzz target over files without libFuzzer: each argument is a file
// or a folder of files, each file one input. Built with g++ so the corpus is
// replayed by ctest in every build (and under ASan/UBSan in build-asan);
// scripts/fuzz.sh builds the same targets with clang's libFuzzer to search.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "common/file_contents.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg(argv[i]);
    if (std::filesystem::is_directory(arg)) {
      for (const auto& entry : std::filesystem::recursive_directory_iterator(arg)) {
        if (entry.is_regular_file()) inputs.push_back(entry.path());
      }
    } else {
      inputs.push_back(arg);
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "usage: %s FILE_OR_DIR...\n(no inputs found)\n", argv[0]);
    return 2;
  }
  for (const auto& path : inputs) {
    auto bytes = matid::ReadFileContents(path.string());
    if (!bytes.ok()) {
      std::fprintf(stderr, "%s\n", std::string(bytes.status().message()).c_str());
      return 2;
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size());
  }
  std::printf("replayed %zu inputs, no invariant broken\n", inputs.size());
  return 0;
}
