// lorart: the lorac runtime's command line. All of it lives in lorart_cli.
#include <csignal>

#include "lorart/cli/main.h"

int main(int argc, char** argv) {
  // A write past a file-size limit fails with EFBIG (and a clear error, the
  // partial file removed) instead of killing the process.
  std::signal(SIGXFSZ, SIG_IGN);
  return lorart::cli::Main(argc, argv);
}
