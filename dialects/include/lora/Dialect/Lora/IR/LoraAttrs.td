//===- LoraAttrs.td - lora enums and attributes -------------*- tablegen -*-===//
#ifndef LORA_ATTRS_TD
#define LORA_ATTRS_TD

include "lora/Dialect/Lora/IR/LoraDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Lora_ParamRole : I32EnumAttr<"ParamRole",
    "the role of a parameter in training", [
      I32EnumAttrCase<"Frozen", 0, "frozen">,
      I32EnumAttrCase<"Trainable", 1, "trainable">,
      I32EnumAttrCase<"OptimizerState", 2, "optimizer_state">,
      I32EnumAttrCase<"Gradient", 3, "gradient">
    ]> {
  let cppNamespace = "::mlir::lora";
}

def Lora_ParamInit : I32EnumAttr<"ParamInit",
    "how the runtime fills a parameter before training", [
      I32EnumAttrCase<"Checkpoint", 0, "checkpoint">,
      I32EnumAttrCase<"KaimingUniform", 1, "kaiming_uniform">,
      I32EnumAttrCase<"Zeros", 2, "zeros">,
      I32EnumAttrCase<"CopyOfOwner", 3, "copy_of_owner">,
      I32EnumAttrCase<"Fisher", 4, "fisher">
    ]> {
  let cppNamespace = "::mlir::lora";
}

def Lora_RopeScalingKind : I32EnumAttr<"RopeScalingKind",
    "how RoPE frequencies are rescaled for long contexts", [
      I32EnumAttrCase<"Linear", 0, "linear">,
      I32EnumAttrCase<"Llama3", 1, "llama3">
    ]> {
  let cppNamespace = "::mlir::lora";
  let genSpecializedAttr = 0;
}

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

class Lora_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Lora_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

def Lora_RopeScalingAttr : Lora_Attr<"RopeScaling", "rope_scaling"> {
  let summary = "RoPE frequency scaling (Hugging Face `rope_scaling`)";
  let description = [{
    `linear` divides every position by `factor` (position interpolation).
    `llama3` is Llama 3.1's scheme: with wavelength `w = 2π / inv_freq`,
    frequencies with `w < original_max_position_embeddings / high_freq_factor`
    are kept, those with `w > original_max_position_embeddings / low_freq_factor`
    are divided by `factor`, and those in between are interpolated smoothly.

    ```mlir
    #lora.rope_scaling<llama3, factor = 8.0, low_freq_factor = 1.0,
                       high_freq_factor = 4.0,
                       original_max_position_embeddings = 8192>
    #lora.rope_scaling<linear, factor = 2.0>
    ```
  }];
  let parameters = (ins
    EnumParameter<Lora_RopeScalingKind>:$kind,
    APFloatParameter<"scaling factor">:$factor,
    APFloatParameter<"llama3 low_freq_factor">:$low_freq_factor,
    APFloatParameter<"llama3 high_freq_factor">:$high_freq_factor,
    "int64_t":$original_max_position_embeddings
  );
  // `linear` prints only its factor; `llama3` all four values.
  let hasCustomAssemblyFormat = 1;
  let builders = [
    AttrBuilder<(ins "RopeScalingKind":$kind, "double":$factor,
                     "double":$lowFreqFactor, "double":$highFreqFactor,
                     "int64_t":$originalMaxPositionEmbeddings), [{
      return $_get($_ctxt, kind, ::llvm::APFloat(factor),
                   ::llvm::APFloat(lowFreqFactor),
                   ::llvm::APFloat(highFreqFactor),
                   originalMaxPositionEmbeddings);
    }]>
  ];
  let genVerifyDecl = 1;
}

#endif // LORA_ATTRS_TD
