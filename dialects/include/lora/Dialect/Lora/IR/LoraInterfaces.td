//===- LoraInterfaces.td - lora op interfaces ---------------*- tablegen -*-===//
#ifndef LORA_INTERFACES_TD
#define LORA_INTERFACES_TD

include "mlir/IR/OpBase.td"

def Lora_GradientOpInterface : OpInterface<"GradientOpInterface"> {
  let description = [{
    A differentiable op: builds its vector-Jacobian product. The autodiff
    pass (`lora-autodiff`) walks the forward graph in reverse and asks each
    op for the gradients of its operands given the gradients of its results;
    adding a differentiable op means implementing this interface beside it.
  }];
  let cppNamespace = "::mlir::lora";
  let methods = [
    InterfaceMethod<[{
        Builds, at the builder's insertion point, the gradients of the
        operands. `resultGrads[i]` is the gradient of result i (null when the
        loss does not depend on it). `needGrad[j]` says whether operand j
        needs a gradient; `operandGrads[j]` receives it (left null when not
        needed or when the operand is not differentiable). Fails with a
        diagnostic when the op cannot be differentiated in this form.
      }],
      "::mlir::LogicalResult", "buildVJP",
      (ins "::mlir::OpBuilder &":$builder,
           "::llvm::ArrayRef<::mlir::Value>":$resultGrads,
           "::llvm::ArrayRef<bool>":$needGrad,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>
  ];
}

#endif // LORA_INTERFACES_TD
