import SegAugment
import SegCore

/// The intensity normalisation of a training pipeline (its `normalize` stages, with data-set
/// statistics resolved), as the exports state it: JSON for ONNX metadata and safetensors
/// metadata, bioimage.io pre-processing steps, and, where every step is a fixed affine map,
/// ONNX nodes that apply it inside the graph.
public struct ExportNormalization: Sendable, Equatable {
  public var stages: [NormalizeStage]

  public init(stages: [NormalizeStage]) {
    self.stages = stages
  }

  /// Applies the stages to `image` (float32) exactly as training and `unet predict` do.
  public func apply(to image: inout Image) {
    for s in stages { NormalizeStage.apply(s.method, perChannel: s.perChannel, dataset: s.datasetStatistics, to: &image) }
  }

  /// One object per stage: `method`, its parameters and `per_channel`.
  public var description: JSONValue {
    .array(stages.map { s in
      var fields: [(String, JSONValue)] = []
      switch s.method {
      case .scale(let f): fields = [("method", "scale"), ("factor", .double(f))]
      case .minmax: fields = [("method", "minmax")]
      case .percentile(let lo, let hi): fields = [("method", "percentile"), ("low", .double(lo)), ("high", .double(hi)), ("clip", true)]
      case .zscoreImage: fields = [("method", "zscore"), ("scope", "image")]
      case .zscoreDataset:
        fields = [("method", "zscore"), ("scope", "dataset")]
        if let st = s.datasetStatistics {
          fields += [("mean", .array(st.mean.map { .double($0) })), ("std", .array(st.std.map { .double($0) }))]
        }
      }
      fields.append(("per_channel", .bool(s.perChannel)))
      return .object(fields)
    })
  }

  /// A sentence for people.
  public var summary: String {
    guard !stages.isEmpty else { return "none (the network takes the image's values as they are)" }
    return stages.map { s -> String in
      let scope = s.perChannel ? "per channel" : "over all channels"
      switch s.method {
      case .scale(let f): return "x · \(f)"
      case .minmax: return "(x − min) / (max − min) per image, \(scope)"
      case .percentile(let lo, let hi): return "percentiles \(lo)–\(hi) of the image mapped to 0–1 and clipped, \(scope)"
      case .zscoreImage: return "(x − mean) / std of the image, \(scope)"
      case .zscoreDataset:
        let st = s.datasetStatistics.map { " (mean \($0.mean), std \($0.std))" } ?? ""
        return "(x − mean) / std of the training data\(st), \(scope)"
      }
    }.joined(separator: ", then ")
  }

  /// bioimage.io model spec v0.5 `preprocessing` steps for an input with `channels` channels
  /// and axes (batch, channel, y, x).
  ///
  /// bioimage.io divides by `max − min + eps` and `std + eps` (eps = 10⁻⁶) where we divide by
  /// `max − min` and `std`: relative differences of order 10⁻⁶ / range.
  public func bioimageioPreprocessing(channels: Int) -> [JSONValue] {
    var steps: [JSONValue] = []
    for s in stages {
      let axes: JSONValue = s.perChannel ? .array(["y", "x"]) : .array(["channel", "y", "x"])
      switch s.method {
      case .scale(let f):
        steps.append(.object([("id", "scale_linear"), ("kwargs", .object([("gain", .double(f)), ("offset", 0.0)]))]))
      case .minmax:
        steps.append(.object([("id", "scale_range"), ("kwargs", .object([("axes", axes), ("min_percentile", 0.0), ("max_percentile", 100.0)]))]))
      case .percentile(let lo, let hi):
        steps.append(.object([("id", "scale_range"), ("kwargs", .object([("axes", axes), ("min_percentile", .double(lo)), ("max_percentile", .double(hi))]))]))
        steps.append(.object([("id", "clip"), ("kwargs", .object([("min", 0.0), ("max", 1.0)]))]))
      case .zscoreImage:
        steps.append(.object([("id", "zero_mean_unit_variance"), ("kwargs", .object([("axes", axes)]))]))
      case .zscoreDataset:
        guard let st = s.datasetStatistics, !st.mean.isEmpty else { continue }
        let std = st.std.map { Swift.max($0, 1e-6) }
        if s.perChannel && channels > 1 {
          let mean = (0..<channels).map { JSONValue.double(st.mean[Swift.min($0, st.mean.count - 1)]) }
          let sd = (0..<channels).map { JSONValue.double(std[Swift.min($0, std.count - 1)]) }
          steps.append(.object([("id", "fixed_zero_mean_unit_variance"), ("kwargs", .object([("axis", "channel"), ("mean", .array(mean)), ("std", .array(sd))]))]))
        } else {
          steps.append(.object([("id", "fixed_zero_mean_unit_variance"), ("kwargs", .object([("mean", .double(st.mean[0])), ("std", .double(std[0]))]))]))
        }
      }
    }
    return steps
  }

  /// The stages as one per-channel map x·gain + offset when every stage is a fixed affine map
  /// (`scale`, data-set `zscore`); nil when a stage depends on the image itself.
  public func affine(channels: Int) -> (gain: [Float], offset: [Float])? {
    var gain = [Double](repeating: 1, count: channels)
    var offset = [Double](repeating: 0, count: channels)
    for s in stages {
      switch s.method {
      case .scale(let f):
        for c in 0..<channels {
          gain[c] *= f
          offset[c] *= f
        }
      case .zscoreDataset:
        guard let st = s.datasetStatistics, !st.mean.isEmpty else { continue }
        for c in 0..<channels {
          let k = s.perChannel ? Swift.min(c, st.mean.count - 1) : 0
          let inv = st.std[k] > 0 ? 1 / st.std[k] : 0
          gain[c] *= inv
          offset[c] = (offset[c] - st.mean[k]) * inv
        }
      case .minmax, .percentile, .zscoreImage:
        return nil
      }
    }
    return (gain.map { Float($0) }, offset.map { Float($0) })
  }

  /// The first stage that cannot run inside a graph on single tiles (it needs statistics of
  /// the whole image), if any.
  public var firstPerImageStage: String? {
    for s in stages {
      switch s.method {
      case .minmax: return "minmax"
      case .percentile: return "percentile"
      case .zscoreImage: return "zscore (scope: image)"
      case .scale, .zscoreDataset: continue
      }
    }
    return nil
  }
}
