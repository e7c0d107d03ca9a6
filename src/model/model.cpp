// Model loading: metadata -> Hparams -> the architecture's Decoder, and the RoPE table.
#include "model/model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "model/architectures.h"
#include "model/decoder.h"

namespace strata::model {

Result<std::unique_ptr<Model>> Model::load(const std::string& path, backend::Backend& backend) {
  STRATA_ASSIGN_OR_RETURN(auto file, gguf::File::open(path));
  return from_file(std::move(file), backend);
}

Result<std::unique_ptr<Model>> Model::from_file(std::unique_ptr<gguf::File> file, backend::Backend& backend) {
  STRATA_ASSIGN_OR_RETURN(Hparams hp, read_hparams(*file));
  std::unique_ptr<Decoder> m;
  if (hp.arch == "llama") m = make_llama();
  else if (hp.arch == "qwen2") m = make_qwen2();
  else if (hp.arch == "qwen3") m = make_qwen3();
  else if (hp.arch == "qwen3moe") m = make_qwen3moe();
  else if (hp.arch == "qwen35" || hp.arch == "qwen35moe") m = make_qwen35();
  else return error(ErrorCode::kUnsupported, fmt::format("architecture '{}' is not supported", hp.arch));
  STRATA_RETURN_IF_ERROR(m->bind(std::move(file), hp, backend));
  return std::unique_ptr<Model>(std::move(m));
}

// Frequencies per rotated pair. Scaling variants follow their papers / reference configs:
// linear divides every frequency; Llama 3 divides low frequencies by `factor`, keeps high
// ones and blends between; YaRN blends interpolation and extrapolation by a ramp over the
// pair index and scales cos/sin by 0.1 ln(factor) + 1.
backend::RopeTable make_rope_table(const Hparams& hp) {
  backend::RopeTable t;
  t.mode = hp.rope_neox ? backend::RopeTable::Mode::kNeox : backend::RopeTable::Mode::kNormal;
  t.n_rot = static_cast<int>(hp.rope_dim);
  const int half = t.n_rot / 2;
  t.freqs.resize(static_cast<size_t>(half));
  const double base = hp.rope_freq_base;
  const auto& rs = hp.rope_scaling;
  const double factor = rs.factor > 0 ? rs.factor : 1.0;
  for (int i = 0; i < half; ++i) {
    double f = std::pow(base, -2.0 * i / t.n_rot);
    switch (rs.type) {
      case RopeScaling::Type::kNone: break;
      case RopeScaling::Type::kLinear: f /= factor; break;
      case RopeScaling::Type::kLlama3: {
        const double orig = static_cast<double>(rs.original_context);
        const double low_wavelen = orig / rs.low_freq_factor;
        const double high_wavelen = orig / rs.high_freq_factor;
        const double wavelen = 2 * M_PI / f;
        if (wavelen > low_wavelen) f /= factor;
        else if (wavelen >= high_wavelen) {
          const double smooth = (orig / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
          f = (1 - smooth) * f / factor + smooth * f;
        }
        break;
      }
      case RopeScaling::Type::kYarn: {
        const double orig = static_cast<double>(rs.original_context);
        auto corr_dim = [&](double rotations) {
          return t.n_rot * std::log(orig / (rotations * 2 * M_PI)) / (2 * std::log(base));
        };
        const double low = std::max(0.0, std::floor(corr_dim(rs.yarn_beta_fast)));
        double high = std::min(static_cast<double>(t.n_rot - 1), std::ceil(corr_dim(rs.yarn_beta_slow)));
        if (high == low) high += 0.001;
        const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
        const double extrapolation_weight = 1.0 - ramp;
        f = (f / factor) * (1 - extrapolation_weight) + f * extrapolation_weight;
        break;
      }
    }
    t.freqs[static_cast<size_t>(i)] = static_cast<float>(f);
  }
  if (rs.type == RopeScaling::Type::kYarn) t.mscale = static_cast<float>(0.1 * std::log(factor) + 1.0);
  return t;
}

}  // namespace strata::model
