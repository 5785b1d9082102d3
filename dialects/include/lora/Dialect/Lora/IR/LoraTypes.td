//===- LoraTypes.td - lora types ----------------------------*- tablegen -*-===//
#ifndef LORA_TYPES_TD
#define LORA_TYPES_TD

include "lora/Dialect/Lora/IR/LoraDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/BuiltinTypeInterfaces.td"

class Lora_Type<string name, string typeMnemonic, list<Trait> traits = []>
    : TypeDef<Lora_Dialect, name, traits> {
  let mnemonic = typeMnemonic;
}

def Lora_NF4Type : Lora_Type<"NF4", "nf4"> {
  let summary = "a frozen weight stored as 4-bit NormalFloat (QLoRA)";
  let description = [{
    A tensor quantized to NF4, the 16-value NormalFloat codebook of QLoRA
    (Dettmers et al. 2023; the values bitsandbytes uses). Elements are taken in
    row-major order in blocks of `block_size`; each block stores one absmax
    scale and `block_size / 2` bytes of packed 4-bit codes.

    With `double_quant = N` (QLoRA's double quantization) the absmax scales are
    themselves quantized: after subtracting their mean they are stored as 8-bit
    codes in blocks of N scales, each block with one float32 second-level scale.
    `double_quant = none` keeps one float32 absmax per block.

    NF4 is a type rather than an attribute of `lora.param` so that every op that
    reads a weight states in its signature whether it handles the packed form:
    only `lora.dequantize` (and the fused kernels built from it) accept it.

    ```mlir
    !lora.nf4<4096x4096, block_size = 64, double_quant = 256>
    !lora.nf4<11008x4096, block_size = 64, double_quant = none>
    ```
  }];
  let parameters = (ins
    ArrayRefParameter<"int64_t">:$shape,
    "int64_t":$blockSize,
    "int64_t":$doubleQuantBlock
  );
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Number of weight elements.
    int64_t getNumElements() const;
    /// Number of absmax blocks (ceil(numElements / blockSize)).
    int64_t getNumBlocks() const;
    bool hasDoubleQuant() const { return getDoubleQuantBlock() > 0; }
    /// Bytes of packed 4-bit codes.
    int64_t getCodeBytes() const;
    /// Bytes of scales: float32 absmax per block, or with double
    /// quantization one byte per block plus a float32 scale per group and one
    /// float32 mean offset.
    int64_t getScaleBytes() const;
    /// Total storage in bytes.
    int64_t getStorageBytes() const { return getCodeBytes() + getScaleBytes(); }
  }];
}

#endif // LORA_TYPES_TD
