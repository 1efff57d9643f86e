import SegModel

/// The U-Net (Ronneberger, Fischer & Brox 2015, doi:10.1007/978-3-319-24574-4_28) as a graph.
///
/// Parameter order (PyTorch's `parameters()` order of `build_unet` in
/// ../shared/bench/peers.py, and of format-1 checkpoints): `down.{i}.unit{1,2}` for i = 0 …
/// depth (conv weight C_out × C_in × 3 × 3 and bias, or conv weight then `bn.weight`,
/// `bn.bias`), the up-samplings `up.{i}` (transposed: C_in × C_out × 2 × 2 and bias; bilinear:
/// a 1×1 convolution and bias), `upblock.{i}.unit{1,2}`, and the 1×1 `head` (K × C_0 × 1 × 1,
/// bias). Execution: the contracting path with 2×2 max pooling, dropout on the bottom level's
/// output (training), then per level i = depth − 1 … 0: up-sample, concatenate the centre-cropped
/// skip first, two units; the head.
enum UNetBuilder {
  static func build(_ cfg: UNetConfiguration, training: Bool) -> BuiltNetwork {
    var f = LayerFactory()
    let pad = cfg.padding == .same ? 1 : 0
    let d = cfg.depth
    var down: [(ConvUnit, ConvUnit)] = []
    var cin = cfg.inputChannels
    for i in 0...d {
      let w = cfg.width(level: i)
      let u1 = f.unit("down.\(i).unit1", cin, w, padding: pad, batchNorm: cfg.batchNorm)
      let u2 = f.unit("down.\(i).unit2", w, w, padding: pad, batchNorm: cfg.batchNorm)
      down.append((u1, u2))
      cin = w
    }
    var up: [Operation] = []
    for i in 0..<d {
      let w = cfg.width(level: i), wIn = cfg.width(level: i + 1)
      switch cfg.upMode {
      case .transposed: up.append(.transposedConv(f.transposed("up.\(i)", wIn, w)))
      case .bilinear: up.append(.conv(f.conv("up.\(i)", wIn, w, kernel: 1, padding: 0)))
      }
    }
    var blocks: [(ConvUnit, ConvUnit)] = []
    for i in 0..<d {
      let w = cfg.width(level: i)
      let u1 = f.unit("upblock.\(i).unit1", 2 * w, w, padding: pad, batchNorm: cfg.batchNorm)
      let u2 = f.unit("upblock.\(i).unit2", w, w, padding: pad, batchNorm: cfg.batchNorm)
      blocks.append((u1, u2))
    }
    let head = f.conv("head", cfg.width(level: 0), cfg.classes, kernel: 1, padding: 0)

    var g = GraphBuilder()
    var x = g.input
    var skips: [Int] = []
    for i in 0...d {
      x = g.unit(down[i].0, x, "down.\(i).unit1")
      x = g.unit(down[i].1, x, "down.\(i).unit2")
      if i < d {
        skips.append(x)
        x = g.add("pool.\(i)", .maxPool(MaxPool(factor: 2)), [x])
      }
    }
    if training && cfg.dropout > 0 { x = g.add("dropout", .dropout(Dropout(probability: cfg.dropout)), [x]) }
    for i in (0..<d).reversed() {
      var u = g.add("up.\(i)", up[i], [x])
      if cfg.upMode == .bilinear { u = g.add("up.\(i).bilinear", .upsample(BilinearUpsample(factor: 2)), [u]) }
      let cat = g.add("cat.\(i)", .concat, [skips[i], u])
      x = g.unit(blocks[i].0, cat, "upblock.\(i).unit1")
      x = g.unit(blocks[i].1, x, "upblock.\(i).unit2")
    }
    let z = g.add("head", .conv(head), [x])
    return BuiltNetwork(graph: g.graph(heads: [z], headKind: .logits), factory: f)
  }
}

/// U-Net++ (Zhou et al. 2018, doi:10.1007/978-3-030-00889-5_1) as a graph
/// (../shared/ARCHITECTURES.md §2).
///
/// Parameter order (`build_unetpp` in ../shared/bench/peers.py): `down.{i}` (the encoder X^{i,0},
/// two units each), `node.{n}` for the nodes X^{i,j}, j ≥ 1, in column order (up-sampling
/// `node.n.up`: a 2×2 transposed convolution w_{i+1} → w_i, or a 1×1 convolution before bilinear
/// ×2; then `node.n.block.unit{1,2}` over (j + 1)·w_i input channels), `head.{j−1}` (1×1 on
/// X^{0,j}). X^{i,j} = block(cat(X^{i,0}, …, X^{i,j−1}, up(X^{i+1,j−1}))): skips first, the
/// up-sampled map last. Heads: every X^{0,j} with deep supervision, else X^{0,depth}; for
/// prediction pruned to depth p (`pruneDepth`), only head p and the nodes it needs.
enum UNetPlusPlusBuilder {
  static func build(_ cfg: UNetPlusPlusConfiguration, training: Bool, pruneDepth: Int? = nil) -> BuiltNetwork {
    var f = LayerFactory()
    let d = cfg.depth
    var down: [(ConvUnit, ConvUnit)] = []
    var cin = cfg.inputChannels
    for i in 0...d {
      let w = cfg.width(level: i)
      down.append((f.unit("down.\(i).unit1", cin, w, padding: 1, batchNorm: cfg.batchNorm),
                   f.unit("down.\(i).unit2", w, w, padding: 1, batchNorm: cfg.batchNorm)))
      cin = w
    }
    let nodes = cfg.nodes
    var ups: [Operation] = []
    var blocks: [(ConvUnit, ConvUnit)] = []
    for (n, node) in nodes.enumerated() {
      let w = cfg.width(level: node.level), wIn = cfg.width(level: node.level + 1)
      switch cfg.upMode {
      case .transposed: ups.append(.transposedConv(f.transposed("node.\(n).up", wIn, w)))
      case .bilinear: ups.append(.conv(f.conv("node.\(n).up", wIn, w, kernel: 1, padding: 0)))
      }
      blocks.append((f.unit("node.\(n).block.unit1", (node.column + 1) * w, w, padding: 1, batchNorm: cfg.batchNorm),
                     f.unit("node.\(n).block.unit2", w, w, padding: 1, batchNorm: cfg.batchNorm)))
    }
    let heads = (0..<cfg.heads).map { f.conv("head.\($0)", cfg.width(level: 0), cfg.classes, kernel: 1, padding: 0) }

    var g = GraphBuilder()
    var X: [[Int]] = Array(repeating: [], count: d + 1)  // X[i][j]
    var x = g.input
    for i in 0...d {
      if i > 0 { x = g.add("pool.\(i - 1)", .maxPool(MaxPool(factor: 2)), [x]) }
      x = g.unit(down[i].0, x, "down.\(i).unit1")
      x = g.unit(down[i].1, x, "down.\(i).unit2")
      X[i].append(x)
    }
    for (n, node) in nodes.enumerated() {
      let (i, j) = (node.level, node.column)
      var u = g.add("node.\(n).up", ups[n], [X[i + 1][j - 1]])
      if cfg.upMode == .bilinear { u = g.add("node.\(n).up.bilinear", .upsample(BilinearUpsample(factor: 2)), [u]) }
      let cat = g.add("node.\(n).cat", .concat, Array(X[i][0..<j]) + [u])
      var y = g.unit(blocks[n].0, cat, "node.\(n).block.unit1")
      y = g.unit(blocks[n].1, y, "node.\(n).block.unit2")
      X[i].append(y)
    }
    var outputs: [Int] = []
    if cfg.deepSupervision {
      for j in 1...d { outputs.append(g.add("head.\(j - 1)", .conv(heads[j - 1]), [X[0][j]])) }
    } else {
      outputs.append(g.add("head.0", .conv(heads[0]), [X[0][d]]))
    }
    if let p = pruneDepth {
      precondition((1...d).contains(p) && (cfg.deepSupervision || p == d), "U-Net++: no head of depth \(p)")
      outputs = [outputs[cfg.deepSupervision ? p - 1 : 0]]
    }
    return BuiltNetwork(graph: g.graph(heads: outputs, headKind: .logits), factory: f)
  }
}
