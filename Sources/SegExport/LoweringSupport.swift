import SegCore
import SegTrain

/// A network's parameter and batch-norm views under the names of its reference PyTorch module,
/// and the ONNX nodes every architecture shares (convolution units, up-sampling, pooling).
struct ReferenceTensors: Sendable {
  /// One tensor of the reference module bound to one of our views.
  struct Binding: Sendable {
    var torchName: String
    var view: ParameterView
    var isState: Bool
  }

  let model: Network
  /// The module's parameters and buffers in state_dict order (num_batches_tracked aside):
  /// each batch norm's running statistics follow its weight and bias.
  let bindings: [Binding]
  private let byName: [String: Binding]

  /// - Parameter rename: our view name → the reference module's (e.g. `down.0.unit1.conv.weight`
  ///   → `down.0.0.weight`).
  init(_ model: Network, rename: (String) -> String) {
    self.model = model
    var out: [Binding] = []
    let state = Dictionary(uniqueKeysWithValues: model.stateViews.map { ($0.name, $0) })
    for v in model.parameterViews {
      out.append(Binding(torchName: rename(v.name), view: v, isState: false))
      let module = v.name.hasSuffix(".bias") ? String(v.name.dropLast(".bias".count)) : ""
      if let mean = state[module + ".running_mean"], let variance = state[module + ".running_var"] {
        out.append(Binding(torchName: rename(mean.name), view: mean, isState: true))
        out.append(Binding(torchName: rename(variance.name), view: variance, isState: true))
      }
    }
    precondition(out.filter(\.isState).count == model.stateViews.count, "ReferenceTensors: a running statistic has no batch norm")
    bindings = out
    byName = Dictionary(uniqueKeysWithValues: out.map { ($0.torchName, $0) })
  }

  func values(_ b: Binding) -> [Float] {
    Array((b.isState ? model.state : model.parameters)[b.view.range])
  }

  /// The state_dict, with `num_batches_tracked` (= `steps`) after each running variance.
  func stateDict(trainingSteps steps: Int) -> [StateTensor] {
    var out: [StateTensor] = []
    for b in bindings {
      out.append(StateTensor(name: b.torchName, shape: b.view.shape, values: .float32(values(b))))
      if b.torchName.hasSuffix(".running_var") {
        out.append(StateTensor(name: String(b.torchName.dropLast(".running_var".count)) + ".num_batches_tracked", shape: [], values: .int64([Int64(steps)])))
      }
    }
    return out
  }

  func has(_ torchName: String) -> Bool { byName[torchName] != nil }

  func shape(_ torchName: String) -> [Int] {
    guard let b = byName[torchName] else { preconditionFailure("ReferenceTensors: no tensor \(torchName)") }
    return b.view.shape
  }

  /// Adds the tensor as an initialiser (named as in the module); returns its name.
  func constant(_ torchName: String, _ g: inout ONNX.GraphBuilder) -> String {
    guard let b = byName[torchName] else { preconditionFailure("ReferenceTensors: no tensor \(torchName)") }
    return g.constant(torchName, floats: values(b), shape: b.view.shape)
  }

  // MARK: - Shared nodes

  /// A k×k convolution `module` (its weight's shape gives k; bias when the module has one),
  /// zero padding `padding`.
  func conv(_ g: inout ONNX.GraphBuilder, _ x: String, _ module: String, padding: Int, label: String) -> String {
    let k = shape(module + ".weight")[2]
    var inputs = [x, constant(module + ".weight", &g)]
    if has(module + ".bias") { inputs.append(constant(module + ".bias", &g)) }
    return g.add(
      "Conv", inputs, [("kernel_shape", .ints([k, k])), ("pads", .ints([padding, padding, padding, padding])), ("strides", .ints([1, 1]))],
      name: label)
  }

  /// A convolution unit: `conv` (3×3), then batch norm `bn` (ε = 10⁻⁵) when given, then ReLU.
  func unit(_ g: inout ONNX.GraphBuilder, _ x: String, conv: String, bn: String?, padding: Int, label: String) -> String {
    var y = self.conv(&g, x, conv, padding: padding, label: label + ".conv")
    if let bn {
      let inputs = [y] + ["weight", "bias", "running_mean", "running_var"].map { constant(bn + "." + $0, &g) }
      y = g.add("BatchNormalization", inputs, [("epsilon", .float(1e-5))], name: label + ".bn")
    }
    return g.add("Relu", [y], name: label + ".relu")
  }

  /// 2×2 stride-2 transposed convolution `module`.
  func transposed(_ g: inout ONNX.GraphBuilder, _ x: String, _ module: String, label: String) -> String {
    g.add(
      "ConvTranspose", [x, constant(module + ".weight", &g), constant(module + ".bias", &g)],
      [("kernel_shape", .ints([2, 2])), ("strides", .ints([2, 2]))], name: label)
  }
}

extension ONNX.GraphBuilder {
  /// k×k max pooling, stride k.
  mutating func maxPool(_ x: String, factor k: Int, label: String) -> String {
    add("MaxPool", [x], [("kernel_shape", .ints([k, k])), ("strides", .ints([k, k]))], name: label)
  }

  /// Bilinear up-sampling by `factor` with align_corners = False (Resize, linear, half_pixel).
  mutating func bilinear(_ x: String, factor s: Int, label: String) -> String {
    let name = "scales.x\(s)"
    let scales = initializers.contains { $0.name == name } ? name : constant(name, floats: [1, 1, Float(s), Float(s)], shape: [4])
    return add("Resize", [x, "", scales], [("coordinate_transformation_mode", .string("half_pixel")), ("mode", .string("linear"))], name: label)
  }
}
