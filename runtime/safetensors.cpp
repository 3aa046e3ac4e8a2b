#include "runtime/safetensors.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "runtime/error.h"
#include "runtime/json_limits.h"
#include "runtime/read_file.h"

namespace inkstone {
namespace {

// Sizes, offsets and element bytes are read and written in place: the format is little-endian.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

using nlohmann::ordered_json;

constexpr std::string_view kMetadataKey = "__metadata__";
constexpr std::string_view kRedo = "re-create or re-download the file";

struct DTypeEntry {
  SafeDType dtype;
  std::string_view name;
  size_t size;
};

constexpr std::array<DTypeEntry, 10> kDTypes = {{{SafeDType::F64, "F64", 8},
                                                 {SafeDType::F32, "F32", 4},
                                                 {SafeDType::F16, "F16", 2},
                                                 {SafeDType::BF16, "BF16", 2},
                                                 {SafeDType::I64, "I64", 8},
                                                 {SafeDType::I32, "I32", 4},
                                                 {SafeDType::I16, "I16", 2},
                                                 {SafeDType::I8, "I8", 1},
                                                 {SafeDType::U8, "U8", 1},
                                                 {SafeDType::BOOL, "BOOL", 1}}};

const DTypeEntry& dtype_entry(SafeDType dtype) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.dtype == dtype) return e;
  }
  fail("safetensors: invalid SafeDType {}", static_cast<int>(dtype));
}

std::optional<SafeDType> dtype_from_name(std::string_view name) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.name == name) return e.dtype;
  }
  return std::nullopt;
}

std::string known_dtypes() {
  std::string names;
  for (const DTypeEntry& e : kDTypes) names += (names.empty() ? "" : ", ") + std::string(e.name);
  return names;
}

// A JSON value for a message, cut short: a hostile header can hold megabytes in one field.
std::string excerpt(const ordered_json& value) {
  return json_excerpt(value);
}

std::string shape_text(std::span<const int64_t> shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// numel(shape) * element_size, or nullopt when a dimension is negative or the product overflows.
std::optional<uint64_t> byte_size(std::span<const int64_t> shape, size_t element_size) {
  uint64_t bytes = element_size;
  for (int64_t dim : shape) {
    if (dim < 0 || __builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes)) return std::nullopt;
  }
  return bytes;
}

uint64_t read_u64_le(const char* p) {
  uint64_t value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

// Duplicate keys, which nlohmann::json would silently collapse to the last one. Reports the first.
class DuplicateKeyFinder {
 public:
  bool operator()(int depth, ordered_json::parse_event_t event, ordered_json& parsed) {
    using Event = ordered_json::parse_event_t;
    if (depth >= kMaxJsonDepth) throw JsonTooDeep();  // depth counts from 0 at the outermost value
    if (event == Event::object_start) {
      open_.emplace_back();
    } else if (event == Event::object_end) {
      if (!open_.empty()) open_.pop_back();
    } else if (event == Event::key && !open_.empty()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (open_.size() == 1) entry_ = key;
      if (!open_.back().insert(key).second && message_.empty()) {
        message_ = open_.size() == 1
                       ? fmt::format("tensor {} appears twice in the header", quoted_name(key))
                       : fmt::format("{}: key {} appears twice", quoted_name(entry_), quoted_name(key));
      }
    }
    return true;
  }
  const std::string& message() const { return message_; }

 private:
  std::vector<std::set<std::string>> open_;  // the keys of each object being parsed, outermost first
  std::string entry_;                        // the top-level key being parsed
  std::string message_;
};

class HeaderReader {
 public:
  HeaderReader(const std::string& file, uint64_t data_size) : file_(file), data_size_(data_size) {}

  SafeTensorInfo tensor(const std::string& name, const ordered_json& entry) const {
    if (!entry.is_object()) bad(name, fmt::format("its entry is {}, not an object", entry.type_name()));
    SafeTensorInfo info;
    info.name = name;
    info.dtype = dtype(name, field(name, entry, "dtype"));
    info.shape = shape(name, field(name, entry, "shape"));
    const auto [begin, end] = offsets(name, field(name, entry, "data_offsets"));
    info.begin = begin;
    info.end = end;
    const std::optional<uint64_t> bytes = byte_size(info.shape, safe_dtype_size(info.dtype));
    if (!bytes)
      bad(name,
          fmt::format("shape {} is too large: its byte size overflows 64 bits", shape_text(info.shape)));
    if (end - begin != *bytes) {
      bad(name, fmt::format("data_offsets [{}, {}] hold {} bytes but {} {} needs {}", begin, end, end - begin,
                            safe_dtype_name(info.dtype), shape_text(info.shape), *bytes));
    }
    if (end > data_size_) {
      bad(name, fmt::format("data_offsets end {} is beyond the {}-byte data section (the file is truncated?)",
                            end, data_size_));
    }
    return info;
  }

  std::map<std::string, std::string> metadata(const ordered_json& value) const {
    if (!value.is_object())
      bad_file(fmt::format("__metadata__ is {}, not an object of strings", value.type_name()));
    std::map<std::string, std::string> out;
    for (const auto& [key, text] : value.items()) {
      if (!text.is_string()) {
        bad_file(
            fmt::format("__metadata__ must map strings to strings, but \"{}\" is {}", key, text.type_name()));
      }
      out[key] = text.get<std::string>();
    }
    return out;
  }

  // The tensors sorted by offset must tile [0, data_size) exactly: no gap, no overlap, no tail.
  void check_tiling(const std::vector<SafeTensorInfo>& sorted) const {
    uint64_t covered = 0;
    const SafeTensorInfo* last = nullptr;  // the tensor that ends at `covered`
    for (const SafeTensorInfo& t : sorted) {
      if (t.begin < covered) {
        bad(t.name, fmt::format("bytes [{}, {}) overlap tensor \"{}\" at [{}, {})", t.begin, t.end,
                                last->name, last->begin, last->end));
      }
      if (t.begin > covered) {
        bad(t.name,
            fmt::format("starts at byte {} of the data but the tensors before it end at {}; the {} bytes "
                        "between belong to no tensor",
                        t.begin, covered, t.begin - covered));
      }
      if (t.end > t.begin) last = &t;
      covered = t.end;
    }
    if (covered != data_size_) {
      bad_file(
          fmt::format("{} trailing bytes after the last tensor (the tensors end at byte {} of the {}-byte "
                      "data section)",
                      data_size_ - covered, covered, data_size_));
    }
  }

  [[noreturn]] void bad_file(const std::string& what) const { fail("{}: {}; {}", file_, what, kRedo); }
  [[noreturn]] void bad(const std::string& tensor, const std::string& what) const {
    fail("{}: tensor {}: {}; {}", file_, quoted_name(tensor), what, kRedo);
  }

 private:
  const ordered_json& field(const std::string& name, const ordered_json& entry, const char* key) const {
    const auto it = entry.find(key);
    if (it == entry.end()) bad(name, fmt::format("its entry has no \"{}\"", key));
    return *it;
  }

  SafeDType dtype(const std::string& name, const ordered_json& value) const {
    if (!value.is_string()) bad(name, fmt::format("dtype is {}, not a string", value.type_name()));
    const auto& text = value.get_ref<const std::string&>();
    const std::optional<SafeDType> dtype = dtype_from_name(text);
    if (!dtype) bad(name, fmt::format("dtype \"{}\" is unknown (known: {})", text, known_dtypes()));
    return *dtype;
  }

  std::vector<int64_t> shape(const std::string& name, const ordered_json& value) const {
    if (!value.is_array()) bad(name, fmt::format("shape is {}, not an array", value.type_name()));
    std::vector<int64_t> dims;
    for (const ordered_json& dim : value) {
      if (!dim.is_number_unsigned() || dim.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
        bad(name, fmt::format("shape {} must hold integers in [0, 2^63)", excerpt(value)));
      }
      dims.push_back(dim.get<int64_t>());
    }
    return dims;
  }

  std::pair<uint64_t, uint64_t> offsets(const std::string& name, const ordered_json& value) const {
    if (!value.is_array() || value.size() != 2 || !value[0].is_number_unsigned() ||
        !value[1].is_number_unsigned() || value[0].get<uint64_t>() > value[1].get<uint64_t>()) {
      bad(name, fmt::format("data_offsets {} must be [begin, end] with integers 0 <= begin <= end",
                            excerpt(value)));
    }
    return {value[0].get<uint64_t>(), value[1].get<uint64_t>()};
  }

  const std::string& file_;
  uint64_t data_size_;
};

float bf16_to_float(uint16_t bits) {
  return std::bit_cast<float>(uint32_t{bits} << 16);  // bf16 is the top half of a float32
}

float f16_to_float(uint16_t bits) {
  const uint32_t sign = uint32_t{bits & 0x8000u} << 16;
  const uint32_t exponent = (bits >> 10) & 0x1f;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float32
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf, nan
  // Rebias the exponent from 15 to 127 and widen the mantissa from 10 to 23 bits.
  return std::bit_cast<float>(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
}

template <float (*Convert)(uint16_t)>
std::vector<float> convert_halves(std::span<const std::byte> bytes) {
  std::vector<float> out(bytes.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    uint16_t bits;
    std::memcpy(&bits, bytes.data() + 2 * i, 2);
    out[i] = Convert(bits);
  }
  return out;
}

}  // namespace

size_t safe_dtype_size(SafeDType dtype) {
  return dtype_entry(dtype).size;
}

std::string_view safe_dtype_name(SafeDType dtype) {
  return dtype_entry(dtype).name;
}

int64_t SafeTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

SafetensorsFile SafetensorsFile::read(const std::filesystem::path& path) {
  return parse(read_whole_file(path, "the safetensors file"), path.string());
}

SafetensorsFile SafetensorsFile::parse(std::string bytes, const std::string& name) {
  if (bytes.size() < 8) {
    fail(
        "{}: {} bytes is too short for a safetensors file (it starts with an 8-byte header size); the file "
        "is "
        "truncated, {}",
        name, bytes.size(), kRedo);
  }
  const uint64_t header_size = read_u64_le(bytes.data());
  if (header_size > kSafetensorsMaxHeaderBytes) {
    fail("{}: header size {} is over the limit of {} bytes; not a safetensors file or damaged, {}", name,
         header_size, kSafetensorsMaxHeaderBytes, kRedo);
  }
  if (header_size > bytes.size() - 8) {
    fail("{}: the {}-byte header runs past the end of the {}-byte file; the file is truncated, {}", name,
         header_size, bytes.size(), kRedo);
  }

  SafetensorsFile file;
  file.name_ = name;
  file.data_start_ = 8 + static_cast<size_t>(header_size);
  const HeaderReader reader(file.name_, bytes.size() - file.data_start_);

  DuplicateKeyFinder duplicates;
  ordered_json header;
  try {
    header =
        ordered_json::parse(bytes.begin() + 8, bytes.begin() + static_cast<std::ptrdiff_t>(file.data_start_),
                            std::ref(duplicates));
  } catch (const ordered_json::exception& e) {
    reader.bad_file(fmt::format("the header is not valid JSON ({})", e.what()));
  } catch (const JsonTooDeep& e) {
    reader.bad_file(fmt::format("the header is not a safetensors header ({})", e.what()));
  }
  if (!duplicates.message().empty()) reader.bad_file(duplicates.message());
  if (!header.is_object())
    reader.bad_file(fmt::format("the header is {}, not a JSON object", header.type_name()));

  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      file.metadata_ = reader.metadata(value);
    } else {
      file.tensors_.push_back(reader.tensor(key, value));
    }
  }
  std::stable_sort(file.tensors_.begin(), file.tensors_.end(),
                   [](const SafeTensorInfo& a, const SafeTensorInfo& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  reader.check_tiling(file.tensors_);
  file.bytes_ = std::move(bytes);
  return file;
}

const SafeTensorInfo* SafetensorsFile::find(std::string_view name) const {
  for (const SafeTensorInfo& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::span<const std::byte> SafetensorsFile::bytes(const SafeTensorInfo& tensor) const {
  const auto* data = reinterpret_cast<const std::byte*>(bytes_.data()) + data_start_;
  return {data + tensor.begin, static_cast<size_t>(tensor.end - tensor.begin)};
}

std::vector<float> SafetensorsFile::read_floats(std::string_view name,
                                                std::span<const int64_t> expected_shape) const {
  const SafeTensorInfo* tensor = find(name);
  if (!tensor) fail("{}: has no tensor \"{}\"", name_, name);
  if (!expected_shape.empty() && !std::ranges::equal(tensor->shape, expected_shape)) {
    fail("{}: tensor \"{}\" has shape {} but {} is expected", name_, name, shape_text(tensor->shape),
         shape_text(expected_shape));
  }
  const std::span<const std::byte> data = bytes(*tensor);
  switch (tensor->dtype) {
    case SafeDType::F32: {
      std::vector<float> out(data.size() / sizeof(float));
      if (!out.empty()) std::memcpy(out.data(), data.data(), data.size());
      return out;
    }
    case SafeDType::F16:
      return convert_halves<f16_to_float>(data);
    case SafeDType::BF16:
      return convert_halves<bf16_to_float>(data);
    default:
      fail("{}: tensor \"{}\" is {}; only F32, F16 and BF16 tensors can be read as floats", name_, name,
           safe_dtype_name(tensor->dtype));
  }
}

void SafetensorsWriter::add(const std::string& name, SafeDType dtype, std::vector<int64_t> shape,
                            std::span<const std::byte> data) {
  if (name.empty() || name == kMetadataKey) fail("safetensors writer: \"{}\" cannot name a tensor", name);
  for (const Entry& e : entries_) {
    if (e.info.name == name) fail("safetensors writer: tensor \"{}\" added twice", name);
  }
  const std::optional<uint64_t> bytes = byte_size(shape, safe_dtype_size(dtype));
  if (!bytes || *bytes != data.size()) {
    fail("safetensors writer: tensor \"{}\" of {} {} given {} bytes", name, safe_dtype_name(dtype),
         shape_text(shape), data.size());
  }
  Entry entry;
  entry.info.name = name;
  entry.info.dtype = dtype;
  entry.info.shape = std::move(shape);
  entry.data.assign(reinterpret_cast<const char*>(data.data()), data.size());
  entries_.push_back(std::move(entry));
}

void SafetensorsWriter::add_floats(const std::string& name, std::vector<int64_t> shape,
                                   std::span<const float> values) {
  add(name, SafeDType::F32, std::move(shape), std::as_bytes(values));
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

std::string SafetensorsWriter::serialize() const {
  ordered_json header = ordered_json::object();
  if (!metadata_.empty()) header[std::string(kMetadataKey)] = metadata_;
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    const uint64_t end = offset + e.data.size();
    header[e.info.name] = {{"dtype", std::string(safe_dtype_name(e.info.dtype))},
                           {"shape", e.info.shape},
                           {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const ordered_json::exception& e) {
    fail("safetensors writer: a tensor name or metadata entry is not valid UTF-8 ({})", e.what());
  }
  // Hugging Face pads the header with spaces so that the data starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + text.size() + offset);
  const uint64_t header_size = text.size();
  out.append(reinterpret_cast<const char*>(&header_size), sizeof header_size);
  out += text;
  for (const Entry& e : entries_) out += e.data;
  return out;
}

}  // namespace inkstone
