// safetensors (https://huggingface.co/docs/safetensors): the file format of model.safetensors and
// optimizer.safetensors. Layout: u64 little-endian N, then N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}},
// then the data, offsets relative to its start.
//
// The reader is for files from anywhere (downloaded, truncated, hand-edited), so it trusts nothing:
// header size (<= 100 MB) and JSON, known dtypes, non-negative shapes whose byte size cannot overflow
// and equals end - begin, offsets in range, the tensors tiling the data exactly (contiguous, no
// overlap, no gap, no trailing bytes), no duplicate names. Every error names the file and the tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace inkstone {

inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

enum class SafeDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

size_t safe_dtype_size(SafeDType dtype);
std::string_view safe_dtype_name(SafeDType dtype);  // "F32", "BF16", ...

struct SafeTensorInfo {
  std::string name;
  SafeDType dtype = SafeDType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data section
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Reads and validates the whole file. Throws inkstone::Error naming `path` and the problem.
  static SafetensorsFile read(const std::filesystem::path& path);
  // The same from bytes in memory; `name` stands for the file in messages.
  static SafetensorsFile parse(std::string bytes, const std::string& name);

  const std::vector<SafeTensorInfo>& tensors() const { return tensors_; }  // in data order
  const SafeTensorInfo* find(std::string_view name) const;                 // nullptr when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& name() const { return name_; }

  std::span<const std::byte> bytes(const SafeTensorInfo& tensor) const;
  // The tensor as floats, converted from F32, F16 or BF16. Throws inkstone::Error when absent, of
  // another dtype, or when `expected_shape` is given and differs (the message shows both shapes).
  std::vector<float> read_floats(std::string_view name, std::span<const int64_t> expected_shape = {}) const;

 private:
  std::string name_;
  std::string bytes_;
  size_t data_start_ = 0;
  std::vector<SafeTensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Builds a safetensors file in memory. Tensors are stored in the order they are added.
class SafetensorsWriter {
 public:
  void add(const std::string& name, SafeDType dtype, std::vector<int64_t> shape,
           std::span<const std::byte> data);  // data size must match; throws on duplicates
  void add_floats(const std::string& name, std::vector<int64_t> shape, std::span<const float> values);
  void set_metadata(const std::string& key, const std::string& value);
  std::string serialize() const;  // header padded with spaces to a multiple of 8, as HF does

 private:
  struct Entry {
    SafeTensorInfo info;
    std::string data;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace inkstone
