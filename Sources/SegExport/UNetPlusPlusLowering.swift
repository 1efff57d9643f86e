import SegCore
import SegModel
import SegTrain

/// SegTrain's U-Net++ (Zhou et al. 2018, doi:10.1007/978-3-030-00889-5_1) as an
/// ``ExportableNetwork``.
///
/// Reference module: `build_unetpp` of ../shared/bench/peers.py (generalised with batch norm
/// and bilinear up-sampling in `Tests/Interop/unet_reference.py`): `down.{i}` and
/// `node.{n}.block` are the U-Net's `nn.Sequential` blocks (names as ``UNetLowering``),
/// `node.{n}.up` the up-sampling of node n (nodes X^{i,j}, j ≥ 1, in column order), `head.{k}`
/// the 1×1 heads. The graph computes what `unet predict` does with the checkpoint's inference
/// settings: the mean of every head's softmax (deep supervision, `heads: mean`), or the head
/// of depth p with only the nodes X^{i,j}, i + j ≤ p (`heads: prune`).
public struct UNetPlusPlusLowering: ExportableNetwork {
  public let model: Network
  public let cfg: UNetPlusPlusConfiguration
  public let inference: InferenceSettings
  public let trainingSteps: Int

  /// nil when `model` is not a U-Net++ (or `inference` does not suit it).
  public init?(model: Network, inference: InferenceSettings = InferenceSettings(), trainingSteps: Int = 0) {
    guard case .unetpp(let c) = model.configuration, inference.problem(for: model.configuration) == nil else { return nil }
    self.model = model
    cfg = c
    self.inference = inference
    self.trainingSteps = trainingSteps
  }

  public var architecture: String { model.configuration.architecture.displayName }
  public var inputChannels: Int { cfg.inputChannels }
  public var classes: Int { cfg.classes }
  public var parameterCount: Int { model.parameterCount }
  public var citation: JSONValue? {
    .object([
      ("text", "Zhou, Z., Siddiquee, M. M. R., Tajbakhsh, N., Liang, J. (2018). UNet++: A Nested U-Net Architecture for Medical Image Segmentation. DLMIA 2018."),
      ("doi", "10.1007/978-3-030-00889-5_1"),
    ])
  }
  public var configuration: JSONValue { JSONValue.encoding(model.configuration) }
  public var sizes: InputSizes { InputSizes(cfg.geometry) }

  var tensors: ReferenceTensors { ReferenceTensors(model) { UNetLowering.sequentialName($0, batchNorm: cfg.batchNorm) } }

  public func stateDict() -> [StateTensor] { tensors.stateDict(trainingSteps: trainingSteps) }

  public func probabilities(_ input: Tensor) -> Tensor { model.predict(input, settings: inference) }

  /// The columns j whose heads the prediction uses, and the depth of nodes it needs.
  var usedHeads: (columns: [Int], depth: Int) {
    if inference.heads == .prune, let p = inference.pruneDepth { return ([p], p) }
    return (cfg.deepSupervision ? Array(1...cfg.depth) : [cfg.depth], cfg.depth)
  }

  public func lower(into g: inout ONNX.GraphBuilder, input: String) -> String {
    let t = tensors
    let k = cfg.batchNorm ? 3 : 2
    func block(_ x: String, _ prefix: String, _ label: String) -> String {
      var x = x
      for u in 1...2 {
        let i = (u - 1) * k
        x = t.unit(&g, x, conv: "\(prefix).\(i)", bn: cfg.batchNorm ? "\(prefix).\(i + 1)" : nil, padding: 1, label: "\(label).unit\(u)")
      }
      return x
    }
    let (columns, depth) = usedHeads
    var X: [[String]] = Array(repeating: [], count: cfg.depth + 1)
    var x = input
    for i in 0...depth {
      if i > 0 { x = g.maxPool(x, factor: 2, label: "pool\(i - 1)") }
      x = block(x, "down.\(i)", "down\(i)")
      X[i].append(x)
    }
    for (n, node) in cfg.nodes.enumerated() where node.level + node.column <= depth {
      let (i, j) = (node.level, node.column)
      var u: String
      switch cfg.upMode {
      case .transposed: u = t.transposed(&g, X[i + 1][j - 1], "node.\(n).up", label: "node\(n).up")
      case .bilinear: u = g.bilinear(t.conv(&g, X[i + 1][j - 1], "node.\(n).up", padding: 0, label: "node\(n).up.conv"), factor: 2, label: "node\(n).up.resize")
      }
      let cat = g.add("Concat", Array(X[i][0..<j]) + [u], [("axis", .int(1))], name: "node\(n).cat")
      X[i].append(block(cat, "node.\(n).block", "node\(n)"))
    }
    let probabilities = columns.map { j -> String in
      let head = cfg.deepSupervision ? j - 1 : 0
      let z = t.conv(&g, X[0][j], "head.\(head)", padding: 0, label: "head\(head)")
      return g.add("Softmax", [z], [("axis", .int(1))], name: "head\(head).softmax")
    }
    return probabilities.count == 1 ? probabilities[0] : g.add("Mean", probabilities, name: "heads.mean")
  }
}
