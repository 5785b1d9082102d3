// lorart generate: greedy or temperature sampling with a plan's @logits_step
// (base model, or base + adapter), so users can see what an adapter does.
// No KV cache yet: every new token runs the forward graph over the prompt.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

#include "lorart/cli/commands.h"
#include "lorart/data/jsonl.h"
#include "lorart/data/template.h"
#include "lorart/data/tokenizer.h"
#include "lorart/exec/feed.h"
#include "lorart/exec/session.h"
#include "lorart/io/peft_adapter.h"

namespace lorart {
namespace cli {

namespace {

struct Generator {
  Session* session;
  const data::Tokenizer* tokenizer;
  int64_t batch, seq, vocab;
  int64_t max_new = 32;
  double temperature = 0;
  std::mt19937_64 rng{0};

  // Continues `prompt` (token ids) until EOS or another special token (the
  // end of a turn: "<|im_end|>", "<|eot_id|>"), max_new tokens or the plan's
  // sequence length.
  StatusOr<std::vector<int32_t>> Continue(std::vector<int32_t> tokens) {
    std::vector<int32_t> generated;
    std::vector<int32_t> tok(batch * seq), pos(batch * seq), seg(batch * seq), last(batch);
    std::vector<float> logits(batch * vocab);
    while (static_cast<int64_t>(generated.size()) < max_new &&
           static_cast<int64_t>(tokens.size()) < seq) {
      int64_t n = static_cast<int64_t>(tokens.size());
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t t = 0; t < seq; ++t) {
          bool real = t < n;
          tok[b * seq + t] = real ? tokens[t] : 0;
          pos[b * seq + t] = real ? static_cast<int32_t>(t) : 0;
          seg[b * seq + t] = real ? 0 : -1;
        }
      std::fill(last.begin(), last.end(), static_cast<int32_t>(n - 1));
      LORA_RETURN_IF_ERROR(FeedLogitsStep(session, tok, pos, seg, last));
      LORA_RETURN_IF_ERROR(session->Run(programs::kLogitsStep, 0));
      LORA_RETURN_IF_ERROR(session->GetOutput(programs::kLogitsStep, OutputPort::Logits,
                                              logits.data(), logits.size() * 4));
      const float* row = logits.data();
      int32_t next = 0;
      if (temperature <= 0) {
        next = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
      } else {
        float mx = *std::max_element(row, row + vocab);
        std::vector<double> w(vocab);
        for (int64_t v = 0; v < vocab; ++v) w[v] = std::exp((row[v] - mx) / temperature);
        std::discrete_distribution<int32_t> d(w.begin(), w.end());
        next = d(rng);
      }
      if (next == tokenizer->eos_id() || tokenizer->IsControl(next)) break;
      tokens.push_back(next);
      generated.push_back(next);
    }
    return generated;
  }
};

// The prompt of a chat record: its turns before the first assistant reply,
// rendered up to where the reply starts. A Jinja template writes that start
// itself (add_generation_prompt); with a hand-written one it is the
// rendering up to the first trained token of an empty reply.
Status PromptTokens(const data::Record& record, const data::ChatTemplate& tmpl,
                    const data::Tokenizer& tok, std::vector<int32_t>* out) {
  data::Record r = record;
  std::vector<data::Message> messages;
  for (const data::Message& m : r.messages) {
    if (m.role == data::Role::kAssistant) break;
    messages.push_back(m);
  }
  r.format = data::RecordFormat::kChat;
  data::Example ex;
  if (tmpl.kind() == data::ChatTemplate::Kind::kJinja) {
    r.messages = messages;
    LORA_ASSIGN_OR_RETURN(data::RenderedDocument doc,
                          data::Render(r, tmpl, data::Objective::kSft, tok,
                                       /*add_generation_prompt=*/true));
    LORA_RETURN_IF_ERROR(data::Tokenize(doc, tok, &ex));
    *out = ex.tokens;
    return OkStatus();
  }
  messages.push_back({data::Role::kAssistant, ""});
  r.messages = messages;
  LORA_RETURN_IF_ERROR(data::RecordToExample(r, tmpl, data::Objective::kSft, tok, &ex));
  out->clear();
  for (size_t i = 0; i < ex.tokens.size() && !ex.is_target[i]; ++i) out->push_back(ex.tokens[i]);
  return OkStatus();
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n')) ++i;
  return s.substr(i);
}

}  // namespace

Command AddGenerateCommand(CLI::App& root, std::ostream& out) {
  struct Options {
    std::string plan, base, adapter, prompt, prompts;
    TemplateFlags chat_template;
    int64_t max_new = 32, limit = 5;
    double temperature = 0;
    uint64_t seed = 0;
    int threads = 0;
    DeviceFlags device;
  };
  auto o = std::make_shared<Options>();
  Command c;
  c.app = root.add_subcommand("generate", "Generate replies with the base model or base + "
                                          "adapter (greedy or temperature sampling)");
  c.app->add_option("plan", o->plan, "train.bin (compiled with its @logits_step)")->required();
  c.app->add_option("--base", o->base, "Base model directory")->required();
  c.app->add_option("--adapter", o->adapter, "PEFT adapter directory (default: none)");
  c.app->add_option("--prompt", o->prompt, "A user message to reply to");
  c.app->add_option("--prompts", o->prompts,
                    "A chat JSONL file: reply to each record's first user message and compare "
                    "with its reference reply");
  c.app->add_option("--limit", o->limit, "Records of --prompts to print (all are scored)");
  c.app->add_option("--max-new-tokens", o->max_new, "Tokens to generate at most");
  c.app->add_option("--temperature", o->temperature, "0: greedy");
  c.app->add_option("--seed", o->seed, "Sampling seed");
  o->chat_template.Add(c.app);
  c.app->add_option("--threads", o->threads, "CPU threads (0: all)");
  o->device.Add(c.app);
  c.run = [o, &out]() -> Status {
    if (o->prompt.empty() == o->prompts.empty())
      return InvalidArgumentError("give exactly one of --prompt and --prompts");
    SessionOptions so;
    so.num_threads = o->threads;
    LORA_RETURN_IF_ERROR(o->device.Apply(&so));
    std::unique_ptr<Session> s;
    LORA_RETURN_IF_ERROR(Session::Open(o->plan, so, &s));
    if (!s->plan().FindProgram(programs::kLogitsStep))
      return InvalidArgumentError(o->plan + ": the plan has no logits_step program (compile it "
                                            "with this lorac)");
    LORA_RETURN_IF_ERROR(s->BindWeights(o->base));
    LORA_RETURN_IF_ERROR(s->InitTrainable(0));  // lora_B = 0: the base model
    if (!o->adapter.empty()) LORA_RETURN_IF_ERROR(LoadAdapter(s.get(), o->adapter));
    LORA_ASSIGN_OR_RETURN(std::unique_ptr<data::Tokenizer> tok,
                          data::Tokenizer::Load(o->base));
    LORA_ASSIGN_OR_RETURN(data::ChatTemplate tmpl, o->chat_template.Resolve(o->base));
    const schema::Hyperparameters& d = s->plan().defaults();
    Generator g{s.get(), tok.get(), static_cast<int64_t>(d.micro_batch()),
                static_cast<int64_t>(d.seq_len()),
                static_cast<int64_t>(s->plan().model().vocab_size())};
    g.max_new = o->max_new;
    g.temperature = o->temperature;
    g.rng.seed(o->seed);
    int64_t exact = 0, scored = 0, index = 0;
    auto answer = [&](data::Record& record) -> Status {
      std::vector<int32_t> prompt;
      LORA_RETURN_IF_ERROR(PromptTokens(record, tmpl, *tok, &prompt));
      for (int32_t id : prompt)
        if (id < 0 || id >= g.vocab)
          return InvalidArgumentError(StrFormat(
              "token id %d of the prompt is outside the model's vocabulary (%lld): the tokenizer "
              "of %s does not belong to this model",
              id, static_cast<long long>(g.vocab), o->base.c_str()));
      LORA_ASSIGN_OR_RETURN(std::vector<int32_t> gen, g.Continue(prompt));
      LORA_ASSIGN_OR_RETURN(std::string text, tok->Decode(gen));
      std::string reference;
      for (const data::Message& m : record.messages)
        if (m.role == data::Role::kAssistant) {
          reference = m.content;
          break;
        }
      std::string user;
      for (const data::Message& m : record.messages)
        if (m.role == data::Role::kUser) {
          user = m.content;
          break;
        }
      if (!reference.empty()) {
        ++scored;
        exact += Trim(text) == Trim(reference);
      }
      if (index++ < o->limit || !o->prompt.empty()) {
        out << "> " << user << "\n" << Trim(text);
        if (!reference.empty()) out << "    (reference: " << reference << ")";
        out << "\n";
      }
      return OkStatus();
    };
    if (!o->prompt.empty()) {
      data::Record r;
      r.format = data::RecordFormat::kChat;
      r.messages.push_back({data::Role::kUser, o->prompt});
      LORA_RETURN_IF_ERROR(answer(r));
    } else {
      // Streamed: one prompt in memory at a time.
      LORA_RETURN_IF_ERROR(data::ForEachRecord(o->prompts, answer));
    }
    if (scored > 0)
      out << "exact match: " << exact << "/" << scored << " ("
          << 100.0 * static_cast<double>(exact) / static_cast<double>(scored) << "%)\n";
    return OkStatus();
  };
  return c;
}

}  // namespace cli
}  // namespace lorart
