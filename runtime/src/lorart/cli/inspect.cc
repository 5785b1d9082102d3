// lorart inspect PATH: the tensors of a safetensors file or model directory.
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lorart/base/strings.h"
#include "lorart/cli/commands.h"
#include "lorart/io/safetensors.h"

namespace lorart {
namespace cli {
namespace {

struct InspectOptions {
  std::string path;
  bool json = false;
  std::string sort = "name";
};

struct Row {
  const TensorInfo* tensor;
  size_t shard;
};

std::string Base(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string WithCommas(uint64_t v) {
  std::string digits = std::to_string(v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

Status Load(const std::string& path, SafetensorsModel* model) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return OpenSafetensorsModelHeaders(path, model);
  }
  *model = SafetensorsModel();
  SafetensorsHeader header;
  LORA_RETURN_IF_ERROR(ReadSafetensorsHeader(path, &header));
  for (size_t i = 0; i < header.tensors.size(); ++i) {
    model->by_name[header.tensors[i].name] = {0, i};
  }
  model->shards.push_back(std::move(header));
  return OkStatus();
}

Status RunInspect(const InspectOptions& options, std::ostream& out) {
  SafetensorsModel model;
  LORA_RETURN_IF_ERROR(Load(options.path, &model));

  std::vector<Row> rows;
  uint64_t parameters = 0, bytes = 0;
  for (size_t s = 0; s < model.shards.size(); ++s) {
    for (const TensorInfo& t : model.shards[s].tensors) {
      rows.push_back({&t, s});
      parameters += static_cast<uint64_t>(t.NumElements());
      bytes += t.ByteSize();
    }
  }
  if (options.sort == "name") {
    std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      return NaturalLess(a.tensor->name, b.tensor->name);
    });
  }  // "offset": shard order, then offset order within a shard, as stored.

  if (options.json) {
    using OJson = nlohmann::ordered_json;
    OJson doc;
    doc["path"] = options.path;
    OJson shards = OJson::array();
    for (const SafetensorsHeader& h : model.shards) {
      OJson shard;
      shard["path"] = h.path;
      shard["file_size"] = h.file_size;
      shard["header_size"] = h.header_size;
      shard["tensors"] = h.tensors.size();
      shard["metadata"] = OJson::object();
      for (const auto& [k, v] : h.metadata) shard["metadata"][k] = v;
      shards.push_back(std::move(shard));
    }
    doc["shards"] = std::move(shards);
    OJson tensors = OJson::array();
    for (const Row& row : rows) {
      const TensorInfo& t = *row.tensor;
      OJson j;
      j["name"] = t.name;
      j["dtype"] = DTypeName(t.dtype);
      j["shape"] = t.shape;
      j["parameters"] = t.NumElements();
      j["bytes"] = t.ByteSize();
      j["shard"] = row.shard;
      j["data_offsets"] = {t.begin, t.end};
      tensors.push_back(std::move(j));
    }
    doc["tensors"] = std::move(tensors);
    doc["total_tensors"] = rows.size();
    doc["total_parameters"] = parameters;
    doc["total_bytes"] = bytes;
    out << doc.dump(2, ' ', false, OJson::error_handler_t::replace) << "\n";
    return OkStatus();
  }

  const bool multi = model.shards.size() > 1;
  out << options.path << ": " << rows.size() << (rows.size() == 1 ? " tensor" : " tensors")
      << " in " << model.shards.size() << (multi ? " shards" : " file") << "\n";
  for (const SafetensorsHeader& h : model.shards) {
    if (multi) out << "  shard " << Base(h.path) << ": " << h.tensors.size() << " tensors\n";
    for (const auto& [k, v] : h.metadata) {
      out << "  metadata " << EscapeForMessage(k, 80) << " = " << EscapeForMessage(v, 200) << "\n";
    }
  }
  size_t name_w = 4, dtype_w = 5, shape_w = 5, bytes_w = 5, shard_w = 5;
  std::vector<std::string> shapes, sizes;
  for (const Row& row : rows) {
    shapes.push_back(ShapeToString(row.tensor->shape));
    sizes.push_back(WithCommas(row.tensor->ByteSize()));
    name_w = std::max(name_w, EscapeForMessage(row.tensor->name).size());
    dtype_w = std::max(dtype_w, std::string(DTypeName(row.tensor->dtype)).size());
    shape_w = std::max(shape_w, shapes.back().size());
    bytes_w = std::max(bytes_w, sizes.back().size());
    if (multi) shard_w = std::max(shard_w, Base(model.shards[row.shard].path).size());
  }
  auto pad = [](std::string s, size_t w) {
    if (s.size() < w) s.append(w - s.size(), ' ');
    return s;
  };
  auto lpad = [](std::string s, size_t w) {
    if (s.size() < w) s.insert(0, w - s.size(), ' ');
    return s;
  };
  std::string header = pad("name", name_w) + "  " + pad("dtype", dtype_w) + "  " +
                       pad("shape", shape_w) + "  " + lpad("bytes", bytes_w);
  if (multi) header += "  shard";
  out << header << "\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const TensorInfo& t = *rows[i].tensor;
    std::string line = pad(EscapeForMessage(t.name), name_w) + "  " +
                       pad(DTypeName(t.dtype), dtype_w) + "  " + pad(shapes[i], shape_w) + "  " +
                       lpad(sizes[i], bytes_w);
    if (multi) line += "  " + Base(model.shards[rows[i].shard].path);
    out << line << "\n";
  }
  out << "total: " << rows.size() << (rows.size() == 1 ? " tensor, " : " tensors, ")
      << WithCommas(parameters) << " parameters (" << HumanCount(parameters) << "), "
      << WithCommas(bytes) << " bytes (" << HumanBytes(bytes) << ")\n";
  return OkStatus();
}

}  // namespace

Command AddInspectCommand(CLI::App& root, std::ostream& out) {
  auto options = std::make_shared<InspectOptions>();
  Command command;
  CLI::App* app = root.add_subcommand(
      "inspect", "List the tensors of a .safetensors file or a model directory");
  app->footer(
      "PATH is a .safetensors file, or a directory with model.safetensors or with "
      "model.safetensors.index.json and its shards. Only the headers are read, and they are "
      "validated first: any error is reported on one line and the exit code is 1.");
  app->add_option("PATH", options->path, "A .safetensors file or a model directory")
      ->required();
  app->add_flag("--json", options->json, "Print JSON instead of a table");
  app->add_option("--sort", options->sort,
                  "Order of the tensors: name (natural order: layers.2 before layers.10) or "
                  "offset (file order)")
      ->check(CLI::IsMember({"name", "offset"}));
  command.app = app;
  command.run = [options, &out]() { return RunInspect(*options, out); };
  return command;
}

}  // namespace cli
}  // namespace lorart
