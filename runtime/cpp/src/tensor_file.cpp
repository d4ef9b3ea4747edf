#include "padl/tensor_file.h"

#include <array>
#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <ATen/ATen.h>

namespace padl {
namespace {

constexpr const char* kMagic = "padl-tensor";
constexpr int kVersion = 1;
constexpr std::size_t kMaxHeader = 4096;

struct DtypeName {
  const char* name;
  at::ScalarType type;
};

constexpr std::array<DtypeName, 10> kDtypes = {{
    {"float32", at::kFloat},
    {"float64", at::kDouble},
    {"float16", at::kHalf},
    {"bfloat16", at::kBFloat16},
    {"int64", at::kLong},
    {"int32", at::kInt},
    {"int16", at::kShort},
    {"int8", at::kChar},
    {"uint8", at::kByte},
    {"bool", at::kBool},
}};

void require_little_endian() {
  const std::uint16_t probe = 1;
  if (*reinterpret_cast<const std::uint8_t*>(&probe) != 1) {
    throw std::runtime_error("padl tensor files are little-endian; this host is big-endian");
  }
}

[[noreturn]] void bad_file(const std::string& path, const std::string& why) {
  throw std::runtime_error(path + ": not a padl tensor file (" + why + ")");
}

}  // namespace

at::Tensor read_tensor_file(const std::string& path) {
  require_little_endian();
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error(path + ": cannot open tensor file");
  const auto file_size = static_cast<std::uint64_t>(in.tellg());
  in.seekg(0);

  std::string header;
  for (char c; header.size() < kMaxHeader && in.get(c) && c != '\n';) header.push_back(c);
  if (!in || header.size() >= kMaxHeader) bad_file(path, "no header line");

  std::istringstream fields(header);
  std::string magic, dtype;
  int version = 0;
  std::int64_t ndim = -1;
  fields >> magic >> version >> dtype >> ndim;
  if (!fields || magic != kMagic) bad_file(path, "header does not start with 'padl-tensor'");
  if (version != kVersion) {
    bad_file(path, "version " + std::to_string(version) + ", this reader reads " +
                       std::to_string(kVersion));
  }
  const DtypeName* found = nullptr;
  for (const auto& entry : kDtypes) {
    if (dtype == entry.name) found = &entry;
  }
  if (found == nullptr) bad_file(path, "unknown dtype '" + dtype + "'");
  if (ndim < 0 || ndim > 64) bad_file(path, "bad ndim " + std::to_string(ndim));

  std::vector<std::int64_t> shape(static_cast<std::size_t>(ndim));
  std::uint64_t numel = 1;
  for (auto& dim : shape) {
    if (!(fields >> dim) || dim < 0) bad_file(path, "bad shape in header '" + header + "'");
    if (dim != 0 && numel > std::numeric_limits<std::uint64_t>::max() / std::uint64_t(dim)) {
      bad_file(path, "shape too large");
    }
    numel *= std::uint64_t(dim);
  }
  std::string extra;
  if (fields >> extra) bad_file(path, "unexpected '" + extra + "' after the shape");

  const auto itemsize = static_cast<std::uint64_t>(c10::elementSize(found->type));
  const std::uint64_t data_bytes = numel * itemsize;
  const std::uint64_t header_bytes = header.size() + 1;
  if (file_size != header_bytes + data_bytes) {
    bad_file(path, "header announces " + std::to_string(data_bytes) + " data bytes, the file has " +
                       std::to_string(file_size - header_bytes));
  }
  at::Tensor tensor = at::empty(shape, at::TensorOptions().dtype(found->type));
  in.read(static_cast<char*>(tensor.data_ptr()), static_cast<std::streamsize>(data_bytes));
  if (static_cast<std::uint64_t>(in.gcount()) != data_bytes) bad_file(path, "short read");
  return tensor;
}

void write_tensor_file(const std::string& path, const at::Tensor& tensor) {
  require_little_endian();
  const at::Tensor data = tensor.detach().to(at::kCPU).contiguous();
  const char* dtype = nullptr;
  for (const auto& entry : kDtypes) {
    if (data.scalar_type() == entry.type) dtype = entry.name;
  }
  if (dtype == nullptr) {
    throw std::runtime_error(path + ": cannot write dtype " +
                             std::string(c10::toString(data.scalar_type())) + " as a padl tensor");
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(path + ": cannot open for writing");
  out << kMagic << ' ' << kVersion << ' ' << dtype << ' ' << data.dim();
  for (const auto dim : data.sizes()) out << ' ' << dim;
  out << '\n';
  out.write(static_cast<const char*>(data.const_data_ptr()), static_cast<std::streamsize>(data.nbytes()));
  if (!out.flush()) throw std::runtime_error(path + ": write failed");
}

}  // namespace padl
