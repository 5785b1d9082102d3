// Full fine-tuning's output: a Session's model as a Hugging Face model
// directory. Built on Session's public API (plan, SyncHost, FindPersistent,
// FindMaster); part of the library lorart_io_model, which links lorart_exec
// (see lorart/io/peft_adapter.h).
#ifndef LORART_IO_HF_MODEL_H_
#define LORART_IO_HF_MODEL_H_

#include <string>

#include "lorart/base/status.h"
#include "lorart/exec/session.h"

namespace lorart {

// Writes the model's weights (trainable ones from their float32 master
// copies) as a Hugging Face model directory: DIR/model.safetensors, with
// config.json and the tokenizer files copied from `base_dir` where it has
// them. Each file is written atomically. An NF4-quantized base is not saved
// (an error). On CUDA the host copies are brought up to date first.
Status SaveModel(const Session& session, const std::string& dir, const std::string& base_dir);

}  // namespace lorart

#endif  // LORART_IO_HF_MODEL_H_
