import SegCore

extension Conv2D {
  // MARK: - Tensor API

  func checkParameters(_ count: Int) {
    precondition(count >= max(weight.range.upperBound, bias?.range.upperBound ?? 0), "Conv2D: parameter buffer of \(count) floats is too short for \(weight.name)")
  }

  /// Forward pass: Y for input X (N × C_in × H × W) with parameters from the flat buffer.
  public func forward(_ x: Tensor, parameters: [Float], scratch: ScratchArena = ScratchArena()) -> Tensor {
    checkTensor(x, "Conv2D.forward")
    checkParameters(parameters.count)
    var out = Tensor(shape: outputShape(for: x.shape))
    x.data.withUnsafeBufferPointer { xp in
      parameters.withUnsafeBufferPointer { pp in
        out.data.withUnsafeMutableBufferPointer { yp in
          forward(input: base(xp), shape: x.shape, output: base(yp), parameters: base(pp), scratch: scratch)
        }
      }
    }
    return out
  }

  /// Adds the parameter gradients into `gradients` without computing dL/dX (as for a network's
  /// first layer; a 3×3 convolution of one input channel then takes a direct path).
  public func addParameterGradients(
    input x: Tensor, output y: Tensor, outputGradient dy: Tensor, parameters: [Float],
    gradients: inout [Float], scratch: ScratchArena = ScratchArena()
  ) {
    checkTensor(x, "Conv2D.addParameterGradients")
    checkTensor(y, "Conv2D.addParameterGradients")
    checkTensor(dy, "Conv2D.addParameterGradients")
    checkParameters(parameters.count)
    precondition(gradients.count == parameters.count, "Conv2D.addParameterGradients: \(gradients.count) gradients for \(parameters.count) parameters")
    precondition(dy.shape == outputShape(for: x.shape) && y.shape == dy.shape, "Conv2D.addParameterGradients: shapes \(y.shape), \(dy.shape) do not match the output \(outputShape(for: x.shape))")
    var g = dy.data
    x.data.withUnsafeBufferPointer { xp in
      y.data.withUnsafeBufferPointer { yp in
        parameters.withUnsafeBufferPointer { pp in
          gradients.withUnsafeMutableBufferPointer { gp in
            g.withUnsafeMutableBufferPointer { dyp in
              backward(
                input: base(xp), inputShape: x.shape, output: base(yp), outputGradient: base(dyp),
                inputGradient: nil, parameters: base(pp), gradients: base(gp), scratch: scratch)
            }
          }
        }
      }
    }
  }

  /// Backward pass: adds the parameter gradients into `gradients` and returns dL/dX.
  ///
  /// - Parameters:
  ///   - x: the forward input; `y`: the forward output (used for the ReLU mask).
  ///   - dy: dL/dY (after the ReLU, as `y`).
  public func backward(
    input x: Tensor, output y: Tensor, outputGradient dy: Tensor, parameters: [Float],
    gradients: inout [Float], scratch: ScratchArena = ScratchArena()
  ) -> Tensor {
    checkTensor(x, "Conv2D.backward")
    checkTensor(y, "Conv2D.backward")
    checkTensor(dy, "Conv2D.backward")
    checkParameters(parameters.count)
    precondition(gradients.count == parameters.count, "Conv2D.backward: \(gradients.count) gradients for \(parameters.count) parameters")
    precondition(dy.shape == outputShape(for: x.shape) && y.shape == dy.shape, "Conv2D.backward: shapes \(y.shape), \(dy.shape) do not match the output \(outputShape(for: x.shape))")
    var g = dy.data
    var dx = Tensor(shape: x.shape)
    x.data.withUnsafeBufferPointer { xp in
      y.data.withUnsafeBufferPointer { yp in
        parameters.withUnsafeBufferPointer { pp in
          gradients.withUnsafeMutableBufferPointer { gp in
            g.withUnsafeMutableBufferPointer { dyp in
              dx.data.withUnsafeMutableBufferPointer { dxp in
                backward(
                  input: base(xp), inputShape: x.shape, output: base(yp),
                  outputGradient: base(dyp), inputGradient: base(dxp),
                  parameters: base(pp), gradients: base(gp), scratch: scratch)
              }
            }
          }
        }
      }
    }
    return dx
  }
}
