import SegCache
import SegCore
import SegModel
import SegPipeline
import SegTrain

/// The steps of setting a run up: the network the settings and shards call for, a fresh trainer,
/// the metadata every checkpoint carries, and picking the log up again on resume.
extension TrainingRun {
  /// The network of the section for the data: padding from the section, else from the shards'
  /// tiles, else what fits; checked against the shards' tile and label sizes.
  static func network(for t: TrainSection, data: TrainingData, manifest: ShardManifest, shards: String) throws -> NetworkConfiguration {
    let fallback: NetworkPadding
    if case .string(let p)? = manifest.settings.tiles?["padding"] {
      fallback = p == "same" ? .same : .valid
    } else {
      fallback = data.inputSize == data.labelSize || t.architecture != .unet ? .same : .valid
    }
    if let problem = t.problem { throw WorkflowError(.badSettings, problem) }
    let configuration = t.network(channels: data.channels, classes: data.classes, fallbackPadding: fallback)
    if let problem = configuration.problems.first ?? configuration.geometry.problem { throw WorkflowError(.badSettings, problem) }
    let geometry = configuration.geometry
    guard data.inputSize.height == data.inputSize.width, data.labelSize.height == data.labelSize.width,
      geometry.outputSize(forInput: data.inputSize.height) == data.labelSize.height
    else {
      let out = geometry.outputSize(forInput: data.inputSize.height).map { "\($0) × \($0)" } ?? "nothing (not a legal input)"
      throw WorkflowError(
        .incompatible, path: shards,
        "the shards hold \(data.inputSize.height) × \(data.inputSize.width) tiles with \(data.labelSize.height) × \(data.labelSize.width) labels, "
          + "but \(geometry.summary) maps \(data.inputSize.height) to \(out)",
        hint: "match the pipeline's tiles: section to the network (or change train.network)")
    }
    return configuration
  }

  /// A new network (initialised from the seed) and its trainer; with a time limit, a cosine
  /// schedule is planned over that time too (it anneals by whichever ends first).
  static func freshTrainer(
    _ configuration: NetworkConfiguration, section t: TrainSection, totalSteps: Int, seed: UInt64, timeLimit: Double?
  ) throws -> Trainer {
    let model = Network(configuration: configuration, seed: seed)
    if case .weights(let w)? = t.headWeights, w.count != model.headCount {
      throw WorkflowError(
        .badSettings, "train.loss.head_weights lists \(w.count) weights, but this \(configuration.architecture.displayName) has \(model.headCount) heads")
    }
    return Trainer(model: model, configuration: try trainingConfiguration(t, totalSteps: totalSteps, seed: seed, timeBudget: timeLimit))
  }

  /// The run's optimiser, schedule and loss from the section.
  static func trainingConfiguration(_ t: TrainSection, totalSteps: Int, seed: UInt64, timeBudget: Double? = nil) throws -> TrainingConfiguration {
    let optimizer: OptimizerConfiguration
    switch t.optimizer {
    case .adam: optimizer = .adam(beta1: Float(t.beta1), beta2: Float(t.beta2), weightDecay: Float(t.weightDecay))
    case .sgd: optimizer = .sgd(momentum: Float(t.momentum), weightDecay: Float(t.weightDecay))
    }
    let lr = Float(t.learningRate)
    let schedule: LearningRateSchedule
    switch t.schedule {
    case .step: schedule = .step(lr, every: t.stepSize, gamma: Float(t.gamma))
    case .cosine:
      var cosine = LearningRateSchedule.cosine(lr, totalSteps: totalSteps, floor: Float(t.floor))
      cosine.budgetSeconds = timeBudget
      schedule = cosine
    case .plateau: schedule = .plateau(lr, patience: t.patience, factor: Float(t.gamma), floor: Float(t.floor))
    case .constant: schedule = .constant(lr)
    }
    let loss = LossConfiguration(
      terms: t.loss, focalAlpha: Float(t.focalAlpha), focalGamma: Float(t.focalGamma), headWeights: t.headWeights,
      classificationWeight: Float(t.classificationWeight))
    let configuration = TrainingConfiguration(
      optimizer: optimizer, schedule: schedule, loss: loss, maxGradientNorm: t.maxGradientNorm.map { Float($0) }, seed: seed)
    if let problem = configuration.problems.first { throw WorkflowError(.badSettings, problem) }
    return configuration
  }

  /// What every checkpoint of the run records about its data: where the shards are, the
  /// pipeline's hash, the mask kind, the normalisation (for `predict`), the input size.
  static func checkpointMetadata(options: TrainRunOptions, manifest: ShardManifest, data: TrainingData) -> [String: String] {
    [
      "shards": options.shards, "pipeline_sha256": manifest.pipelineSHA256, "mask_kind": data.maskKind,
      "input_size": "\(data.inputSize.height)",
    ].merging(TrainingNormalization.metadata(for: manifest)) { a, _ in a }
  }

  /// On resume: the data position of the checkpoint, and the metrics log and plot points as they
  /// were at its step (what the interrupted run wrote after it is dropped; the kept lines stay
  /// byte for byte as they were).
  func restoreLog(from checkpoint: Checkpoint) throws {
    epochSamples = Int(checkpoint.metadata["epoch_samples"] ?? "0") ?? 0
    let kept = TrainingRun.readHistory(metricsPath, upTo: checkpoint.step)
    history = kept.map(\.value)
    for line in history {
      if case .string("train")? = line["kind"], case .int(let s)? = line["step"], let l = line["loss"]?.number {
        trainPoints.append((Double(s), l))
      }
      if case .string("validation")? = line["kind"], let v = TrainingRun.validation(from: line) { validationPoints.append(v) }
    }
    lastValidation = validationPoints.last
    try FileIO.writeAtomically(Array(kept.map { $0.line + "\n" }.joined().utf8), to: metricsPath)
  }
}
