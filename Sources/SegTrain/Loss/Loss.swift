import SegCore
import SegModel

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

/// The training loss: a sum of terms per head, the heads combined by ``HeadWeights``, plus the
/// UNet 3+ CGM's binary cross-entropy.
///
/// Terms: `cross_entropy` (pixel-weighted by the shard's weight map), `dice` (soft Dice),
/// `focal` (Lin et al. 2017), `iou` (soft Jaccard), `ms_ssim` (1 − MS-SSIM); `hybrid` names UNet
/// 3+'s focal + ms_ssim + iou. Written as one name joined by `+` (`cross_entropy+dice`).
///
/// JSON keys: `terms` (list of names), `dice_classes`, `dice_smoothing`, `focal_alpha`,
/// `focal_gamma`, `head_weights` (`"mean"`, `"sum"` or a list; absent: the architecture's
/// default), `classification_weight`. Format-1 checkpoints wrote `kind` (`cross_entropy`,
/// `dice`, `cross_entropy_dice`) instead of `terms`; both are read.
public struct LossConfiguration: Codable, Sendable, Equatable {
  /// One loss term (``LossTerm``).
  public typealias Term = LossTerm

  /// The loss kinds of format-1 checkpoints (and the API of the first trainer).
  public enum Kind: String, Codable, Sendable, CaseIterable {
    case crossEntropy = "cross_entropy"
    case dice
    case crossEntropyDice = "cross_entropy_dice"

    var terms: [Term] {
      switch self {
      case .crossEntropy: return [.crossEntropy]
      case .dice: return [.dice]
      case .crossEntropyDice: return [.crossEntropy, .dice]
      }
    }
  }

  /// The terms, in canonical order (unique, at least one).
  public var terms: [Term]
  /// Classes the Dice term averages over on a softmax head (default `.foreground`).
  public var diceClasses: DiceClasses
  /// The smoothing ε of the Dice ratio (default 1).
  public var diceSmoothing: Float
  /// Focal α and γ (Lin et al.'s defaults 0.25 and 2).
  public var focalAlpha: Float
  public var focalGamma: Float
  /// The heads' weights (nil: the architecture's default: one head 1, U-Net++ mean, UNet 3+ sum).
  public var headWeights: HeadWeights?
  /// The weight of the CGM's classification loss (UNet 3+).
  public var classificationWeight: Float

  public init(
    terms: [Term], diceClasses: DiceClasses = .foreground, diceSmoothing: Float = 1, focalAlpha: Float = 0.25,
    focalGamma: Float = 2, headWeights: HeadWeights? = nil, classificationWeight: Float = 1
  ) {
    precondition(diceSmoothing >= 0, "LossConfiguration: Dice smoothing must be ≥ 0")
    precondition(!terms.isEmpty, "LossConfiguration: no loss terms")
    self.terms = Term.allCases.filter(terms.contains)
    self.diceClasses = diceClasses
    self.diceSmoothing = diceSmoothing
    self.focalAlpha = focalAlpha
    self.focalGamma = focalGamma
    self.headWeights = headWeights
    self.classificationWeight = classificationWeight
  }

  public init(kind: Kind = .crossEntropy, diceClasses: DiceClasses = .foreground, diceSmoothing: Float = 1) {
    self.init(terms: kind.terms, diceClasses: diceClasses, diceSmoothing: diceSmoothing)
  }

  /// The terms of a name such as `cross_entropy+dice`, `hybrid` or `focal+iou` (nil for an
  /// unknown or empty name).
  public static func terms(named name: String) -> [Term]? { LossTerm.terms(named: name) }

  /// The canonical name (`cross_entropy+dice`).
  public var name: String { terms.map(\.rawValue).joined(separator: "+") }

  /// What is wrong with these values (empty when usable).
  public var problems: [String] {
    var out: [String] = []
    if terms.isEmpty { out.append("the loss has no terms") }
    if !(focalAlpha >= 0 && focalAlpha <= 1) { out.append("focal_alpha must be in [0, 1], not \(focalAlpha)") }
    if !(focalGamma >= 0) { out.append("focal_gamma must be ≥ 0, not \(focalGamma)") }
    if !(classificationWeight >= 0) { out.append("classification_weight must be ≥ 0") }
    if case .weights(let w)? = headWeights, w.isEmpty || w.contains(where: { !($0 >= 0) }) {
      out.append("head weights must be non-negative numbers")
    }
    return out
  }

  enum CodingKeys: String, CodingKey {
    case kind, terms
    case diceClasses = "dice_classes"
    case diceSmoothing = "dice_smoothing"
    case focalAlpha = "focal_alpha"
    case focalGamma = "focal_gamma"
    case headWeights = "head_weights"
    case classificationWeight = "classification_weight"
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let terms: [Term]
    if let kind = try c.decodeIfPresent(Kind.self, forKey: .kind) {
      terms = kind.terms
    } else {
      terms = try c.decode([Term].self, forKey: .terms)
      guard !terms.isEmpty else { throw DecodingError.dataCorruptedError(forKey: .terms, in: c, debugDescription: "no loss terms") }
    }
    let smoothing = try c.decodeIfPresent(Float.self, forKey: .diceSmoothing) ?? 1
    guard smoothing >= 0 else { throw DecodingError.dataCorruptedError(forKey: .diceSmoothing, in: c, debugDescription: "dice_smoothing must be ≥ 0") }
    self.init(
      terms: terms, diceClasses: try c.decodeIfPresent(DiceClasses.self, forKey: .diceClasses) ?? .foreground,
      diceSmoothing: smoothing, focalAlpha: try c.decodeIfPresent(Float.self, forKey: .focalAlpha) ?? 0.25,
      focalGamma: try c.decodeIfPresent(Float.self, forKey: .focalGamma) ?? 2,
      headWeights: try c.decodeIfPresent(HeadWeights.self, forKey: .headWeights),
      classificationWeight: try c.decodeIfPresent(Float.self, forKey: .classificationWeight) ?? 1)
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(terms, forKey: .terms)
    try c.encode(diceClasses, forKey: .diceClasses)
    try c.encode(diceSmoothing, forKey: .diceSmoothing)
    try c.encode(focalAlpha, forKey: .focalAlpha)
    try c.encode(focalGamma, forKey: .focalGamma)
    try c.encodeIfPresent(headWeights, forKey: .headWeights)
    try c.encode(classificationWeight, forKey: .classificationWeight)
  }

  var usesCrossEntropy: Bool { terms.contains(.crossEntropy) }
  var usesDice: Bool { terms.contains(.dice) }
  /// Terms a softmax head computes on its probabilities (beyond cross-entropy and Dice).
  var probabilityTerms: [Term] { terms.filter { $0 == .focal || $0 == .iou || $0 == .msSSIM } }
}

/// The value of the loss and its parts (each summed over the heads with their weights).
public struct LossValue: Sendable, Equatable {
  /// The loss that was differentiated (the sum of the parts in use).
  public var total: Double
  /// Mean over pixels of w·CE, when cross-entropy is in use.
  public var crossEntropy: Double?
  /// 1 − mean soft Dice, when Dice is in use.
  public var dice: Double?
  /// Focal loss, when in use.
  public var focal: Double? = nil
  /// Soft Jaccard loss, when in use.
  public var iou: Double? = nil
  /// 1 − MS-SSIM, when in use.
  public var msSSIM: Double? = nil
  /// The CGM's binary cross-entropy (UNet 3+).
  public var classification: Double? = nil

  public init(total: Double, crossEntropy: Double? = nil, dice: Double? = nil) {
    self.total = total
    self.crossEntropy = crossEntropy
    self.dice = dice
  }
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
