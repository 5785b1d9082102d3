// The `lorart` command line.
#ifndef LORART_CLI_MAIN_H_
#define LORART_CLI_MAIN_H_

#include <ostream>

namespace lorart {
namespace cli {

// Runs `lorart argv[1..]`; returns the process exit code (0 ok, 1 error).
// Errors are one line on stderr: "lorart: error: <message>".
int Main(int argc, char** argv);

// The same with explicit streams (for tests and embedding).
int Main(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

// "0.1.0".
const char* Version();

}  // namespace cli
}  // namespace lorart

#endif  // LORART_CLI_MAIN_H_
