import ArgumentParser
import Foundation
import SegCache
import SegCore
import SegIO
import SegModel
import SegPipeline
import SegTrain
import SegWorkflow

extension Architecture: ExpressibleByArgument {}
extension NetworkPadding: ExpressibleByArgument {}
extension UpMode: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension ScheduleKind: ExpressibleByArgument {}
extension InferenceSettings.Heads: ExpressibleByArgument {}
extension TestTimeAugmentation: ExpressibleByArgument {}

extension TrainSection {
  /// Applies the command-line overrides.
  mutating func apply(_ f: TrainFlags) {
    if let v = f.network { architecture = v }
    if let v = f.width { width = v }
    if let v = f.depth { depth = v }
    if let v = f.padding { padding = v }
    if let v = f.up { upMode = v }
    if let v = f.batchNorm { batchNorm = v }
    if let v = f.deepSupervision { deepSupervision = v }
    if let v = f.cgm { cgm = v }
    if let v = f.prune { prediction = InferenceSettings(heads: .prune, pruneDepth: v) }
    if let v = f.steps {
      steps = v
      epochs = nil
    }
    if let v = f.epochs {
      epochs = v
      steps = nil
    }
    if let v = f.lr { learningRate = v }
    if let v = f.optimizer { optimizer = v }
    if let v = f.schedule { schedule = v }
    if let v = f.batch { batch = v }
    if let v = f.loss, let terms = LossTerm.terms(named: v) { loss = terms }
    if let v = f.evalEvery { evalEvery = v }
    if let v = f.checkpointEvery { checkpointEvery = v }
    if let v = f.validationFraction {
      validationFraction = v
      validationSources = nil
    }
  }
}

struct TrainFlags: ParsableArguments {
  @Option(help: "The network: unet, unetpp (U-Net++) or unet3p (UNet 3+).")
  var network: Architecture?
  @Option(help: "Base width (channels at the first level; 64 in the papers, 16 for CPU runs).")
  var width: Int?
  @Option(help: "Depth (poolings).")
  var depth: Int?
  @Option(help: "Convolution padding, U-Net only: valid or same (default: what the shards' tiles were cut for).")
  var padding: NetworkPadding?
  @Option(help: "Up-sampling of U-Net and U-Net++: transposed or bilinear.")
  var up: UpMode?
  @Flag(inversion: .prefixedNo, help: "Batch norm after every 3×3 convolution (U-Net, U-Net++; UNet 3+ always has it).")
  var batchNorm: Bool?
  @Flag(inversion: .prefixedNo, help: "Deep supervision: a head on every U-Net++ column or UNet 3+ level (default on).")
  var deepSupervision: Bool?
  @Flag(inversion: .prefixedNo, help: "UNet 3+'s classification-guided module (default on).")
  var cgm: Bool?
  @Option(help: "U-Net++: predict with the network pruned to this depth and its head (default: the mean of the heads).")
  var prune: Int?
  @Option(help: "Training steps.")
  var steps: Int?
  @Option(help: "Training epochs (instead of --steps).")
  var epochs: Int?
  @Option(help: "Learning rate.")
  var lr: Double?
  @Option(help: "Optimizer: sgd or adam.")
  var optimizer: OptimizerKind?
  @Option(help: "Learning-rate schedule: constant, step, cosine or plateau.")
  var schedule: ScheduleKind?
  @Option(help: "Batch size.")
  var batch: Int?
  @Option(help: ArgumentHelp("The loss.", discussion: LossTerm.nameHelp + "."))
  var loss: String?
  @Flag(help: "Cycle the shards' tiles instead of preparing fresh augmentations for every epoch.")
  var noFreshAugmentation = false
  @Option(help: "Validate every N steps (default: every epoch).")
  var evalEvery: Int?
  @Option(help: "Write a checkpoint every N steps.")
  var checkpointEvery: Int?
  @Option(help: "Share of the source images held out for validation.")
  var validationFraction: Double?

  func validate() throws {
    for (name, v) in [("--width", width), ("--depth", depth), ("--steps", steps), ("--epochs", epochs), ("--batch", batch),
                      ("--eval-every", evalEvery), ("--checkpoint-every", checkpointEvery), ("--prune", prune)] {
      if let v, v < 1 { throw ValidationError("\(name) must be at least 1") }
    }
    if steps != nil && epochs != nil { throw ValidationError("give --steps or --epochs, not both") }
    if let lr, !(lr > 0) { throw ValidationError("--lr must be positive") }
    if let l = loss, LossTerm.terms(named: l) == nil {
      throw ValidationError("--loss: \"\(l)\" is not a loss: use \(LossTerm.nameHelp)")
    }
    if let v = validationFraction, !(v >= 0 && v < 1) { throw ValidationError("--validation-fraction must lie in [0, 1)") }
  }
}

struct Train: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Train a U-Net, U-Net++ or UNet 3+ on OpenBLAS from shards: checkpoints, metrics (JSON lines), training.png.",
    discussion: """
      With a pipeline file, its shards are brought up to date first (`unet prepare`, \
      incremental) and its `train:` section gives the settings; flags override them. With \
      --shards DIR, train from an existing shard set. Validation holds out whole source images. \
      --resume continues from RUNDIR/last.ckpt with the same batches and loss curve.
      """)

  @Argument(help: "The pipeline file (YAML).", completion: .file())
  var pipeline: String?

  @Option(help: "Train from this shard folder (instead of a pipeline's).", completion: .directory)
  var shards: String?

  @Option(help: "Run folder for checkpoints, metrics.jsonl and training.png (default: out/<pipeline name>/run).",
          completion: .directory)
  var out: String?

  @Option(help: "Threads (our workers; OpenBLAS runs inside them). Default: all cores.")
  var threads: Int = ProcessInfo.processInfo.activeProcessorCount

  @Option(help: "Seed of initialisation, data order and dropout (default: the pipeline's).")
  var seed: UInt64?

  @Flag(help: "Continue from RUNDIR/last.ckpt.")
  var resume = false

  @Option(help: ArgumentHelp(
    "Stop after this much wall time (900, 900s, 15m, 1.5h, 1h30m): validate, write the checkpoints, exit 0.",
    discussion: "SIGINT or SIGTERM (e.g. a Slurm time limit) stops the same way at the end of the current step, then exits 128 + the signal; a second signal ends the process at once.",
    valueName: "duration"))
  var timeLimit: String?

  @Flag(help: "Skip shards that fail their checksum (counted and named) instead of stopping.")
  var skipCorrupt = false

  @OptionGroup var flags: TrainFlags
  @OptionGroup var pipelineFlags: PipelineFlags
  @OptionGroup var manifestFlags: ManifestFlags

  func validate() throws {
    guard (pipeline == nil) != (shards == nil) else { throw ValidationError("give a pipeline file or --shards DIR (one of them)") }
    guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    if let timeLimit, parseDuration(timeLimit).map({ $0 > 0 }) != true {
      throw ValidationError("--time-limit: \"\(timeLimit)\" is not a positive duration (e.g. 900, 15m, 1.5h, 1h30m)")
    }
  }

  func run() async throws {
    manifestFlags.export()
    var section = TrainSection()
    var shardDirectory = shards ?? ""
    var runSeed = seed ?? 0
    var runDirectory = out ?? ((shards ?? "out") + "/../run")
    var fresh: FreshAugmentation? = nil
    if let pipeline {
      let spec = try pipelineFlags.load(pipeline)
      section = spec.train
      fresh = FreshEpochs.augmentation(pipeline: pipeline, source: pipelineFlags.source, maxYamlNodes: pipelineFlags.maxYamlNodes)
      runSeed = seed ?? spec.seed
      shardDirectory = defaultOutput(for: pipeline, "shards")
      runDirectory = out ?? defaultOutput(for: pipeline, "run")
      let summary = try await Preparer.run(
        spec: spec, options: PrepareOptions(outputDirectory: shardDirectory, workers: threads))
      print("shards: \(summary.trainingSamples) samples in \(shardDirectory) (built \(summary.built), reused \(summary.reused))")
    }
    if pipeline == nil {
      // The shards say how to train on them (their pipeline's train: section), and where their
      // pipeline file is (for fresh augmentations, when it is still the same pipeline).
      let set = try ShardSet(directory: shardDirectory)
      if let train = set.manifest.train {
        section = try TrainSection.parse(json: train, file: shardDirectory + "/manifest.json")
      }
      if let file = set.manifest.pipelineFile, FileIO.exists(file),
        let spec = try? pipelineFlags.load(file), SHA256.hex(Array(spec.canonical.serialized(spaced: false).utf8)) == set.manifest.pipelineSHA256
      {
        fresh = FreshEpochs.augmentation(pipeline: file, source: pipelineFlags.source, maxYamlNodes: pipelineFlags.maxYamlNodes)
        runSeed = seed ?? spec.seed
      } else if section.freshAugmentation {
        print("fresh augmentation needs the shards' pipeline file (not found or changed): training cycles the shards' tiles")
      }
    }
    if flags.noFreshAugmentation { section.freshAugmentation = false }
    section.apply(flags)
    let run = try TrainingRun(
      options: TrainRunOptions(
        shards: shardDirectory, runDirectory: runDirectory, section: section, threads: threads, seed: runSeed, resume: resume,
        skipCorrupt: skipCorrupt, timeLimit: timeLimit.flatMap(parseDuration), stopRequest: installStopHandlers(),
        freshAugmentation: fresh)
    ) { line in
      print(line)
      flushStandardOutput()
    }
    let summary = try run.run()
    if let v = summary.validation {
      let dice = v.foregroundDice.map { String(format: "%.4f", $0) } ?? "-"
      print(String(format: "done: %d steps, %d epochs, %.1f s; validation loss %.4f, Dice %@, pixel error %.4f", summary.steps, summary.epochs, summary.seconds, v.loss, dice, v.pixelError))
    } else {
      print(String(format: "done: %d steps, %.1f s; last training loss %.4f (no validation samples)", summary.steps, summary.seconds, summary.lastLoss))
    }
    if summary.skippedShards > 0 { print("skipped \(summary.skippedShards) corrupt shard(s)") }
    print("checkpoint: \(summary.checkpoint)")
    print("metrics:    \(summary.metrics)")
    print("plot:       \(summary.plot)")
    if summary.stoppedEarly != nil, let signal = caughtStopSignal() { throw ExitCode(128 + signal) }
  }
}

struct Predict: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Segment whole images with a checkpoint (overlap-tile): DIR/NAME.png labels and DIR/NAME.prob.tif probabilities.",
    discussion: "Images are normalised as in training. Two classes are written as 0/255, more as class ids.")

  @Argument(help: "The checkpoint (.ckpt).", completion: .file())
  var checkpoint: String

  @Argument(help: "Images or folders of images.", completion: .file())
  var images: [String]

  @Option(help: "Output folder.", completion: .directory)
  var out: String

  @Option(help: "Output tile size per network pass (pixels per side; a valid network takes the smallest legal size at least this).")
  var tile: Int = 512

  @Option(help: "Context per side for same-padding networks (default: 2^depth).")
  var context: Int?

  @Option(help: "U-Net++: mean (the mean of the heads' probabilities) or prune (one head; see --prune). Default: the checkpoint's setting.")
  var heads: InferenceSettings.Heads?

  @Option(help: "U-Net++: predict with the network pruned to this depth and its head.")
  var prune: Int?

  @Option(help: "Foreground threshold of a two-class network (default: the one calibrated after training, else 0.5).")
  var threshold: Float?

  @Option(help: "Test-time augmentation: none, flips (the 4 mirrorings) or d4 (the 8 symmetries of the square), probabilities averaged.")
  var tta: TestTimeAugmentation = .none

  @Option(help: "Threads.")
  var threads: Int = ProcessInfo.processInfo.activeProcessorCount

  @Option(help: "Probabilities as tif (one float32 page per class) or npy (K × H × W float32).")
  var probFormat: ProbabilityFormat = .tif

  func validate() throws {
    guard tile >= 1 else { throw ValidationError("--tile must be positive") }
    guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    if let prune, prune < 1 { throw ValidationError("--prune must be at least 1") }
    if heads == .prune && prune == nil { throw ValidationError("--heads prune needs --prune DEPTH") }
    if heads == .mean && prune != nil { throw ValidationError("--prune selects one head: leave out --heads mean") }
    if let threshold, !(threshold > 0 && threshold < 1) { throw ValidationError("--threshold must lie in (0, 1)") }
  }

  func run() throws {
    ComputeThreads.set(threads)
    let settings: InferenceSettings?
    if let prune {
      settings = InferenceSettings(heads: .prune, pruneDepth: prune)
    } else {
      settings = heads.map { InferenceSettings(heads: $0) }
    }
    var predictor = try Predictor(checkpointPath: checkpoint, tile: tile, context: context, settings: settings, threshold: threshold)
    predictor.tta = tta
    var files: [String] = []
    for p in images { files += FileIO.isDirectory(p) ? try ImageFiles.list(p) : [p] }
    guard !files.isEmpty else { throw ValidationError("no image files given") }
    let written = try predictor.run(images: files, outputDirectory: out, probabilityFormat: probFormat) { print($0) }
    print("wrote \(written.count) label images and probability files to \(out)/")
  }
}

extension Evaluator.Kind: ExpressibleByArgument {}

struct Eval: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "eval",
    abstract: "Score predictions against labels (paired by file stem): Dice, IoU, pixel error, ISBI Rand error.",
    discussion: """
      Binary images (0 and one other value) are cells vs background; others are class ids. \
      The Rand error is 1 − the foreground-restricted Rand F-score of the ISBI 2012 challenge, \
      on the 4-connected components of the foreground. One line per image, then the means.
      """)

  @Argument(help: "The predictions (a folder or one file).", completion: .file())
  var predictions: String

  @Argument(help: "The labels (a folder or one file).", completion: .file())
  var labels: String

  @Flag(help: "One JSON object per image and one for the means.")
  var json = false

  @Option(help: "How label values are read: binary (non-zero = foreground), classes, or auto (binary when the predictions are).")
  var kind: Evaluator.Kind = .auto

  func run() throws {
    let pairs = try Evaluator.pairs(predictions: predictions, labels: labels)
    var all: [ImageEvaluation] = []
    for (name, p, l) in pairs {
      let e = try Evaluator.evaluate(name: name, prediction: p, label: l, kind: kind)
      all.append(e)
      emit(e.name, dice: e.foregroundDice, iou: e.foregroundIoU, pixelError: e.pixelError, rand: e.randError, perClass: e)
    }
    func mean(_ f: (ImageEvaluation) -> Double?) -> Double? {
      let v = all.compactMap(f)
      return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
    }
    emit("mean", dice: mean(\.foregroundDice), iou: mean(\.foregroundIoU), pixelError: mean { $0.pixelError } ?? 0,
         rand: mean { $0.randError } ?? 0, perClass: nil, count: all.count)
  }

  func emit(_ name: String, dice: Double?, iou: Double?, pixelError: Double, rand: Double, perClass: ImageEvaluation?, count: Int? = nil) {
    if json {
      var fields: [(String, JSONValue)] = [
        ("name", .string(name)), ("dice", dice.map { .double($0) } ?? .null), ("iou", iou.map { .double($0) } ?? .null),
        ("pixel_error", .double(pixelError)), ("rand_error", .double(rand)),
      ]
      if let e = perClass {
        fields.append(("dice_per_class", .array(e.dice.map { $0.map { .double($0) } ?? .null })))
        fields.append(("iou_per_class", .array(e.iou.map { $0.map { .double($0) } ?? .null })))
      }
      if let count { fields.append(("images", .int(count))) }
      print(JSONValue.object(fields).serialized())
    } else {
      let d = dice.map { String(format: "%.4f", $0) } ?? "-"
      let i = iou.map { String(format: "%.4f", $0) } ?? "-"
      let suffix = count.map { " (\($0) images)" } ?? ""
      print(String(format: "%@: dice %@  iou %@  pixel error %.4f  rand error %.4f%@", name, d, i, pixelError, rand, suffix))
    }
  }
}
