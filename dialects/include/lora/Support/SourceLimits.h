//===- SourceLimits.h - checks on .mlir before parsing ----------*- C++ -*-===//
//
// MLIR's parser recurses once per nested bracket of an attribute or type, so
// a module nested tens of thousands of levels deep overflows the stack
// (a crash, not a diagnostic). lorac and lorac-opt scan the text first and
// refuse such input with a located error.
//
//===----------------------------------------------------------------------===//
#ifndef LORA_SUPPORT_SOURCELIMITS_H
#define LORA_SUPPORT_SOURCELIMITS_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

namespace mlir::lora {

/// Deepest bracket nesting (`( [ { <`) accepted in a .mlir file; real IR
/// stays below 50.
inline constexpr unsigned kMaxSourceNesting = 512;

/// Whether the brackets of `buffer`, outside string literals and comments,
/// nest deeper than `maxDepth`; if so prints "file:line:col: error: ..."
/// through `sourceMgr` (which must hold the buffer) and returns true.
bool reportExcessiveNesting(llvm::SourceMgr &sourceMgr, unsigned bufferId,
                            unsigned maxDepth = kMaxSourceNesting);

} // namespace mlir::lora

#endif // LORA_SUPPORT_SOURCELIMITS_H
