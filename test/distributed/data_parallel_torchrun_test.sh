#!/bin/sh
# A torchrun-style launch (docs/distributed.md): the ranks are started with
# RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set, as torchrun
# --no-python sets them, and meet at the TCP rendezvous rank 0 serves. A CUDA
# plan on the CUDA simulator (test/cuda_sim) with the file-transport fake of
# NCCL (fake_nccl.c); no MPI anywhere:
#   1. 2 ranks x grad-accum 1 end with the same adapter, bit for bit, and the
#      same losses as 1 process x grad-accum 2 (NCCL's id went through the
#      rendezvous, the trainer's sums and agreement checks too);
#   1b. lorart profile on 2 ranks reports the NCCL sums' overlap;
#   2. LOCAL_RANK picks the GPU: rank 1 is told its host has no GPU 1;
#   3. a CPU plan is refused (its gradient sums need MPI);
#   4. missing or malformed variables are named;
#   5. a rank that fails at start-up ends the job: rank 0 fails at once
#      saying which rank ended it and why, and writes no adapter;
#   6. a rank that never starts: rank 0 fails after --collective-timeout
#      naming it;
#   7. MASTER_PORT taken by another process is named;
#   8. torchrun itself (/usr/bin/python3 -m torch.distributed.run --no_python,
#      when torch is installed), whose agent holds MASTER_PORT with its own store:
#      the rendezvous takes the next port; the adapter equals case 1's.
# Usage: data_parallel_torchrun_test.sh BIN_DIR EXAMPLES_DIR WORK_DIR SIM_DRIVER FAKE_NCCL
set -eu
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
bin=$(cd "$1" && pwd); ex=$(cd "$2" && pwd); work="$3"; sim=$(abs "$4"); fake=$(abs "$5")
here=$(cd "$(dirname "$0")" && pwd)
dp_needs_mpi=0
. "$here/dp_setup.sh"
export LORART_CUDA_DRIVER="$sim" LORART_NVRTC="$sim" LORA_SIM_WORK="$work/sim" LORART_NCCL="$fake"
export LORART_FAKE_NCCL_TIMEOUT=60 TMPDIR="$work/tmp"
mkdir -p "$TMPDIR"
# No MPI launcher's variables may leak in from the caller's environment.
unset OMPI_COMM_WORLD_SIZE PMI_SIZE PMIX_RANK RANK WORLD_SIZE LOCAL_RANK MASTER_ADDR MASTER_PORT \
  2> /dev/null || true
losses() { python3 -c "
import json, sys
print(' '.join('%.6f' % json.loads(l)['loss'] for l in open(sys.argv[1]) if 'loss' in json.loads(l)))" "$1"; }
# A free port whose successor is free too (torchrun's case takes both).
free_port() { python3 -c "
import socket
while True:
    s = socket.socket(); s.bind(('', 0)); p = s.getsockname()[1]
    if p < 65535:
        t = socket.socket()
        try:
            t.bind(('', p + 1)); t.close(); s.close(); print(p); break
        except OSError:
            pass
    s.close()"; }
common="--base base --lr 3e-3 --seed 9 --threads 1 --no-progress --template simple
  --kernel-cache $work/kernels --steps 2"
# rank RANK LOCAL_RANK PORT LOG ARGS...: one rank in the background.
rank() {
  r=$1 l=$2 p=$3 log=$4; shift 4
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$l MASTER_ADDR=127.0.0.1 MASTER_PORT=$p \
    "$bin/lorart" "$@" > "$log" 2>&1 &
}
# two NAME ARGS...: ranks 0 and 1 (LOCAL_RANK 0 and 1) with the same
# arguments on a fresh port ($port), logs NAME0.log and NAME1.log; waits
# for both and sets rc0 and rc1 to their exit codes.
two() {
  name=$1; shift
  port=$(free_port)
  rank 0 0 "$port" "${name}0.log" "$@"
  p0=$!
  rank 1 1 "$port" "${name}1.log" "$@"
  p1=$!
  rc0=0 rc1=0
  wait $p0 || rc0=$?
  wait $p1 || rc1=$?
}

"$bin/lorac" compile base --dtype f32 --lora-r 8 --lora-alpha 16 --lora-dropout 0.1 --target cuda \
  --micro-batch 2 --seq-len 64 --data-parallel --bucket-mb 0.05 -o cuda.bin > /dev/null

echo "== 1. 2 ranks (rendezvous + NCCL) vs 1 process"
"$bin/lorart" run cuda.bin --data "$ex/sft_train.jsonl" $common --device cuda:0 --grad-accum 2 \
  -o one > one.log 2>&1 || { cat one.log; fail "1 process"; }
two r run cuda.bin --data "$ex/sft_train.jsonl" $common --device cuda:0 --grad-accum 1 -o two
[ $rc0 = 0 ] && [ $rc1 = 0 ] || { cat r0.log r1.log; fail "2 ranks: exit codes $rc0, $rc1"; }
grep -q "data parallel: 2 ranks (torchrun-style: rendezvous at 127.0.0.1:$port, 2 ranks)" r0.log \
  || { cat r0.log; fail "no data-parallel banner"; }
[ ! -s r1.log ] || { cat r1.log; fail "rank 1 printed"; }
python3 "$here/compare_adapters.py" one/adapter_model.safetensors two/adapter_model.safetensors
l1=$(losses one/metrics.jsonl); l2=$(losses two/metrics.jsonl)
[ "$l1" = "$l2" ] || fail "losses differ: '$l1' vs '$l2'"
echo "losses: $l1"

echo "== 1b. lorart profile on 2 ranks"
two p profile cuda.bin --base base --device cuda:0 --kernel-cache "$work/kernels" --iters 1 \
  --warmup 0 --top 3
[ $rc0 = 0 ] && [ $rc1 = 0 ] || { cat p0.log p1.log; fail "profile: exit codes $rc0, $rc1"; }
grep -q "data parallel: 2 ranks (torchrun-style: .*) over NCCL; .* alone takes [0-9.]* ms: [0-9]*% of the communication overlapped the backward" \
  p0.log || { cat p0.log; fail "no NCCL overlap line"; }

echo "== 2. LOCAL_RANK picks the GPU"
two g run cuda.bin --data "$ex/sft_train.jsonl" $common --device cuda -o gpus \
  --collective-timeout 20
[ $rc1 != 0 ] || fail "rank 1 ran on the simulator's only GPU"
[ $rc0 != 0 ] || fail "rank 0 succeeded without rank 1"
grep -q "rank 1 takes GPU 1, its index among the ranks of its host" g1.log \
  || { cat g1.log; fail "rank 1 does not explain the GPU choice"; }
grep -q "rank 1 of 2 ended the job" g0.log || { cat g0.log; fail "rank 0 does not name rank 1"; }

echo "== 3. a CPU plan"
"$bin/lorac" compile base --dtype f32 --lora-r 8 --micro-batch 2 --seq-len 64 --data-parallel \
  -o cpu.bin > /dev/null
two c run cpu.bin --data "$ex/sft_train.jsonl" $common --device cpu -o cpu --collective-timeout 20
[ $rc0 != 0 ] && [ $rc1 != 0 ] || fail "a CPU plan ran on the rendezvous (exit codes $rc0, $rc1)"
grep -q "a CPU plan's gradient sums run over MPI: start its ranks with mpirun or srun" c0.log \
  || { cat c0.log; fail "the refusal does not name MPI"; }
[ ! -f cpu/adapter_model.safetensors ] || fail "the refused job wrote an adapter"

echo "== 4. the variables"
expect_env_error() {  # EXPECTED-TEXT VAR=VALUE...
  want=$1; shift
  # (An unresolvable MASTER_ADDR is retried until the timeout, as a name
  # service may lag behind the hosts' start.)
  if env "$@" "$bin/lorart" run cuda.bin --data "$ex/sft_train.jsonl" $common --device cuda:0 \
       --collective-timeout 3 -o env > env.log 2>&1; then
    fail "ran with $*"
  fi
  grep -q "$want" env.log || { cat env.log; fail "with $*: no '$want'"; }
}
expect_env_error "RANK is not set" WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=1
expect_env_error "RANK=2: expected an integer in 0..1" RANK=2 WORLD_SIZE=2 LOCAL_RANK=0 \
  MASTER_ADDR=127.0.0.1 MASTER_PORT=1
expect_env_error "MASTER_PORT=abc: expected an integer in 1..65535" RANK=0 WORLD_SIZE=2 \
  LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=abc
expect_env_error "MASTER_ADDR is not set" RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_PORT=1
expect_env_error "WORLD_SIZE=two: expected an integer" RANK=0 WORLD_SIZE=two LOCAL_RANK=0 \
  MASTER_ADDR=127.0.0.1 MASTER_PORT=1
expect_env_error "could not reach the rendezvous at no.such.host.invalid:29500 .* in 3 s: MASTER_ADDR=no.such.host.invalid" RANK=1 WORLD_SIZE=2 LOCAL_RANK=1 \
  MASTER_ADDR=no.such.host.invalid MASTER_PORT=29500

echo "== 5. rank 1 fails at start-up"
port=$(free_port)
start=$(date +%s)
rank 0 0 "$port" f0.log run cuda.bin --data "$ex/sft_train.jsonl" $common --device cuda:0 -o failed
p0=$!
rank 1 1 "$port" f1.log run cuda.bin --data "$work/no-such-data.jsonl" $common --device cuda:0 \
  -o failed
p1=$!
if wait $p1; then fail "rank 1 ran without its data"; fi
if wait $p0; then fail "rank 0 succeeded without rank 1"; fi
took=$(( $(date +%s) - start ))
grep -q "rank 1 of 2 ended the job: .*no-such-data.jsonl" f0.log \
  || { cat f0.log f1.log; fail "rank 0 does not say that rank 1 ended the job and why"; }
[ ! -f failed/adapter_model.safetensors ] || fail "the failed job wrote an adapter"
[ "$took" -lt 120 ] || fail "the failed job took $took s"

echo "== 6. rank 1 never starts"
port=$(free_port)
start=$(date +%s)
if RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$bin/lorart" run \
     cuda.bin --data "$ex/sft_train.jsonl" $common --device cuda:0 -o alone \
     --collective-timeout 3 > alone.log 2>&1; then
  fail "rank 0 ran alone"
fi
took=$(( $(date +%s) - start ))
grep -q "rank 0 of 2: collective #[0-9]* (.*) did not complete in 3 s; rank 1 never joined the rendezvous at 127.0.0.1:$port" \
  alone.log || { cat alone.log; fail "rank 0 does not name rank 1"; }
[ "$took" -lt 90 ] || fail "rank 0 alone took $took s to fail"

echo "== 7. MASTER_PORT in use"
port=$(free_port)
python3 -c "
import socket, sys, time
try:
    s = socket.socket(socket.AF_INET6); s.bind(('::', int(sys.argv[1])))
except OSError:
    s = socket.socket(); s.bind(('', int(sys.argv[1])))
s.listen(1); time.sleep(60)" "$port" &
holder=$!
sleep 1
if RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$bin/lorart" run \
     cuda.bin --data "$ex/sft_train.jsonl" $common --device cuda:0 -o taken > taken.log 2>&1; then
  fail "rank 0 served on a port in use"
fi
kill $holder 2> /dev/null || true
grep -q "port $port (MASTER_PORT) is in use on rank 0's host" taken.log \
  || { cat taken.log; fail "the taken port is not named"; }
echo "== 8. torchrun"
# The system's Python, where scripts/setup.sh installs torch.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
if "$py" -c "import torch.distributed.run" 2> /dev/null; then
  port=$(free_port)
  "$py" -m torch.distributed.run --nproc_per_node 2 --master_port "$port" --no_python \
    "$bin/lorart" run cuda.bin --data "$ex/sft_train.jsonl" $common --device cuda:0 --grad-accum 1 \
    -o torchrun > torchrun.log 2>&1 || { cat torchrun.log; fail "torchrun"; }
  grep -q "data parallel: 2 ranks (torchrun-style: rendezvous at 127.0.0.1:$((port + 1)), 2 ranks)" \
    torchrun.log || { cat torchrun.log; fail "no banner with the port after torchrun's"; }
  python3 "$here/compare_adapters.py" one/adapter_model.safetensors torchrun/adapter_model.safetensors
else
  echo "skipped: no torch ($py -c 'import torch.distributed.run')"
fi
echo "PASS"
