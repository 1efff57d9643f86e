import Foundation
import SegCore
import SegModel

/// Why a checkpoint could not be read.
public typealias CheckpointError = DomainError<CheckpointErrorCode>

/// The codes of ``CheckpointError``.
public enum CheckpointErrorCode: String, ErrorCode {
  /// The file does not start with the checkpoint magic.
  case notACheckpoint = "not_a_checkpoint"
  /// A format version this build does not read.
  case unsupportedVersion = "unsupported_version"
  /// The file ends before the sizes in its header say it should.
  case truncated
  /// The SHA-256 stored at the end does not match the contents.
  case corruptChecksum = "corrupt_checksum"
  /// The header is not valid (bad JSON, inconsistent sizes).
  case badHeader = "bad_header"
  /// The checkpoint holds a different network than the one it is loaded into.
  case wrongArchitecture = "wrong_architecture"
}

/// A saved training state: the network (configuration, parameters, batch-norm state), the
/// optimiser state, the schedule state, step, epoch and seed.
///
/// File format (all integers and floats little-endian):
///
///     offset 0    8 bytes   magic "UNETCKPT"
///     offset 8    UInt32    format version (2; version 1 is still read)
///     offset 12   UInt32    header length L
///     offset 16   L bytes   JSON header (UTF-8, sorted keys; see `Header`)
///     then        4·P bytes parameters (float32), P = header.parameter_count
///                 4·S bytes batch-norm state, S = header.state_count
///                 4·O bytes optimiser state, O = header.optimizer_state_count
///     last        32 bytes  SHA-256 of every byte before it
///
/// The header records the network configuration (format 2: any architecture, with an
/// `architecture` key, and the prediction settings under `inference`; format 1: a U-Net
/// configuration), the training configuration (optimiser kind
/// and hyper-parameters, schedule, loss, clipping, seed), the schedule's running state, step,
/// epoch, the random-number state, the counts above, the parameter views (names, offsets,
/// shapes) and free-form caller metadata. Files are written atomically
/// (``FileIO/writeAtomically(_:to:)``): a crash leaves the old file or the new one.
///
/// Random state: every random draw of training derives from the seed and the step
/// (`RandomStream(seed:path:[2, step])` for dropout), so (seed, step) restores it exactly; the
/// header also records the stream of the next step for inspection.
public struct Checkpoint: Sendable {
  public var model: Network
  /// How prediction runs the network (U-Net++ heads); changeable after training.
  public var inference: InferenceSettings
  public var training: TrainingConfiguration
  public var scheduler: LearningRateScheduler
  public var optimizerState: [Float]
  public var step: Int
  public var epoch: Int
  /// Free-form values the caller wants kept (e.g. the data loader's position).
  public var metadata: [String: String]

  public static let magic: [UInt8] = Array("UNETCKPT".utf8)
  public static let formatVersion: UInt32 = 2

  /// The state of `trainer` now.
  public init(_ trainer: Trainer, inference: InferenceSettings = InferenceSettings(), metadata: [String: String] = [:]) {
    model = trainer.model
    self.inference = inference
    training = trainer.configuration
    scheduler = trainer.scheduler
    optimizerState = trainer.optimizer.state
    step = trainer.stepCount
    epoch = trainer.epoch
    self.metadata = metadata
  }

  struct RandomState: Codable, Equatable {
    var seed: UInt64
    /// The dropout stream the next step will use.
    var nextDropoutStream: RandomStream
    enum CodingKeys: String, CodingKey {
      case seed
      case nextDropoutStream = "next_dropout_stream"
    }
  }

  /// The JSON header; format 2 stores a `NetworkConfiguration` and the prediction settings,
  /// format 1 a `UNetConfiguration` and none.
  struct Header<Configuration: Codable>: Codable {
    var format: String
    var network: Configuration
    var inference: InferenceSettings?
    var training: TrainingConfiguration
    var scheduler: LearningRateScheduler
    var step: Int
    var epoch: Int
    var random: RandomState
    var parameterCount: Int
    var stateCount: Int
    var optimizerStateCount: Int
    var parameterViews: [ParameterView]
    var metadata: [String: String]

    enum CodingKeys: String, CodingKey {
      case format, network, inference, training, scheduler, step, epoch, random, metadata
      case parameterCount = "parameter_count"
      case stateCount = "state_count"
      case optimizerStateCount = "optimizer_state_count"
      case parameterViews = "parameter_views"
    }

    /// The same header with its network described by `transform`.
    func map<T: Codable>(_ transform: (Configuration) -> T) -> Header<T> {
      Header<T>(
        format: format, network: transform(network), inference: inference, training: training, scheduler: scheduler,
        step: step, epoch: epoch, random: random, parameterCount: parameterCount, stateCount: stateCount,
        optimizerStateCount: optimizerStateCount, parameterViews: parameterViews, metadata: metadata)
    }
  }

  static let formatName = "swift-unet checkpoint"

  // MARK: - Writing

  /// The file's bytes.
  public func encoded() throws -> [UInt8] {
    let header = Header<NetworkConfiguration>(
      format: Self.formatName, network: model.configuration, inference: inference, training: training, scheduler: scheduler,
      step: step, epoch: epoch,
      random: RandomState(seed: training.seed, nextDropoutStream: RandomStream(seed: training.seed, path: [Trainer.dropoutStream, UInt64(step)])),
      parameterCount: model.parameters.count, stateCount: model.state.count,
      optimizerStateCount: optimizerState.count, parameterViews: model.parameterViews,
      metadata: metadata)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let json = Array(try encoder.encode(header))
    var out: [UInt8] = []
    out.reserveCapacity(16 + json.count + 4 * (model.parameters.count + model.state.count + optimizerState.count) + 32)
    out += Self.magic
    appendLE(&out, Self.formatVersion)
    appendLE(&out, UInt32(json.count))
    out += json
    appendFloatsLE(&out, model.parameters)
    appendFloatsLE(&out, model.state)
    appendFloatsLE(&out, optimizerState)
    out += SHA256.hash(out)
    return out
  }

  /// Writes the checkpoint to `path` atomically.
  public func write(to path: String) throws {
    try FileIO.writeAtomically(try encoded(), to: path)
  }

  // MARK: - Reading

  /// Reads a checkpoint.
  ///
  /// - Parameters:
  ///   - expecting: when given, the network configuration the caller will load the weights
  ///     into; a checkpoint of another network throws `.wrongArchitecture`.
  /// - Throws: ``CheckpointError`` (or ``FileIOError`` when the file cannot be read).
  public static func read(from path: String, expecting: NetworkConfiguration? = nil) throws -> Checkpoint {
    try decode(try FileIO.read(path), path: path, expecting: expecting)
  }

  /// Decodes checkpoint bytes (`path` is used in error messages).
  public static func decode(_ bytes: [UInt8], path: String? = nil, expecting: NetworkConfiguration? = nil) throws(CheckpointError) -> Checkpoint {
    let rebuild = "the file is damaged; use another checkpoint of the run or train again"
    guard bytes.count >= 8, Array(bytes[0..<8]) == magic else {
      throw CheckpointError(.notACheckpoint, path: path, "not a swift-unet checkpoint (no UNETCKPT magic)", hint: "pass a .ckpt file written by unet train")
    }
    guard bytes.count >= 16 else {
      throw CheckpointError(.truncated, path: path, "truncated: \(bytes.count) bytes, the fixed header alone is 16", hint: rebuild)
    }
    let version = readLE32(bytes, 8)
    guard version == 1 || version == formatVersion else {
      throw CheckpointError(.unsupportedVersion, path: path, "checkpoint format version \(version); this build reads versions 1 and \(formatVersion)", hint: "use the unet release that wrote it")
    }
    let headerLength = Int(readLE32(bytes, 12))
    guard bytes.count >= 16 + headerLength + 32 else {
      throw CheckpointError(.truncated, path: path, "truncated: \(bytes.count) bytes, the header alone needs \(16 + headerLength + 32)", hint: rebuild)
    }
    func checksumMatches() -> Bool {
      let body = bytes[0..<(bytes.count - 32)]
      return SHA256.hash(body) == Array(bytes[(bytes.count - 32)...])
    }
    let header: Header<NetworkConfiguration>
    do {
      let json = Data(bytes[16..<(16 + headerLength)])
      header = version == 1
        ? try JSONDecoder().decode(Header<UNetConfiguration>.self, from: json).map { .unet($0) }
        : try JSONDecoder().decode(Header<NetworkConfiguration>.self, from: json)
    } catch {
      if !checksumMatches() {
        throw CheckpointError(.corruptChecksum, path: path, "SHA-256 mismatch: the contents were changed or damaged", hint: rebuild)
      }
      throw CheckpointError(.badHeader, path: path, "unreadable header: \(error)", hint: rebuild)
    }
    guard header.format == formatName,
      header.parameterCount >= 0, header.stateCount >= 0, header.optimizerStateCount >= 0
    else {
      throw CheckpointError(.badHeader, path: path, "header does not describe a swift-unet checkpoint", hint: rebuild)
    }
    // Counts from a hostile header: sum them without overflow (the file size bounds them next).
    let (counts, o1) = header.parameterCount.addingReportingOverflow(header.stateCount)
    let (floats, o2) = counts.addingReportingOverflow(header.optimizerStateCount)
    let (floatBytes, o3) = floats.multipliedReportingOverflow(by: 4)
    let expected = o1 || o2 || o3 ? Int.max : (16 + headerLength + 32).addingReportingOverflow(floatBytes).partialValue
    if bytes.count < expected || expected < 0 {
      throw CheckpointError(.truncated, path: path, "truncated: \(bytes.count) bytes, the header announces \(expected)", hint: rebuild)
    }
    if bytes.count > expected {
      throw CheckpointError(.corruptChecksum, path: path, "\(bytes.count - expected) unexpected bytes after the data", hint: rebuild)
    }
    guard checksumMatches() else {
      throw CheckpointError(.corruptChecksum, path: path, "SHA-256 mismatch: the contents were changed or damaged", hint: rebuild)
    }
    if let expecting, expecting != header.network {
      throw CheckpointError(
        .wrongArchitecture, path: path,
        "holds a different network: \(header.network.summary), expected \(expecting.summary)",
        hint: "load it with the network options it was trained with, or start a new run")
    }
    var problems = header.network.problems + header.training.problems
    if let p = header.network.geometry.problem { problems.append(p) }
    let inference = header.inference ?? InferenceSettings()
    if let p = inference.problem(for: header.network) { problems.append(p) }
    if let first = problems.first {
      throw CheckpointError(.badHeader, path: path, "invalid configuration in header: \(first)", hint: rebuild)
    }
    // The network's buffers are allocated only when the counts stored match its layout: a
    // header naming a huge network in a small file is refused before anything of its size is.
    let layout = Network.build(header.network, training: true)
    guard layout.parameterCount == header.parameterCount, layout.stateCount == header.stateCount else {
      throw CheckpointError(
        .wrongArchitecture, path: path,
        "sizes do not match its network: \(header.parameterCount) parameters stored, the network has \(layout.parameterCount)",
        hint: "the checkpoint was written by an incompatible build")
    }
    var model = Network(structureOf: header.network)
    guard model.parameters.count == header.parameterCount, model.state.count == header.stateCount,
      header.optimizerStateCount == header.parameterCount * header.training.optimizer.stateMultiplier
    else {
      throw CheckpointError(
        .wrongArchitecture, path: path,
        "sizes do not match its network: \(header.parameterCount) parameters stored, the network has \(model.parameters.count)",
        hint: "the checkpoint was written by an incompatible build")
    }
    var offset = 16 + headerLength
    model.parameters = readFloatsLE(bytes, &offset, header.parameterCount)
    model.state = readFloatsLE(bytes, &offset, header.stateCount)
    let optimizerState = readFloatsLE(bytes, &offset, header.optimizerStateCount)
    guard header.parameterViews == model.parameterViews else {
      throw CheckpointError(
        .wrongArchitecture, path: path, "its parameter layout differs from the one this build makes for \(header.network.summary)",
        hint: "the checkpoint was written by an incompatible build")
    }
    return Checkpoint(
      model: model, inference: inference, training: header.training, scheduler: header.scheduler,
      optimizerState: optimizerState, step: header.step, epoch: header.epoch, metadata: header.metadata)
  }

  init(
    model: Network, inference: InferenceSettings, training: TrainingConfiguration, scheduler: LearningRateScheduler,
    optimizerState: [Float], step: Int, epoch: Int, metadata: [String: String]
  ) {
    self.model = model
    self.inference = inference
    self.training = training
    self.scheduler = scheduler
    self.optimizerState = optimizerState
    self.step = step
    self.epoch = epoch
    self.metadata = metadata
  }

}

// MARK: - Little-endian helpers

private func appendLE(_ out: inout [UInt8], _ v: UInt32) {
  for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
}

private func appendFloatsLE(_ out: inout [UInt8], _ values: [Float]) {
  let start = out.count
  out += [UInt8](repeating: 0, count: 4 * values.count)
  out.withUnsafeMutableBufferPointer { o in
    for (i, v) in values.enumerated() {
      let b = v.bitPattern.littleEndian
      withUnsafeBytes(of: b) { raw in
        for j in 0..<4 { o[start + 4 * i + j] = raw[j] }
      }
    }
  }
}

private func readLE32(_ b: [UInt8], _ at: Int) -> UInt32 {
  UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
}

private func readFloatsLE(_ b: [UInt8], _ offset: inout Int, _ count: Int) -> [Float] {
  var out = [Float](repeating: 0, count: count)
  for i in 0..<count {
    out[i] = Float(bitPattern: readLE32(b, offset + 4 * i))
  }
  offset += 4 * count
  return out
}
