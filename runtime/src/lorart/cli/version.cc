// lorart version: what this binary is and which backends it can use.
#include "lorart/cli/commands.h"
#include "lorart/cli/main.h"

namespace lorart {
namespace cli {

Command AddVersionCommand(CLI::App& root, std::ostream& out) {
  Command command;
  command.app = root.add_subcommand("version", "Print the lorart version and its backends");
  command.run = [&out]() {
    out << "lorart " << Version() << "\n";
    // Said as it is: no backend runs programs yet.
    out << "cuda: loaded at run time via dlopen (not yet implemented)\n";
    return OkStatus();
  };
  return command;
}

}  // namespace cli
}  // namespace lorart
