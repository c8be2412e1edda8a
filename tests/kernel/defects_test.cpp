// Runs inside the QEMU guest, linked into kernel_test (tests/kernel/BUILD).
#include "tests/kernel/kernel_util.hpp"

namespace {

using namespace sring_ktest;

}  // namespace
