// The parser: jinja2's Parser (parser.py) for the statements and expressions
// chat templates use, producing the AST of internal.h.
//
// Node layout by kind:
//   Const: constant          Name: name             Tuple/List: args
//   Dict: args (key, value, key, value, ...)        Getattr: a, name
//   Getitem: a, b            Slice: a, b, c (each may be null)
//   Neg/Pos/Not: a           Binary: a, b, name = "+" "-" "*" "/" "//" "%" "**"
//   And/Or: a, b             Concat: args           Compare: a, ops[i] with args[i]
//   CondExpr: a = test, b = value if true, c = value if false (may be null)
//   Call: a = callee, args, kwargs                  Filter/Test: a = input, name, args, kwargs
//   NSRef: name, attr
//   Output: args              If: args[i] tests, branches[i] bodies, else_body
//   For: a = target, b = iterable, c = filter test (may be null), body, else_body
//   Set: a = target, b = value                       SetBlock: a = target, b = filter chain, body
//   Macro: name, params, defaults, body              CallBlock: a = call, params, defaults, body
//   FilterBlock: a = filter chain (innermost input null), body
//   With: args = targets, kwargs (unused), defaults = values, body
//   Generation: body          Break/Continue
#include <set>

#include "lorart/data/jinja/internal.h"

namespace lorart::data::jinja {
namespace {

constexpr int kMaxNesting = 256;

const std::set<std::string>& UnsupportedTags() {
  static const std::set<std::string> tags = {"block", "extends", "include", "import", "from", "autoescape"};
  return tags;
}

std::string DescribeToken(const Token& t) {
  switch (t.type) {
    case Tok::kEof: return "end of template";
    case Tok::kBlockEnd: return "end of statement block";
    case Tok::kVarEnd: return "end of print statement";
    case Tok::kBlockBegin: return "begin of statement block";
    case Tok::kVarBegin: return "begin of print statement";
    case Tok::kData: return "template data / text";
    case Tok::kString: return "string";
    case Tok::kInt: return "integer";
    case Tok::kFloat: return "float";
    default: return t.text;
  }
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  std::vector<NodePtr> Parse() {
    std::vector<NodePtr> body = Subparse({});
    if (Cur().type != Tok::kEof) Error(Cur(), "unexpected " + Quoted(Cur()));
    for (auto& n : body) Check(n.get(), false);
    return body;
  }

 private:
  // ---- token stream
  const Token& Cur() const { return toks_[pos_]; }
  const Token& Look() const { return toks_[pos_ + 1 < toks_.size() ? pos_ + 1 : pos_]; }
  const Token& Next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  bool IsName(const Token& t, const char* v) const { return t.type == Tok::kName && t.text == v; }
  bool IsOp(const Token& t, const char* v) const { return t.type == Tok::kOp && t.text == v; }
  bool SkipName(const char* v) {
    if (IsName(Cur(), v)) {
      Next();
      return true;
    }
    return false;
  }
  bool SkipOp(const char* v) {
    if (IsOp(Cur(), v)) {
      Next();
      return true;
    }
    return false;
  }
  static std::string Quoted(const Token& t) { return "'" + DescribeToken(t) + "'"; }

  [[noreturn]] void Error(const Token& t, std::string msg) { FailAt(t.line, t.col, std::move(msg)); }

  void ExpectEnd(const Token& t, Tok type, const char* what) {
    if (t.type == type) return;
    if (t.type == Tok::kEof) Error(t, std::string("unexpected end of template, expected '") + what + "'.");
    Error(t, std::string("expected token '") + what + "', got " + Quoted(t));
  }
  const Token& ExpectOp(const char* v) {
    if (!IsOp(Cur(), v)) {
      if (Cur().type == Tok::kEof) Error(Cur(), std::string("unexpected end of template, expected '") + v + "'.");
      Error(Cur(), std::string("expected token '") + v + "', got " + Quoted(Cur()));
    }
    return Next();
  }
  const Token& ExpectName() {
    if (Cur().type != Tok::kName) {
      if (Cur().type == Tok::kEof) Error(Cur(), "unexpected end of template, expected 'name'.");
      Error(Cur(), "expected token 'name', got " + Quoted(Cur()));
    }
    return Next();
  }
  void ExpectNameValue(const char* v) {
    if (!IsName(Cur(), v)) Error(Cur(), std::string("expected token '") + v + "', got " + Quoted(Cur()));
    Next();
  }

  NodePtr Make(NodeKind k, const Token& t) {
    auto n = std::make_unique<Node>();
    n->kind = k;
    n->line = t.line;
    n->col = t.col;
    return n;
  }

  // Counts nesting (primaries, chained operators, blocks) to bound recursion.
  struct DepthGuard {
    Parser* p;
    int n = 0;
    DepthGuard(Parser* parser, const Token& t, bool enter = false) : p(parser) {
      if (enter) More(t);
    }
    void More(const Token& t) {
      p->Enter(t);
      ++n;
    }
    ~DepthGuard() { p->depth_ -= n; }
  };
  void Enter(const Token& t) {
    if (++depth_ > kMaxNesting) {
      Error(t, "the template nests deeper than " + std::to_string(kMaxNesting) + " levels");
    }
  }

  // ---- statements
  std::vector<NodePtr> Subparse(const std::vector<std::string>& end_tokens) {
    DepthGuard guard(this, Cur(), true);
    std::vector<NodePtr> body;
    NodePtr output;
    auto flush = [&]() {
      if (output) body.push_back(std::move(output));
    };
    while (Cur().type != Tok::kEof) {
      const Token& t = Cur();
      if (t.type == Tok::kData) {
        if (!output) output = Make(NodeKind::kOutput, t);
        NodePtr c = Make(NodeKind::kConst, t);
        c->constant = Value::String(t.text);
        output->args.push_back(std::move(c));
        Next();
      } else if (t.type == Tok::kVarBegin) {
        Next();
        if (!output) output = Make(NodeKind::kOutput, t);
        output->args.push_back(ParseTuple(false, true, {}, false));
        ExpectEnd(Cur(), Tok::kVarEnd, "end of print statement");
        Next();
      } else if (t.type == Tok::kBlockBegin) {
        flush();
        Next();
        if (Cur().type == Tok::kName) {
          for (const auto& e : end_tokens) {
            if (Cur().text == e) return body;
          }
        }
        body.push_back(ParseStatement());
        ExpectEnd(Cur(), Tok::kBlockEnd, "end of statement block");
        Next();
      } else {
        Error(t, "unexpected " + Quoted(t));
      }
    }
    flush();
    if (!end_tokens.empty()) {
      std::string looking;
      for (size_t i = 0; i < end_tokens.size(); ++i) {
        looking += (i ? (i + 1 == end_tokens.size() ? " or " : ", ") : "") + ("'" + end_tokens[i] + "'");
      }
      Error(Cur(), "Unexpected end of template. Jinja was looking for the following tags: " + looking +
                       ". The innermost block that needs to be closed is '" + tag_stack_.back() + "'.");
    }
    return body;
  }

  // Parses `%}` body up to one of end_tokens; the current token is then the
  // end tag name (consumed when drop_needle).
  std::vector<NodePtr> ParseStatements(const std::vector<std::string>& end_tokens, bool drop_needle) {
    SkipOp(":");
    ExpectEnd(Cur(), Tok::kBlockEnd, "end of statement block");
    Next();
    std::vector<NodePtr> body = Subparse(end_tokens);
    if (drop_needle) Next();
    return body;
  }

  NodePtr ParseStatement() {
    const Token& t = Cur();
    if (t.type != Tok::kName) Error(t, "tag name expected");
    tag_stack_.push_back(t.text);
    NodePtr n = ParseStatementTag();
    tag_stack_.pop_back();
    return n;
  }

  NodePtr ParseStatementTag() {
    const Token& t = Cur();
    const std::string& n = t.text;
    if (n == "if") return ParseIf();
    if (n == "for") return ParseFor();
    if (n == "set") return ParseSet();
    if (n == "macro") return ParseMacro();
    if (n == "call") return ParseCallBlock();
    if (n == "filter") return ParseFilterBlock();
    if (n == "with") return ParseWith();
    if (n == "print") {
      NodePtr out = Make(NodeKind::kOutput, Next());
      while (Cur().type != Tok::kBlockEnd) {
        if (!out->args.empty()) ExpectOp(",");
        out->args.push_back(ParseExpression(true));
      }
      return out;
    }
    if (n == "break" || n == "continue") {
      if (loop_depth_ == 0) Error(t, "'" + n + "' outside of a loop is not supported by lorart's chat-template interpreter");
      return Make(n == "break" ? NodeKind::kBreak : NodeKind::kContinue, Next());
    }
    if (n == "generation") {
      NodePtr g = Make(NodeKind::kGeneration, Next());
      int saved = loop_depth_;
      loop_depth_ = 0;
      g->body = ParseStatements({"endgeneration"}, true);
      loop_depth_ = saved;
      return g;
    }
    if (UnsupportedTags().count(n)) {
      Error(t, "'{% " + n + " %}' is not supported by lorart's chat-template interpreter");
    }
    Error(t, "Encountered unknown tag '" + n + "'.");
  }

  NodePtr ParseIf() {
    NodePtr node = Make(NodeKind::kIf, Next());
    while (true) {
      node->args.push_back(ParseTuple(false, false, {}, false));
      node->branches.push_back(ParseStatements({"elif", "else", "endif"}, false));
      const Token& t = Next();
      if (t.text == "elif") continue;
      if (t.text == "else") node->else_body = ParseStatements({"endif"}, true);
      break;
    }
    return node;
  }

  NodePtr ParseFor() {
    NodePtr node = Make(NodeKind::kFor, Next());
    node->a = ParseAssignTarget({"in"}, false);
    ExpectNameValue("in");
    node->b = ParseTuple(false, false, {"recursive"}, false);
    if (SkipName("if")) node->c = ParseExpression(true);
    if (IsName(Cur(), "recursive")) Error(Cur(), "recursive for loops are not supported by lorart's chat-template interpreter");
    ++loop_depth_;
    node->body = ParseStatements({"endfor", "else"}, false);
    --loop_depth_;
    if (Next().text == "else") node->else_body = ParseStatements({"endfor"}, true);
    return node;
  }

  NodePtr ParseSet() {
    NodePtr node = Make(NodeKind::kSet, Next());
    node->a = ParseAssignTarget({}, true);
    if (SkipOp("=")) {
      node->b = ParseTuple(false, true, {}, false);
      return node;
    }
    node->kind = NodeKind::kSetBlock;
    node->b = ParseFilterChain(nullptr, false);
    int saved = loop_depth_;
    loop_depth_ = 0;
    node->body = ParseStatements({"endset"}, true);
    loop_depth_ = saved;
    return node;
  }

  NodePtr ParseWith() {
    NodePtr node = Make(NodeKind::kWith, Next());
    while (Cur().type != Tok::kBlockEnd) {
      if (!node->args.empty()) ExpectOp(",");
      node->args.push_back(ParseAssignTarget({}, false));
      ExpectOp("=");
      node->defaults.push_back(ParseExpression(true));
    }
    node->body = ParseStatements({"endwith"}, true);
    return node;
  }

  void ParseSignature(Node* node) {
    ExpectOp("(");
    while (!IsOp(Cur(), ")")) {
      if (!node->params.empty()) ExpectOp(",");
      const Token& name = ExpectName();
      if (SkipOp("=")) {
        node->defaults.push_back(ParseExpression(true));
      } else if (!node->defaults.empty()) {
        Error(name, "non-default argument follows default argument");
      }
      node->params.push_back(name.text);
    }
    ExpectOp(")");
  }

  static void ScanNames(const Node* n, Node* macro) {
    if (!n) return;
    if (n->kind == NodeKind::kName) {
      if (n->name == "varargs") macro->uses_varargs = true;
      if (n->name == "kwargs") macro->uses_kwargs = true;
      if (n->name == "caller") macro->uses_caller = true;
    }
    if (n->kind == NodeKind::kMacro) return;
    ScanNames(n->a.get(), macro);
    ScanNames(n->b.get(), macro);
    ScanNames(n->c.get(), macro);
    for (const auto& x : n->args) ScanNames(x.get(), macro);
    for (const auto& x : n->kwargs) ScanNames(x.second.get(), macro);
    for (const auto& x : n->body) ScanNames(x.get(), macro);
    for (const auto& x : n->else_body) ScanNames(x.get(), macro);
    for (const auto& br : n->branches) {
      for (const auto& x : br) ScanNames(x.get(), macro);
    }
    for (const auto& x : n->defaults) ScanNames(x.get(), macro);
  }

  NodePtr ParseMacro() {
    NodePtr node = Make(NodeKind::kMacro, Next());
    node->name = ExpectName().text;
    ParseSignature(node.get());
    int saved = loop_depth_;
    loop_depth_ = 0;
    node->body = ParseStatements({"endmacro"}, true);
    loop_depth_ = saved;
    for (const auto& x : node->body) ScanNames(x.get(), node.get());
    for (const auto& x : node->defaults) ScanNames(x.get(), node.get());
    return node;
  }

  NodePtr ParseCallBlock() {
    NodePtr node = Make(NodeKind::kCallBlock, Next());
    if (IsOp(Cur(), "(")) ParseSignature(node.get());
    node->a = ParseExpression(true);
    if (node->a->kind != NodeKind::kCall) Error(Cur(), "expected call");
    int saved = loop_depth_;
    loop_depth_ = 0;
    node->body = ParseStatements({"endcall"}, true);
    loop_depth_ = saved;
    return node;
  }

  NodePtr ParseFilterBlock() {
    NodePtr node = Make(NodeKind::kFilterBlock, Next());
    node->a = ParseFilterChain(nullptr, true);
    node->body = ParseStatements({"endfilter"}, true);
    return node;
  }

  NodePtr ParseAssignTarget(const std::vector<std::string>& extra_end, bool with_namespace) {
    const Token& start = Cur();
    NodePtr target = ParseTuple(true, true, extra_end, false, with_namespace);
    auto ok = [](const Node* n) { return n->kind == NodeKind::kName || n->kind == NodeKind::kNSRef; };
    bool valid = ok(target.get());
    if (target->kind == NodeKind::kTuple) {
      valid = true;
      for (const auto& a : target->args) valid = valid && ok(a.get());
    }
    if (valid && target->kind == NodeKind::kName &&
        (target->name == "true" || target->name == "false" || target->name == "none")) {
      valid = false;
    }
    if (!valid) Error(start, "can't assign to this expression");
    return target;
  }

  // ---- expressions
  NodePtr ParseExpression(bool with_condexpr) { return with_condexpr ? ParseCondExpr() : ParseOr(); }

  NodePtr ParseCondExpr() {
    const Token& t = Cur();
    NodePtr expr1 = ParseOr();
    DepthGuard guard(this, t);
    while (IsName(Cur(), "if")) {
      const Token& it = Next();
      guard.More(it);
      NodePtr cond = Make(NodeKind::kCondExpr, it);
      cond->b = std::move(expr1);
      cond->a = ParseOr();
      if (SkipName("else")) cond->c = ParseCondExpr();
      expr1 = std::move(cond);
    }
    return expr1;
  }

  NodePtr ParseOr() {
    NodePtr left = ParseAnd();
    DepthGuard guard(this, Cur());
    while (IsName(Cur(), "or")) {
      const Token& t = Next();
      guard.More(t);
      NodePtr n = Make(NodeKind::kOr, t);
      n->a = std::move(left);
      n->b = ParseAnd();
      left = std::move(n);
    }
    return left;
  }

  NodePtr ParseAnd() {
    NodePtr left = ParseNot();
    DepthGuard guard(this, Cur());
    while (IsName(Cur(), "and")) {
      const Token& t = Next();
      guard.More(t);
      NodePtr n = Make(NodeKind::kAnd, t);
      n->a = std::move(left);
      n->b = ParseNot();
      left = std::move(n);
    }
    return left;
  }

  NodePtr ParseNot() {
    if (IsName(Cur(), "not")) {
      const Token& t = Next();
      DepthGuard guard(this, t, true);
      NodePtr n = Make(NodeKind::kNot, t);
      n->a = ParseNot();
      return n;
    }
    return ParseCompare();
  }

  NodePtr ParseCompare() {
    const Token& start = Cur();
    NodePtr expr = ParseMath1();
    NodePtr cmp;
    while (true) {
      const Token& t = Cur();
      std::string op;
      if (t.type == Tok::kOp && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" ||
                                 t.text == ">" || t.text == ">=")) {
        op = t.text;
        Next();
      } else if (IsName(t, "in")) {
        op = "in";
        Next();
      } else if (IsName(t, "not") && IsName(Look(), "in")) {
        op = "notin";
        Next();
        Next();
      } else {
        break;
      }
      if (!cmp) {
        cmp = Make(NodeKind::kCompare, start);
        cmp->a = std::move(expr);
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(ParseMath1());
    }
    return cmp ? std::move(cmp) : std::move(expr);
  }

  NodePtr ParseBinaryLoop(NodePtr (Parser::*operand)(), std::initializer_list<const char*> ops) {
    NodePtr left = (this->*operand)();
    DepthGuard guard(this, Cur());
    while (true) {
      const Token& t = Cur();
      const char* match = nullptr;
      if (t.type == Tok::kOp) {
        for (const char* o : ops) {
          if (t.text == o) match = o;
        }
      }
      if (!match) break;
      Next();
      guard.More(t);
      NodePtr n = Make(NodeKind::kBinary, t);
      n->name = match;
      n->a = std::move(left);
      n->b = (this->*operand)();
      left = std::move(n);
    }
    return left;
  }

  NodePtr ParseMath1() { return ParseBinaryLoop(&Parser::ParseConcat, {"+", "-"}); }

  NodePtr ParseConcat() {
    const Token& start = Cur();
    NodePtr first = ParseMath2();
    if (!IsOp(Cur(), "~")) return first;
    NodePtr n = Make(NodeKind::kConcat, start);
    n->args.push_back(std::move(first));
    while (SkipOp("~")) n->args.push_back(ParseMath2());
    return n;
  }

  NodePtr ParseMath2() { return ParseBinaryLoop(&Parser::ParsePow, {"*", "/", "//", "%"}); }
  NodePtr ParsePow() { return ParseBinaryLoop(&Parser::ParseUnaryF, {"**"}); }
  NodePtr ParseUnaryF() { return ParseUnary(true); }

  NodePtr ParseUnary(bool with_filter) {
    const Token& t = Cur();
    DepthGuard guard(this, t, true);
    NodePtr node;
    if (IsOp(t, "-") || IsOp(t, "+")) {
      Next();
      node = Make(t.text == "-" ? NodeKind::kNeg : NodeKind::kPos, t);
      node->a = ParseUnary(false);
    } else {
      node = ParsePrimary(false);
    }
    node = ParsePostfix(std::move(node), &guard);
    if (with_filter) node = ParseFilterExpr(std::move(node), &guard);
    return node;
  }

  NodePtr ParsePrimary(bool with_namespace) {
    const Token& t = Cur();
    NodePtr node;
    if (t.type == Tok::kName) {
      Next();
      if (t.text == "true" || t.text == "false" || t.text == "True" || t.text == "False") {
        node = Make(NodeKind::kConst, t);
        node->constant = Value::Bool(t.text == "true" || t.text == "True");
      } else if (t.text == "none" || t.text == "None") {
        node = Make(NodeKind::kConst, t);
        node->constant = Value::None();
      } else if (with_namespace && IsOp(Cur(), ".")) {
        Next();
        node = Make(NodeKind::kNSRef, t);
        node->name = t.text;
        node->attr = ExpectName().text;
      } else {
        node = Make(NodeKind::kName, t);
        node->name = t.text;
      }
    } else if (t.type == Tok::kString) {
      std::string buf;
      while (Cur().type == Tok::kString) buf += Next().text;
      node = Make(NodeKind::kConst, t);
      node->constant = Value::String(std::move(buf));
    } else if (t.type == Tok::kInt || t.type == Tok::kFloat) {
      Next();
      node = Make(NodeKind::kConst, t);
      node->constant = t.type == Tok::kInt ? Value::Int(t.int_value) : Value::Double(t.float_value);
    } else if (IsOp(t, "(")) {
      Next();
      node = ParseTuple(false, true, {}, true);
      ExpectOp(")");
    } else if (IsOp(t, "[")) {
      Next();
      node = Make(NodeKind::kList, t);
      while (!IsOp(Cur(), "]")) {
        if (!node->args.empty()) ExpectOp(",");
        if (IsOp(Cur(), "]")) break;
        node->args.push_back(ParseExpression(true));
      }
      ExpectOp("]");
    } else if (IsOp(t, "{")) {
      Next();
      node = Make(NodeKind::kDict, t);
      while (!IsOp(Cur(), "}")) {
        if (!node->args.empty()) ExpectOp(",");
        if (IsOp(Cur(), "}")) break;
        node->args.push_back(ParseExpression(true));
        ExpectOp(":");
        node->args.push_back(ParseExpression(true));
      }
      ExpectOp("}");
    } else {
      if (t.type == Tok::kEof) Error(t, "unexpected end of template");
      Error(t, "unexpected " + Quoted(t));
    }
    return node;
  }

  bool IsTupleEnd(const std::vector<std::string>& extra_end) const {
    const Token& t = Cur();
    if (t.type == Tok::kVarEnd || t.type == Tok::kBlockEnd || IsOp(t, ")")) return true;
    if (t.type == Tok::kName) {
      for (const auto& e : extra_end) {
        if (t.text == e) return true;
      }
    }
    return false;
  }

  NodePtr ParseTuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end,
                     bool explicit_parentheses, bool with_namespace = false) {
    const Token& start = Cur();
    std::vector<NodePtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) ExpectOp(",");
      if (IsTupleEnd(extra_end)) break;
      if (simplified) {
        args.push_back(ParsePrimary(with_namespace));
      } else {
        args.push_back(ParseExpression(with_condexpr));
      }
      if (IsOp(Cur(), ",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parentheses) {
        if (Cur().type == Tok::kEof) Error(Cur(), "unexpected end of template");
        Error(Cur(), "Expected an expression, got " + Quoted(Cur()));
      }
    }
    NodePtr n = Make(NodeKind::kTuple, start);
    n->args = std::move(args);
    return n;
  }

  NodePtr ParsePostfix(NodePtr node, DepthGuard* guard) {
    while (true) {
      const Token& t = Cur();
      if (IsOp(t, ".") || IsOp(t, "[")) {
        guard->More(t);
        node = ParseSubscript(std::move(node));
      } else if (IsOp(t, "(")) {
        guard->More(t);
        node = ParseCall(std::move(node));
      } else {
        break;
      }
    }
    return node;
  }

  NodePtr ParseFilterExpr(NodePtr node, DepthGuard* guard) {
    while (true) {
      const Token& t = Cur();
      if (IsOp(t, "|")) {
        guard->More(t);
        node = ParseFilterChain(std::move(node), false, true);
      } else if (IsName(t, "is")) {
        guard->More(t);
        node = ParseTest(std::move(node));
      } else if (IsOp(t, "(")) {
        guard->More(t);
        node = ParseCall(std::move(node));
      } else {
        break;
      }
    }
    return node;
  }

  NodePtr ParseSubscript(NodePtr node) {
    const Token& t = Next();
    if (t.text == ".") {
      const Token& attr = Next();
      if (attr.type == Tok::kName) {
        NodePtr n = Make(NodeKind::kGetattr, t);
        n->a = std::move(node);
        n->name = attr.text;
        return n;
      }
      if (attr.type != Tok::kInt) Error(attr, "expected name or number");
      NodePtr n = Make(NodeKind::kGetitem, t);
      n->a = std::move(node);
      n->b = Make(NodeKind::kConst, attr);
      n->b->constant = Value::Int(attr.int_value);
      return n;
    }
    std::vector<NodePtr> args;
    while (!IsOp(Cur(), "]")) {
      if (!args.empty()) ExpectOp(",");
      args.push_back(ParseSubscribed());
    }
    ExpectOp("]");
    NodePtr n = Make(NodeKind::kGetitem, t);
    n->a = std::move(node);
    if (args.size() == 1) {
      n->b = std::move(args[0]);
    } else {
      n->b = Make(NodeKind::kTuple, t);
      n->b->args = std::move(args);
    }
    return n;
  }

  NodePtr ParseSubscribed() {
    const Token& start = Cur();
    NodePtr first;
    if (IsOp(Cur(), ":")) {
      Next();
    } else {
      NodePtr node = ParseExpression(true);
      if (!IsOp(Cur(), ":")) return node;
      Next();
      first = std::move(node);
    }
    NodePtr s = Make(NodeKind::kSlice, start);
    s->a = std::move(first);
    if (!IsOp(Cur(), ":") && !IsOp(Cur(), "]") && !IsOp(Cur(), ",")) s->b = ParseExpression(true);
    if (SkipOp(":")) {
      if (!IsOp(Cur(), "]") && !IsOp(Cur(), ",")) s->c = ParseExpression(true);
    }
    return s;
  }

  void ParseCallArgs(Node* n) {
    const Token& open = ExpectOp("(");
    bool require_comma = false;
    while (!IsOp(Cur(), ")")) {
      if (require_comma) {
        ExpectOp(",");
        if (IsOp(Cur(), ")")) break;
      }
      if (IsOp(Cur(), "*") || IsOp(Cur(), "**")) {
        Error(Cur(), "'*args' and '**kwargs' in calls are not supported by lorart's chat-template interpreter");
      }
      if (Cur().type == Tok::kName && IsOp(Look(), "=")) {
        std::string key = Next().text;
        Next();
        n->kwargs.emplace_back(key, ParseExpression(true));
      } else {
        if (!n->kwargs.empty()) Error(open, "invalid syntax for function call expression");
        n->args.push_back(ParseExpression(true));
      }
      require_comma = true;
    }
    ExpectOp(")");
  }

  NodePtr ParseCall(NodePtr callee) {
    NodePtr n = Make(NodeKind::kCall, Cur());
    n->a = std::move(callee);
    ParseCallArgs(n.get());
    return n;
  }

  // `| name(args) | name ...`; with start_inline the first `|` is absent.
  NodePtr ParseFilterChain(NodePtr node, bool start_inline, bool single = false) {
    while (IsOp(Cur(), "|") || start_inline) {
      if (!start_inline) Next();
      const Token& name = ExpectName();
      NodePtr f = Make(NodeKind::kFilter, name);
      f->name = name.text;
      while (IsOp(Cur(), ".")) {
        Next();
        f->name += "." + ExpectName().text;
      }
      if (IsOp(Cur(), "(")) ParseCallArgs(f.get());
      f->a = std::move(node);
      node = std::move(f);
      start_inline = false;
      if (single) break;
    }
    return node;
  }

  NodePtr ParseTest(NodePtr node) {
    const Token& is = Next();
    bool negated = SkipName("not");
    const Token& name = ExpectName();
    NodePtr t = Make(NodeKind::kTest, is);
    t->name = name.text;
    while (IsOp(Cur(), ".")) {
      Next();
      t->name += "." + ExpectName().text;
    }
    const Token& c = Cur();
    if (IsOp(c, "(")) {
      ParseCallArgs(t.get());
    } else if ((c.type == Tok::kName || c.type == Tok::kString || c.type == Tok::kInt || c.type == Tok::kFloat ||
                IsOp(c, "[") || IsOp(c, "{")) &&
               !IsName(c, "else") && !IsName(c, "or") && !IsName(c, "and")) {
      if (IsName(c, "is")) Error(c, "You cannot chain multiple tests with is");
      DepthGuard guard(this, c);
      NodePtr arg = ParsePrimary(false);
      arg = ParsePostfix(std::move(arg), &guard);
      t->args.push_back(std::move(arg));
    }
    t->a = std::move(node);
    if (!negated) return t;
    NodePtr n = Make(NodeKind::kNot, is);
    n->a = std::move(t);
    return n;
  }

  // ---- compile-time checks: unknown filters and tests fail unless inside
  // an if statement or a conditional expression of the same frame (as
  // jinja2's code generator does).
  void Check(Node* n, bool soft) {
    if (!n) return;
    switch (n->kind) {
      case NodeKind::kFilter:
      case NodeKind::kTest: {
        bool filter = n->kind == NodeKind::kFilter;
        bool known = filter ? IsKnownFilter(n->name) : IsKnownTest(n->name);
        n->soft = soft;
        if (!known && !soft) {
          FailAt(n->line, n->col, std::string("No ") + (filter ? "filter" : "test") + " named '" + n->name + "'.");
        }
        break;
      }
      case NodeKind::kIf:
        for (auto& x : n->args) Check(x.get(), true);
        for (auto& br : n->branches) {
          for (auto& x : br) Check(x.get(), true);
        }
        for (auto& x : n->else_body) Check(x.get(), true);
        return;
      case NodeKind::kCondExpr:
        Check(n->a.get(), true);
        Check(n->b.get(), true);
        Check(n->c.get(), true);
        return;
      case NodeKind::kFor:
        Check(n->b.get(), soft);
        Check(n->c.get(), false);
        for (auto& x : n->body) Check(x.get(), false);
        for (auto& x : n->else_body) Check(x.get(), false);
        return;
      case NodeKind::kMacro:
      case NodeKind::kCallBlock:
      case NodeKind::kSetBlock:
      case NodeKind::kFilterBlock:
      case NodeKind::kWith:
      case NodeKind::kGeneration:
        Check(n->a.get(), soft);
        Check(n->b.get(), soft);
        for (auto& x : n->defaults) Check(x.get(), soft);
        for (auto& x : n->args) Check(x.get(), soft);
        for (auto& x : n->body) Check(x.get(), false);
        return;
      default: break;
    }
    Check(n->a.get(), soft);
    Check(n->b.get(), soft);
    Check(n->c.get(), soft);
    for (auto& x : n->args) Check(x.get(), soft);
    for (auto& x : n->kwargs) Check(x.second.get(), soft);
    for (auto& x : n->body) Check(x.get(), soft);
    for (auto& x : n->else_body) Check(x.get(), soft);
    for (auto& x : n->defaults) Check(x.get(), soft);
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<std::string> tag_stack_;
};

}  // namespace

std::vector<NodePtr> ParseTokens(std::vector<Token> tokens) { return Parser(std::move(tokens)).Parse(); }

}  // namespace lorart::data::jinja
