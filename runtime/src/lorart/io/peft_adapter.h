// PEFT LoRA adapter directories of a Session: DIR/adapter_model.safetensors
// (the trainable tensors under PEFT's names, written from their float32
// master copies) and DIR/adapter_config.json. Built on Session's public API
// (plan, SyncHost, FindPersistent, FindMaster, SetTrainable).
//
// Layering: these units (and lorart/io/hf_model.h) are file formats, so they
// live in io/, but unlike the rest of io/ (library lorart_io, below the
// executor) they read and write a Session: they form the CMake library
// lorart_io_model, which links lorart_exec.
#ifndef LORART_IO_PEFT_ADAPTER_H_
#define LORART_IO_PEFT_ADAPTER_H_

#include <map>
#include <string>

#include "lorart/base/status.h"
#include "lorart/exec/session.h"
#include "lorart/plan/plan.h"

namespace lorart {

// Loads adapter weights from a PEFT adapter directory
// (adapter_model.safetensors) into the session's trainable tensors; their
// master copies follow. Errors name the file and the tensor.
Status LoadAdapter(Session* session, const std::string& dir);

// Writes the trainable tensors (their float32 master copies) in PEFT's
// layout: DIR/adapter_model.safetensors and DIR/adapter_config.json, each
// atomically. `base_model` is recorded as base_model_name_or_path. On CUDA
// the host copies are brought up to date first.
Status SaveAdapter(const Session& session, const std::string& dir,
                   const std::string& base_model);

// The safetensors metadata of a saved adapter: {"format": "pt"}, and for a
// plan with an NF4 base "lorac.base_quantization" = "nf4",
// "lorac.nf4_block_size", "lorac.nf4_double_quant_block" and
// "lorac.nf4_tensors" (the quantized base tensors, comma-separated).
std::map<std::string, std::string> AdapterMetadata(const Plan& plan);

}  // namespace lorart

#endif  // LORART_IO_PEFT_ADAPTER_H_
