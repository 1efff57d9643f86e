import Foundation
import SegCore
import SegModel
import SegTrain

/// What the exporters need from a trained network. The writers below this (ONNX, zip,
/// safetensors, rdf.yaml) know nothing about networks; each architecture supplies one
/// conformance (``UNetLowering`` today), and ``ModelExporter`` turns it into files.
public protocol ExportableNetwork: Sendable {
  /// A short architecture name for people ("U-Net").
  var architecture: String { get }
  /// Input channels C.
  var inputChannels: Int { get }
  /// Classes K of the prediction (2 for a network with one sigmoid channel).
  var classes: Int { get }
  /// Learnable parameters.
  var parameterCount: Int { get }
  /// The legal input sizes per spatial axis and the output size of each.
  var sizes: InputSizes { get }
  /// The network's own configuration, as stored in its checkpoint (JSON).
  var configuration: JSONValue { get }
  /// The architecture's paper when it is not the U-Net's (bioimage.io `cite` entry: text, doi).
  var citation: JSONValue? { get }

  /// Adds the network's nodes to `graph`; they read `input` (N × C × H × W float32) and the
  /// returned value is what `unet predict` computes: class probabilities (N × K × Ho × Wo,
  /// K = ``classes``).
  func lower(into graph: inout ONNX.GraphBuilder, input: String) -> String

  /// The `state_dict` of the reference PyTorch module (its parameters and buffers).
  func stateDict() -> [StateTensor]

  /// Class probabilities (N × K × Ho × Wo) of an input tile (N × C × H × W), computed by our
  /// own trainer's code (what `unet predict` runs per tile).
  func probabilities(_ input: Tensor) -> Tensor
}

extension ExportableNetwork {
  public var citation: JSONValue? { nil }
}

/// Legal input sizes `min + n·step` (n = 0, 1, …) per spatial axis; an input of size s gives
/// an output of size `s + outputOffset`.
public struct InputSizes: Sendable, Equatable {
  public var min: Int
  public var step: Int
  /// Output size minus input size (≤ 0; negative for unpadded convolutions).
  public var outputOffset: Int
  /// Output pixels per side that see zero padding and are better cropped away when tiling
  /// (0 when the network has no padding: its whole output is exact).
  public var halo: Int

  public init(min: Int, step: Int, outputOffset: Int, halo: Int) {
    self.min = min
    self.step = step
    self.outputOffset = outputOffset
    self.halo = halo
  }

  /// The sizes of a network geometry: a same-padding network keeps the size (multiples of
  /// 2^depth) and its border sees zero padding, so the halo is the context `unet predict`
  /// gives each tile (2^depth); a valid one's legal inputs start at the smallest and go up in
  /// steps of 2^depth, each output smaller by the same amount.
  public init(_ g: NetworkGeometry) {
    switch g.padding {
    case .same:
      self.init(min: g.sizeMultiple, step: g.sizeMultiple, outputOffset: 0, halo: g.defaultPredictionContext)
    case .valid:
      let (input, output) = g.nearestInput(forOutputAtLeast: 1)
      self.init(min: input, step: g.sizeMultiple, outputOffset: output - input, halo: 0)
    }
  }

  /// The smallest legal input size whose output, less the halo on both sides, is ≥ `n`.
  public func input(forUsableOutputAtLeast n: Int) -> Int {
    let needed = n + 2 * halo - outputOffset
    guard needed > min else { return min }
    return min + (needed - min + step - 1) / step * step
  }
}

/// One tensor of a PyTorch `state_dict`.
public struct StateTensor: Sendable, Equatable {
  public enum Values: Sendable, Equatable {
    case float32([Float])
    case int64([Int64])
  }

  public var name: String
  public var shape: [Int]
  public var values: Values

  public init(name: String, shape: [Int], values: Values) {
    self.name = name
    self.shape = shape
    self.values = values
  }

  /// The float values (empty for an integer tensor).
  public var floats: [Float] {
    if case .float32(let f) = values { return f }
    return []
  }
}

extension JSONValue {
  /// `value` through its `Encodable` conformance (keys sorted; `.null` if it cannot be encoded).
  static func encoding<T: Encodable>(_ value: T) -> JSONValue {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    guard let data = try? encoder.encode(value), let v = try? JSONDecoder().decode(JSONValue.self, from: data) else { return .null }
    return v
  }
}

/// The exportable form of a trained network, for every architecture the trainer has.
public enum Lowering {
  /// - Parameters:
  ///   - inference: how a U-Net++'s heads make the prediction (the checkpoint's settings).
  ///   - trainingSteps: PyTorch's `num_batches_tracked`.
  public static func of(_ model: Network, inference: InferenceSettings = InferenceSettings(), trainingSteps: Int = 0) -> (any ExportableNetwork)? {
    switch model.configuration {
    case .unet: return UNetLowering(model: model, trainingSteps: trainingSteps)
    case .unetpp: return UNetPlusPlusLowering(model: model, inference: inference, trainingSteps: trainingSteps)
    case .unet3p: return UNet3PlusLowering(model: model, trainingSteps: trainingSteps)
    }
  }
}
