//===- LoraDialect.td - the lora dialect --------------------*- tablegen -*-===//
#ifndef LORA_DIALECT_TD
#define LORA_DIALECT_TD

include "mlir/IR/OpBase.td"

def Lora_Dialect : Dialect {
  let name = "lora";
  let summary = "Training graphs of Llama-family transformers with LoRA/QLoRA adapters.";
  let description = [{
    The `lora` dialect expresses a decoder-only transformer of the Llama family
    (Llama 2/3, Mistral, Qwen2: RMSNorm, RoPE, grouped-query attention, SwiGLU),
    the LoRA adapters attached to its linear layers and, as the training
    compiler lowers it, the training step built from them.

    Values are builtin tensors. Activations use the layout the kernels see:
    `[batch, seq, features]`, with attention heads kept flattened in the
    feature dimension (`[batch, seq, num_heads * head_dim]`), so no reshape
    ops are needed between projections, RoPE and attention. Weights use the
    Hugging Face layout (`[out_features, in_features]` for linear layers).

    Weights never live in the IR: a `lora.param` names a tensor of the
    checkpoint (or of the PEFT adapter) and says what role it plays.

    The module carries the model configuration as the `lora.model`
    dictionary attribute (verified by the dialect) and, once adapters are
    attached, their PEFT configuration as `lora.adapter_config`.
  }];
  let cppNamespace = "::mlir::lora";
  let useDefaultTypePrinterParser = 1;
  let useDefaultAttributePrinterParser = 1;
  let hasOperationAttrVerify = 1;
  let extraClassDeclaration = [{
    void registerTypes();
    void registerAttributes();
  }];
}

class Lora_Op<string mnemonic, list<Trait> traits = []>
    : Op<Lora_Dialect, mnemonic, traits>;

#endif // LORA_DIALECT_TD
