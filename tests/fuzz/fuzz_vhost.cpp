#include "fuzz_entry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return kab::dpu::fuzz::vhost_one_input(data, size, false);
}
