// Datasets and batches: a JSONL file tokenized once, then per epoch shuffled,
// packed into rows of seq_len and cut into micro-batches of the compiled
// step's [micro_batch, seq_len] inputs. Iteration state is two integers, so a
// resumed run sees exactly the batches it would have seen. See docs/data.md.
#ifndef LORART_DATA_DATASET_H_
#define LORART_DATA_DATASET_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/data/jsonl.h"
#include "lorart/data/packing.h"
#include "lorart/data/template.h"
#include "lorart/data/tokenizer.h"
#include "lorart/io/json.h"

namespace lorart {
namespace data {

struct DataOptions {
  int64_t seq_len = 0;      // tokens per row, >= 2 (the compiled step's seq_len)
  int64_t micro_batch = 1;  // rows per batch, >= 1
  ChatTemplate chat_template = ChatTemplate::kLlama2;
  Objective objective = Objective::kSft;
  bool pack = true;     // false: one example per row
  bool shuffle = true;  // false for validation: file order, the same every epoch
  uint64_t seed = 0;
  // Preference pairs (DPO, Dataset::FromPreferences): each row holds one
  // pair, chosen then rejected, so a batch holds micro_batch pairs.
  bool preference = false;
};

struct DataStats {
  std::string path;
  int64_t records = 0;
  int64_t records_by_format[kNumRecordFormats] = {};  // indexed by RecordFormat
  int64_t truncated = 0;          // longer than seq_len: cut to their first seq_len tokens
  int64_t dropped_no_target = 0;  // no target token left (after truncation): not used
  int64_t examples = 0;           // used
  // Longest example before truncation, in tokens; SFT and pretraining
  // records are tokenized only up to seq_len + 1 tokens (docs/data.md,
  // "Long records"), so a longer one counts as seq_len + 1.
  int64_t longest = 0;
  int64_t tokens = 0;             // tokens of the used examples (after truncation)
  int64_t target_tokens = 0;      // loss terms per epoch
  int32_t max_token_id = -1;      // must be below the model's vocabulary size
  int64_t rows = 0;               // rows per epoch (the same every epoch)
  int64_t batches_per_epoch = 0;  // ceil(rows / micro_batch)
  int64_t pairs = 0;  // preference pairs used (examples = 2 * pairs)
  // Replay (Dataset::WithReplay): general examples mixed in, and their tokens.
  std::string replay_path;
  int64_t replay_examples = 0;
  int64_t replay_tokens = 0;
  // Real (non-pad) tokens over rows * seq_len: how well packing fills rows.
  double real_token_fraction = 0;
  // Real tokens over batches_per_epoch * micro_batch * seq_len: the share of
  // the step's grid that is real, counting the padding rows of a last batch.
  double grid_real_fraction = 0;

  // One line for logs: "train.jsonl: 5 records (chat 1, alpaca 1,
  // prompt_completion 2, text 1), 2 truncated to 48 tokens, 1 dropped with no
  // target; 4 examples, 150 tokens, 96 targets; 4 rows, 2 batches/epoch,
  // 78.1% real tokens".
  std::string Summary(int64_t seq_len) const;
};

// One micro-batch: the compiled step's inputs, row-major [micro_batch, seq_len].
struct Batch {
  int64_t epoch = 0;
  int64_t index = 0;  // in the epoch
  int64_t micro_batch = 0;
  int64_t seq_len = 0;
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;    // 0, 1, ... per document; 0 on padding
  std::vector<int32_t> segment_ids;  // 0, 1, ... per document within a row; -1 on padding
  std::vector<int32_t> targets;      // the next token of the same document, else the pad id
  std::vector<uint8_t> loss_mask;    // 1 where targets[t] is trained on
  // Preference batches: the response a loss token belongs to (2r for row r's
  // chosen, 2r + 1 for its rejected response; -1 elsewhere), and which rows
  // hold a pair. Empty otherwise.
  std::vector<int32_t> sequence_ids;
  std::vector<uint8_t> pair_mask;
  // Preference batches with replay: the loss tokens of the replay rows'
  // general text (zeros without replay).
  std::vector<uint8_t> replay_mask;
  int64_t rows = 0;               // rows holding documents; the rest are padding
  int64_t documents = 0;
  int64_t real_tokens = 0;        // non-pad tokens
  int64_t target_tokens = 0;      // ones in loss_mask: the loss's denominator
};

class Dataset {
 public:
  // Reads a JSONL file, renders and tokenizes every record, truncates and
  // drops as described in docs/data.md. Errors name "path:line". The file
  // is streamed: one record is in memory at a time, and of each only its
  // first seq_len + 1 tokens are kept (and, of a long text, little more
  // tokenized): the peak does not grow with the file nor with a record.
  static StatusOr<std::unique_ptr<Dataset>> Load(const std::string& path,
                                                 const Tokenizer& tokenizer,
                                                 const DataOptions& options);
  // From records already read; `path` names them in messages and stats.
  static StatusOr<std::unique_ptr<Dataset>> FromRecords(const std::vector<Record>& records,
                                                        const std::string& path,
                                                        const Tokenizer& tokenizer,
                                                        const DataOptions& options);
  // Preference pairs (options.preference must be set): each response
  // rendered after its prompt with the chat template, the loss on the final
  // assistant reply only. A pair longer than seq_len is cut: the longer
  // response keeps what the shorter leaves (at least half the row each); a
  // pair left without a target token in either response is dropped.
  static StatusOr<std::unique_ptr<Dataset>> FromPreferences(
      const std::vector<PreferenceRecord>& records, const std::string& path,
      const Tokenizer& tokenizer, const DataOptions& options);
  static StatusOr<std::unique_ptr<Dataset>> LoadPreferences(const std::string& path,
                                                            const Tokenizer& tokenizer,
                                                            const DataOptions& options);
  // From tokenized examples (tests, other sources); truncates and drops the
  // same way. `pad_id` fills padding and the targets of last tokens.
  static StatusOr<std::unique_ptr<Dataset>> FromExamples(std::vector<Example> examples,
                                                         int32_t pad_id,
                                                         const DataOptions& options,
                                                         const std::string& name = "examples");

  // Replay against forgetting: `train` with examples of `replay` (general,
  // pretraining-style text, every token a target) added until they make up
  // `ratio` (in (0, 1)) of the mixed set's tokens. Replay examples are taken
  // in an order shuffled by `seed`, cycling through `replay` when it is
  // smaller than needed; the mix is the same every epoch and is then
  // shuffled and packed like any training set, so general text shares rows
  // and batches with the task (packing keeps documents apart). For
  // preference pairs the replay documents are packed into rows of their own,
  // shuffled among the pairs' rows (a replay row holds no pair); a DPO plan
  // compiled with --dpo-replay-weight trains on them. The stats are train's
  // with the replay counts.
  static StatusOr<std::unique_ptr<Dataset>> WithReplay(const Dataset& train,
                                                       const Dataset& replay, double ratio,
                                                       uint64_t seed);

  const DataOptions& options() const { return options_; }
  const DataStats& stats() const { return stats_; }
  int64_t batches_per_epoch() const { return stats_.batches_per_epoch; }
  const std::vector<Example>& examples() const { return examples_; }
  int32_t pad_id() const { return pad_id_; }
  // A hash of the examples and the layout options (seq_len, micro_batch,
  // pack, shuffle): a saved iteration state is only valid for the same one.
  uint64_t fingerprint() const { return fingerprint_; }

  // The rows of `epoch`, in order. With shuffle: the examples are permuted
  // by a generator seeded from (seed, epoch), packed (best-fit decreasing,
  // equal lengths in permuted order), and the rows permuted by a second
  // generator. Without: file order, rows in the order packing opened them.
  std::vector<PackedRow> EpochRows(int64_t epoch) const;

  // Batch `index` in [0, batches_per_epoch) of `epoch` >= 0: rows
  // [index * micro_batch, ...) of EpochRows(epoch); a last batch with fewer
  // rows is filled with padding rows (mask 0). Depends only on (epoch,
  // index). Caches the rows of the last epoch asked for: not thread-safe.
  Status GetBatch(int64_t epoch, int64_t index, Batch* out);

 private:
  Dataset() = default;
  static StatusOr<std::unique_ptr<Dataset>> Build(std::vector<Example> examples, int32_t pad_id,
                                                  const DataOptions& options, DataStats stats);
  // Calls its argument with every pair of a source (a file, a vector).
  using PreferenceSource =
      std::function<Status(const std::function<Status(const PreferenceRecord&)>&)>;
  static StatusOr<std::unique_ptr<Dataset>> PreferencesFrom(const PreferenceSource& for_each,
                                                            const std::string& path,
                                                            const Tokenizer& tokenizer,
                                                            const DataOptions& options);

  DataOptions options_;
  DataStats stats_;
  std::vector<Example> examples_;
  std::vector<int64_t> lengths_;
  int32_t pad_id_ = 0;
  uint64_t fingerprint_ = 0;
  int64_t cached_epoch_ = -1;
  std::vector<PackedRow> cached_rows_;
};

// Where an iteration stands: the next batch to produce.
struct DataCursor {
  int64_t epoch = 0;
  int64_t batch = 0;
};

// Iterates a dataset's batches epoch after epoch.
class Batcher {
 public:
  explicit Batcher(Dataset* dataset, DataCursor start = {});

  // The batch at the cursor; then the cursor moves to the next batch (batch
  // 0 of the next epoch after the last one).
  Status Next(Batch* out);
  // Moves the cursor as Next does without making the batch (another rank's
  // micro-batch in data-parallel training).
  void Skip();
  DataCursor cursor() const { return cursor_; }
  // INVALID_ARGUMENT if the batch is outside [0, batches_per_epoch) or the
  // epoch is negative.
  Status Seek(DataCursor cursor);

  // For checkpoints: {"epoch": E, "batch": B, "seed": S, "fingerprint":
  // "16 hex digits"}. Restoring checks the seed and the fingerprint, so a
  // run cannot silently resume over different data or a different layout.
  Json SaveState() const;
  Status RestoreState(const Json& state);

 private:
  Dataset* dataset_;
  DataCursor cursor_;
};

}  // namespace data
}  // namespace lorart

#endif  // LORART_DATA_DATASET_H_
