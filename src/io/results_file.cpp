// The HDF5 results file: an in-memory HDF5 file (core driver, no backing store) whose
// complete image is written to disk as atomic snapshots. Schema and the reasons for this
// design: results_file.h.
#include "results_file.h"

#include <hdf5.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <type_traits>
#include <utility>

#include "atomic_file.h"
#include "build_info.h"
#include "errors.h"

namespace mops {
namespace {

static_assert(std::is_same_v<hid_t, int64_t>, "ResultsFile keeps its hid_t in an int64_t");

constexpr auto kTrainSnapshotInterval = std::chrono::seconds(1);
constexpr size_t kCoreIncrement = size_t{1} << 20;  // bytes by which the in-memory file grows
constexpr size_t kChunkBytes = size_t{16} << 10;    // about this many bytes per series chunk

// HDF5 prints its error stack by default; errors here become mops::Error instead.
void quiet_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// The most specific message on HDF5's error stack, as " (message)", or "".
std::string hdf5_detail() {
  std::string detail;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* error, void* out) -> herr_t {
        if (n == 0 && error->desc) *static_cast<std::string*>(out) = error->desc;
        return 0;
      },
      &detail);
  return detail.empty() ? "" : " (" + detail + ")";
}

// Throws when an HDF5 call returned a negative id or status.
void check(int64_t status, const std::string& path, const std::string& what) {
  MOPS_CHECK(status >= 0, path << ": HDF5 cannot " << what << hdf5_detail());
}

// Owns an HDF5 id and closes it with the matching H5?close.
class Id {
 public:
  Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Id() {
    if (id_ >= 0) close_(id_);
  }
  Id(Id&& other) noexcept : id_(std::exchange(other.id_, -1)), close_(other.close_) {}
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  operator hid_t() const { return id_; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// An Id for the result of an HDF5 call that returns one; throws on failure.
Id checked(hid_t id, herr_t (*close)(hid_t), const std::string& path, const std::string& what) {
  check(id, path, what);
  return Id(id, close);
}

template <typename T>
hid_t native_type() {
  if constexpr (std::is_same_v<T, double>) {
    return H5T_NATIVE_DOUBLE;
  } else if constexpr (std::is_same_v<T, float>) {
    return H5T_NATIVE_FLOAT;
  } else if constexpr (std::is_same_v<T, int64_t>) {
    return H5T_NATIVE_INT64;
  } else {
    static_assert(std::is_same_v<T, uint64_t>, "no HDF5 type for this element type");
    return H5T_NATIVE_UINT64;
  }
}

Id utf8_string_type(const std::string& path) {
  Id type = checked(H5Tcopy(H5T_C_S1), H5Tclose, path, "copy the string type");
  check(H5Tset_size(type, H5T_VARIABLE), path, "make a variable-length string type");
  check(H5Tset_cset(type, H5T_CSET_UTF8), path, "make a UTF-8 string type");
  return type;
}

Id simple_space(const std::vector<hsize_t>& dims, const std::vector<hsize_t>& max_dims,
                const std::string& path) {
  if (dims.empty()) return checked(H5Screate(H5S_SCALAR), H5Sclose, path, "create a dataspace");
  return checked(H5Screate_simple(static_cast<int>(dims.size()), dims.data(),
                                  max_dims.empty() ? nullptr : max_dims.data()),
                 H5Sclose, path, "create a dataspace");
}

std::vector<hsize_t> dims_of(hid_t space) {
  std::vector<hsize_t> dims(std::max(0, H5Sget_simple_extent_ndims(space)));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

// Link-creation properties that create missing groups on the way ("/fed/ppl" makes "/fed").
Id intermediate_groups(const std::string& path) {
  Id lcpl = checked(H5Pcreate(H5P_LINK_CREATE), H5Pclose, path, "create link properties");
  check(H5Pset_create_intermediate_group(lcpl, 1), path, "set link properties");
  return lcpl;
}

// Whether NAME ("/a/b/c") exists; H5Lexists needs every parent to exist, so walk down.
bool exists(hid_t file, const std::string& name, const std::string& path) {
  for (size_t slash = name.find('/', 1);; slash = name.find('/', slash + 1)) {
    const std::string prefix = name.substr(0, slash);
    const htri_t found = H5Lexists(file, prefix.c_str(), H5P_DEFAULT);
    check(found, path, "look up '" + prefix + "'");
    if (!found) return false;
    if (slash == std::string::npos) return true;
  }
}

// An empty, extendible series NAME of rows with dims ROW: shape (0, ROW...).
template <typename T>
void create_series(hid_t file, const std::string& path, const std::string& name,
                   const std::vector<hsize_t>& row) {
  size_t row_bytes = sizeof(T);
  for (hsize_t d : row) row_bytes *= d;
  std::vector<hsize_t> dims{0}, max_dims{H5S_UNLIMITED};
  std::vector<hsize_t> chunk{std::max<hsize_t>(1, kChunkBytes / std::max<size_t>(1, row_bytes))};
  for (hsize_t d : row) {
    dims.push_back(d);
    max_dims.push_back(d);
    chunk.push_back(std::max<hsize_t>(1, d));
  }
  const Id space = simple_space(dims, max_dims, path);
  const Id dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, path, "create properties");
  check(H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data()), path,
        "set the chunks of '" + name + "'");
  const Id lcpl = intermediate_groups(path);
  checked(H5Dcreate2(file, name.c_str(), native_type<T>(), space, lcpl, dcpl, H5P_DEFAULT),
          H5Dclose, path, "create dataset '" + name + "'");
}

// Appends one row (its size already checked against the series' row shape) to series NAME.
template <typename T>
void append_row(hid_t file, const std::string& path, const std::string& name, const T* row) {
  const Id dataset = checked(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, path,
                             "open dataset '" + name + "'");
  std::vector<hsize_t> dims = dims_of(checked(H5Dget_space(dataset), H5Sclose, path, "get a space"));
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = dims[0];
  count[0] = 1;
  dims[0] += 1;
  check(H5Dset_extent(dataset, dims.data()), path, "extend dataset '" + name + "'");
  const Id file_space = checked(H5Dget_space(dataset), H5Sclose, path, "get a space");
  check(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start.data(), nullptr, count.data(),
                            nullptr),
        path, "select the new row of '" + name + "'");
  const Id row_space = simple_space(count, {}, path);
  check(H5Dwrite(dataset, native_type<T>(), row_space, file_space, H5P_DEFAULT, row), path,
        "write a row of dataset '" + name + "'");
}

template <typename T>
void write_scalar_attribute(hid_t object, const std::string& path, const std::string& name,
                            T value) {
  const Id space = simple_space({}, {}, path);
  const Id attribute = checked(
      H5Acreate2(object, name.c_str(), native_type<T>(), space, H5P_DEFAULT, H5P_DEFAULT),
      H5Aclose, path, "create attribute '" + name + "'");
  check(H5Awrite(attribute, native_type<T>(), &value), path, "write attribute '" + name + "'");
}

// A variable-length UTF-8 string attribute on OBJECT; replaces an existing one.
void write_string_attribute(hid_t object, const std::string& path, const std::string& name,
                            const std::string& value) {
  const htri_t found = H5Aexists(object, name.c_str());
  check(found, path, "look up attribute '" + name + "'");
  if (found) check(H5Adelete(object, name.c_str()), path, "delete attribute '" + name + "'");
  const Id type = utf8_string_type(path);
  const Id space = simple_space({}, {}, path);
  const Id attribute =
      checked(H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
              path, "create attribute '" + name + "'");
  const char* text = value.c_str();
  check(H5Awrite(attribute, type, &text), path, "write attribute '" + name + "'");
}

void check_size(const std::string& path, const char* what, size_t size, size_t expected,
                const char* expected_as) {
  MOPS_CHECK(size == expected, path << ": " << what << " has " << size << " values, expected "
                                    << expected << " (" << expected_as << ")");
}

void check_header(const std::string& path, const ResultsHeader& h) {
  MOPS_CHECK(h.method == "mop" || h.method == "prompt" || h.method == "fedprompt" || h.method == "lora" ||
                 h.method == "ia3" || h.method == "prefix" || h.method == "mpt",
             path << ": unknown method '" << h.method << "' (expected mop, prompt, fedprompt, lora, ia3, prefix or mpt)");
  MOPS_CHECK(h.mode == "centralized" || h.mode == "federated",
             path << ": unknown mode '" << h.mode << "' (expected centralized or federated)");
  MOPS_CHECK(!h.tasks.empty(), path << ": a results file needs at least one task");
  MOPS_CHECK(h.experts >= 0 && h.prompts_per_expert >= 0 && h.active_clients >= 0,
             path << ": negative experts, prompts per expert or active clients");
  MOPS_CHECK(h.method != "mop" || (h.experts > 0 && h.prompts_per_expert > 0),
             path << ": method mop needs experts and prompts per expert > 0, got "
                  << h.experts << " and " << h.prompts_per_expert);
  MOPS_CHECK((h.mode == "federated") == (h.active_clients > 0),
             path << ": mode " << h.mode << " with " << h.active_clients
                  << " active clients per round (federated runs need > 0, centralized 0)");
}

// GROUP + NAME as a fixed-size dataset of `shape`, replacing an earlier one of that name.
template <typename T>
void write_array(hid_t file, const std::string& path, const std::string& group,
                 const std::string& name, const std::vector<T>& values,
                 const std::vector<int64_t>& shape) {
  MOPS_CHECK(!name.empty() && name.front() != '/' && name.back() != '/',
             path << ": bad dataset name '" << name << "'");
  size_t count = 1;
  std::vector<hsize_t> dims;
  for (int64_t d : shape) {
    MOPS_CHECK(d >= 0, path << ": '" << name << "' has a negative dimension " << d);
    count *= static_cast<size_t>(d);
    dims.push_back(static_cast<hsize_t>(d));
  }
  check_size(path, ("'" + group + name + "'").c_str(), values.size(), count,
             "the product of its shape");
  const std::string full = group + name;
  if (exists(file, full, path))
    check(H5Ldelete(file, full.c_str(), H5P_DEFAULT), path, "replace '" + full + "'");
  const Id dataset = checked(H5Dcreate2(file, full.c_str(), native_type<T>(),
                                        simple_space(dims, {}, path), intermediate_groups(path),
                                        H5P_DEFAULT, H5P_DEFAULT),
                             H5Dclose, path, "create dataset '" + full + "'");
  if (count > 0)
    check(H5Dwrite(dataset, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
          path, "write dataset '" + full + "'");
}

}  // namespace

ResultsFile::ResultsFile(const std::string& path, const ResultsHeader& header)
    : path_(path),
      tasks_(static_cast<int>(header.tasks.size())),
      experts_(header.experts),
      clients_(header.active_clients),
      has_gate_(header.method == "mop") {
  quiet_hdf5();
  check_header(path, header);
  const Id fapl = checked(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, path, "create file properties");
  check(H5Pset_fapl_core(fapl, kCoreIncrement, /*backing_store=*/0), path,
        "select the in-memory driver");
  file_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  check(file_, path, "create the in-memory file");
  try {
    write_header(header);
    create_empty_series();
    write_snapshot();
  } catch (...) {
    H5Fclose(std::exchange(file_, -1));
    throw;
  }
}

ResultsFile::~ResultsFile() {
  try {
    close();
  } catch (const Error& error) {
    std::cerr << "warning: the last results snapshot was not written: " << error.what() << "\n";
  }
}

void ResultsFile::write_header(const ResultsHeader& header) {
  write_string_attribute(file_, path_, "schema", "mops-results/1");
  write_string_attribute(file_, path_, "config", header.config_json);
  write_string_attribute(file_, path_, "method", header.method);
  write_string_attribute(file_, path_, "mode", header.mode);
  write_string_attribute(file_, path_, "held_out_split", header.held_out);
  write_scalar_attribute<uint64_t>(file_, path_, "seed", header.seed);
  write_string_attribute(file_, path_, "git_commit", source_git_commit());

  std::vector<const char*> names;  // (T)
  for (const auto& task : header.tasks) names.push_back(task.c_str());
  const Id type = utf8_string_type(path_);
  const Id tasks = checked(H5Dcreate2(file_, "/tasks", type, simple_space({names.size()}, {}, path_),
                                      H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                           H5Dclose, path_, "create dataset '/tasks'");
  check(H5Dwrite(tasks, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, names.data()), path_,
        "write dataset '/tasks'");

  const int64_t shape[2] = {header.experts, header.prompts_per_expert};  // [E, P]
  const Id experts =
      checked(H5Dcreate2(file_, "/experts", H5T_NATIVE_INT64, simple_space({2}, {}, path_),
                         H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
              H5Dclose, path_, "create dataset '/experts'");
  check(H5Dwrite(experts, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, shape), path_,
        "write dataset '/experts'");
  write_scalar_attribute<int64_t>(experts, path_, "E", shape[0]);
  write_scalar_attribute<int64_t>(experts, path_, "P", shape[1]);
}

void ResultsFile::create_empty_series() {
  const hsize_t T = tasks_, E = experts_, A = clients_;
  create_series<int64_t>(file_, path_, "/train/step", {});
  create_series<double>(file_, path_, "/train/loss", {});
  create_series<int64_t>(file_, path_, "/eval/step", {});
  create_series<double>(file_, path_, "/eval/ppl", {T});
  create_series<double>(file_, path_, "/eval/ppl_all", {});
  if (has_gate_) {
    create_series<double>(file_, path_, "/gate/by_task", {T, E});
    create_series<double>(file_, path_, "/gate/entropy", {T});
    create_series<double>(file_, path_, "/gate/experts_used", {T});
  }
  if (clients_ == 0) {
    if (has_gate_) {
      create_series<double>(file_, path_, "/train/gate_load", {E});
      create_series<double>(file_, path_, "/train/gate_entropy", {});
    }
    return;
  }
  create_series<int64_t>(file_, path_, "/fed/round", {});
  create_series<double>(file_, path_, "/fed/ppl", {T});
  create_series<int64_t>(file_, path_, "/fed/clients", {A});
  if (has_gate_) create_series<double>(file_, path_, "/fed/client_gate", {A, E});
  create_series<int64_t>(file_, path_, "/fed/client_examples", {A});
  create_series<double>(file_, path_, "/fed/client_loss", {A});
  create_series<double>(file_, path_, "/fed/bytes_reduced", {});
  create_series<double>(file_, path_, "/fed/round_seconds", {});
  create_series<double>(file_, path_, "/fed/comm_seconds", {});
  create_series<double>(file_, path_, "/fed/wait_seconds", {});
}

void ResultsFile::append_train(int64_t step, double loss, const GateStep& gate) {
  check_open("append_train");
  const bool gate_rows = has_gate_ && clients_ == 0;
  check_size(path_, "append_train: gate load", gate.load.size(), gate_rows ? size_t(experts_) : 0,
             gate_rows ? "one per expert" : "no gate rows in this file");
  append_row(file_, path_, "/train/step", &step);
  append_row(file_, path_, "/train/loss", &loss);
  if (gate_rows) {
    append_row(file_, path_, "/train/gate_load", gate.load.data());
    append_row(file_, path_, "/train/gate_entropy", &gate.entropy);
  }
  train_pending_ = true;
  if (std::chrono::steady_clock::now() - last_snapshot_ >= kTrainSnapshotInterval)
    write_snapshot();
}

void ResultsFile::append_eval(int64_t step, const std::vector<double>& ppl_per_task,
                              double ppl_all, const GateEvaluation& gate) {
  check_open("append_eval");
  check_size(path_, "append_eval: ppl_per_task", ppl_per_task.size(), tasks_, "one per task");
  const char* absent = "no gate for this method";
  check_size(path_, "append_eval: gate_by_task", gate.by_task.size(), has_gate_ ? size_t(tasks_) * experts_ : 0,
             has_gate_ ? "tasks x experts" : absent);
  check_size(path_, "append_eval: gate entropy", gate.entropy.size(), has_gate_ ? size_t(tasks_) : 0,
             has_gate_ ? "one per task" : absent);
  check_size(path_, "append_eval: experts used", gate.experts_used.size(), has_gate_ ? size_t(tasks_) : 0,
             has_gate_ ? "one per task" : absent);
  append_row(file_, path_, "/eval/step", &step);
  append_row(file_, path_, "/eval/ppl", ppl_per_task.data());
  append_row(file_, path_, "/eval/ppl_all", &ppl_all);
  if (has_gate_) {
    append_row(file_, path_, "/gate/by_task", gate.by_task.data());
    append_row(file_, path_, "/gate/entropy", gate.entropy.data());
    append_row(file_, path_, "/gate/experts_used", gate.experts_used.data());
  }
  write_snapshot();
}

void ResultsFile::append_round(const RoundRecord& r) {
  check_open("append_round");
  MOPS_CHECK(clients_ > 0, path_ << ": append_round in a centralized run");
  check_size(path_, "append_round: ppl", r.ppl.size(), tasks_, "one per task");
  check_size(path_, "append_round: clients", r.clients.size(), clients_, "active clients");
  check_size(path_, "append_round: client_examples", r.client_examples.size(), clients_,
             "active clients");
  check_size(path_, "append_round: client_loss", r.client_loss.size(), clients_, "active clients");
  check_size(path_, "append_round: client_gate", r.client_gate.size(),
             has_gate_ ? size_t(clients_) * experts_ : 0,
             has_gate_ ? "active clients x experts" : "no gate for this method");
  append_row(file_, path_, "/fed/round", &r.round);
  append_row(file_, path_, "/fed/ppl", r.ppl.data());
  append_row(file_, path_, "/fed/clients", r.clients.data());
  if (has_gate_) append_row(file_, path_, "/fed/client_gate", r.client_gate.data());
  append_row(file_, path_, "/fed/client_examples", r.client_examples.data());
  append_row(file_, path_, "/fed/client_loss", r.client_loss.data());
  append_row(file_, path_, "/fed/bytes_reduced", &r.bytes_reduced);
  append_row(file_, path_, "/fed/round_seconds", &r.round_seconds);
  append_row(file_, path_, "/fed/comm_seconds", &r.comm_seconds);
  append_row(file_, path_, "/fed/wait_seconds", &r.wait_seconds);
  write_snapshot();
}

void ResultsFile::write_state(const std::string& name, const std::vector<float>& values,
                              const std::vector<int64_t>& shape) {
  check_open("write_state");
  write_array(file_, path_, "/state/", name, values, shape);
  write_snapshot();
}

void ResultsFile::write_table(const std::string& name, const std::vector<int64_t>& values,
                              const std::vector<int64_t>& shape) {
  check_open("write_table");
  MOPS_CHECK(clients_ > 0, path_ << ": write_table in a centralized run");
  write_array(file_, path_, "/fed/", name, values, shape);
  write_snapshot();
}

void ResultsFile::write_attribute(const std::string& name, const std::string& value) {
  check_open("write_attribute");
  for (const char* fixed : {"schema", "config", "method", "mode", "seed", "git_commit"})
    MOPS_CHECK(name != fixed, path_ << ": attribute '" << name
                                    << "' belongs to the schema and is written at creation");
  write_string_attribute(file_, path_, name, value);
  write_snapshot();
}

void ResultsFile::flush() {
  check_open("flush");
  write_snapshot();
}

void ResultsFile::close() {
  if (file_ < 0) return;
  try {
    if (train_pending_) write_snapshot();
  } catch (...) {
    H5Fclose(std::exchange(file_, -1));
    throw;
  }
  H5Fclose(std::exchange(file_, -1));
}

void ResultsFile::begin_batch() {
  check_open("begin_batch");
  batch_open_ = true;
}

void ResultsFile::end_batch() {
  check_open("end_batch");
  batch_open_ = false;
  write_snapshot();
}

void ResultsFile::write_snapshot() {
  if (batch_open_) return;  // end_batch() writes it
  check(H5Fflush(file_, H5F_SCOPE_LOCAL), path_, "flush the in-memory file");
  const ssize_t size = H5Fget_file_image(file_, nullptr, 0);
  check(size, path_, "measure the file image");
  image_.resize(static_cast<size_t>(size));
  check(H5Fget_file_image(file_, image_.data(), image_.size()), path_, "copy the file image");
  write_file_atomically(path_, image_.data(), image_.size());
  train_pending_ = false;
  last_snapshot_ = std::chrono::steady_clock::now();
}

void ResultsFile::check_open(const char* method) const {
  MOPS_CHECK(file_ >= 0, path_ << ": " << method << " after close()");
}

namespace {

Id open_for_reading(const std::string& path) {
  quiet_hdf5();
  return checked(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, path,
                 "open the file");
}

// Dataset NAME converted to T, row-major; its dims go to SHAPE when given.
template <typename T>
std::vector<T> read_array(const std::string& path, const std::string& name,
                          std::vector<int64_t>* shape) {
  const Id file = open_for_reading(path);
  const Id dataset = checked(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, path,
                             "open dataset '" + name + "'");
  const auto dims = dims_of(checked(H5Dget_space(dataset), H5Sclose, path, "get a space"));
  size_t count = 1;
  for (hsize_t d : dims) count *= d;
  std::vector<T> values(count);
  if (count > 0)
    check(H5Dread(dataset, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), path,
          "read dataset '" + name + "'");
  if (shape) shape->assign(dims.begin(), dims.end());
  return values;
}

}  // namespace

std::vector<float> read_state(const std::string& path, const std::string& name,
                              std::vector<int64_t>* shape) {
  return read_array<float>(path, "/state/" + name, shape);
}

std::vector<double> read_dataset(const std::string& path, const std::string& name,
                                 std::vector<int64_t>* shape) {
  return read_array<double>(path, name, shape);
}

std::vector<std::string> read_strings(const std::string& path, const std::string& name) {
  const Id file = open_for_reading(path);
  const Id dataset = checked(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, path,
                             "open dataset '" + name + "'");
  const auto dims = dims_of(checked(H5Dget_space(dataset), H5Sclose, path, "get a space"));
  MOPS_CHECK(dims.size() == 1, path << ": dataset '" << name << "' is not a 1-D string list");
  std::vector<char*> texts(dims[0]);
  const Id type = utf8_string_type(path);
  check(H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, texts.data()), path,
        "read dataset '" + name + "' as strings");
  std::vector<std::string> strings;
  for (char* text : texts) {
    strings.emplace_back(text ? text : "");
    H5free_memory(text);
  }
  return strings;
}

std::string read_string_attribute(const std::string& path, const std::string& name) {
  const Id file = open_for_reading(path);
  const Id attribute = checked(H5Aopen(file, name.c_str(), H5P_DEFAULT), H5Aclose, path,
                               "open attribute '" + name + "'");
  const Id type = utf8_string_type(path);
  char* text = nullptr;
  check(H5Aread(attribute, type, &text), path, "read attribute '" + name + "' as a string");
  std::string value = text ? text : "";
  H5free_memory(text);
  return value;
}

}  // namespace mops
