// Datasets and batches: truncation, packing statistics, per-epoch shuffling,
// resumable iteration state, validation order, loading JSONL end to end.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "data_test_util.h"
#include "lorart/data/dataset.h"
#include "test_util.h"

namespace lorart {
namespace data {
namespace {

using ::lorart::testing::DataTestTokenizer;
using ::lorart::testing::TempDir;
using ::lorart::testing::WriteFile;

constexpr int32_t kPad = 2;

// A document whose first token (after a BOS-like 1) identifies it: 1000 + id.
Example Doc(int32_t id, int64_t length, uint64_t salt = 0) {
  Example ex;
  Rng rng(static_cast<uint64_t>(id) * 7919 + salt);
  for (int64_t i = 0; i < length; ++i) {
    ex.tokens.push_back(i == 0 ? 1000 + id : 3 + static_cast<int32_t>(rng.Below(500)));
    ex.is_target.push_back(i == 0 ? 0 : 1);
  }
  return ex;
}

std::vector<Example> RandomDocs(size_t n, int64_t max_len, uint64_t seed) {
  Rng rng(seed);
  std::vector<Example> docs;
  for (size_t d = 0; d < n; ++d) {
    docs.push_back(Doc(static_cast<int32_t>(d), 2 + static_cast<int64_t>(rng.Below(max_len - 1)),
                       seed));
  }
  return docs;
}

std::unique_ptr<Dataset> Make(std::vector<Example> docs, DataOptions options) {
  StatusOr<std::unique_ptr<Dataset>> ds = Dataset::FromExamples(std::move(docs), kPad, options);
  EXPECT_TRUE(ds.ok()) << ds.status().ToString();
  return std::move(ds).value();
}

bool SameBatch(const Batch& a, const Batch& b) {
  return a.tokens == b.tokens && a.positions == b.positions && a.segment_ids == b.segment_ids &&
         a.targets == b.targets && a.loss_mask == b.loss_mask &&
         a.target_tokens == b.target_tokens && a.real_tokens == b.real_tokens;
}

// The document ids (first token - 1000) of a batch, in order.
std::vector<int32_t> DocIds(const Batch& b) {
  std::vector<int32_t> ids;
  for (size_t t = 0; t < b.tokens.size(); ++t) {
    if (b.segment_ids[t] >= 0 && b.positions[t] == 0) ids.push_back(b.tokens[t] - 1000);
  }
  return ids;
}

std::vector<int32_t> EpochDocIds(Dataset* ds, int64_t epoch) {
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < ds->batches_per_epoch(); ++i) {
    Batch b;
    EXPECT_TRUE(ds->GetBatch(epoch, i, &b).ok());
    for (int32_t id : DocIds(b)) ids.push_back(id);
  }
  return ids;
}

TEST(DataDatasetTest, TruncationAndDroppedExamplesAreCounted) {
  std::vector<Example> docs;
  docs.push_back(Doc(0, 5));   // kept: 4 targets
  docs.push_back(Doc(1, 12));  // truncated to 8: 7 targets
  Example late = Doc(2, 12);   // truncated; its only targets lie past seq_len: dropped
  for (size_t i = 0; i < 9; ++i) late.is_target[i] = 0;
  docs.push_back(late);
  Example none = Doc(3, 3);  // no target at all: dropped, not truncated
  none.is_target = {1, 0, 0};  // a flag on token 0 does not count: nothing predicts it
  docs.push_back(none);
  DataOptions options;
  options.seq_len = 8;
  std::unique_ptr<Dataset> ds = Make(docs, options);
  const DataStats& s = ds->stats();
  EXPECT_EQ(s.records, 4);
  EXPECT_EQ(s.truncated, 2);
  EXPECT_EQ(s.dropped_no_target, 2);
  EXPECT_EQ(s.examples, 2);
  EXPECT_EQ(s.longest, 12);
  EXPECT_EQ(s.tokens, 13);
  EXPECT_EQ(s.target_tokens, 11);
  ASSERT_EQ(ds->examples().size(), 2u);
  EXPECT_EQ(ds->examples()[1].tokens.size(), 8u);
  // Truncation keeps the start.
  EXPECT_EQ(ds->examples()[1].tokens, std::vector<int32_t>(docs[1].tokens.begin(),
                                                           docs[1].tokens.begin() + 8));

  // Nothing left is an error.
  StatusOr<std::unique_ptr<Dataset>> empty =
      Dataset::FromExamples({late, none}, kPad, options, "x.jsonl");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().message(),
            "x.jsonl: no examples left: all 2 have no target token after truncation to seq_len");
}

TEST(DataDatasetTest, RealTokenFractionAndPaddingRows) {
  std::vector<Example> docs;
  int64_t lengths[] = {6, 4, 5, 5, 3};
  for (int i = 0; i < 5; ++i) docs.push_back(Doc(i, lengths[i]));
  DataOptions options;
  options.seq_len = 10;
  options.micro_batch = 2;
  options.shuffle = false;
  std::unique_ptr<Dataset> ds = Make(docs, options);
  const DataStats& s = ds->stats();
  EXPECT_EQ(s.rows, 3);  // [6, 4] [5, 5] [3]
  EXPECT_EQ(s.batches_per_epoch, 2);
  EXPECT_DOUBLE_EQ(s.real_token_fraction, 23.0 / 30.0);
  EXPECT_DOUBLE_EQ(s.grid_real_fraction, 23.0 / 40.0);
  EXPECT_NE(s.Summary(10).find("3 rows, 2 batches/epoch, 76.7% real tokens"), std::string::npos)
      << s.Summary(10);

  int64_t targets = 0, real = 0, documents = 0;
  for (int64_t i = 0; i < 2; ++i) {
    Batch b;
    ASSERT_TRUE(ds->GetBatch(0, i, &b).ok());
    EXPECT_EQ(b.tokens.size(), 20u);
    int64_t ones = 0;
    for (uint8_t m : b.loss_mask) ones += m;
    EXPECT_EQ(b.target_tokens, ones);
    targets += b.target_tokens;
    real += b.real_tokens;
    documents += b.documents;
    if (i == 1) {
      // The last batch has one real row ([3]) and one padding row.
      EXPECT_EQ(b.rows, 1);
      EXPECT_EQ(b.real_tokens, 3);
      for (int t = 10; t < 20; ++t) {
        EXPECT_EQ(b.tokens[t], kPad);
        EXPECT_EQ(b.segment_ids[t], -1);
        EXPECT_EQ(b.positions[t], 0);
        EXPECT_EQ(b.targets[t], kPad);
        EXPECT_EQ(b.loss_mask[t], 0);
      }
    }
  }
  EXPECT_EQ(targets, s.target_tokens);
  EXPECT_EQ(real, s.tokens);
  EXPECT_EQ(documents, 5);
  Batch b;
  Status out = ds->GetBatch(0, 2, &b);
  EXPECT_EQ(out.code(), StatusCode::kOutOfRange);
  EXPECT_EQ(out.message(), "examples: batch 2 of epoch 0 is outside the 2 batches of an epoch");
}

TEST(DataDatasetTest, ShufflingIsDeterministicPerSeedAndEpoch) {
  DataOptions options;
  options.seq_len = 64;
  options.micro_batch = 4;
  options.seed = 1234;
  std::vector<Example> docs = RandomDocs(300, 64, 5);
  std::unique_ptr<Dataset> a = Make(docs, options);
  std::unique_ptr<Dataset> b = Make(docs, options);
  options.seed = 1235;
  std::unique_ptr<Dataset> c = Make(docs, options);
  ASSERT_EQ(a->batches_per_epoch(), c->batches_per_epoch());
  EXPECT_EQ(a->fingerprint(), c->fingerprint());  // the seed is checked on its own

  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<int32_t> ids = EpochDocIds(a.get(), epoch);
    // Every document exactly once per epoch.
    std::vector<int32_t> sorted = ids;
    std::sort(sorted.begin(), sorted.end());
    ASSERT_EQ(sorted.size(), 300u);
    for (int32_t i = 0; i < 300; ++i) ASSERT_EQ(sorted[i], i);
    // The same seed gives the same batches, in any order of asking.
    for (int64_t i = a->batches_per_epoch() - 1; i >= 0; --i) {
      Batch x, y;
      ASSERT_TRUE(a->GetBatch(epoch, i, &x).ok());
      ASSERT_TRUE(b->GetBatch(epoch, i, &y).ok());
      ASSERT_TRUE(SameBatch(x, y)) << "epoch " << epoch << " batch " << i;
    }
  }
  EXPECT_NE(EpochDocIds(a.get(), 0), EpochDocIds(a.get(), 1));  // epochs differ
  EXPECT_NE(EpochDocIds(a.get(), 0), EpochDocIds(c.get(), 0));  // seeds differ
  // Packing does not depend on the order: every epoch has the same rows.
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    EXPECT_EQ(static_cast<int64_t>(a->EpochRows(epoch).size()), a->stats().rows);
  }
  EXPECT_GT(a->stats().real_token_fraction, 0.9);  // random lengths pack well
}

TEST(DataDatasetTest, ResumedIterationSeesTheSameBatches) {
  DataOptions options;
  options.seq_len = 32;
  options.micro_batch = 3;
  options.seed = 99;
  std::vector<Example> docs = RandomDocs(40, 32, 8);
  std::unique_ptr<Dataset> ds = Make(docs, options);
  const int64_t per_epoch = ds->batches_per_epoch();
  ASSERT_GE(per_epoch, 3);
  Batcher run(ds.get());
  std::vector<Batch> batches;
  std::map<int, std::string> saved;  // step -> state as JSON text
  for (int step = 0; step < 3 * per_epoch; ++step) {
    saved[step] = run.SaveState().dump();
    Batch b;
    ASSERT_TRUE(run.Next(&b).ok());
    EXPECT_EQ(b.epoch, step / per_epoch);
    EXPECT_EQ(b.index, step % per_epoch);
    batches.push_back(b);
  }
  EXPECT_EQ(run.cursor().epoch, 3);
  EXPECT_EQ(run.cursor().batch, 0);

  // A fresh process: the data loaded again, the state restored.
  for (int step : {1, static_cast<int>(per_epoch) - 1, static_cast<int>(per_epoch),
                   static_cast<int>(2 * per_epoch + 1)}) {
    std::unique_ptr<Dataset> again = Make(docs, options);
    Batcher resumed(again.get());
    Json state;
    ASSERT_TRUE(ParseJson(saved[step], "state.json", "state", &state).ok());
    ASSERT_TRUE(resumed.RestoreState(state).ok());
    for (size_t k = step; k < batches.size(); ++k) {
      Batch b;
      ASSERT_TRUE(resumed.Next(&b).ok());
      ASSERT_TRUE(SameBatch(b, batches[k])) << "resumed at " << step << ", batch " << k;
    }
  }

  Json state = run.SaveState();
  EXPECT_EQ(state["epoch"], 3);
  EXPECT_EQ(state["batch"], 0);
  EXPECT_EQ(state["seed"], 99);
  // Another seed, other data, a bad position: errors, not silent drift.
  options.seed = 100;
  std::unique_ptr<Dataset> other_seed = Make(docs, options);
  Status s = Batcher(other_seed.get()).RestoreState(state);
  EXPECT_EQ(s.message(), "data state was saved with seed 99, but this run uses seed 100");
  options.seed = 99;
  docs[3].tokens[1] += 1;
  std::unique_ptr<Dataset> other_data = Make(docs, options);
  s = Batcher(other_data.get()).RestoreState(state);
  EXPECT_NE(s.message().find("data state was saved for other data"), std::string::npos)
      << s.message();
  Json bad = state;
  bad["batch"] = per_epoch;
  s = Batcher(ds.get()).RestoreState(bad);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  bad["batch"] = "1";
  EXPECT_FALSE(Batcher(ds.get()).RestoreState(bad).ok());
}

TEST(DataDatasetTest, ValidationKeepsFileOrderEveryEpoch) {
  DataOptions options;
  options.seq_len = 16;
  options.micro_batch = 4;
  options.shuffle = false;
  options.pack = false;
  std::vector<Example> docs = RandomDocs(10, 16, 3);
  std::unique_ptr<Dataset> ds = Make(docs, options);
  EXPECT_EQ(ds->stats().rows, 10);
  EXPECT_EQ(ds->batches_per_epoch(), 3);
  std::vector<int32_t> expected(10);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(EpochDocIds(ds.get(), 0), expected);  // one example per row, in file order
  EXPECT_EQ(EpochDocIds(ds.get(), 5), expected);
  Batch b0, b1;
  ASSERT_TRUE(ds->GetBatch(0, 2, &b0).ok());
  ASSERT_TRUE(ds->GetBatch(7, 2, &b1).ok());
  EXPECT_TRUE(SameBatch(b0, b1));
  EXPECT_EQ(b0.rows, 2);  // 10 = 4 + 4 + 2: two padding rows
  EXPECT_EQ(b0.documents, 2);

  // Packed validation: deterministic too, every document once.
  options.pack = true;
  std::unique_ptr<Dataset> packed = Make(docs, options);
  std::vector<int32_t> ids = EpochDocIds(packed.get(), 0);
  EXPECT_EQ(ids, EpochDocIds(packed.get(), 1));
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, expected);
  EXPECT_LT(packed->stats().rows, 10);
}

TEST(DataDatasetTest, LoadsJsonlEndToEnd) {
  std::unique_ptr<Tokenizer> tok = DataTestTokenizer();
  TempDir dir;
  std::string path = dir.Join("train.jsonl");
  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "the big river ";
  WriteFile(path,
            "{\"messages\": [{\"role\": \"user\", \"content\": \"hello\"}, {\"role\": "
            "\"assistant\", \"content\": \"the cat sat\"}]}\n"
            "\n"
            "{\"instruction\": \"what\", \"output\": \"a tree\"}\n"
            "{\"prompt\": \"" + long_prompt + "\", \"completion\": \"never seen\"}\n"
            "{\"text\": \"" + long_prompt + "\"}\n"
            "{\"prompt\": \"is\", \"completion\": \"ok\"}\n");
  DataOptions options;
  options.seq_len = 48;
  options.micro_batch = 2;
  options.shuffle = false;
  options.pack = false;
  StatusOr<std::unique_ptr<Dataset>> ds = Dataset::Load(path, *tok, options);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  const DataStats& s = (*ds)->stats();
  EXPECT_EQ(s.records, 5);
  EXPECT_EQ(s.records_by_format[static_cast<int>(RecordFormat::kChat)], 1);
  EXPECT_EQ(s.records_by_format[static_cast<int>(RecordFormat::kAlpaca)], 1);
  EXPECT_EQ(s.records_by_format[static_cast<int>(RecordFormat::kPromptCompletion)], 2);
  EXPECT_EQ(s.records_by_format[static_cast<int>(RecordFormat::kText)], 1);
  EXPECT_EQ(s.truncated, 2);           // the long prompt and the long text
  EXPECT_EQ(s.dropped_no_target, 1);   // the long prompt's reply is cut off
  EXPECT_EQ(s.examples, 4);
  EXPECT_LT(s.max_token_id, tok->vocab_size());
  EXPECT_NE(s.Summary(48).find("5 records (chat 1, alpaca 1, prompt_completion 2, text 1), 2 "
                               "truncated to 48 tokens, 1 dropped with no target"),
            std::string::npos)
      << s.Summary(48);
  EXPECT_EQ((*ds)->examples()[2].line, 5);  // the text record

  // Row 0 is the chat record: the mask marks exactly the reply and its EOS.
  Batch b;
  ASSERT_TRUE((*ds)->GetBatch(0, 0, &b).ok());
  std::vector<int32_t> predicted;
  for (int64_t t = 0; t < options.seq_len; ++t) {
    if (b.loss_mask[t]) predicted.push_back(b.targets[t]);
  }
  EXPECT_EQ(tok->DecodeWithControls(predicted).value(), "the cat sat </s>");
  EXPECT_EQ(b.segment_ids[0], 0);

  // A bad line names the file and the line.
  WriteFile(path, "{\"text\": \"a\"}\n{\"messages\": [{\"role\": \"assistant\", \"content\": "
                  "\"x\"}]}\n");
  ds = Dataset::Load(path, *tok, options);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().message().rfind(path + ":2: messages[0].role 'assistant' must be 'user'",
                                        0),
            0u)
      << ds.status().message();
  options.seq_len = 1;
  ds = Dataset::Load(path, *tok, options);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().message(), "seq_len 1 must be at least 2");
}

}  // namespace
}  // namespace data
}  // namespace lorart

namespace lorart {
namespace data {
namespace {

// Replay: general documents (ids 500+, every token a target) mixed into a
// task set (ids 0+, only the second half of each document trained on) up to
// the asked share of the tokens, cycling through a small replay set, the
// same for the same seed; every replay document reaches the batches whole.
TEST(Replay, MixesGeneralTokensAtTheRatio) {
  DataOptions o;
  o.seq_len = 32;
  o.micro_batch = 4;
  o.seed = 3;
  std::vector<Example> task = RandomDocs(40, 30, 11);
  for (Example& ex : task)
    for (size_t i = 0; i < ex.is_target.size(); ++i) ex.is_target[i] = i >= ex.is_target.size() / 2;
  std::vector<Example> general;
  for (int i = 0; i < 5; ++i) general.push_back(Doc(500 + i, 12 + i));
  std::unique_ptr<Dataset> train = Make(task, o);
  std::unique_ptr<Dataset> replay = Make(general, o);
  for (double ratio : {0.1, 0.3, 0.6}) {
    StatusOr<std::unique_ptr<Dataset>> mixed = Dataset::WithReplay(*train, *replay, ratio, 7);
    ASSERT_TRUE(mixed.ok()) << mixed.status().ToString();
    const DataStats& s = (*mixed)->stats();
    double share = double(s.replay_tokens) / double(s.tokens);
    EXPECT_NEAR(share, ratio, 0.02) << ratio;
    EXPECT_EQ(s.tokens, train->stats().tokens + s.replay_tokens);
    EXPECT_GT(s.replay_examples, 5) << "a small replay set is cycled through";
    EXPECT_NE(s.Summary(o.seq_len).find("with replay of examples: "), std::string::npos);
    // Every replay token but a document's first is trained on; the batches
    // hold the replay documents.
    int64_t replay_docs = 0, batches = (*mixed)->batches_per_epoch();
    Batch b;
    for (int64_t i = 0; i < batches; ++i) {
      ASSERT_TRUE((*mixed)->GetBatch(0, i, &b).ok());
      for (int32_t id : DocIds(b)) replay_docs += id >= 500;
    }
    EXPECT_EQ(replay_docs, s.replay_examples);
    int64_t replay_targets = 0;
    for (const Example& ex : (*mixed)->examples())
      if (ex.tokens[0] >= 1500)
        for (uint8_t t : ex.is_target) replay_targets += t;
    EXPECT_EQ(replay_targets, s.replay_tokens - s.replay_examples);
  }
  // Deterministic in the seed.
  auto a = Dataset::WithReplay(*train, *replay, 0.3, 7), b = Dataset::WithReplay(*train, *replay, 0.3, 7);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->fingerprint(), (*b)->fingerprint());
  std::vector<Example> many;
  for (int i = 0; i < 60; ++i) many.push_back(Doc(500 + i, 8));
  std::unique_ptr<Dataset> big = Make(many, o);
  auto c = Dataset::WithReplay(*train, *big, 0.1, 7), d = Dataset::WithReplay(*train, *big, 0.1, 8);
  ASSERT_TRUE(c.ok() && d.ok());
  EXPECT_NE((*c)->fingerprint(), (*d)->fingerprint()) << "another seed, another replay subset";
  // The ratio must be a share.
  for (double bad : {0.0, 1.0, -0.5, 2.0}) {
    StatusOr<std::unique_ptr<Dataset>> e = Dataset::WithReplay(*train, *replay, bad, 7);
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.status().message().find("--replay-ratio must be in (0, 1)"), std::string::npos);
  }
}

}  // namespace
}  // namespace data
}  // namespace lorart

namespace lorart {
namespace data {
namespace {

using ::lorart::testing::DataTestTokenizer;

PreferenceRecord Pair(const std::string& prompt, const std::string& chosen,
                      const std::string& rejected, int64_t line) {
  PreferenceRecord r;
  std::string text = "{\"prompt\": \"" + prompt + "\", \"chosen\": \"" + chosen +
                     "\", \"rejected\": \"" + rejected + "\"}";
  EXPECT_TRUE(ParsePreferenceRecord(text, "t:" + std::to_string(line), &r).ok());
  r.line = line;
  return r;
}

// Preference batches: one pair a row (chosen, then rejected), sequence ids
// 2r / 2r + 1 on the final reply's loss tokens only, pair_mask on the rows
// that hold a pair; with replay, general text in rows of its own spread so
// that every batch keeps a pair, its loss tokens in replay_mask.
TEST(Preference, BatchesHoldOnePairARowAndReplayInRowsOfTheirOwn) {
  std::unique_ptr<Tokenizer> tok = DataTestTokenizer();
  DataOptions o;
  o.seq_len = 64;
  o.micro_batch = 4;
  o.preference = true;
  o.chat_template = ChatTemplate::kSimple;
  std::vector<PreferenceRecord> records;
  for (int i = 0; i < 10; ++i)
    records.push_back(Pair("say the word number " + std::to_string(i), "yes indeed", "no", i + 1));
  StatusOr<std::unique_ptr<Dataset>> ds = Dataset::FromPreferences(records, "prefs", *tok, o);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ((*ds)->stats().pairs, 10);
  EXPECT_EQ((*ds)->batches_per_epoch(), 3);  // 10 rows of 4
  Batch b;
  ASSERT_TRUE((*ds)->GetBatch(0, 2, &b).ok());
  EXPECT_EQ(b.pair_mask, (std::vector<uint8_t>{1, 1, 0, 0}));
  for (int64_t r = 0; r < 2; ++r) {
    int chosen = 0, rejected = 0;
    for (int64_t t = 0; t < 64; ++t) {
      int32_t id = b.sequence_ids[r * 64 + t];
      EXPECT_EQ(id >= 0, b.loss_mask[r * 64 + t] == 1);
      chosen += id == 2 * r;
      rejected += id == 2 * r + 1;
      EXPECT_TRUE(id < 0 || id == 2 * r || id == 2 * r + 1);
    }
    EXPECT_GT(chosen, 0);
    EXPECT_GT(rejected, 0);
  }
  // Replay: general documents in rows of their own.
  std::vector<Example> general;
  for (int i = 0; i < 12; ++i) {
    Example ex;
    for (int t = 0; t < 30; ++t) ex.tokens.push_back(3 + (i * 7 + t) % 50);
    ex.is_target.assign(ex.tokens.size(), 1);
    general.push_back(ex);
  }
  DataOptions go = o;
  go.preference = false;
  std::unique_ptr<Dataset> replay = Make(general, go);
  StatusOr<std::unique_ptr<Dataset>> mixed = Dataset::WithReplay(**ds, *replay, 0.3, 5);
  ASSERT_TRUE(mixed.ok()) << mixed.status().ToString();
  int64_t pairs = 0, replay_tokens = 0;
  for (int64_t i = 0; i < (*mixed)->batches_per_epoch(); ++i) {
    ASSERT_TRUE((*mixed)->GetBatch(1, i, &b).ok());
    int64_t in_batch = 0;
    for (int64_t r = 0; r < 4; ++r) {
      in_batch += b.pair_mask[r];
      for (int64_t t = 0; t < 64; ++t) {
        size_t at = static_cast<size_t>(r * 64 + t);
        replay_tokens += b.replay_mask[at];
        EXPECT_FALSE(b.replay_mask[at] && b.loss_mask[at]);
        if (b.replay_mask[at]) {
          EXPECT_EQ(b.pair_mask[r], 0) << "replay text in a pair's row";
        }
      }
    }
    EXPECT_GT(in_batch, 0) << "batch " << i << " holds no pair";
    pairs += in_batch;
  }
  EXPECT_EQ(pairs, 10) << "every pair once an epoch";
  EXPECT_GT(replay_tokens, 0);
  // Too much replay for the batch size is refused.
  StatusOr<std::unique_ptr<Dataset>> flood = Dataset::WithReplay(**ds, *replay, 0.95, 5);
  ASSERT_FALSE(flood.ok());
  EXPECT_NE(flood.status().message().find("without a preference pair"), std::string::npos)
      << flood.status().message();
}

}  // namespace
}  // namespace data
}  // namespace lorart
