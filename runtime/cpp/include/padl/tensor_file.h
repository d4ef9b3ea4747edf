// Raw tensor files: the exchange format of the examples, readable without pickle or numpy.
//
//   padl-tensor 1 <dtype> <ndim> <dim 0> ... <dim ndim-1>\n      one ASCII header line
//   <numel * itemsize bytes>                                     C order, little-endian
//
// dtype is one of float32 float64 float16 bfloat16 int64 int32 int16 int8 uint8 bool (torch's
// names without "torch."). Example header for a 4x16 float batch: "padl-tensor 1 float32 2 4 16".
// The file must hold exactly the bytes the header announces; anything else is an error.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

namespace padl {

// Reads a tensor file onto the CPU. Throws std::runtime_error naming the file on a bad header,
// an unknown dtype or a size that does not match the header.
at::Tensor read_tensor_file(const std::string& path);

// Writes `tensor` (moved to the CPU and made contiguous first). Throws std::runtime_error on an
// unsupported dtype or an I/O error.
void write_tensor_file(const std::string& path, const at::Tensor& tensor);

}  // namespace padl
