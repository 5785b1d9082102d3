# Shared by the data-parallel test scripts (sourced; $bin, $ex, $work and
# $here set): skips (exit 77) without mpirun or liblorart_mpi.so (unless
# dp_needs_mpi=0), makes
# $work the current directory with the demo's tokenizer and ./base (its
# config, f32, seed 3), and sets Open MPI up for local ranks.
if [ "${dp_needs_mpi:-1}" != 0 ]; then
  command -v mpirun > /dev/null || { echo "SKIP: no mpirun (apt-get install openmpi-bin)"; exit 77; }
  [ -f "$bin/../lib/liblorart_mpi.so" ] || { echo "SKIP: lorart was built without MPI"; exit 77; }
fi
rm -rf "$work"; mkdir -p "$work"
cd "$work"
. "$here/../integration/demo_model.sh"
demo_tokenizer "$bin" "$ex"
"$bin/lorart" init-model --config "$ex/config.json" -o base --dtype f32 --tokenizer tokenizer.model \
  --seed 3 > /dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Shared memory between the local ranks; no network probing.
export OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
fail() { echo "FAIL: $*"; exit 1; }
