// The safetensors reader and writer: round trips, the byte layout Hugging Face expects, every
// validation failure on hand-crafted files, and the F16 / BF16 conversions against hand-derived values.
#include "runtime/safetensors.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "support/expect_contains.h"
#include "support/test_support.h"

namespace inkstone {
namespace {

using testing::error_of;

constexpr const char* kName = "crafted.safetensors";

template <class T>
std::span<const std::byte> bytes_of(const std::vector<T>& values) {
  return std::as_bytes(std::span<const T>(values));
}

uint64_t header_size_of(const std::string& file) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{static_cast<uint8_t>(file[i])} << (8 * i);
  return n;
}

// A file from a header text and data bytes, as the format lays them out.
std::string crafted(uint64_t header_size, const std::string& header, const std::string& data = "") {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(header_size >> (8 * i)));
  return out + header + data;
}
std::string crafted(const std::string& header, const std::string& data = "") {
  return crafted(header.size(), header, data);
}

// The one-line message of parsing `bytes`, which must name the file.
std::string parse_error(const std::string& bytes) {
  const std::string message = error_of([&] { SafetensorsFile::parse(bytes, kName); });
  EXPECT_CONTAINS(message, kName);
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  return message;
}

std::string entry(const std::string& dtype, const std::string& shape, uint64_t begin, uint64_t end) {
  return fmt::format(R"({{"dtype":"{}","shape":{},"data_offsets":[{},{}]}})", dtype, shape, begin, end);
}

TEST(Safetensors, WriterReaderRoundTrip) {
  const std::vector<float> f32 = {1.5f, -2.0f, 0.0f, 3.25f, -0.125f, 1e30f};
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC020, 0x0000, 0x7F80};
  const std::vector<int32_t> i32 = {7, -8, 2147483647, -2147483647 - 1};
  const std::vector<uint8_t> u8 = {0, 255, 17};
  const std::vector<double> f64 = {3.141592653589793};
  const std::vector<int64_t> scalar = {-42};

  SafetensorsWriter writer;
  writer.add_floats("weights", {2, 3}, f32);
  writer.add("half", SafeDType::BF16, {4}, bytes_of(bf16));
  writer.add("ints", SafeDType::I32, {2, 2}, bytes_of(i32));
  writer.add("empty", SafeDType::F32, {0, 5}, {});
  writer.add("bytes", SafeDType::U8, {3}, bytes_of(u8));
  writer.add("double", SafeDType::F64, {1}, bytes_of(f64));
  writer.add("scalar", SafeDType::I64, {}, bytes_of(scalar));
  writer.set_metadata("format", "pt");
  writer.set_metadata("note", "kept verbatim: \"quotes\", unicode \xc3\xa9");
  const std::string bytes = writer.serialize();

  const SafetensorsFile file = SafetensorsFile::parse(bytes, kName);
  EXPECT_EQ(file.name(), kName);
  ASSERT_EQ(file.tensors().size(), 7u);
  const std::vector<std::string> order = {"weights", "half", "ints", "empty", "bytes", "double", "scalar"};
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(file.tensors()[i].name, order[i]);  // data order

  const SafeTensorInfo* weights = file.find("weights");
  ASSERT_NE(weights, nullptr);
  EXPECT_EQ(weights->dtype, SafeDType::F32);
  EXPECT_EQ(weights->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(weights->begin, 0u);
  EXPECT_EQ(weights->end, 24u);
  EXPECT_EQ(weights->numel(), 6);
  EXPECT_EQ(file.read_floats("weights"), f32);
  const std::vector<int64_t> want_shape = {2, 3};
  EXPECT_EQ(file.read_floats("weights", want_shape), f32);

  const SafeTensorInfo* ints = file.find("ints");
  ASSERT_NE(ints, nullptr);
  EXPECT_EQ(ints->dtype, SafeDType::I32);
  std::vector<int32_t> ints_back(4);
  ASSERT_EQ(file.bytes(*ints).size(), 16u);
  std::memcpy(ints_back.data(), file.bytes(*ints).data(), 16);
  EXPECT_EQ(ints_back, i32);

  const SafeTensorInfo* empty = file.find("empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->shape, (std::vector<int64_t>{0, 5}));
  EXPECT_EQ(empty->numel(), 0);
  EXPECT_EQ(empty->begin, empty->end);
  EXPECT_TRUE(file.read_floats("empty").empty());

  const SafeTensorInfo* scalar_info = file.find("scalar");
  ASSERT_NE(scalar_info, nullptr);
  EXPECT_TRUE(scalar_info->shape.empty());
  EXPECT_EQ(scalar_info->numel(), 1);
  int64_t scalar_back = 0;
  ASSERT_EQ(file.bytes(*scalar_info).size(), 8u);
  std::memcpy(&scalar_back, file.bytes(*scalar_info).data(), 8);
  EXPECT_EQ(scalar_back, -42);

  double double_back = 0;
  std::memcpy(&double_back, file.bytes(*file.find("double")).data(), 8);
  EXPECT_EQ(double_back, f64[0]);
  EXPECT_EQ(file.find("bytes")->dtype, SafeDType::U8);
  EXPECT_EQ(std::memcmp(file.bytes(*file.find("bytes")).data(), u8.data(), 3), 0);
  EXPECT_EQ(file.find("half")->dtype, SafeDType::BF16);
  EXPECT_EQ(file.find("nothing"), nullptr);

  EXPECT_EQ(file.metadata().size(), 2u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("note"), "kept verbatim: \"quotes\", unicode \xc3\xa9");
}

TEST(Safetensors, LayoutIsHuggingFaces) {
  SafetensorsWriter writer;
  const std::vector<float> values = {1, 2, 3};
  writer.add_floats("a", {3}, values);
  writer.add_floats("b", {1}, std::vector<float>{4});
  const std::string bytes = writer.serialize();

  const uint64_t n = header_size_of(bytes);
  EXPECT_EQ(n % 8, 0u) << "the data must start 8-byte aligned";
  ASSERT_EQ(bytes.size(), 8 + n + 16);
  const std::string header = bytes.substr(8, n);
  const size_t json_end = header.find_last_not_of(' ') + 1;
  EXPECT_LT(n - json_end, 8u) << "padding is at most 7 spaces";
  const auto doc = nlohmann::json::parse(header);
  EXPECT_FALSE(doc.contains("__metadata__")) << "no __metadata__ when there is none";
  EXPECT_EQ(doc["a"]["dtype"], "F32");
  EXPECT_EQ(doc["a"]["shape"], nlohmann::json::array({3}));
  EXPECT_EQ(doc["a"]["data_offsets"], nlohmann::json::array({0, 12}));
  EXPECT_EQ(doc["b"]["data_offsets"], nlohmann::json::array({12, 16}));
  float data[4];
  std::memcpy(data, bytes.data() + 8 + n, sizeof data);
  EXPECT_EQ(data[0], 1.0f);
  EXPECT_EQ(data[2], 3.0f);
  EXPECT_EQ(data[3], 4.0f);

  SafetensorsWriter with_metadata;
  with_metadata.set_metadata("format", "pt");
  const std::string with = with_metadata.serialize();
  EXPECT_EQ(nlohmann::json::parse(with.substr(8))["__metadata__"]["format"], "pt");
  EXPECT_TRUE(SafetensorsFile::parse(with, kName).tensors().empty());
}

TEST(Safetensors, WriterRejectsBadInput) {
  SafetensorsWriter writer;
  writer.add_floats("a", {2}, std::vector<float>{1, 2});
  EXPECT_CONTAINS(error_of([&] { writer.add_floats("a", {1}, std::vector<float>{1}); }), "\"a\" added twice");
  EXPECT_CONTAINS(error_of([&] { writer.add_floats("b", {3}, std::vector<float>{1, 2}); }), "\"b\"");
  EXPECT_NE(error_of([&] { writer.add_floats("c", {-1}, {}); }), "");
  EXPECT_NE(error_of([&] { writer.add_floats("__metadata__", {1}, std::vector<float>{1}); }), "");
  EXPECT_NE(error_of([&] { writer.add_floats("", {1}, std::vector<float>{1}); }), "");
}

TEST(Safetensors, ReadsFilesAndNamesMissingOnes) {
  testing::TempDir dir;
  SafetensorsWriter writer;
  writer.add_floats("x", {2}, std::vector<float>{0.5f, -0.5f});
  testing::write_file(dir / "m.safetensors", writer.serialize());
  const SafetensorsFile file = SafetensorsFile::read(dir / "m.safetensors");
  EXPECT_EQ(file.name(), (dir / "m.safetensors").string());
  EXPECT_EQ(file.read_floats("x"), (std::vector<float>{0.5f, -0.5f}));

  const std::string missing = error_of([&] { SafetensorsFile::read(dir / "absent.safetensors"); });
  EXPECT_CONTAINS(missing, (dir / "absent.safetensors").string());
  EXPECT_CONTAINS(missing, "cannot open");
  EXPECT_CONTAINS(error_of([&] { SafetensorsFile::read(dir.path()); }), "is a directory");
}

TEST(Safetensors, RejectsBadHeaderFraming) {
  EXPECT_CONTAINS(parse_error("abc"), "too short");
  EXPECT_CONTAINS(parse_error(crafted(100'000'001, "{}")), "header size 100000001 is over the limit");
  EXPECT_CONTAINS(parse_error(crafted(100, "{}")), "runs past the end");
  EXPECT_CONTAINS(parse_error(crafted(~uint64_t{0}, "{}")), "over the limit");
  EXPECT_CONTAINS(parse_error(crafted(R"({"a": )")), "not valid JSON");
  EXPECT_CONTAINS(parse_error(crafted("[1, 2]")), "not a JSON object");
  EXPECT_CONTAINS(parse_error(crafted("")), "not valid JSON");
}

TEST(Safetensors, RejectsBadTensorEntries) {
  const std::string four(4, '\0');
  auto one = [&](const std::string& e, const std::string& data) {
    return crafted("{\"t\":" + e + "}", data);
  };
  EXPECT_CONTAINS(parse_error(one(entry("F8", "[1]", 0, 1), "x")), "tensor \"t\": dtype \"F8\" is unknown");
  EXPECT_CONTAINS(parse_error(one(entry("F32", "[-1]", 0, 4), four)), "tensor \"t\": shape [-1]");
  EXPECT_CONTAINS(parse_error(one(entry("F32", "[2.5]", 0, 4), four)), "tensor \"t\": shape [2.5]");
  EXPECT_CONTAINS(parse_error(one(entry("F32", "[1.0]", 0, 4), four)), "tensor \"t\": shape [1.0]");
  EXPECT_CONTAINS(parse_error(one(entry("F32", R"(["1"])", 0, 4), four)), "tensor \"t\": shape");
  EXPECT_CONTAINS(parse_error(one(entry("F32", "1", 0, 4), four)), "shape is number, not an array");
  // 2^32 * 2^32 elements overflow, and so do 2^62 elements of 4 bytes.
  EXPECT_CONTAINS(parse_error(one(entry("F32", "[4294967296,4294967296]", 0, 4), four)), "overflows");
  EXPECT_CONTAINS(parse_error(one(entry("F32", "[4611686018427387904]", 0, 4), four)), "overflows");
  EXPECT_CONTAINS(parse_error(one(entry("F32", "[2]", 0, 4), four)),
                  "tensor \"t\": data_offsets [0, 4] hold 4 bytes but F32 [2] needs 8");
  EXPECT_CONTAINS(parse_error(one(entry("F32", "[1]", 8, 4), four)), "0 <= begin <= end");
  EXPECT_CONTAINS(parse_error(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0]})", four)),
                  "must be [begin, end]");
  EXPECT_CONTAINS(parse_error(one(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})", four)),
                  "must be [begin, end]");
  EXPECT_CONTAINS(parse_error(one(R"({"dtype":"F32","shape":[1]})", four)), "has no \"data_offsets\"");
  EXPECT_CONTAINS(parse_error(one("[1]", four)), "tensor \"t\": its entry is array, not an object");
  EXPECT_CONTAINS(parse_error(one(entry("F32", "[2]", 0, 8), four)),
                  "tensor \"t\": data_offsets end 8 is beyond the 4-byte data section");
}

TEST(Safetensors, RejectsOffsetsThatDoNotTileTheData) {
  const std::string a4 = entry("F32", "[1]", 0, 4);
  EXPECT_CONTAINS(parse_error(crafted("{\"a\":" + a4 + ",\"b\":" + entry("F32", "[1]", 8, 12) + "}",
                                      std::string(12, 'x'))),
                  "tensor \"b\": starts at byte 8 of the data but the tensors before it end at 4");
  EXPECT_CONTAINS(
      parse_error(crafted("{\"a\":" + entry("F32", "[2]", 0, 8) + ",\"b\":" + entry("F32", "[1]", 4, 8) + "}",
                          std::string(8, 'x'))),
      "overlap tensor \"a\"");
  // An empty tensor placed inside another one is an overlap too (Hugging Face rejects it as well).
  EXPECT_CONTAINS(
      parse_error(crafted("{\"a\":" + entry("F32", "[2]", 0, 8) + ",\"e\":" + entry("F32", "[0]", 4, 4) + "}",
                          std::string(8, 'x'))),
      "tensor \"e\"");
  EXPECT_CONTAINS(parse_error(crafted("{\"a\":" + a4 + "}", std::string(6, 'x'))),
                  "2 trailing bytes after the last tensor");
  EXPECT_CONTAINS(parse_error(crafted("{}", "x")), "1 trailing bytes");
  // The first tensor must start at 0.
  EXPECT_CONTAINS(parse_error(crafted("{\"a\":" + entry("F32", "[1]", 4, 8) + "}", std::string(8, 'x'))),
                  "starts at byte 4");

  // Out of header order but tiling exactly is fine, and tensors() lists them in data order.
  const SafetensorsFile ok = SafetensorsFile::parse(
      crafted("{\"b\":" + entry("F32", "[1]", 4, 8) + ",\"a\":" + a4 + "}", std::string(8, 0)), kName);
  ASSERT_EQ(ok.tensors().size(), 2u);
  EXPECT_EQ(ok.tensors()[0].name, "a");
  EXPECT_EQ(ok.tensors()[1].name, "b");
}

TEST(Safetensors, RejectsDuplicatesAndBadMetadata) {
  const std::string a4 = entry("F32", "[1]", 0, 4);
  EXPECT_CONTAINS(parse_error(crafted("{\"t\":" + a4 + ",\"t\":" + a4 + "}", std::string(4, 0))),
                  "tensor \"t\" appears twice");
  EXPECT_CONTAINS(
      parse_error(crafted(R"({"t":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})",
                          std::string(4, 0))),
      "key \"dtype\" appears twice");
  EXPECT_CONTAINS(parse_error(crafted(R"({"__metadata__":{"a":1}})")),
                  "__metadata__ must map strings to strings, but \"a\" is number");
  EXPECT_CONTAINS(parse_error(crafted(R"({"__metadata__":{"a":{"b":"c"}}})")), "\"a\" is object");
  EXPECT_CONTAINS(parse_error(crafted(R"({"__metadata__":"pt"})")), "__metadata__ is string");
}

TEST(Safetensors, HostileNestingAndNamesAreOneLineErrorsNotCrashes) {
  // nlohmann::json recurses over nesting when it copies or prints values: 200,000 levels would
  // overflow the stack. Both places a deep value can sit, a field and an unknown key, must be errors.
  const std::string deep = std::string(200'000, '[') + std::string(200'000, ']');
  EXPECT_CONTAINS(
      parse_error(crafted(R"({"a":{"dtype":"F32","shape":)" + deep + R"(,"data_offsets":[0,0]}})")),
      "nests deeper than 64 levels");
  EXPECT_CONTAINS(parse_error(crafted(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":)" + deep + "}}")),
                  "nests deeper than 64 levels");
  // A name with a newline must not break the message into two lines (parse_error checks for '\n').
  EXPECT_CONTAINS(parse_error(crafted(R"({"a\nb":{"dtype":"X","shape":[0],"data_offsets":[0,0]}})")),
                  R"(tensor "a\nb")");
}

TEST(Safetensors, EveryTruncationIsAnError) {
  SafetensorsWriter writer;
  writer.add_floats("a", {2, 2}, std::vector<float>{1, 2, 3, 4});
  writer.add_floats("b", {3}, std::vector<float>{5, 6, 7});
  const std::string bytes = writer.serialize();
  for (size_t size = 0; size < bytes.size(); ++size) {
    const std::string message = parse_error(bytes.substr(0, size));
    EXPECT_NE(message, "") << "cut to " << size << " bytes";
    if (size >= 8 + header_size_of(bytes)) {
      EXPECT_CONTAINS(message, "truncated") << size;
    }
  }
}

// Hand-derived encodings: sign | exponent | mantissa, F16 with bias 15 and 10 mantissa bits, BF16
// being the top 16 bits of a float32.
TEST(Safetensors, ConvertsHalfPrecisionExactly) {
  const std::vector<uint16_t> f16 = {
      0x3C00,  // 1.0: exponent 15, mantissa 0
      0xC100,  // -2.5 = -1.25 * 2^1: sign, exponent 16, mantissa 0x100
      0x7BFF,  // 65504, the largest finite: exponent 30, mantissa all ones
      0x0001,  // 2^-24, the smallest subnormal
      0x03FF,  // 1023 * 2^-24, the largest subnormal
      0x0400,  // 2^-14, the smallest normal
      0x8000,  // -0.0
      0x7C00,  // +inf
      0xFC00,  // -inf
      0x7E00,  // NaN
      0x3555,  // 0x155 / 1024 + 1 = 1.333251953125, times 2^-2
  };
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC020, 0x4049, 0x0001, 0x7F80, 0xFF80, 0x7FC0, 0x8000};
  SafetensorsWriter writer;
  writer.add("f16", SafeDType::F16, {static_cast<int64_t>(f16.size())}, bytes_of(f16));
  writer.add("bf16", SafeDType::BF16, {static_cast<int64_t>(bf16.size())}, bytes_of(bf16));
  const SafetensorsFile file = SafetensorsFile::parse(writer.serialize(), kName);

  const std::vector<float> h = file.read_floats("f16");
  ASSERT_EQ(h.size(), f16.size());
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.5f);
  EXPECT_EQ(h[2], 65504.0f);
  EXPECT_EQ(h[3], 5.9604644775390625e-08f);
  EXPECT_EQ(h[4], 6.0975551605224609375e-05f);
  EXPECT_EQ(h[5], 6.103515625e-05f);
  EXPECT_EQ(h[6], 0.0f);
  EXPECT_TRUE(std::signbit(h[6]));
  EXPECT_EQ(h[7], inf);
  EXPECT_EQ(h[8], -inf);
  EXPECT_TRUE(std::isnan(h[9]));
  EXPECT_EQ(h[10], 0.333251953125f);

  const std::vector<float> b = file.read_floats("bf16");
  ASSERT_EQ(b.size(), bf16.size());
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -2.5f);
  EXPECT_EQ(b[2], 3.140625f);               // pi with its mantissa cut to 7 bits: 1.5703125 * 2
  EXPECT_EQ(b[3], std::ldexp(1.0f, -133));  // float32 bits 0x00010000: 2^16 * 2^-149
  EXPECT_EQ(b[4], inf);
  EXPECT_EQ(b[5], -inf);
  EXPECT_TRUE(std::isnan(b[6]));
  EXPECT_TRUE(std::signbit(b[7]));
}

TEST(Safetensors, ReadFloatsNamesWhatIsWrong) {
  SafetensorsWriter writer;
  writer.add_floats("w", {2, 3}, std::vector<float>(6, 1.0f));
  writer.add("ids", SafeDType::I32, {1}, bytes_of(std::vector<int32_t>{3}));
  const SafetensorsFile file = SafetensorsFile::parse(writer.serialize(), kName);
  const std::vector<int64_t> other = {3, 2};
  const std::string shape = error_of([&] { file.read_floats("w", other); });
  EXPECT_CONTAINS(shape, kName);
  EXPECT_CONTAINS(shape, "\"w\" has shape [2, 3] but [3, 2] is expected");
  EXPECT_CONTAINS(error_of([&] { file.read_floats("ids"); }), "\"ids\" is I32");
  EXPECT_CONTAINS(error_of([&] { file.read_floats("v"); }), "has no tensor \"v\"");
}

TEST(Safetensors, DTypeTable) {
  EXPECT_EQ(safe_dtype_size(SafeDType::F64), 8u);
  EXPECT_EQ(safe_dtype_size(SafeDType::BF16), 2u);
  EXPECT_EQ(safe_dtype_size(SafeDType::BOOL), 1u);
  EXPECT_EQ(safe_dtype_name(SafeDType::BF16), "BF16");
  EXPECT_EQ(safe_dtype_name(SafeDType::I16), "I16");
}

}  // namespace
}  // namespace inkstone
