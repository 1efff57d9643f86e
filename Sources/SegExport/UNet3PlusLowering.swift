import SegCore
import SegModel
import SegTrain

/// SegTrain's UNet 3+ (Huang et al. 2020, doi:10.1109/ICASSP40776.2020.9053405) as an
/// ``ExportableNetwork``.
///
/// Reference module: `build_unet3p` of ../shared/bench/peers.py (any depth in
/// `Tests/Interop/unet_reference.py`): every 3×3 convolution is `nn.Sequential(Conv2d (no
/// bias), BatchNorm2d, ReLU)`, so `enc.{i}.unit{u}` → `enc.{i}.{u−1}.{0 conv, 1 bn}`,
/// `dec.{d}.src.{s}` / `dec.{d}.fuse` → `….{0, 1}`, the CGM's 1×1 convolution → `cgm.1`
/// (after its dropout), `head.{d}` as they are. The graph computes what `unet predict` does:
/// head 0 on D^0 (no up-sampling at full size), its sigmoid (K = 1; written as the two
/// channels 1 − p, p) or softmax, times the CGM gate g = [q₁ > q₀] when the network has the
/// CGM (q = sigmoid of the global max of its convolution).
public struct UNet3PlusLowering: ExportableNetwork {
  public let model: Network
  public let cfg: UNet3PlusConfiguration
  public let trainingSteps: Int

  /// nil when `model` is not a UNet 3+.
  public init?(model: Network, trainingSteps: Int = 0) {
    guard case .unet3p(let c) = model.configuration else { return nil }
    self.model = model
    cfg = c
    self.trainingSteps = trainingSteps
  }

  public var architecture: String { model.configuration.architecture.displayName }
  public var inputChannels: Int { cfg.inputChannels }
  public var classes: Int { cfg.classes == 1 ? 2 : cfg.classes }
  public var parameterCount: Int { model.parameterCount }
  public var citation: JSONValue? {
    .object([
      ("text", "Huang, H., Lin, L., Tong, R., Hu, H., Zhang, Q., Iwamoto, Y., Han, X., Chen, Y.-W., Wu, J. (2020). UNet 3+: A Full-Scale Connected UNet for Medical Image Segmentation. ICASSP 2020."),
      ("doi", "10.1109/ICASSP40776.2020.9053405"),
    ])
  }
  public var configuration: JSONValue { JSONValue.encoding(model.configuration) }
  public var sizes: InputSizes { InputSizes(cfg.geometry) }

  var tensors: ReferenceTensors { ReferenceTensors(model) { Self.referenceName($0) } }

  /// Our view name → the reference module's.
  static func referenceName(_ name: String) -> String {
    var parts = name.split(separator: ".").map(String.init)
    if parts.first == "cgm", parts.count == 3, parts[1] == "conv" { return "cgm.1." + parts[2] }
    guard let i = parts.firstIndex(where: { $0 == "conv" || $0 == "bn" }), i >= 1 else { return name }
    let layer = parts[i] == "conv" ? "0" : "1"
    if let u = parts[i - 1].hasPrefix("unit") ? Int(parts[i - 1].dropFirst(4)) : nil {
      parts.replaceSubrange((i - 1)...i, with: [String(u - 1), layer])
    } else {
      parts[i] = layer
    }
    return parts.joined(separator: ".")
  }

  public func stateDict() -> [StateTensor] { tensors.stateDict(trainingSteps: trainingSteps) }

  public func probabilities(_ input: Tensor) -> Tensor { model.predict(input) }

  public func lower(into g: inout ONNX.GraphBuilder, input: String) -> String {
    let t = tensors
    let D = cfg.depth
    func cbr(_ x: String, _ module: String, _ label: String) -> String {
      t.unit(&g, x, conv: module + ".0", bn: module + ".1", padding: 1, label: label)
    }
    var E: [String] = []
    var pools: [String: String] = [:]
    func pooled(_ s: Int, by factor: Int) -> String {
      let key = "\(s)x\(factor)"
      if let v = pools[key] { return v }
      let v = g.maxPool(E[s], factor: factor, label: "pool\(s).x\(factor)")
      pools[key] = v
      return v
    }
    for i in 0...D {
      let x = i == 0 ? input : pooled(i - 1, by: 2)
      E.append(cbr(cbr(x, "enc.\(i).0", "enc\(i).unit1"), "enc.\(i).1", "enc\(i).unit2"))
    }
    var maps: [Int: String] = [D: E[D]]
    for d in stride(from: D - 1, through: 0, by: -1) {
      var parts: [String] = []
      for s in 0...D {
        let x: String
        if s < d {
          x = pooled(s, by: 1 << (d - s))
        } else if s == d {
          x = E[d]
        } else {
          x = g.bilinear(maps[s] ?? E[D], factor: 1 << (s - d), label: "dec\(d).up\(s)")
        }
        parts.append(cbr(x, "dec.\(d).src.\(s)", "dec\(d).src\(s)"))
      }
      let cat = g.add("Concat", parts, [("axis", .int(1))], name: "dec\(d).cat")
      maps[d] = cbr(cat, "dec.\(d).fuse", "dec\(d).fuse")
    }
    let z = t.conv(&g, maps[0] ?? E[0], "head.0", padding: 1, label: "head0")
    var p = cfg.classes == 1 ? g.add("Sigmoid", [z], name: "head0.sigmoid") : g.add("Softmax", [z], [("axis", .int(1))], name: "head0.softmax")
    if cfg.cgm {
      let m = g.add("GlobalMaxPool", [t.conv(&g, E[D], "cgm.1", padding: 0, label: "cgm.conv")], name: "cgm.max")
      let q = g.add("Sigmoid", [m], name: "cgm.sigmoid")
      let axis = g.constant("cgm.axis", int64s: [1], shape: [1])
      func channel(_ c: Int64) -> String {
        let start = g.constant("cgm.q\(c).start", int64s: [c], shape: [1])
        let end = g.constant("cgm.q\(c).end", int64s: [c + 1], shape: [1])
        return g.add("Slice", [q, start, end, axis], name: "cgm.q\(c)")
      }
      let present = g.add("Greater", [channel(1), channel(0)], name: "cgm.present")
      let gate = g.add("Cast", [present], [("to", .int(Int(ONNX.ElementType.float.rawValue)))], name: "cgm.gate")
      p = g.add("Mul", [p, gate], name: "head0.gated")
    }
    guard cfg.classes == 1 else { return p }
    let one = g.constant("one", floats: [1], shape: [1])
    let background = g.add("Sub", [one, p], name: "head0.background")
    return g.add("Concat", [background, p], [("axis", .int(1))], name: "head0.two_channels")
  }
}
