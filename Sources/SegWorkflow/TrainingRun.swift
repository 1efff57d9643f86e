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

  public init(
    shards: String, runDirectory: String, section: TrainSection, threads: Int, seed: UInt64, resume: Bool, skipCorrupt: Bool,
    timeLimit: Double? = nil, stopRequest: (@Sendable () -> String?)? = nil
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
  private var epochSamples = 0
  private var history: [JSONValue] = []
  private var trainPoints: [(x: Double, y: Double)] = []
  private var validationPoints: [ValidationResult] = []
  private var lastValidation: ValidationResult?
  private var skipped: Set<Int> = []

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
    // The network: padding from the section, else from the shards' tiles, else what fits.
    let fallback: NetworkPadding
    if case .string(let p)? = set.manifest.settings.tiles?["padding"] {
      fallback = p == "same" ? .same : .valid
    } else {
      fallback = data.inputSize == data.labelSize || t.architecture != .unet ? .same : .valid
    }
    if let problem = t.problem { throw WorkflowError(.badSettings, problem) }
    configuration = t.network(channels: data.channels, classes: data.classes, fallbackPadding: fallback)
    if let problem = configuration.problems.first ?? configuration.geometry.problem { throw WorkflowError(.badSettings, problem) }
    let geometry = configuration.geometry
    guard data.inputSize.height == data.inputSize.width, data.labelSize.height == data.labelSize.width,
      geometry.outputSize(forInput: data.inputSize.height) == data.labelSize.height
    else {
      let out = geometry.outputSize(forInput: data.inputSize.height).map { "\($0) × \($0)" } ?? "nothing (not a legal input)"
      throw WorkflowError(
        .incompatible, path: options.shards,
        "the shards hold \(data.inputSize.height) × \(data.inputSize.width) tiles with \(data.labelSize.height) × \(data.labelSize.width) labels, "
          + "but \(geometry.summary) maps \(data.inputSize.height) to \(out)",
        hint: "match the pipeline's tiles: section to the network (or change train.network)")
    }
    guard data.trainingCount >= 1 else { throw WorkflowError(.badShards, path: options.shards, "no training samples after the validation split") }
    let perEpoch = max(1, data.trainingCount / t.batch)
    batchesPerEpoch = perEpoch
    totalSteps = t.steps ?? (t.epochs.map { $0 * perEpoch } ?? 1000)
    let statistics: String =
      set.manifest.datasetStatistics.map { s in
        JSONValue.object([
          ("mean", .array(s.mean.map { .double($0) })), ("std", .array(s.std.map { .double($0) })),
          ("mean_all", .double(s.meanAll)), ("std_all", .double(s.stdAll)),
        ]).serialized()
      } ?? "null"
    metadataBase = [
      "shards": options.shards, "pipeline_sha256": set.manifest.pipelineSHA256, "mask_kind": data.maskKind,
      "normalize": TrainingRun.normalizeStages(set.manifest).serialized(), "dataset_statistics": statistics,
      "input_size": "\(data.inputSize.height)",
    ]
    try FileIO.makeDirectories(options.runDirectory)
    let lastPath = options.runDirectory + "/last.ckpt"
    let metrics = options.runDirectory + "/metrics.jsonl"
    var resumedFrom: Checkpoint? = nil
    if options.resume, FileIO.exists(lastPath) {
      resumedFrom = try Checkpoint.read(from: lastPath, expecting: configuration)
    }
    if let checkpoint = resumedFrom {
      trainer = Trainer(checkpoint: checkpoint)
      epochSamples = Int(checkpoint.metadata["epoch_samples"] ?? "0") ?? 0
      let kept = TrainingRun.readHistory(metrics, upTo: checkpoint.step)
      history = kept.map(\.value)
      for line in history {
        if case .string("train")? = line["kind"], case .int(let s)? = line["step"], let l = line["loss"]?.number {
          trainPoints.append((Double(s), l))
        }
        if case .string("validation")? = line["kind"], let v = TrainingRun.validation(from: line) { validationPoints.append(v) }
      }
      lastValidation = validationPoints.last
      // The log continues from the checkpoint: drop what the interrupted run wrote after it
      // (the kept lines stay byte for byte as they were).
      try FileIO.writeAtomically(Array(kept.map { $0.line + "\n" }.joined().utf8), to: metrics)
      log("resumed from \(lastPath) at step \(trainer.stepCount) (epoch \(trainer.epoch))")
    } else {
      let model = Network(configuration: configuration, seed: options.seed)
      if case .weights(let w)? = t.headWeights, w.count != model.headCount {
        throw WorkflowError(
          .badSettings, "train.loss.head_weights lists \(w.count) weights, but this \(configuration.architecture.displayName) has \(model.headCount) heads")
      }
      trainer = Trainer(
        model: model, configuration: try TrainingRun.trainingConfiguration(t, totalSteps: totalSteps, seed: options.seed))
      FileIO.remove(metrics)
    }
  }

  /// The run's optimiser, schedule and loss from the section.
  static func trainingConfiguration(_ t: TrainSection, totalSteps: Int, seed: UInt64) throws -> TrainingConfiguration {
    let optimizer: OptimizerConfiguration
    switch t.optimizer {
    case .adam: optimizer = .adam(beta1: Float(t.beta1), beta2: Float(t.beta2), weightDecay: Float(t.weightDecay))
    case .sgd: optimizer = .sgd(momentum: Float(t.momentum), weightDecay: Float(t.weightDecay))
    }
    let lr = Float(t.learningRate)
    let schedule: LearningRateSchedule
    switch t.schedule {
    case .step: schedule = .step(lr, every: t.stepSize, gamma: Float(t.gamma))
    case .cosine: schedule = .cosine(lr, totalSteps: totalSteps, floor: Float(t.floor))
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

  /// The pipeline's normalize stages (for predict to apply the same preprocessing).
  static func normalizeStages(_ m: ShardManifest) -> JSONValue {
    guard case .array(let stages)? = m.pipeline["stages"] else { return .array([]) }
    return .array(stages.compactMap { $0["normalize"] })
  }

  // MARK: - The loop

  /// Trains to the end (or to the time limit or a stop request), with `options.threads`
  /// workers for this run only (other runs in the process keep theirs).
  public func run() throws -> TrainSummary {
    try ComputeThreads.withCount(options.threads) { try runSteps() }
  }

  private func runSteps() throws -> TrainSummary {
    let t = options.section
    let start = Date()
    let startStep = trainer.stepCount
    var stream = makeStream(epoch: trainer.epoch)
    for _ in 0..<epochSamples { _ = try nextSample(&stream) }
    var intervalLoss = 0.0
    var intervalSteps = 0
    var lastLoss = Double.nan
    var lastLog = Date()
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
        stream = makeStream(epoch: trainer.epoch)
      }
      let (input, targets, weights) = try data.batch(samples)
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
        let elapsed = Date().timeIntervalSince(start)
        let rate = Double(step - startStep) / max(elapsed, 1e-9)
        let eta = Double(totalSteps - step) / max(rate, 1e-9)
        record(.object([
          ("kind", "train"), ("step", .int(step)), ("epoch", .int(trainer.epoch)), ("loss", .number(mean)),
          ("lr", .number(Double(result.learningRate))), ("seconds", .number(elapsed)),
        ]))
        trainPoints.append((Double(step), mean))
        if Date().timeIntervalSince(lastLog) >= 1 || step == totalSteps || step - startStep <= t.logEvery {
          log(String(format: "step %d/%d  loss %.4f  lr %.3g  %.2f steps/s  ETA %@", step, totalSteps, mean, Double(result.learningRate), rate, formatDuration(eta)))
          lastLog = Date()
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
    return TrainSummary(
      steps: trainer.stepCount, epochs: trainer.epoch, lastLoss: lastLoss, validation: lastValidation,
      checkpoint: lastCheckpointPath, metrics: metricsPath, plot: plotPath, seconds: Date().timeIntervalSince(start),
      skippedShards: skipped.count, stoppedEarly: stoppedEarly)
  }

  /// Why the run should stop now, if it should: a stop request, else the time limit.
  func stopReason(since start: Date) -> String? {
    if let reason = options.stopRequest?() { return reason }
    if let limit = options.timeLimit, Date().timeIntervalSince(start) >= limit {
      return "time limit of \(formatDuration(limit)) reached"
    }
    return nil
  }

  func makeStream(epoch: Int) -> ShardStream {
    ShardStream(
      set: data.set, seed: options.seed, epoch: epoch, shuffleBuffer: options.section.shuffleBuffer, prefetch: 16,
      skipCorrupt: options.skipCorrupt, include: data.trainingFilter)
  }

  func nextSample(_ stream: inout ShardStream) throws -> StoredSample? {
    let s = try stream.next()
    for (shard, error) in stream.skipped where !skipped.contains(shard) {
      skipped.insert(shard)
      log("skipped corrupt shard: \(error.description)")
    }
    return s
  }

  /// Loss, Dice and IoU per class and pixel error over the validation samples.
  func validate() throws {
    guard !data.validationMembers.isEmpty else { return }
    var lossSum = 0.0
    var tp = [Int](repeating: 0, count: data.classes)
    var fp = tp
    var fn = tp
    var wrong = 0
    var pixels = 0
    var count = 0
    for (shard, member) in data.validationMembers {
      if skipped.contains(shard) { continue }
      let sample: StoredSample
      do {
        sample = try data.set.sample(shard: shard, member: member)
      } catch {
        if options.skipCorrupt { continue }
        throw error
      }
      let (input, targets, weights) = try data.batch([sample])
      let (loss, probabilities) = trainer.evaluate(input: input, targets: targets, weights: weights)
      lossSum += loss.total
      let predicted = SegmentationMetrics.argmax(probabilities)
      for (p, truth) in zip(predicted, targets) {
        let pi = Int(p)
        let ti = Int(truth)
        if pi == ti {
          tp[pi] += 1
        } else {
          fp[pi] += 1
          fn[ti] += 1
          wrong += 1
        }
      }
      pixels += targets.count
      count += 1
    }
    guard count > 0 else { return }
    let dice: [Double?] = (0..<data.classes).map { k in
      let d = 2 * tp[k] + fp[k] + fn[k]
      return d > 0 ? Double(2 * tp[k]) / Double(d) : nil
    }
    let iou: [Double?] = (0..<data.classes).map { k in
      let d = tp[k] + fp[k] + fn[k]
      return d > 0 ? Double(tp[k]) / Double(d) : nil
    }
    let result = ValidationResult(
      step: trainer.stepCount, epoch: trainer.epoch, loss: lossSum / Double(count), dice: dice, iou: iou,
      pixelError: Double(wrong) / Double(max(pixels, 1)), samples: count)
    trainer.observe(result.loss)
    lastValidation = result
    validationPoints.append(result)
    record(.object([
      ("kind", "validation"), ("step", .int(result.step)), ("epoch", .int(result.epoch)), ("loss", .number(result.loss)),
      ("dice", .array(dice.map { $0.map { .number($0) } ?? .null })), ("iou", .array(iou.map { $0.map { .number($0) } ?? .null })),
      ("pixel_error", .number(result.pixelError)), ("samples", .int(count)),
    ]))
    let diceText = dice.dropFirst().map { $0.map { String(format: "%.4f", $0) } ?? "-" }.joined(separator: "/")
    log(String(format: "validation at step %d: loss %.4f  dice %@  pixel error %.4f  (%d samples)", result.step, result.loss, diceText, result.pixelError, count))
    try writePlot()
  }

  /// Appends a line to metrics.jsonl. (A kill mid-line leaves a partial line, which readers
  /// and a resumed run skip.)
  func record(_ line: JSONValue) {
    history.append(line)
    let bytes = Array((line.serialized() + "\n").utf8)
    if let handle = FileHandle(forWritingAtPath: metricsPath) {
      _ = try? handle.seekToEnd()
      try? handle.write(contentsOf: Data(bytes))
      try? handle.close()
    } else {
      try? FileIO.writeAtomically(bytes, to: metricsPath)
    }
  }

  func checkpoint(named: Bool) throws {
    var metadata = metadataBase
    metadata["epoch_samples"] = String(epochSamples)
    let c = Checkpoint(trainer, inference: options.section.prediction, metadata: metadata)
    try c.write(to: lastCheckpointPath)
    if named {
      let s = String(trainer.stepCount)
      try c.write(to: options.runDirectory + "/step-" + String(repeating: "0", count: max(0, 6 - s.count)) + s + ".ckpt")
    }
  }

  func writePlot() throws {
    let loss = LinePlot(
      title: "loss", xLabel: "step",
      series: [
        .init(name: "train", color: .blue, points: trainPoints),
        .init(name: "validation", color: .red, points: validationPoints.map { (Double($0.step), $0.loss) }),
      ], logY: true)
    var diceSeries: [LinePlot.Series] = []
    let palette: [RGB] = [.green, .orange, .blue, .red, .yellow]
    for k in 1..<max(data.classes, 2) {
      let points = validationPoints.compactMap { v -> (x: Double, y: Double)? in
        guard k < v.dice.count, let d = v.dice[k] else { return nil }
        return (Double(v.step), d)
      }
      diceSeries.append(.init(name: data.classes == 2 ? "Dice (cells)" : "Dice class \(k)", color: palette[(k - 1) % palette.count], points: points))
    }
    let dice = LinePlot(title: "validation Dice", xLabel: "step", series: diceSeries, yRange: 0...1)
    let top = loss.render(width: 560, height: 280)
    let bottom = dice.render(width: 560, height: 280)
    var canvas = Canvas(width: 560, height: 568)
    canvas.paste(top, x: 0, y: 0)
    canvas.paste(bottom, x: 0, y: 288)
    try FileIO.writeAtomically(try PNGCodec.encode(canvas.image, options: .init(compressionLevel: 3)), to: plotPath)
  }

  // MARK: - Resume helpers

  /// The lines of a metrics log written up to `step` (a resumed run drops what came after the
  /// checkpoint it resumes from).
  static func readHistory(_ path: String, upTo step: Int) -> [(value: JSONValue, line: String)] {
    guard let bytes = try? FileIO.read(path) else { return [] }
    let text = String(decoding: bytes, as: UTF8.self)
    return text.split(separator: "\n").compactMap { line in
      guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)) else { return nil }
      if case .int(let s)? = value["step"], s > step { return nil }
      return (value, String(line))
    }
  }

  static func validation(from line: JSONValue) -> ValidationResult? {
    guard case .int(let step)? = line["step"], case .int(let epoch)? = line["epoch"], let loss = line["loss"]?.number,
      case .array(let dice)? = line["dice"], case .array(let iou)? = line["iou"], let pe = line["pixel_error"]?.number,
      case .int(let n)? = line["samples"]
    else { return nil }
    return ValidationResult(step: step, epoch: epoch, loss: loss, dice: dice.map(\.number), iou: iou.map(\.number), pixelError: pe, samples: n)
  }
}

extension JSONValue {
  /// An int or double as Double.
  public var number: Double? {
    switch self {
    case .int(let i): return Double(i)
    case .double(let d): return d
    default: return nil
    }
  }
}

/// "1:02:03" or "4:05".
public func formatDuration(_ seconds: Double) -> String {
  guard seconds.isFinite else { return "-" }
  let s = Int(seconds.rounded())
  return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
}

/// Parses a duration as people write it on a command line: `900` or `900s` (seconds), `15m`,
/// `1.5h`, `1h30m`, `2d`. Nil for anything else (empty, negative, unknown unit, unit repeated
/// out of order).
public func parseDuration(_ text: String) -> Double? {
  let units: [Character: Double] = ["d": 86400, "h": 3600, "m": 60, "s": 1]
  let order: [Character] = ["d", "h", "m", "s"]
  var total = 0.0
  var number = ""
  var lastUnit = -1
  var sawPart = false
  for c in text.trimmingCharacters(in: .whitespaces) {
    if c.isNumber || c == "." {
      number.append(c)
    } else if let scale = units[c], let index = order.firstIndex(of: c), index > lastUnit, let v = Double(number) {
      total += v * scale
      number = ""
      lastUnit = index
      sawPart = true
    } else {
      return nil
    }
  }
  if !number.isEmpty {
    guard let v = Double(number), !sawPart || lastUnit < 3 else { return nil }
    // A bare trailing number after units (e.g. "1m30") counts as seconds.
    total += v
    sawPart = true
  }
  return sawPart && total.isFinite ? total : nil
}
