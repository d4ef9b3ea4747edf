// Exceptions thrown by the padl C++ runtime.
//
//   std::runtime_error
//   └── padl::ArtifactError            the .padl directory is missing, unreadable or in an unknown format
//       ├── padl::IntegrityError        a listed file is missing, or its size or SHA-256 differs
//       ├── padl::BackendUnavailableError  no stored forward can run on this device / libtorch
//       └── padl::RunUnavailableError   run() on an artifact whose pipeline could not be scripted
//
// Every message names the artifact directory and, where there is one, the offending file, and says
// how to fix it. path() and file() give the same two names to code that wants to react.
#pragma once

#include <stdexcept>
#include <string>

namespace padl {

class ArtifactError : public std::runtime_error {
 public:
  ArtifactError(const std::string& message, std::string path, std::string file = "")
      : std::runtime_error(message), path_(std::move(path)), file_(std::move(file)) {}

  // The artifact directory as given to padl::Artifact.
  const std::string& path() const noexcept { return path_; }
  // The file inside the artifact the error is about (relative, POSIX separators); empty if none.
  const std::string& file() const noexcept { return file_; }

 private:
  std::string path_;
  std::string file_;
};

class IntegrityError : public ArtifactError {
 public:
  using ArtifactError::ArtifactError;
};

class BackendUnavailableError : public ArtifactError {
 public:
  using ArtifactError::ArtifactError;
};

class RunUnavailableError : public ArtifactError {
 public:
  using ArtifactError::ArtifactError;
};

}  // namespace padl
