// lorart tokenize: the token ids, pieces and loss mask of each record exactly
// as the trainer sees them (the model's tokenizer, the chat template, the
// loss rule, truncation), so users can check their data before training.
#include <algorithm>
#include <memory>

#include "lorart/cli/commands.h"
#include "lorart/data/jsonl.h"
#include "lorart/data/template.h"
#include "lorart/data/tokenizer.h"
#include "lorart/io/json.h"

namespace lorart {
namespace cli {

namespace {

// A piece as one printable cell: control characters escaped.
std::string Printable(const std::string& piece) {
  std::string out;
  for (unsigned char c : piece) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      out += StrFormat("\\x%02x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace

Command AddTokenizeCommand(CLI::App& root, std::ostream& out) {
  struct Options {
    std::string model, text, data, objective = "sft";
    TemplateFlags chat_template;
    int64_t seq_len = 0, limit = 0;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  Command c;
  c.app = root.add_subcommand(
      "tokenize",
      "Show the token ids, pieces and loss mask of text or of each record of a JSONL file, as "
      "lorart run will train on them (tokenizer, chat template, loss rule, truncation)");
  c.app->add_option("model", o->model,
                    "Model directory (tokenizer.json or tokenizer.model, tokenizer_config.json, "
                    "chat_template.jinja)")
      ->required();
  c.app->add_option("--text", o->text, "Raw text (as a {\"text\": ...} record)");
  c.app->add_option("--data", o->data, "A JSONL data file (the formats lorart run reads)");
  o->chat_template.Add(c.app);
  c.app->add_option("--objective", o->objective,
                    "sft (loss on assistant replies) or pretrain (on every token)");
  c.app->add_option("--seq-len", o->seq_len,
                    "Show what truncation to this many tokens cuts (the plan's seq_len)");
  c.app->add_option("--limit", o->limit, "Records to show (0: all)");
  c.app->add_flag("--json", o->json,
                  "One JSON object per record: line, ids, pieces, mask, tokens, targets, "
                  "truncated");
  c.run = [o, &out]() -> Status {
    if (o->text.empty() == o->data.empty())
      return InvalidArgumentError("give exactly one of --text and --data");
    if (o->seq_len < 0) return InvalidArgumentError("--seq-len must be positive");
    LORA_ASSIGN_OR_RETURN(data::Objective objective, data::ParseObjective(o->objective));
    LORA_ASSIGN_OR_RETURN(std::unique_ptr<data::Tokenizer> tok, data::Tokenizer::Load(o->model));
    LORA_ASSIGN_OR_RETURN(data::ChatTemplate tmpl, o->chat_template.Resolve(o->model));
    std::string source = o->text.empty() ? o->data : "--text";
    if (!o->json) {
      out << "tokenizer: " << tok->path() << " (" << tok->kind() << ", vocab "
          << tok->vocab_size() << "); template: " << tmpl.name() << "; objective "
          << data::ObjectiveName(objective) << "\n";
    }
    size_t shown = 0;
    bool stopped = false;  // --limit reached: the read ends early, not in error
    auto show = [&](data::Record& record) -> Status {
      if (o->limit > 0 && static_cast<int64_t>(shown) >= o->limit) {
        stopped = true;
        return OutOfRangeError("--limit reached");
      }
      ++shown;
      data::Example ex;
      LORA_RETURN_IF_ERROR(data::RecordToExample(record, tmpl, objective, *tok, &ex), "%s:%lld",
                           source.c_str(), static_cast<long long>(record.line));
      int64_t n = static_cast<int64_t>(ex.tokens.size());
      int64_t kept = o->seq_len > 0 ? std::min(n, o->seq_len) : n;
      int64_t targets = std::count(ex.is_target.begin(), ex.is_target.begin() + kept, 1);
      if (o->json) {
        Json j;
        j["line"] = record.line;
        j["format"] = data::RecordFormatName(record.format);
        j["ids"] = ex.tokens;
        std::vector<int> mask(ex.is_target.begin(), ex.is_target.end());
        j["mask"] = mask;
        Json pieces = Json::array();
        for (int32_t id : ex.tokens) pieces.push_back(tok->IdToPiece(id));
        j["pieces"] = pieces;
        j["tokens"] = n;
        j["targets"] = targets;
        j["truncated"] = n - kept;
        // Invalid UTF-8 (a piece holding part of a character) is replaced,
        // never thrown on.
        out << j.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
        return OkStatus();
      }
      out << source << ":" << record.line << " (" << data::RecordFormatName(record.format)
          << "): " << n << " tokens, " << targets << " targets";
      if (kept < n) out << ", truncated to " << kept << " (" << n - kept << " cut)";
      out << "\n";
      for (int64_t i = 0; i < n; ++i) {
        const char* mark = i >= kept ? "cut" : ex.is_target[i] ? "T" : ".";
        out << StrFormat("  %6lld %8d %-3s %s\n", static_cast<long long>(i), ex.tokens[i], mark,
                         Printable(tok->IdToPiece(ex.tokens[i])).c_str());
      }
      return OkStatus();
    };
    if (!o->text.empty()) {
      data::Record r;
      r.format = data::RecordFormat::kText;
      r.text = o->text;
      r.line = 1;
      return show(r);
    }
    // Streamed: one record in memory at a time, whatever the file's size.
    Status read = data::ForEachRecord(o->data, show);
    if (stopped) return OkStatus();
    return read;
  };
  return c;
}

}  // namespace cli
}  // namespace lorart
