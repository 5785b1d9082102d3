#include "lorart/train/checkpoint.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <type_traits>
#include <vector>

#include "lorart/base/checksum.h"
#include "lorart/base/strings.h"
#include "lorart/io/files.h"
#include "lorart/io/json.h"
#include "lorart/io/mapped_file.h"
#include "lorart/io/peft_adapter.h"
#include "lorart/io/safetensors.h"
#include "lorart/io/safetensors_write.h"

namespace lorart {

namespace {

constexpr char kChecksums[] = "checksums.json";

// XXH3-64 and size of one file.
Status HashFile(const std::string& path, uint64_t* sum, uint64_t* bytes) {
  MappedFile f;
  LORA_RETURN_IF_ERROR(f.Open(path));
  *bytes = f.size();
  *sum = Checksum(f.data(), f.size());
  return OkStatus();
}

// checksums.json: the size and XXH3-64 of every other file of the
// checkpoint, so that a changed byte anywhere is found on resume.
Status WriteChecksums(const std::string& tmp) {
  std::vector<std::string> names;
  DIR* d = opendir(tmp.c_str());
  if (!d) return UnavailableError(tmp + ": cannot list: " + std::strerror(errno));
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n == "." || n == ".." || n == kChecksums) continue;
    struct stat st;
    if (::stat((tmp + "/" + n).c_str(), &st) == 0 && S_ISREG(st.st_mode)) names.push_back(n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  Json files = Json::object();
  for (const std::string& n : names) {
    uint64_t sum = 0, bytes = 0;
    LORA_RETURN_IF_ERROR(HashFile(tmp + "/" + n, &sum, &bytes));
    files[n] = {{"bytes", bytes}, {"xxh3", ChecksumHex(sum)}};
  }
  Json doc = {{"format", "xxh3-64"}, {"files", files}};
  return WriteFileAtomically(tmp + "/" + kChecksums, doc.dump(2) + "\n");
}

// Checks every file checksums.json lists (and that it lists the state and
// the trainer's JSON) before anything of the checkpoint is read.
Status VerifyChecksums(const std::string& dir) {
  const std::string path = dir + "/" + kChecksums;
  if (!PathExists(path))
    return DataLossError(path +
                         ": missing: the checkpoint cannot be verified (incomplete, or "
                         "written by a lorart before checkpoints carried checksums)");
  LORA_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  Json doc;
  LORA_RETURN_IF_ERROR(ParseJson(text, path, "checksum list", &doc));
  if (!doc.is_object() || doc.value("format", Json()) != "xxh3-64" || !doc.contains("files") ||
      !doc["files"].is_object())
    return DataLossError(path + ": corrupt: expected {\"format\": \"xxh3-64\", \"files\": {...}}");
  const Json& files = doc["files"];
  for (const char* required : {"state.safetensors", "trainer.json"})
    if (!files.contains(required))
      return DataLossError(StrFormat("%s: corrupt: it does not list %s", path.c_str(), required));
  for (const auto& [name, entry] : files.items()) {
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." ||
        !entry.is_object() || !entry.contains("bytes") || !entry["bytes"].is_number_unsigned() ||
        !entry.contains("xxh3") || !entry["xxh3"].is_string())
      return DataLossError(path + ": corrupt: a bad entry for " + Quote(name));
    const std::string file = dir + "/" + name;
    if (!PathExists(file))
      return DataLossError(file + ": missing from the checkpoint (checksums.json lists it)");
    uint64_t sum = 0, bytes = 0;
    LORA_RETURN_IF_ERROR(HashFile(file, &sum, &bytes));
    if (bytes != entry["bytes"].get<uint64_t>() ||
        ChecksumHex(sum) != entry["xxh3"].get<std::string>())
      return DataLossError(StrFormat(
          "%s: corrupt checkpoint file: %llu bytes with XXH3-64 %s, but checksums.json says %llu "
          "bytes with %s (the file changed after it was written); resume from another checkpoint",
          file.c_str(), static_cast<unsigned long long>(bytes), ChecksumHex(sum).c_str(),
          static_cast<unsigned long long>(entry["bytes"].get<uint64_t>()),
          entry["xxh3"].get<std::string>().c_str()));
  }
  return OkStatus();
}

// A field of trainer.json of the expected JSON type.
template <typename T>
Status Field(const Json& state, const std::string& path, const char* key, T* out) {
  if (!state.contains(key)) return DataLossError(path + ": field '" + key + "' is missing");
  const Json& v = state[key];
  bool ok = false;
  if constexpr (std::is_same_v<T, bool>)
    ok = v.is_boolean();
  else if constexpr (std::is_floating_point_v<T>)
    ok = v.is_number();
  else if constexpr (std::is_unsigned_v<T>)
    ok = v.is_number_unsigned();
  else
    ok = v.is_number_integer();
  if (!ok)
    return DataLossError(path + ": field '" + key + "' has the wrong type: " + JsonSnippet(v));
  *out = v.get<T>();
  return OkStatus();
}

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
  LORA_RETURN_IF_ERROR(WriteChecksums(tmp));
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
  const std::string json_path = dir + "/trainer.json";
  if (!PathExists(json_path)) return NotFoundError(json_path + ": no such checkpoint");
  LORA_RETURN_IF_ERROR(VerifyChecksums(dir));
  LORA_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(json_path));
  Json state;
  LORA_RETURN_IF_ERROR(ParseJson(text, json_path, "checkpoint", &state));
  if (!state.is_object()) return DataLossError(json_path + ": not a JSON object");
  uint64_t saved_seed = 0;
  LORA_RETURN_IF_ERROR(Field(state, json_path, "seed", &saved_seed));
  if (saved_seed != seed)
    return InvalidArgumentError(
        StrFormat("%s: the checkpoint was made with --seed %llu, this "
                  "run has --seed %llu",
                  dir.c_str(), static_cast<unsigned long long>(saved_seed),
                  static_cast<unsigned long long>(seed)));
  TrainerState loaded;
  LORA_RETURN_IF_ERROR(Field(state, json_path, "step", &loaded.step));
  LORA_RETURN_IF_ERROR(Field(state, json_path, "skipped", &loaded.skipped));
  LORA_RETURN_IF_ERROR(Field(state, json_path, "loss_mean", &loaded.loss_mean));
  LORA_RETURN_IF_ERROR(Field(state, json_path, "loss_count", &loaded.loss_count));
  LORA_RETURN_IF_ERROR(Field(state, json_path, "best_eval", &loaded.best_eval));
  LORA_RETURN_IF_ERROR(Field(state, json_path, "have_best", &loaded.have_best));
  LORA_RETURN_IF_ERROR(
      Field(state, json_path, "evals_without_improvement", &loaded.evals_without_improvement));
  if (loaded.step < 0 || loaded.skipped < 0 || loaded.loss_count < 0)
    return DataLossError(json_path + ": negative step or counts");
  if (!state.contains("data")) return InvalidArgumentError(json_path + ": no data state");

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
  s->step = loaded.step;
  s->skipped = loaded.skipped;
  s->loss_mean = loaded.loss_mean;
  s->loss_count = loaded.loss_count;
  s->best_eval = loaded.best_eval;
  s->have_best = loaded.have_best;
  s->evals_without_improvement = loaded.evals_without_improvement;
  return batcher->RestoreState(state["data"]);
}

}  // namespace lorart
