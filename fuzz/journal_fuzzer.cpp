// libFuzzer target for the journal's open/resume path: any journal.sqlite
// either opens and reads back (run configuration, evaluations, best, fronts,
// the last checkpoint) or raises autoprec::UserError.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "search/journal.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = "/tmp/autoprec-fuzz-journal-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/journal.sqlite", std::ios::binary).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  try {
    autoprec::search::Journal journal = autoprec::search::Journal::open(dir);
    journal.run_config();
    journal.evaluations();
    journal.best();
    journal.latest_checkpoint();
  } catch (const autoprec::UserError&) {
  }
  return 0;
}
