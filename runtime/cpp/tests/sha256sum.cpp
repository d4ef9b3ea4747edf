// `padl_sha256sum FILE...`: prints "<hex>  <file>" like coreutils' sha256sum, so the test suite can
// check padl::Sha256 against Python's hashlib on known vectors and on every length around the
// 64-byte block boundaries. Built only with -DPADL_BUILD_TESTS=ON.
#include <exception>
#include <iostream>

#include "padl/sha256.h"

int main(int argc, char** argv) {
  try {
    for (int i = 1; i < argc; ++i) std::cout << padl::sha256_file(argv[i]) << "  " << argv[i] << "\n";
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
