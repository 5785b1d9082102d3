// lorart kernels: the kernel kinds this lorart executes, with their
// parameters (runtime/src/lorart/plan/kernel_kinds.def), as the table of
// docs/kernels.md (scripts/gen-docs.sh copies it there).
#include "lorart/cli/commands.h"
#include "lorart/plan/kernel_kinds.h"

namespace lorart {
namespace cli {

Command AddKernelsCommand(CLI::App& root, std::ostream& out) {
  Command command;
  command.app = root.add_subcommand(
      "kernels", "List the kernel kinds of train.bin with their parameters (a Markdown table)");
  command.run = [&out]() {
    out << kernels::KindsMarkdown();
    return OkStatus();
  };
  return command;
}

}  // namespace cli
}  // namespace lorart
