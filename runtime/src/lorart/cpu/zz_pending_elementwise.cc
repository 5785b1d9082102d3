// TEMPORARY: a weak stand-in for RegisterLinearKernels (linear.cc is being
// written) so that lorart_cpu links while the elementwise, attention and
// optimizer kernels are tested. The real (strong) definition wins once
// linear.cc exists; delete this file then.
#include "lorart/cpu/kernel.h"

namespace lorart::cpu {
__attribute__((weak)) void RegisterLinearKernels() {}
}  // namespace lorart::cpu
