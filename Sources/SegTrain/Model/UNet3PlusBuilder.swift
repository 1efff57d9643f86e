import SegModel

/// UNet 3+ (Huang et al. 2020, doi:10.1109/ICASSP40776.2020.9053405) as a graph
/// (../shared/ARCHITECTURES.md §3), for any depth D (the paper: 4).
///
/// Every 3×3 convolution is a "cbr": no bias, batch norm, ReLU. Parameter order (`build_unet3p`
/// in ../shared/bench/peers.py): `enc.{i}.unit{1,2}` (i = 0 … D), the decoders `dec.{d}` for
/// d = D−1 … 0 (`src.{s}` for s = 0 … D, then `fuse`), `head.{d}` (3×3 convolution with bias;
/// d = 0 … D with deep supervision, else 0), `cgm.conv` (1×1, 16C → 2, with bias).
///
/// Decoder D^d concatenates, for s = 0 … D in order, cbr(·→C) of: E^s max-pooled by 2^(d−s)
/// (s < d), E^d (s = d), D^s bilinearly up-sampled by 2^(s−d) (d < s < D), E^D up-sampled by
/// 2^(D−d) (s = D); then fuses the (D+1)·C channels with one cbr. Head d: its convolution on D^d
/// (E^D for d = D), up-sampled by 2^d to full size, then sigmoid (K = 1) or softmax (K ≥ 2) and,
/// with the CGM, times the gate g ∈ {0, 1}. The CGM: dropout (training), 1×1 convolution,
/// global max, sigmoid → q (N × 2: absent, present); g = [q_1 > q_0].
///
/// A pooling of E^s by 2 is the same node as the encoder's own pooling (computed once).
enum UNet3PlusBuilder {
  static func build(_ cfg: UNet3PlusConfiguration, training: Bool) -> BuiltNetwork {
    var f = LayerFactory()
    let D = cfg.depth, C = cfg.baseWidth, up = cfg.decoderWidth
    func cbr(_ name: String, _ a: Int, _ b: Int) -> ConvUnit { f.unit(name, a, b, padding: 1, batchNorm: true) }
    var enc: [(ConvUnit, ConvUnit)] = []
    var cin = cfg.inputChannels
    for i in 0...D {
      let w = cfg.width(level: i)
      enc.append((cbr("enc.\(i).unit1", cin, w), cbr("enc.\(i).unit2", w, w)))
      cin = w
    }
    // decoders[D − 1 − d]: the sources and the fusion of D^d, made in the order d = D−1 … 0.
    var decoders: [(sources: [ConvUnit], fuse: ConvUnit)] = []
    for d in stride(from: D - 1, through: 0, by: -1) {
      let sources = (0...D).map { s in cbr("dec.\(d).src.\(s)", s <= d || s == D ? cfg.width(level: s) : up, C) }
      decoders.append((sources, cbr("dec.\(d).fuse", up, up)))
    }
    let headLevels = cfg.deepSupervision ? Array(0...D) : [0]
    let heads = headLevels.map { d in f.conv("head.\(d)", d < D ? up : cfg.width(level: D), cfg.classes, padding: 1) }
    let cgmConv = cfg.cgm ? f.conv("cgm.conv", cfg.width(level: D), 2, kernel: 1, padding: 0) : nil

    var g = GraphBuilder()
    var E: [Int] = []
    var pools: [String: Int] = [:]  // "s×factor" → value
    func pooled(_ s: Int, by factor: Int) -> Int {
      let key = "\(s)x\(factor)"
      if let v = pools[key] { return v }
      let v = g.add("pool.\(s).x\(factor)", .maxPool(MaxPool(factor: factor)), [E[s]])
      pools[key] = v
      return v
    }
    for i in 0...D {
      let x = i == 0 ? g.input : pooled(i - 1, by: 2)
      E.append(g.unit(enc[i].1, g.unit(enc[i].0, x, "enc.\(i).unit1"), "enc.\(i).unit2"))
    }
    var gate: Int? = nil
    var q: Int? = nil
    if let cgmConv {
      var x = E[D]
      if training && cfg.cgmDropout > 0 { x = g.add("cgm.dropout", .dropout(Dropout(probability: cfg.cgmDropout)), [x]) }
      let z = g.add("cgm.conv", .conv(cgmConv), [x])
      let m = g.add("cgm.max", .globalMaxPool, [z])
      q = g.add("cgm.sigmoid", .sigmoid, [m])
      gate = g.add("cgm.gate", .gate, [q ?? m])
    }
    var Dmap: [Int: Int] = [D: E[D]]
    for d in stride(from: D - 1, through: 0, by: -1) {
      let layers = decoders[D - 1 - d]
      var parts: [Int] = []
      for s in 0...D {
        let input: Int
        if s < d {
          input = pooled(s, by: 1 << (d - s))
        } else if s == d {
          input = E[d]
        } else {
          input = g.add("dec.\(d).up.\(s)", .upsample(BilinearUpsample(factor: 1 << (s - d))), [Dmap[s] ?? E[D]])
        }
        parts.append(g.unit(layers.sources[s], input, "dec.\(d).src.\(s)"))
      }
      let cat = g.add("dec.\(d).cat", .concat, parts)
      Dmap[d] = g.unit(layers.fuse, cat, "dec.\(d).fuse")
    }
    var outputs: [Int] = []
    for (k, d) in headLevels.enumerated() {
      var z = g.add("head.\(d)", .conv(heads[k]), [Dmap[d] ?? E[D]])
      if d > 0 { z = g.add("head.\(d).up", .upsample(BilinearUpsample(factor: 1 << d)), [z]) }
      var p = g.add("head.\(d).\(cfg.classes == 1 ? "sigmoid" : "softmax")", cfg.classes == 1 ? .sigmoid : .softmax, [z])
      if let gate { p = g.add("head.\(d).gated", .scale, [p, gate]) }
      outputs.append(p)
    }
    return BuiltNetwork(graph: g.graph(heads: outputs, classification: q, headKind: .probabilities), factory: f)
  }
}
