#include "lorart/io/hf_model.h"

#include <vector>

#include "lorart/cpu/kernel.h"
#include "lorart/io/files.h"
#include "lorart/io/mapped_file.h"
#include "lorart/io/safetensors_write.h"

namespace lorart {

using cpu::TensorView;
using schema::Role;

Status SaveModel(const Session& session, const std::string& dir, const std::string& base_dir) {
  const Plan& plan = session.plan();
  LORA_RETURN_IF_ERROR(session.SyncHost());
  LORA_RETURN_IF_ERROR(MakeDirs(dir));
  std::vector<TensorToWrite> tensors;
  for (uint32_t id = 0; id < plan.num_tensors(); ++id) {
    const schema::Tensor& t = plan.tensor(id);
    bool weight = t.role() == Role::Frozen || t.role() == Role::Trainable;
    if (!weight || t.init() != schema::TensorInit::Checkpoint) continue;
    std::string name = t.name()->str();
    // Frozen and trainable tensors are persistent and named (the plan
    // loader checks).
    const TensorView* v = session.FindPersistent(name);
    if (!v) return InternalError(StrFormat("weight '%s' is not bound", name.c_str()));
    TensorToWrite w;
    w.name = name;
    w.shape = v->shape;
    const TensorView* master = session.FindMaster(name);
    if (master) {
      w.dtype = lorart::DType::kF32;
      w.data = master->data;
    } else if (v->dtype == schema::DType::NF4) {
      return InvalidArgumentError(StrFormat("tensor '%s' is NF4-quantized: a quantized base is "
                                            "not saved (merge an adapter into the original "
                                            "weights instead)",
                                            name.c_str()));
    } else {
      w.dtype = SafetensorsDType(v->dtype);
      w.data = v->data;
    }
    tensors.push_back(w);
  }
  LORA_RETURN_IF_ERROR(WriteSafetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}}));
  // The files a Hugging Face model directory keeps beside its weights (the
  // tokenizer, its config and the chat template), where the base has them.
  for (const char* file : {"config.json", "generation_config.json", "tokenizer.model",
                           "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "added_tokens.json", "chat_template.jinja"}) {
    MappedFile in;
    std::string src = base_dir + "/" + file;
    if (!PathExists(src) || !in.Open(src).ok()) continue;
    LORA_RETURN_IF_ERROR(WriteFileAtomically(dir + "/" + file, std::string(in.view())));
  }
  return OkStatus();
}

}  // namespace lorart
