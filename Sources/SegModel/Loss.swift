/// One term of a training loss (see SegTrain's `LossConfiguration` for the mathematics).
public enum LossTerm: String, Codable, Sendable, CaseIterable {
  /// Softmax (or binary) cross-entropy, weighted per pixel by the shard's weight map.
  case crossEntropy = "cross_entropy"
  /// Soft Dice.
  case dice
  /// Focal loss (Lin et al. 2017, doi:10.1109/ICCV.2017.324).
  case focal
  /// Soft Jaccard (IoU) loss.
  case iou
  /// 1 − MS-SSIM (Wang et al. 2003).
  case msSSIM = "ms_ssim"

  /// The terms of a name such as `cross_entropy+dice`, `hybrid` (UNet 3+'s focal + ms_ssim +
  /// iou) or `focal+iou`, in canonical order; nil for an unknown or empty name.
  public static func terms(named name: String) -> [LossTerm]? {
    var out: [LossTerm] = []
    for part in name.split(separator: "+", omittingEmptySubsequences: false) {
      if part == "hybrid" {
        out += [.focal, .msSSIM, .iou]
      } else if let t = LossTerm(rawValue: String(part)) {
        out.append(t)
      } else {
        return nil
      }
    }
    return out.isEmpty ? nil : allCases.filter(out.contains)
  }

  /// The canonical name of a list of terms (`cross_entropy+dice`).
  public static func name(_ terms: [LossTerm]) -> String { allCases.filter(terms.contains).map(\.rawValue).joined(separator: "+") }

  /// The names ``terms(named:)`` understands, for help texts and errors.
  public static let nameHelp = "cross_entropy, dice, focal, iou, ms_ssim joined by + (e.g. cross_entropy+dice), or hybrid (= focal+ms_ssim+iou)"
}

/// How a deeply supervised network weighs its heads' losses.
public enum HeadWeights: Sendable, Equatable, Codable {
  /// The mean over the heads (U-Net++'s deep supervision).
  case mean
  /// The sum, each head weight 1 (UNet 3+'s full-scale deep supervision).
  case sum
  /// One weight per head, in head order.
  case weights([Float])

  /// The weight of each of `heads` heads.
  public func values(heads: Int) -> [Float] {
    switch self {
    case .mean: return [Float](repeating: 1 / Float(max(1, heads)), count: heads)
    case .sum: return [Float](repeating: 1, count: heads)
    case .weights(let w): return w
    }
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.singleValueContainer()
    if let s = try? c.decode(String.self) {
      switch s {
      case "mean": self = .mean
      case "sum": self = .sum
      default: throw DecodingError.dataCorruptedError(in: c, debugDescription: "head weights must be mean, sum or a list of numbers, not '\(s)'")
      }
    } else {
      self = .weights(try c.decode([Float].self))
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.singleValueContainer()
    switch self {
    case .mean: try c.encode("mean")
    case .sum: try c.encode("sum")
    case .weights(let w): try c.encode(w)
    }
  }
}


/// The optimisers the trainer has (PyTorch semantics).
public enum OptimizerKind: String, Codable, Sendable, CaseIterable {
  /// SGD with momentum (the U-Net paper: 0.99).
  case sgd
  /// Adam (Kingma & Ba 2015).
  case adam
}

/// The learning-rate schedules the trainer has.
public enum ScheduleKind: String, Codable, Sendable, CaseIterable {
  case constant
  /// Multiply by γ every `step_size` steps.
  case step
  /// Cosine from the rate to the floor over the run.
  case cosine
  /// Multiply by the factor when the validation loss stops improving for `patience` checks.
  case plateau
}
