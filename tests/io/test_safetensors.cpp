// Tests for the safetensors reader and writer: bit-exact round trips, hand-built files
// decoded to known values, one clear error per kind of corrupt file, copy-on-write
// mapping, and the atomic writer.
#include "build_paths.h"
#include "safetensors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "errors.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string le64(std::uint64_t value) {
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
  return bytes;
}

std::string le16(const std::vector<std::uint16_t>& values) {
  std::string bytes;
  for (std::uint16_t value : values) {
    bytes.push_back(static_cast<char>(value & 0xFF));
    bytes.push_back(static_cast<char>(value >> 8));
  }
  return bytes;
}

template <typename T>
std::string raw_bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// A safetensors file built by hand: the header is padded with spaces to a multiple of 8,
// so the data section starts 8-byte aligned and `data` offsets control the alignment.
std::string safetensors_file(const std::string& header, const std::string& data) {
  std::string padded = header;
  padded.append((8 - padded.size() % 8) % 8, ' ');
  return le64(padded.size()) + padded + data;
}

bool same_bytes(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const torch::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

std::vector<float> float_values(const torch::Tensor& tensor) {
  const torch::Tensor t = tensor.contiguous();
  EXPECT_EQ(t.scalar_type(), torch::kFloat);
  return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
}

// Runs `action`, which must throw mops::Error, and returns the message.
template <typename Action>
std::string error_of(Action action) {
  try {
    action();
  } catch (const mops::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected mops::Error";
  return "";
}

void expect_message_has(const std::string& message, const std::vector<std::string>& phrases) {
  for (const std::string& phrase : phrases)
    EXPECT_NE(message.find(phrase), std::string::npos)
        << "message lacks \"" << phrase << "\": " << message;
}

// Each test gets an empty directory of its own under MOPS_TEST_WORK_DIR.
class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(MOPS_TEST_WORK_DIR) / "safetensors" /
           (std::string(info->test_suite_name()) + "." + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<std::string> files() const {  // the directory's file names, sorted
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  // Writes a hand-built file and returns the reader's error message on opening it.
  std::string open_error(const std::string& name, const std::string& bytes) const {
    write_bytes(file(name), bytes);
    return error_of([&] { mops::SafetensorsReader reader(file(name)); });
  }

 private:
  fs::path dir_;
};

class SafetensorsRoundTrip : public SafetensorsTest {};
class SafetensorsWriter : public SafetensorsTest {};
class SafetensorsHandBuilt : public SafetensorsTest {};
class SafetensorsErrors : public SafetensorsTest {};
class SafetensorsMapping : public SafetensorsTest {};

TEST_F(SafetensorsRoundTrip, AllDtypesAreBitExact) {
  torch::manual_seed(0);
  torch::Tensor f32 = torch::randn({3, 5});
  f32.view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
  f32.view(-1)[1] = std::numeric_limits<float>::infinity();
  f32.view(-1)[2] = -std::numeric_limits<float>::infinity();
  f32.view(-1)[3] = -0.0f;
  const std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"f32", f32},
      {"f64", torch::randn({2, 2, 2}, torch::kDouble)},
      {"f16", torch::randn({4, 3}).to(torch::kHalf)},
      {"bf16", torch::randn({7}).to(torch::kBFloat16)},
      {"i8", torch::randint(-128, 128, {9}, torch::kChar)},
      {"u8", torch::randint(0, 256, {9}, torch::kByte)},
      {"i32", torch::randint(std::numeric_limits<int32_t>::min(),
                             std::numeric_limits<int32_t>::max(), {6}, torch::kInt)},
      {"i64", torch::tensor({std::numeric_limits<int64_t>::min(), int64_t(-1), int64_t(0),
                             std::numeric_limits<int64_t>::max()})},
  };
  const std::map<std::string, std::string> expected_dtypes = {
      {"f32", "F32"}, {"f64", "F64"}, {"f16", "F16"}, {"bf16", "BF16"},
      {"i8", "I8"},   {"u8", "U8"},   {"i32", "I32"}, {"i64", "I64"}};
  mops::write_safetensors(file("all.safetensors"), tensors);

  const mops::SafetensorsReader reader(file("all.safetensors"));
  for (const auto& [name, original] : tensors) {
    EXPECT_EQ(reader.dtype(name), expected_dtypes.at(name)) << name;
    EXPECT_EQ(reader.shape(name), original.sizes().vec()) << name;
    EXPECT_TRUE(same_bytes(reader.tensor(name), original)) << name;
  }
  EXPECT_TRUE(std::isnan(reader.tensor("f32").view(-1)[0].item<float>()));
  EXPECT_TRUE(std::signbit(reader.tensor("f32").view(-1)[3].item<float>()));
}

TEST_F(SafetensorsRoundTrip, ScalarAndEmptyTensors) {
  const torch::Tensor scalar = torch::tensor(-3.25);
  const torch::Tensor empty = torch::empty({0, 3}, torch::kInt);
  mops::write_safetensors(file("edge.safetensors"), {{"scalar", scalar}, {"empty", empty}});

  const mops::SafetensorsReader reader(file("edge.safetensors"));
  EXPECT_EQ(reader.shape("scalar"), std::vector<int64_t>{});
  EXPECT_EQ(reader.tensor("scalar").dim(), 0);
  EXPECT_TRUE(same_bytes(reader.tensor("scalar"), scalar));
  EXPECT_EQ(reader.float_tensor("scalar").item<float>(), -3.25f);
  EXPECT_EQ(reader.shape("empty"), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(reader.tensor("empty").numel(), 0);
  EXPECT_EQ(reader.tensor("empty").scalar_type(), torch::kInt);
}

TEST_F(SafetensorsRoundTrip, MetadataNamesAndLookups) {
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"note", "h\xC3\xA9llo \"quoted\"\n"}, {"empty", ""}};
  mops::write_safetensors(file("meta.safetensors"),
                          {{"zeta", torch::ones({2})}, {"alpha", torch::zeros({1})},
                           {"mid", torch::ones({3}, torch::kLong)}},
                          metadata);

  const mops::SafetensorsReader reader(file("meta.safetensors"));
  EXPECT_EQ(reader.path(), file("meta.safetensors"));
  EXPECT_EQ(reader.metadata(), metadata);
  EXPECT_EQ(reader.names(), (std::vector<std::string>{"alpha", "mid", "zeta"}));
  EXPECT_TRUE(reader.contains("mid"));
  EXPECT_FALSE(reader.contains("__metadata__"));
  EXPECT_FALSE(reader.contains("missing"));
}

TEST_F(SafetensorsWriter, HeaderIsPaddedOrderedAndOmitsEmptyMetadata) {
  mops::write_safetensors(file("layout.safetensors"),
                          {{"b", torch::ones({3})}, {"a", torch::ones({2}, torch::kInt)}});

  const std::string bytes = read_bytes(file("layout.safetensors"));
  ASSERT_GE(bytes.size(), 8u);
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | std::uint8_t(bytes[i]);
  EXPECT_EQ(header_size % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + header_size + 3 * 4 + 2 * 4);
  const auto header = nlohmann::json::parse(bytes.substr(8, header_size));
  EXPECT_FALSE(header.contains("__metadata__"));
  EXPECT_EQ(header.at("b").at("data_offsets"), nlohmann::json::array({0, 12}));
  EXPECT_EQ(header.at("a").at("data_offsets"), nlohmann::json::array({12, 20}));
  EXPECT_EQ(header.at("a").at("dtype"), "I32");
  EXPECT_EQ(header.at("b").at("shape"), nlohmann::json::array({3}));
}

TEST_F(SafetensorsWriter, WritesNonContiguousTensorsByValue) {
  const torch::Tensor base = torch::arange(6, torch::kFloat).reshape({2, 3}).requires_grad_();
  const torch::Tensor transposed = base.t();
  ASSERT_FALSE(transposed.is_contiguous());
  mops::write_safetensors(file("t.safetensors"), {{"t", transposed}});

  const mops::SafetensorsReader reader(file("t.safetensors"));
  EXPECT_EQ(reader.shape("t"), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(float_values(reader.tensor("t")), (std::vector<float>{0, 3, 1, 4, 2, 5}));
}

TEST_F(SafetensorsWriter, ReplacesAtomicallyAndLeavesNoTemporary) {
  const std::string path = file("model.safetensors");
  mops::write_safetensors(path, {{"old", torch::ones({4})}});
  EXPECT_EQ(files(), std::vector<std::string>{"model.safetensors"});
  mops::write_safetensors(path, {{"new", torch::full({2}, 7.0)}}, {{"v", "2"}});
  EXPECT_EQ(files(), std::vector<std::string>{"model.safetensors"});
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);

  const mops::SafetensorsReader reader(path);
  EXPECT_EQ(reader.names(), std::vector<std::string>{"new"});
  EXPECT_EQ(float_values(reader.tensor("new")), (std::vector<float>{7, 7}));
  EXPECT_EQ(reader.metadata().at("v"), "2");
}

TEST_F(SafetensorsWriter, RejectsDuplicateNamesWithoutTouchingTheFile) {
  const std::string path = file("dup.safetensors");
  mops::write_safetensors(path, {{"kept", torch::ones({1})}});
  const std::string before = read_bytes(path);

  const std::string message = error_of([&] {
    mops::write_safetensors(path, {{"w", torch::ones({1})}, {"w", torch::zeros({1})}});
  });
  expect_message_has(message, {path, "'w'", "given twice"});
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(files(), std::vector<std::string>{"dup.safetensors"});
}

TEST_F(SafetensorsWriter, RejectsUnsupportedDtypeAndReservedName) {
  const std::string path = file("bad.safetensors");
  expect_message_has(error_of([&] {
                       mops::write_safetensors(path, {{"mask", torch::ones({2}, torch::kBool)}});
                     }),
                     {path, "'mask'", "not supported", "F32, F16, BF16, F64, I8, U8, I32, I64"});
  expect_message_has(error_of([&] {
                       mops::write_safetensors(path, {{"__metadata__", torch::ones({1})}});
                     }),
                     {path, "reserved"});
  EXPECT_TRUE(files().empty());
}

// Writers of one path each have a temporary file of their own: every write succeeds, the
// file left is one writer's whole file, and no temporary is left behind.
TEST_F(SafetensorsWriter, ConcurrentWritersOfOnePathDoNotCollide) {
  const std::string path = file("shared.safetensors");
  std::vector<std::string> errors(2);
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w)
    writers.emplace_back([&, w] {
      errors[w] = mops::error_of([&] {
        for (int i = 0; i < 20; ++i) mops::write_safetensors(path, {{"w", torch::full({1 << 16}, float(w))}});
      });
    });
  for (auto& writer : writers) writer.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
  const mops::SafetensorsReader reader(path);
  const torch::Tensor w = reader.tensor("w");  // (65536,)
  EXPECT_TRUE(torch::equal(w, torch::full({1 << 16}, w[0].item<float>())));
  EXPECT_EQ(files(), std::vector<std::string>{"shared.safetensors"});
}

TEST_F(SafetensorsHandBuilt, Bf16DecodesToExactFloats) {
  write_bytes(file("bf16.safetensors"),
              safetensors_file(R"({"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}})",
                               le16({0x3F80, 0xC020, 0x3EAB})));

  const mops::SafetensorsReader reader(file("bf16.safetensors"));
  EXPECT_EQ(reader.dtype("w"), "BF16");
  EXPECT_EQ(reader.tensor("w").scalar_type(), torch::kBFloat16);
  EXPECT_EQ(float_values(reader.float_tensor("w")), (std::vector<float>{1.0f, -2.5f, 0.333984375f}));
}

TEST_F(SafetensorsHandBuilt, F16DecodesToExactFloats) {
  write_bytes(file("f16.safetensors"),
              safetensors_file(R"({"w":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]}})",
                               le16({0x3C00, 0xC100, 0x3555, 0x7BFF})));

  const mops::SafetensorsReader reader(file("f16.safetensors"));
  EXPECT_EQ(reader.dtype("w"), "F16");
  EXPECT_EQ(reader.shape("w"), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(float_values(reader.float_tensor("w")),
            (std::vector<float>{1.0f, -2.5f, 0.333251953125f, 65504.0f}));
}

TEST_F(SafetensorsHandBuilt, F64ConvertsToFloat32) {
  write_bytes(file("f64.safetensors"),
              safetensors_file(R"({"w":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})",
                               raw_bytes(std::vector<double>{0.5, -1e10})));

  const mops::SafetensorsReader reader(file("f64.safetensors"));
  EXPECT_EQ(reader.tensor("w").scalar_type(), torch::kDouble);
  EXPECT_EQ(float_values(reader.float_tensor("w")), (std::vector<float>{0.5f, -1e10f}));
}

TEST_F(SafetensorsHandBuilt, MisalignedTensorsAreCopiedCorrectly) {
  // "x" (F32) starts 2 bytes into the data section, "y" (F64) 4 bytes after an 8-byte boundary;
  // two-byte U8 tensors fill the gaps (the data section has no holes).
  const std::string data = std::string(2, '\x55') + raw_bytes(std::vector<float>{1.5f, -7.25f}) +
                           std::string(2, '\x55') + raw_bytes(std::vector<double>{3.0, -0.125});
  write_bytes(file("misaligned.safetensors"),
              safetensors_file(R"({"pad0":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                               R"("x":{"dtype":"F32","shape":[2],"data_offsets":[2,10]},)"
                               R"("pad1":{"dtype":"U8","shape":[2],"data_offsets":[10,12]},)"
                               R"("y":{"dtype":"F64","shape":[2],"data_offsets":[12,28]}})",
                               data));

  const mops::SafetensorsReader reader(file("misaligned.safetensors"));
  EXPECT_EQ(float_values(reader.tensor("x")), (std::vector<float>{1.5f, -7.25f}));
  const torch::Tensor y = reader.tensor("y");
  ASSERT_EQ(y.scalar_type(), torch::kDouble);
  EXPECT_EQ(y[0].item<double>(), 3.0);
  EXPECT_EQ(y[1].item<double>(), -0.125);
  const torch::Tensor x1 = reader.tensor("x"), x2 = reader.tensor("x");
  EXPECT_NE(x1.data_ptr(), x2.data_ptr()) << "misaligned data must be copied";
}

TEST_F(SafetensorsErrors, MissingFile) {
  const std::string path = file("absent.safetensors");
  expect_message_has(error_of([&] { mops::SafetensorsReader reader(path); }),
                     {path, "cannot open", "No such file or directory"});
}

TEST_F(SafetensorsErrors, ThreeByteFile) {
  expect_message_has(open_error("short.safetensors", "abc"),
                     {file("short.safetensors"), "truncated", "3 bytes"});
}

TEST_F(SafetensorsErrors, HeaderLengthLargerThanFile) {
  expect_message_has(open_error("long.safetensors", le64(1000) + "{}        "),
                     {file("long.safetensors"), "header length 1000 is larger than the 10 bytes"});
}

TEST_F(SafetensorsErrors, HeaderIsNotValidJson) {
  expect_message_has(open_error("json.safetensors", safetensors_file(R"({"w": {"dtype")", "")),
                     {file("json.safetensors"), "header is not valid JSON", "parse error"});
}

TEST_F(SafetensorsErrors, HeaderIsNotAnObject) {
  expect_message_has(open_error("array.safetensors", safetensors_file("[1, 2]", "")),
                     {file("array.safetensors"), "the header does not start with '{'"});
}

TEST_F(SafetensorsErrors, UnknownDtype) {
  expect_message_has(
      open_error("fp8.safetensors",
                 safetensors_file(
                     R"({"layers.0.wq.weight":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})",
                     "ab")),
      {file("fp8.safetensors"), "tensor 'layers.0.wq.weight' has dtype 'F8_E4M3'",
       "not supported (supported: F32, F16, BF16, F64, I8, U8, I32, I64)"});
}

TEST_F(SafetensorsErrors, MissingDataOffsets) {
  expect_message_has(open_error("nooffsets.safetensors",
                                safetensors_file(R"({"w":{"dtype":"F32","shape":[1]}})", "abcd")),
                     {file("nooffsets.safetensors"), "tensor 'w'", "no 'data_offsets' entry"});
}

TEST_F(SafetensorsErrors, WrongJsonTypes) {
  expect_message_has(
      open_error("shape.safetensors",
                 safetensors_file(R"({"w":{"dtype":"F32","shape":"4","data_offsets":[0,16]}})",
                                  std::string(16, '\0'))),
      {file("shape.safetensors"), "tensor 'w'", "shape of JSON type string"});
  expect_message_has(
      open_error("dtype.safetensors",
                 safetensors_file(R"({"w":{"dtype":32,"shape":[4],"data_offsets":[0,16]}})",
                                  std::string(16, '\0'))),
      {file("dtype.safetensors"), "tensor 'w'", "dtype of JSON type number"});
  expect_message_has(
      open_error("offsets.safetensors",
                 safetensors_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0]}})",
                                  std::string(16, '\0'))),
      {file("offsets.safetensors"), "tensor 'w'", "expected two non-negative integers"});
  expect_message_has(open_error("entry.safetensors", safetensors_file(R"({"w":[1,2]})", "")),
                     {file("entry.safetensors"), "tensor 'w' is a JSON array"});
}

TEST_F(SafetensorsErrors, NegativeDimension) {
  expect_message_has(
      open_error("negative.safetensors",
                 safetensors_file(R"({"w":{"dtype":"F32","shape":[2,-3],"data_offsets":[0,0]}})",
                                  "")),
      {file("negative.safetensors"), "tensor 'w'", "invalid dimension -3", "non-negative"});
}

TEST_F(SafetensorsErrors, OffsetsEndBeforeBegin) {
  expect_message_has(
      open_error("reversed.safetensors",
                 safetensors_file(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[8,4]}})",
                                  std::string(8, '\0'))),
      {file("reversed.safetensors"), "tensor 'w'", "end before begin"});
}

TEST_F(SafetensorsErrors, OffsetsPastEndOfFile) {
  expect_message_has(
      open_error("truncated.safetensors",
                 safetensors_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                                  std::string(8, '\0'))),
      {file("truncated.safetensors"),
       "truncated: tensor 'w' needs bytes [0, 16) of the data section but it has only 8"});
}

TEST_F(SafetensorsErrors, ShapeAndByteCountMismatch) {
  expect_message_has(
      open_error("mismatch.safetensors",
                 safetensors_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                                  std::string(8, '\0'))),
      {file("mismatch.safetensors"), "tensor 'w'", "header/size mismatch", "needs 12 bytes"});
}

// The data section is covered exactly by the tensors' byte ranges, in whatever order the
// header lists them: layer 1's wq on layer 0's bytes, a partial overlap, a hole, bytes after
// the last tensor and data without tensors are errors.
const std::string kF32x2At0 = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

TEST_F(SafetensorsErrors, AliasedOffsets) {
  expect_message_has(
      open_error("alias.safetensors",
                 safetensors_file(R"({"layers.0.wq":)" + kF32x2At0 + R"(,"layers.1.wq":)" + kF32x2At0 + "}",
                                  std::string(8, '\0'))),
      {file("alias.safetensors"), "tensor 'layers.1.wq' at data_offsets [0, 8) overlaps tensor 'layers.0.wq'"});
}

TEST_F(SafetensorsErrors, OverlappingOffsetsListedOutOfOrder) {
  expect_message_has(
      open_error("overlap.safetensors",
                 safetensors_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
                                  R"("b":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})",
                                  std::string(16, '\0'))),
      {file("overlap.safetensors"), "tensor 'a' at data_offsets [8, 16) overlaps tensor 'b' at [0, 12)"});
}

TEST_F(SafetensorsErrors, HoleBetweenTensors) {
  expect_message_has(
      open_error("hole.safetensors",
                 safetensors_file(R"({"a":)" + kF32x2At0 + R"(,"b":{"dtype":"U8","shape":[4],"data_offsets":[12,16]}})",
                                  std::string(16, '\0'))),
      {file("hole.safetensors"), "bytes [8, 12) of the data section belong to no tensor", "before tensor 'b'"});
  expect_message_has(
      open_error("first.safetensors",
                 safetensors_file(R"({"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", std::string(8, '\0'))),
      {file("first.safetensors"), "bytes [0, 4) of the data section belong to no tensor"});
}

TEST_F(SafetensorsErrors, TrailingBytes) {
  expect_message_has(open_error("trailing.safetensors",
                                safetensors_file(R"({"a":)" + kF32x2At0 + "}", std::string(11, '\0'))),
                     {file("trailing.safetensors"), "3 trailing bytes", "tensors end at 8 (tensor 'a')"});
  expect_message_has(open_error("none.safetensors", safetensors_file("{}", "abcd")),
                     {file("none.safetensors"), "4 trailing bytes", "(there are none)"});
}

// Tensors listed in another order than their bytes, an empty tensor between two others: valid.
TEST_F(SafetensorsHandBuilt, UnsortedOffsetsAndEmptyTensorsLoad) {
  write_bytes(file("unsorted.safetensors"),
              safetensors_file(R"({"z":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                               R"("a":{"dtype":"U8","shape":[1],"data_offsets":[2,3]},)"
                               R"("e":{"dtype":"F32","shape":[0,5],"data_offsets":[2,2]}})",
                               "xyz"));
  const mops::SafetensorsReader reader(file("unsorted.safetensors"));
  EXPECT_EQ(reader.tensor("z")[1].item<uint8_t>(), 'y');
  EXPECT_EQ(reader.tensor("a")[0].item<uint8_t>(), 'z');
  EXPECT_EQ(reader.shape("e"), (std::vector<int64_t>{0, 5}));
}

// nlohmann::json keeps the last of two equal keys; the reader refuses them, at any depth.
TEST_F(SafetensorsErrors, DuplicateJsonKeys) {
  expect_message_has(
      open_error("tensor.safetensors",
                 safetensors_file(R"({"w":)" + kF32x2At0 + R"(,"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                                  std::string(16, '\0'))),
      {file("tensor.safetensors"), "header has key 'w' twice in the top-level object"});
  expect_message_has(
      open_error("entry.safetensors",
                 safetensors_file(R"({"w":{"dtype":"I32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                  std::string(8, '\0'))),
      {file("entry.safetensors"), "header has key 'dtype' twice in 'w'"});
  expect_message_has(open_error("meta.safetensors", safetensors_file(R"({"__metadata__":{"k":"1","k":"2"}})", "")),
                     {file("meta.safetensors"), "header has key 'k' twice in '__metadata__'"});
}

// Keys other than dtype, shape and data_offsets in a tensor entry are refused: a reader that
// ignores them could misread what they change.
TEST_F(SafetensorsErrors, UnknownKeyInTensorEntry) {
  expect_message_has(
      open_error("endian.safetensors",
                 safetensors_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"endian":"big"}})",
                                  std::string(8, '\0'))),
      {file("endian.safetensors"), "tensor 'w' has unknown entry 'endian'"});
}

// nlohmann::json stops reading at a NUL byte, which would hide whatever follows it.
TEST_F(SafetensorsErrors, NulByteInHeader) {
  expect_message_has(open_error("nul.safetensors", safetensors_file(std::string("{}\0{\"w\": 1}", 11), "")),
                     {file("nul.safetensors"), "header is not valid JSON: NUL byte at offset 2"});
}

// A header length over 100 MB is refused before anything is parsed, even when the file is that
// long (sparse here: "{}" then zeros, which nlohmann::json alone would read as an empty header).
TEST_F(SafetensorsErrors, HeaderLengthOverTheLimit) {
  const std::uint64_t length = 100'000'001;
  write_bytes(file("huge.safetensors"), le64(length) + "{}");
  fs::resize_file(file("huge.safetensors"), 8 + length);
  expect_message_has(error_of([&] { mops::SafetensorsReader reader(file("huge.safetensors")); }),
                     {file("huge.safetensors"), "header length 100000001 is over the limit of 100000000 bytes"});
}

TEST_F(SafetensorsErrors, NonStringMetadata) {
  expect_message_has(
      open_error("meta.safetensors",
                 safetensors_file(R"({"__metadata__":{"step":5},)"
                                  R"("w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                                  "x")),
      {file("meta.safetensors"), "__metadata__ value for 'step'", "expected a string"});
}

TEST_F(SafetensorsErrors, MissingTensorListsUpToFiveNames) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (int i = 0; i < 7; ++i) tensors.emplace_back("t" + std::to_string(i), torch::ones({1}));
  mops::write_safetensors(file("seven.safetensors"), tensors);
  const mops::SafetensorsReader reader(file("seven.safetensors"));

  const std::string message = error_of([&] { reader.tensor("t9"); });
  expect_message_has(message, {file("seven.safetensors"), "no tensor named 't9'", "7 tensors",
                               "'t0', 't1', 't2', 't3', 't4'"});
  EXPECT_EQ(message.find("'t5'"), std::string::npos) << message;
  EXPECT_THROW(reader.shape("t9"), mops::Error);
  EXPECT_THROW(reader.dtype("t9"), mops::Error);
  EXPECT_THROW(reader.float_tensor("t9"), mops::Error);
}

TEST_F(SafetensorsErrors, FloatTensorOfIntegerDtype) {
  mops::write_safetensors(file("int.safetensors"), {{"ids", torch::ones({2}, torch::kInt)}});
  const mops::SafetensorsReader reader(file("int.safetensors"));
  expect_message_has(error_of([&] { reader.float_tensor("ids"); }),
                     {file("int.safetensors"), "tensor 'ids'", "dtype 'I32'", "float32"});
  EXPECT_EQ(reader.tensor("ids").scalar_type(), torch::kInt);
}

TEST_F(SafetensorsMapping, AlignedTensorsAreZeroCopy) {
  mops::write_safetensors(file("w.safetensors"), {{"w", torch::randn({16})}});
  const mops::SafetensorsReader reader(file("w.safetensors"));
  const torch::Tensor first = reader.tensor("w"), second = reader.tensor("w");
  EXPECT_EQ(first.data_ptr(), second.data_ptr());
}

TEST_F(SafetensorsMapping, InPlaceEditsNeverReachTheFile) {
  const torch::Tensor original = torch::randn({4, 4});
  const std::string path = file("w.safetensors");
  mops::write_safetensors(path, {{"w", original}});
  const std::string before = read_bytes(path);
  {
    const mops::SafetensorsReader reader(path);
    torch::Tensor loaded = reader.tensor("w");
    loaded.mul_(2).add_(1);
    EXPECT_FALSE(same_bytes(loaded, original)) << "the in-place edit did not happen";
  }
  EXPECT_EQ(read_bytes(path), before);
  const mops::SafetensorsReader reopened(path);
  EXPECT_TRUE(same_bytes(reopened.tensor("w"), original));
}

TEST_F(SafetensorsMapping, TensorsOutliveReaderAndFile) {
  const torch::Tensor original = torch::randn({8, 8});
  const std::string path = file("w.safetensors");
  mops::write_safetensors(path, {{"w", original}, {"h", original.to(torch::kHalf)}});
  auto reader = std::make_unique<mops::SafetensorsReader>(path);
  const torch::Tensor w = reader->tensor("w");
  const torch::Tensor h = reader->float_tensor("h");
  reader.reset();
  fs::remove(path);
  EXPECT_TRUE(same_bytes(w, original));
  EXPECT_TRUE(torch::equal(h, original.to(torch::kHalf).to(torch::kFloat)));
}

}  // namespace
