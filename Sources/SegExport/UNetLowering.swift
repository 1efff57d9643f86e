import Foundation
import SegCore
import SegModel
import SegTrain

/// SegTrain's U-Net (a ``Network`` of configuration `.unet`) as an ``ExportableNetwork``: its ONNX graph and the parameter names of
/// its reference PyTorch module.
///
/// The reference module (README, "Export"; `Tests/Interop/unet_reference.py`) generalises
/// `build_unet` of ../shared/bench/peers.py: `down.{i}` (i = 0 … depth) and `upblock.{i}`
/// (i = 0 ..< depth) are `nn.Sequential(Conv2d 3×3, [BatchNorm2d], ReLU, Conv2d 3×3,
/// [BatchNorm2d], ReLU)` (the convolutions have no bias with batch norm), so their tensors are
/// `down.{i}.{0,2}.{weight,bias}` without batch norm and `down.{i}.{0,3}.weight` +
/// `down.{i}.{1,4}.{weight,bias,running_mean,running_var,num_batches_tracked}` with it;
/// `up.{i}` is `ConvTranspose2d(w_{i+1}, w_i, 2, stride=2)` (or, in bilinear mode, a 1×1
/// `Conv2d` whose output is up-sampled ×2 bilinearly with align_corners=False); `head` is the
/// 1×1 `Conv2d` to the K classes. Forward: max-pool 2×2 between levels, the skip of level i
/// centre-cropped to the up-sampled size and concatenated in front of it; the module returns
/// logits, and the softmax over dim 1 gives `unet predict`'s probabilities.
///
/// The ONNX graph has the same structure: Conv (+ BatchNormalization) + Relu per unit, MaxPool,
/// ConvTranspose (or Conv 1×1 + Resize `linear`/`half_pixel`, which is PyTorch's bilinear
/// with align_corners=False), Slice for the crop (constant offsets: with valid convolutions
/// the skip is larger than the up-sampled map by the same number of pixels for every legal
/// input size, so height and width stay dynamic), Concat, and the 1×1 head.
public struct UNetLowering: ExportableNetwork {
  public let model: Network
  public let cfg: UNetConfiguration
  /// Training steps done (PyTorch's `num_batches_tracked` of every batch norm).
  public let trainingSteps: Int

  /// nil when `model` is not a U-Net.
  public init?(model: Network, trainingSteps: Int = 0) {
    guard case .unet(let c) = model.configuration else { return nil }
    self.model = model
    cfg = c
    self.trainingSteps = trainingSteps
  }

  public var architecture: String { model.configuration.architecture.displayName }
  public var inputChannels: Int { cfg.inputChannels }
  public var classes: Int { cfg.classes }
  public var parameterCount: Int { model.parameterCount }

  public var configuration: JSONValue { JSONValue.encoding(model.configuration) }

  public var sizes: InputSizes { InputSizes(cfg.geometry) }

  public func probabilities(_ input: Tensor) -> Tensor { model.predict(input) }

  // MARK: - Names

  /// Our views under the reference module's names.
  var tensors: ReferenceTensors { ReferenceTensors(model) { Self.sequentialName($0, batchNorm: cfg.batchNorm) } }

  /// Every tensor of the reference module's state_dict (num_batches_tracked aside), in
  /// state_dict order, with the view holding its values.
  func bindings() -> [ReferenceTensors.Binding] { tensors.bindings }

  public func stateDict() -> [StateTensor] { tensors.stateDict(trainingSteps: trainingSteps) }

  /// A unit inside an `nn.Sequential(Conv2d, [BatchNorm2d], ReLU, Conv2d, [BatchNorm2d], ReLU)`:
  /// `P.unit{u}.conv.T` → `P.{(u−1)·k}.T`, `P.unit{u}.bn.T` → `P.{(u−1)·k + 1}.T` with k = 3 with
  /// batch norm, 2 without; other names stay (U-Net and U-Net++ share this).
  static func sequentialName(_ name: String, batchNorm: Bool) -> String {
    var parts = name.split(separator: ".").map(String.init)
    guard let i = parts.firstIndex(where: { $0 == "unit1" || $0 == "unit2" }), i + 1 < parts.count,
      let u = Int(parts[i].dropFirst(4)), parts[i + 1] == "conv" || parts[i + 1] == "bn"
    else { return name }
    let index = (u - 1) * (batchNorm ? 3 : 2) + (parts[i + 1] == "bn" ? 1 : 0)
    parts.replaceSubrange(i...(i + 1), with: [String(index)])
    return parts.joined(separator: ".")
  }

  // MARK: - Graph

  /// Per level i < depth, the pixels to cut from the skip's top/left and bottom/right so it
  /// matches the up-sampled map (the same for every legal input size; checked).
  func cropOffsets() -> [(top: Int, bottom: Int)] {
    let s = sizes
    let a = Self.levelSizes(cfg, input: s.min)
    let b = Self.levelSizes(cfg, input: s.min + s.step)
    precondition(zip(a.skip, a.up).map(-) == zip(b.skip, b.up).map(-), "UNetLowering: crop offsets depend on the input size")
    return zip(a.skip, a.up).map { skip, up in ((skip - up) / 2, skip - up - (skip - up) / 2) }
  }

  /// Per level i < depth: the skip's size and the up-sampled map's size for input size n.
  static func levelSizes(_ cfg: UNetConfiguration, input n: Int) -> (skip: [Int], up: [Int]) {
    let shrink = cfg.padding == .valid ? 4 : 0  // two 3×3 convolutions
    var s = n
    var skip: [Int] = []
    for i in 0...cfg.depth {
      s -= shrink
      if i < cfg.depth {
        skip.append(s)
        s /= 2
      }
    }
    var up = [Int](repeating: 0, count: cfg.depth)
    for i in (0..<cfg.depth).reversed() {
      up[i] = 2 * s
      s = up[i] - shrink
    }
    return (skip, up)
  }

  public func lower(into g: inout ONNX.GraphBuilder, input: String) -> String {
    let t = tensors
    let pad = cfg.padding == .same ? 1 : 0
    func block(_ x: String, _ prefix: String, _ label: String) -> String {
      var x = x
      for u in 1...2 {
        let index = (u - 1) * (cfg.batchNorm ? 3 : 2)
        x = t.unit(&g, x, conv: "\(prefix).\(index)", bn: cfg.batchNorm ? "\(prefix).\(index + 1)" : nil, padding: pad, label: "\(label).unit\(u)")
      }
      return x
    }
    var x = input
    var skips: [String] = []
    for i in 0...cfg.depth {
      x = block(x, "down.\(i)", "down\(i)")
      if i < cfg.depth {
        skips.append(x)
        x = g.maxPool(x, factor: 2, label: "pool\(i)")
      }
    }
    let crops = cropOffsets()
    for i in (0..<cfg.depth).reversed() {
      switch cfg.upMode {
      case .transposed:
        x = t.transposed(&g, x, "up.\(i)", label: "up\(i)")
      case .bilinear:
        x = g.bilinear(t.conv(&g, x, "up.\(i)", padding: 0, label: "up\(i).conv"), factor: 2, label: "up\(i).resize")
      }
      var skip = skips[i]
      let (top, bottom) = crops[i]
      if top + bottom > 0 {
        let starts = g.constant("crop\(i).starts", int64s: [Int64(top), Int64(top)], shape: [2])
        let end: Int64 = bottom > 0 ? -Int64(bottom) : Int64.max
        let ends = g.constant("crop\(i).ends", int64s: [end, end], shape: [2])
        let axes = g.constant("crop\(i).axes", int64s: [2, 3], shape: [2])
        skip = g.add("Slice", [skip, starts, ends, axes], name: "crop\(i)")
      }
      x = g.add("Concat", [skip, x], [("axis", .int(1))], name: "cat\(i)")
      x = block(x, "upblock.\(i)", "upblock\(i)")
    }
    let logits = t.conv(&g, x, "head", padding: 0, label: "head")
    return g.add("Softmax", [logits], [("axis", .int(1))], name: "softmax")
  }
}
