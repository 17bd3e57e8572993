// hyplora/nn/linear.hpp — the dense layer z = x·Wᵀ + b in PyTorch layout.
//   x: (N, D_in)  weight: (D_out, D_in)  bias: (1, D_out)  z: (N, D_out)
#pragma once

#include <cstdint>
#include <string>

#include "hyplora/autodiff/ops_linear.hpp"
#include "hyplora/autodiff/parameters.hpp"
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/nn/init.hpp"

namespace hyplora::nn {

template <class T>
class Linear {
 public:
  /// Registers "<name>.weight" (D_out, D_in) and, with `bias`, "<name>.bias" (1, D_out), both
  /// zero; call init_kaiming_uniform (or write the store) to initialise.
  Linear(ad::ParameterStore<T>& store, const std::string& name, Index in, Index out, bool bias = true,
         bool trainable = true)
      : name_(name), in_(in), out_(out) {
    if (in <= 0 || out <= 0)
      throw value_error("Linear '" + name + "': in and out features must be > 0, got in " + std::to_string(in) +
                        ", out " + std::to_string(out));
    weight_ = store.add(name + ".weight", out, in, trainable);
    if (bias) bias_ = store.add(name + ".bias", 1, out, trainable);
  }

  /// As torch.nn.Linear.reset_parameters: W ~ kaiming_uniform(a = √5) = U(±1/√D_in),
  /// b ~ U(±1/√D_in); the bias uses a stream derived from `seed`.
  void init_kaiming_uniform(ad::ParameterStore<T>& store, std::uint64_t seed) {
    kaiming_uniform_(store.value(weight_), seed);
    if (bias_.valid()) {
      const double b = 1.0 / std::sqrt(static_cast<double>(in_));
      uniform_(store.value(bias_), -b, b, SplitMix64(seed ^ 0xB1A5B1A5B1A5B1A5ull).next());
    }
  }

  /// z = x·Wᵀ + b (one fused node, ops_linear.hpp). x: (N, D_in) → (N, D_out).
  ad::Var<T> forward(ad::Tape<T>& tape, ad::ParameterStore<T>& store, ad::Var<T> x) const {
    if (x.cols() != in_) throw_shape("Linear '" + name_ + "'", "x", x.rows(), x.cols(), "weight", out_, in_);
    const ad::Var<T> W = tape.param(store, weight_);
    return bias_.valid() ? ad::linear(x, W, tape.param(store, bias_)) : ad::linear(x, W);
  }

  ad::Parameter weight() const { return weight_; }
  ad::Parameter bias() const { return bias_; }  // bias().valid() == false when none
  Index in_features() const { return in_; }
  Index out_features() const { return out_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  Index in_ = 0, out_ = 0;
  ad::Parameter weight_, bias_;
};

}  // namespace hyplora::nn
