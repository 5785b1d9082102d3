//===- SourceLimits.cpp - checks on .mlir text before it is parsed --------===//
#include "lora/Support/SourceLimits.h"

#include "llvm/ADT/Twine.h"

namespace mlir::lora {

bool reportExcessiveNesting(llvm::SourceMgr &sourceMgr, unsigned bufferId,
                            unsigned maxDepth) {
  llvm::StringRef text = sourceMgr.getMemoryBuffer(bufferId)->getBuffer();
  unsigned depth = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') { // a string literal, with backslash escapes
      for (++i; i < text.size() && text[i] != '"'; ++i)
        if (text[i] == '\\')
          ++i;
      continue;
    }
    if (c == '/' && i + 1 < text.size() && text[i + 1] == '/') {
      i = text.find('\n', i);
      if (i == llvm::StringRef::npos)
        break;
      continue;
    }
    if (c == '(' || c == '[' || c == '{' || c == '<') {
      if (++depth > maxDepth) {
        sourceMgr.PrintMessage(
            llvm::SMLoc::getFromPointer(text.data() + i),
            llvm::SourceMgr::DK_Error,
            llvm::Twine("brackets nest deeper than ") + llvm::Twine(maxDepth) +
                " levels (refused: the parser would exhaust its stack)");
        return true;
      }
    } else if (c == ')' || c == ']' || c == '}' ||
               (c == '>' && (i == 0 || text[i - 1] != '-'))) {
      if (depth > 0)
        --depth;
    }
  }
  return false;
}

} // namespace mlir::lora
