#include "padl/artifact.h"

#include <c10/core/InferenceMode.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "padl/sha256.h"

#ifdef PADL_WITH_AOTI
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#endif
#ifdef PADL_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace fs = std::filesystem;
using nlohmann::json;

namespace padl {
namespace {

constexpr const char* kManifestFile = "manifest.json";

// -- manifest -------------------------------------------------------------------------------------

[[noreturn]] void malformed(const std::string& root, const std::string& what) {
  throw ArtifactError(root + "/" + kManifestFile + " is malformed (" + what +
                          "). The artifact is damaged; rebuild or re-save it.",
                      root, kManifestFile);
}

const json& field(const json& object, const char* key, const std::string& root) {
  if (!object.is_object() || !object.contains(key)) malformed(root, std::string("no \"") + key + "\"");
  return object.at(key);
}

std::string string_field(const json& object, const char* key, const std::string& root) {
  const json& value = field(object, key, root);
  if (!value.is_string()) malformed(root, std::string("\"") + key + "\" is not a string");
  return value.get<std::string>();
}

// From format version 2 the manifest ends with its own digest: the SHA-256 of its bytes without
// that last member, `,\n  "digest": "sha256:<64 hex>"` (the object closed after them).
void check_digest(const std::string& raw, const std::string& where, const std::string& root) {
  static const std::string prefix = ",\n  \"digest\": \"sha256:";
  static const std::string suffix = "\"\n}\n";
  const std::size_t tail = prefix.size() + 64 + suffix.size();
  const bool shaped = raw.size() >= tail &&
                      raw.compare(raw.size() - tail, prefix.size(), prefix) == 0 &&
                      raw.compare(raw.size() - suffix.size(), suffix.size(), suffix) == 0;
  if (!shaped) {
    throw ArtifactError(where + " does not end with its \"digest\" (a version-2 manifest does). "
                                "The manifest is damaged or was edited; rebuild or re-save it.",
                        root, kManifestFile);
  }
  const std::string recorded = raw.substr(raw.size() - suffix.size() - 64, 64);
  const std::string body = raw.substr(0, raw.size() - tail) + "\n}\n";
  Sha256 digest;
  digest.update(body.data(), body.size());
  if (digest.hex_digest() != recorded) {
    throw ArtifactError(where + " does not match its own digest: it was damaged or edited after "
                                "it was written. Rebuild or re-save the artifact.",
                        root, kManifestFile);
  }
}

json read_manifest(const std::string& root) {
  std::error_code ec;
  if (!fs::exists(root, ec)) {
    throw ArtifactError("No artifact at " + root + ": the path does not exist.", root);
  }
  if (!fs::is_directory(root, ec)) {
    throw ArtifactError(root + " is a file, but a .padl artifact is a directory. Pass the directory "
                               "that holds " + kManifestFile + ".",
                        root);
  }
  const fs::path manifest_path = fs::path(root) / kManifestFile;
  if (!fs::is_regular_file(manifest_path, ec)) {
    throw ArtifactError(root + " has no " + kManifestFile +
                            ": it is not a .padl artifact, or it is incomplete.",
                        root, kManifestFile);
  }
  std::ifstream in(manifest_path, std::ios::binary);
  if (!in) throw ArtifactError("Cannot read " + manifest_path.string() + ".", root, kManifestFile);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string raw = buffer.str();
  json data;
  try {
    data = json::parse(raw);
  } catch (const json::parse_error& error) {
    throw ArtifactError(manifest_path.string() + " is not valid JSON (" + error.what() +
                            "). The artifact is damaged; rebuild or re-save it.",
                        root, kManifestFile);
  }
  if (!data.is_object() || data.value("format", json()) != kFormatName) {
    throw ArtifactError(manifest_path.string() +
                            " is not a padl manifest (no \"format\": \"padl\" entry).",
                        root, kManifestFile);
  }
  const json version = data.value("format_version", json());
  if (!version.is_number_integer() || version.get<std::int64_t>() < kOldestFormatVersion ||
      version.get<std::int64_t>() > kFormatVersion) {
    throw ArtifactError(manifest_path.string() + " has format version " + version.dump() +
                            "; this runtime reads versions " +
                            std::to_string(kOldestFormatVersion) + " to " +
                            std::to_string(kFormatVersion) +
                            ". Rebuild the artifact with a padlc that writes version " +
                            std::to_string(kFormatVersion) +
                            ", or use a padl C++ runtime that reads version " + version.dump() + ".",
                        root, kManifestFile);
  }
  if (version.get<std::int64_t>() >= 2) check_digest(raw, manifest_path.string(), root);
  return data;
}

// A manifest path must stay inside the artifact: relative, no "..", no empty name.
bool is_safe_relative(const std::string& relative) {
  if (relative.empty() || relative.front() == '/' || relative.find('\\') != std::string::npos) {
    return false;
  }
  for (const auto& part : fs::path(relative)) {
    if (part == ".." || part.has_root_name()) return false;
  }
  return true;
}

// Checks every file listed in the manifest; returns the listed paths.
std::vector<std::string> verify_files(const std::string& root, const json& manifest) {
  const json& files = field(manifest, "files", root);
  if (!files.is_array()) malformed(root, "\"files\" is not a list");
  std::vector<std::string> listed;
  for (const json& entry : files) {
    const std::string relative = string_field(entry, "path", root);
    const std::string sha256 = string_field(entry, "sha256", root);
    const json& size_field = field(entry, "size", root);
    if (!size_field.is_number_unsigned() && !size_field.is_number_integer()) {
      malformed(root, "size of '" + relative + "' is not an integer");
    }
    if (!is_safe_relative(relative)) {
      malformed(root, "file path '" + relative + "' leaves the artifact directory");
    }
    const fs::path full = fs::path(root) / relative;
    std::error_code ec;
    if (!fs::is_regular_file(full, ec)) {
      throw IntegrityError(root + ": file '" + relative + "' listed in " + kManifestFile +
                               " is missing. The artifact is incomplete; copy it again or rebuild it.",
                           root, relative);
    }
    const auto size = fs::file_size(full, ec);
    const auto recorded = size_field.get<std::int64_t>();
    if (ec || static_cast<std::int64_t>(size) != recorded) {
      throw IntegrityError(root + ": file '" + relative + "' has " + std::to_string(size) +
                               " bytes, the manifest records " + std::to_string(recorded) +
                               " (truncated or edited). Copy the artifact again or rebuild it.",
                           root, relative);
    }
    if (sha256_file(full.string()) != sha256) {
      throw IntegrityError(root + ": file '" + relative + "' does not match its SHA-256 in " +
                               kManifestFile +
                               " (edited or corrupted). Copy the artifact again or rebuild it.",
                           root, relative);
    }
    listed.push_back(relative);
  }
  return listed;
}

// -- forward backends -----------------------------------------------------------------------------

// A loaded program: a TorchScript module or an AOTInductor package.
class Program {
 public:
  virtual ~Program() = default;
  virtual std::vector<torch::Tensor> call(const std::vector<torch::Tensor>& inputs) = 0;
};

std::vector<torch::Tensor> to_tensors(const c10::IValue& value, const std::string& what) {
  std::vector<torch::Tensor> out;
  if (value.isTensor()) {
    out.push_back(value.toTensor());
  } else if (value.isTuple() || value.isList()) {
    const auto elements = value.isTuple() ? value.toTupleRef().elements().vec() : value.toListRef().vec();
    for (const auto& element : elements) {
      if (!element.isTensor()) {
        throw std::runtime_error(what + " returned a " + element.tagKind() +
                                 " inside its result; the C++ runtime expects tensors only.");
      }
      out.push_back(element.toTensor());
    }
  } else {
    throw std::runtime_error(what + " returned a " + value.tagKind() +
                             "; the C++ runtime expects a tuple of tensors.");
  }
  return out;
}

class ScriptProgram final : public Program {
 public:
  ScriptProgram(const std::string& file, const torch::Device& device)
      : module_(torch::jit::load(file, device)), file_(file) {
    module_.eval();
  }
  // How many tensors forward() takes (its schema counts `self` too).
  std::size_t arity() const {
    return module_.get_method("forward").function().getSchema().arguments().size() - 1;
  }
  std::vector<torch::Tensor> call(const std::vector<torch::Tensor>& inputs) override {
    std::vector<c10::IValue> args(inputs.begin(), inputs.end());
    return to_tensors(module_.forward(std::move(args)), file_);
  }

 private:
  torch::jit::Module module_;
  std::string file_;
};

#ifdef PADL_WITH_AOTI
class AotiProgram final : public Program {
 public:
  AotiProgram(const std::string& file, const torch::Device& device)
      : loader_(file, "model", false, 1, device.has_index() ? device.index() : -1) {}
  std::vector<torch::Tensor> call(const std::vector<torch::Tensor>& inputs) override {
    return loader_.run(inputs);
  }

 private:
  torch::inductor::AOTIModelPackageLoader loader_;
};
#endif

struct LoadedForward {
  std::unique_ptr<Program> program;
  std::string backend;
  std::string file;
  std::vector<std::string> skipped;
};

// The files of a backend entry, each of which must be listed (and so verified) in the manifest.
std::string backend_file(const std::string& root, const json& entry, const std::string& name,
                         const std::vector<std::string>& listed) {
  const json& files = field(entry, "files", root);
  if (!files.is_array() || files.empty() || !files.front().is_string()) {
    malformed(root, "backend '" + name + "' has no files");
  }
  const std::string relative = files.front().get<std::string>();
  if (std::find(listed.begin(), listed.end(), relative) == listed.end()) {
    throw IntegrityError(root + ": file '" + relative + "' of backend '" + name +
                             "' is not listed in " + kManifestFile +
                             ", so it cannot be verified. The artifact is damaged; rebuild it.",
                         root, relative);
  }
  return relative;
}

LoadedForward load_forward(const std::string& root, const json& manifest,
                           const std::vector<std::string>& listed, const torch::Device& device,
                           const std::string& wanted) {
  const json forward = manifest.value("forward", json());
  if (forward.is_null()) {
    throw BackendUnavailableError(
        root + " has no compiled forward (manifest kind \"" + manifest.value("kind", "") +
            "\"): it was saved, not built. Build it from Python, e.g. "
            "`padlc.build(padlc.load(\"" + root + "\"), \"model-built.padl\", inputs=examples, "
            "backend=\"torchscript\")`, or with `padlc build MODULE:ATTR -o model-built.padl "
            "--inputs MODULE:EXAMPLES --backend torchscript`.",
        root, kManifestFile);
  }
  const json& backends = field(forward, "backends", root);
  if (!backends.is_array()) malformed(root, "\"forward.backends\" is not a list");

  LoadedForward loaded;
  std::string first_skipped_file;
  std::string here;
  bool any_aoti = false;  // the fix differs: an aoti forward is tied to the device it was built on
  for (const json& entry : backends) {
    const std::string name = string_field(entry, "name", root);
    if (!wanted.empty() && name != wanted) continue;
    const std::string relative = backend_file(root, entry, name, listed);
    const std::string full = (fs::path(root) / relative).string();
    auto skip = [&](const std::string& why) {
      loaded.skipped.push_back(name + " (" + relative + "): " + why);
      if (first_skipped_file.empty()) first_skipped_file = relative;
    };
    if (name == "aoti") any_aoti = true;
    try {
      if (name == "torchscript") {
        loaded.program = std::make_unique<ScriptProgram>(full, device);
      } else if (name == "aoti") {
        const std::string arch = entry.value("arch", json()).is_string()
                                     ? entry.at("arch").get<std::string>()
                                     : std::string("<none recorded>");
        if (here.empty()) here = device_arch(device);
        if (arch != here) {
          skip("compiled for " + arch + ", this device (" + device.str() + ") is " + here);
          continue;
        }
#ifdef PADL_WITH_AOTI
        loaded.program = std::make_unique<AotiProgram>(full, device);
#else
        skip("this build of the padl C++ runtime has no AOTInductor support (PADL_WITH_AOTI=OFF)");
        continue;
#endif
      } else {
        skip("the C++ runtime loads only aoti and torchscript backends");
        continue;
      }
    } catch (const c10::Error& error) {
      skip(std::string("failed to load: ") + error.what_without_backtrace());
      continue;
    } catch (const std::exception& error) {
      skip(std::string("failed to load: ") + error.what());
      continue;
    }
    loaded.backend = name;
    loaded.file = relative;
    return loaded;
  }

  std::ostringstream message;
  if (loaded.skipped.empty()) {
    message << root << ": manifest.json lists no ";
    message << (wanted.empty() ? std::string("forward backend") : "'" + wanted + "' backend");
    message << " for the C++ runtime. Build one with `padlc build --backend torchscript` (portable) "
               "or `--backend aoti` (native code for one device).";
    throw BackendUnavailableError(message.str(), root, kManifestFile);
  }
  message << root << ": no forward backend in manifest.json can run on " << device.str() << ":";
  for (const auto& line : loaded.skipped) message << "\n  - " << line;
  for (const auto& line : loaded.skipped) {
    if (line.find("PADL_WITH_AOTI=OFF") != std::string::npos) {
      message << "\nBuild the padl C++ runtime with -DPADL_WITH_AOTI=ON to load aoti forwards.";
      break;
    }
  }
  if (any_aoti) {
    message << "\nRebuild the artifact on a machine with this device (`padlc build --backend aoti`), "
               "or add a portable backend (`padlc build --backend torchscript`).";
  } else {
    message << "\nThe C++ runtime loads torchscript and aoti forwards: build the artifact with "
               "`padlc build --backend torchscript` (any device; `backend=\"torchscript\"` in "
               "padlc.build), or `--backend aoti` (native code for the device it is built on).";
  }
  throw BackendUnavailableError(message.str(), root, first_skipped_file);
}

void check_device(const std::string& root, const torch::Device& device) {
  if (device.is_cpu()) return;
  if (device.is_cuda()) {
    if (!torch::cuda::is_available()) {
      throw BackendUnavailableError(root + ": device " + device.str() +
                                        " requested, but this libtorch has no usable CUDA "
                                        "device. Load the artifact on the CPU (torch::kCPU), or "
                                        "use a CUDA build of libtorch on a machine with a GPU.",
                                    root);
    }
    return;
  }
  throw BackendUnavailableError(
      root + ": device " + device.str() + " is not supported; use cpu or cuda[:N].", root);
}

}  // namespace

std::string device_arch(const torch::Device& device) {
  if (device.is_cpu()) {
#if defined(__x86_64__) || defined(_M_X64)
    return "cpu-x86_64";
#elif defined(__aarch64__) && defined(__APPLE__)
    return "cpu-arm64";
#elif defined(__aarch64__) || defined(_M_ARM64)
    return "cpu-aarch64";
#else
    return "cpu-unknown";
#endif
  }
  if (device.is_cuda()) {
#ifdef PADL_WITH_CUDA
    const auto* properties =
        at::cuda::getDeviceProperties(device.has_index() ? device.index() : at::cuda::current_device());
    return "cuda-sm" + std::to_string(properties->major) + std::to_string(properties->minor);
#else
    return "cuda-unknown";
#endif
  }
  return device.str();
}

namespace {

// One flat input of the forward as the manifest records it: `shape` holds -1 at the batch axis.
struct InputSpec {
  std::string name;
  std::string dtype;                          // as recorded: "float32", "uint8", ...
  std::optional<c10::ScalarType> scalar_type;  // empty for a dtype this runtime does not know
  std::vector<int64_t> shape;
};

std::optional<c10::ScalarType> scalar_type_of(const std::string& name) {
  static const std::vector<std::pair<std::string, c10::ScalarType>> known = {
      {"float32", c10::kFloat},   {"float64", c10::kDouble},     {"float16", c10::kHalf},
      {"bfloat16", c10::kBFloat16}, {"int64", c10::kLong},       {"int32", c10::kInt},
      {"int16", c10::kShort},     {"int8", c10::kChar},          {"uint8", c10::kByte},
      {"bool", c10::kBool},       {"complex64", c10::kComplexFloat},
      {"complex128", c10::kComplexDouble}};
  for (const auto& [key, type] : known) {
    if (key == name) return type;
  }
  return std::nullopt;
}

std::string dtype_name(c10::ScalarType type) {
  for (const char* name : {"float32", "float64", "float16", "bfloat16", "int64", "int32", "int16",
                           "int8", "uint8", "bool", "complex64", "complex128"}) {
    if (scalar_type_of(name) == type) return name;
  }
  return c10::toString(type);
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    out << (i ? ", " : "") << (shape[i] < 0 ? std::string("batch") : std::to_string(shape[i]));
  }
  out << "]";
  return out.str();
}

std::vector<InputSpec> input_specs(const json& forward) {
  std::vector<InputSpec> specs;
  const json inputs = forward.value("inputs", json::array());
  if (!inputs.is_array()) return specs;
  for (const json& input : inputs) {
    InputSpec spec;
    spec.name = input.value("name", std::string("input_") + std::to_string(specs.size()));
    spec.dtype = input.value("dtype", std::string());
    spec.scalar_type = scalar_type_of(spec.dtype);
    for (const json& axis : input.value("shape", json::array())) {
      spec.shape.push_back(axis.is_number_integer() ? axis.get<int64_t>() : -1);
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

}  // namespace

struct Artifact::Impl {
  std::string root;
  torch::Device device;
  json manifest;
  LoadedForward forward;
  std::unique_ptr<ScriptProgram> pipeline;
  bool run_available = false;
  std::string run_reason;
  std::vector<InputSpec> inputs;   // empty: the manifest does not record the forward's inputs
  std::optional<int64_t> max_batch;
};

namespace {
// Refuses inputs the forward was not compiled for, as padl_runtime does: every backend fixes each
// input's dtype and number of axes; an AOTInductor forward also every axis but the batch axis (it
// would read past the end of a smaller tensor rather than fail).
void check_inputs(const std::string& root, const std::string& backend,
                  const std::vector<InputSpec>& specs, const std::optional<int64_t>& max_batch,
                  const std::vector<torch::Tensor>& inputs) {
  for (std::size_t i = 0; i < inputs.size() && i < specs.size(); ++i) {
    const InputSpec& spec = specs[i];
    const torch::Tensor& tensor = inputs[i];
    const bool fixed_axes = backend == "aoti";
    bool ok = !spec.scalar_type || tensor.scalar_type() == *spec.scalar_type;
    ok = ok && static_cast<std::size_t>(tensor.dim()) == spec.shape.size();
    int64_t batch = -1;
    for (std::size_t axis = 0; ok && axis < spec.shape.size(); ++axis) {
      if (spec.shape[axis] < 0) {
        batch = tensor.size(static_cast<int64_t>(axis));
      } else if (fixed_axes && tensor.size(static_cast<int64_t>(axis)) != spec.shape[axis]) {
        ok = false;
      }
    }
    if (!ok) {
      throw std::invalid_argument(
          root + ": the " + backend + " forward takes " + spec.name + " as " +
          spec.dtype + " " + shape_text(spec.shape) + ", got " +
          dtype_name(tensor.scalar_type()) + " " + shape_text(tensor.sizes().vec()) +
          (fixed_axes ? ". An aoti forward is compiled for these sizes, all but the batch axis"
                      : ". The dtype and the number of axes are fixed when the artifact is built") +
          "; give the batch that shape (the collated output of the pipeline's preprocess), or "
          "build the artifact from examples of the shape you serve.");
    }
    if (max_batch && batch > *max_batch) {
      throw std::invalid_argument(root + ": a batch of " + std::to_string(batch) +
                                  " items is larger than the forward accepts (built with "
                                  "max_batch=" + std::to_string(*max_batch) +
                                  "); split it, or rebuild with a larger --max-batch.");
    }
  }
}
}  // namespace

Artifact::Artifact(const std::string& path, torch::Device device, const std::string& backend)
    : impl_(std::make_unique<Impl>(Impl{path, device, {}, {}, {}, false, {}, {}, {}})) {
  if (!backend.empty() && backend != "aoti" && backend != "torchscript") {
    throw std::invalid_argument("unknown backend '" + backend +
                                "': the C++ runtime loads \"aoti\" or \"torchscript\" (or \"\" "
                                "for the first of them the artifact has).");
  }
  Impl& self = *impl_;
  self.manifest = read_manifest(path);
  try {
    load(self, backend);
  } catch (const json::exception& error) {
    malformed(path, error.what());
  }
}

void Artifact::load(Impl& self, const std::string& backend) {
  const std::string& path = self.root;
  const torch::Device& device = self.device;
  // Verify everything before loading anything: loading a TorchScript or AOTI file runs its code.
  const std::vector<std::string> listed = verify_files(path, self.manifest);
  check_device(path, device);
  self.forward = load_forward(path, self.manifest, listed, device, backend);

  self.inputs = input_specs(self.manifest["forward"]);
  const json max_batch = self.manifest["forward"].value("max_batch", json());
  if (max_batch.is_number_integer()) self.max_batch = max_batch.get<int64_t>();

  const json cpp = self.manifest.value("cpp", json());
  if (cpp.is_null()) {
    self.run_reason = "the manifest has no \"cpp\" section (built by a padlc without C++ support)";
  } else if (!cpp.value("run_available", false)) {
    self.run_reason = cpp.value("reason", std::string());
    if (self.run_reason.empty()) self.run_reason = "the compiler recorded no reason";
  } else {
    const json& file = field(cpp, "pipeline_file", path);
    if (!file.is_string()) malformed(path, "cpp.run_available is true but cpp.pipeline_file is null");
    const std::string relative = file.get<std::string>();
    if (std::find(listed.begin(), listed.end(), relative) == listed.end()) {
      throw IntegrityError(path + ": pipeline file '" + relative + "' is not listed in " +
                               kManifestFile + ", so it cannot be verified. Rebuild the artifact.",
                           path, relative);
    }
    try {
      self.pipeline = std::make_unique<ScriptProgram>((fs::path(path) / relative).string(), device);
    } catch (const c10::Error& error) {
      throw ArtifactError(path + ": cannot load pipeline file '" + relative +
                              "': " + error.what_without_backtrace(),
                          path, relative);
    }
    self.run_available = true;
  }
}

Artifact::~Artifact() = default;
Artifact::Artifact(Artifact&&) noexcept = default;
Artifact& Artifact::operator=(Artifact&&) noexcept = default;

namespace {
std::vector<torch::Tensor> call_on_device(Program& program, const std::vector<torch::Tensor>& inputs,
                                          const torch::Device& device) {
  c10::InferenceMode guard;
  std::vector<torch::Tensor> moved;
  moved.reserve(inputs.size());
  for (const auto& tensor : inputs) moved.push_back(tensor.device() == device ? tensor : tensor.to(device));
  return program.call(moved);
}
}  // namespace

std::vector<torch::Tensor> Artifact::forward(const std::vector<torch::Tensor>& inputs) const {
  const std::size_t expected = impl_->inputs.size();
  if (expected != 0 && inputs.size() != expected) {
    throw std::invalid_argument(impl_->root + ": forward takes " + std::to_string(expected) +
                                " tensors (the collated batch, flattened), got " +
                                std::to_string(inputs.size()) + ".");
  }
  check_inputs(impl_->root, impl_->forward.backend, impl_->inputs, impl_->max_batch, inputs);
  return call_on_device(*impl_->forward.program, inputs, impl_->device);
}

std::vector<torch::Tensor> Artifact::run(const std::vector<torch::Tensor>& inputs) const {
  if (!impl_->run_available) {
    throw RunUnavailableError(impl_->root + ": run() is not available for this artifact: " +
                                  impl_->run_reason +
                                  ". Call forward() on the collated batch instead, and run "
                                  "the stages the reason names in your own code.",
                              impl_->root, kManifestFile);
  }
  const std::size_t expected = impl_->pipeline->arity();
  if (inputs.size() != expected) {
    throw std::invalid_argument(impl_->root + ": run() takes " + std::to_string(expected) +
                                " raw input tensors (one per pipeline input), got " +
                                std::to_string(inputs.size()) + ".");
  }
  return call_on_device(*impl_->pipeline, inputs, impl_->device);
}

bool Artifact::run_available() const { return impl_->run_available; }
const std::string& Artifact::run_unavailable_reason() const { return impl_->run_reason; }
const std::string& Artifact::path() const { return impl_->root; }
const std::string& Artifact::backend() const { return impl_->forward.backend; }
const std::string& Artifact::forward_file() const { return impl_->forward.file; }
torch::Device Artifact::device() const { return impl_->device; }
const std::vector<std::string>& Artifact::skipped_backends() const { return impl_->forward.skipped; }
int Artifact::format_version() const { return impl_->manifest.at("format_version").get<int>(); }
std::string Artifact::padlc_version() const { return impl_->manifest.value("padlc_version", ""); }
std::string Artifact::kind() const { return impl_->manifest.value("kind", ""); }
std::string Artifact::pipeline() const { return impl_->manifest.value("pipeline", ""); }
std::string Artifact::torch_version() const { return impl_->manifest.value("torch_version", ""); }
const json& Artifact::manifest() const { return impl_->manifest; }

}  // namespace padl
