#include "lorart/train/fisher.h"

#include <algorithm>
#include <map>
#include <vector>

#include "lorart/io/safetensors_write.h"
#include "lorart/train/trainer.h"

namespace lorart {

Status EstimateFisher(Session* session, data::Dataset* dataset, int64_t max_batches,
                      const std::string& out_path, std::ostream* log) {
  // The linear layers' weights whose gradients the plan computes.
  std::vector<std::string> names;
  std::map<std::string, std::vector<int64_t>> shapes;
  {
    LORA_ASSIGN_OR_RETURN(std::vector<Session::StateTensor> state, session->State());
    for (const Session::StateTensor& t : state) {
      if (t.role != schema::Role::Gradient || t.shape.size() != 2) continue;
      const std::string& w = t.of;
      // A base model's linear layer (not an adapter's A or B).
      if (w.find("layers.") == std::string::npos || w.find(".lora_") != std::string::npos ||
          w.rfind("base_model.", 0) == 0 || w.size() < 7 ||
          w.compare(w.size() - 7, 7, ".weight") != 0)
        continue;
      names.push_back(w);
      shapes[w] = t.shape;
    }
  }
  if (names.empty())
    return InvalidArgumentError(session->plan().path() + ": the plan computes no gradient of the "
                                                         "linear layers' weights: compile it with "
                                                         "--no-lora --train full");
  int64_t batches = dataset->batches_per_epoch();
  if (max_batches > 0) batches = std::min(batches, max_batches);
  std::map<std::string, std::vector<double>> fisher;
  for (const std::string& n : names)
    fisher[n].assign(static_cast<size_t>(shapes[n][0] * shapes[n][1]), 0.0);
  data::Batch batch;
  int64_t used = 0, tokens = 0;
  for (int64_t i = 0; i < batches; ++i) {
    LORA_RETURN_IF_ERROR(dataset->GetBatch(0, i, &batch));
    LORA_RETURN_IF_ERROR(session->ZeroGradients());
    LORA_RETURN_IF_ERROR(FeedBatch(session, programs::kTrainStep, batch));
    LORA_RETURN_IF_ERROR(session->Run(programs::kTrainStep, 0), "fisher batch %lld",
                         static_cast<long long>(i));
    LORA_ASSIGN_OR_RETURN(double count,
                          session->GetScalar(programs::kTrainStep, OutputPort::Count));
    if (count <= 0) continue;
    LORA_ASSIGN_OR_RETURN(std::vector<Session::StateTensor> state, session->State());
    for (const Session::StateTensor& t : state) {
      if (t.role != schema::Role::Gradient) continue;
      auto it = fisher.find(t.of);
      if (it == fisher.end()) continue;
      const float* g = reinterpret_cast<const float*>(t.data);
      for (size_t e = 0; e < it->second.size(); ++e) {
        double d = double(g[e]) / count;  // the gradient of the batch's mean loss
        it->second[e] += d * d;
      }
    }
    ++used;
    tokens += static_cast<int64_t>(count);
  }
  if (used == 0) return InvalidArgumentError("the reference data has no target tokens");
  std::vector<std::vector<float>> data;
  std::vector<TensorToWrite> tensors;
  double total = 0;
  size_t elements = 0;
  for (const std::string& n : names) {
    std::vector<float> f(fisher[n].size());
    for (size_t e = 0; e < f.size(); ++e) {
      f[e] = static_cast<float>(fisher[n][e] / double(used));
      total += f[e];
    }
    elements += f.size();
    data.push_back(std::move(f));
    tensors.push_back({n, DType::kF32, shapes[n], data.back().data()});
  }
  LORA_RETURN_IF_ERROR(WriteSafetensors(out_path, tensors,
                                        {{"format", "pt"},
                                         {"lorac.fisher_batches", std::to_string(used)},
                                         {"lorac.fisher_tokens", std::to_string(tokens)},
                                         {"lorac.fisher_data", dataset->stats().path}}));
  *log << StrFormat("fisher: %zu weights from %lld batches (%lld target tokens of %s), mean %.4g; "
                    "wrote %s\n",
                    names.size(), static_cast<long long>(used), static_cast<long long>(tokens),
                    dataset->stats().path.c_str(), total / double(std::max<size_t>(1, elements)),
                    out_path.c_str());
  return OkStatus();
}

}  // namespace lorart
