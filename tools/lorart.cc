// lorart: the lorac runtime's command line. All of it lives in lorart_cli.
#include "lorart/cli/main.h"

int main(int argc, char** argv) { return lorart::cli::Main(argc, argv); }
