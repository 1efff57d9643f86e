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
/// - `cosine`: η_t = η_min + (η₀ − η_min)·(1 + cos(π·p))/2 with progress p = min(t, T)/T,
///   T = `total_steps` (the closed form of PyTorch `CosineAnnealingLR`, held at η_min after T).
///   With a time budget B (`budget_seconds`, for runs with a time limit), p = max(min(t, T)/T,
///   min(s, B)/B) where s is the training time so far: the curve anneals by whichever of the
///   step count and the budget comes first, so a time-limited run ends annealed.
/// - `plateau`: η starts at η₀; each ``LearningRateScheduler/observe(_:)`` of a value to
///   minimise counts as an evaluation: a value below best·(1 − threshold) is an improvement
///   (it becomes the best, the bad count resets); otherwise the bad count rises, and when it
///   exceeds `patience`, η ← max(η·γ, η_min) and the bad count resets (PyTorch
///   `ReduceLROnPlateau`, mode "min", relative threshold, no cooldown).
///
/// JSON keys: `kind`, `learning_rate` (η₀), `step_size`, `gamma`, `total_steps`,
/// `minimum_learning_rate` (η_min), `patience`, `threshold`, `budget_seconds` (optional).
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
  /// `cosine`: the training time over which η falls to η_min as well (nil: steps only).
  public var budgetSeconds: Double?

  public init(
    kind: Kind = .constant, learningRate: Float, stepSize: Int = 1, gamma: Float = 0.1, totalSteps: Int = 1,
    minimumLearningRate: Float = 0, patience: Int = 10, threshold: Float = 1e-4, budgetSeconds: Double? = nil
  ) {
    self.kind = kind
    self.learningRate = learningRate
    self.stepSize = stepSize
    self.gamma = gamma
    self.totalSteps = totalSteps
    self.minimumLearningRate = minimumLearningRate
    self.patience = patience
    self.threshold = threshold
    self.budgetSeconds = budgetSeconds
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
    case budgetSeconds = "budget_seconds"
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
    if let b = budgetSeconds, !(b > 0 && b.isFinite) { out.append("budget_seconds must be > 0, not \(b)") }
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
  /// Training time so far in seconds (what a time budget is measured against; kept across
  /// resumes).
  public private(set) var elapsedSeconds: Double

  public init(_ schedule: LearningRateSchedule) {
    precondition(schedule.problems.isEmpty, "LearningRateScheduler: \(schedule.problems.joined(separator: "; "))")
    self.schedule = schedule
    plateauRate = schedule.learningRate
    best = nil
    badEvaluations = 0
    elapsedSeconds = 0
  }

  enum CodingKeys: String, CodingKey {
    case schedule, best
    case plateauRate = "plateau_rate"
    case badEvaluations = "bad_evaluations"
    case elapsedSeconds = "elapsed_seconds"
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    schedule = try c.decode(LearningRateSchedule.self, forKey: .schedule)
    plateauRate = try c.decode(Float.self, forKey: .plateauRate)
    best = try c.decodeIfPresent(Double.self, forKey: .best)
    badEvaluations = try c.decode(Int.self, forKey: .badEvaluations)
    elapsedSeconds = try c.decodeIfPresent(Double.self, forKey: .elapsedSeconds) ?? 0  // absent in format 1
  }

  /// Adds training time (for a schedule with a time budget).
  public mutating func advance(seconds: Double) {
    if seconds > 0 && seconds.isFinite { elapsedSeconds += seconds }
  }

  /// How far the schedule is, in [0, 1]: steps over `total_steps`, or the time budget's share
  /// when that is further (``LearningRateSchedule/budgetSeconds``).
  public func progress(step t: Int) -> Double {
    let s = schedule
    var p = Double(min(max(0, t), s.totalSteps)) / Double(s.totalSteps)
    if let b = s.budgetSeconds { p = max(p, min(elapsedSeconds, b) / b) }
    return p
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
      let progress = self.progress(step: t)
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
