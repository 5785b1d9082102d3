# lit configuration for lorac's compiler tests.
import os
import shutil

import lit.formats

config.name = "lorac"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".test"]
config.excludes = ["Inputs", "lit.cfg.py", "lit.site.cfg.py", "lit.site.cfg.py.in"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.lorac_obj_root, "test", "lit")

tools = config.lorac_tools_dir
llvm = config.llvm_tools_dir
config.environment["PATH"] = os.pathsep.join([tools, llvm, config.environment.get("PATH", "")])
for var in ["HOME", "TMPDIR"]:
    if var in os.environ:
        config.environment[var] = os.environ[var]

config.substitutions.append(("%inputs", os.path.join(config.test_source_root, "Inputs")))
config.substitutions.append(("%python", config.python_executable))
config.substitutions.append(("%srcroot", config.lorac_src_root))

if config.have_cuda_toolkit:
    config.available_features.add("cuda-toolkit")
# Real GPUs: present only when libcuda loads and reports a device.
if shutil.which("nvidia-smi") and os.system("nvidia-smi -L >/dev/null 2>&1") == 0:
    config.available_features.add("cuda")
