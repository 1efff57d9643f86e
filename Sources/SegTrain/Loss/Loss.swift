import SegCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Which classes the soft Dice loss averages over.
public enum DiceClasses: String, Codable, Sendable, CaseIterable {
  /// Classes 1 ..< K: class 0 is background and is left out (the usual choice for
  /// foreground/background segmentation, where background Dice is near 1 and says little).
  /// With K = 1 there is no foreground class and the Dice term is 0.
  case foreground
  /// All K classes.
  case all
}

/// The training loss: pixel-weighted softmax cross-entropy, soft Dice, or their sum.
public struct LossConfiguration: Codable, Sendable, Equatable {
  public enum Kind: String, Codable, Sendable, CaseIterable {
    case crossEntropy = "cross_entropy"
    case dice
    case crossEntropyDice = "cross_entropy_dice"
  }

  public var kind: Kind
  /// Classes the Dice term averages over (default `.foreground`).
  public var diceClasses: DiceClasses
  /// The smoothing ε of the Dice ratio (default 1).
  public var diceSmoothing: Float

  public init(kind: Kind = .crossEntropy, diceClasses: DiceClasses = .foreground, diceSmoothing: Float = 1) {
    precondition(diceSmoothing >= 0, "LossConfiguration: Dice smoothing must be ≥ 0")
    self.kind = kind
    self.diceClasses = diceClasses
    self.diceSmoothing = diceSmoothing
  }

  enum CodingKeys: String, CodingKey {
    case kind
    case diceClasses = "dice_classes"
    case diceSmoothing = "dice_smoothing"
  }

  var usesCrossEntropy: Bool { kind != .dice }
  var usesDice: Bool { kind != .crossEntropy }
}

/// The value of the loss and its parts.
public struct LossValue: Sendable, Equatable {
  /// The loss that was differentiated (the sum of the parts in use).
  public var total: Double
  /// Mean over pixels of w·CE, when cross-entropy is in use.
  public var crossEntropy: Double?
  /// 1 − mean soft Dice, when Dice is in use.
  public var dice: Double?
}

/// Softmax cross-entropy weighted per pixel, and soft Dice, on logits Z (N × K × H × W, NCHW)
/// and targets T (N × H × W class ids in 0 ..< K).
///
/// Cross-entropy, exactly as PyTorch's `(cross_entropy(Z, T, reduction="none") * w).mean()`:
///
///     CE = (1/(N·H·W)) · Σ_pixels w · (log Σ_k exp Z_k − Z_T)
///     dCE/dZ_k = w · (P_k − [k = T]) / (N·H·W)
///
/// Soft Dice over the batch, per class k in the averaged set S (see ``DiceClasses``), with
/// P = softmax(Z), G the one-hot targets and ε the smoothing:
///
///     I_k = Σ P_k·G_k,   U_k = Σ P_k + Σ G_k,   Dice = 1 − (1/|S|)·Σ_{k∈S} (2·I_k + ε)/(U_k + ε)
///     dDice/dP_k = (1/|S|)·((2·I_k + ε)/(U_k + ε)² − 2·G_k/(U_k + ε))   (k ∈ S; 0 otherwise)
///
/// followed by the softmax backward dZ_j = P_j·(dP_j − Σ_k P_k·dP_k). Sums over pixels are
/// accumulated per image row in Double and added in row order, so the value does not depend
/// on the thread count.
public enum SegmentationLoss {
  /// Computes the loss, writes P (softmax of Z) and dL/dZ.
  ///
  /// - Parameters:
  ///   - weights: w per pixel (N × H × W), or nil for all ones.
  ///   - gradient: dL/dZ, N × K × H × W (overwritten).
  static func evaluate(
    logits z: UnsafePointer<Float>, shape s: TensorShape, targets t: UnsafePointer<Int32>,
    weights: UnsafePointer<Float>?, configuration cfg: LossConfiguration,
    probabilities p: UnsafeMutablePointer<Float>, gradient dz: UnsafeMutablePointer<Float>
  ) -> LossValue {
    let k = s.c
    let pixels = s.n * s.plane
    let rows = s.n * s.h
    let invPixels = 1 / Float(pixels)
    // Per row: CE sum, then for each class I_k, ΣP_k, ΣG_k.
    let stride = 1 + 3 * k
    var partials = [Double](repeating: 0, count: rows * stride)
    let useCE = cfg.usesCrossEntropy, useDice = cfg.usesDice
    partials.withUnsafeMutableBufferPointer { pb in
      guard let pbase = pb.baseAddress else { preconditionFailure("SegmentationLoss: empty batch") }
      let part = SharedBuffer(pbase)
      let zs = SharedBuffer(z), ts = SharedBuffer(t), ps = SharedBuffer(p), gs = SharedBuffer(dz)
      let ws = weights.map { SharedBuffer($0) }
      // Disjoint writes: task r writes image row r of P and dZ (every channel) and partial row r.
      Parallel.forEach(tasks: rows) { _, r in
        let item = r / s.h, y = r % s.h
        let zb = zs.readOnly + item * s.item + y * s.w
        let pb = ps + (item * s.item + y * s.w)
        let gb = gs + (item * s.item + y * s.w)
        let tb = ts.readOnly + item * s.plane + y * s.w
        let wb = ws.map { $0.readOnly + item * s.plane + y * s.w }
        let acc = part + r * stride
        var ce = 0.0
        for x in 0..<s.w {
          let target = Int(tb[x])
          precondition(target >= 0 && target < k, "SegmentationLoss: target class \(target) outside 0..<\(k)")
          var m = zb[x]
          for c in 1..<max(1, k) { m = max(m, zb[c * s.plane + x]) }
          var sum: Float = 0
          for c in 0..<k {
            let e = expf(zb[c * s.plane + x] - m)
            pb[c * s.plane + x] = e
            sum += e
          }
          let inv = 1 / sum
          for c in 0..<k { pb[c * s.plane + x] *= inv }
          let w = wb?[x] ?? 1
          if useCE {
            ce += Double(w) * Double(logf(sum) - (zb[target * s.plane + x] - m))
            let scale = w * invPixels
            for c in 0..<k { gb[c * s.plane + x] = scale * pb[c * s.plane + x] }
            gb[target * s.plane + x] -= scale
          } else {
            for c in 0..<k { gb[c * s.plane + x] = 0 }
          }
          if useDice {
            for c in 0..<k {
              let pv = Double(pb[c * s.plane + x])
              acc[1 + 3 * c + 1] += pv
              if c == target {
                acc[1 + 3 * c] += pv
                acc[1 + 3 * c + 2] += 1
              }
            }
          }
        }
        acc[0] = ce
      }
    }
    // Row partials, added in row order.
    var total = [Double](repeating: 0, count: stride)
    for r in 0..<rows {
      for j in 0..<stride { total[j] += partials[r * stride + j] }
    }
    var value = LossValue(total: 0, crossEntropy: nil, dice: nil)
    if useCE {
      value.crossEntropy = total[0] / Double(pixels)
      value.total += total[0] / Double(pixels)
    }
    guard useDice else { return value }
    let first = cfg.diceClasses == .foreground ? 1 : 0
    let included = max(0, k - first)
    let eps = Double(cfg.diceSmoothing)
    var u = [Float](repeating: 0, count: k)
    var v = [Float](repeating: 0, count: k)
    var meanDice = 0.0
    for c in first..<k {
      let inter = total[1 + 3 * c], union = total[1 + 3 * c + 1] + total[1 + 3 * c + 2]
      meanDice += (2 * inter + eps) / (union + eps)
      u[c] = Float((2 * inter + eps) / ((union + eps) * (union + eps)) / Double(included))
      v[c] = Float(2 / (union + eps) / Double(included))
    }
    let diceLoss = included > 0 ? 1 - meanDice / Double(included) : 0
    value.dice = diceLoss
    value.total += diceLoss
    if included == 0 { return value }
    let us = u, vs = v
    let ts = SharedBuffer(t), ps = SharedBuffer(p), gs = SharedBuffer(dz)
    // Disjoint writes: task r adds into image row r of dZ (every channel).
    Parallel.forEach(tasks: rows) { _, r in
      let item = r / s.h, y = r % s.h
      let pb = ps.readOnly + item * s.item + y * s.w
      let gb = gs + (item * s.item + y * s.w)
      let tb = ts.readOnly + item * s.plane + y * s.w
      for x in 0..<s.w {
        let target = Int(tb[x])
        var dot: Float = 0
        for c in 0..<k {
          let dp = us[c] - (c == target ? vs[c] : 0)
          dot += pb[c * s.plane + x] * dp
        }
        for c in 0..<k {
          let dp = us[c] - (c == target ? vs[c] : 0)
          gb[c * s.plane + x] += pb[c * s.plane + x] * (dp - dot)
        }
      }
    }
    return value
  }

  /// The index of the first target outside 0 ..< classes, or nil when all are valid. Callers
  /// check data from files with this before training (the loss itself stops with a
  /// precondition failure on a bad id).
  public static func firstInvalidTarget(_ targets: [Int32], classes: Int) -> Int? {
    targets.firstIndex { $0 < 0 || Int($0) >= classes }
  }

  /// The loss for logits Z (N × K × H × W) and targets (N·H·W class ids, NHW order), with
  /// optional per-pixel weights (NHW); returns the value, dL/dZ and P = softmax(Z).
  public static func evaluate(
    logits z: Tensor, targets: [Int32], weights: [Float]? = nil, configuration: LossConfiguration
  ) -> (value: LossValue, gradient: Tensor, probabilities: Tensor) {
    checkTensor(z, "SegmentationLoss.evaluate")
    let s = z.shape
    precondition(targets.count == s.n * s.plane, "SegmentationLoss: \(targets.count) targets for \(s.n * s.plane) pixels")
    precondition(weights == nil || weights?.count == targets.count, "SegmentationLoss: weights and targets differ in size")
    var p = Tensor(shape: s)
    var g = Tensor(shape: s)
    let value = z.data.withUnsafeBufferPointer { zp in
      targets.withUnsafeBufferPointer { tp in
        p.data.withUnsafeMutableBufferPointer { pp in
          g.data.withUnsafeMutableBufferPointer { gp in
            guard let tb = tp.baseAddress else { preconditionFailure("SegmentationLoss: no targets") }
            if let weights {
              return weights.withUnsafeBufferPointer { wp in
                evaluate(logits: base(zp), shape: s, targets: tb, weights: base(wp), configuration: configuration, probabilities: base(pp), gradient: base(gp))
              }
            }
            return evaluate(logits: base(zp), shape: s, targets: tb, weights: nil, configuration: configuration, probabilities: base(pp), gradient: base(gp))
          }
        }
      }
    }
    return (value, g, p)
  }
}
