#include "lorart/cli/main.h"

#include <iostream>
#include <string>
#include <vector>

#include "lorart/base/strings.h"
#include "lorart/cli/commands.h"

#ifndef LORART_VERSION
#define LORART_VERSION "0.1.0"
#endif

namespace lorart {
namespace cli {
namespace {

constexpr AddCommandFn kCommands[] = {
    AddVersionCommand,
    AddInspectCommand,
    AddInitModelCommand,
    AddRunCommand,
    AddEvalCommand,
    AddTrainTokenizerCommand,
    AddTokenizeCommand,
    AddGenerateCommand,
    AddCheckKernelsCommand,
    AddMergeCommand,
    AddFisherCommand,
    AddAverageCommand,
    AddProfileCommand,
    AddKernelsCommand,
};

// Messages are one line: any newline a library put in becomes "; ".
std::string OneLine(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\n') {
      out += "; ";
    } else if (c != '\r') {
      out += c;
    }
  }
  return out;
}

}  // namespace

const char* Version() { return LORART_VERSION; }

int Main(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app("lorart: the lorac runtime (runs train.bin programs, inspects and merges weights)",
               "lorart");
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", std::string("lorart ") + Version());
  app.require_subcommand(1);
  app.fallthrough(false);

  std::vector<Command> commands;
  for (AddCommandFn add : kCommands) commands.push_back(add(app, out));

  // CLI11 reports an unknown first word as "A subcommand is required"; say
  // which word it was and what the commands are.
  if (argc > 1 && argv[1][0] != '-') {
    std::string word = argv[1];
    bool known = false;
    std::string names;
    for (const Command& command : commands) {
      known = known || command.app->check_name(word);
      names += (names.empty() ? "" : ", ") + command.app->get_name();
    }
    if (!known) {
      err << "lorart: error: unknown command " << Quote(word) << " (commands: " << names
          << "; see 'lorart --help')\n";
      return 1;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      return app.exit(e, out, err);  // --help, --help-all, --version
    }
    std::string where = "lorart";
    for (const CLI::App* sub : app.get_subcommands()) where += " " + sub->get_name();
    err << "lorart: error: " << OneLine(e.what()) << " (see '" << where << " --help')\n";
    return 1;
  }

  for (const Command& command : commands) {
    if (!command.app->parsed()) continue;
    Status status;
    try {
      status = command.run();
    } catch (const std::exception& e) {
      status = InternalError(std::string("uncaught exception: ") + e.what());
    }
    out.flush();
    if (!status.ok()) {
      err << "lorart: error: " << OneLine(status.message()) << "\n";
      return 1;
    }
    return 0;
  }
  err << "lorart: error: no command given (see 'lorart --help')\n";
  return 1;
}

int Main(int argc, char** argv) { return Main(argc, argv, std::cout, std::cerr); }

}  // namespace cli
}  // namespace lorart
