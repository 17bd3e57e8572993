// examples/transformer/checkpoint.hpp — model + optimizer + step + RNG state as one safetensors
// file, written atomically (temporary file + rename, io/atomic_file.hpp).
//
// Layout: "model.<parameter name>" in the store's own precision (F32 for float, F64 for double,
// so a round trip is bitwise); "optim.exp_avg" / "optim.exp_avg_sq" [n] (AdamW's packed arenas,
// slot order), "optim.step_counts" I64; metadata "step", "data_seed" (the data order is a pure
// function of them, see train.hpp: that is the whole RNG state) and any caller-given strings.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "hyplora/autodiff/parameters.hpp"
#include "hyplora/io/safetensors.hpp"
#include "hyplora/optim/adamw.hpp"

namespace hyplora::examples {

template <class T>
constexpr io::Dtype dtype_of() {
  return std::is_same_v<T, double> ? io::Dtype::F64 : io::Dtype::F32;
}

namespace detail {
template <class T>
void add_vector(io::SafetensorsWriter& w, const std::string& name, const std::vector<T>& v) {
  const Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> m(v.data(), static_cast<Index>(v.size()));
  w.add(name, m, dtype_of<T>(), std::vector<std::int64_t>{static_cast<std::int64_t>(v.size())});
}

template <class T>
void load_vector(const io::SafetensorsFile& f, const std::string& name, std::vector<T>& v) {
  const MatrixR<T> m = f.matrix<T>(name);
  if (static_cast<std::size_t>(m.size()) != v.size())
    throw shape_error("checkpoint: '" + name + "' has " + std::to_string(m.size()) + " values, the optimizer " +
                      std::to_string(v.size()));
  std::copy(m.data(), m.data() + m.size(), v.begin());
}
}  // namespace detail

struct CheckpointState {
  std::int64_t step = 0;
  std::uint64_t data_seed = 0;
  std::map<std::string, std::string> meta;  // free-form (config, adapter kind, targets, …)
};

/// Writes every parameter (and, when `opt` is given, its state) to `path` atomically.
template <class T>
void save_checkpoint(const std::filesystem::path& path, const ad::ParameterStore<T>& store,
                     const optim::AdamW<T>* opt, const CheckpointState& st) {
  io::SafetensorsWriter w;
  for (int k = 0; k < store.count(); ++k) {
    const ad::Parameter p = store.at_index(k);
    w.add("model." + store.info(p).name, store.value(p), dtype_of<T>());
  }
  if (opt) {
    detail::add_vector(w, "optim.exp_avg", opt->exp_avg_arena());
    detail::add_vector(w, "optim.exp_avg_sq", opt->exp_avg_sq_arena());
    const auto& sc = opt->step_counts();
    std::vector<std::uint8_t> raw(sc.size() * 8);
    for (std::size_t i = 0; i < sc.size(); ++i)
      for (int b = 0; b < 8; ++b) raw[i * 8 + static_cast<std::size_t>(b)] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(sc[i]) >> (8 * b));
    w.add_raw("optim.step_counts", io::Dtype::I64, {static_cast<std::int64_t>(sc.size())}, std::move(raw));
  }
  for (const auto& kv : st.meta) w.set_metadata(kv.first, kv.second);
  w.set_metadata("step", std::to_string(st.step));
  w.set_metadata("data_seed", std::to_string(st.data_seed));
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  w.save(path);
}

/// Loads parameters by name. Parameters missing from the file are an io_error unless
/// `allow_missing` (fine-tuning a pretrained model: the adapters are new); a shape mismatch is a
/// shape_error naming both shapes. With `opt`, the optimizer state is restored too.
template <class T>
CheckpointState load_checkpoint(const std::filesystem::path& path, ad::ParameterStore<T>& store,
                                optim::AdamW<T>* opt = nullptr, bool allow_missing = false) {
  const io::SafetensorsFile f = io::SafetensorsFile::load(path);
  for (int k = 0; k < store.count(); ++k) {
    const ad::Parameter p = store.at_index(k);
    const auto& info = store.info(p);
    const std::string key = "model." + info.name;
    if (!f.contains(key)) {
      if (allow_missing) continue;
      throw io_error("checkpoint " + path.string() + ": no tensor '" + key + "'");
    }
    const MatrixR<T> m = f.matrix<T>(key);
    if (m.rows() != info.rows || m.cols() != info.cols)
      throw_shape("checkpoint " + path.string() + " '" + key + "'", "model", info.rows, info.cols, "file", m.rows(), m.cols());
    store.value(p) = m;
  }
  if (opt) {
    detail::load_vector(f, "optim.exp_avg", opt->exp_avg_arena());
    detail::load_vector(f, "optim.exp_avg_sq", opt->exp_avg_sq_arena());
    const auto raw = f.raw("optim.step_counts");
    auto& sc = opt->step_counts();
    if (raw.second != sc.size() * 8)
      throw shape_error("checkpoint: optim.step_counts has " + std::to_string(raw.second / 8) + " entries, the optimizer " +
                        std::to_string(sc.size()));
    for (std::size_t i = 0; i < sc.size(); ++i) {
      std::uint64_t v = 0;
      for (int b = 0; b < 8; ++b) v |= static_cast<std::uint64_t>(raw.first[i * 8 + static_cast<std::size_t>(b)]) << (8 * b);
      sc[i] = static_cast<std::int64_t>(v);
    }
  }
  CheckpointState st;
  st.meta = f.metadata();
  if (st.meta.count("step")) st.step = std::stoll(st.meta.at("step"));
  if (st.meta.count("data_seed")) st.data_seed = std::stoull(st.meta.at("data_seed"));
  return st;
}

}  // namespace hyplora::examples
