import Foundation
import SegAugment
import SegCache
import SegCore

/// The normalisation a network was trained with: the pipeline's `normalize` stages with the
/// data-set statistics of the shards attached, so that `predict` and `export` preprocess
/// exactly as training did.
///
/// A checkpoint records it in two metadata entries, `normalize` (the stages' entries of the
/// pipeline file, as JSON) and `dataset_statistics` (the manifest's statistics, or `null`).
/// Both directions live here, and the stages are read back by the pipeline file's own parser
/// (``StageFactory``), so the checkpoint and the pipeline cannot disagree on what an entry
/// means; an entry that does not parse is an error naming the file, never a silent default.
public struct TrainingNormalization: Sendable, Equatable {
  /// The stages in order; `zscore` over the data set carries its statistics.
  public var stages: [NormalizeStage]

  public init(stages: [NormalizeStage]) {
    self.stages = stages
  }

  /// The metadata keys a checkpoint stores it under.
  public static let stagesKey = "normalize"
  public static let statisticsKey = "dataset_statistics"

  // MARK: Writing

  /// The two metadata entries for a run on shards with this manifest: the pipeline's
  /// `normalize` entries as recorded in the manifest, and the manifest's data-set statistics.
  public static func metadata(for manifest: ShardManifest) -> [String: String] {
    var entries: [JSONValue] = []
    if case .array(let stages)? = manifest.pipeline["stages"] { entries = stages.compactMap { $0["normalize"] } }
    let statistics =
      manifest.datasetStatistics.map { s in
        JSONValue.object([
          ("mean", .array(s.mean.map { .double($0) })), ("std", .array(s.std.map { .double($0) })),
          ("mean_all", .double(s.meanAll)), ("std_all", .double(s.stdAll)),
        ]).serialized()
      } ?? "null"
    return [stagesKey: JSONValue.array(entries).serialized(), statisticsKey: statistics]
  }

  // MARK: Reading

  /// The normalisation recorded in a checkpoint's metadata; none when it records none (a
  /// network trained on raw values outside `unet train`).
  ///
  /// - Parameter file: names the checkpoint in errors.
  /// - Throws: ``PipelineError`` naming `file` and the entry when a stage does not parse, the
  ///   statistics are malformed, or a data-set z-score has no statistics to use.
  public init(metadata: [String: String], file: String) throws(PipelineError) {
    guard let text = metadata[Self.stagesKey] else {
      self.init(stages: [])
      return
    }
    let statistics = try Self.statistics(metadata[Self.statisticsKey], file: file)
    let root = try ConfigNode.parse(text, file: file, limits: PipelineLimits())
    let list = ConfigNode(node: root.node, file: file, keyPath: "metadata.\(Self.stagesKey)")
    var stages: [NormalizeStage] = []
    for item in try list.list() {
      var stage = try StageFactory.normalize(item)
      if stage.method == .zscoreDataset {
        guard let statistics else {
          throw item.error(
            .missingKey, "normalises by the data set's z-score, but the checkpoint records no \(Self.statisticsKey)")
        }
        let s = statistics.datasetStatistics
        stage.datasetStatistics = stage.perChannel ? s.perChannel : s.overall
      }
      stages.append(stage)
    }
    self.init(stages: stages)
  }

  private static func statistics(_ text: String?, file: String) throws(PipelineError) -> StatisticsEntry? {
    guard let text, text != "null" else { return nil }
    let entry: StatisticsEntry
    do {
      entry = try JSONDecoder().decode(StatisticsEntry.self, from: Data(text.utf8))
    } catch {
      throw PipelineError(
        .wrongType, path: file, key: "metadata.\(statisticsKey)",
        "expected {mean: [...], std: [...], mean_all: x, std_all: x} or null")
    }
    guard !entry.mean.isEmpty, entry.mean.count == entry.std.count else {
      throw PipelineError(
        .outOfRange, path: file, key: "metadata.\(statisticsKey)",
        "mean has \(entry.mean.count) values and std \(entry.std.count); expected the same number, at least one")
    }
    return entry
  }
}
