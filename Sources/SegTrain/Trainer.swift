import SegCore

/// How to train: optimiser, schedule, loss, gradient clipping and the run's seed.
///
/// JSON keys: `optimizer`, `schedule`, `loss`, `max_gradient_norm` (null for no clipping),
/// `seed`.
public struct TrainingConfiguration: Codable, Sendable, Equatable {
  public var optimizer: OptimizerConfiguration
  public var schedule: LearningRateSchedule
  public var loss: LossConfiguration
  /// Clip the global gradient L2 norm to this value before each update (nil: no clipping).
  public var maxGradientNorm: Float?
  /// The seed of every random draw of the run (initialisation uses the model's own seed).
  public var seed: UInt64

  public init(
    optimizer: OptimizerConfiguration = .sgd(momentum: 0.99), schedule: LearningRateSchedule = .constant(1e-4),
    loss: LossConfiguration = LossConfiguration(), maxGradientNorm: Float? = nil, seed: UInt64 = 0
  ) {
    self.optimizer = optimizer
    self.schedule = schedule
    self.loss = loss
    self.maxGradientNorm = maxGradientNorm
    self.seed = seed
  }

  enum CodingKeys: String, CodingKey {
    case optimizer, schedule, loss, seed
    case maxGradientNorm = "max_gradient_norm"
  }

  /// What is wrong with these values (empty when usable).
  public var problems: [String] {
    var out = optimizer.problems + schedule.problems + loss.problems
    if let m = maxGradientNorm, !(m > 0) { out.append("max_gradient_norm must be > 0, not \(m)") }
    return out
  }
}

/// The result of one training step.
public struct StepResult: Sendable, Equatable {
  /// The loss of the batch before the update.
  public var loss: LossValue
  /// The learning rate the update used.
  public var learningRate: Float
  /// The global gradient L2 norm before clipping (computed only when clipping is on).
  public var gradientNorm: Double?
  /// The number of updates done, this one included.
  public var step: Int
}

/// Trains a ``Network``: owns the network, its gradient buffer, the optimiser, the schedule and
/// the buffers of a step.
///
/// A step is: zero the gradients, forward, loss (every head, see ``LossConfiguration``), backward,
/// (clip), update: the `train_step_*` benchmark's definition. Inputs are N × C_in × H × W tiles
/// (NCHW); targets and weights are N × Ho × Wo (NHW) at the network's output size
/// (``NetworkGeometry/outputSize(forInput:)``).
///
/// Not thread-safe: one trainer is driven by one thread (it uses ``ComputeThreads`` workers
/// inside each step).
public final class Trainer {
  /// The network being trained.
  public private(set) var model: Network
  /// dL/dθ of the last ``computeGradients(input:targets:weights:)`` or step, flat, at the
  /// parameters' offsets.
  public private(set) var gradients: [Float]
  public private(set) var optimizer: Optimizer
  public private(set) var scheduler: LearningRateScheduler
  public let configuration: TrainingConfiguration
  /// Updates done so far (the index of the next update).
  public var stepCount: Int { optimizer.steps }
  /// The epoch counter (kept for checkpoints; the caller advances it).
  public var epoch: Int = 0

  let objective: Objective
  private var workspace: NetworkWorkspace?
  private var evaluationWorkspace: NetworkWorkspace?
  private var gradientsAreZero = true

  /// Stream path for dropout masks: `RandomStream(seed:path:[2, step])`.
  static let dropoutStream: UInt64 = 2

  /// A trainer for `model` (which it copies) with `configuration`.
  public init(model: Network, configuration: TrainingConfiguration) {
    precondition(configuration.problems.isEmpty, "Trainer: \(configuration.problems.joined(separator: "; "))")
    self.model = model
    self.configuration = configuration
    gradients = [Float](repeating: 0, count: model.parameterCount)
    optimizer = Optimizer(configuration.optimizer, parameterCount: model.parameterCount)
    scheduler = LearningRateScheduler(configuration.schedule)
    objective = Self.objective(model, configuration)
  }

  /// A trainer restored from a checkpoint: same network, optimiser state, schedule state,
  /// step and epoch.
  public init(checkpoint: Checkpoint) {
    model = checkpoint.model
    configuration = checkpoint.training
    gradients = [Float](repeating: 0, count: checkpoint.model.parameterCount)
    optimizer = Optimizer(checkpoint.training.optimizer, state: checkpoint.optimizerState, steps: checkpoint.step)
    scheduler = checkpoint.scheduler
    epoch = checkpoint.epoch
    objective = Self.objective(model, configuration)
  }

  private static func objective(_ model: Network, _ c: TrainingConfiguration) -> Objective {
    let heads = model.headCount
    if case .weights(let w)? = c.loss.headWeights {
      precondition(w.count == heads, "Trainer: \(w.count) head weights for a network of \(heads) heads")
    }
    return Objective(c.loss, heads: heads, headKind: model.trainingGraph.headKind, architecture: model.configuration.architecture)
  }

  /// The learning rate of the next update.
  public var learningRate: Float { scheduler.rate(step: stepCount) }

  /// Reports a monitored value (e.g. validation loss) to the schedule (`plateau` uses it).
  public func observe(_ value: Double) { scheduler.observe(value) }

  /// Reports training time to the schedule (a cosine with a time budget anneals by it).
  public func advanceClock(seconds: Double) { scheduler.advance(seconds: seconds) }

  private func workspace(for shape: TensorShape) -> NetworkWorkspace {
    if let ws = workspace, ws.inputShape == shape { return ws }
    workspace = nil  // release the old buffers before allocating new ones
    let ws = model.trainingWorkspace(inputShape: shape)
    workspace = ws
    return ws
  }

  private func checkBatch(_ input: Tensor, _ targets: [Int32], _ weights: [Float]?) {
    checkTensor(input, "Trainer")
    let cfg = model.configuration
    guard let oh = cfg.outputSize(forInput: input.shape.h), let ow = cfg.outputSize(forInput: input.shape.w) else {
      preconditionFailure("Trainer: input \(input.shape.h)×\(input.shape.w) is not legal for this network")
    }
    let n = input.shape.n * oh * ow
    precondition(targets.count == n, "Trainer: \(targets.count) targets for an output of \(input.shape.n)×\(oh)×\(ow)")
    precondition(weights == nil || weights?.count == n, "Trainer: \(weights?.count ?? 0) weights for an output of \(input.shape.n)×\(oh)×\(ow)")
    let classes = Int32(cfg.labelClasses)
    precondition(!targets.contains { $0 < 0 || $0 >= classes }, "Trainer: a target class outside 0..<\(classes)")
  }

  /// Zero-grad, forward (training mode), loss and backward: leaves dL/dθ in ``gradients``
  /// and returns the loss. Does not update the parameters.
  ///
  /// - Parameters:
  ///   - input: N × C_in × H × W.
  ///   - targets: N·Ho·Wo class ids in 0 ..< label classes (NHW order).
  ///   - weights: N·Ho·Wo per-pixel loss weights (nil: all 1).
  @discardableResult
  public func computeGradients(input: Tensor, targets: [Int32], weights: [Float]? = nil) -> LossValue {
    checkBatch(input, targets, weights)
    let ws = workspace(for: input.shape)
    _ = ws.gradients()
    if !gradientsAreZero {
      let t0 = StepProfile.begin()
      gradients.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
      StepProfile.end(t0, "step 0 zero gradients")
    }
    gradientsAreZero = false
    let dropoutRNG = RandomStream(seed: configuration.seed, path: [Self.dropoutStream, UInt64(stepCount)])
    let objective = self.objective
    var value = LossValue(total: 0)
    // The layers and parameters are only read; the batch-norm state is written, so it is
    // moved out of the model for the pass (no copy-on-write) and moved back after.
    var state = model.state
    model.state = []
    defer { model.state = state }
    let m = model
    m.parameters.withUnsafeBufferPointer { pp in
      state.withUnsafeMutableBufferPointer { sp in
        input.data.withUnsafeBufferPointer { xp in
          var t0 = StepProfile.begin()
          m.trainingGraph.forward(input: base(xp), parameters: base(pp), state: sp.baseAddress, workspace: ws, training: true, dropout: dropoutRNG)
          StepProfile.end(t0, "step 1 forward")
          t0 = StepProfile.begin()
          value = targets.withUnsafeBufferPointer { tp in
            guard let tb = tp.baseAddress else { preconditionFailure("Trainer: no targets") }
            guard let weights else {
              return objective.evaluate(workspace: ws, input: base(xp), targets: tb, weights: nil, gradients: true)
            }
            return weights.withUnsafeBufferPointer { wp in
              objective.evaluate(workspace: ws, input: base(xp), targets: tb, weights: wp.baseAddress, gradients: true)
            }
          }
          StepProfile.end(t0, "step 2 loss")
          t0 = StepProfile.begin()
          gradients.withUnsafeMutableBufferPointer { gp in
            m.trainingGraph.backward(input: base(xp), parameters: base(pp), gradients: base(gp), workspace: ws)
          }
          StepProfile.end(t0, "step 3 backward")
        }
      }
    }
    return value
  }

  /// One training step: zero-grad, forward, loss, backward, optional clipping, update.
  @discardableResult
  public func step(input: Tensor, targets: [Int32], weights: [Float]? = nil) -> StepResult {
    let loss = computeGradients(input: input, targets: targets, weights: weights)
    var norm: Double? = nil
    if let maxNorm = configuration.maxGradientNorm {
      norm = clipGradientNorm(&gradients, maxNorm: maxNorm)
    }
    let lr = scheduler.rate(step: stepCount)
    let t0 = StepProfile.begin()
    optimizer.update(parameters: &model.parameters, gradients: &gradients, learningRate: lr, zeroGradients: true)
    StepProfile.end(t0, "step 4 update")
    gradientsAreZero = true
    return StepResult(loss: loss, learningRate: lr, gradientNorm: norm, step: stepCount)
  }

  /// Class probabilities N × label classes × Ho × Wo in evaluation mode (no dropout, running
  /// batch-norm statistics), combined from the heads as ``Network/predict(_:settings:workspace:)``.
  public func predict(_ input: Tensor) -> Tensor { evaluate(input: input).probabilities }

  /// The buffers for evaluation, kept for the next call of the same shape.
  private func evaluationBuffers(for shape: TensorShape) -> NetworkWorkspace {
    if let ws = evaluationWorkspace, ws.inputShape == shape { return ws }
    evaluationWorkspace = nil
    let ws = model.evaluationWorkspace(inputShape: shape)
    evaluationWorkspace = ws
    return ws
  }

  /// The loss and probabilities of a batch in evaluation mode, without any update (for
  /// validation). Without targets the loss is 0.
  public func evaluate(input: Tensor, targets: [Int32]? = nil, weights: [Float]? = nil) -> (loss: LossValue, probabilities: Tensor) {
    if let targets { checkBatch(input, targets, weights) }
    let ws = evaluationBuffers(for: input.shape)
    model.forwardEvaluation(input, workspace: ws)
    var value = LossValue(total: 0)
    let heads: [Tensor] = input.data.withUnsafeBufferPointer { xp in
      if let targets {
        value = targets.withUnsafeBufferPointer { tp in
          guard let tb = tp.baseAddress else { preconditionFailure("Trainer: no targets") }
          guard let weights else { return objective.evaluate(workspace: ws, input: base(xp), targets: tb, weights: nil, gradients: false) }
          return weights.withUnsafeBufferPointer { wp in
            objective.evaluate(workspace: ws, input: base(xp), targets: tb, weights: wp.baseAddress, gradients: false)
          }
        }
      }
      return ws.heads.map { h in
        let s = ws.shape(h)
        return Tensor(shape: s, data: Array(UnsafeBufferPointer(start: ws.activation(h, input: base(xp)), count: s.count)))
      }
    }
    return (value, Network.combine(heads, kind: model.trainingGraph.headKind))
  }

  /// Replaces the network's parameters and state (e.g. to compare with another
  /// implementation); shapes must match.
  public func setParameters(_ parameters: [Float], state: [Float]? = nil) {
    precondition(parameters.count == model.parameters.count, "Trainer: \(parameters.count) parameters for a network of \(model.parameters.count)")
    model.parameters = parameters
    if let state {
      precondition(state.count == model.state.count, "Trainer: state of \(state.count) floats for \(model.state.count)")
      model.state = state
    }
  }
}
