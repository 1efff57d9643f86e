import Foundation
import SegCache
import SegCore
import SegIO
import SegModel
import SegPipeline
import SegRender
import SegTiling
import SegTrain

/// Settings of a training run (the pipeline's `train:` section merged with command-line flags).
public struct TrainRunOptions: Sendable {
  public var shards: String
  public var runDirectory: String
  public var section: TrainSection
  public var threads: Int
  public var seed: UInt64
  public var resume: Bool
  public var skipCorrupt: Bool
  /// Wall-clock budget of this invocation in seconds: the run stops after the step that
  /// crosses it, validates and writes its checkpoints (`--resume` goes on from there).
  public var timeLimit: Double?
  /// Polled after every step; a non-nil reason (e.g. a caught SIGTERM) stops the run the same
  /// way as the time limit.
  public var stopRequest: (@Sendable () -> String?)?
  /// How to make fresh augmentations per epoch (used when `section.freshAugmentation` is on);
  /// nil: the run cycles the shards' tiles.
  public var freshAugmentation: FreshAugmentation?

  public init(
    shards: String, runDirectory: String, section: TrainSection, threads: Int, seed: UInt64, resume: Bool, skipCorrupt: Bool,
    timeLimit: Double? = nil, stopRequest: (@Sendable () -> String?)? = nil, freshAugmentation: FreshAugmentation? = nil
  ) {
    self.shards = shards
    self.runDirectory = runDirectory
    self.section = section
    self.threads = threads
    self.seed = seed
    self.resume = resume
    self.skipCorrupt = skipCorrupt
    self.timeLimit = timeLimit
    self.stopRequest = stopRequest
    self.freshAugmentation = freshAugmentation
  }
}

/// Validation metrics at one point of a run.
public struct ValidationResult: Sendable, Equatable {
  public var step: Int
  public var epoch: Int
  public var loss: Double
  public var dice: [Double?]
  public var iou: [Double?]
  public var pixelError: Double
  public var samples: Int

  /// Mean Dice over the foreground classes.
  public var foregroundDice: Double? { SegmentationScores.mean(dice, classes: 1..<max(dice.count, 1)) }
}

/// What a run did.
public struct TrainSummary: Sendable {
  public var steps: Int
  public var epochs: Int
  public var lastLoss: Double
  public var validation: ValidationResult?
  public var checkpoint: String
  public var metrics: String
  public var plot: String
  public var seconds: Double
  public var skippedShards: Int
  /// Why the run stopped before its last step (time limit, signal); nil when it finished.
  public var stoppedEarly: String?
}

/// `unet train`: trains a network (U-Net, U-Net++ or UNet 3+) from shards, with a validation split by source image, a metrics
/// log (JSON lines), a plot, atomic checkpoints and resume.
///
/// The data order depends only on the seed and the epoch (shards shuffled per epoch, then a
/// seeded shuffle buffer), and a checkpoint records how far into its epoch the run was, so a
/// resumed run continues the same sequence of batches and the same loss curve.
public final class TrainingRun {
  public let options: TrainRunOptions
  public let data: TrainingData
  public let trainer: Trainer
  public let configuration: NetworkConfiguration
  let log: (String) -> Void
  let totalSteps: Int
  let batchesPerEpoch: Int
  let metadataBase: [String: String]
  /// Samples of the current epoch already used (for resume).
  var epochSamples = 0
  var history: [JSONValue] = []
  var trainPoints: [(x: Double, y: Double)] = []
  var validationPoints: [ValidationResult] = []
  var lastValidation: ValidationResult?
  var skipped: Set<Int> = []
  /// The threshold chosen on the validation images at the end of the run.
  var calibration: CalibrationResult?
  /// Fresh augmentations per epoch, when on.
  var epochs: EpochShards?
  /// Whether the current stream reads a fresh epoch's set (not the run's shards).
  var streamingEpochSet = false
  var epochSkipped: Set<Int> = []

  public var metricsPath: String { options.runDirectory + "/metrics.jsonl" }
  public var plotPath: String { options.runDirectory + "/training.png" }
  public var lastCheckpointPath: String { options.runDirectory + "/last.ckpt" }

  public init(options: TrainRunOptions, log: @escaping (String) -> Void) throws {
    self.options = options
    self.log = log
    let t = options.section
    let set = try ShardSet(directory: options.shards)
    data = try TrainingData(
      set: set, validationFraction: t.validationFraction, validationStems: t.validationSources, classes: t.classes,
      seed: options.seed)
    configuration = try Self.network(for: t, data: data, manifest: set.manifest, shards: options.shards)
    guard data.trainingCount >= 1 else { throw WorkflowError(.badShards, path: options.shards, "no training samples after the validation split") }
    let perEpoch = max(1, data.trainingCount / t.batch)
    batchesPerEpoch = perEpoch
    totalSteps = t.steps ?? (t.epochs.map { $0 * perEpoch } ?? 1000)
    metadataBase = Self.checkpointMetadata(options: options, manifest: set.manifest, data: data)
    try FileIO.makeDirectories(options.runDirectory)
    if t.freshAugmentation, let fresh = options.freshAugmentation {
      epochs = EpochShards(runDirectory: options.runDirectory, keep: t.keepEpochs, fresh: fresh)
    }
    let last = options.runDirectory + "/last.ckpt"
    if options.resume, FileIO.exists(last) {
      let checkpoint = try Checkpoint.read(from: last, expecting: configuration)
      trainer = Trainer(checkpoint: checkpoint)
      try restoreLog(from: checkpoint)
      log("resumed from \(last) at step \(trainer.stepCount) (epoch \(trainer.epoch))")
    } else {
      trainer = try Self.freshTrainer(configuration, section: t, totalSteps: totalSteps, seed: options.seed, timeLimit: options.timeLimit)
      FileIO.remove(options.runDirectory + "/metrics.jsonl")
    }
  }

  /// Trains to the end (or to the time limit or a stop request), with `options.threads`
  /// workers for this run only (other runs in the process keep theirs).
  public func run() throws -> TrainSummary {
    try ComputeThreads.withCount(options.threads) { try runSteps() }
  }

  private func runSteps() throws -> TrainSummary {
    let t = options.section
    let start = MonotonicClock.seconds()
    let startStep = trainer.stepCount
    var stream = try makeStream(epoch: trainer.epoch)
    for _ in 0..<epochSamples { _ = try nextSample(&stream) }
    var intervalLoss = 0.0
    var intervalSteps = 0
    var lastLoss = Double.nan
    var lastLog = start
    var lastTick = start
    var stoppedEarly: String? = nil
    log("training a \(configuration.summary) with \(trainer.model.parameterCount) parameters on \(data.trainingCount) samples, validating on \(data.validationMembers.count) "
        + "(sources held out: \(data.validationSources.count)); \(totalSteps) steps of batch \(t.batch), \(options.threads) threads")
    while trainer.stepCount < totalSteps {
      var samples: [StoredSample] = []
      while samples.count < t.batch {
        if let s = try nextSample(&stream) {
          samples.append(s)
          epochSamples += 1
          continue
        }
        // End of the epoch: validate (unless by steps), then a new order.
        if t.evalEvery == nil && trainer.stepCount > startStep { try validate() }
        trainer.epoch += 1
        epochSamples = 0
        stream = try makeStream(epoch: trainer.epoch)
      }
      let (input, targets, weights) = try data.batch(samples)
      let now = MonotonicClock.seconds()
      trainer.advanceClock(seconds: now - lastTick)  // the previous iteration's wall time, all of it
      lastTick = now
      let result = trainer.step(input: input, targets: targets, weights: weights)
      lastLoss = result.loss.total
      guard lastLoss.isFinite else {
        throw WorkflowError(.badSettings, "the loss became \(lastLoss) at step \(result.step)", hint: "lower the learning rate (train.schedule.lr)")
      }
      intervalLoss += lastLoss
      intervalSteps += 1
      let step = trainer.stepCount
      if step % t.logEvery == 0 || step == totalSteps {
        let mean = intervalLoss / Double(intervalSteps)
        let elapsed = MonotonicClock.seconds() - start
        let rate = Double(step - startStep) / max(elapsed, 1e-9)
        let eta = Double(totalSteps - step) / max(rate, 1e-9)
        try record(.object([
          ("kind", "train"), ("step", .int(step)), ("epoch", .int(trainer.epoch)), ("loss", .number(mean)),
          ("lr", .number(Double(result.learningRate))), ("seconds", .number(elapsed)),
        ]))
        trainPoints.append((Double(step), mean))
        if MonotonicClock.seconds() - lastLog >= 1 || step == totalSteps || step - startStep <= t.logEvery {
          log(String(format: "step %d/%d  loss %.4f  lr %.3g  %.2f steps/s  ETA %@", step, totalSteps, mean, Double(result.learningRate), rate, formatDuration(eta)))
          lastLog = MonotonicClock.seconds()
        }
        intervalLoss = 0
        intervalSteps = 0
      }
      if let every = t.evalEvery, step % every == 0 { try validate() }
      if step % t.checkpointEvery == 0 && step < totalSteps { try checkpoint(named: true) }
      if step < totalSteps, let reason = stopReason(since: start) {
        stoppedEarly = reason
        log("stopping at step \(step)/\(totalSteps): \(reason); --resume continues from here")
        break
      }
    }
    if lastValidation?.step != trainer.stepCount { try validate() }
    try checkpoint(named: true)
    try calibrate()
    if calibration != nil { try checkpoint(named: true) }
    return TrainSummary(
      steps: trainer.stepCount, epochs: trainer.epoch, lastLoss: lastLoss, validation: lastValidation,
      checkpoint: lastCheckpointPath, metrics: metricsPath, plot: plotPath, seconds: MonotonicClock.seconds() - start,
      skippedShards: skipped.count, stoppedEarly: stoppedEarly)
  }

  /// Why the run should stop now, if it should: a stop request, else the time limit.
  func stopReason(since start: Double) -> String? {
    if let reason = options.stopRequest?() { return reason }
    if let limit = options.timeLimit, MonotonicClock.seconds() - start >= limit {
      return "time limit of \(formatDuration(limit)) reached"
    }
    return nil
  }

  /// The training samples of an epoch in their seeded order: the run's shards, or with fresh
  /// augmentation the epoch's own set from epoch 1 on (its validation-source samples left out as
  /// in the run's shards; validation always reads the run's shards).
  func makeStream(epoch: Int) throws -> ShardStream {
    var set = data.set
    if let epochs, epoch >= 1 {
      set = try epochs.set(epoch)
      guard set.manifest.sources.map(\.stem) == data.set.manifest.sources.map(\.stem),
        set.manifest.shards.first?.members.first?.shape == data.set.manifest.shards.first?.members.first?.shape
      else {
        throw WorkflowError(.badShards, path: epochs.directory(epoch), "the fresh epoch's sources or sample shapes differ from the run's shards")
      }
    } else {
      epochs?.request(1)
    }
    streamingEpochSet = set.directory != data.set.directory
    epochSkipped = []
    return ShardStream(
      set: set, seed: options.seed, epoch: epoch, shuffleBuffer: options.section.shuffleBuffer, prefetch: 16,
      skipCorrupt: options.skipCorrupt, include: data.trainingFilter)
  }

  func nextSample(_ stream: inout ShardStream) throws -> StoredSample? {
    let s = try stream.next()
    for (shard, error) in stream.skipped {
      // Shard indices of a fresh epoch's set are its own: only the run's shards are remembered
      // for validation to skip.
      if streamingEpochSet {
        guard epochSkipped.insert(shard).inserted else { continue }
      } else {
        guard skipped.insert(shard).inserted else { continue }
      }
      log("skipped corrupt shard: \(error.description)")
    }
    return s
  }
}
