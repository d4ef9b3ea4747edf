// padl::Artifact: a built .padl directory, verified and loaded for inference with libtorch.
//
//   padl::Artifact artifact("model.padl");                    // CPU
//   std::vector<torch::Tensor> out = artifact.forward({batch}); // the compiled forward stage
//   if (artifact.run_available()) out = artifact.run({raw});    // preprocess + forward + postprocess
//
// Construction reads manifest.json, checks the format name and version, checks every listed file's
// size and SHA-256, and loads the first forward backend (in the manifest's order of preference) that
// can run on the requested device: AOTInductor ("aoti") when it was compiled for this device's
// architecture, else TorchScript ("torchscript"). Failures throw padl::ArtifactError or one of its
// subclasses (padl/errors.h); nothing from the artifact runs before its files are verified.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "padl/errors.h"

namespace padl {

// The manifest format this library reads (padl_runtime.manifest.FORMAT_NAME / READABLE_VERSIONS).
// Version 3 adds what C++ does not read: per-mode stage functions, Python forwards reading shared
// weights (export, onnx), artifacts without a lineage; the torchscript and aoti forwards it loads
// are as before.
inline constexpr const char* kFormatName = "padl";
inline constexpr int kFormatVersion = 3;
inline constexpr int kOldestFormatVersion = 1;  // the oldest version this runtime reads

// The architecture string manifest.json records for native code compiled for `device`:
// "cpu-x86_64" / "cpu-aarch64" for CPUs (the machine name as Python's platform.machine() spells it
// on Linux), "cuda-sm90" for a CUDA device of compute capability 9.0.
std::string device_arch(const torch::Device& device);

class Artifact {
 public:
  // `backend` forces one backend ("aoti" or "torchscript"); empty picks the first that loads.
  explicit Artifact(const std::string& path, torch::Device device = torch::kCPU,
                    const std::string& backend = "");
  ~Artifact();
  Artifact(Artifact&&) noexcept;
  Artifact& operator=(Artifact&&) noexcept;
  Artifact(const Artifact&) = delete;
  Artifact& operator=(const Artifact&) = delete;

  // Runs the forward stage on collated, batched tensors (flattened in the manifest's input order).
  // Inputs are moved to device() if they are elsewhere; outputs stay on device(). Runs under
  // c10::InferenceMode, so the outputs are inference tensors (no autograd).
  std::vector<torch::Tensor> forward(const std::vector<torch::Tensor>& inputs) const;

  // Runs the whole pipeline (preprocess + forward + postprocess) on raw input tensors. Throws
  // padl::RunUnavailableError, quoting the compiler's reason, when the artifact has no scripted
  // pipeline (see run_available()).
  std::vector<torch::Tensor> run(const std::vector<torch::Tensor>& inputs) const;

  bool run_available() const;
  // Why run() is unavailable, as the compiler recorded it; empty when it is available.
  const std::string& run_unavailable_reason() const;

  const std::string& path() const;
  // The loaded forward backend: "aoti" or "torchscript".
  const std::string& backend() const;
  // The file the forward was loaded from, relative to path().
  const std::string& forward_file() const;
  torch::Device device() const;
  // One line for each backend tried before the loaded one, saying why it was skipped.
  const std::vector<std::string>& skipped_backends() const;

  int format_version() const;
  std::string padlc_version() const;
  std::string kind() const;
  std::string pipeline() const;
  std::string torch_version() const;
  // The whole parsed manifest.json, for fields without an accessor.
  const nlohmann::json& manifest() const;

 private:
  struct Impl;
  static void load(Impl& self, const std::string& backend);
  std::unique_ptr<Impl> impl_;
};

}  // namespace padl
