// checksums.sha256: the sha256 of every file of a checkpoint directory, in `sha256sum` format
// ("<64 hex>  <name>" per line, so `sha256sum -c checksums.sha256` checks a checkpoint by hand).
//
// safetensors and JSON carry no checksum of their own: a flipped bit in a weight would load silently.
// Training writes the manifest last into every checkpoint; loading checks it when it is there
// (directories from elsewhere, e.g. a Hugging Face export, have none).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace inkstone {

inline constexpr const char* kChecksumsFile = "checksums.sha256";

// Hashes `files` (names inside `dir`) and writes the manifest durably. Throws inkstone::Error.
void write_checkpoint_manifest(const std::filesystem::path& dir, const std::vector<std::string>& files);

// When `dir` has a manifest: checks that it is well formed, lists every name in `required`, and that
// the sha256 of each of those files matches (other listed files are not read: eval needs no optimizer),
// else throws inkstone::Error naming the file. Returns false (and checks nothing) without a manifest.
bool verify_checkpoint_manifest(const std::filesystem::path& dir, const std::vector<std::string>& required);

}  // namespace inkstone
