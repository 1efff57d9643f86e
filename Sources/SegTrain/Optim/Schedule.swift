#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A learning-rate schedule: η as a function of the update index t = 0, 1, 2, … (and, for
/// `plateau`, of a monitored value).
///
/// - `constant`: η_t = η₀.
/// - `step`: η_t = η₀·γ^⌊t / step_size⌋ (PyTorch `StepLR` stepped once per update).
/// - `cosine`: η_t = η_min + (η₀ − η_min)·(1 + cos(π·min(t, T)/T))/2 with T = `total_steps`
///   (the closed form of PyTorch `CosineAnnealingLR`, held at η_min after T).
/// - `plateau`: η starts at η₀; each ``LearningRateScheduler/observe(_:)`` of a value to
///   minimise counts as an evaluation: a value below best·(1 − threshold) is an improvement
///   (it becomes the best, the bad count resets); otherwise the bad count rises, and when it
///   exceeds `patience`, η ← max(η·γ, η_min) and the bad count resets (PyTorch
///   `ReduceLROnPlateau`, mode "min", relative threshold, no cooldown).
///
/// JSON keys: `kind`, `learning_rate` (η₀), `step_size`, `gamma`, `total_steps`,
/// `minimum_learning_rate` (η_min), `patience`, `threshold`.
public struct LearningRateSchedule: Codable, Sendable, Equatable {
  public enum Kind: String, Codable, Sendable, CaseIterable {
    case constant, step, cosine, plateau
  }

  public var kind: Kind
  /// η₀ > 0.
  public var learningRate: Float
  /// `step`: updates between decays (≥ 1).
  public var stepSize: Int
  /// `step`, `plateau`: the decay factor γ in (0, 1].
  public var gamma: Float
  /// `cosine`: T, the updates over which η falls to η_min (≥ 1).
  public var totalSteps: Int
  /// `cosine`, `plateau`: the floor η_min ≥ 0.
  public var minimumLearningRate: Float
  /// `plateau`: evaluations without improvement tolerated before a decay (≥ 0).
  public var patience: Int
  /// `plateau`: the relative improvement that counts (≥ 0).
  public var threshold: Float

  public init(
    kind: Kind = .constant, learningRate: Float, stepSize: Int = 1, gamma: Float = 0.1, totalSteps: Int = 1,
    minimumLearningRate: Float = 0, patience: Int = 10, threshold: Float = 1e-4
  ) {
    self.kind = kind
    self.learningRate = learningRate
    self.stepSize = stepSize
    self.gamma = gamma
    self.totalSteps = totalSteps
    self.minimumLearningRate = minimumLearningRate
    self.patience = patience
    self.threshold = threshold
  }

  public static func constant(_ lr: Float) -> Self { Self(kind: .constant, learningRate: lr) }
  public static func step(_ lr: Float, every n: Int, gamma: Float) -> Self { Self(kind: .step, learningRate: lr, stepSize: n, gamma: gamma) }
  public static func cosine(_ lr: Float, totalSteps: Int, floor: Float = 0) -> Self {
    Self(kind: .cosine, learningRate: lr, totalSteps: totalSteps, minimumLearningRate: floor)
  }
  public static func plateau(_ lr: Float, patience: Int, factor: Float, threshold: Float = 1e-4, floor: Float = 0) -> Self {
    Self(kind: .plateau, learningRate: lr, gamma: factor, minimumLearningRate: floor, patience: patience, threshold: threshold)
  }

  enum CodingKeys: String, CodingKey {
    case kind, gamma, patience, threshold
    case learningRate = "learning_rate"
    case stepSize = "step_size"
    case totalSteps = "total_steps"
    case minimumLearningRate = "minimum_learning_rate"
  }

  /// What is wrong with these values (empty when usable).
  public var problems: [String] {
    var out: [String] = []
    if !(learningRate > 0) { out.append("learning_rate must be > 0, not \(learningRate)") }
    if stepSize < 1 { out.append("step_size must be ≥ 1, not \(stepSize)") }
    if !(gamma > 0 && gamma <= 1) { out.append("gamma must be in (0, 1], not \(gamma)") }
    if totalSteps < 1 { out.append("total_steps must be ≥ 1, not \(totalSteps)") }
    if !(minimumLearningRate >= 0) { out.append("minimum_learning_rate must be ≥ 0") }
    if patience < 0 { out.append("patience must be ≥ 0, not \(patience)") }
    if !(threshold >= 0) { out.append("threshold must be ≥ 0") }
    return out
  }
}

/// A schedule with its running state (what a checkpoint must keep: the plateau's current
/// rate, best value and bad count).
public struct LearningRateScheduler: Codable, Sendable, Equatable {
  public let schedule: LearningRateSchedule
  /// `plateau`: the current η.
  public private(set) var plateauRate: Float
  /// `plateau`: the best value observed (nil before the first).
  public private(set) var best: Double?
  /// `plateau`: evaluations since the last improvement or decay.
  public private(set) var badEvaluations: Int

  public init(_ schedule: LearningRateSchedule) {
    precondition(schedule.problems.isEmpty, "LearningRateScheduler: \(schedule.problems.joined(separator: "; "))")
    self.schedule = schedule
    plateauRate = schedule.learningRate
    best = nil
    badEvaluations = 0
  }

  enum CodingKeys: String, CodingKey {
    case schedule, best
    case plateauRate = "plateau_rate"
    case badEvaluations = "bad_evaluations"
  }

  /// η for update index t (0 for the first update).
  public func rate(step t: Int) -> Float {
    let s = schedule
    switch s.kind {
    case .constant:
      return s.learningRate
    case .step:
      return Float(Double(s.learningRate) * pow(Double(s.gamma), Double(max(0, t) / s.stepSize)))
    case .cosine:
      let progress = Double(min(max(0, t), s.totalSteps)) / Double(s.totalSteps)
      let lo = Double(s.minimumLearningRate), hi = Double(s.learningRate)
      return Float(lo + (hi - lo) * (1 + cos(Double.pi * progress)) / 2)
    case .plateau:
      return plateauRate
    }
  }

  /// Reports a monitored value to minimise (e.g. the validation loss); only `plateau` uses it.
  public mutating func observe(_ value: Double) {
    guard schedule.kind == .plateau else { return }
    if let b = best, !(value < b * (1 - Double(schedule.threshold))) {
      badEvaluations += 1
    } else {
      best = value
      badEvaluations = 0
    }
    if badEvaluations > schedule.patience {
      plateauRate = max(plateauRate * schedule.gamma, schedule.minimumLearningRate)
      badEvaluations = 0
    }
  }
}
