// classify: run a built .padl artifact on tensors written by Python, print the predicted class of
// each row, and write every output tensor back for comparison.
//
//   classify [--device cpu|cuda[:N]] [--backend aoti|torchscript] [--forward | --run]
//            [--out DIR] ARTIFACT INPUT.tensor...
//
// Inputs and outputs use the raw tensor format of padl/tensor_file.h. With the whole pipeline
// available (manifest cpp.run_available) classify calls run() on the raw inputs; otherwise, or with
// --forward, it calls forward() on them as the collated batch. --run insists on run() (and fails,
// quoting the compiler's reason, when the artifact has no scripted pipeline). Outputs go to DIR/output_<i>.tensor.
// Exit status: 0 on success, 2 for a bad artifact (padl::ArtifactError), 1 for other errors,
// 64 for bad usage.
//
// The artifact comes from `padlc build ... --backend torchscript` (or --backend aoti); for example the
// digits demo, whose preprocess is Python, so classify runs forward() on the batch Python prepared:
//
//   python -m padlc demo --out demo --backend torchscript
//   classify demo/digits-built.padl digits.tensor   # digits.tensor: preprocess + collate
//
// docs/cpp.md shows how to write digits.tensor from Python.
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "padl/artifact.h"
#include "padl/tensor_file.h"

namespace {

int usage(const std::string& why) {
  std::cerr << "classify: " << why << "\n"
            << "usage: classify [--device cpu|cuda[:N]] [--backend aoti|torchscript]\n"
               "                [--forward | --run] [--out DIR] ARTIFACT INPUT.tensor...\n";
  return 64;
}

}  // namespace

int main(int argc, char** argv) {
  std::string device = "cpu", backend, out_dir, artifact_path;
  bool forward_only = false, run_only = false;
  std::vector<std::string> input_paths;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--device") {
      device = value();
    } else if (arg == "--backend") {
      backend = value();
    } else if (arg == "--out") {
      out_dir = value();
    } else if (arg == "--forward") {
      forward_only = true;
    } else if (arg == "--run") {
      run_only = true;
    } else if (arg.rfind("--", 0) == 0) {
      return usage("unknown option " + arg);
    } else if (artifact_path.empty()) {
      artifact_path = arg;
    } else {
      input_paths.push_back(arg);
    }
  }
  if (artifact_path.empty() || input_paths.empty()) return usage("need an artifact and inputs");
  if (forward_only && run_only) return usage("--forward and --run exclude each other");

  try {
    const padl::Artifact artifact(artifact_path, torch::Device(device), backend);
    std::cerr << "loaded " << artifact.path() << ": backend " << artifact.backend() << " ("
              << artifact.forward_file() << ") on " << artifact.device() << "\n";
    for (const auto& skipped : artifact.skipped_backends()) std::cerr << "  skipped " << skipped << "\n";

    std::vector<torch::Tensor> inputs;
    for (const auto& path : input_paths) inputs.push_back(padl::read_tensor_file(path));
    const bool use_run = run_only || (artifact.run_available() && !forward_only);
    const std::vector<torch::Tensor> outputs = use_run ? artifact.run(inputs) : artifact.forward(inputs);

    const torch::Tensor& first = outputs.at(0);
    if (first.dim() == 2) {
      const torch::Tensor classes = first.argmax(1).to(torch::kCPU);
      for (std::int64_t row = 0; row < classes.size(0); ++row) {
        std::cout << "row " << row << ": class " << classes[row].item<std::int64_t>() << "\n";
      }
    } else {
      std::cout << "output 0 has shape " << first.sizes() << "; no per-row argmax printed\n";
    }
    if (!out_dir.empty()) {
      std::filesystem::create_directories(out_dir);
      for (std::size_t i = 0; i < outputs.size(); ++i) {
        const auto file = std::filesystem::path(out_dir) / ("output_" + std::to_string(i) + ".tensor");
        padl::write_tensor_file(file.string(), outputs[i]);
      }
    }
  } catch (const padl::ArtifactError& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 2;
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
