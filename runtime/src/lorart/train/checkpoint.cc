#include "lorart/train/checkpoint.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "lorart/io/files.h"
#include "lorart/io/json.h"
#include "lorart/io/mapped_file.h"
#include "lorart/io/peft_adapter.h"
#include "lorart/io/safetensors.h"
#include "lorart/io/safetensors_write.h"

namespace lorart {

namespace {

Status WriteCheckpointFiles(const Session& session, const TrainerState& s, uint64_t seed,
                            const data::Batcher& batcher, const std::string& base_model,
                            const std::string& tmp, const std::string& dir) {
  LORA_RETURN_IF_ERROR(RemoveTree(tmp));
  LORA_RETURN_IF_ERROR(MakeDirs(tmp));
  std::vector<TensorToWrite> tensors;
  LORA_ASSIGN_OR_RETURN(std::vector<Session::StateTensor> state_tensors, session.State());
  for (const Session::StateTensor& t : state_tensors)
    tensors.push_back({t.name, SafetensorsDType(t.dtype), t.shape, t.data});
  LORA_RETURN_IF_ERROR(WriteSafetensors(tmp + "/state.safetensors", tensors));
  Json state = {{"step", s.step},
                {"skipped", s.skipped},
                {"loss_mean", s.loss_mean},
                {"loss_count", s.loss_count},
                {"best_eval", s.best_eval},
                {"have_best", s.have_best},
                {"evals_without_improvement", s.evals_without_improvement},
                {"seed", seed},
                {"data", batcher.SaveState()}};
  LORA_RETURN_IF_ERROR(WriteFileAtomically(tmp + "/trainer.json", state.dump(2) + "\n"));
  if (session.plan().lora())
    LORA_RETURN_IF_ERROR(SaveAdapter(session, tmp, base_model));
  LORA_RETURN_IF_ERROR(RemoveTree(dir));
  if (std::rename(tmp.c_str(), dir.c_str()) != 0)
    return UnavailableError(StrFormat("%s: cannot rename to %s: %s", tmp.c_str(), dir.c_str(),
                                      std::strerror(errno)));
  return OkStatus();
}

}  // namespace

Status SaveCheckpoint(const Session& session, const TrainerState& state, uint64_t seed,
                      const data::Batcher& batcher, const std::string& base_model,
                      const std::string& dir) {
  // Written into a temporary directory renamed into place: a checkpoint is
  // either complete or absent (a failed one, e.g. on a full disk, is removed).
  std::string tmp = dir + ".tmp";
  Status st = WriteCheckpointFiles(session, state, seed, batcher, base_model, tmp, dir);
  if (!st.ok()) (void)RemoveTree(tmp);
  return st;
}

Status LoadCheckpoint(const std::string& dir, uint64_t seed, Session* session,
                      TrainerState* s, data::Batcher* batcher) {
  std::ifstream in(dir + "/trainer.json");
  if (!in) return NotFoundError(dir + "/trainer.json: no such checkpoint");
  std::stringstream ss;
  ss << in.rdbuf();
  Json state;
  LORA_RETURN_IF_ERROR(ParseJson(ss.str(), dir + "/trainer.json", "checkpoint", &state));
  if (state.value("seed", uint64_t{0}) != seed)
    return InvalidArgumentError(StrFormat("%s: the checkpoint was made with --seed %llu, this "
                                          "run has --seed %llu",
                                          dir.c_str(),
                                          static_cast<unsigned long long>(state.value("seed", uint64_t{0})),
                                          static_cast<unsigned long long>(seed)));
  std::string path = dir + "/state.safetensors";
  SafetensorsHeader header;
  LORA_RETURN_IF_ERROR(ReadSafetensorsHeader(path, &header));
  MappedFile file;
  LORA_RETURN_IF_ERROR(file.Open(path));
  LORA_ASSIGN_OR_RETURN(std::vector<Session::StateTensor> state_tensors, session->State());
  for (const Session::StateTensor& t : state_tensors) {
    const TensorInfo* info = header.Find(t.name);
    if (!info)
      return NotFoundError(StrFormat("%s: no tensor '%s': the checkpoint belongs to another plan",
                                     path.c_str(), t.name.c_str()));
    if (info->end - info->begin != t.bytes)
      return InvalidArgumentError(StrFormat("%s: tensor '%s' has %llu bytes, the plan needs %llu",
                                            path.c_str(), t.name.c_str(),
                                            static_cast<unsigned long long>(info->end - info->begin),
                                            static_cast<unsigned long long>(t.bytes)));
    LORA_RETURN_IF_ERROR(session->SetState(t.name, file.data() + header.DataOffset() + info->begin,
                                           t.bytes));
  }
  s->step = state.value("step", int64_t{0});
  s->skipped = state.value("skipped", int64_t{0});
  s->loss_mean = state.value("loss_mean", 0.0);
  s->loss_count = state.value("loss_count", int64_t{0});
  s->best_eval = state.value("best_eval", 0.0);
  s->have_best = state.value("have_best", false);
  s->evals_without_improvement = state.value("evals_without_improvement", int64_t{0});
  if (!state.contains("data")) return InvalidArgumentError(dir + "/trainer.json: no data state");
  return batcher->RestoreState(state["data"]);
}

}  // namespace lorart
