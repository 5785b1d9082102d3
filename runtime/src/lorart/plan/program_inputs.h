// The inputs the runtime feeds to the programs of train.bin, declared once:
// the passes that create them name the arguments with these (`lora.input`),
// and the runtime's feeder (exec/feed.h) sets them by the same names.
// Header-only and free of MLIR. docs/train-bin.md lists them per program.
#ifndef LORART_PLAN_PROGRAM_INPUTS_H_
#define LORART_PLAN_PROGRAM_INPUTS_H_

namespace lorart::inputs {

// Every program that runs the model: I32 [rows, seq].
inline constexpr char kTokens[] = "tokens";
inline constexpr char kPositions[] = "positions";
// Packed plans: the document of each token (-1: padding), I32 [rows, seq].
inline constexpr char kSegmentIds[] = "segment_ids";
// Training and evaluation: the next token and whether it is a target.
inline constexpr char kTargets[] = "targets";      // I32 [rows, seq]
inline constexpr char kLossMask[] = "loss_mask";   // BOOL [rows, seq]
// DPO plans: the response each token belongs to, the pairs present, and the
// rows of replayed text (with --dpo-replay-weight).
inline constexpr char kSequenceIds[] = "sequence_ids";  // I32 [rows, seq]
inline constexpr char kPairMask[] = "pair_mask";        // BOOL [pairs]
inline constexpr char kReplayMask[] = "replay_mask";    // BOOL [rows]
// @logits_step: the position whose logits each row returns, I32 [rows].
inline constexpr char kLastIndex[] = "last_index";

}  // namespace lorart::inputs

#endif  // LORART_PLAN_PROGRAM_INPUTS_H_
