import SegCache
import SegCore
import SegTrain

/// What a shard set offers a trainer: channels, tile and label sizes, the class count, the
/// split into training and validation samples by source image, and batches.
public struct TrainingData: Sendable {
  public let set: ShardSet
  /// Input channels, tile input size and label (output) size.
  public let channels: Int
  public let inputSize: (height: Int, width: Int)
  public let labelSize: (height: Int, width: Int)
  /// How masks become class targets: instance and binary masks give background (0) and
  /// cells (1); class masks are the classes themselves.
  public let maskKind: String
  public let classes: Int
  /// Source indices held out for validation (no tile of theirs is trained on).
  public let validationSources: Set<Int>
  public let trainingCount: Int
  public let validationMembers: [(shard: Int, member: Int)]

  /// Reads the manifest and decides the split.
  ///
  /// - Parameters:
  ///   - validationFraction: share of the source images held out (at least one when > 0 and
  ///     there are two or more sources; never all of them).
  ///   - validationStems: the source stems to hold out instead.
  ///   - classes: for class masks, the number of classes (default 2).
  public init(
    set: ShardSet, validationFraction: Double, validationStems: [String]?, classes: Int?, seed: UInt64
  ) throws(WorkflowError) {
    self.set = set
    let m = set.manifest
    guard let first = m.shards.first?.members.first else {
      throw WorkflowError(.badShards, path: set.directory, "the shard set holds no samples")
    }
    channels = first.shape[0]
    inputSize = (first.shape[1], first.shape[2])
    let label = first.labelShape ?? [first.shape[1], first.shape[2]]
    labelSize = (label[0], label[1])
    for s in m.shards {
      for e in s.members where e.shape != first.shape || (e.labelShape ?? [e.shape[1], e.shape[2]]) != label {
        throw WorkflowError(
          .badShards, path: set.directory,
          "samples have different shapes (\(first.key): \(first.shape), \(e.key): \(e.shape))",
          hint: "cut training tiles of one size with a `tiles:` section in the pipeline")
      }
    }
    guard first.mask != nil else {
      throw WorkflowError(.badShards, path: set.directory, "the shards hold no masks: nothing to train on")
    }
    maskKind = m.settings.maskKind ?? "instances"
    self.classes = maskKind == "classes" ? (classes ?? 2) : 2
    // The split, by source image.
    let sourceCount = m.sources.count
    var held = Set<Int>()
    if let stems = validationStems {
      for stem in stems {
        guard let i = m.sources.firstIndex(where: { $0.stem == stem }) else {
          throw WorkflowError(.badSettings, path: set.directory, "validation source \"\(stem)\" is not among the shards' sources")
        }
        held.insert(i)
      }
    } else if validationFraction > 0 && sourceCount >= 2 {
      let count = min(sourceCount - 1, max(1, Int((validationFraction * Double(sourceCount)).rounded())))
      var order = Array(0..<sourceCount)
      var rng = RandomStream(seed: seed, path: [0x5A1])
      rng.shuffle(&order)
      held = Set(order.prefix(count))
    }
    guard held.count < sourceCount else {
      throw WorkflowError(.badSettings, path: set.directory, "every source is held out for validation: nothing left to train on")
    }
    validationSources = held
    var training = 0
    var validation: [(Int, Int)] = []
    for (i, s) in m.shards.enumerated() {
      for (k, e) in s.members.enumerated() {
        if held.contains(e.source) { validation.append((i, k)) } else { training += 1 }
      }
    }
    trainingCount = training
    validationMembers = validation
  }

  /// The samples used for training (not held out).
  public var trainingFilter: @Sendable (SampleEntry) -> Bool {
    let held = validationSources
    return { !held.contains($0.source) }
  }

  /// Class targets of a mask: 0/1 for instance and binary masks, the values for class masks.
  public func targets(_ sample: StoredSample) throws(WorkflowError) -> [Int32] {
    guard let mask = sample.mask else {
      throw WorkflowError(.badShards, path: set.path(ofShard: sample.shard), "\(sample.key) has no mask")
    }
    let values = mask.labelSamples()
    if maskKind != "classes" { return values.map { $0 == 0 ? 0 : 1 } }
    let t = values.map { Int32(clamping: $0) }
    if let bad = SegmentationLoss.firstInvalidTarget(t, classes: classes) {
      throw WorkflowError(
        .badShards, path: set.path(ofShard: sample.shard), "\(sample.key) has class \(t[bad]) but the network has \(classes) classes",
        hint: "set train.classes")
    }
    return t
  }

  /// A batch tensor (N × C × H × W), class targets (N × h × w) and weights (ones when the
  /// shards have no weight map).
  public func batch(_ samples: [StoredSample]) throws(WorkflowError) -> (input: Tensor, targets: [Int32], weights: [Float]) {
    var input: [Float] = []
    var targets: [Int32] = []
    var weights: [Float] = []
    for s in samples {
      input += s.image.floatSamples()
      targets += try self.targets(s)
      weights += s.weight?.floatSamples() ?? [Float](repeating: 1, count: labelSize.height * labelSize.width)
    }
    let shape = TensorShape(n: samples.count, c: channels, h: inputSize.height, w: inputSize.width)
    return (Tensor(shape: shape, data: input), targets, weights)
  }
}

/// Problems of a training, prediction or evaluation run.
public typealias WorkflowError = DomainError<WorkflowErrorCode>

/// The codes of ``WorkflowError``.
public enum WorkflowErrorCode: String, ErrorCode {
  case badShards, badSettings, incompatible, badInput, ioFailure
}
