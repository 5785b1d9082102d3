// Subcommands of `lorart`, one file each. To add one: write
// `Command AddFooCommand(CLI::App& root, std::ostream& out)` in foo.cc,
// declare it here and list it in kCommands in main.cc.
#ifndef LORART_CLI_COMMANDS_H_
#define LORART_CLI_COMMANDS_H_

#include <functional>
#include <ostream>

#include <CLI/CLI.hpp>

#include "lorart/base/status.h"
#include "lorart/data/template.h"
#include "lorart/dist/collective.h"
#include "lorart/exec/session.h"

namespace lorart {
namespace cli {

// A registered subcommand: `app` is its CLI11 node; `run` executes it after
// the command line parsed, with options already stored where it reads them.
// Errors come back as a Status: main prints "lorart: error: <message>".
struct Command {
  CLI::App* app = nullptr;
  std::function<Status()> run;
};

// --device and --kernel-cache, shared by the commands that run a plan.
struct DeviceFlags {
  std::string device = "auto", kernel_cache;
  void Add(CLI::App* app);
  // Fills so.device and so.kernel_cache: "cuda" must find a GPU (one clear
  // line when it cannot); "auto" takes the GPU when the plan can run there.
  Status Apply(SessionOptions* so) const;
};

// --dist and --collective-timeout: the ranks of a data-parallel launch
// (docs/distributed.md), for run and profile.
struct DistFlags {
  std::string dist = "auto";
  double timeout_s = 600;
  void Add(CLI::App* app);
  // The job's ranks: MPI under mpirun/srun, else one process.
  Status Open(std::unique_ptr<dist::Collective>* out) const;
  // Runs `body`; when it fails on one of several ranks, prints the rank's
  // error and ends the job (the others would wait at their next
  // collective).
  static Status RunRank(dist::Collective& c, const std::function<Status()>& body);
  // One GPU per rank: without an explicit --device cuda:N, the rank's index
  // among the ranks of its host (an error when the host has fewer GPUs).
  static Status RankGpu(const DeviceFlags& device, const dist::Collective& c, SessionOptions* so);
};

// --template and --chat-template, shared by the commands that render chat
// records (run, eval, fisher, generate, tokenize).
struct TemplateFlags {
  std::string name = "auto", file;
  std::vector<std::string> variables;  // --template-var NAME=VALUE
  void Add(CLI::App* app);
  // The template for the model in `model_dir` (data::ResolveChatTemplate).
  StatusOr<data::ChatTemplate> Resolve(const std::string& model_dir) const;
};

using AddCommandFn = Command (*)(CLI::App& root, std::ostream& out);

Command AddVersionCommand(CLI::App& root, std::ostream& out);
Command AddInspectCommand(CLI::App& root, std::ostream& out);
Command AddInitModelCommand(CLI::App& root, std::ostream& out);
Command AddRunCommand(CLI::App& root, std::ostream& out);
Command AddEvalCommand(CLI::App& root, std::ostream& out);
Command AddTrainTokenizerCommand(CLI::App& root, std::ostream& out);
Command AddGenerateCommand(CLI::App& root, std::ostream& out);
Command AddCheckKernelsCommand(CLI::App& root, std::ostream& out);
Command AddMergeCommand(CLI::App& root, std::ostream& out);
Command AddFisherCommand(CLI::App& root, std::ostream& out);
Command AddAverageCommand(CLI::App& root, std::ostream& out);
Command AddProfileCommand(CLI::App& root, std::ostream& out);
Command AddTokenizeCommand(CLI::App& root, std::ostream& out);
Command AddKernelsCommand(CLI::App& root, std::ostream& out);

}  // namespace cli
}  // namespace lorart

#endif  // LORART_CLI_COMMANDS_H_
