// The evaluator: walks the AST with jinja2's scoping (a for-loop iteration,
// a macro call, a call/generation/filter/set block body each get a child
// scope; if-blocks do not), undefined handling (environment.getattr/getitem
// of the sandbox) and Python operator semantics.
#include <cmath>
#include <limits>

#include "lorart/base/strings.h"
#include "lorart/data/jinja/internal.h"

namespace lorart::data::jinja {
namespace {

constexpr int kMaxEvalDepth = 2000;

struct Scope {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* Find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent.get()) {
      for (const auto& v : s->vars) {
        if (v.first == name) return &v.second;
      }
    }
    return nullptr;
  }
  void Set(const std::string& name, Value value) {
    for (auto& v : vars) {
      if (v.first == name) {
        v.second = std::move(value);
        return;
      }
    }
    vars.emplace_back(name, std::move(value));
  }
};
using ScopePtr = std::shared_ptr<Scope>;

ScopePtr Child(const ScopePtr& parent) {
  auto s = std::make_shared<Scope>();
  s->parent = parent;
  return s;
}

struct LoopObj : Object {
  std::shared_ptr<const std::vector<Value>> items;
  int64_t index0 = 0;
};

struct LoopCycle : CallableObj {
  std::shared_ptr<LoopObj> loop;
  Value Call(Interp&, CallArgs& args) override {
    if (args.pos.empty()) Fail("TypeError: no items for cycling given");
    return args.pos[static_cast<size_t>(loop->index0) % args.pos.size()];
  }
};

struct MacroObj : CallableObj {
  const Node* node = nullptr;
  ScopePtr closure;
  Value Call(Interp& in, CallArgs& args) override;
};

enum class Flow { kNormal, kBreak, kContinue };

class Evaluator : public Interp {
 public:
  Evaluator(const TemplateImpl& tmpl, const RenderOptions& options) : tmpl_(tmpl), options_(options) {}
  // Macros live in the scope they close over, and namespaces may hold
  // themselves: break those reference cycles.
  ~Evaluator() override {
    for (auto& s : macro_scopes_) s->vars.clear();
    for (auto& ns : namespaces_) ns->attrs.clear();
  }
  void Track(std::shared_ptr<NamespaceObj> ns) override { namespaces_.push_back(std::move(ns)); }

  Rendered Run(const Value& context) {
    ValueLimits limits;
    limits.max_bytes = options_.max_output_bytes;
    limits.max_steps = options_.max_loop_iterations;
    limits.max_depth = 1000;  // about Python's recursion limit
    // Everything the render's values hold at once: four outputs' worth (a
    // 50 MiB message, its rendering and the copies a template's string
    // concatenation makes stay well below it).
    limits.max_live_bytes =
        options_.max_output_bytes > SIZE_MAX / 4 ? SIZE_MAX - 1 : 4 * options_.max_output_bytes;
    ValueLimitsScope limits_scope(limits);
    auto globals = std::make_shared<Scope>();
    for (const auto& name : GlobalNames()) globals->Set(name, MakeGlobal(name));
    ScopePtr root = Child(globals);
    if (!context.is_dict()) Fail("the render context must be a dict");
    for (const auto& e : context.entries()) {
      if (!e.first.is_string()) Fail("render context keys must be strings");
      root->Set(e.first.string_value().text(), e.second);
    }
    root_out_ = &output_;
    Exec(tmpl_.body, root, &output_);
    Rendered r;
    r.text = output_.text();
    r.runs = output_.Runs();
    r.generation = std::move(generation_);
    return r;
  }

  // ---- Interp
  Value CallValue(const Value& callee, CallArgs& args) override {
    if (callee.is_undefined()) FailUndefined(callee);
    if (callee.kind() != Value::Kind::kCallable) Fail("TypeError: '" + TypeName(callee) + "' object is not callable");
    return static_cast<CallableObj*>(callee.object().get())->Call(*this, args);
  }

  Value GetAttr(const Value& obj, const std::string& name) override {
    if (obj.is_undefined()) FailUndefined(obj);
    if (name.size() >= 2 && name[0] == '_' && name[1] == '_') {
      return Value::UndefinedWith("access to attribute '" + name + "' of '" + TypeName(obj) + "' object is unsafe.",
                                  true);
    }
    switch (obj.kind()) {
      case Value::Kind::kDict:
      case Value::Kind::kString:
      case Value::Kind::kList:
      case Value::Kind::kTuple: {
        bool found = false;
        Value m = GetMethod(obj, name, &found);
        if (found) return m;
        if (obj.is_dict()) {
          if (const Value* v = obj.Find(name)) return *v;
        }
        break;
      }
      case Value::Kind::kNamespace: {
        auto* ns = static_cast<NamespaceObj*>(obj.object().get());
        if (Value* v = ns->Find(name)) return *v;
        break;
      }
      case Value::Kind::kLoop: return LoopAttr(obj, name);
      default: break;
    }
    return NoAttribute(obj, name);
  }

  Value GetItem(const Value& obj, const Value& key) override {
    if (obj.is_undefined()) FailUndefined(obj);
    switch (obj.kind()) {
      case Value::Kind::kDict:
        for (const auto& e : obj.entries()) {
          if (PyEq(e.first, key)) return e.second;
        }
        break;
      case Value::Kind::kList:
      case Value::Kind::kTuple:
      case Value::Kind::kString:
        if (key.kind() == Value::Kind::kInt || key.kind() == Value::Kind::kBool) {
          int64_t n = obj.is_string() ? static_cast<int64_t>(CodePointCount(obj.string_value().text()))
                                      : static_cast<int64_t>(obj.items().size());
          int64_t i = key.int_value();
          if (i < 0) i += n;
          if (i >= 0 && i < n) {
            if (!obj.is_string()) return obj.items()[static_cast<size_t>(i)];
            const LabelledString& s = obj.string_value();
            if (IsAscii(s.text())) return Value::String(s.Slice(static_cast<size_t>(i), static_cast<size_t>(i) + 1));
            auto offs = CodePointOffsets(s.text());
            return Value::String(s.Slice(offs[static_cast<size_t>(i)], offs[static_cast<size_t>(i) + 1]));
          }
        }
        break;
      default: break;
    }
    if (key.is_string()) {
      // environment.getitem falls back to getattr for string keys.
      const std::string& name = key.string_value().text();
      if (obj.kind() != Value::Kind::kDict || !obj.Find(name)) {
        Value v = GetAttr(obj, name);
        return v;
      }
    }
    return Value::UndefinedWith(ObjectTypeRepr(obj) + " has no element " + PyRepr(key).text());
  }

  void CountIterations(int64_t n) override {
    iterations_ += n;
    if (iterations_ > options_.max_loop_iterations) {
      Fail(StrFormat("the template ran more than %lld loop iterations and macro calls",
                     static_cast<long long>(options_.max_loop_iterations)));
    }
  }

  void CheckSize(size_t bytes) const override {
    if (bytes > options_.max_output_bytes) {
      Fail(StrFormat("the output would exceed %zu bytes", options_.max_output_bytes));
    }
  }

  const RenderOptions& options() const override { return options_; }

  Value CallMacro(const MacroObj& m, CallArgs& args);

 private:
  struct DepthGuard {
    Evaluator* e;
    explicit DepthGuard(Evaluator* ev) : e(ev) {
      if (++e->depth_ > kMaxEvalDepth) Fail("the template evaluation nests too deeply");
    }
    ~DepthGuard() { --e->depth_; }
  };

  static Value NoAttribute(const Value& obj, const std::string& name) {
    return Value::UndefinedWith("'" + ObjectTypeRepr(obj) + "' has no attribute '" + name + "'");
  }

  Value LoopAttr(const Value& obj, const std::string& name) {
    auto loop = std::static_pointer_cast<LoopObj>(obj.object());
    int64_t n = static_cast<int64_t>(loop->items->size());
    int64_t i = loop->index0;
    if (name == "index") return Value::Int(i + 1);
    if (name == "index0") return Value::Int(i);
    if (name == "revindex") return Value::Int(n - i);
    if (name == "revindex0") return Value::Int(n - i - 1);
    if (name == "first") return Value::Bool(i == 0);
    if (name == "last") return Value::Bool(i == n - 1);
    if (name == "length") return Value::Int(n);
    if (name == "depth") return Value::Int(1);
    if (name == "depth0") return Value::Int(0);
    if (name == "previtem") {
      if (i > 0) return (*loop->items)[static_cast<size_t>(i - 1)];
      return Value::UndefinedWith("there is no previous item");
    }
    if (name == "nextitem") {
      if (i + 1 < n) return (*loop->items)[static_cast<size_t>(i + 1)];
      return Value::UndefinedWith("there is no next item");
    }
    if (name == "cycle") {
      auto c = std::make_shared<LoopCycle>();
      c->name = "cycle";
      c->loop = loop;
      return Value::FromObject(Value::Kind::kCallable, c);
    }
    if (name == "changed") Unsupported("loop.changed()");
    return NoAttribute(obj, name);
  }

  void Write(LabelledString* out, const LabelledString& s) {
    out->Append(s);
    CheckSize(out->size());
  }

  // ---- statements
  Flow Exec(const std::vector<NodePtr>& body, const ScopePtr& scope, LabelledString* out) {
    for (const auto& n : body) {
      Flow f = ExecOne(n.get(), scope, out);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Flow ExecOne(const Node* n, const ScopePtr& scope, LabelledString* out) {
    DepthGuard guard(this);
    try {
      return ExecNode(n, scope, out);
    } catch (JinjaError& e) {
      if (e.line == 0) {
        e.line = n->line;
        e.col = n->col;
      }
      throw;
    }
  }

  LabelledString Capture(const std::vector<NodePtr>& body, const ScopePtr& scope) {
    LabelledString buf;
    Exec(body, scope, &buf);
    return buf;
  }

  Flow ExecNode(const Node* n, const ScopePtr& scope, LabelledString* out) {
    switch (n->kind) {
      case NodeKind::kOutput:
        for (const auto& part : n->args) {
          if (part->kind == NodeKind::kConst && part->constant.is_string()) {
            Write(out, part->constant.string_value());
          } else {
            Write(out, PyStr(Eval(part.get(), scope)));
          }
        }
        return Flow::kNormal;
      case NodeKind::kIf:
        for (size_t i = 0; i < n->args.size(); ++i) {
          if (Truthy(Eval(n->args[i].get(), scope))) return Exec(n->branches[i], scope, out);
        }
        return Exec(n->else_body, scope, out);
      case NodeKind::kFor: return ExecFor(n, scope, out);
      case NodeKind::kSet: Assign(n->a.get(), Eval(n->b.get(), scope), scope); return Flow::kNormal;
      case NodeKind::kSetBlock: {
        Value v = Value::String(Capture(n->body, Child(scope)));
        if (n->b) v = ApplyFilterChain(n->b.get(), v, scope);
        Assign(n->a.get(), v, scope);
        return Flow::kNormal;
      }
      case NodeKind::kMacro: {
        auto m = std::make_shared<MacroObj>();
        m->name = n->name;
        m->node = n;
        m->closure = scope;
        macro_scopes_.push_back(scope);
        scope->Set(n->name, Value::FromObject(Value::Kind::kCallable, m));
        return Flow::kNormal;
      }
      case NodeKind::kCallBlock: {
        auto caller = std::make_shared<MacroObj>();
        caller->name = "caller";
        caller->node = n;
        caller->closure = scope;
        const Node* call = n->a.get();
        Value callee = Eval(call->a.get(), scope);
        CallArgs args = EvalArgs(call, scope);
        args.kw.emplace_back("caller", Value::FromObject(Value::Kind::kCallable, caller));
        Write(out, PyStr(CallValue(callee, args)));
        return Flow::kNormal;
      }
      case NodeKind::kFilterBlock: {
        Value v = Value::String(Capture(n->body, Child(scope)));
        Write(out, PyStr(ApplyFilterChain(n->a.get(), v, scope)));
        return Flow::kNormal;
      }
      case NodeKind::kWith: {
        ScopePtr inner = Child(scope);
        for (size_t i = 0; i < n->args.size(); ++i) Assign(n->args[i].get(), Eval(n->defaults[i].get(), scope), inner);
        return Exec(n->body, inner, out);
      }
      case NodeKind::kGeneration: {
        LabelledString body = Capture(n->body, Child(scope));
        size_t start = out->size();
        Write(out, body);
        if (out == root_out_) generation_.emplace_back(start, out->size());
        return Flow::kNormal;
      }
      case NodeKind::kBreak: return Flow::kBreak;
      case NodeKind::kContinue: return Flow::kContinue;
      default: Fail("internal error: unexpected statement node");
    }
  }

  Flow ExecFor(const Node* n, const ScopePtr& scope, LabelledString* out) {
    Value iterable = Eval(n->b.get(), scope);
    std::vector<Value> all = Iterate(iterable);
    CountIterations(static_cast<int64_t>(all.size()));
    auto items = std::make_shared<std::vector<Value>>();
    if (n->c) {
      for (auto& item : all) {
        ScopePtr test_scope = Child(scope);
        Assign(n->a.get(), item, test_scope);
        if (Truthy(Eval(n->c.get(), test_scope))) items->push_back(std::move(item));
      }
    } else {
      *items = std::move(all);
    }
    if (items->empty()) {
      return Exec(n->else_body, Child(scope), out);
    }
    auto loop = std::make_shared<LoopObj>();
    loop->items = items;
    Value loop_value = Value::FromObject(Value::Kind::kLoop, loop);
    for (size_t i = 0; i < items->size(); ++i) {
      loop->index0 = static_cast<int64_t>(i);
      ScopePtr iter = Child(scope);
      Assign(n->a.get(), (*items)[i], iter);
      iter->Set("loop", loop_value);
      Flow f = Exec(n->body, iter, out);
      if (f == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  void Assign(const Node* target, const Value& value, const ScopePtr& scope) {
    switch (target->kind) {
      case NodeKind::kName: scope->Set(target->name, value); return;
      case NodeKind::kNSRef: {
        const Value* ns = scope->Find(target->name);
        if (!ns || ns->kind() != Value::Kind::kNamespace) {
          FailAt(target->line, target->col, "cannot assign attribute on non-namespace object");
        }
        auto* obj = static_cast<NamespaceObj*>(ns->object().get());
        if (Value* slot = obj->Find(target->attr)) {
          *slot = value;
        } else {
          obj->attrs.emplace_back(target->attr, value);
        }
        return;
      }
      case NodeKind::kTuple: {
        std::vector<Value> items = Iterate(value);
        size_t want = target->args.size();
        if (items.size() > want) Fail(StrFormat("ValueError: too many values to unpack (expected %zu)", want));
        if (items.size() < want) {
          Fail(StrFormat("ValueError: not enough values to unpack (expected %zu, got %zu)", want, items.size()));
        }
        for (size_t i = 0; i < want; ++i) Assign(target->args[i].get(), items[i], scope);
        return;
      }
      default: FailAt(target->line, target->col, "can't assign to this expression");
    }
  }

  // ---- expressions
  Value Eval(const Node* n, const ScopePtr& scope) {
    DepthGuard guard(this);
    try {
      return EvalNode(n, scope);
    } catch (JinjaError& e) {
      if (e.line == 0) {
        e.line = n->line;
        e.col = n->col;
      }
      throw;
    }
  }

  CallArgs EvalArgs(const Node* n, const ScopePtr& scope) {
    CallArgs args;
    for (const auto& a : n->args) args.pos.push_back(Eval(a.get(), scope));
    for (const auto& kw : n->kwargs) args.kw.emplace_back(kw.first, Eval(kw.second.get(), scope));
    return args;
  }

  Value ApplyFilterChain(const Node* f, const Value& input, const ScopePtr& scope) {
    Value in = f->a ? ApplyFilterChain(f->a.get(), input, scope) : input;
    return CallFilter(f, in, scope);
  }

  Value CallFilter(const Node* n, const Value& input, const ScopePtr& scope) {
    if (!IsKnownFilter(n->name)) Fail("No filter named '" + n->name + "' found.");
    CallArgs args = EvalArgs(n, scope);
    return ApplyFilter(*this, n->name, input, args);
  }

  Value EvalNode(const Node* n, const ScopePtr& scope) {
    switch (n->kind) {
      case NodeKind::kConst: return n->constant;
      case NodeKind::kName: {
        if (const Value* v = scope->Find(n->name)) return *v;
        return Value::UndefinedWith("'" + n->name + "' is undefined");
      }
      case NodeKind::kTuple:
      case NodeKind::kList: {
        std::vector<Value> items;
        for (const auto& a : n->args) items.push_back(Eval(a.get(), scope));
        return n->kind == NodeKind::kTuple ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
      }
      case NodeKind::kDict: {
        Value d = Value::Dict();
        for (size_t i = 0; i + 1 < n->args.size(); i += 2) {
          Value k = Eval(n->args[i].get(), scope);
          if (k.kind() == Value::Kind::kList || k.kind() == Value::Kind::kDict) {
            Fail("TypeError: unhashable type: '" + TypeName(k) + "'");
          }
          d.Insert(std::move(k), Eval(n->args[i + 1].get(), scope));
        }
        return d;
      }
      case NodeKind::kGetattr: return GetAttr(Eval(n->a.get(), scope), n->name);
      case NodeKind::kGetitem: {
        Value obj = Eval(n->a.get(), scope);
        if (n->b->kind == NodeKind::kSlice) return EvalSlice(obj, n->b.get(), scope);
        return GetItem(obj, Eval(n->b.get(), scope));
      }
      case NodeKind::kNeg:
      case NodeKind::kPos: {
        Value v = Eval(n->a.get(), scope);
        CheckDefined(v);
        bool neg = n->kind == NodeKind::kNeg;
        if (v.kind() == Value::Kind::kInt || v.kind() == Value::Kind::kBool) {
          if (neg && v.int_value() == std::numeric_limits<int64_t>::min()) Fail("integer overflow");
          return Value::Int(neg ? -v.int_value() : v.int_value());
        }
        if (v.kind() == Value::Kind::kFloat) return Value::Double(neg ? -v.double_value() : v.double_value());
        Fail(std::string("TypeError: bad operand type for unary ") + (neg ? "-" : "+") + ": '" + TypeName(v) + "'");
      }
      case NodeKind::kNot: return Value::Bool(!Truthy(Eval(n->a.get(), scope)));
      case NodeKind::kBinary: return BinaryOp(n->name, Eval(n->a.get(), scope), Eval(n->b.get(), scope));
      case NodeKind::kAnd: {
        Value a = Eval(n->a.get(), scope);
        if (!Truthy(a)) return a;
        return Eval(n->b.get(), scope);
      }
      case NodeKind::kOr: {
        Value a = Eval(n->a.get(), scope);
        if (Truthy(a)) return a;
        return Eval(n->b.get(), scope);
      }
      case NodeKind::kConcat: {
        LabelledString s;
        for (const auto& a : n->args) {
          s.Append(PyStr(Eval(a.get(), scope)));
          CheckSize(s.size());
        }
        return Value::String(std::move(s));
      }
      case NodeKind::kCompare: {
        Value left = Eval(n->a.get(), scope);
        for (size_t i = 0; i < n->ops.size(); ++i) {
          Value right = Eval(n->args[i].get(), scope);
          if (!Compare(n->ops[i], left, right)) return Value::Bool(false);
          left = std::move(right);
        }
        return Value::Bool(true);
      }
      case NodeKind::kCondExpr:
        if (Truthy(Eval(n->a.get(), scope))) return Eval(n->b.get(), scope);
        if (n->c) return Eval(n->c.get(), scope);
        return Value::UndefinedWith(StrFormat("the inline if-expression on line %d evaluated to false and no else "
                                              "section was defined.",
                                              n->line));
      case NodeKind::kCall: {
        Value callee = Eval(n->a.get(), scope);
        CallArgs args = EvalArgs(n, scope);
        return CallValue(callee, args);
      }
      case NodeKind::kFilter: return CallFilter(n, Eval(n->a.get(), scope), scope);
      case NodeKind::kTest: {
        if (!IsKnownTest(n->name)) Fail("No test named '" + n->name + "' found.");
        Value input = Eval(n->a.get(), scope);
        CallArgs args = EvalArgs(n, scope);
        return Value::Bool(ApplyTest(*this, n->name, input, args));
      }
      default: Fail("internal error: unexpected expression node");
    }
  }

  static bool SliceIndex(const Value& v, int64_t* out) {
    if (v.is_none()) return false;
    if (v.kind() != Value::Kind::kInt && v.kind() != Value::Kind::kBool) {
      Fail("TypeError: slice indices must be integers or None");
    }
    *out = v.int_value();
    return true;
  }

  Value EvalSlice(const Value& obj, const Node* s, const ScopePtr& scope) {
    Value start = s->a ? Eval(s->a.get(), scope) : Value::None();
    Value stop = s->b ? Eval(s->b.get(), scope) : Value::None();
    Value step_v = s->c ? Eval(s->c.get(), scope) : Value::None();
    if (obj.is_undefined()) FailUndefined(obj);
    bool is_str = obj.is_string();
    if (!is_str && obj.kind() != Value::Kind::kList && obj.kind() != Value::Kind::kTuple) {
      return Value::UndefinedWith(ObjectTypeRepr(obj) + " has no element slice(" + PyRepr(start).text() + ", " +
                                  PyRepr(stop).text() + ", " + PyRepr(step_v).text() + ")");
    }
    int64_t step = 1;
    SliceIndex(step_v, &step);
    if (step == 0) Fail("ValueError: slice step cannot be zero");
    std::vector<size_t> offs;
    int64_t len;
    if (is_str) {
      offs = CodePointOffsets(obj.string_value().text());
      len = static_cast<int64_t>(offs.size()) - 1;
    } else {
      len = static_cast<int64_t>(obj.items().size());
    }
    // Python's PySlice_AdjustIndices.
    int64_t lo, hi;
    bool has_lo = SliceIndex(start, &lo), has_hi = SliceIndex(stop, &hi);
    if (!has_lo) lo = step < 0 ? len - 1 : 0;
    else if (lo < 0) lo = std::max<int64_t>(lo + len, step < 0 ? -1 : 0);
    else if (lo >= len) lo = step < 0 ? len - 1 : len;
    if (!has_hi) hi = step < 0 ? -1 : len;
    else if (hi < 0) hi = std::max<int64_t>(hi + len, step < 0 ? -1 : 0);
    else if (hi >= len) hi = step < 0 ? len - 1 : len;
    std::vector<int64_t> idx;
    if (step > 0) {
      for (int64_t i = lo; i < hi; i += step) idx.push_back(i);
    } else {
      for (int64_t i = lo; i > hi; i += step) idx.push_back(i);
    }
    if (is_str) {
      LabelledString out;
      const LabelledString& s = obj.string_value();
      if (step == 1) {
        if (!idx.empty()) out.AppendSlice(s, offs[static_cast<size_t>(idx.front())], offs[static_cast<size_t>(idx.back()) + 1]);
      } else {
        for (int64_t i : idx) out.AppendSlice(s, offs[static_cast<size_t>(i)], offs[static_cast<size_t>(i) + 1]);
      }
      return Value::String(std::move(out));
    }
    std::vector<Value> items;
    items.reserve(idx.size());
    for (int64_t i : idx) items.push_back(obj.items()[static_cast<size_t>(i)]);
    return obj.kind() == Value::Kind::kTuple ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
  }

  static bool IsNum(const Value& v) {
    return v.kind() == Value::Kind::kInt || v.kind() == Value::Kind::kBool || v.kind() == Value::Kind::kFloat;
  }
  static bool IsIntLike(const Value& v) { return v.kind() == Value::Kind::kInt || v.kind() == Value::Kind::kBool; }

  [[noreturn]] static void Unsupported2(const std::string& op, const Value& a, const Value& b) {
    Fail("TypeError: unsupported operand type(s) for " + op + ": '" + TypeName(a) + "' and '" + TypeName(b) + "'");
  }

  Value Repeat(const Value& seq, int64_t times) {
    const size_t n = seq.is_string() ? seq.string_value().size() : seq.items().size();
    // Nothing to repeat makes nothing ('' * 10**18 would loop 10**18 times).
    if (times <= 0 || n == 0) times = 0;
    // n * times without wrapping around (a wrapped product passes the check).
    if (times > 0 && static_cast<uint64_t>(times) > std::numeric_limits<size_t>::max() / n) {
      CheckSize(std::numeric_limits<size_t>::max());
    }
    CheckSize(n * static_cast<size_t>(times));
    if (seq.is_string()) {
      const LabelledString& s = seq.string_value();
      LabelledString out;
      for (int64_t i = 0; i < times; ++i) out.Append(s);
      return Value::String(std::move(out));
    }
    std::vector<Value> items;
    for (int64_t i = 0; i < times; ++i) items.insert(items.end(), seq.items().begin(), seq.items().end());
    return seq.kind() == Value::Kind::kTuple ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
  }

  Value BinaryOp(const std::string& op, const Value& a, const Value& b) {
    CheckDefined(a);
    CheckDefined(b);
    bool ints = IsIntLike(a) && IsIntLike(b);
    bool nums = IsNum(a) && IsNum(b);
    int64_t x = a.int_value(), y = b.int_value(), r = 0;
    double fx = a.double_value(), fy = b.double_value();
    if (op == "+") {
      if (ints) {
        if (__builtin_add_overflow(x, y, &r)) Fail("integer overflow");
        return Value::Int(r);
      }
      if (nums) return Value::Double(fx + fy);
      if (a.is_string() && b.is_string()) {
        CheckSize(a.string_value().size() + b.string_value().size());
        LabelledString s = a.string_value();
        s.Append(b.string_value());
        return Value::String(std::move(s));
      }
      if ((a.kind() == Value::Kind::kList || a.kind() == Value::Kind::kTuple) && a.kind() == b.kind()) {
        CheckSize(a.items().size() + b.items().size());  // as Repeat: doubling a list in a loop
        std::vector<Value> items = a.items();
        items.insert(items.end(), b.items().begin(), b.items().end());
        return a.kind() == Value::Kind::kTuple ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
      }
      if (a.is_string() || a.kind() == Value::Kind::kList || a.kind() == Value::Kind::kTuple) {
        Fail("TypeError: can only concatenate " + TypeName(a) + " (not \"" + TypeName(b) + "\") to " + TypeName(a));
      }
      Unsupported2(op, a, b);
    }
    if (op == "-") {
      if (ints) {
        if (__builtin_sub_overflow(x, y, &r)) Fail("integer overflow");
        return Value::Int(r);
      }
      if (nums) return Value::Double(fx - fy);
      Unsupported2(op, a, b);
    }
    if (op == "*") {
      if (ints) {
        if (__builtin_mul_overflow(x, y, &r)) Fail("integer overflow");
        return Value::Int(r);
      }
      if (nums) return Value::Double(fx * fy);
      bool seq_a = a.is_string() || a.kind() == Value::Kind::kList || a.kind() == Value::Kind::kTuple;
      bool seq_b = b.is_string() || b.kind() == Value::Kind::kList || b.kind() == Value::Kind::kTuple;
      if (seq_a && IsIntLike(b)) return Repeat(a, y);
      if (seq_b && IsIntLike(a)) return Repeat(b, x);
      if (seq_a || seq_b) {
        Fail("TypeError: can't multiply sequence by non-int of type '" + TypeName(seq_a ? b : a) + "'");
      }
      Unsupported2(op, a, b);
    }
    if (op == "/") {
      if (!nums) Unsupported2(op, a, b);
      if (fy == 0) Fail("ZeroDivisionError: division by zero");
      return Value::Double(fx / fy);
    }
    if (op == "//") {
      if (!nums) Unsupported2(op, a, b);
      if (ints) {
        if (y == 0) Fail("ZeroDivisionError: integer division or modulo by zero");
        if (x == std::numeric_limits<int64_t>::min() && y == -1) Fail("integer overflow");
        int64_t q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
        return Value::Int(q);
      }
      if (fy == 0) Fail("ZeroDivisionError: float floor division by zero");
      return Value::Double(std::floor(fx / fy));
    }
    if (op == "%") {
      if (a.is_string()) {
        LabelledString s = PercentFormat(a.string_value(), b, options_.max_output_bytes);
        CheckSize(s.size());
        return Value::String(std::move(s));
      }
      if (!nums) Unsupported2(op, a, b);
      if (ints) {
        if (y == 0) Fail("ZeroDivisionError: integer division or modulo by zero");
        int64_t m = y == -1 ? 0 : x % y;  // INT64_MIN % -1 overflows in C++
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        return Value::Int(m);
      }
      if (fy == 0) Fail("ZeroDivisionError: float modulo");
      double m = std::fmod(fx, fy);
      if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
      return Value::Double(m);
    }
    if (op == "**") {
      if (!nums) Unsupported2("** or pow()", a, b);
      if (ints && y >= 0) {
        int64_t result = 1, base = x;
        int64_t e = y;
        while (e > 0) {
          if (e & 1) {
            if (__builtin_mul_overflow(result, base, &result)) Fail("integer overflow");
          }
          e >>= 1;
          if (e > 0 && __builtin_mul_overflow(base, base, &base)) Fail("integer overflow");
        }
        return Value::Int(result);
      }
      if (fx == 0 && fy < 0) Fail("ZeroDivisionError: 0.0 cannot be raised to a negative power");
      return Value::Double(std::pow(fx, fy));
    }
    Fail("internal error: unknown operator " + op);
  }

  bool Contains(const Value& container, const Value& item) {
    switch (container.kind()) {
      case Value::Kind::kUndefined:
        if (container.undefined_is_security()) FailUndefined(container);
        return false;
      case Value::Kind::kString:
        if (!item.is_string()) {
          Fail("TypeError: 'in <string>' requires string as left operand, not " + TypeName(item));
        }
        return container.string_value().text().find(item.string_value().text()) != std::string::npos;
      case Value::Kind::kList:
      case Value::Kind::kTuple:
      case Value::Kind::kIterator:
        for (const auto& v : container.items()) {
          if (PyEq(v, item)) return true;
        }
        return false;
      case Value::Kind::kDict:
        for (const auto& e : container.entries()) {
          if (PyEq(e.first, item)) return true;
        }
        return false;
      default: Fail("TypeError: argument of type '" + TypeName(container) + "' is not iterable");
    }
  }

  bool Compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return PyEq(a, b);
    if (op == "!=") return !PyEq(a, b);
    if (op == "in") return Contains(b, a);
    if (op == "notin") return !Contains(b, a);
    if (op == "<") return PyLess(a, b, "<");
    if (op == ">") return PyLess(b, a, ">");
    if (op == "<=") return PyLess(a, b, "<=") || PyEq(a, b);
    if (op == ">=") return PyLess(b, a, ">=") || PyEq(a, b);
    Fail("internal error: unknown comparison " + op);
  }

  const TemplateImpl& tmpl_;
  RenderOptions options_;
  LabelledString output_;
  LabelledString* root_out_ = nullptr;
  std::vector<std::pair<size_t, size_t>> generation_;
  int64_t iterations_ = 0;
  int depth_ = 0;
  int call_depth_ = 0;
  std::vector<ScopePtr> macro_scopes_;
  std::vector<std::shared_ptr<NamespaceObj>> namespaces_;
  friend struct MacroObj;
};

Value MacroObj::Call(Interp& in, CallArgs& args) { return static_cast<Evaluator&>(in).CallMacro(*this, args); }

Value Evaluator::CallMacro(const MacroObj& m, CallArgs& args) {
  const Node* n = m.node;
  bool is_caller = n->kind == NodeKind::kCallBlock;
  std::string name = is_caller ? std::string("caller") : n->name;
  if (call_depth_ >= options_.max_call_depth) {
    Fail(StrFormat("maximum recursion depth exceeded: more than %d nested macro calls", options_.max_call_depth));
  }
  // Calls count as loop iterations: a macro that calls itself twice runs
  // 2^depth times without a loop.
  CountIterations(1);
  ScopePtr scope = Child(m.closure);
  size_t nparams = n->params.size();
  std::vector<bool> bound(nparams, false);
  std::vector<Value> varargs;
  for (size_t i = 0; i < args.pos.size(); ++i) {
    if (i < nparams) {
      scope->Set(n->params[i], args.pos[i]);
      bound[i] = true;
    } else if (n->uses_varargs) {
      varargs.push_back(args.pos[i]);
    } else {
      Fail(StrFormat("TypeError: macro '%s' takes not more than %zu argument(s)", name.c_str(), nparams));
    }
  }
  Value kwargs = Value::Dict();
  Value caller;
  for (auto& kw : args.kw) {
    size_t i = 0;
    while (i < nparams && n->params[i] != kw.first) ++i;
    if (i < nparams) {
      if (bound[i]) Fail("TypeError: macro '" + name + "' got multiple values for argument '" + kw.first + "'");
      scope->Set(kw.first, kw.second);
      bound[i] = true;
    } else if (kw.first == "caller" && n->uses_caller) {
      caller = kw.second;
    } else if (n->uses_kwargs) {
      kwargs.Insert(kw.first, kw.second);
    } else {
      Fail("TypeError: macro '" + name + "' takes no keyword argument '" + kw.first + "'");
    }
  }
  size_t first_default = nparams - n->defaults.size();
  for (size_t i = 0; i < nparams; ++i) {
    if (bound[i]) continue;
    if (i >= first_default) {
      scope->Set(n->params[i], Eval(n->defaults[i - first_default].get(), scope));
    } else {
      scope->Set(n->params[i], Value::UndefinedWith("parameter '" + n->params[i] + "' was not provided"));
    }
  }
  if (n->uses_varargs) scope->Set("varargs", Value::Tuple(std::move(varargs)));
  if (n->uses_kwargs) scope->Set("kwargs", kwargs);
  if (n->uses_caller) scope->Set("caller", caller);
  ++call_depth_;
  LabelledString out;
  try {
    Exec(n->body, scope, &out);
  } catch (...) {
    --call_depth_;
    throw;
  }
  --call_depth_;
  return Value::String(std::move(out));
}

}  // namespace

Rendered RenderTemplate(const TemplateImpl& tmpl, const Value& context, const RenderOptions& options) {
  Evaluator ev(tmpl, options);
  return ev.Run(context);
}

// ---------------------------------------------------------------------------
// Template

static std::string Located(const std::string& name, const JinjaError& e) {
  if (e.line > 0) return StrFormat("%s:%d:%d: %s", name.c_str(), e.line, e.col, e.message.c_str());
  return name + ": " + e.message;
}

StatusOr<Template> Template::Parse(std::string_view source, std::string name) {
  auto impl = std::make_shared<TemplateImpl>();
  impl->name = std::move(name);
  try {
    impl->body = ParseTokens(Lex(source));
  } catch (const JinjaError& e) {
    return InvalidArgumentError(Located(impl->name, e));
  }
  Template t;
  t.impl_ = std::move(impl);
  return t;
}

StatusOr<Rendered> Template::Render(const Value& context, const RenderOptions& options) const {
  if (!impl_) return InvalidArgumentError("rendering an empty Template");
  try {
    return RenderTemplate(*impl_, context, options);
  } catch (const JinjaError& e) {
    return InvalidArgumentError(Located(impl_->name, e));
  } catch (const std::bad_alloc&) {
    return InvalidArgumentError(impl_->name + ": out of memory while rendering");
  }
}

const std::string& Template::name() const {
  static const std::string kEmpty;
  return impl_ ? impl_->name : kEmpty;
}

}  // namespace lorart::data::jinja
