// lorart version: what this binary is and which backends it can use.
#include "lorart/cli/commands.h"
#include "lorart/cli/main.h"
#include "lorart/cuda/driver.h"
#include "lorart/cuda/nvrtc.h"

namespace lorart {
namespace cli {

Command AddVersionCommand(CLI::App& root, std::ostream& out) {
  Command command;
  command.app = root.add_subcommand("version", "Print the lorart version and its backends");
  command.run = [&out]() {
    out << "lorart " << Version() << "\n";
    out << "cpu: always\n";
    // The CUDA driver and NVRTC are loaded at run time (dlopen); say what
    // this machine has.
    StatusOr<std::unique_ptr<cuda::Device>> dev = cuda::Device::Open(0);
    StatusOr<const cuda::Nvrtc*> nvrtc = cuda::Nvrtc::Get();
    if (dev.ok())
      out << "cuda: " << (*dev)->name() << " (" << (*dev)->arch() << ")";
    else
      out << "cuda: unavailable (" << dev.status().message() << ")";
    if (nvrtc.ok())
      out << ", NVRTC " << (*nvrtc)->major() << "." << (*nvrtc)->minor() << "\n";
    else
      out << ", " << nvrtc.status().message() << "\n";
    return OkStatus();
  };
  return command;
}

}  // namespace cli
}  // namespace lorart
