#include "lorart/data/hf/bpe_model.h"

#include <algorithm>

#include "lorart/base/strings.h"
#include "lorart/data/hf/unicode.h"

namespace lorart {
namespace data {
namespace hf {
namespace {

// Ids above this are refused: the id -> piece table is dense.
constexpr int64_t kMaxId = (1 << 24) - 1;

struct HeapEntry {
  uint32_t rank;
  int32_t pos;
  int32_t new_id;
};
// std::push_heap keeps the largest first: "larger" = lower rank, then lower pos.
struct HeapLess {
  bool operator()(const HeapEntry& a, const HeapEntry& b) const {
    if (a.rank != b.rank) return a.rank > b.rank;
    return a.pos > b.pos;
  }
};

Status OptionalString(const JsonFields& f, const Json& json, const std::string& path,
                      const char* key, std::string* out, bool* present) {
  const Json* v = f.Find(json, key);
  *present = v != nullptr;
  if (v == nullptr) return OkStatus();
  return f.AsString(*v, JsonFields::Join(path, key), out);
}

}  // namespace

StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const JsonFields& f, const Json& json,
                                                       const std::string& path) {
  LORA_RETURN_IF_ERROR(f.ExpectObject(json, path));
  std::string type;
  LORA_RETURN_IF_ERROR(f.GetString(json, path, "type", false, &type));
  if (type.empty() && f.Find(json, "merges") == nullptr) {
    return f.Error(JsonFields::Join(path, "type"), "is missing");
  }
  if (!type.empty() && type != "BPE") {
    return f.Error(JsonFields::Join(path, "type"),
                   StrFormat("model type %s is not supported (lorart reads BPE tokenizers)",
                             Quote(type).c_str()));
  }
  std::unique_ptr<BpeModel> m(new BpeModel());
  const Json* dropout = f.Find(json, "dropout");
  if (dropout != nullptr) {
    if (!dropout->is_number()) {
      return f.Error(JsonFields::Join(path, "dropout"),
                     StrFormat("must be a number or null, not %s", JsonTypeName(*dropout)));
    }
    if (dropout->get<double>() != 0.0) {
      return f.Error(JsonFields::Join(path, "dropout"),
                     StrFormat("BPE dropout %g is not supported: it makes tokenization random "
                               "(lorart needs null or 0)",
                               dropout->get<double>()));
    }
  }
  LORA_RETURN_IF_ERROR(f.GetBool(json, path, "fuse_unk", &m->fuse_unk_));
  LORA_RETURN_IF_ERROR(f.GetBool(json, path, "byte_fallback", &m->byte_fallback_));
  LORA_RETURN_IF_ERROR(f.GetBool(json, path, "ignore_merges", &m->ignore_merges_));
  LORA_RETURN_IF_ERROR(OptionalString(f, json, path, "unk_token", &m->unk_token_, &m->has_unk_));
  LORA_RETURN_IF_ERROR(OptionalString(f, json, path, "continuing_subword_prefix", &m->prefix_,
                                      &m->has_prefix_));
  LORA_RETURN_IF_ERROR(OptionalString(f, json, path, "end_of_word_suffix", &m->suffix_,
                                      &m->has_suffix_));

  // vocab
  const Json* vocab = f.Find(json, "vocab");
  std::string vpath = JsonFields::Join(path, "vocab");
  if (vocab == nullptr) return f.Error(vpath, "is missing");
  if (!vocab->is_object()) {
    return f.Error(vpath, StrFormat("must be an object of piece: id, not %s", JsonTypeName(*vocab)));
  }
  int64_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    int64_t id;
    std::string p = JsonFields::Join(vpath, Quote(it.key(), 60).c_str());
    LORA_RETURN_IF_ERROR(f.AsInt(it.value(), p, &id));
    if (id < 0 || id > kMaxId) {
      return f.Error(p, StrFormat("id %lld is out of range [0, %lld]", static_cast<long long>(id),
                                  static_cast<long long>(kMaxId)));
    }
    if (FindInvalidUtf8(it.key()) != std::string::npos) return f.Error(p, "is not valid UTF-8");
    max_id = std::max(max_id, id);
  }
  m->pieces_.resize(static_cast<size_t>(max_id + 1));
  m->has_piece_.assign(static_cast<size_t>(max_id + 1), false);
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    int64_t id;
    (void)f.AsInt(it.value(), vpath, &id);
    if (m->has_piece_[id]) continue;  // two pieces, one id: the first is the piece of the id
    m->pieces_[id] = it.key();
    m->has_piece_[id] = true;
  }
  m->vocab_.reserve(vocab->size() * 2);
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    int64_t id;
    (void)f.AsInt(it.value(), vpath, &id);
    std::string_view key = m->has_piece_[id] && m->pieces_[id] == it.key()
                               ? std::string_view(m->pieces_[id])
                               : std::string_view();
    if (key.data() == nullptr) {
      // A second piece with the same id: keep its text alive in pieces_'s
      // tail storage.
      m->extra_pieces_.push_back(std::make_unique<std::string>(it.key()));
      key = *m->extra_pieces_.back();
    }
    m->vocab_[key] = static_cast<int32_t>(id);
  }
  for (int b = 0; b < 256; ++b) {
    m->byte_ids_[b] = m->PieceToId(StrFormat("<0x%02X>", b));
  }
  if (m->has_unk_) m->unk_id_ = m->PieceToId(m->unk_token_);

  // merges
  LORA_ASSIGN_OR_RETURN(const Json* merges, f.GetArray(json, path, "merges"));
  std::string mpath = JsonFields::Join(path, "merges");
  m->merges_.reserve(merges->size() * 2);
  for (size_t i = 0; i < merges->size(); ++i) {
    const Json& item = (*merges)[i];
    std::string p = JsonFields::Index(mpath, i);
    std::string a, b;
    if (item.is_string()) {
      const std::string& line = item.get_ref<const std::string&>();
      size_t sp = line.find(' ');
      if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos) {
        return f.Error(p, StrFormat("must be two pieces separated by one space, not %s",
                                    Quote(line).c_str()));
      }
      a = line.substr(0, sp);
      b = line.substr(sp + 1);
    } else if (item.is_array() && item.size() == 2 && item[0].is_string() && item[1].is_string()) {
      a = item[0].get_ref<const std::string&>();
      b = item[1].get_ref<const std::string&>();
    } else {
      return f.Error(p, StrFormat("must be a string \"a b\" or a pair [\"a\", \"b\"], not %s",
                                  JsonSnippet(item).c_str()));
    }
    int32_t a_id = m->PieceToId(a), b_id = m->PieceToId(b);
    if (a_id < 0) return f.Error(p, StrFormat("piece %s is not in the vocabulary", Quote(a).c_str()));
    if (b_id < 0) return f.Error(p, StrFormat("piece %s is not in the vocabulary", Quote(b).c_str()));
    size_t prefix_len = m->has_prefix_ ? m->prefix_.size() : 0;
    if (b.size() < prefix_len) {
      return f.Error(p, StrFormat("piece %s is shorter than continuing_subword_prefix",
                                  Quote(b).c_str()));
    }
    std::string merged = a + b.substr(prefix_len);
    int32_t new_id = m->PieceToId(merged);
    if (new_id < 0) {
      return f.Error(p, StrFormat("the merged piece %s is not in the vocabulary",
                                  Quote(merged).c_str()));
    }
    // As a HashMap collected from the list: a repeated pair keeps its last rank.
    m->merges_[PairKey(a_id, b_id)] = MergeValue{static_cast<uint32_t>(i), new_id};
  }
  return m;
}

Status BpeModel::MergeWord(std::string_view w, std::vector<Symbol>* symbols) const {
  symbols->clear();
  auto add = [symbols](int32_t id, uint32_t len) {
    int32_t n = static_cast<int32_t>(symbols->size());
    if (n > 0) symbols->back().next = n;
    symbols->push_back(Symbol{id, n - 1, -1, len});
  };
  bool has_pending_unk = false;
  int32_t pending_id = 0;
  uint32_t pending_len = 0;
  std::string buf;
  for (size_t i = 0; i < w.size();) {
    size_t len = Utf8Len(static_cast<unsigned char>(w[i]));
    if (i + len > w.size()) len = w.size() - i;
    bool is_first = i == 0;
    bool is_last = i + len >= w.size();
    std::string_view s = w.substr(i, len);
    if ((!is_first && has_prefix_) || (is_last && has_suffix_)) {
      buf.clear();
      if (!is_first && has_prefix_) buf += prefix_;
      buf.append(s);
      if (is_last && has_suffix_) buf += suffix_;
      s = buf;
    }
    i += len;
    auto it = vocab_.find(s);
    if (it != vocab_.end()) {
      if (has_pending_unk) {
        add(pending_id, pending_len);
        has_pending_unk = false;
      }
      add(it->second, static_cast<uint32_t>(len));
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : s) all &= byte_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : s) add(byte_ids_[b], 1);
        continue;
      }
    }
    if (has_unk_) {
      if (unk_id_ < 0) {
        return InvalidArgumentError(StrFormat("unk_token %s is not in the vocabulary",
                                              Quote(unk_token_).c_str()));
      }
      if (has_pending_unk && fuse_unk_) {
        pending_len += static_cast<uint32_t>(len);
      } else {
        if (has_pending_unk) add(pending_id, pending_len);
        has_pending_unk = true;
        pending_id = unk_id_;
        pending_len = static_cast<uint32_t>(len);
      }
    }
  }
  if (has_pending_unk) add(pending_id, pending_len);
  return OkStatus();
}

void BpeModel::MergeAll(std::vector<Symbol>* symbols) const {
  thread_local std::vector<HeapEntry> heap;
  heap.clear();
  std::vector<Symbol>& sym = *symbols;
  const int32_t n = static_cast<int32_t>(sym.size());
  for (int32_t i = 0; i + 1 < n; ++i) {
    auto it = merges_.find(PairKey(sym[i].id, sym[i + 1].id));
    if (it != merges_.end()) heap.push_back({it->second.rank, i, it->second.new_id});
  }
  std::make_heap(heap.begin(), heap.end(), HeapLess());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), HeapLess());
    HeapEntry top = heap.back();
    heap.pop_back();
    Symbol& cur = sym[top.pos];
    if (cur.len == 0 || cur.next == -1) continue;
    int32_t next_pos = cur.next;
    Symbol right = sym[next_pos];
    auto it = merges_.find(PairKey(cur.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    sym[next_pos].len = 0;
    if (right.next > -1 && right.next < n) sym[right.next].prev = top.pos;
    if (cur.prev >= 0) {
      auto p = merges_.find(PairKey(sym[cur.prev].id, cur.id));
      if (p != merges_.end()) {
        heap.push_back({p->second.rank, cur.prev, p->second.new_id});
        std::push_heap(heap.begin(), heap.end(), HeapLess());
      }
    }
    if (cur.next >= 0 && cur.next < n) {
      auto q = merges_.find(PairKey(cur.id, sym[cur.next].id));
      if (q != merges_.end()) {
        heap.push_back({q->second.rank, top.pos, q->second.new_id});
        std::push_heap(heap.begin(), heap.end(), HeapLess());
      }
    }
  }
  sym.erase(std::remove_if(sym.begin(), sym.end(), [](const Symbol& s) { return s.len == 0; }),
            sym.end());
}

Status BpeModel::Tokenize(std::string_view word, std::vector<ModelToken>* out) const {
  if (word.empty()) return OkStatus();
  if (ignore_merges_) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out->push_back({it->second, 0, static_cast<uint32_t>(word.size())});
      return OkStatus();
    }
  }
  bool cacheable = word.size() < kCacheMaxWord;
  if (cacheable) {
    std::shared_lock<std::shared_mutex> lock(cache_mu_);
    auto it = cache_.find(std::string(word));
    if (it != cache_.end()) {
      uint32_t pos = 0;
      const auto& v = it->second;
      for (size_t k = 0; k + 1 < v.size(); k += 2) {
        out->push_back({static_cast<int32_t>(v[k]), pos, pos + v[k + 1]});
        pos += v[k + 1];
      }
      return OkStatus();
    }
  }
  thread_local std::vector<Symbol> symbols;
  LORA_RETURN_IF_ERROR(MergeWord(word, &symbols));
  MergeAll(&symbols);
  uint32_t pos = 0;
  for (const auto& s : symbols) {
    out->push_back({s.id, pos, pos + s.len});
    pos += s.len;
  }
  if (cacheable) {
    std::vector<uint32_t> v;
    v.reserve(symbols.size() * 2);
    for (const auto& s : symbols) {
      v.push_back(static_cast<uint32_t>(s.id));
      v.push_back(s.len);
    }
    std::unique_lock<std::shared_mutex> lock(cache_mu_, std::try_to_lock);
    if (lock.owns_lock() && cache_.size() < kCacheCapacity) cache_.emplace(word, std::move(v));
  }
  return OkStatus();
}

}  // namespace hf
}  // namespace data
}  // namespace lorart
