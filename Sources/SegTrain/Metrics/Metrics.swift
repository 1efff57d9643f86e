import SegCore

/// Per-class overlap scores and pixel error of a predicted class map against the truth.
public struct SegmentationScores: Sendable, Equatable {
  /// Dice_k = 2|P_k ∩ T_k| / (|P_k| + |T_k|) per class k; nil when class k is in neither map.
  public var dice: [Double?]
  /// IoU_k = |P_k ∩ T_k| / |P_k ∪ T_k| per class k; nil when class k is in neither map.
  public var iou: [Double?]
  /// The fraction of pixels whose predicted class differs from the true class.
  public var pixelError: Double
  /// Pixels compared.
  public var pixels: Int

  /// The mean of the defined per-class values over `classes` (nil when none is defined).
  public static func mean(_ values: [Double?], classes: Range<Int>) -> Double? {
    let v = classes.compactMap { $0 < values.count ? values[$0] : nil }
    return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
  }
}

/// Per-class pixel counts of a predicted class map against the truth, pooled over any number of
/// images (so a validation set's Dice is that of all its pixels, not a mean of per-tile ratios).
public struct ConfusionCounts: Sendable, Equatable {
  public let classes: Int
  /// |P_k ∩ T_k|, |P_k| and |T_k| per class.
  public private(set) var intersection: [Int]
  public private(set) var predicted: [Int]
  public private(set) var truth: [Int]
  /// Pixels whose predicted class differs from the true class, and pixels counted.
  public private(set) var wrong = 0
  public private(set) var pixels = 0

  public init(classes: Int) {
    precondition(classes >= 1, "ConfusionCounts: classes must be ≥ 1")
    self.classes = classes
    intersection = [Int](repeating: 0, count: classes)
    predicted = intersection
    truth = intersection
  }

  /// Adds one map (class ids 0 ..< classes, same length, any layout).
  public mutating func add(predicted p: [Int32], truth t: [Int32]) {
    precondition(p.count == t.count, "SegmentationMetrics: \(p.count) predicted vs \(t.count) true pixels")
    for i in 0..<p.count {
      let a = Int(p[i]), b = Int(t[i])
      precondition(a >= 0 && a < classes && b >= 0 && b < classes, "SegmentationMetrics: class id outside 0..<\(classes) at pixel \(i)")
      predicted[a] += 1
      truth[b] += 1
      if a == b { intersection[a] += 1 } else { wrong += 1 }
    }
    pixels += p.count
  }

  /// Dice_k, IoU_k (nil for a class in neither map) and the pixel error of the pixels so far.
  public var scores: SegmentationScores {
    var dice: [Double?] = []
    var iou: [Double?] = []
    for k in 0..<classes {
      let total = predicted[k] + truth[k]
      if total == 0 {
        dice.append(nil)
        iou.append(nil)
      } else {
        dice.append(2 * Double(intersection[k]) / Double(total))
        iou.append(Double(intersection[k]) / Double(total - intersection[k]))
      }
    }
    return SegmentationScores(dice: dice, iou: iou, pixelError: pixels == 0 ? 0 : Double(wrong) / Double(pixels), pixels: pixels)
  }
}

/// Segmentation metrics: overlap scores, the ISBI 2012 foreground-restricted Rand error, and
/// connected components.
public enum SegmentationMetrics {
  /// Dice, IoU and pixel error of `predicted` against `truth` (class ids 0 ..< classes, same
  /// length, any layout).
  public static func scores(predicted: [Int32], truth: [Int32], classes: Int) -> SegmentationScores {
    var counts = ConfusionCounts(classes: classes)
    counts.add(predicted: predicted, truth: truth)
    return counts.scores
  }

  /// The class with the highest probability at each pixel of P (N × K × H × W), as N·H·W ids
  /// (NHW order; ties go to the lower class).
  public static func argmax(_ p: Tensor) -> [Int32] {
    let s = p.shape
    var out = [Int32](repeating: 0, count: s.n * s.plane)
    for n in 0..<s.n {
      for i in 0..<s.plane {
        var best = 0
        var bv = p.data[n * s.item + i]
        for k in 1..<max(1, s.c) {
          let v = p.data[n * s.item + k * s.plane + i]
          if v > bv { bv = v; best = k }
        }
        out[n * s.plane + i] = Int32(best)
      }
    }
    return out
  }

  /// Labels the 4-connected components of the `true` pixels of a `width` × `height` mask
  /// (row-major): 0 for `false` pixels, 1, 2, … for components in raster order of their first
  /// pixel.
  ///
  /// - Complexity: O(width·height), two passes with union–find.
  public static func connectedComponents(_ mask: [Bool], width: Int, height: Int) -> (labels: [Int32], count: Int) {
    precondition(mask.count == width * height, "connectedComponents: \(mask.count) pixels for \(width)×\(height)")
    let ids = ConnectedComponents.label(
      mask.map { $0 ? 1 : 0 }, width: width, height: height, connectivity: .four, splitByValue: false)
    return (ids.map { Int32(bitPattern: $0) }, Int(ids.max() ?? 0))
  }

  /// The result of ``randError(truth:proposal:)``.
  public struct RandScore: Sendable, Equatable {
    /// Rand split score (precision of merges): Σ p_ij² / Σ_j b_j² (with singletons, see below).
    public var precision: Double
    /// Rand merge score (recall): Σ p_ij² / Σ_i a_i².
    public var recall: Double
    /// V^Rand, the F-score 2·P·R/(P + R).
    public var fScore: Double
    /// 1 − V^Rand, the Rand error the ISBI 2012 challenge reports.
    public var error: Double { 1 - fScore }
  }

  /// The foreground-restricted Rand score of a proposed segmentation against the truth, as
  /// the ISBI 2012 challenge defines it (Arganda-Carreras et al. 2015, "Crowdsourcing the
  /// creation of image segmentation algorithms for connectomics", Front. Neuroanat. 9:142,
  /// doi:10.3389/fnana.2015.00142; the challenge's `RandError.foregroundRestrictedStatsN2`).
  ///
  /// Both inputs are segment labelings (0 = background/boundary, other ids = segments), e.g.
  /// the ``connectedComponents(_:width:height:)`` of binary masks. Only the n pixels where the
  /// truth is foreground (label ≠ 0) count. With p_ij the fraction of those pixels in true
  /// segment i and proposed segment j (a sparse contingency table), a_i = Σ_j p_ij (all j,
  /// proposal background included) and b_j = Σ_{i≠0} p_ij for j ≠ 0; each proposal-background
  /// pixel inside the truth's foreground counts as its own singleton segment, which adds
  /// (Σ_i p_i0)/n to both Σ p_ij² and Σ b_j²:
  ///
  ///     P = (Σ_{i,j≠0} p_ij² + Σ_i p_i0/n) / (Σ_j b_j² + Σ_i p_i0/n)
  ///     R = (Σ_{i,j≠0} p_ij² + Σ_i p_i0/n) / Σ_i a_i²
  ///     V^Rand = 2PR/(P + R)
  ///
  /// This is the score at one threshold, without the border thinning of the challenge's final
  /// "maximal score after thinning" variant. When the truth has no foreground the score is
  /// 1 (nothing to split or merge).
  public static func randError(truth: [Int32], proposal: [Int32]) -> RandScore {
    precondition(truth.count == proposal.count, "randError: \(truth.count) vs \(proposal.count) pixels")
    var table: [Int64: Int] = [:]
    var rows: [Int32: Int] = [:]
    var n = 0
    for i in 0..<truth.count where truth[i] != 0 {
      n += 1
      let key = Int64(truth[i]) << 32 | Int64(UInt32(bitPattern: proposal[i]))
      table[key, default: 0] += 1
      rows[truth[i], default: 0] += 1
    }
    guard n > 0 else { return RandScore(precision: 1, recall: 1, fScore: 1) }
    let nd = Double(n)
    var sumAB = 0.0, background = 0.0
    var cols: [Int32: Int] = [:]
    for (key, count) in table {
      let j = Int32(truncatingIfNeeded: key)
      let p = Double(count) / nd
      if j == 0 {
        background += p
      } else {
        sumAB += p * p
        cols[j, default: 0] += count
      }
    }
    var sumA = 0.0
    for (_, c) in rows { sumA += (Double(c) / nd) * (Double(c) / nd) }
    var sumB = 0.0
    for (_, c) in cols { sumB += (Double(c) / nd) * (Double(c) / nd) }
    sumB += background / nd
    sumAB += background / nd
    let precision = sumAB / sumB
    let recall = sumAB / sumA
    let f = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
    return RandScore(precision: precision, recall: recall, fScore: f)
  }

  /// The Rand score of two binary masks (true = foreground, e.g. cell interior; false =
  /// membrane/background): each mask's 4-connected components are the segments.
  public static func randError(truthMask: [Bool], proposalMask: [Bool], width: Int, height: Int) -> RandScore {
    let t = connectedComponents(truthMask, width: width, height: height).labels
    let p = connectedComponents(proposalMask, width: width, height: height).labels
    return randError(truth: t, proposal: p)
  }
}
