#include "lorart/data/dataset.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <utility>

#include "lorart/base/strings.h"

namespace lorart {
namespace data {
namespace {

// "1,234,567".
std::string WithCommas(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

class Fnv1a {
 public:
  void Add(const void* data, size_t n) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) {
      h_ ^= p[i];
      h_ *= 0x100000001b3ull;
    }
  }
  void Add(int64_t v) { Add(&v, sizeof(v)); }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

Status CheckOptions(const DataOptions& options) {
  if (options.seq_len < 2) {
    return InvalidArgumentError(StrFormat("seq_len %lld must be at least 2",
                                          static_cast<long long>(options.seq_len)));
  }
  if (options.seq_len > (int64_t{1} << 30)) {
    return InvalidArgumentError(StrFormat("seq_len %lld is too large",
                                          static_cast<long long>(options.seq_len)));
  }
  if (options.micro_batch < 1) {
    return InvalidArgumentError(StrFormat("micro_batch %lld must be at least 1",
                                          static_cast<long long>(options.micro_batch)));
  }
  return OkStatus();
}

}  // namespace

std::string DataStats::Summary(int64_t seq_len) const {
  std::string formats;
  for (int f = 0; f < kNumRecordFormats; ++f) {
    if (records_by_format[f] == 0) continue;
    if (!formats.empty()) formats += ", ";
    formats += StrFormat("%s %s", RecordFormatName(static_cast<RecordFormat>(f)),
                         WithCommas(records_by_format[f]).c_str());
  }
  return StrFormat(
      "%s: %s records%s%s%s, %s truncated to %lld tokens, %s dropped with no target; %s "
      "examples, %s tokens, %s targets; %s rows, %s batches/epoch, %.1f%% real tokens",
      path.c_str(), WithCommas(records).c_str(), formats.empty() ? "" : " (",
      formats.c_str(), formats.empty() ? "" : ")", WithCommas(truncated).c_str(),
      static_cast<long long>(seq_len), WithCommas(dropped_no_target).c_str(),
      WithCommas(examples).c_str(), WithCommas(tokens).c_str(), WithCommas(target_tokens).c_str(),
      WithCommas(rows).c_str(), WithCommas(batches_per_epoch).c_str(),
      100.0 * real_token_fraction) +
         (pairs == 0 ? std::string()
                     : StrFormat("; %s preference pairs", WithCommas(pairs).c_str())) +
         (replay_examples == 0
              ? std::string()
              : StrFormat("; with replay of %s: %s examples, %s tokens (%.1f%% of the tokens)",
                          replay_path.c_str(), WithCommas(replay_examples).c_str(),
                          WithCommas(replay_tokens).c_str(),
                          100.0 * static_cast<double>(replay_tokens) /
                              static_cast<double>(std::max<int64_t>(tokens, 1))));
}

StatusOr<std::unique_ptr<Dataset>> Dataset::WithReplay(const Dataset& train,
                                                       const Dataset& replay, double ratio,
                                                       uint64_t seed) {
  if (!(ratio > 0.0 && ratio < 1.0))
    return InvalidArgumentError(StrFormat("--replay-ratio must be in (0, 1), got %g", ratio));
  if (replay.examples_.empty())
    return InvalidArgumentError(replay.stats_.path + ": no replay examples");
  const int64_t want = static_cast<int64_t>(
      std::llround(ratio / (1.0 - ratio) * static_cast<double>(train.stats_.tokens)));
  std::vector<int32_t> order(replay.examples_.size());
  std::iota(order.begin(), order.end(), 0);
  Rng rng(MixSeed(seed, 0, 0x5e91a7ull));
  rng.Shuffle(&order);
  std::vector<Example> mixed = train.examples_;
  DataStats stats = train.stats_;
  stats.replay_path = replay.stats_.path;
  for (size_t k = 0; stats.replay_tokens < want; ++k) {
    const Example& ex = replay.examples_[order[k % order.size()]];
    mixed.push_back(ex);
    stats.replay_tokens += static_cast<int64_t>(ex.tokens.size());
    ++stats.replay_examples;
  }
  // Build counts the mixed set's tokens again.
  stats.tokens = stats.target_tokens = stats.longest = 0;
  stats.max_token_id = -1;
  LORA_ASSIGN_OR_RETURN(std::unique_ptr<Dataset> ds,
                        Build(std::move(mixed), train.pad_id_, train.options_, std::move(stats)));
  if (train.options_.preference) {
    // Every batch must keep a pair (a batch of replay rows alone has no DPO
    // loss to weight the replay term by).
    const int64_t mb = train.options_.micro_batch;
    std::vector<PackedRow> rows = ds->EpochRows(0);
    for (size_t b = 0; b < rows.size(); b += mb) {
      bool pair = false;
      for (size_t r = b; r < std::min(rows.size(), b + mb); ++r)
        pair |= rows[r].docs[0] < 2 * ds->stats_.pairs;
      if (!pair)
        return InvalidArgumentError(StrFormat(
            "--replay-ratio %g leaves batches of %lld rows without a preference pair: lower it%s",
            ratio, static_cast<long long>(mb),
            mb == 1 ? " (or compile the plan with --micro-batch 2 or more: with one row a "
                      "batch, replay rows hold no pair)"
                    : ""));
    }
  }
  return ds;
}

namespace {

// One record's example, tokenized one token past the row (Build counts it
// as truncated and cuts it): a long record costs memory for seq_len tokens,
// not for its length.
Status AddRecord(const Record& record, const std::string& path, const Tokenizer& tokenizer,
                 const DataOptions& options, DataStats* stats, std::vector<Example>* examples) {
  ++stats->records;
  ++stats->records_by_format[static_cast<int>(record.format)];
  Example ex;
  LORA_RETURN_IF_ERROR(RecordToExample(record, options.chat_template, options.objective, tokenizer,
                                       &ex, options.seq_len + 1),
                       "%s:%lld", path.c_str(), static_cast<long long>(record.line));
  examples->push_back(std::move(ex));
  return OkStatus();
}

// One side of a preference pair (the chosen or the rejected conversation):
// its length and where its prompt ends, then the tokens a row keeps of it.
// A side of at most seq_len tokens is tokenized once and kept; a longer one
// is streamed (DocumentTokenStream) once to count and once to take what is
// kept, so that a pair far longer than a row never has all its tokens in
// memory (docs/data.md, "Long records").
struct PairSide {
  RenderedDocument doc;
  Example whole;  // every token, when `complete`
  bool complete = false;
  int64_t len = 0;         // tokens of the whole side
  int64_t prompt_len = 0;  // tokens before the last run of targets (the reply)
  int64_t line = 0;

  Status Measure(const Record& record, const ChatTemplate& chat_template,
                 const Tokenizer& tokenizer, int64_t seq_len) {
    line = record.line;
    LORA_ASSIGN_OR_RETURN(doc, Render(record, chat_template, Objective::kSft, tokenizer));
    LORA_RETURN_IF_ERROR(Tokenize(doc, tokenizer, &whole, seq_len + 1));
    complete = static_cast<int64_t>(whole.tokens.size()) <= seq_len;
    if (!complete) whole = Example();
    // The loss covers the final assistant reply only (its EOS too): the last
    // run of target tokens; what comes before is the prompt.
    int64_t run_start = 0, last_run = -1;
    bool prev = false;
    len = 0;
    LORA_RETURN_IF_ERROR(ForEachToken(tokenizer, [&](int32_t, uint8_t t) {
      if (t && !prev) run_start = len;
      if (t) last_run = run_start;
      prev = t;
      ++len;
      return true;
    }));
    prompt_len = last_run < 0 ? len : last_run;
    return OkStatus();
  }

  // The first token, then tokens [1 + cut, cut + keep) (keep in all), with
  // no target before prompt_len.
  Status Take(int64_t cut, int64_t keep, const Tokenizer& tokenizer, Example* out) {
    out->tokens.clear();
    out->is_target.clear();
    out->line = line;
    int64_t i = 0;
    return ForEachToken(tokenizer, [&](int32_t id, uint8_t target) {
      if (i == 0 || i >= 1 + cut) {
        out->tokens.push_back(id);
        out->is_target.push_back(i >= prompt_len ? target : 0);
      }
      return ++i < cut + keep;
    });
  }

  // Calls fn(id, is_target) on the side's tokens in order while it returns
  // true: from `whole` when complete, else streamed.
  Status ForEachToken(const Tokenizer& tokenizer,
                      const std::function<bool(int32_t, uint8_t)>& fn) const {
    if (complete) {
      for (size_t i = 0; i < whole.tokens.size(); ++i) {
        if (!fn(whole.tokens[i], whole.is_target[i])) break;
      }
      return OkStatus();
    }
    DocumentTokenStream stream(doc, tokenizer);
    std::vector<int32_t> ids;
    std::vector<uint8_t> targets;
    bool done = false;
    while (!done) {
      ids.clear();
      targets.clear();
      LORA_RETURN_IF_ERROR(stream.Next(&ids, &targets, &done));
      for (size_t k = 0; k < ids.size(); ++k) {
        if (!fn(ids[k], targets[k])) return OkStatus();
      }
    }
    return OkStatus();
  }
};

}  // namespace

StatusOr<std::unique_ptr<Dataset>> Dataset::Load(const std::string& path,
                                                 const Tokenizer& tokenizer,
                                                 const DataOptions& options) {
  LORA_RETURN_IF_ERROR(CheckOptions(options));
  DataStats stats;
  stats.path = path;
  std::vector<Example> examples;
  // One record in memory at a time (docs/data.md, "Long records").
  LORA_RETURN_IF_ERROR(ForEachRecord(path, [&](Record& record) {
    return AddRecord(record, path, tokenizer, options, &stats, &examples);
  }));
  return Build(std::move(examples), tokenizer.pad_id(), options, std::move(stats));
}

StatusOr<std::unique_ptr<Dataset>> Dataset::FromRecords(const std::vector<Record>& records,
                                                        const std::string& path,
                                                        const Tokenizer& tokenizer,
                                                        const DataOptions& options) {
  LORA_RETURN_IF_ERROR(CheckOptions(options));
  if (records.empty()) {
    return InvalidArgumentError(StrFormat("%s: no examples", path.c_str()));
  }
  DataStats stats;
  stats.path = path;
  std::vector<Example> examples;
  for (const Record& record : records) {
    LORA_RETURN_IF_ERROR(AddRecord(record, path, tokenizer, options, &stats, &examples));
  }
  return Build(std::move(examples), tokenizer.pad_id(), options, std::move(stats));
}

StatusOr<std::unique_ptr<Dataset>> Dataset::LoadPreferences(const std::string& path,
                                                            const Tokenizer& tokenizer,
                                                            const DataOptions& options) {
  LORA_RETURN_IF_ERROR(CheckOptions(options));
  // One pair in memory at a time.
  return PreferencesFrom(
      [&](const std::function<Status(const PreferenceRecord&)>& add) {
        return ForEachPreferenceRecord(path, [&](PreferenceRecord& r) { return add(r); });
      },
      path, tokenizer, options);
}

StatusOr<std::unique_ptr<Dataset>> Dataset::FromPreferences(
    const std::vector<PreferenceRecord>& records, const std::string& path,
    const Tokenizer& tokenizer, const DataOptions& options) {
  return PreferencesFrom(
      [&](const std::function<Status(const PreferenceRecord&)>& add) {
        for (const PreferenceRecord& r : records) LORA_RETURN_IF_ERROR(add(r));
        return OkStatus();
      },
      path, tokenizer, options);
}

StatusOr<std::unique_ptr<Dataset>> Dataset::PreferencesFrom(const PreferenceSource& for_each,
                                                            const std::string& path,
                                                            const Tokenizer& tokenizer,
                                                            const DataOptions& options) {
  LORA_RETURN_IF_ERROR(CheckOptions(options));
  if (!options.preference)
    return InternalError("FromPreferences needs DataOptions.preference");
  if (!options.pack)
    return InvalidArgumentError(path + ": preference pairs need a packed plan (chosen and "
                                       "rejected share a row)");
  DataStats stats;
  stats.path = path;
  const int64_t seq_len = options.seq_len;
  std::vector<Example> examples;
  // A pair is tokenized up to seq_len + 1 tokens a side; a side longer than
  // that is streamed twice (PairSide), so memory follows the row, not the pair.
  LORA_RETURN_IF_ERROR(for_each([&](const PreferenceRecord& r) -> Status {
    ++stats.records;
    PairSide side[2];
    const Record* sides[2] = {&r.chosen, &r.rejected};
    for (int k = 0; k < 2; ++k) {
      ++stats.records_by_format[static_cast<int>(RecordFormat::kChat)];
      LORA_RETURN_IF_ERROR(side[k].Measure(*sides[k], options.chat_template, tokenizer, seq_len),
                           "%s:%lld", path.c_str(), static_cast<long long>(r.line));
    }
    stats.longest = std::max({stats.longest, side[0].len, side[1].len});
    int64_t keep[2] = {side[0].len, side[1].len}, cut[2] = {0, 0};
    if (side[0].len + side[1].len > seq_len) {
      ++stats.truncated;
      // First the prompts lose their oldest tokens (after the first, BOS),
      // the same number in both where they can; then, if the responses
      // alone are too long, their ends go (at least half the row each).
      int64_t over = side[0].len + side[1].len - seq_len;
      for (int k = 0; k < 2 && over > 0; ++k) {
        // Half the excess from the chosen prompt, the rest from the rejected.
        int64_t want = k == 0 ? (over + 1) / 2 : over;
        cut[k] = std::min(want, std::max<int64_t>(0, side[k].prompt_len - 1));
        keep[k] -= cut[k];
        over -= cut[k];
      }
      if (over > 0 && keep[0] + keep[1] > seq_len) {
        int64_t half = seq_len / 2;
        if (keep[0] <= half)
          keep[1] = seq_len - keep[0];
        else if (keep[1] <= half)
          keep[0] = seq_len - keep[1];
        else
          keep[0] = half, keep[1] = seq_len - half;
      }
    }
    Example pair[2];
    bool ok = true;
    for (int k = 0; k < 2; ++k) {
      LORA_RETURN_IF_ERROR(side[k].Take(cut[k], keep[k], tokenizer, &pair[k]), "%s:%lld",
                           path.c_str(), static_cast<long long>(r.line));
      if (!pair[k].is_target.empty()) pair[k].is_target[0] = 0;
      ok &= std::count(pair[k].is_target.begin(), pair[k].is_target.end(), 1) > 0;
    }
    if (!ok) {
      ++stats.dropped_no_target;
      return OkStatus();
    }
    examples.push_back(std::move(pair[0]));
    examples.push_back(std::move(pair[1]));
    return OkStatus();
  }));
  if (stats.records == 0) return InvalidArgumentError(StrFormat("%s: no examples", path.c_str()));
  stats.pairs = static_cast<int64_t>(examples.size() / 2);
  // Build keeps every example (each has a target and fits a row) in order:
  // 2q is pair q's chosen response, 2q + 1 its rejected one.
  int64_t truncated = stats.truncated, dropped = stats.dropped_no_target, longest = stats.longest;
  stats.truncated = stats.dropped_no_target = stats.longest = 0;
  LORA_ASSIGN_OR_RETURN(std::unique_ptr<Dataset> ds,
                        Build(std::move(examples), tokenizer.pad_id(), options, std::move(stats)));
  ds->stats_.truncated = truncated;
  ds->stats_.dropped_no_target = dropped;
  ds->stats_.longest = longest;
  return ds;
}

StatusOr<std::unique_ptr<Dataset>> Dataset::FromExamples(std::vector<Example> examples,
                                                         int32_t pad_id,
                                                         const DataOptions& options,
                                                         const std::string& name) {
  LORA_RETURN_IF_ERROR(CheckOptions(options));
  DataStats stats;
  stats.path = name;
  stats.records = static_cast<int64_t>(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    if (examples[i].is_target.size() != examples[i].tokens.size()) {
      return InvalidArgumentError(StrFormat(
          "%s: example %zu has %zu tokens but %zu target flags", name.c_str(), i,
          examples[i].tokens.size(), examples[i].is_target.size()));
    }
  }
  return Build(std::move(examples), pad_id, options, std::move(stats));
}

StatusOr<std::unique_ptr<Dataset>> Dataset::Build(std::vector<Example> examples, int32_t pad_id,
                                                  const DataOptions& options, DataStats stats) {
  std::unique_ptr<Dataset> ds(new Dataset());
  ds->options_ = options;
  ds->pad_id_ = pad_id;
  const int64_t seq_len = options.seq_len;
  Fnv1a hash;
  hash.Add(seq_len);
  hash.Add(options.micro_batch);
  hash.Add(static_cast<int64_t>(options.pack));
  hash.Add(static_cast<int64_t>(options.shuffle));
  hash.Add(static_cast<int64_t>(pad_id));
  hash.Add(static_cast<int64_t>(options.preference));
  for (Example& ex : examples) {
    int64_t n = static_cast<int64_t>(ex.tokens.size());
    stats.longest = std::max(stats.longest, n);
    if (n > seq_len) {
      ++stats.truncated;
      ex.tokens.resize(seq_len);
      ex.is_target.resize(seq_len);
      n = seq_len;
    }
    if (n > 0) ex.is_target[0] = 0;  // nothing predicts a document's first token
    int64_t targets = 0;
    for (uint8_t t : ex.is_target) targets += t ? 1 : 0;
    if (targets == 0) {
      ++stats.dropped_no_target;
      continue;
    }
    stats.tokens += n;
    stats.target_tokens += targets;
    for (int32_t id : ex.tokens) stats.max_token_id = std::max(stats.max_token_id, id);
    hash.Add(n);
    hash.Add(ex.tokens.data(), ex.tokens.size() * sizeof(int32_t));
    hash.Add(ex.is_target.data(), ex.is_target.size());
    ds->lengths_.push_back(n);
    ds->examples_.push_back(std::move(ex));
  }
  stats.examples = static_cast<int64_t>(ds->examples_.size());
  if (stats.examples == 0) {
    return InvalidArgumentError(StrFormat(
        "%s: no examples left: all %lld have no target token%s", stats.path.c_str(),
        static_cast<long long>(stats.records),
        stats.truncated > 0 ? " after truncation to seq_len" : ""));
  }
  if (stats.examples > INT32_MAX) {
    return InvalidArgumentError(StrFormat("%s: more than 2^31 examples", stats.path.c_str()));
  }
  ds->fingerprint_ = hash.value();
  ds->stats_ = std::move(stats);
  // Every epoch has the same number of rows: packing decisions depend only
  // on the sorted lengths, which shuffling does not change.
  std::vector<PackedRow> rows = ds->EpochRows(0);
  DataStats& s = ds->stats_;
  s.rows = static_cast<int64_t>(rows.size());
  s.batches_per_epoch = (s.rows + options.micro_batch - 1) / options.micro_batch;
  s.real_token_fraction =
      static_cast<double>(s.tokens) / (static_cast<double>(s.rows) * static_cast<double>(seq_len));
  s.grid_real_fraction = static_cast<double>(s.tokens) /
                         (static_cast<double>(s.batches_per_epoch) *
                          static_cast<double>(options.micro_batch) * static_cast<double>(seq_len));
  ds->cached_epoch_ = options.shuffle ? 0 : -2;  // -2: the one layout of every epoch
  ds->cached_rows_ = std::move(rows);
  return ds;
}

std::vector<PackedRow> Dataset::EpochRows(int64_t epoch) const {
  if (options_.preference) {
    // One pair a row, in shuffled pair order; replay documents (after the
    // pairs) packed into rows of their own, then every row shuffled: the
    // row count is the same every epoch (packing depends only on lengths).
    std::vector<int32_t> pairs(static_cast<size_t>(stats_.pairs));
    std::iota(pairs.begin(), pairs.end(), 0);
    if (options_.shuffle) {
      Rng rng(MixSeed(options_.seed, static_cast<uint64_t>(epoch), 0));
      rng.Shuffle(&pairs);
    }
    std::vector<PackedRow> rows;
    for (int32_t q : pairs)
      rows.push_back({{2 * q, 2 * q + 1}, lengths_[2 * q] + lengths_[2 * q + 1]});
    std::vector<int32_t> replay;
    for (int32_t d = static_cast<int32_t>(2 * stats_.pairs);
         d < static_cast<int32_t>(examples_.size()); ++d)
      replay.push_back(d);
    if (!replay.empty()) {
      if (options_.shuffle) {
        Rng rng(MixSeed(options_.seed, static_cast<uint64_t>(epoch), 2));
        rng.Shuffle(&replay);
      }
      std::vector<PackedRow> extra = PackBestFitDecreasing(replay, lengths_, options_.seq_len);
      if (options_.shuffle) {
        Rng rng(MixSeed(options_.seed, static_cast<uint64_t>(epoch), 1));
        rng.Shuffle(&extra);
      }
      // Spread the replay rows evenly over the batches, after each batch's
      // pairs, so that no batch is without a pair (WithReplay checks that
      // the ratio allows it).
      const int64_t mb = options_.micro_batch;
      const int64_t total = static_cast<int64_t>(rows.size() + extra.size());
      const int64_t batches = (total + mb - 1) / mb;
      const int64_t q = static_cast<int64_t>(extra.size());
      std::vector<PackedRow> merged;
      size_t next_pair = 0, next_extra = 0;
      for (int64_t b = 0; b < batches; ++b) {
        int64_t k = q * (b + 1) / batches - q * b / batches;  // replay rows of batch b
        int64_t size = std::min<int64_t>(mb, total - b * mb);
        for (int64_t i = 0; i < size - k && next_pair < rows.size(); ++i)
          merged.push_back(std::move(rows[next_pair++]));
        for (int64_t i = 0; i < k && next_extra < extra.size(); ++i)
          merged.push_back(std::move(extra[next_extra++]));
      }
      while (next_pair < rows.size()) merged.push_back(std::move(rows[next_pair++]));
      while (next_extra < extra.size()) merged.push_back(std::move(extra[next_extra++]));
      rows = std::move(merged);
    }
    return rows;
  }
  std::vector<int32_t> order(examples_.size());
  std::iota(order.begin(), order.end(), 0);
  if (options_.shuffle) {
    Rng rng(MixSeed(options_.seed, static_cast<uint64_t>(epoch), 0));
    rng.Shuffle(&order);
  }
  std::vector<PackedRow> rows = options_.pack
                                    ? PackBestFitDecreasing(order, lengths_, options_.seq_len)
                                    : PackOnePerRow(order, lengths_);
  if (options_.shuffle && options_.pack) {
    // Packing opens rows longest document first; mix them again.
    Rng rng(MixSeed(options_.seed, static_cast<uint64_t>(epoch), 1));
    rng.Shuffle(&rows);
  }
  return rows;
}

Status Dataset::GetBatch(int64_t epoch, int64_t index, Batch* out) {
  if (epoch < 0 || index < 0 || index >= stats_.batches_per_epoch) {
    return OutOfRangeError(StrFormat("%s: batch %lld of epoch %lld is outside the %lld batches "
                                     "of an epoch",
                                     stats_.path.c_str(), static_cast<long long>(index),
                                     static_cast<long long>(epoch),
                                     static_cast<long long>(stats_.batches_per_epoch)));
  }
  if (options_.shuffle && cached_epoch_ != epoch) {
    cached_rows_ = EpochRows(epoch);
    cached_epoch_ = epoch;
  }
  const int64_t mb = options_.micro_batch, seq_len = options_.seq_len;
  const size_t n = static_cast<size_t>(mb * seq_len);
  out->epoch = epoch;
  out->index = index;
  out->micro_batch = mb;
  out->seq_len = seq_len;
  out->tokens.resize(n);
  out->positions.resize(n);
  out->segment_ids.resize(n);
  out->targets.resize(n);
  out->loss_mask.resize(n);
  out->rows = 0;
  out->documents = 0;
  out->real_tokens = 0;
  out->target_tokens = 0;
  static const PackedRow kEmptyRow;
  for (int64_t r = 0; r < mb; ++r) {
    int64_t row_index = index * mb + r;
    const PackedRow& row =
        row_index < static_cast<int64_t>(cached_rows_.size()) ? cached_rows_[row_index] : kEmptyRow;
    size_t at = static_cast<size_t>(r * seq_len);
    RowView view{out->tokens.data() + at, out->positions.data() + at,
                 out->segment_ids.data() + at, out->targets.data() + at,
                 out->loss_mask.data() + at};
    out->target_tokens += FillRow(examples_, row, seq_len, pad_id_, view);
    if (!row.docs.empty()) ++out->rows;
    out->documents += static_cast<int64_t>(row.docs.size());
    out->real_tokens += row.used;
  }
  if (options_.preference) {
    // A pair's row: segment 0 is its chosen, 1 its rejected response. A
    // replay row (its documents come after the pairs): no pair, and its loss
    // tokens move to replay_mask.
    out->sequence_ids.assign(n, -1);
    out->replay_mask.assign(n, 0);
    out->pair_mask.assign(static_cast<size_t>(mb), 0);
    for (int64_t r = 0; r < mb; ++r) {
      int64_t row_index = index * mb + r;
      if (row_index >= static_cast<int64_t>(cached_rows_.size())) continue;
      bool pair = cached_rows_[row_index].docs[0] < 2 * stats_.pairs;
      out->pair_mask[r] = pair ? 1 : 0;
      size_t at = static_cast<size_t>(r * seq_len);
      for (int64_t t = 0; t < seq_len; ++t) {
        if (!out->loss_mask[at + t]) continue;
        if (pair) {
          out->sequence_ids[at + t] = static_cast<int32_t>(2 * r + out->segment_ids[at + t]);
        } else {
          out->replay_mask[at + t] = 1;
          out->loss_mask[at + t] = 0;
        }
      }
    }
  } else {
    out->sequence_ids.clear();
    out->replay_mask.clear();
    out->pair_mask.clear();
  }
  return OkStatus();
}

Batcher::Batcher(Dataset* dataset, DataCursor start) : dataset_(dataset), cursor_(start) {}

Status Batcher::Next(Batch* out) {
  LORA_RETURN_IF_ERROR(dataset_->GetBatch(cursor_.epoch, cursor_.batch, out));
  Skip();
  return OkStatus();
}

void Batcher::Skip() {
  if (++cursor_.batch >= dataset_->batches_per_epoch()) {
    cursor_.batch = 0;
    ++cursor_.epoch;
  }
}

Status Batcher::Seek(DataCursor cursor) {
  if (cursor.epoch < 0 || cursor.batch < 0 || cursor.batch >= dataset_->batches_per_epoch()) {
    return InvalidArgumentError(StrFormat(
        "data position epoch %lld batch %lld is outside the %lld batches of an epoch",
        static_cast<long long>(cursor.epoch), static_cast<long long>(cursor.batch),
        static_cast<long long>(dataset_->batches_per_epoch())));
  }
  cursor_ = cursor;
  return OkStatus();
}

Json Batcher::SaveState() const {
  Json state = Json::object();
  state["epoch"] = cursor_.epoch;
  state["batch"] = cursor_.batch;
  state["seed"] = dataset_->options().seed;
  state["fingerprint"] =
      StrFormat("%016llx", static_cast<unsigned long long>(dataset_->fingerprint()));
  return state;
}

Status Batcher::RestoreState(const Json& state) {
  if (!state.is_object()) {
    return InvalidArgumentError(StrFormat("data state must be an object, not %s",
                                          JsonTypeName(state)));
  }
  for (const char* key : {"epoch", "batch", "seed"}) {
    if (!state.contains(key) || !state.at(key).is_number_integer()) {
      return InvalidArgumentError(StrFormat("data state: field '%s' must be an integer", key));
    }
  }
  if (!state.contains("fingerprint") || !state.at("fingerprint").is_string()) {
    return InvalidArgumentError("data state: field 'fingerprint' must be a string");
  }
  uint64_t seed = state.at("seed").get<uint64_t>();
  if (seed != dataset_->options().seed) {
    return InvalidArgumentError(StrFormat(
        "data state was saved with seed %llu, but this run uses seed %llu",
        static_cast<unsigned long long>(seed),
        static_cast<unsigned long long>(dataset_->options().seed)));
  }
  std::string expected =
      StrFormat("%016llx", static_cast<unsigned long long>(dataset_->fingerprint()));
  const std::string& saved = state.at("fingerprint").get_ref<const std::string&>();
  if (saved != expected) {
    return InvalidArgumentError(StrFormat(
        "data state was saved for other data (fingerprint %s, this dataset %s): the file, "
        "tokenizer, template, seq_len, micro_batch or packing differ",
        Quote(saved, 40).c_str(), expected.c_str()));
  }
  DataCursor cursor{state.at("epoch").get<int64_t>(), state.at("batch").get<int64_t>()};
  return Seek(cursor);
}

}  // namespace data
}  // namespace lorart
